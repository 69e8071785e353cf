//! What a leak test reports: a text a person reads in seconds, the
//! snapshot body, and the JSON document for `cargo memwatch`.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use serde::Serialize;

use crate::cycle::CycleSurvivors;
use crate::decision::{Exhausted, Growth as Source, Judgement, Round, Trace};
use crate::detector::Leak;
use crate::diff::{Diff, DiffRow};
use crate::harness::SnapshotStatus;
use crate::registry::LeakTest;
use crate::runner::{CycleRecord, Outcome, Verdict};
use crate::sites::SiteReport;
use crate::units::{format_bytes, format_bytes_f64};

/// Version of the JSON report format; bumped on incompatible changes.
pub(crate) const REPORT_VERSION: u32 = 2;

/// One row of the per-iteration heap diff.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct PerIteration {
    pub what: String,
    /// Blocks allocated under the tag, per iteration.
    #[serde(rename = "+")]
    pub allocated: f64,
    /// Blocks of the tag freed, per iteration.
    #[serde(rename = "-")]
    pub freed: f64,
    /// Net bytes per iteration.
    pub size_bytes: f64,
}

fn per_iteration(diff: &Diff, iterations: u32) -> Vec<PerIteration> {
    let n = iterations.max(1) as f64;
    diff.change
        .details
        .iter()
        .map(|r: &DiffRow| PerIteration {
            what: r.what.clone(),
            allocated: r.allocated as f64 / n,
            freed: r.freed as f64 / n,
            size_bytes: r.size_bytes as f64 / n,
        })
        .collect()
}

/// The JSON report of one test, written to `MEMWATCH_REPORT_DIR`.
#[derive(Debug, Serialize)]
pub(crate) struct Report<'a> {
    pub version: u32,
    pub test: String,
    pub file: &'a str,
    pub line: u32,
    /// `clean`, `leak`, `task_leak` or `panicked`, with details.
    pub verdict: &'a Verdict,
    pub should_leak: bool,
    /// Whether the verdict is what the test expects (`should_leak`
    /// considered); the snapshot is judged apart, in `snapshot`.
    pub passed: bool,
    /// `off`, `matched`, `new` or `changed`.
    pub snapshot: SnapshotStatus,
    /// Threads and open descriptors: `watched`, `off` (`resources =
    /// false`) or `not supported on this platform`.
    pub resources: &'static str,
    pub warmup: u32,
    pub iterations: u32,
    pub iterations_run: u32,
    pub duration_ms: f64,
    /// Collection cycles the test ran (warm-up included); `cycles` holds at
    /// most 1024 of a round, evenly thinned in a long soak test.
    pub num_cycles: usize,
    /// Highest live bytes seen during the test.
    pub peak_bytes: u64,
    pub growth_per_iteration: Growth,
    pub rounds: &'a [Round],
    /// The decision, why it was made, and the evidence it read.
    pub decision: Decision<'a>,
    pub memwatch_leak: Option<&'a Leak>,
    pub per_iteration: Vec<PerIteration>,
    pub diff: Option<&'a Diff>,
    pub survivors: &'a [CycleSurvivors],
    /// Where the survivors were allocated, when sites were captured.
    pub sites: Option<&'a SiteReport>,
    /// The DHAT viewer file of a leaking test, with `MEMWATCH_DHAT`.
    pub dhat_file: Option<&'a Path>,
    pub cycles: &'a [CycleRecord],
}

/// The decision of a run: its budget, what it called and why, and the
/// evidence, which replays to the same call.
#[derive(Debug, Serialize)]
pub(crate) struct Decision<'a> {
    /// Measured iterations before the first checkpoint.
    pub iterations: u32,
    pub max_iterations: u32,
    pub time_limit_ms: f64,
    /// Time spent past the first checkpoint because the evidence there was
    /// ambiguous.
    pub extended_ms: f64,
    #[serde(flatten)]
    pub judgement: Option<&'a Judgement>,
    pub evidence: &'a Trace,
}

/// Bytes and blocks per iteration.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct Growth {
    pub bytes: f64,
    pub blocks: f64,
}

