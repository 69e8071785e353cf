//! The subcommands.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use memwatch_report::env;

use crate::cargo::{self, LeakTestRef, TestBinary};
use crate::cli::{ListArgs, MessageFormat, ReportArgs, SnapshotArgs, TestArgs};
use crate::filter::Filter;
use crate::output;
use crate::run::{self, Plan};
use crate::runs;
use crate::snapshots;

/// Exit code: every test clean and approved.
pub const SUCCESS: u8 = 0;
/// Exit code: a leak, a failure, a crash or a snapshot change.
pub const TESTS_FAILED: u8 = 1;

const NO_TESTS: &str = "no leak tests found in this workspace \
     (a leak test target has `harness = false` and ends with `memwatch_test::main!()`)";

/// Reads the workspace, checks its snapshots, and builds its tests. Nothing
/// may be written outside `target/` before the snapshots are known to be
/// sound: on a terminal the steps run one after the other, with cargo's
/// progress live; otherwise the build starts at once with `--locked` (it
/// cannot touch the lock file) and its output held until it is done.
fn read_and_build(args: &ListArgs) -> Result<(cargo_metadata::Metadata, Vec<TestBinary>)> {
    let read = || -> Result<cargo_metadata::Metadata> {
        let meta = cargo::metadata(args.selection.manifest_path.as_deref())?;
        // An empty folder variable is an error before anything runs.
        for var in [env::REPORT_DIR, env::SNAPSHOT_DIR, env::DHAT] {
            env::folder(var, meta.workspace_root.as_std_path())?;
        }
        snapshots::validate(&snapshots::folders(&meta)?)?;
        Ok(meta)
    };
    let live = || -> Result<Vec<cargo::Built>> {
        cargo::build(&args.selection, cargo::BuildMode::Live).map_err(|e| match e {
            cargo::BuildError::Failed(e) => e,
            cargo::BuildError::LockFileStale => anyhow::anyhow!("the lock file is stale"),
        })
    };
    if std::io::stderr().is_terminal() {
        let meta = read()?;
        let binaries = cargo::resolve(live()?, &meta);
        return Ok((meta, binaries));
    }
    let (meta, early) = std::thread::scope(|scope| {
        let build = scope.spawn(|| cargo::build(&args.selection, cargo::BuildMode::Locked));
        let meta = read();
        let early = build.join();
        (meta, early)
    });
    let meta = meta?;
    let built = match early {
        Ok(Ok(built)) => built,
        Ok(Err(cargo::BuildError::Failed(e))) => return Err(e),
        Ok(Err(cargo::BuildError::LockFileStale)) | Err(_) => live()?,
    };
    let binaries = cargo::resolve(built, &meta);
    Ok((meta, binaries))
}

/// No test matched the filters: a typo must not pass CI.
#[derive(Debug)]
pub struct NoMatch {
    pub total: usize,
    pub filter: String,
}

impl std::fmt::Display for NoMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "0 of {} leak tests matched {}: `cargo memwatch list` names them all",
            self.total, self.filter
        )
    }
}

impl std::error::Error for NoMatch {}

/// Builds, finds, filters and partitions the leak tests.
fn select(
    args: &ListArgs,
) -> Result<(Vec<TestBinary>, Vec<LeakTestRef>, cargo_metadata::Metadata)> {
    // Bad arguments are an error before anything is built.
    let filter = Filter::new(&args.filters, args.exact, &args.skip, &args.harness_args)?;
    let (meta, binaries) = read_and_build(args)?;
    let found = cargo::discover(&binaries, args.include_ignored || filter.include_ignored)?;
    let total = found.len();
    let mut tests: Vec<LeakTestRef> = found.into_iter().filter(|t| filter.selects(t)).collect();
    if total > 0 && tests.is_empty() && filter.narrows() {
        return Err(NoMatch {
            total,
            filter: filter.describe(),
        }
        .into());
    }
    if let Some(p) = &args.partition {
        tests = p.select(tests, |t| t.id.as_str());
    }
    Ok((binaries, tests, meta))
}

pub fn list(args: &ListArgs) -> Result<u8> {
    let (_, tests, _) = select(args)?;
    for t in &tests {
        match args.message_format {
            MessageFormat::Human => println!("{}", t.id),
            MessageFormat::Json => println!(
                "{}",
                serde_json::json!({"type": "test", "id": t.id, "name": t.name})
            ),
        }
    }
    if tests.is_empty() && args.message_format == MessageFormat::Human {
        eprintln!("{NO_TESTS}");
    }
    Ok(SUCCESS)
}

