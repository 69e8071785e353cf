//! The libtest-compatible harness behind `memwatch_test::main!()`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use libtest_mimic::{Arguments, Failed, FormatSetting, Trial};

use crate::allocator::untracked;
use crate::registry::{self, LeakTest, SnapshotName};
use crate::report::{self, Report};
use crate::runner::{self, Verdict};
use crate::units::format_bytes_f64;

use memwatch_report::{env, probe, snapshot};

/// What happened to a test's snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SnapshotStatus {
    /// `snapshot = false`, or no verdict to record.
    Off,
    Matched,
    /// No approved snapshot yet.
    New,
    Changed,
}

/// One line of the summary printed after the run.
struct SummaryRow {
    name: String,
    verdict: &'static str,
    growth: String,
    iterations: u32,
    expected: bool,
    should_leak: bool,
}

/// Runs every registered leak test with libtest's command line; what
/// `memwatch_test::main!()` calls.
pub fn run_main(manifest_dir: &'static str) -> ExitCode {
    let mut args = Arguments::from_args();
    // Tests share one heap: one at a time, on the main thread.
    args.test_threads = Some(1);
    std::hint::black_box(probe::MARKER);
    if args.list && std::env::var_os(env::PROBE).is_some() {
        // For cargo memwatch: every test, with its ignore flag, in one call.
        println!("{}", probe::PROBE_HEADER);
        for test in registry::all() {
            let kind = if test.options.ignore {
                "ignored"
            } else {
                "test"
            };
            println!("{}: {kind}", test.full_name());
        }
        return ExitCode::SUCCESS;
    }
    let report_dir = std::env::var_os(env::REPORT_DIR).map(PathBuf::from);
    let summary: Arc<Mutex<Vec<SummaryRow>>> = Arc::default();
    let trials = registry::all()
        .into_iter()
        .map(|test| {
            let summary = summary.clone();
            let report_dir = report_dir.clone();
            Trial::test(test.full_name(), move || {
                run_trial(test, manifest_dir, report_dir.as_deref(), &summary)
            })
            .with_ignored_flag(test.options.ignore)
        })
        .collect();
    let conclusion = libtest_mimic::run(&args, trials);
    let quiet = args.list
        || matches!(
            args.format,
            Some(FormatSetting::Json) | Some(FormatSetting::Terse)
        )
        || args.quiet;
    if !quiet {
        print_summary(&summary.lock().unwrap_or_else(|e| e.into_inner()));
    }
    conclusion.exit_code()
}

/// Runs one test the way the harness does, without libtest's printing;
/// returns whether its verdict is what it expects and the iterations run.
/// For the harness benchmark.
pub fn run_one(test: &'static LeakTest) -> (bool, u32) {
    let outcome = runner::run(test);
    (report::passed(test, &outcome), outcome.iterations_run())
}

/// Runs one test's capture window (warm-up, then the measured iterations)
/// with sites and/or a DHAT file, as a leak's second run does; `false` if
/// the body panicked. For the site-capture benchmark.
pub fn run_capture(test: &'static LeakTest, sites: bool, dhat: Option<&Path>) -> bool {
    runner::capture(test, &runner::Capture { sites, dhat }).is_ok()
}

fn run_trial(
    test: &'static LeakTest,
    manifest_dir: &str,
    report_dir: Option<&Path>,
    summary: &Mutex<Vec<SummaryRow>>,
) -> Result<(), Failed> {
    let mut outcome = runner::run(test);
    let passed = report::passed(test, &outcome);
    // Stacks are costly: captured in a second run, for a leak that fails its
    // test, or when asked for.
    let leaked = outcome.verdict == Verdict::Leak;
    let want_sites = (leaked && !test.options.should_leak)
        || test.options.sites
        || std::env::var_os(env::SITES).is_some();
    let dhat_file = std::env::var_os(env::DHAT).filter(|_| leaked).map(|dir| {
        PathBuf::from(dir).join(format!(
            "{}.dhat.json",
            report::file_stem(&test.full_name())
        ))
    });
    if let Some(file) = dhat_file.as_deref().and_then(Path::parent) {
        let _ = std::fs::create_dir_all(file);
    }
    if want_sites || dhat_file.is_some() {
        let what = runner::Capture {
            sites: want_sites,
            dhat: dhat_file.as_deref(),
        };
        if let Ok(sites) = runner::capture(test, &what) {
            outcome.sites = sites;
            outcome.dhat_file = dhat_file.filter(|f| f.is_file());
        }
    }
    let (snapshot, snapshot_error) = if matches!(outcome.verdict, Verdict::Panicked { .. }) {
        (SnapshotStatus::Off, None)
    } else {
        untracked(|| check_snapshot(test, manifest_dir, &report::snapshot_text(test, &outcome)))
    };
    let mut failure = None;
    if let Some(dir) = report_dir {
        let written = untracked(|| Report::new(test, &outcome, snapshot).write_to(dir));
        if let Err(e) = written {
            failure = Some(format!(
                "could not write the report to {}: {e}",
                dir.display()
            ));
        }
    }
    untracked(|| {
        let (bytes, blocks) = outcome.growth_per_iteration();
        summary
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(SummaryRow {
                name: test.full_name(),
                verdict: outcome.verdict.name(),
                growth: format!(
                    "{}/iter, {:+.2} blocks/iter",
                    format_bytes_f64(bytes),
                    blocks
                ),
                iterations: outcome.iterations_run(),
                expected: passed,
                should_leak: test.options.should_leak,
            })
    });
    if !passed {
        return Err(report::failure_text(test, &outcome).into());
    }
    if let Some(err) = snapshot_error {
        return Err(err.into());
    }
    match failure {
        Some(f) => Err(f.into()),
        None => Ok(()),
    }
}