impl<'a> Report<'a> {
    pub(crate) fn new(test: &'a LeakTest, outcome: &'a Outcome, snapshot: SnapshotStatus) -> Self {
        let (bytes, blocks) = outcome.growth_per_iteration();
        Report {
            version: REPORT_VERSION,
            test: test.full_name(),
            file: test.file,
            line: test.line,
            verdict: &outcome.verdict,
            should_leak: test.options.should_leak,
            passed: passed(test, outcome),
            snapshot,
            resources: resources_state(test),
            warmup: test.options.warmup,
            iterations: test.options.iterations,
            iterations_run: outcome.iterations_run(),
            duration_ms: outcome.duration.as_secs_f64() * 1000.0,
            num_cycles: outcome.iterations_run() as usize,
            peak_bytes: outcome
                .cycles
                .iter()
                .map(|c| c.stats.cycle_peak)
                .max()
                .unwrap_or(0),
            growth_per_iteration: Growth { bytes, blocks },
            rounds: outcome.rounds(),
            decision: Decision {
                iterations: test.options.iterations,
                max_iterations: test.options.max_iterations,
                time_limit_ms: test.options.time_limit.as_secs_f64() * 1000.0,
                extended_ms: outcome.extended.as_secs_f64() * 1000.0,
                judgement: outcome.judgement.as_ref(),
                evidence: &outcome.trace,
            },
            memwatch_leak: outcome.memwatch_leak.as_ref(),
            per_iteration: outcome
                .diff
                .as_ref()
                .map(|(d, r)| per_iteration(d, r.last - r.first + 1))
                .unwrap_or_default(),
            diff: outcome.diff.as_ref().map(|(d, _)| d),
            survivors: &outcome.survivors,
            sites: outcome.sites.as_ref(),
            dhat_file: outcome.dhat_file.as_deref(),
            cycles: &outcome.cycles,
        }
    }

    /// Writes `<dir>/<test>.json` atomically: a temporary file, then a rename.
    pub(crate) fn write_to(&self, dir: &Path) -> io::Result<std::path::PathBuf> {
        std::fs::create_dir_all(dir)?;
        let name = file_stem(&self.test);
        let path = dir.join(format!("{name}.json"));
        let tmp = dir.join(format!(".{name}.json.{}.tmp", std::process::id()));
        let json = serde_json::to_vec_pretty(self).map_err(io::Error::other)?;
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, &path)?;
        Ok(path)
    }
}

/// Whether the test's threads and descriptors were watched.
pub(crate) fn resources_state(test: &LeakTest) -> &'static str {
    if !test.options.resources {
        "off"
    } else if crate::resources::resources().is_some() {
        "watched"
    } else {
        "not supported on this platform"
    }
}

