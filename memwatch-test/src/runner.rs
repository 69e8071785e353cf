//! Runs one leak test: warm-up, rounds of measured iterations each followed
//! by a collection cycle, and the verdict.
//!
//! # The rule
//!
//! After `warmup` iterations, the body runs in up to [`ROUNDS`] rounds: the
//! first of `iterations` iterations, each next one as long as everything run
//! before it, so that the total doubles. The *level* at the end of a stretch
//! of cycles is the least live bytes and the least live blocks over its last
//! few cycles (a quarter of it, one to three cycles), which jitter cannot
//! lift. A round *grows* when its level rose over the previous level (the
//! warm-up's, or the previous round's) by at least `threshold_bytes`, or rose
//! at all while live blocks rose by at least `threshold_blocks`.
//!
//! - A round that does not grow ends the test: **clean**. One-time
//!   initialisation happens in the warm-up, and amortised growth or a cache
//!   filling to its bound stops growing within the doubling rounds.
//! - Growth in every round is a **leak**: the heap kept growing however long
//!   the test ran. Because each round doubles the run, a leak that grows in
//!   steps (a queue that doubles its buffer) steps up in every round too.
//! - An async body that leaves a spawned task pending after the runtime has
//!   run out of work is a **leak** of that task, reported as such.
//! - A body that panics gives no verdict: the test fails and says so.
//!
//! memwatch's own rule (growth over 5 consecutive cycles) is applied to the
//! measured cycles too; when it fires its event is part of the report.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::allocator::untracked;
use crate::cycle::{gc, on_collect, survivors, CycleSurvivors};
use crate::detector::{Detector, Leak, LeakRule};
use crate::diff::{Diff, HeapDiff};
use crate::registry::{Body, LeakTest};
use crate::resources::{resources, Resources};
use crate::sites::{self, SiteReport};
use crate::stats::Stats;

/// Rounds of measured iterations before growth is called a leak.
pub(crate) const ROUNDS: usize = 3;

/// Which part of the run a cycle belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Phase {
    Warmup,
    Measured,
}

/// One collection cycle of the run.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CycleRecord {
    pub phase: Phase,
    /// 1-based, counting warm-up iterations.
    pub iteration: u32,
    /// 1-based round, 0 for warm-up.
    pub round: u32,
    pub stats: Stats,
}

/// Live bytes and blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Level {
    pub bytes: u64,
    pub blocks: u64,
}

/// One round of measured iterations.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Round {
    /// Iterations `first..=last` (1-based, counting warm-up).
    pub first: u32,
    pub last: u32,
    pub level_before: Level,
    pub level_after: Level,
    /// Live memory grew over the round.
    pub grew: bool,
    /// Threads and open descriptors at the round's end (`None`: not
    /// watched, or not supported here).
    pub resources: Option<Resources>,
    pub threads_grew: bool,
    pub fds_grew: bool,
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub(crate) enum Verdict {
    Clean,
    Leak,
    /// Tasks spawned by an async body still pending after an iteration.
    TaskLeak {
        pending: usize,
        iteration: u32,
    },
    /// Threads of the process grew in every round.
    ThreadLeak {
        per_iteration: f64,
    },
    /// Open file descriptors grew in every round.
    FdLeak {
        per_iteration: f64,
    },
    Panicked {
        iteration: u32,
        message: String,
    },
}

impl Verdict {
    /// The verdict's one-word name.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Verdict::Clean => "clean",
            Verdict::Leak => "leak",
            Verdict::TaskLeak { .. } => "task leak",
            Verdict::ThreadLeak { .. } => "thread leak",
            Verdict::FdLeak { .. } => "fd leak",
            Verdict::Panicked { .. } => "panicked",
        }
    }
}

/// Everything a run found.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub verdict: Verdict,
    pub cycles: Vec<CycleRecord>,
    pub rounds: Vec<Round>,
    /// memwatch's 5-cycle rule over the measured cycles, if it fired.
    pub memwatch_leak: Option<Leak>,
    /// The heap diff over the last round (the steady state: for a clean
    /// test the round that did not grow), and the iterations it spans.
    pub diff: Option<(Diff, Round)>,
    /// Survivors of the measured cycles at the end of the run.
    pub survivors: Vec<CycleSurvivors>,
    pub duration: Duration,
    /// Live heap right before the first measured iteration.
    pub start: Level,
    /// The collection cycle closed before the first iteration: iteration
    /// `k` ends with cycle `baseline_cycle + k`.
    pub baseline_cycle: u64,
    /// Where the survivors were allocated, when a capture run was made.
    pub sites: Option<SiteReport>,
    /// The DHAT viewer file of the capture run, when one was written.
    pub dhat_file: Option<std::path::PathBuf>,
}

