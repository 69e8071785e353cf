//! Heap figures: the raw counts at any moment, and memwatch's statistics
//! after each collection cycle.

use serde::Serialize;

use crate::allocator;

/// Number of samples over which `estimated_base` warms up before it becomes
/// an exponential moving average (memwatch's `RECENT_PERIOD`).
const RECENT_PERIOD: u64 = 10;
/// Same for the long-term base that `usage_trend` compares against
/// (memwatch's `ANCIENT_PERIOD`).
const ANCIENT_PERIOD: u64 = 120;
/// `min` and `max` ignore the first samples, as memwatch does, to let initial
/// instability settle.
const SETTLE_SAMPLES: u64 = 2;

/// The heap as counted right now, summed over all threads.
///
/// Exact at a quiet point (no thread in the middle of an allocation). Only
/// blocks allocated through [`Alloc`](crate::Alloc) are counted; without it
/// installed every figure is zero.
///
/// ```
/// #[global_allocator]
/// static ALLOC: memwatch_test::Alloc = memwatch_test::Alloc::system();
///
/// fn main() {
///     let before = memwatch_test::counts();
///     let v: Vec<u64> = Vec::with_capacity(4);
///     let after = memwatch_test::counts();
///     assert_eq!(after.live_bytes - before.live_bytes, 32);
///     assert_eq!(after.allocations - before.allocations, 1);
///     drop(v);
/// }
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Counts {
    /// Bytes in live blocks, as the program asked for them.
    pub live_bytes: u64,
    /// Live blocks.
    pub live_blocks: u64,
    /// Blocks allocated since the start (a realloc is not a new block).
    pub allocations: u64,
    /// Blocks freed since the start.
    pub frees: u64,
    /// Bytes allocated since the start, growth by realloc included.
    pub bytes_allocated: u64,
    /// Bytes freed since the start, shrinking by realloc included.
    pub bytes_freed: u64,
}

/// Reads the current [`Counts`] without running a collection cycle.
///
/// ```
/// let counts = memwatch_test::counts();
/// assert!(counts.allocations >= counts.frees);
/// ```
pub fn counts() -> Counts {
    let t = allocator::totals();
    Counts {
        live_bytes: t.live_bytes.max(0) as u64,
        live_blocks: t.live_blocks.max(0) as u64,
        allocations: t.allocations,
        frees: t.frees,
        bytes_allocated: t.bytes_allocated,
        bytes_freed: t.bytes_freed,
    }
}

/// Whether the counting allocator is installed: true once any block has been
/// counted. Without [`Alloc`](crate::Alloc) as the global allocator every
/// figure memwatch reports is zero.
///
/// ```
/// #[global_allocator]
/// static ALLOC: memwatch_test::Alloc = memwatch_test::Alloc::system();
///
/// fn main() {
///     let _ = vec![1u8];
///     assert!(memwatch_test::is_counting());
/// }
/// ```
pub fn is_counting() -> bool {
    allocator::counting()
}

/// Heap statistics after a collection cycle, node-memwatch's `stats` event.
///
/// Bytes are 64-bit and averages `f64`, so a heap over 4 GiB, a shrinking
/// heap (negative `usage_trend`) and the first samples are all reported
/// right, unlike the original.
///
/// ```
/// let stats = memwatch_test::gc();
/// assert!(stats.num_cycles >= 1);
/// println!("{}", serde_json::to_string(&stats).unwrap());
/// ```
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// Collection cycles so far (memwatch's `num_full_gc`).
    pub num_cycles: u64,
    /// Live bytes right after this cycle.
    pub current_base: u64,
    /// A smoothed base: the mean of the samples over the first ten cycles,
    /// then an exponential moving average with weight 1/10.
    pub estimated_base: f64,
    /// How far `estimated_base` stands above (or, negative, below) the
    /// long-term base (mean of the first 120 samples, then an exponential
    /// moving average with weight 1/120), in percent with one decimal.
    pub usage_trend: f64,
    /// Least `current_base` seen, from the third cycle on (`None` before).
    pub min: Option<u64>,
    /// Greatest `current_base` seen, from the third cycle on (`None` before).
    pub max: Option<u64>,
    /// Live blocks right after this cycle.
    pub live_blocks: u64,
    /// Blocks allocated since the start.
    pub allocations: u64,
    /// Blocks freed since the start.
    pub frees: u64,
    /// Bytes allocated since the start.
    pub bytes_allocated: u64,
    /// Highest live bytes within this cycle: exact when one thread
    /// allocated in it, otherwise an upper bound.
    pub cycle_peak: u64,
    /// Highest `cycle_peak` so far.
    pub peak: u64,
}

/// Turns samples into [`Stats`] with memwatch's formulas, fixed.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StatsTracker {
    samples: u64,
    recent: f64,
    ancient: f64,
    min: Option<u64>,
    max: Option<u64>,
    peak: u64,
}