/// A file name for a test name: `a::b` becomes `a__b`.
pub(crate) fn file_stem(test: &str) -> String {
    test.replace("::", "__")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Whether the verdict is what the test expects.
pub(crate) fn passed(test: &LeakTest, outcome: &Outcome) -> bool {
    match outcome.verdict {
        Verdict::Panicked { .. } => false,
        Verdict::Clean => !test.options.should_leak,
        _ => test.options.should_leak,
    }
}

fn signed_bytes(bytes: f64) -> String {
    if bytes >= 0.0 {
        format!("+{}", format_bytes_f64(bytes))
    } else {
        format_bytes_f64(bytes)
    }
}

fn number(x: f64) -> String {
    if x.fract() == 0.0 {
        format!("{x}")
    } else {
        format!("{x:.2}")
    }
}

/// The failure message of a test whose verdict is not what it expects.
pub(crate) fn failure_text(test: &LeakTest, outcome: &Outcome) -> String {
    let mut s = String::new();
    let o = &test.options;
    match &outcome.verdict {
        Verdict::Panicked { iteration, message } => {
            let phase = if *iteration <= o.warmup {
                "warm-up"
            } else {
                "measured"
            };
            let _ = writeln!(
                s,
                "the test body panicked in iteration {iteration} ({phase}): {message}\n\
                 no leak verdict: fix the panic first."
            );
            return s;
        }
        Verdict::Clean => {
            let _ = writeln!(
                s,
                "expected a leak (should_leak), but it is clean: {}.",
                reason(outcome)
            );
            write_evidence(&mut s, test, outcome);
            write_rounds(&mut s, outcome);
            return s;
        }
        Verdict::TaskLeak { pending, iteration } => {
            let _ = writeln!(
                s,
                "task leak: {pending} task(s) spawned by the body were still pending after \
                 iteration {iteration}, with nothing left for the runtime to do.\n\
                 A task waiting on a channel, a lock or a timer that never fires keeps \
                 everything it owns alive."
            );
        }
        Verdict::ThreadLeak { per_iteration } | Verdict::FdLeak { per_iteration } => {
            let (what, hint) = match outcome.verdict {
                Verdict::ThreadLeak { .. } => (
                    "thread leak: the process's threads",
                    "A thread that is spawned and never joined, or that waits forever, \
                     keeps its stack and all it owns.",
                ),
                _ => (
                    "fd leak: the process's open file descriptors",
                    "A file, socket or pipe that is never closed (forgotten, or kept in a \
                     collection) holds a descriptor until the process runs out of them.",
                ),
            };
            let _ = writeln!(
                s,
                "{what} grew: {} per iteration ({} measured iterations after {} warm-up); {}.\n{hint}",
                number(*per_iteration),
                outcome.measured_iterations(),
                o.warmup,
                reason(outcome),
            );
        }
        Verdict::Leak => {
            let (bytes, blocks) = outcome.growth_per_iteration();
            let _ = writeln!(
                s,
                "memory leak: {} and {} block(s) per iteration over {} measured iterations \
                 after {} warm-up.\nWhy: {}.",
                signed_bytes(bytes),
                number(blocks),
                outcome.measured_iterations(),
                o.warmup,
                reason(outcome),
            );
        }
    }
    write_evidence(&mut s, test, outcome);
    if test.options.should_leak {
        return s;
    }
    if let Some(leak) = &outcome.memwatch_leak {
        let _ = writeln!(s, "  memwatch: {}", leak.reason);
    }
    if resources_state(test) == "not supported on this platform" {
        let _ = writeln!(
            s,
            "  threads and open descriptors: not watched, not supported on this platform"
        );
    }
    write_rounds(&mut s, outcome);
    write_survivors(&mut s, outcome);
    if let Some(sites) = &outcome.sites {
        write_sites(&mut s, sites);
    }
    if let Some(file) = &outcome.dhat_file {
        let _ = writeln!(
            s,
            "  DHAT profile of the window: {} (open it in DHAT's viewer, dh_view.html)",
            file.display()
        );
    }
    if let Some((diff, r)) = &outcome.diff {
        let _ = writeln!(
            s,
            "  heap diff per iteration, by tag (last round, iterations {}-{}):",
            r.first, r.last
        );
        write_diff(&mut s, &per_iteration(diff, r.last - r.first + 1), "    ");
    }
    let _ = writeln!(
        s,
        "  next: find what keeps these blocks alive (a global collection, a cache, an Rc \
         cycle, a forgotten value); #[tagged] on your types splits the diff by type; \
         MEMWATCH_REPORT_DIR=<dir> writes the whole report as JSON."
    );
    s
}

/// The decision's sentence.
fn reason(outcome: &Outcome) -> &str {
    outcome
        .judgement
        .as_ref()
        .map_or("no decision was reached", |j| j.why.reason.as_str())
}

/// What the decision rested on, beyond its sentence: survivors, where the
/// growth came from, and how much longer the run went because of doubt.
fn write_evidence(s: &mut String, test: &LeakTest, outcome: &Outcome) {
    let Some(j) = &outcome.judgement else {
        return;
    };
    let w = &j.why;
    let growth = match w.growth {
        Source::None => "no growth",
        Source::NewBlocks => "new blocks",
        Source::Resizes => "resized blocks (as many blocks, more bytes)",
    };
    let _ = writeln!(
        s,
        "  evidence: {} of {} measured iterations left blocks that are still live{}; the last \
         round's growth came from {growth}; {}.",
        w.survivor_iterations,
        w.measured,
        w.oldest_survivor
            .map(|i| format!(" (the oldest from iteration {i})"))
            .unwrap_or_default(),
        if w.end.accumulating {
            "still growing at the end"
        } else {
            "not growing in the last quarter of the run"
        },
    );
    let budget = match w.exhausted {
        Some(Exhausted::Iterations) => format!(
            "; it ran to its budget of {} iterations",
            test.options.max_iterations
        ),
        Some(Exhausted::Time) => format!(
            "; it stopped at its time limit of {} (`time_limit`)",
            crate::units::format_duration(test.options.time_limit)
        ),
        Some(Exhausted::Memory) => format!(
            "; it stopped when the heap had grown by {}",
            format_bytes(crate::decision::MAX_GROWTH_BYTES as i64)
        ),
        Some(Exhausted::Duration) | None => String::new(),
    };
    if w.extra_iterations > 0 {
        let _ = writeln!(
            s,
            "  run longer: the heap still grew at the first checkpoint (iteration {}), so the \
             harness ran {} more iterations ({}){budget}.",
            w.first_checkpoint,
            w.extra_iterations,
            crate::units::format_duration(outcome.extended),
        );
    }
}

fn write_rounds(s: &mut String, outcome: &Outcome) {
    let _ = writeln!(
        s,
        "  rounds (measured iterations; the floor is the least live heap from then on):"
    );
    for r in outcome.rounds() {
        let from = match r.growth {
            Source::None => "  (no growth)",
            Source::NewBlocks => "  new blocks",
            Source::Resizes => "  resized blocks",
        };
        let _ = writeln!(
            s,
            "    iterations {:>4}-{:<4} {} -> {} ({}, {:+} blocks){from}",
            r.first,
            r.last,
            format_bytes(r.floor_before.bytes as i64),
            format_bytes(r.floor_after.bytes as i64),
            signed_bytes(r.floor_after.bytes as f64 - r.floor_before.bytes as f64),
            r.floor_after.blocks as i64 - r.floor_before.blocks as i64,
        );
        if let Some(res) = r.resources {
            let _ = writeln!(
                s,
                "      then {} threads{}, {} open descriptors{}",
                res.threads,
                if r.threads_grew { " (more)" } else { "" },
                res.open_fds,
                if r.fds_grew { " (more)" } else { "" },
            );
        }
    }
}

/// Survivors per measured iteration, runs of equal figures folded together.
fn write_survivors(s: &mut String, outcome: &Outcome) {
    // Survivors are kept by collection cycle; iteration k (warm-up
    // counted) ends cycle `baseline_cycle + k`. Shown as measured
    // iterations, as the rounds are.
    let warmup = outcome.iterations_run() - outcome.measured_iterations();
    let iteration_of =
        |cycle: u64| (cycle.saturating_sub(outcome.baseline_cycle) as u32).saturating_sub(warmup);
    let live: Vec<(u32, i64, i64)> = outcome
        .survivors
        .iter()
        .filter(|c| c.blocks != 0)
        .map(|c| (iteration_of(c.cycle), c.blocks, c.bytes))
        .collect();
    let measured = outcome.measured_iterations();
    let _ = writeln!(
        s,
        "  survivors (blocks allocated in a measured iteration and still live at the end): \
         {} of {} measured iterations left some",
        live.len(),
        measured
    );
    let mut i = 0;
    let mut lines = 0;
    while i < live.len() {
        let mut j = i;
        while j + 1 < live.len()
            && live[j + 1].0 == live[j].0 + 1
            && (live[j + 1].1, live[j + 1].2) == (live[i].1, live[i].2)
        {
            j += 1;
        }
        let span = if i == j {
            format!("iteration {}", live[i].0)
        } else {
            format!("iterations {}-{} (each)", live[i].0, live[j].0)
        };
        let _ = writeln!(
            s,
            "    {span}: {} block(s), {}",
            live[i].1,
            format_bytes(live[i].2)
        );
        i = j + 1;
        lines += 1;
        if lines >= 8 && i < live.len() {
            let _ = writeln!(s, "    ... and {} more iterations", live.len() - i);
            break;
        }
    }
}

/// Where the survivors were allocated: the top sites with their rates, and
/// a short backtrace for the first few.
fn write_sites(s: &mut String, report: &SiteReport) {
    if report.sites.is_empty() {
        let _ = writeln!(
            s,
            "  allocated at: no block allocated in the capture run ({} iterations) was still \
             live: what grew was allocated before it and resized since",
            report.iterations
        );
        return;
    }
    let _ = writeln!(
        s,
        "  allocated at (blocks still live after a capture run of {} iterations, per iteration):",
        report.iterations
    );
    for (i, site) in report.sites.iter().take(5).enumerate() {
        let _ = writeln!(
            s,
            "    {} block(s), {}  {}",
            number(site.blocks_per_iteration),
            signed_bytes(site.bytes_per_iteration),
            site.frame.describe()
        );
        if i < 3 {
            for frame in site.backtrace.iter().skip(1).take(5) {
                let _ = writeln!(s, "        from {}", frame.describe());
            }
        }
    }
    if report.sites.len() > 5 {
        let _ = writeln!(s, "    ... and {} more sites", report.sites.len() - 5);
    }
    if report.unattributed_blocks > 0 {
        let _ = writeln!(
            s,
            "    ({} blocks found no room in the site table)",
            report.unattributed_blocks
        );
    }
}

fn write_diff(s: &mut String, rows: &[PerIteration], indent: &str) {
    let width = rows.iter().map(|r| r.what.len()).max().unwrap_or(0);
    for r in rows {
        let _ = writeln!(
            s,
            "{indent}{:<width$}  +{:<6} -{:<6} {}",
            r.what,
            number(r.allocated),
            number(r.freed),
            signed_bytes(r.size_bytes),
        );
    }
}

/// The snapshot body: the verdict and the steady-state heap diff per
/// iteration. Nothing in it depends on time, addresses or the machine.
pub(crate) fn snapshot_text(test: &LeakTest, outcome: &Outcome) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "verdict: {}", outcome.verdict.name());
    if let Some((diff, r)) = &outcome.diff {
        // Which round was the last depends on how long the evidence stayed
        // ambiguous, which a loaded machine can change: not named here.
        let _ = writeln!(
            s,
            "per iteration, by tag (the last round, after {} warm-up):",
            test.options.warmup
        );
        let rows = per_iteration(diff, r.last - r.first + 1);
        if rows.is_empty() {
            let _ = writeln!(s, "  (no allocations)");
        }
        write_diff(&mut s, &rows, "  ");
    }
    s
}
