//! Runs one leak test: warm-up, then measured iterations each followed by
//! a collection cycle, in rounds that double the run, until the decision
//! ([`crate::decision`]) calls it clean or a leak.
//!
//! The runner records; it does not judge. After every measured iteration
//! it keeps the live heap; at the start of the first round and at each
//! checkpoint the process's threads and descriptors; at each checkpoint the
//! survivors of the measured iterations and the heap diff of the round.
//! Then it asks [`decide`] and runs the next round only when told to, while
//! the budget lasts: `max_iterations`, `time_limit` (no round starts that
//! would, at the pace so far, end past it) and [`MAX_GROWTH_BYTES`].
//!
//! A soak test (`duration`) runs three rounds of 1/7, 2/7 and 4/7 of its
//! duration and is decided once, at the end. An async body that leaves a
//! task pending with nothing left to run is a task leak; a body that panics
//! gives no verdict.
//!
//! memwatch's own rule (growth over 5 consecutive cycles) is applied to the
//! measured cycles too; when it fires its event is part of the report.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::allocator::untracked;
use crate::cycle::{gc, on_collect, survivors, CycleSurvivors};
use crate::decision::{
    decide, Call, Checkpoint, Exhausted, Judgement, Level, Round, Sample, Schedule, Survivor,
    Thresholds, Trace, MAX_GROWTH_BYTES,
};
use crate::detector::{Detector, Leak, LeakRule};
use crate::diff::{Diff, HeapDiff};
use crate::registry::{Body, LeakTest};
use crate::resources::resources;
use crate::sites::{self, SiteReport};
use crate::stats::Stats;

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

pub(crate) use memwatch_report::report::Verdict;

/// Everything a run found.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub verdict: Verdict,
    pub cycles: Vec<CycleRecord>,
    /// What the decision read: the heap after each measured iteration,
    /// the checkpoints, the survivors at the last one.
    pub trace: Trace,
    /// The last decision, and why (`None` when the body panicked or left a
    /// task pending before the first checkpoint).
    pub judgement: Option<Judgement>,
    /// memwatch's 5-cycle rule over the measured cycles, if it fired.
    pub memwatch_leak: Option<Leak>,
    /// The heap diff over the last round (the steady state: for a clean
    /// test the round that did not grow), and the round.
    pub diff: Option<(Diff, Round)>,
    /// Survivors of the measured cycles at the end of the run.
    pub survivors: Vec<CycleSurvivors>,
    pub duration: Duration,
    /// Time spent past the first checkpoint, because the evidence there was
    /// ambiguous.
    pub extended: Duration,
    /// Live bytes and blocks just before the first measured iteration.
    pub start: Level,
    /// The collection cycle before the test's first iteration: iteration
    /// `k` ends cycle `baseline_cycle + k`.
    pub baseline_cycle: u64,
    /// Where the survivors were allocated, when a capture run was made.
    pub sites: Option<SiteReport>,
    /// The DHAT viewer file of the capture run, when one was written.
    pub dhat_file: Option<std::path::PathBuf>,
    /// Why sites were asked for and there are none (the scan process
    /// failed).
    pub sites_error: Option<String>,
}

impl Outcome {
    /// The rounds the last decision judged.
    pub(crate) fn rounds(&self) -> &[Round] {
        self.judgement.as_ref().map_or(&[], |j| &j.rounds)
    }

