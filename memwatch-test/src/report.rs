//! What a leak test reports: a text a person reads in seconds, the
//! snapshot body, and the JSON document for `cargo memwatch`.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use memwatch_report::report::{self as contract, FrameKind, Report, SnapshotStatus, TagRow};
use memwatch_report::snapshot::{self, Counted, Kept};

use crate::allocator::MAX_FRAMES;
use crate::decision::{Exhausted, Growth as Source, Round};
use crate::diff::{Diff, DiffRow};
use crate::registry::LeakTest;
use crate::runner::{Outcome, Phase, Verdict};
use crate::sites::SiteReport;
use crate::units::{format_bytes, format_bytes_f64};

fn per_iteration(diff: &Diff, iterations: u32) -> Vec<TagRow> {
    let n = iterations.max(1) as f64;
    diff.change
        .details
        .iter()
        .map(|r: &DiffRow| TagRow {
            what: r.what.clone(),
            allocated: r.allocated as f64 / n,
            freed: r.freed as f64 / n,
            size_bytes: r.size_bytes as f64 / n,
        })
        .collect()
}

/// The JSON report of one test, in the contract's types.
pub(crate) fn build(
    test: &LeakTest,
    outcome: &Outcome,
    passed: bool,
    snapshot: SnapshotStatus,
    failure: Option<String>,
) -> Report {
    let (bytes, blocks) = outcome.growth_per_iteration();
    let judgement = outcome.judgement.as_ref();
    let to_value = |v: &dyn erased::Value| v.json();
    Report {
        version: contract::VERSION,
        test: test.full_name(),
        file: test.file.to_owned(),
        line: test.line,
        verdict: outcome.verdict.clone(),
        should_leak: test.options.should_leak,
        passed,
        snapshot,
        resources: resources_state(test).to_owned(),
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
        growth_per_iteration: contract::Rate { bytes, blocks },
        per_iteration: outcome
            .diff
            .as_ref()
            .map(|(d, r)| per_iteration(d, r.last - r.first + 1))
            .unwrap_or_default(),
        rounds: outcome.rounds().iter().map(round).collect(),
        decision: contract::Decision {
            iterations: test.options.iterations,
            max_iterations: test.options.max_iterations,
            time_limit_ms: test.options.time_limit.as_secs_f64() * 1000.0,
            extended_ms: outcome.extended.as_secs_f64() * 1000.0,
            call: judgement.and_then(|j| to_value(&j.call)["kind"].as_str().map(str::to_owned)),
            reason: judgement.map(|j| j.why.reason.clone()),
            why: judgement.map(|j| to_value(&j.why)),
            evidence: to_value(&outcome.trace),
        },
        memwatch_leak: outcome.memwatch_leak.as_ref().map(|l| l.reason.clone()),
        survivors: outcome
            .survivors
            .iter()
            .map(|s| contract::Survivors {
                cycle: s.cycle,
                blocks: s.blocks,
                bytes: s.bytes,
            })
            .collect(),
        sites: outcome.sites.clone(),
        sites_error: outcome.sites_error.clone(),
        dhat_file: outcome.dhat_file.clone(),
        cycles: outcome
            .cycles
            .iter()
            .map(|c| contract::Cycle {
                phase: match c.phase {
                    Phase::Warmup => contract::Phase::Warmup,
                    Phase::Measured => contract::Phase::Measured,
                },
                iteration: c.iteration,
                round: c.round,
                stats: contract::CycleStats {
                    num_cycles: c.stats.num_cycles,
                    current_base: c.stats.current_base,
                    estimated_base: c.stats.estimated_base,
                    usage_trend: c.stats.usage_trend,
                    live_blocks: c.stats.live_blocks,
                    allocations: c.stats.allocations,
                    frees: c.stats.frees,
                    cycle_peak: c.stats.cycle_peak,
                },
            })
            .collect(),
        failure,
    }
}

/// Serialises the decision's own types into the report's opaque fields.
mod erased {
    pub(super) trait Value {
        fn json(&self) -> serde_json::Value;
    }

    impl<T: serde::Serialize> Value for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
        }
    }
}

fn round(r: &Round) -> contract::Round {
    let level = |l: crate::decision::Level| contract::Level {
        bytes: l.bytes,
        blocks: l.blocks,
    };
    contract::Round {
        first: r.first,
        last: r.last,
        floor_before: level(r.floor_before),
        floor_after: level(r.floor_after),
        grew: r.grew,
        growth: match r.growth {
            Source::None => contract::GrowthKind::None,
            Source::NewBlocks => contract::GrowthKind::NewBlocks,
            Source::Resizes => contract::GrowthKind::Resizes,
        },
        resources: r.resources.map(|x| contract::Resources {
            threads: x.threads,
            open_fds: x.open_fds,
        }),
        threads_grew: r.threads_grew,
        fds_grew: r.fds_grew,
    }
}

