//! One process per test. Tests in one process share its heap, its lazy
//! statics and its hash tables: an earlier test can initialise what a later
//! one would otherwise allocate, or leave a table one insert short of a
//! resize, and so change what the later test records. So the harness runs
//! each test in a process of its own, started from its own binary, the way
//! `cargo nextest run` and `cargo memwatch test` do, and every runner
//! records the same snapshot. It costs one process start per test (a few
//! milliseconds, next to the test's own hundreds of iterations), and buys
//! more: a test that aborts, crashes or calls `process::exit` fails alone,
//! with what happened, and the other tests still run.
//!
//! The parent passes the test's name as the only argument and a result
//! file in [`env::CHILD`]; the child runs that one test, writes its
//! [`TrialResult`] there and exits. A child that exits without writing it
//! crashed, whatever its exit code.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use memwatch_report::env;

use serde::{Deserialize, Serialize};

use super::summary::{SummaryRow, TrialResult};
use super::{trial, Config};
use crate::registry::{self, LeakTest};
use crate::runner;
use crate::sites::SiteReport;

/// How the parent shows a child's output.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OutputMode {
    /// `--nocapture`: the child writes to the terminal as it runs.
    pub nocapture: bool,
    /// `--show-output`: a passing test's output is shown too.
    pub show_output: bool,
}

/// Runs `test` in a new process of this binary; its result, or why there
/// is none.
pub(crate) fn run_in_child(test: &LeakTest, output: OutputMode) -> TrialResult {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let result_file = std::env::temp_dir().join(format!(
        "memwatch-{}-{}.result.json",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let name = test.full_name();
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return no_result(name, format!("could not find this test binary: {e}")),
    };
    let (out, err) = if output.nocapture {
        (Stdio::inherit(), Stdio::inherit())
    } else {
        (Stdio::piped(), Stdio::piped())
    };
    let ran = Command::new(&exe)
        .arg(&name)
        .env(env::CHILD, &result_file)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .output();
    let child = match ran {
        Ok(child) => child,
        Err(e) => {
            return no_result(name, format!("could not start {}: {e}", exe.display()));
        }
    };
    let result = read_result(&result_file);
    let _ = std::fs::remove_file(&result_file);
    let printed = printed(&child);
    match result {
        Some(mut r) => {
            if !printed.is_empty() && (r.failure.is_some() || output.show_output) {
                match &mut r.failure {
                    Some(f) => f.push_str(&format!("\n---- output of the test ----\n{printed}")),
                    None => {
                        let _ = std::io::stdout().write_all(printed.as_bytes());
                    }
                }
            }
            r
        }
        None => {
            let mut why = format!(
                "the test's process ended before it reported a result ({}).\n\
                 A panic during setup, an abort, a crash or a `std::process::exit` in the \
                 body ends a test this way; the other tests still run.",
                memwatch_report::describe_exit(&child.status)
            );
            if !printed.is_empty() {
                why.push_str(&format!("\n---- output of the test ----\n{printed}"));
            }
            no_result(name, why)
        }
    }
}

/// The test a child process (started with `variable` set) is to run: the
/// one its first argument names; exit code 2, said why, without one.
fn named_test(variable: &str) -> Result<&'static LeakTest, ExitCode> {
    let Some(name) = std::env::args().nth(1) else {
        eprintln!("error: {variable} is set, but no test is named");
        return Err(ExitCode::from(2));
    };
    registry::all()
        .into_iter()
        .find(|t| t.full_name() == name)
        .ok_or_else(|| {
            eprintln!("error: no leak test named `{name}` in this binary");
            ExitCode::from(2)
        })
}

fn no_result(name: String, why: String) -> TrialResult {
    TrialResult {
        failure: Some(why),
        row: SummaryRow::without_verdict(name, "crashed"),
    }
}

fn read_result(file: &Path) -> Option<TrialResult> {
    let bytes = std::fs::read(file).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn printed(child: &Output) -> String {
    let mut s = String::from_utf8_lossy(&child.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&child.stderr));
    s
}

/// The child's side: runs the test named by the first argument and writes
/// its result to `result_file`.
pub(crate) fn child(config: &Config, result_file: PathBuf) -> ExitCode {
    let test = match named_test(env::CHILD) {
        Ok(test) => test,
        Err(code) => return code,
    };
    write_json(&result_file, &trial::execute(test, config))
}

