//! Runs each leak test in a process of its own, several at a time.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use memwatch_report::report::{self, Report};

use crate::cargo::{LeakTestRef, TestBinary};
use crate::process;
use crate::runs;

/// How one test ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The verdict is what the test expects and its snapshot matched.
    Passed,
    /// The verdict is not what the test expects (a leak, a panic, or no leak
    /// where `should_leak` wanted one).
    Failed,
    /// It leaks, as its approved snapshot records: a known leak, accepted by
    /// review. It passes.
    KnownLeak,
    /// The verdict is right but the snapshot is new or changed.
    SnapshotChanged,
    /// The process died without a report: a signal, an abort, an exit.
    Crashed(String),
    /// The process ran past its time limit and was stopped.
    TimedOut,
}

/// One test's result.
#[derive(Debug, Clone)]
pub struct TestResult {
    pub test: LeakTestRef,
    pub status: Status,
    /// `clean`, `leak`, `task_leak`, `panicked`, or `crashed`/`timed out`.
    pub verdict: String,
    /// The harness's JSON report, when it wrote one.
    pub report: Option<Report>,
    pub duration: Duration,
    /// What the test printed: its failure message is in there.
    pub output: String,
}

impl TestResult {
    pub fn ok(&self) -> bool {
        matches!(self.status, Status::Passed | Status::KnownLeak)
    }

    /// The harness's failure message for this test, from its output.
    pub fn message(&self) -> String {
        let header = format!("---- {} ----", self.test.name);
        if let Some(start) = self.output.find(&header) {
            let rest = &self.output[start + header.len()..];
            let end = rest.find("\nfailures:").unwrap_or(rest.len());
            return rest[..end].trim().to_owned();
        }
        match &self.status {
            Status::Crashed(how) => format!("the test process crashed ({how})"),
            Status::TimedOut => {
                "the test ran past its time limit (`--timeout`) and was stopped".to_owned()
            }
            _ => self.output.trim().to_owned(),
        }
    }
}

/// What a run needs to know.
pub struct Plan<'a> {
    pub binaries: &'a [TestBinary],
    pub tests: Vec<LeakTestRef>,
    pub jobs: usize,
    pub timeout: Duration,
    /// Reports and outputs go here, one folder per test.
    pub run_dir: PathBuf,
    /// Capture allocation sites for every test.
    pub sites: bool,
    /// Folder for DHAT files of leaking tests.
    pub dhat: Option<PathBuf>,
}

/// Runs every test of the plan; `progress` is called as each one ends.
pub fn run(plan: Plan<'_>, progress: &(dyn Fn(&TestResult) + Sync)) -> Result<Vec<TestResult>> {
    std::fs::create_dir_all(&plan.run_dir)
        .with_context(|| format!("could not create {}", plan.run_dir.display()))?;
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<TestResult>>> = Mutex::new(vec![None; plan.tests.len()]);
    let error: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..plan.jobs.max(1).min(plan.tests.len().max(1)) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(test) = plan.tests.get(i) else { break };
                match run_one(&plan, i, test) {
                    Ok(result) => {
                        progress(&result);
                        results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(result);
                    }
                    Err(e) => {
                        *error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                        break;
                    }
                }
            });
        }
    });
    if let Some(e) = error.into_inner().unwrap_or_else(|e| e.into_inner()) {
        return Err(e);
    }
    Ok(results
        .into_inner()
        .unwrap_or_else(|e| e.into_inner())
        .into_iter()
        .flatten()
        .collect())
}