/// Writes `<dir>/<stem>.json` atomically: a temporary file, then a rename.
pub(crate) fn write(report: &Report, dir: &Path, stem: &str) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(contract::file_name(stem));
    let tmp = dir.join(format!(".{stem}.json.{}.tmp", std::process::id()));
    let json = serde_json::to_vec_pretty(report).map_err(io::Error::other)?;
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
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

/// Whether the verdict is what the test expects, snapshot aside.
pub(crate) fn verdict_expected(test: &LeakTest, outcome: &Outcome) -> bool {
    outcome.verdict.expected(test.options.should_leak)
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
    if let (Some(what), Some(sites)) = (spawned_what(&outcome.verdict), &outcome.sites) {
        write_spawns(&mut s, what, sites);
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
    if !outcome.rounds().is_empty() {
        write_rounds(&mut s, outcome);
    }
    if outcome.measured_iterations() > 0 {
        write_survivors(&mut s, outcome);
    }
    if let Some(sites) = &outcome.sites {
        write_sites(&mut s, sites);
    }
    if let Some(why) = &outcome.sites_error {
        let _ = writeln!(s, "  allocated at: not found: {why}");
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
    let _ = writeln!(s, "  next: {}", advice(&outcome.verdict));
    s
}

/// What a task or thread leak left running, for [`write_spawns`].
fn spawned_what(verdict: &Verdict) -> Option<&'static str> {
    match verdict {
        Verdict::TaskLeak { .. } => Some("the pending tasks were spawned at"),
        Verdict::ThreadLeak { .. } => Some("the threads still running were spawned at"),
        _ => None,
    }
}

/// Where the user's code spawned what is still alive: the sites whose
/// blocks a spawn function allocated (the task's cell, the thread's
/// handle), named by the user's frame that called it.
fn write_spawns(s: &mut String, what: &str, report: &SiteReport) {
    let mut seen: Vec<(&contract::Frame, &str)> = Vec::new();
    for site in &report.sites {
        if let (Some(spawn), FrameKind::User) = (&site.spawned_by, site.frame.kind) {
            if !seen.iter().any(|(f, sp)| *f == &site.frame && *sp == spawn) {
                seen.push((&site.frame, spawn));
            }
        }
    }
    if seen.is_empty() {
        return;
    }
    let _ = writeln!(s, "  {what}:");
    for (frame, spawn) in seen.iter().take(3) {
        let _ = writeln!(s, "    {}, through {spawn}", frame.describe());
    }
}

/// What to look for, for each kind of leak.
fn advice(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::TaskLeak { .. } => {
            "find what the pending task waits on (a channel whose sender is kept alive, a \
             lock, a timer that never fires); close or drop it, or keep the task's JoinHandle \
             and abort it; MEMWATCH_REPORT_DIR=<dir> writes the whole report as JSON."
        }
        Verdict::ThreadLeak { .. } => {
            "join the threads the body spawns (keep their JoinHandles), or tell them to stop \
             (a closed channel, a flag) before the body returns; a pool should be built once, \
             outside the body, or in the warm-up."
        }
        Verdict::FdLeak { .. } => {
            "find the file, socket or pipe that stays open: kept in a collection, leaked with \
             `mem::forget` or `into_raw_fd`, or held by a value that is never dropped."
        }
        _ => {
            "find what keeps these blocks alive (a global collection, a cache, an Rc cycle, \
             a forgotten value); #[tagged] on your types splits the diff by type; \
             MEMWATCH_REPORT_DIR=<dir> writes the whole report as JSON."
        }
    }
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
                "      then {} thread{}{}, {} open descriptors{}",
                res.threads,
                if res.threads == 1 { "" } else { "s" },
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
    let run = format!(
        "{} iteration{}",
        report.iterations,
        if report.iterations == 1 { "" } else { "s" }
    );
    if report.sites.is_empty() {
        let _ = writeln!(
            s,
            "  allocated at: no block allocated in the capture run ({run}) was still \
             live: what grew was allocated before it and resized since"
        );
        return;
    }
    let _ = writeln!(
        s,
        "  allocated at (blocks still live after a capture run of {run}, per iteration):"
    );
    if report.sites.iter().any(|site| site.retention.is_some()) {
        let _ = writeln!(s, "    ({})", contract::CONSERVATIVE_SCAN);
    }
    let mut cycles_shown: Vec<Option<Vec<String>>> = Vec::new();
    for (i, site) in report.sites.iter().take(5).enumerate() {
        let _ = writeln!(
            s,
            "    {} block(s), {}  {}{}",
            number(site.blocks_per_iteration),
            signed_bytes(site.bytes_per_iteration),
            match (site.frame.kind, site.stack_cut) {
                (FrameKind::User, _) => String::new(),
                (FrameKind::Dependency, false) => {
                    "no frame of your code on the stack; called or spawned: ".to_owned()
                }
                (FrameKind::Dependency, true) => format!(
                    "no frame of your code in the innermost {MAX_FRAMES} frames; the outermost of them: "
                ),
                // The placeholder says so itself.
                (FrameKind::Runtime, _) => String::new(),
            },
            site.frame.describe()
        );
        if let Some(dependency) = &site.allocated_in {
            let _ = writeln!(s, "        allocated in {}", dependency.describe());
        }
        if i < 3 {
            // The callers of the site's frame in the user's code, outwards.
            let callers = site
                .backtrace
                .iter()
                .skip_while(|f| **f != site.frame)
                .skip(1)
                .filter(|f| f.kind == FrameKind::User)
                .take(3);
            for frame in callers {
                let _ = writeln!(s, "        from {}", frame.describe());
            }
        }
        if let Some(kind) = &site.kind {
            let _ = writeln!(s, "        what: {kind}");
        }
        if let Some(retention) = &site.retention {
            // The whole story for the first sites, the headline after; a
            // cycle already shown is not shown again.
            let lines = retention.lines();
            let cycle = cycle_blocks(retention);
            let seen = cycle.is_some() && cycles_shown.contains(&cycle);
            let shown = if i < 3 && !seen { lines.len() } else { 1 };
            for line in &lines[..shown] {
                let _ = writeln!(s, "        {line}");
            }
            if seen {
                let _ = writeln!(s, "          (the cycle shown above)");
            }
            cycles_shown.push(cycle);
        }
        if let Some(preview) = &site.preview {
            let _ = writeln!(s, "        preview of one: {}", preview.render());
        }
    }
    if report.sites.len() > 5 {
        let more = report.sites.len() - 5;
        let _ = writeln!(
            s,
            "    ... and {more} more site{}",
            if more == 1 { "" } else { "s" }
        );
    }
    if report.unattributed_blocks > 0 {
        let _ = writeln!(
            s,
            "    ({} blocks found no room in the site table)",
            report.unattributed_blocks
        );
    }
}

