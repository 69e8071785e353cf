//! The libtest-compatible harness behind `memwatch_test::main!()`.
//!
//! - [`isolate`]: each test in a process of its own;
//! - [`trial`]: one test, start to end;
//! - [`snapshot`]: its snapshot, compared and written;
//! - [`stray`]: `#[test]` functions that a leak-test target never runs;
//! - [`summary`]: what a test's run reports, and the table after the run.

mod isolate;
mod snapshot;
mod stray;
mod summary;
mod trial;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use libtest_mimic::{Arguments, Failed, FormatSetting, Trial};
use memwatch_report::naming::{collisions, file_stem};
use memwatch_report::{env, probe};

use crate::registry::{self, LeakTest};
use crate::{report, runner};

/// What every test of a run needs to know, from the environment.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Where the JSON reports go, when asked for.
    pub report_dir: Option<PathBuf>,
    /// The snapshots' folder.
    pub snapshot_dir: PathBuf,
    /// Where DHAT files of leaking tests go, when asked for.
    pub dhat_dir: Option<PathBuf>,
    /// Capture sites for every test.
    pub sites: bool,
    /// Show the first bytes of a leaked block of each site.
    pub preview: bool,
    /// The workspace root: site paths are given relative to it, so that
    /// `crate/src/lib.rs:79` names one file in a workspace.
    pub workspace_root: PathBuf,
    /// Tests that share a snapshot or report file, with the message that
    /// fails them.
    pub collisions: HashMap<String, String>,
}

impl Config {
    /// Reads the environment; a relative folder is under the package root
    /// `manifest_dir`, an empty one is an error.
    fn from_env(manifest_dir: &Path, tests: &[&LeakTest]) -> Result<Config, env::EnvError> {
        Ok(Config {
            report_dir: env::folder(env::REPORT_DIR, manifest_dir)?,
            snapshot_dir: env::folder(env::SNAPSHOT_DIR, manifest_dir)?
                .unwrap_or_else(|| manifest_dir.join("tests").join("snapshots")),
            dhat_dir: env::folder(env::DHAT, manifest_dir)?,
            sites: std::env::var_os(env::SITES).is_some(),
            preview: std::env::var_os(env::PREVIEW).is_some_and(|v| v == "1"),
            workspace_root: workspace_root(manifest_dir),
            collisions: shared_files(tests),
        })
    }
}

/// Every test that would share a snapshot or a report file with another,
/// mapped to the message that fails it.
fn shared_files(tests: &[&LeakTest]) -> HashMap<String, String> {
    let names: Vec<String> = tests.iter().map(|t| t.full_name()).collect();
    let mut out = HashMap::new();
    let snapshots = names
        .iter()
        .zip(tests)
        .filter_map(|(n, t)| Some((n.as_str(), snapshot::name(t)?)));
    let reports = names.iter().map(|n| (n.as_str(), file_stem(n)));
    for (kind, found) in [
        ("snapshot", collisions(snapshots)),
        ("report", collisions(reports)),
    ] {
        for c in found {
            let message = format!(
                "the tests {} would share the {kind} file `{}` (file names ignore case and \
                 turn `::` and other punctuation into `_`): give each a name of its own with \
                 `#[leak_test(snapshot = \"...\")]`, or rename one; none of them is run",
                c.tests
                    .iter()
                    .map(|t| format!("`{t}`"))
                    .collect::<Vec<_>>()
                    .join(" and "),
                c.stem,
            );
            for t in c.tests {
                out.entry(t).or_insert_with(|| message.clone());
            }
        }
    }
    out
}

/// Runs every registered leak test with libtest's command line; what
/// `memwatch_test::main!()` calls.
pub fn run_main(manifest_dir: &'static str) -> ExitCode {
    std::hint::black_box(probe::MARKER);
    let tests = registry::all();
    let config = match Config::from_env(Path::new(manifest_dir), &tests) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(file) = std::env::var_os(env::SCAN) {
        return isolate::scan_child(&config, PathBuf::from(file));
    }
    if let Some(result_file) = std::env::var_os(env::CHILD) {
        return isolate::child(&config, PathBuf::from(result_file));
    }
    let mut args = Arguments::from_args();
    // One test at a time unless asked otherwise: each measures its time
    // budget, and a loaded machine gives it less.
    args.test_threads = Some(args.test_threads.unwrap_or(1));
    let stray = stray::find(&tests, Path::new(manifest_dir));
    if args.list && std::env::var_os(env::PROBE).is_some() {
        // For cargo memwatch: every test, with its ignore flag, in one call.
        println!("{}", probe::PROBE_HEADER);
        for test in &tests {
            let kind = if test.options.ignore {
                "ignored"
            } else {
                "test"
            };
            println!("{}: {kind}", test.full_name());
        }
        if !stray.is_empty() {
            println!("{}: test", stray::NAME);
        }
        return ExitCode::SUCCESS;
    }
    let in_process = std::env::var_os(env::IN_PROCESS).is_some_and(|v| v == "1");
    if in_process {
        // Tests share the heap: one at a time.
        args.test_threads = Some(1);
    }
    let mode = isolate::OutputMode {
        nocapture: args.nocapture,
        show_output: args.show_output,
    };
    let config = Arc::new(config);
    let summary: Arc<Mutex<Vec<summary::SummaryRow>>> = Arc::default();
    let mut trials: Vec<Trial> = Vec::new();
    if !stray.is_empty() {
        let message = stray::message(&stray);
        trials.push(Trial::test(stray::NAME, move || Err(Failed::from(message))));
    }
    trials.extend(tests.into_iter().map(|test| {
        let summary = summary.clone();
        let config = config.clone();
        Trial::test(test.full_name(), move || {
            let result = if in_process {
                trial::execute(test, &config)
            } else {
                isolate::run_in_child(test, mode)
            };
            summary
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(result.row);
            match result.failure {
                Some(f) => Err(Failed::from(f)),
                None => Ok(()),
            }
        })
        .with_ignored_flag(test.options.ignore)
    }));
    let conclusion = libtest_mimic::run(&args, trials);
    let quiet = args.list
        || matches!(
            args.format,
            Some(FormatSetting::Json) | Some(FormatSetting::Terse)
        )
        || args.quiet;
    if !quiet {
        let mut rows = summary.lock().unwrap_or_else(|e| e.into_inner()).clone();
        rows.sort_by(|a, b| a.name.cmp(&b.name));
        summary::print(&rows);
    }
    conclusion.exit_code()
}

