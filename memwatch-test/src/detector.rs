//! memwatch's leak rule: the heap grew over N consecutive collection cycles.

use std::time::{Duration, SystemTime};

use serde::{Serialize, Serializer};

use crate::units::{format_bytes_f64, format_duration};

/// When growth over consecutive collection cycles counts as a leak.
///
/// A cycle *grows* when live bytes rose by at least `min_bytes` since the
/// previous cycle, or rose at all while live blocks rose by at least
/// `min_blocks`. A leak is `cycles` growing cycles in a row; any other cycle
/// starts the count again. The first `warmup` cycles are not judged: a
/// program filling its caches and pools after it starts is not leaking.
/// The defaults (5 cycles, 64 bytes, 1 block, no warm-up: memwatch's
/// behaviour) catch one leaked block per cycle and ignore a stray byte.
///
/// ```
/// memwatch_test::set_leak_rule(memwatch_test::LeakRule {
///     cycles: 8,
///     ..memwatch_test::LeakRule::default()
/// });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LeakRule {
    /// Consecutive growing cycles that make a leak (memwatch: 5).
    pub cycles: u32,
    /// Growth in bytes that makes a cycle grow by itself.
    pub min_bytes: u64,
    /// Growth in blocks that, with any growth in bytes, makes a cycle grow.
    pub min_blocks: u64,
    /// Cycles at the start that are not judged.
    pub warmup: u64,
}

impl LeakRule {
    /// memwatch's rule with this project's thresholds: 5 cycles, 64 bytes,
    /// 1 block.
    pub const DEFAULT: LeakRule = LeakRule {
        cycles: 5,
        min_bytes: 64,
        min_blocks: 1,
        warmup: 0,
    };
}

impl Default for LeakRule {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The heap grew over consecutive collection cycles: node-memwatch's `leak`
/// event.
///
/// ```
/// memwatch_test::on_leak(|leak: &memwatch_test::Leak| {
///     eprintln!("{}: {} bytes over cycles {}..={}",
///         leak.reason, leak.growth_bytes, leak.start_cycle, leak.end_cycle);
/// });
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Leak {
    /// When the cycle before the growth ended.
    #[serde(serialize_with = "rfc3339")]
    pub start: SystemTime,
    /// When the last growing cycle ended.
    #[serde(serialize_with = "rfc3339")]
    pub end: SystemTime,
    /// The cycle before the growth (its sample is the starting point).
    pub start_cycle: u64,
    /// The last growing cycle.
    pub end_cycle: u64,
    /// Growing cycles in the run: `end_cycle - start_cycle`.
    pub cycles: u32,
    /// Live bytes at `end_cycle` minus live bytes at `start_cycle`.
    pub growth_bytes: i64,
    /// Live blocks at `end_cycle` minus live blocks at `start_cycle`.
    pub growth_blocks: i64,
    /// `growth_bytes / cycles`.
    pub bytes_per_cycle: f64,
    /// `growth_blocks / cycles`.
    pub blocks_per_cycle: f64,
    /// Growth rate over wall-clock time, `None` when no time passed.
    pub bytes_per_hour: Option<f64>,
    /// memwatch's sentence, e.g. `heap growth over 5 consecutive
    /// collections (1.2s) - 4.00 kb/cycle, 11.67 mb/hr`. The hourly rate is
    /// left out when the cycles spanned less than a second.
    pub reason: String,
}

fn rfc3339<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_rfc3339_millis(*t))
}

#[derive(Debug, Clone, Copy)]
struct Point {
    cycle: u64,
    bytes: u64,
    blocks: u64,
    at: SystemTime,
}

/// Applies a [`LeakRule`] to the samples of successive cycles.
#[derive(Debug, Clone)]
pub(crate) struct Detector {
    rule: LeakRule,
    prev: Option<Point>,
    start: Option<Point>,
    run: u32,
    /// Samples seen since the rule was set.
    seen: u64,
}

impl Detector {
    pub(crate) const fn new(rule: LeakRule) -> Self {
        Detector {
            rule,
            prev: None,
            start: None,
            run: 0,
            seen: 0,
        }
    }

    pub(crate) fn set_rule(&mut self, rule: LeakRule) {
        self.rule = rule;
        self.run = 0;
        self.start = None;
        self.seen = 0;
    }

