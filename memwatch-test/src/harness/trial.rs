//! One test, start to end: the run, its snapshot, its sites, its report,
//! its verdict.

use std::path::PathBuf;

use memwatch_report::naming::file_stem;
use memwatch_report::report::SnapshotStatus;

use super::snapshot::{self, Check};
use super::summary::{SummaryRow, TrialResult};
use super::{isolate, Config};
use crate::allocator::untracked;
use crate::registry::LeakTest;
use crate::report;
use crate::runner::{self, Verdict};
use crate::units::format_bytes_f64;

/// Runs `test` in this process and says how it ended.
pub(crate) fn execute(test: &'static LeakTest, config: &Config) -> TrialResult {
    let name = test.full_name();
    if let Some(shared) = config.collisions.get(&name) {
        return TrialResult {
            failure: Some(shared.clone()),
            row: SummaryRow::without_verdict(name, "not run"),
        };
    }
    let mut outcome = runner::run(test);
    let check = untracked(|| snapshot::check(test, config, &outcome));
    let expected = report::verdict_expected(test, &outcome);
    let known_leak = check.status == SnapshotStatus::KnownLeak;
    let panicked = matches!(outcome.verdict, Verdict::Panicked { .. });
    let passed = !panicked && (expected || known_leak) && !check.status.fails();

    // Stacks are costly: captured in a second run, for a leak that fails
    // its test, or when asked for.
    let leaked = outcome.verdict == Verdict::Leak;
    // A task or thread leak captures too: its sites say where the pending
    // task or the thread was spawned.
    let want_sites = (outcome.verdict.is_leak() && !passed && !test.options.should_leak)
        || test.options.sites
        || config.sites;
    let dhat_file = config
        .dhat_dir
        .as_ref()
        .filter(|_| leaked)
        .map(|dir| dir.join(format!("{}.dhat.json", file_stem(&name))));
    if let Some(dir) = dhat_file.as_deref().and_then(std::path::Path::parent) {
        let _ = std::fs::create_dir_all(dir);
    }
    let iterations = test
        .options
        .iterations
        .min(outcome.measured_iterations())
        .max(1);
    // Sites come from a scan process where the scan runs: it also finds
    // what keeps a leak's blocks alive.
    let scanned = want_sites && cfg!(all(target_os = "linux", target_arch = "x86_64"));
    if scanned {
        let request = isolate::ScanRequest {
            iterations,
            retainers: outcome.verdict.is_leak(),
            preview: config.preview,
        };
        // The scan runs at most the iterations of the first run, plus a
        // process start and the scan: far less than this.
        let timeout = std::time::Duration::from_secs(60) + outcome.duration * 2;
        match isolate::run_scan(test, request, timeout) {
            Ok(sites) => outcome.sites = Some(sites),
            Err(why) => outcome.sites_error = Some(why),
        }
    }
    if (want_sites && !scanned) || dhat_file.is_some() {
        let what = runner::Capture {
            sites: want_sites && !scanned,
            dhat: dhat_file.as_deref(),
            paths_from: &config.workspace_root,
            iterations,
            scan: None,
        };
        if let Ok(sites) = runner::capture(test, &what) {
            if sites.is_some() {
                outcome.sites = sites;
            }
            outcome.dhat_file = dhat_file.filter(|f| f.is_file());
        }
    }

    let mut failures: Vec<String> = Vec::new();
    if !(expected || known_leak) {
        failures.push(report::failure_text(test, &outcome));
    }
    let Check {
        status, message, ..
    } = check;
    if let Some(m) = message.filter(|_| status.fails() || !passed) {
        failures.push(m);
    }
    if let Some(dir) = &config.report_dir {
        let written = untracked(|| {
            let failure = (!failures.is_empty()).then(|| failures.join("\n"));
            let doc = report::build(test, &outcome, passed, status, failure);
            report::write(&doc, dir, &file_stem(&name))
        });
        if let Err(e) = written {
            failures.push(format!(
                "could not write the report to {}: {e}",
                dir.display()
            ));
        }
    }
    let (bytes, blocks) = outcome.growth_per_iteration();
    let note = match status {
        _ if !failures.is_empty() => None,
        SnapshotStatus::KnownLeak => Some("known leak, as approved in its snapshot".to_owned()),
        SnapshotStatus::Recorded => check
            .path
            .map(|p: PathBuf| format!("new snapshot recorded: {}", p.display())),
        _ if test.options.should_leak => Some("caught, as expected (should_leak)".to_owned()),
        _ => None,
    };
    TrialResult {
        failure: (!failures.is_empty()).then(|| failures.join("\n")),
        row: SummaryRow {
            name,
            verdict: outcome.verdict.kind().to_owned(),
            // A panicked run's figures mean nothing.
            growth: if panicked {
                "-".to_owned()
            } else {
                format!(
                    "{}/iter, {:+.2} blocks/iter",
                    format_bytes_f64(bytes),
                    blocks
                )
            },
            iterations: outcome.iterations_run(),
            passed: failures.is_empty(),
            note,
        },
    }
}