/// A child process's last act: `value` written to `file` as JSON; exit
/// code 2, said why, when it cannot be.
fn write_json(file: &Path, value: &impl Serialize) -> ExitCode {
    let written = serde_json::to_vec(value)
        .map_err(std::io::Error::other)
        .and_then(|json| std::fs::write(file, json));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: could not write {}: {e}", file.display());
            ExitCode::from(2)
        }
    }
}

/// What a test's process asks of the scan process it starts for the
/// test's sites (see [`crate::retainers`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct ScanRequest {
    /// Measured iterations of the capture window.
    pub iterations: u32,
    /// Look for what keeps each site's blocks alive (a leak).
    pub retainers: bool,
    /// Keep the first bytes of one block of each site.
    pub preview: bool,
}

/// Runs `test`'s capture window in a new process of this binary that
/// keeps every block from its start, and scans its heap at the window's
/// end; the sites it found, or why there are none. A scan process still
/// running after `timeout` is killed.
pub(crate) fn run_scan(
    test: &LeakTest,
    request: ScanRequest,
    timeout: Duration,
) -> Result<SiteReport, String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let stem = std::env::temp_dir().join(format!(
        "memwatch-{}-{}.scan",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let file = stem.with_extension("scan.json");
    let log = stem.with_extension("scan.log");
    let result = (|| {
        let json = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
        std::fs::write(&file, json)
            .map_err(|e| format!("could not write {}: {e}", file.display()))?;
        let exe =
            std::env::current_exe().map_err(|e| format!("could not find this test binary: {e}"))?;
        // Its output goes to a file: a pipe nobody reads while waiting
        // could fill and stop it.
        let out = std::fs::File::create(&log)
            .map_err(|e| format!("could not write {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut child = Command::new(&exe)
            .arg(test.full_name())
            .env(env::SCAN, &file)
            .env_remove(env::CHILD)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("could not start {}: {e}", exe.display()))?;
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() > timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "the scan process was still running after {}s, and was stopped",
                        timeout.as_secs()
                    ));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(format!("could not wait for the scan process: {e}")),
            }
        };
        let printed = std::fs::read_to_string(&log).unwrap_or_default();
        std::fs::read(&file)
            .ok()
            .filter(|_| status.success())
            .and_then(|bytes| serde_json::from_slice::<SiteReport>(&bytes).ok())
            .ok_or_else(|| {
                format!(
                    "the scan process ended without its findings ({}){}",
                    memwatch_report::describe_exit(&status),
                    match printed.trim() {
                        "" => String::new(),
                        p => format!(":\n{p}"),
                    }
                )
            })
    })();
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(&log);
    result
}

/// The scan process's side: runs the capture window of the test named by
/// the first argument as `file` asks, and writes the sites there.
pub(crate) fn scan_child(config: &Config, file: PathBuf) -> ExitCode {
    let test = match named_test(env::SCAN) {
        Ok(test) => test,
        Err(code) => return code,
    };
    let request: ScanRequest = match std::fs::read(&file)
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "error: could not read the scan request {}: {e}",
                file.display()
            );
            return ExitCode::from(2);
        }
    };
    // Processes the body starts are not scan processes. Still one thread
    // here: the test has not run yet.
    std::env::remove_var(env::SCAN);
    let what = runner::Capture {
        sites: true,
        dhat: None,
        paths_from: &config.workspace_root,
        iterations: request.iterations,
        scan: Some(runner::ScanAsk {
            retainers: request.retainers,
            preview: request.preview,
            // This frame is above every frame the test body runs in.
            stack_from: std::hint::black_box(&request) as *const ScanRequest as usize,
        }),
    };
    let sites = match runner::capture(test, &what) {
        Ok(Some(sites)) => sites,
        Ok(None) => {
            eprintln!("error: the capture run gave no sites");
            return ExitCode::from(2);
        }
        Err(panic) => {
            eprintln!("error: the test panicked in the scan's run: {panic}");
            return ExitCode::from(1);
        }
    };
    write_json(&file, &sites)
}