/// The blocks of a retention's cycle, in an order of their own (a cycle
/// has no first block): for telling that two sites' cycles are one.
fn cycle_blocks(retention: &contract::Retention) -> Option<Vec<String>> {
    match &retention.example {
        contract::Retainer::Cycle { steps } => {
            let mut blocks: Vec<String> = steps
                .iter()
                .map(|s| {
                    let site = s.site.as_ref().map(|f| f.describe());
                    format!("{} {:?}", s.bytes, site)
                })
                .collect();
            blocks.sort();
            Some(blocks)
        }
        _ => None,
    }
}

fn write_diff(s: &mut String, rows: &[TagRow], indent: &str) {
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

/// The snapshot body (the contract's format): the verdict and what each
/// measured iteration of the last round kept, by tag; with
/// `count_allocations`, allocations and frees per iteration too. A clean
/// verdict keeps nothing, so temporary allocations never reach it, and
/// nothing in it depends on time, addresses, the machine or which round
/// was the last.
pub(crate) fn snapshot_body(test: &LeakTest, outcome: &Outcome) -> String {
    let verdict = outcome.verdict.kind();
    let Some((diff, r)) = &outcome.diff else {
        return snapshot::body(verdict, &[], None);
    };
    let n = (r.last - r.first + 1).max(1) as f64;
    let kept: Vec<Kept> = if outcome.verdict.is_leak() {
        diff.change
            .details
            .iter()
            .map(|row| {
                let blocks = row.allocated as i64 - row.freed as i64;
                Kept {
                    what: row.what.clone(),
                    // One block more or less in a round is a table replaced
                    // once, not something each iteration keeps.
                    blocks: if blocks.abs() < 2 {
                        0.0
                    } else {
                        blocks as f64 / n
                    },
                    bytes: row.size_bytes as f64 / n,
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let counts: Option<Vec<Counted>> = test.options.count_allocations.then(|| {
        diff.change
            .details
            .iter()
            .map(|row| Counted {
                what: row.what.clone(),
                allocations: row.allocated as f64 / n,
                frees: row.freed as f64 / n,
            })
            .collect()
    });
    snapshot::body(verdict, &kept, counts.as_deref())
}