    /// Growth per measured iteration: live bytes and blocks after the last
    /// cycle minus those before the first measured iteration, divided by the
    /// measured iterations.
    pub(crate) fn growth_per_iteration(&self) -> (f64, f64) {
        let measured = self.measured_iterations();
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
        let body = AssertUnwindSafe(|| match self {
            Executor::Sync(f) => {
                f();
                0
            }
            #[cfg(feature = "tokio")]
            Executor::Async(f, rt) => {
                rt.block_on(f());
                settle(rt)
            }
        });
        let result = crate::allocator::with_stack_end(|| catch_unwind(body));
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
/// Samples kept for the decision; past this, every other older one goes.
const MAX_SAMPLES: usize = 4096;

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

/// Keeps a soak test's samples within [`MAX_SAMPLES`], evenly spread over
/// the run: only the multiples of a stride stay (the stride doubles as
/// needed), with every checkpoint and the latest few samples.
fn thin_samples(samples: &mut Vec<Sample>, stride: &mut u32, checkpoints: &[Checkpoint]) {
    if samples.len() <= MAX_SAMPLES {
        return;
    }
    let n = samples.len();
    let keep = |i: usize, s: &Sample, stride: u32| {
        i + 3 >= n
            || s.iteration % stride == 0
            || checkpoints.iter().any(|c| c.iteration == s.iteration)
    };
    while samples
        .iter()
        .enumerate()
        .filter(|(i, s)| keep(*i, s, *stride))
        .count()
        > MAX_SAMPLES / 2
    {
        *stride *= 2;
    }
    let mut i = 0;
    samples.retain(|s| {
        let kept = keep(i, s, *stride);
        i += 1;
        kept
    });
}

/// How the rounds of a run end: at counted checkpoints, or by time.
enum Rounds {
    Counted(Schedule),
    /// A soak test: the instants its three rounds end at.
    Timed(Vec<Instant>),
}

/// Runs `test` to its verdict.
pub(crate) fn run(test: &LeakTest) -> Outcome {
    let opts = test.options;
    let started = Instant::now();
    // Blocks of the test are stamped with their iteration until its
    // survivors are read.
    let window = crate::allocator::Window::open();
    let registration = opts.collect.map(on_collect);
    let mut exec = Executor::new(test.body);
    let mut cycles: Vec<CycleRecord> = Vec::new();
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
    let start = match cycles.last() {
        Some(c) => Level {
            bytes: c.stats.current_base,
            blocks: c.stats.live_blocks,
        },
        None => Level {
            bytes: baseline.current_base,
            blocks: baseline.live_blocks,
        },
    };
    let watch = || if opts.resources { resources() } else { None };
    let mut rounds = match opts.duration {
        Some(d) => {
            let now = Instant::now();
            Rounds::Timed([1, 3, 7].map(|k| now + d.mul_f64(k as f64 / 7.0)).to_vec())
        }
        None => Rounds::Counted(Schedule {
            iterations: opts.iterations,
            max_iterations: opts.max_iterations,
        }),
    };
    let first_round_after = match &rounds {
        Rounds::Counted(s) => s.first_round_after(),
        Rounds::Timed(_) => 0,
    };
    let mut trace = untracked(|| Trace {
        start,
        samples: Vec::with_capacity(opts.iterations as usize * 2),
        first_round_after,
        first_resources: None,
        checkpoints: Vec::new(),
        survivors: Vec::new(),
        thresholds: Thresholds {
            bytes: opts.threshold_bytes,
            blocks: opts.threshold_blocks,
        },
        exhausted: None,
    });
    let mut round_diff = None;
    if first_round_after == 0 {
        trace.first_resources = watch();
        round_diff = Some(HeapDiff::new());
    }
    let mut judgement: Option<Judgement> = None;
    let mut first_checkpoint_at = None;
    let mut next = match &rounds {
        Rounds::Counted(s) => s.first(),
        Rounds::Timed(_) => u32::MAX,
    };
    let measuring = Instant::now();
    let mut measured = 0u32;
    let mut first_measured_cycle = 0u64;
    let mut stride = 1u32;
    let mut round_started = 0u32;
    while verdict.is_none() {
        let round = trace.checkpoints.len() as u32 + 1;
        if let Some(v) = step(&mut exec, Phase::Measured, round, &mut cycles) {
            verdict = Some(v);
            break;
        }
        measured += 1;
        let c = &cycles[cycles.len() - 1];
        let (bytes, blocks, cycle) = (
            c.stats.current_base,
            c.stats.live_blocks,
            c.stats.num_cycles,
        );
        if measured == 1 {
            first_measured_cycle = cycle;
        }
        // The harness's own records and the event's text: not counted.
        untracked(|| {
            trace.samples.push(Sample {
                iteration: measured,
                bytes,
                blocks,
            });
            if matches!(rounds, Rounds::Timed(_)) {
                thin_samples(&mut trace.samples, &mut stride, &trace.checkpoints);
            }
            if let Some(leak) = detector.observe(cycle, bytes, blocks, SystemTime::now()) {
                memwatch_leak.get_or_insert(leak);
            }
        });
        if measured == first_round_after {
            trace.first_resources = watch();
            round_diff = Some(HeapDiff::new());
        }
        let following = match &mut rounds {
            Rounds::Counted(s) => {
                if measured < next {
                    continue;
                }
                s.after(measured)
            }
            Rounds::Timed(ends) => {
                // Every round runs at least two iterations.
                if Instant::now() < ends[0] || measured - round_started < 2 {
                    continue;
                }
                ends.remove(0);
                (!ends.is_empty()).then_some(u32::MAX)
            }
        };
        round_started = measured;
        first_checkpoint_at.get_or_insert_with(Instant::now);
        let checkpoint = Checkpoint {
            iteration: measured,
            resources: watch(),
        };
        let ended = round_diff.replace(HeapDiff::new()).map(HeapDiff::end);
        let exhausted = match following {
            None if matches!(rounds, Rounds::Timed(_)) => Some(Exhausted::Duration),
            None => Some(Exhausted::Iterations),
            Some(_) if bytes.saturating_sub(start.bytes) >= MAX_GROWTH_BYTES => {
                Some(Exhausted::Memory)
            }
            Some(n) if matches!(rounds, Rounds::Counted(_)) => {
                let pace = measuring.elapsed().as_secs_f64() / measured as f64;
                (pace * n as f64 > opts.time_limit.as_secs_f64()).then_some(Exhausted::Time)
            }
            Some(_) => None,
        };
        untracked(|| {
            trace.checkpoints.push(checkpoint);
            trace.exhausted = exhausted;
            trace.survivors = measured_survivors(first_measured_cycle);
        });
        // A soak test is decided once, at the end of its duration.
        if matches!(rounds, Rounds::Timed(_)) && exhausted.is_none() {
            continue;
        }
        let j = untracked(|| decide(&trace.evidence()));
        let call = j.call;
        untracked(|| {
            if let (Some(d), Some(r)) = (ended, j.rounds.last()) {
                diff = Some((d, r.clone()));
            }
            judgement = Some(j);
        });
        match call {
            Call::Continue => next = following.unwrap_or(u32::MAX),
            Call::Clean => verdict = Some(Verdict::Clean),
            Call::Leak => verdict = Some(Verdict::Leak),
            Call::ThreadLeak { per_iteration } => {
                verdict = Some(Verdict::ThreadLeak { per_iteration })
            }
            Call::FdLeak { per_iteration } => verdict = Some(Verdict::FdLeak { per_iteration }),
        }
    }
    let verdict = verdict.unwrap_or(Verdict::Clean);
    if let Some(reg) = registration {
        let _ = reg.remove();
    }
    drop(round_diff);

    // With tokio, the runtime goes before the survivors are read.
    #[allow(clippy::drop_non_drop)]
    drop(exec);
    let first_measured = cycles
        .iter()
        .find(|c| c.phase == Phase::Measured)
        .map(|c| c.stats.num_cycles);
    let survivors = match first_measured {
        Some(first) => untracked(|| {
            survivors()
                .into_iter()
                .filter(|s| s.cycle >= first)
                .collect()
        }),
        None => Vec::new(),
    };
    drop(window);
    Outcome {
        verdict,
        cycles,
        trace,
        judgement,
        memwatch_leak,
        diff,
        survivors,
        duration: started.elapsed(),
        extended: first_checkpoint_at.map_or(Duration::ZERO, |t| t.elapsed()),
        start,
        baseline_cycle: baseline.num_cycles,
        sites: None,
        dhat_file: None,
        sites_error: None,
    }
}

/// Survivors of the measured iterations now, by measured iteration.
fn measured_survivors(first_measured_cycle: u64) -> Vec<Survivor> {
    survivors()
        .into_iter()
        .filter(|s| s.cycle >= first_measured_cycle && s.blocks != 0)
        .map(|s| Survivor {
            iteration: (s.cycle - first_measured_cycle + 1) as u32,
            blocks: s.blocks,
            bytes: s.bytes,
        })
        .collect()
}

/// What a capture run records.
#[derive(Debug, Clone)]
pub(crate) struct Capture<'a> {
    /// Allocation sites of the survivors.
    pub sites: bool,
    /// A DHAT viewer file of the window, written here.
    pub dhat: Option<&'a std::path::Path>,
    /// Site paths are given relative to this folder (the workspace root).
    pub paths_from: &'a std::path::Path,
    /// Measured iterations of the window: the test's `iterations`, or fewer
    /// when the run it explains was shorter (a task leak is called after
    /// its first measured iteration, each of which waits for the runtime
    /// to settle).
    pub iterations: u32,
    /// In a scan process (see [`crate::retainers`]): what the scan at the
    /// window's end looks for.
    pub scan: Option<ScanAsk>,
}

/// What a scan process's capture run looks for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ScanAsk {
    /// What keeps each site's blocks alive (a leak's scan).
    pub retainers: bool,
    /// The first bytes of one block of each site.
    pub preview: bool,
    /// An address in the caller's frame: the scan reads this thread's
    /// stack from there up, never the dead frames of the test body below.
    pub stack_from: usize,
}