impl Outcome {
    /// Growth per measured iteration: live bytes and blocks after the last
    /// cycle minus those before the first measured iteration, divided by the
    /// measured iterations.
    pub(crate) fn growth_per_iteration(&self) -> (f64, f64) {
        let measured = self
            .cycles
            .iter()
            .filter(|c| c.phase == Phase::Measured)
            .count();
        let Some(last) = self.cycles.last() else {
            return (0.0, 0.0);
        };
        if measured == 0 {
            return (0.0, 0.0);
        }
        let before = &self.start;
        let n = measured as f64;
        let bytes = last.stats.current_base as f64 - before.bytes as f64;
        let blocks = last.stats.live_blocks as f64 - before.blocks as f64;
        (bytes / n, blocks / n)
    }

    /// Measured iterations run (records may have been thinned).
    pub(crate) fn measured_iterations(&self) -> u32 {
        let warmup = self
            .cycles
            .iter()
            .filter(|c| c.phase == Phase::Warmup)
            .count() as u32;
        self.iterations_run().saturating_sub(warmup)
    }

    pub(crate) fn iterations_run(&self) -> u32 {
        self.cycles.last().map_or(0, |c| c.iteration)
    }
}

/// Runs a test body once per iteration.
enum Executor {
    Sync(fn()),
    #[cfg(feature = "tokio")]
    Async(crate::registry::AsyncBody, tokio::runtime::Runtime),
}

impl Executor {
    fn new(body: Body) -> Self {
        match body {
            Body::Sync(f) => Executor::Sync(f),
            #[cfg(feature = "tokio")]
            Body::Async(f) => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("memwatch: could not build a tokio runtime for the test");
                Executor::Async(f, rt)
            }
            #[cfg(not(feature = "tokio"))]
            Body::Async(_) => unreachable!("async leak tests need the `tokio` feature"),
        }
    }

    /// One iteration; `Ok(n)` with the tasks still pending after it.
    fn iterate(&mut self) -> Result<usize, String> {
        let result = catch_unwind(AssertUnwindSafe(|| match self {
            Executor::Sync(f) => {
                f();
                0
            }
            #[cfg(feature = "tokio")]
            Executor::Async(f, rt) => {
                rt.block_on(f());
                settle(rt)
            }
        }));
        result.map_err(|payload| {
            payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(a panic without a message)".to_owned())
        })
    }
}