fn run_one(plan: &Plan<'_>, index: usize, test: &LeakTestRef) -> Result<TestResult> {
    let binary = &plan.binaries[test.binary];
    // The report names the test within its binary; the page wants the id.
    let dir = runs::create_test_dir(&plan.run_dir, index, &test.id)?;
    let out_path = dir.join("output.txt");
    let out = std::fs::File::create(&out_path)?;
    let started = Instant::now();
    let mut command = Command::new(&binary.exe);
    if plan.sites {
        command.env(memwatch_report::env::SITES, "1");
    }
    if let Some(dhat) = &plan.dhat {
        command.env(memwatch_report::env::DHAT, dhat);
    }
    command
        .args(["--exact", &test.name, "--include-ignored"])
        .env(memwatch_report::env::REPORT_DIR, &dir)
        // One test a process already: the harness need not start another.
        .env(memwatch_report::env::IN_PROCESS, "1")
        .current_dir(&binary.package_dir)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out);
    let mut child = process::spawn(&mut command)
        .with_context(|| format!("could not run {}", binary.exe.display()))?;
    let status = process::wait_until(&mut child, started + plan.timeout)?;
    let duration = started.elapsed();
    let output =
        String::from_utf8_lossy(&std::fs::read(&out_path).unwrap_or_default()).into_owned();
    let report = read_report(&dir).with_context(|| {
        format!(
            "the leak test {} wrote a report that cannot be read",
            test.id
        )
    })?;
    if let Some(copy_to) =
        memwatch_report::env::folder(memwatch_report::env::REPORT_DIR, &binary.package_dir)?
    {
        // The user asked for the reports in a folder of their own too.
        copy_reports(&dir, &copy_to)?;
    }
    let (status, verdict) = classify(status, report.as_ref());
    Ok(TestResult {
        test: test.clone(),
        status,
        verdict,
        report,
        duration,
        output,
    })
}

/// The one JSON report the harness wrote in `dir`: `None` when it wrote
/// none (it crashed), an error when it is not a report of the contract's
/// version.
pub fn read_report(dir: &Path) -> Result<Option<Report>> {
    let Some(path) = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
    else {
        return Ok(None);
    };
    let bytes =
        std::fs::read(&path).with_context(|| format!("could not read {}", path.display()))?;
    let report = report::read(&bytes).with_context(|| path.display().to_string())?;
    Ok(Some(report))
}

/// Copies the JSON reports of `from` into `to`, as the harness would have
/// written them there.
fn copy_reports(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("could not create {}", to.display()))?;
    for entry in std::fs::read_dir(from)? {
        let path = entry?.path();
        if let (Some(name), true) = (
            path.file_name(),
            path.extension().is_some_and(|x| x == "json"),
        ) {
            std::fs::copy(&path, to.join(name)).with_context(|| {
                format!("could not copy {} to {}", path.display(), to.display())
            })?;
        }
    }
    Ok(())
}

fn classify(status: Option<ExitStatus>, report: Option<&Report>) -> (Status, String) {
    let Some(status) = status else {
        return (Status::TimedOut, "timed out".to_owned());
    };
    let Some(report) = report else {
        // libtest's failure code without a report: the harness failed the
        // test before running it (a bad name, a shared snapshot file).
        if status.code() == Some(101) {
            return (Status::Failed, "not run".to_owned());
        }
        return (
            Status::Crashed(memwatch_report::describe_exit(&status)),
            "crashed".to_owned(),
        );
    };
    let verdict = report.verdict.kind().to_owned();
    let s = if status.success() && report.passed {
        if report.known_leak() {
            Status::KnownLeak
        } else {
            Status::Passed
        }
    } else if report.passed {
        // A report that says passed, from a process that did not end well.
        Status::Crashed(memwatch_report::describe_exit(&status))
    } else if report.verdict_expected() && report.snapshot.fails() {
        Status::SnapshotChanged
    } else {
        Status::Failed
    };
    (s, verdict)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_of_another_version_is_a_clear_error() {
        let dir = std::env::temp_dir().join(format!("memwatch-run-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(read_report(&dir).unwrap().is_none(), "no report: a crash");
        std::fs::write(dir.join("t.json"), r#"{"version": 2, "test": "t"}"#).unwrap();
        let err = format!("{:#}", read_report(&dir).unwrap_err());
        assert!(
            err.contains("it is a version 2 report, and this cargo memwatch reads version 3"),
            "{err}"
        );
        std::fs::write(dir.join("t.json"), r#"{"version": 3, "test": "t"}"#).unwrap();
        let err = format!("{:#}", read_report(&dir).unwrap_err());
        assert!(err.contains("it is a broken version 3 report"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