pub fn test(args: &TestArgs) -> Result<u8> {
    let started = Instant::now();
    crate::process::stop_all_on_interrupt();
    if let Some(path) = &args.junit {
        // An output that cannot be written fails before anything runs.
        output::check_writable(path)?;
    }
    let (binaries, tests, meta) = select(&args.list)?;
    let human = args.list.message_format == MessageFormat::Human;
    if tests.is_empty() {
        if human {
            println!("{NO_TESTS}");
        } else {
            println!("{}", output::json_summary(&[], SUCCESS));
        }
        return Ok(SUCCESS);
    }
    let jobs = args
        .jobs
        .map(|j| j.get())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let memwatch_dir = runs::memwatch_dir(args.list.selection.target_dir.as_deref(), &meta);
    let run_dir = runs::create(&memwatch_dir, meta.workspace_root.as_std_path())?;
    let bar = (human && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(tests.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{pos}/{len}] {wide_msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let progress = |r: &run::TestResult| {
        if let Some(bar) = &bar {
            bar.inc(1);
            bar.set_message(format!("{} {}", r.test.id, r.verdict));
        } else if !human {
            println!("{}", output::json_line(r));
        }
    };
    let results = run::run(
        Plan {
            binaries: &binaries,
            tests,
            jobs,
            timeout: Duration::from_secs(args.timeout),
            run_dir: run_dir.clone(),
            sites: args.sites,
            dhat: args.dhat.then(|| memwatch_dir.join("dhat")),
        },
        &progress,
    )?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if crate::process::interrupted() {
        eprintln!(
            "interrupted: every running test was stopped; the results are no verdict \
             (reports so far: {})",
            run_dir.display()
        );
        return Ok(crate::process::INTERRUPTED_EXIT);
    }
    for (index, r) in results.iter().enumerate() {
        // What the terminal shows, kept for the report page.
        let outcome = runs::Outcome {
            status: output::status_word(r),
            passed: r.ok(),
            seconds: r.duration.as_secs_f64(),
            message: (!r.ok()).then(|| r.message()),
        };
        runs::write_outcome(&runs::test_dir(&run_dir, index), &outcome)?;
    }
    let code = if results.iter().all(|r| r.ok()) {
        SUCCESS
    } else {
        TESTS_FAILED
    };
    let github = std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true");
    if human {
        let summary = output::summary(&results, started.elapsed());
        if github {
            print!("{}", output::github_safe(&summary));
        } else {
            print!("{summary}");
        }
        println!("reports: {}", run_dir.display());
    } else {
        println!("{}", output::json_summary(&results, code));
    }
    if let Some(path) = &args.junit {
        output::junit(&results, path)?;
    }
    if github {
        print!("{}", output::github_annotations(&results));
    }
    Ok(code)
}

/// The pending snapshots selected by `args`, after checking that every
/// snapshot file reads well: nothing changes if one is corrupt.
fn pending(args: &SnapshotArgs) -> Result<Vec<snapshots::Pending>> {
    let meta = cargo::metadata(args.manifest_path.as_deref())?;
    let folders = snapshots::folders(&meta)?;
    snapshots::validate(&folders)?;
    let list = snapshots::pending(&folders, &args.filters)?;
    snapshots::require_matches(&list, &args.filters)?;
    Ok(list)
}

pub fn review(args: &SnapshotArgs) -> Result<u8> {
    let list = pending(args)?;
    let stdin = std::io::stdin();
    let decisions = snapshots::review(&list, stdin.lock(), std::io::stdout())?;
    let count = |d| decisions.iter().filter(|(_, x)| *x == d).count();
    println!(
        "{} accepted, {} rejected, {} skipped",
        count(snapshots::Decision::Accept),
        count(snapshots::Decision::Reject),
        count(snapshots::Decision::Skip)
    );
    Ok(SUCCESS)
}

pub fn accept_or_reject(args: &SnapshotArgs, accept: bool) -> Result<u8> {
    let list = pending(args)?;
    for p in &list {
        if accept {
            snapshots::accept(p)?;
        } else {
            snapshots::reject(p)?;
        }
        println!(
            "{} {}",
            if accept { "accepted" } else { "rejected" },
            p.name
        );
    }
    if list.is_empty() {
        println!("no pending snapshots");
    }
    Ok(SUCCESS)
}

pub fn report(args: &ReportArgs) -> Result<u8> {
    let meta = cargo::metadata(args.manifest_path.as_deref())?;
    let memwatch = runs::memwatch_dir(args.target_dir.as_deref(), &meta);
    let run = runs::latest(&memwatch, meta.workspace_root.as_std_path())?;
    let reports = crate::html::read_run(&run)?;
    if reports.is_empty() {
        anyhow::bail!("the last run ({}) has no tests", run.display());
    }
    let path = args
        .output
        .clone()
        .unwrap_or_else(|| memwatch.join("report.html"));
    std::fs::write(&path, crate::html::page(&run, &reports))
        .with_context(|| format!("could not write {}", path.display()))?;
    println!("report: {}", path.display());
    Ok(SUCCESS)
}