/// Runs the runtime until the tasks the body spawned have finished, or
/// until it is plain they will not (about 200 ms without progress). Returns
/// the tasks still alive.
#[cfg(feature = "tokio")]
fn settle(rt: &tokio::runtime::Runtime) -> usize {
    let metrics = rt.metrics();
    for attempt in 0..400 {
        if metrics.num_alive_tasks() == 0 {
            return 0;
        }
        rt.block_on(tokio::task::yield_now());
        if attempt >= 200 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    metrics.num_alive_tasks()
}

/// Records kept per round: a soak test may run millions of cycles.
const MAX_ROUND_RECORDS: usize = 1024;

/// When the records of `round` pass [`MAX_ROUND_RECORDS`], drops every
/// other one of them but the last few (the level is read from those).
fn thin(cycles: &mut Vec<CycleRecord>, round: u32) {
    let first = cycles.iter().position(|c| c.round == round).unwrap_or(0);
    if round == 0 || cycles.len() - first <= MAX_ROUND_RECORDS {
        return;
    }
    let (n, mut i) = (cycles.len(), 0);
    cycles.retain(|_| {
        let keep = i < first || i + 3 >= n || (i - first) % 2 == 0;
        i += 1;
        keep
    });
}

/// The level over the last quarter (1 to 3 cycles) of `cycles`.
fn level(cycles: &[CycleRecord]) -> Level {
    let q = (cycles.len() / 4).clamp(1, 3).min(cycles.len());
    let tail = &cycles[cycles.len() - q..];
    Level {
        bytes: tail.iter().map(|c| c.stats.current_base).min().unwrap_or(0),
        blocks: tail.iter().map(|c| c.stats.live_blocks).min().unwrap_or(0),
    }
}

fn grew(before: Level, after: Level, threshold_bytes: u64, threshold_blocks: u64) -> bool {
    let bytes = after.bytes as i128 - before.bytes as i128;
    let blocks = after.blocks as i128 - before.blocks as i128;
    bytes >= threshold_bytes.max(1) as i128
        || (bytes > 0 && blocks >= threshold_blocks.max(1) as i128)
}

/// Runs `test` to its verdict.
pub(crate) fn run(test: &LeakTest) -> Outcome {
    let opts = test.options;
    let started = Instant::now();
    let registration = opts.collect.map(on_collect);
    let mut exec = Executor::new(test.body);
    let mut cycles: Vec<CycleRecord> = Vec::new();
    let mut rounds: Vec<Round> = Vec::new();
    let mut detector = Detector::new(LeakRule {
        cycles: 5,
        min_bytes: opts.threshold_bytes,
        min_blocks: opts.threshold_blocks,
        warmup: 0,
    });
    let mut memwatch_leak = None;
    let mut diff = None;
    let mut verdict = None;

    // Close the cycle of whatever ran before this test.
    let baseline = gc();
    let mut iteration = 0u32;
    let mut step =
        |exec: &mut Executor, phase: Phase, round: u32, cycles: &mut Vec<CycleRecord>| {
            iteration += 1;
            let pending = exec.iterate();
            let stats = gc();
            untracked(|| {
                cycles.push(CycleRecord {
                    phase,
                    iteration,
                    round,
                    stats,
                });
                thin(cycles, round);
            });
            match pending {
                Err(message) => Some(Verdict::Panicked { iteration, message }),
                Ok(0) => None,
                Ok(pending) => Some(Verdict::TaskLeak { pending, iteration }),
            }
        };

    for _ in 0..opts.warmup {
        if let Some(v) = step(&mut exec, Phase::Warmup, 0, &mut cycles) {
            verdict = Some(v);
            break;
        }
    }
    let mut previous = if cycles.is_empty() {
        Level {
            bytes: baseline.current_base,
            blocks: baseline.live_blocks,
        }
    } else {
        level(&cycles)
    };
    let start_level = match cycles.last() {
        Some(c) => Level {
            bytes: c.stats.current_base,
            blocks: c.stats.live_blocks,
        },
        None => Level {
            bytes: baseline.current_base,
            blocks: baseline.live_blocks,
        },
    };
    let mut total = opts.warmup;
    let watch = |opts: &crate::registry::Options| if opts.resources { resources() } else { None };
    let mut previous_resources = watch(&opts);
    let first_resources = previous_resources;
    'rounds: for r in 0..ROUNDS {
        if verdict.is_some() {
            break;
        }
        let len = if r == 0 {
            opts.iterations
        } else {
            total.max(1)
        };
        let start = cycles.len();
        let hd = HeapDiff::new();
        // A soak test's rounds last 1/7, 2/7 and 4/7 of its duration.
        let until = opts
            .duration
            .map(|d| Instant::now() + d.mul_f64((1u32 << r) as f64 / 7.0));
        let mut done = 0u32;
        loop {
            let more = match until {
                Some(t) => done < 2 || Instant::now() < t,
                None => done < len,
            };
            if !more {
                break;
            }
            done += 1;
            if let Some(v) = step(&mut exec, Phase::Measured, r as u32 + 1, &mut cycles) {
                verdict = Some(v);
                break 'rounds;
            }
            let c = &cycles[cycles.len() - 1];
            // The event's text is the harness's own memory: not counted.
            untracked(|| {
                if let Some(leak) = detector.observe(
                    c.stats.num_cycles,
                    c.stats.current_base,
                    c.stats.live_blocks,
                    SystemTime::now(),
                ) {
                    memwatch_leak.get_or_insert(leak);
                }
            });
        }
        let round_diff = hd.end();
        total += done;
        let after = level(&cycles[start..]);
        let round_grew = grew(previous, after, opts.threshold_bytes, opts.threshold_blocks);
        let now = watch(&opts);
        let (threads_grew, fds_grew) = match (previous_resources, now) {
            (Some(a), Some(b)) => (b.threads > a.threads, b.open_fds > a.open_fds),
            _ => (false, false),
        };
        previous_resources = now;
        let round = Round {
            first: cycles[start].iteration,
            last: cycles[cycles.len() - 1].iteration,
            level_before: previous,
            level_after: after,
            grew: round_grew,
            resources: now,
            threads_grew,
            fds_grew,
        };
        untracked(|| {
            rounds.push(round.clone());
            diff = Some((round_diff, round));
        });
        previous = after;
        // A soak test runs its whole duration; a counted one stops at the
        // first round that grew in nothing.
        if !round_grew && !threads_grew && !fds_grew && opts.duration.is_none() {
            verdict = Some(Verdict::Clean);
            break;
        }
    }
    let verdict = verdict.unwrap_or_else(|| {
        // Every round grew in something: whatever grew in all of them leaks.
        let all = |f: fn(&Round) -> bool| rounds.len() == ROUNDS && rounds.iter().all(f);
        let measured = rounds
            .iter()
            .map(|r| (r.last - r.first + 1) as f64)
            .sum::<f64>();
        let last = rounds.last().and_then(|r| r.resources);
        let rate = |f: fn(&Resources) -> u64| match (first_resources, last) {
            (Some(a), Some(b)) => (f(&b) as f64 - f(&a) as f64) / measured,
            _ => 0.0,
        };
        if all(|r| r.threads_grew) {
            Verdict::ThreadLeak {
                per_iteration: rate(|r| r.threads),
            }
        } else if all(|r| r.fds_grew) {
            Verdict::FdLeak {
                per_iteration: rate(|r| r.open_fds),
            }
        } else if all(|r| r.grew) {
            Verdict::Leak
        } else {
            Verdict::Clean
        }
    });
    if let Some(reg) = registration {
        let _ = reg.remove();
    }

    // With tokio, the runtime goes before the survivors are read.
    #[allow(clippy::drop_non_drop)]
    drop(exec);
    let first_measured = cycles
        .iter()
        .find(|c| c.phase == Phase::Measured)
        .map(|c| c.stats.num_cycles);
    let survivors = match first_measured {
        Some(first) => survivors()
            .into_iter()
            .filter(|s| s.cycle >= first)
            .collect(),
        None => Vec::new(),
    };
    Outcome {
        verdict,
        cycles,
        rounds,
        memwatch_leak,
        diff,
        survivors,
        duration: started.elapsed(),
        start: start_level,
        baseline_cycle: baseline.num_cycles,
        sites: None,
        dhat_file: None,
    }
}

