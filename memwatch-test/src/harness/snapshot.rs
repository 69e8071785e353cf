//! A test's snapshot, compared and written by memwatch itself: no
//! assertion, no panic, nothing printed. The file format is the
//! contract's (insta's), so `cargo insta review` works on it too.
//!
//! - It matches the approved snapshot: the test passes; when its verdict is
//!   a leak (and it is no `should_leak` test), that leak is a *known leak*,
//!   accepted by review, and passes while it stays as approved.
//! - It differs: outside CI the new snapshot is written as `<name>.snap.new`
//!   for review; the test fails.
//! - There is none: outside CI a clean test's snapshot is recorded as
//!   approved and the test passes, saying so; a leak's is written as
//!   `.snap.new`, so that only review makes it a known leak.
//! - Under CI nothing is ever written, whatever `INSTA_UPDATE` or any other
//!   variable says, and a missing or changed snapshot fails.

use std::path::{Path, PathBuf};

use memwatch_report::naming::file_stem;
use memwatch_report::report::SnapshotStatus;
use memwatch_report::snapshot;

use super::Config;
use crate::registry::{LeakTest, SnapshotName};
use crate::report;
use crate::runner::{Outcome, Verdict};

/// What the comparison found.
#[derive(Debug)]
pub(crate) struct Check {
    pub status: SnapshotStatus,
    /// What to tell the user (a diff, where a file went, an error).
    pub message: Option<String>,
    /// The approved file, when one was recorded.
    pub path: Option<PathBuf>,
}

impl Check {
    fn off() -> Check {
        Check {
            status: SnapshotStatus::Off,
            message: None,
            path: None,
        }
    }
}

/// Whether this run is under CI: `CI` set to anything but empty, `0` or
/// `false`. Under CI no snapshot file is ever written.
fn under_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

/// The file stem of `test`'s snapshot, `None` with `snapshot = false`.
pub(crate) fn name(test: &LeakTest) -> Option<String> {
    match test.options.snapshot {
        SnapshotName::Off => None,
        SnapshotName::Default => Some(file_stem(&test.full_name())),
        SnapshotName::Named(name) => Some(name.to_owned()),
    }
}

/// Compares `outcome`'s snapshot with the approved one.
pub(crate) fn check(test: &LeakTest, config: &Config, outcome: &Outcome) -> Check {
    let Some(name) = name(test) else {
        return Check::off();
    };
    if matches!(outcome.verdict, Verdict::Panicked { .. }) {
        return Check::off();
    }
    let dir = config.snapshot_dir.clone();
    let body = report::snapshot_body(test, outcome);
    let body = body.trim_end_matches('\n');
    let approved_path = dir.join(snapshot::approved_file(&name));
    let pending_path = dir.join(snapshot::pending_file(&name));
    let approved = match std::fs::read_to_string(&approved_path) {
        Ok(file) => match snapshot::parse(&file) {
            Ok(snap) => Some(snap.body),
            Err(why) => {
                return failed(format!(
                    "the snapshot file {} is corrupt: {why}; fix or delete it",
                    approved_path.display()
                ))
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return failed(format!("could not read {}: {e}", approved_path.display())),
    };
    let ci = under_ci();
    let leaks = outcome.verdict.is_leak() && !test.options.should_leak;
    if approved.as_deref() == Some(body) {
        if !ci {
            // A pending file from an earlier run is out of date now.
            let _ = std::fs::remove_file(&pending_path);
        }
        return Check {
            status: if leaks {
                SnapshotStatus::KnownLeak
            } else {
                SnapshotStatus::Matched
            },
            message: None,
            path: None,
        };
    }
    let description = format!("memwatch leak test {} in {}", test.full_name(), test.file);
    let file = snapshot::render(test.file, &description, body);
    let clean_and_expected = outcome.verdict == Verdict::Clean && !test.options.should_leak;
    if approved.is_none() && clean_and_expected && !ci {
        return match write_atomically(&approved_path, &file) {
            Ok(()) => {
                let _ = std::fs::remove_file(&pending_path);
                Check {
                    status: SnapshotStatus::Recorded,
                    message: None,
                    path: Some(approved_path),
                }
            }
            Err(e) => failed(format!(
                "could not record the new snapshot {}: {e}",
                approved_path.display()
            )),
        };
    }
    let (written, next) = if ci {
        (
            "under CI nothing is written".to_owned(),
            "Run the tests outside CI to write it for review, then commit the accepted snapshot.",
        )
    } else {
        match write_atomically(&pending_path, &file) {
            Ok(()) => (
                format!("written to {} for review", pending_path.display()),
                "Review it with `cargo memwatch review` or `cargo insta review`.",
            ),
            Err(e) => (
                format!(
                    "it could not be written for review: {}: {e}",
                    pending_path.display()
                ),
                "Make that path writable, then run the tests again to write it for review.",
            ),
        }
    };
    let (status, what) = match &approved {
        Some(old) if snapshot::verdict_of(old).is_some_and(|v| v != "clean") => (
            SnapshotStatus::Changed,
            "changed: the known leak it approved is not what this run found",
        ),
        Some(_) => (SnapshotStatus::Changed, "changed"),
        None if leaks => (
            SnapshotStatus::New,
            "is new, and it records a leak: accepting it approves this leak as a known leak",
        ),
        None => (SnapshotStatus::New, "is new"),
    };
    let shown = match &approved {
        Some(old) => snapshot::diff(old, body),
        None => body.lines().map(|l| format!("+{l}\n")).collect(),
    };
    let message = format!(
        "the heap diff snapshot `{name}` {what} (in {}); {written}.\n{next}\n\
         --- approved\n+++ now\n{shown}",
        dir.display()
    );
    Check {
        status,
        message: Some(message),
        path: None,
    }
}

fn failed(message: String) -> Check {
    Check {
        status: SnapshotStatus::Changed,
        message: Some(message),
        path: None,
    }
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