    fn grows(&self, prev: &Point, now: &Point) -> bool {
        let bytes = now.bytes as i128 - prev.bytes as i128;
        let blocks = now.blocks as i128 - prev.blocks as i128;
        bytes >= self.rule.min_bytes.max(1) as i128
            || (bytes > 0 && blocks >= self.rule.min_blocks.max(1) as i128)
    }

    /// Feeds the sample of `cycle`; returns a leak when this cycle completes
    /// a run of growing cycles. The count starts again after a leak.
    pub(crate) fn observe(
        &mut self,
        cycle: u64,
        bytes: u64,
        blocks: u64,
        at: SystemTime,
    ) -> Option<Leak> {
        let now = Point {
            cycle,
            bytes,
            blocks,
            at,
        };
        self.seen += 1;
        let prev = self.prev.replace(now)?;
        if self.seen <= self.rule.warmup {
            return None;
        }
        if !self.grows(&prev, &now) {
            self.run = 0;
            self.start = None;
            return None;
        }
        let start = *self.start.get_or_insert(prev);
        self.run += 1;
        if self.run < self.rule.cycles.max(1) {
            return None;
        }
        self.run = 0;
        self.start = None;
        Some(leak(&start, &now))
    }
}

fn leak(start: &Point, end: &Point) -> Leak {
    let cycles = (end.cycle - start.cycle) as u32;
    let growth_bytes = end.bytes as i64 - start.bytes as i64;
    let growth_blocks = end.blocks as i64 - start.blocks as i64;
    let elapsed = end.at.duration_since(start.at).unwrap_or(Duration::ZERO);
    let bytes_per_cycle = growth_bytes as f64 / cycles as f64;
    let bytes_per_hour =
        (!elapsed.is_zero()).then(|| growth_bytes as f64 / elapsed.as_secs_f64() * 3600.0);
    let mut reason = format!(
        "heap growth over {cycles} consecutive collections ({}) - {}/cycle",
        format_duration(elapsed),
        format_bytes_f64(bytes_per_cycle),
    );
    // A rate per hour extrapolated from less than a second is noise.
    if let Some(rate) = bytes_per_hour.filter(|_| elapsed >= Duration::from_secs(1)) {
        reason.push_str(&format!(", {}/hr", format_bytes_f64(rate)));
    }
    Leak {
        start: start.at,
        end: end.at,
        start_cycle: start.cycle,
        end_cycle: end.cycle,
        cycles,
        growth_bytes,
        growth_blocks,
        bytes_per_cycle,
        blocks_per_cycle: growth_blocks as f64 / cycles as f64,
        bytes_per_hour,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `(bytes, blocks)` per cycle, 300 ms apart; returns the cycles
    /// at which a leak fired, with the leaks.
    fn feed(rule: LeakRule, samples: &[(u64, u64)]) -> Vec<(u64, Leak)> {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut d = Detector::new(rule);
        samples
            .iter()
            .enumerate()
            .filter_map(|(i, &(bytes, blocks))| {
                let cycle = i as u64 + 1;
                let at = t0 + Duration::from_millis(300 * i as u64);
                d.observe(cycle, bytes, blocks, at).map(|l| (cycle, l))
            })
            .collect()
    }

    #[test]
    fn steady_growth_fires_after_exactly_five_growing_cycles() {
        let samples: Vec<_> = (0..6).map(|i| (10_000 + i * 4096, 100 + i)).collect();
        let fired = feed(LeakRule::default(), &samples[..5]);
        assert!(fired.is_empty(), "four growing cycles are not a leak");
        let fired = feed(LeakRule::default(), &samples);
        assert_eq!(fired.len(), 1);
        let (cycle, leak) = &fired[0];
        assert_eq!(*cycle, 6);
        assert_eq!((leak.start_cycle, leak.end_cycle, leak.cycles), (1, 6, 5));
        assert_eq!(leak.growth_bytes, 5 * 4096);
        assert_eq!(leak.growth_blocks, 5);
        assert_eq!(leak.bytes_per_cycle, 4096.0);
        assert_eq!(
            leak.reason,
            "heap growth over 5 consecutive collections (1.5s) - 4.00 kb/cycle, 46.88 mb/hr"
        );
    }

    #[test]
    fn the_count_restarts_after_a_leak() {
        let samples: Vec<_> = (0..11).map(|i| (i * 100, i)).collect();
        let cycles: Vec<u64> = feed(LeakRule::default(), &samples)
            .iter()
            .map(|(c, _)| *c)
            .collect();
        assert_eq!(cycles, vec![6, 11]);
    }

    #[test]
    fn one_block_per_cycle_is_growth() {
        let samples: Vec<_> = (0..6).map(|i| (1000 + i * 8, 10 + i)).collect();
        assert_eq!(feed(LeakRule::default(), &samples).len(), 1);
    }

    #[test]
    fn jitter_does_not_fire() {
        let samples: Vec<_> = (0..50)
            .map(|i| if i % 2 == 0 { (5000, 50) } else { (5200, 52) })
            .collect();
        assert!(feed(LeakRule::default(), &samples).is_empty());
        // Growth broken by a single dip is no leak either.
        let steps = [0, 1, 2, 3, 2, 5, 6, 7, 8, 7, 9];
        let samples: Vec<_> = steps.iter().map(|&s| (s * 1000, s)).collect();
        assert!(feed(LeakRule::default(), &samples).is_empty());
    }

    #[test]
    fn a_plateau_does_not_fire() {
        let samples: Vec<_> = (0..30).map(|i: u64| (1000 * i.min(4), i.min(4))).collect();
        assert!(feed(LeakRule::default(), &samples).is_empty());
    }

    #[test]
    fn a_stray_byte_is_not_growth() {
        let samples: Vec<_> = (0..20).map(|i| (1000 + i, 10)).collect();
        assert!(feed(LeakRule::default(), &samples).is_empty());
    }

    #[test]
    fn byte_growth_without_new_blocks_is_growth() {
        let samples: Vec<_> = (0..6).map(|i| (1000 + i * 512, 10)).collect();
        assert_eq!(feed(LeakRule::default(), &samples).len(), 1);
    }

    #[test]
    fn the_cycle_count_is_configurable() {
        let rule = LeakRule {
            cycles: 3,
            ..LeakRule::default()
        };
        let samples: Vec<_> = (0..4).map(|i| (i * 100, i)).collect();
        let fired = feed(rule, &samples);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].0, 4);
    }

    #[test]
    fn warm_up_cycles_are_not_judged() {
        let rule = LeakRule {
            warmup: 10,
            ..LeakRule::default()
        };
        // Ten cycles of filling, then a plateau: no leak.
        let fill: Vec<_> = (0..30u64).map(|i| (i.min(10) * 1000, i.min(10))).collect();
        assert!(feed(rule, &fill).is_empty());
        assert_eq!(
            feed(LeakRule::default(), &fill).len(),
            2,
            "memwatch's rule fires on a fill"
        );
        // Growth after the warm-up is judged as always.
        let leak: Vec<_> = (0..20u64).map(|i| (i * 100, i)).collect();
        let fired = feed(rule, &leak);
        // Samples 1-10 are the warm-up; 11-15 each grow over the one before.
        assert_eq!(fired[0].0, 15, "warm-up of 10, then 5 growing cycles");
    }

    #[test]
    fn no_elapsed_time_means_no_hourly_rate() {
        let mut d = Detector::new(LeakRule::default());
        let at = SystemTime::UNIX_EPOCH;
        let leak = (0..6u64)
            .find_map(|i| d.observe(i, i * 100, i, at))
            .unwrap();
        assert_eq!(leak.bytes_per_hour, None);
        assert_eq!(
            leak.reason,
            "heap growth over 5 consecutive collections (0µs) - 100 bytes/cycle"
        );
    }

    #[test]
    fn a_span_under_a_second_gives_no_hourly_rate_in_the_reason() {
        let t0 = SystemTime::UNIX_EPOCH;
        let mut d = Detector::new(LeakRule::default());
        let leak = (0..6u64)
            .find_map(|i| d.observe(i, i * 100, i, t0 + Duration::from_micros(150 * i)))
            .unwrap();
        assert!(leak.bytes_per_hour.unwrap() > 0.0);
        assert_eq!(
            leak.reason,
            "heap growth over 5 consecutive collections (750µs) - 100 bytes/cycle"
        );
    }

    #[test]
    fn a_leak_serializes_with_dates() {
        let samples: Vec<_> = (0..6).map(|i| (i * 100, i)).collect();
        let (_, leak) = feed(LeakRule::default(), &samples).remove(0);
        let json = serde_json::to_value(&leak).unwrap();
        assert_eq!(json["start"], "2023-11-14T22:13:20.000Z");
        assert_eq!(json["growth_bytes"], 500);
        assert_eq!(json["cycles"], 5);
    }
}