/// A running mean over the first `period` samples, then an exponential
/// moving average with weight `1 / period`.
fn smooth(average: f64, value: f64, samples: u64, period: u64) -> f64 {
    let weight = samples.min(period) as f64;
    (average * (weight - 1.0) + value) / weight
}

impl StatsTracker {
    pub(crate) const fn new() -> Self {
        StatsTracker {
            samples: 0,
            recent: 0.0,
            ancient: 0.0,
            min: None,
            max: None,
            peak: 0,
        }
    }

    /// Records the sample taken right after a cycle. `cycle_peak` is the
    /// highest live-bytes figure within the cycle.
    pub(crate) fn record(&mut self, sample: &Counts, cycle_peak: u64) -> Stats {
        self.samples += 1;
        let n = self.samples;
        let current = sample.live_bytes;
        self.recent = smooth(self.recent, current as f64, n, RECENT_PERIOD);
        self.ancient = smooth(self.ancient, current as f64, n, ANCIENT_PERIOD);
        if n > SETTLE_SAMPLES {
            self.min = Some(self.min.map_or(current, |m| m.min(current)));
            self.max = Some(self.max.map_or(current, |m| m.max(current)));
        }
        let cycle_peak = cycle_peak.max(current);
        self.peak = self.peak.max(cycle_peak);
        let usage_trend = if self.ancient > 0.0 {
            ((self.recent - self.ancient) / self.ancient * 1000.0).round() / 10.0
        } else {
            0.0
        };
        Stats {
            num_cycles: n,
            current_base: current,
            estimated_base: self.recent,
            usage_trend,
            min: self.min,
            max: self.max,
            live_blocks: sample.live_blocks,
            allocations: sample.allocations,
            frees: sample.frees,
            bytes_allocated: sample.bytes_allocated,
            cycle_peak,
            peak: self.peak,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(bytes: u64) -> Counts {
        Counts {
            live_bytes: bytes,
            ..Counts::default()
        }
    }

    fn run(values: &[u64]) -> Vec<Stats> {
        let mut t = StatsTracker::new();
        values.iter().map(|&v| t.record(&sample(v), v)).collect()
    }

    #[test]
    fn estimated_base_is_a_mean_over_the_first_ten_cycles() {
        let values: Vec<u64> = (1..=10).map(|i| i * 100).collect();
        let stats = run(&values);
        for (i, s) in stats.iter().enumerate() {
            let n = i as f64 + 1.0;
            let mean = 100.0 * (n + 1.0) / 2.0;
            assert!((s.estimated_base - mean).abs() < 1e-9, "cycle {n}: {s:?}");
            assert_eq!(s.num_cycles, i as u64 + 1);
        }
        // memwatch's integer-division bug made estimated_base equal
        // current_base during warm-up: not so here.
        assert_ne!(stats[4].estimated_base, stats[4].current_base as f64);
    }

    #[test]
    fn estimated_base_becomes_an_ema_after_ten_cycles() {
        let mut values = vec![1000u64; 10];
        values.push(2000);
        let stats = run(&values);
        assert_eq!(stats[9].estimated_base, 1000.0);
        assert!((stats[10].estimated_base - 1100.0).abs() < 1e-9);
    }

    #[test]
    fn a_shrinking_heap_has_a_negative_trend() {
        let values: Vec<u64> = (0..20).map(|i| 1_000_000 - i * 40_000).collect();
        let last = *run(&values).last().unwrap();
        assert!(last.usage_trend < 0.0, "{last:?}");
        assert!(last.usage_trend > -100.0, "{last:?}");
    }

    #[test]
    fn a_growing_heap_has_a_positive_trend_with_one_decimal() {
        let values: Vec<u64> = (1..=30).map(|i| i * 1000).collect();
        let last = *run(&values).last().unwrap();
        assert!(last.usage_trend > 0.0);
        assert_eq!((last.usage_trend * 10.0).round(), last.usage_trend * 10.0);
    }

    #[test]
    fn a_heap_over_4_gib_is_exact() {
        let big = 6 * 1024 * 1024 * 1024u64 + 7;
        let stats = run(&[big; 15]);
        let last = stats.last().unwrap();
        assert_eq!(last.current_base, big);
        assert_eq!(last.estimated_base, big as f64);
        assert_eq!(last.min, Some(big));
        assert_eq!(last.max, Some(big));
        assert_eq!(last.usage_trend, 0.0);
    }

    #[test]
    fn min_and_max_start_at_the_third_cycle() {
        let stats = run(&[10, 5000, 300, 200, 400]);
        assert_eq!((stats[0].min, stats[1].max), (None, None));
        assert_eq!((stats[2].min, stats[2].max), (Some(300), Some(300)));
        assert_eq!((stats[4].min, stats[4].max), (Some(200), Some(400)));
    }

    #[test]
    fn peak_keeps_the_highest_cycle_peak() {
        let mut t = StatsTracker::new();
        assert_eq!(t.record(&sample(100), 900).peak, 900);
        let s = t.record(&sample(100), 50);
        assert_eq!((s.cycle_peak, s.peak), (100, 900));
    }
}