/// Whether this run is under CI: `CI` set to anything but empty, `0` or
/// `false`. Under CI no snapshot file is ever written.
fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

/// Compares the snapshot with the approved file itself (no assertion, no
/// panic, nothing printed). Outside CI a new or changed snapshot is written
/// as `<name>.snap.new` beside the approved one, for review; under CI
/// nothing is written, whatever `INSTA_UPDATE` says. An approved snapshot
/// is never overwritten here.
fn check_snapshot(
    test: &LeakTest,
    manifest_dir: &str,
    text: &str,
) -> (SnapshotStatus, Option<String>) {
    let name = match test.options.snapshot {
        SnapshotName::Off => return (SnapshotStatus::Off, None),
        SnapshotName::Default => report::file_stem(&test.full_name()),
        SnapshotName::Named(name) => name.to_owned(),
    };
    let dir = match std::env::var_os(env::SNAPSHOT_DIR) {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(manifest_dir).join("tests").join("snapshots"),
    };
    let approved_path = dir.join(snapshot::approved_file(&name));
    let body = text.trim_end_matches('\n');
    let approved = match std::fs::read_to_string(&approved_path) {
        Ok(file) => match snapshot::parse(&file) {
            Ok(snap) => Some(snap.body),
            Err(why) => {
                let message = format!(
                    "the snapshot file {} is corrupt: {why}; fix or delete it",
                    approved_path.display()
                );
                return (SnapshotStatus::Changed, Some(message));
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            let message = format!("could not read {}: {e}", approved_path.display());
            return (SnapshotStatus::Changed, Some(message));
        }
    };
    if approved.as_deref() == Some(body) {
        return (SnapshotStatus::Matched, None);
    }
    let (status, what) = match approved {
        Some(_) => (SnapshotStatus::Changed, "changed"),
        None => (SnapshotStatus::New, "is new"),
    };
    let written = if under_ci() {
        "under CI nothing is written".to_owned()
    } else {
        let pending = dir.join(snapshot::pending_file(&name));
        let description = format!("memwatch leak test {} in {}", test.full_name(), test.file);
        let file = snapshot::render(test.file, &description, body);
        match write_atomically(&pending, &file) {
            Ok(()) => format!("written to {} for review", pending.display()),
            Err(e) => format!("could not write {}: {e}", pending.display()),
        }
    };
    let shown = match &approved {
        Some(old) => diff_lines(old, body),
        None => body.lines().map(|l| format!("+{l}\n")).collect(),
    };
    let message = format!(
        "the heap diff snapshot `{name}` {what} (in {}); {written}.\n\
         Review it with `cargo memwatch review` or `cargo insta review`.\n\
         --- approved\n+++ now\n{shown}",
        dir.display()
    );
    (status, Some(message))
}

/// `old` and `new` line by line: `-` for a line only in `old`, `+` for one
/// only in `new`, a space for both.
fn diff_lines(old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .iter_all_changes()
        .map(|c| {
            let sign = match c.tag() {
                similar::ChangeTag::Delete => '-',
                similar::ChangeTag::Insert => '+',
                similar::ChangeTag::Equal => ' ',
            };
            format!("{sign}{}\n", c.value().trim_end_matches('\n'))
        })
        .collect()
}

/// Writes `path` through a temporary file and a rename, making its folder.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("new.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

fn print_summary(rows: &[SummaryRow]) {
    if rows.is_empty() {
        return;
    }
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    println!("memwatch leak tests:");
    for r in rows {
        println!(
            "  {:<width$}  {:<9}  {:<36}  {:>4} iterations{}",
            r.name,
            r.verdict,
            r.growth,
            r.iterations,
            match (r.expected, r.should_leak) {
                (true, true) => "  caught, as expected (should_leak)",
                (true, false) => "",
                (false, _) => "  FAILED",
            }
        );
    }
    println!();
}