/// Why a leak-test target built with libtest's own harness failed; its
/// `Debug` is the message, as libtest prints a test's error with it.
pub struct WrongHarness(String);

impl std::fmt::Debug for WrongHarness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The failure of a leak-test target built with libtest's own harness
/// (`harness = false` missing): no leak test ran, and what to change.
///
/// ```
/// let why = memwatch_test::__private::standard_harness("leaks");
/// assert!(format!("{why:?}").contains("harness = false"));
/// ```
pub fn standard_harness(target: &str) -> WrongHarness {
    // So that `cargo memwatch` sees this target too, and says the same.
    std::hint::black_box(probe::MARKER);
    let tests = registry::all().len();
    WrongHarness(format!(
        "the {tests} leak test(s) of the target `{target}` did not run: it is built with \
         libtest's own harness, which never calls `memwatch_test::main!()`.\n\
         Add `harness = false` to the target in Cargo.toml:\n\n\
         [[test]]\nname = \"{target}\"\nharness = false\n"
    ))
}

/// The root of the workspace the package at `manifest_dir` belongs to: the
/// nearest folder at or above it whose `Cargo.toml` has a `[workspace]`
/// table, as cargo finds it; the package's own folder when none has.
fn workspace_root(manifest_dir: &Path) -> PathBuf {
    manifest_dir
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml")).is_ok_and(|toml| {
                toml.lines()
                    .any(|l| l.trim_start().starts_with("[workspace]"))
            })
        })
        .unwrap_or(manifest_dir)
        .to_path_buf()
}

/// Runs one test the way the harness does, in this process and without
/// libtest's printing; returns whether its verdict is what it expects and
/// the iterations run. For the harness benchmark.
pub fn run_one(test: &'static LeakTest) -> (bool, u32) {
    let outcome = runner::run(test);
    (
        report::verdict_expected(test, &outcome),
        outcome.iterations_run(),
    )
}

/// Runs one test's capture window (warm-up, then the measured iterations)
/// with sites and/or a DHAT file, as a leak's second run does; `false` if
/// the body panicked. For the site-capture benchmark.
pub fn run_capture(test: &'static LeakTest, sites: bool, dhat: Option<&Path>) -> bool {
    let root = std::env::current_dir().unwrap_or_default();
    runner::capture(
        test,
        &runner::Capture {
            sites,
            dhat,
            paths_from: &root,
            iterations: test.options.iterations,
            scan: None,
        },
    )
    .is_ok()
}

/// For the retainer-scan benchmark: in a scan process (started with
/// [`env::SCAN`] set), runs `build` with sites captured, then scans the
/// heap as a leak's scan does (every block, its retainers, their names);
/// returns the scan's wall time and the sites it reported, or `None`
/// outside a scan process or off Linux x86_64.
pub fn time_scan(build: impl FnOnce()) -> Option<(std::time::Duration, usize)> {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    {
        if !crate::retainers::active() {
            return None;
        }
        crate::allocator::begin_capture();
        let first_epoch = crate::allocator::epoch();
        crate::allocator::with_stack_end(build);
        crate::cycle::gc();
        crate::allocator::end_capture();
        let root = std::env::current_dir().unwrap_or_default();
        let mut resolver = crate::sites::Resolver::new(&root);
        let started = std::time::Instant::now();
        let (evidence, _) = crate::retainers::scan(
            crate::retainers::Ask {
                first_epoch,
                epochs: 1,
                retainers: true,
                preview: false,
                own: crate::allocator::scan::OwnRoots {
                    stack_from: std::hint::black_box(&started) as *const _ as usize,
                    held: (0, 0),
                },
            },
            &mut resolver,
        );
        Some((started.elapsed(), evidence.len()))
    }
    #[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
    {
        let _ = build;
        None
    }
}