/// Runs `test` again (warm-up, then `iterations` measured iterations) with
/// allocation sites and/or a DHAT profile captured over the measured window
/// only; plain runs never pay for stacks. Returns the sites still live at
/// the end, when asked for.
///
/// In a scan process, sites are captured from the warm-up on (so that the
/// blocks on a retainer path made before the window have a site too), the
/// survivors are the census's blocks first allocated in the window's epochs, and the heap
/// is scanned before the runtime of an async body goes.
#[inline(never)]
pub(crate) fn capture(test: &LeakTest, what: &Capture<'_>) -> Result<Option<SiteReport>, String> {
    let opts = test.options;
    let _window = crate::allocator::Window::open();
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    let scanning = what
        .scan
        .filter(|_| what.sites && crate::retainers::active());
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    let scanning: Option<ScanAsk> = None;
    // A scan names the blocks of an async body's runtime too.
    if scanning.is_some() {
        crate::allocator::begin_capture();
    }
    let registration = opts.collect.map(on_collect);
    let mut exec = Executor::new(test.body);
    let mut resolver = sites::Resolver::new(what.paths_from);
    let result = (|| {
        gc();
        for _ in 0..opts.warmup {
            exec.iterate()?;
            gc();
        }
        let first_epoch = crate::allocator::epoch();
        let profiler = what.dhat.map(|path| {
            dhat::Profiler::builder()
                .file_name(path)
                .trim_backtraces(Some(crate::allocator::MAX_FRAMES))
                .build()
        });
        if profiler.is_some() {
            crate::allocator::begin_dhat();
        }
        if what.sites && scanning.is_none() {
            crate::allocator::begin_capture();
        }
        let window = (|| {
            for _ in 0..what.iterations {
                exec.iterate()?;
                gc();
            }
            Ok::<(), String>(())
        })();
        crate::allocator::end_capture();
        crate::allocator::end_dhat();
        // Writes the DHAT file.
        drop(profiler);
        window?;
        #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
        if let Some(ask) = scanning {
            // The runtime of an async body, and the tasks it holds, are
            // this frame's: a root of their own.
            let exec_at = &exec as *const Executor as usize;
            let ask = crate::retainers::Ask {
                first_epoch,
                epochs: what.iterations,
                retainers: ask.retainers,
                preview: ask.preview,
                own: crate::allocator::scan::OwnRoots {
                    stack_from: ask.stack_from,
                    held: (exec_at, exec_at + std::mem::size_of::<Executor>()),
                },
            };
            return Ok(Some(crate::retainers::scan(ask, &mut resolver)));
        }
        let _ = first_epoch;
        Ok::<_, String>(None)
    })();
    if let Some(reg) = registration {
        let _ = reg.remove();
    }
    let scanned = result?;
    let sites = what.sites.then(|| {
        let (evidence, unattributed) = scanned.unwrap_or_else(|| {
            let (raw, lost) = untracked(crate::allocator::live_sites);
            (raw.into_iter().map(Into::into).collect(), lost)
        });
        sites::report(evidence, unattributed, what.iterations, &mut resolver)
    });
    #[allow(clippy::drop_non_drop)]
    drop(exec);
    Ok(sites)
}