/// What a capture run records.
#[derive(Debug, Clone, Default)]
pub(crate) struct Capture<'a> {
    /// Allocation sites of the survivors.
    pub sites: bool,
    /// A DHAT viewer file of the window, written here.
    pub dhat: Option<&'a std::path::Path>,
}

/// Runs `test` again (warm-up, then `iterations` measured iterations) with
/// allocation sites and/or a DHAT profile captured over the measured window
/// only; plain runs never pay for stacks. Returns the sites still live at
/// the end, when asked for.
pub(crate) fn capture(test: &LeakTest, what: &Capture<'_>) -> Result<Option<SiteReport>, String> {
    let opts = test.options;
    let registration = opts.collect.map(on_collect);
    let mut exec = Executor::new(test.body);
    let result = (|| {
        gc();
        for _ in 0..opts.warmup {
            exec.iterate()?;
            gc();
        }
        let profiler = what.dhat.map(|path| {
            dhat::Profiler::builder()
                .file_name(path)
                .trim_backtraces(Some(16))
                .build()
        });
        if profiler.is_some() {
            crate::allocator::begin_dhat();
        }
        if what.sites {
            crate::allocator::begin_capture();
        }
        let window = (|| {
            for _ in 0..opts.iterations {
                exec.iterate()?;
                gc();
            }
            Ok::<(), String>(())
        })();
        crate::allocator::end_capture();
        crate::allocator::end_dhat();
        // Writes the DHAT file.
        drop(profiler);
        window
    })();
    if let Some(reg) = registration {
        let _ = reg.remove();
    }
    result?;
    let sites = what.sites.then(|| {
        let (raw, lost) = untracked(crate::allocator::live_sites);
        sites::report(raw, lost, opts.iterations)
    });
    #[allow(clippy::drop_non_drop)]
    drop(exec);
    Ok(sites)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(bytes: u64, blocks: u64) -> CycleRecord {
        CycleRecord {
            phase: Phase::Measured,
            iteration: 0,
            round: 1,
            stats: Stats {
                current_base: bytes,
                live_blocks: blocks,
                ..Stats::default()
            },
        }
    }

    #[test]
    fn the_level_is_the_least_of_the_last_quarter() {
        let cycles: Vec<_> = [100, 300, 200, 500, 400, 900, 800, 600, 700, 650, 640, 660]
            .iter()
            .map(|&b| record(b, b / 100))
            .collect();
        assert_eq!(
            level(&cycles),
            Level {
                bytes: 640,
                blocks: 6
            }
        );
        assert_eq!(level(&cycles[..1]).bytes, 100);
    }

    #[test]
    fn growth_needs_the_thresholds() {
        let l = |bytes, blocks| Level { bytes, blocks };
        assert!(grew(l(1000, 10), l(1008, 11), 64, 1), "one block");
        assert!(grew(l(1000, 10), l(1064, 10), 64, 1), "bytes alone");
        assert!(!grew(l(1000, 10), l(1010, 10), 64, 1), "a few bytes");
        assert!(
            !grew(l(1000, 10), l(990, 12), 64, 1),
            "more blocks, fewer bytes"
        );
        assert!(
            !grew(l(1000, 10), l(1008, 11), 64, 2),
            "under the block threshold"
        );
    }
}
