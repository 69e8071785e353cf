//! The snapshot of a leak test through its life: new, approved, changed,
//! outside CI and under CI. Approved snapshots are never overwritten.

use std::path::Path;
use std::process::{Command, Output};

const FIXTURES: &str = env!("CARGO_BIN_EXE_verdict_fixtures");
const TEST: &str = "pure_work_is_clean";

fn run(snapshots: &Path, ci: bool) -> Output {
    let mut cmd = Command::new(FIXTURES);
    cmd.args(["--exact", TEST])
        .env("MEMWATCH_SNAPSHOT_DIR", snapshots)
        .env_remove("INSTA_UPDATE")
        .env_remove("INSTA_FORCE_PASS")
        .env_remove("MEMWATCH_REPORT_DIR");
    if ci {
        cmd.env("CI", "true");
    } else {
        cmd.env_remove("CI");
    }
    cmd.output().unwrap()
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs the ignored fixture `test` with `env`, outside CI.
fn run_ignored(snapshots: &Path, test: &str, env: &[(&str, &str)]) -> Output {
    Command::new(FIXTURES)
        .args(["--ignored", "--exact", test])
        .env("MEMWATCH_SNAPSHOT_DIR", snapshots)
        .env_remove("CI")
        .env_remove("INSTA_UPDATE")
        .env_remove("MEMWATCH_REPORT_DIR")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

/// What `cargo memwatch accept` and `cargo insta accept` do.
fn accept(snaps: &Path, name: &str) {
    std::fs::rename(
        snaps.join(format!("{name}.snap.new")),
        snaps.join(format!("{name}.snap")),
    )
    .unwrap();
}

#[test]
fn a_snapshot_that_cannot_be_written_for_review_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let snaps = dir.path().join("snapshots");
    assert!(run(&snaps, false).status.success(), "recorded");
    let approved = snaps.join(format!("{TEST}.snap"));
    let text = std::fs::read_to_string(&approved).unwrap();
    std::fs::write(&approved, text.replace("verdict: clean", "verdict: leak")).unwrap();
    // A folder where the `.snap.new` file would go: no rename can replace
    // it, also for root, who may write into a read-only folder.
    let pending = snaps.join(format!("{TEST}.snap.new"));
    std::fs::create_dir_all(pending.join("in-the-way")).unwrap();

    let out = run(&snaps, false);
    let text = stdout(&out);
    assert!(!out.status.success(), "a changed snapshot fails: {text}");
    assert!(
        text.contains(&format!(
            "it could not be written for review: {}",
            pending.display()
        )),
        "{text}"
    );
    assert!(
        text.contains("Make that path writable") && !text.contains("Review it with"),
        "no review is offered for a file that is not there: {text}"
    );
    assert!(pending.is_dir(), "what was in the way is left as it was");
}

#[test]
fn a_new_clean_snapshot_is_recorded_outside_ci_and_fails_under_ci() {
    let dir = tempfile::tempdir().unwrap();
    let snaps = dir.path().join("snapshots");

    let under_ci = run(&snaps, true);
    assert!(
        !under_ci.status.success(),
        "a missing snapshot fails under CI"
    );
    assert!(
        stdout(&under_ci).contains("under CI nothing is written")
            && stdout(&under_ci).contains("Run the tests outside CI to write it for review")
            && !stdout(&under_ci).contains("Review it with"),
        "{}",
        stdout(&under_ci)
    );
    assert!(files(&snaps).is_empty(), "nothing is written under CI");

    let local = run(&snaps, false);
    assert!(local.status.success(), "{}", stdout(&local));
    assert!(
        stdout(&local).contains("new snapshot recorded"),
        "it says so: {}",
        stdout(&local)
    );
    assert_eq!(files(&snaps), vec![format!("{TEST}.snap")]);
    let text = std::fs::read_to_string(snaps.join(format!("{TEST}.snap"))).unwrap();
    assert_eq!(
        text,
        format!(
            "---\nsource: tests/src/bin/verdict_fixtures.rs\n\
             description: memwatch leak test {TEST} in tests/src/bin/verdict_fixtures.rs\n---\n\
             verdict: clean\nkept per iteration: nothing\n"
        )
    );
    // Now approved: CI passes on it.
    assert!(run(&snaps, true).status.success());
}

#[test]
fn an_approved_snapshot_passes_and_a_changed_one_fails_without_being_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let snaps = dir.path().join("snapshots");
    assert!(run(&snaps, false).status.success());
    let approved = snaps.join(format!("{TEST}.snap"));
    for ci in [false, true] {
        let out = run(&snaps, ci);
        assert!(out.status.success(), "ci={ci}: {}", stdout(&out));
        assert_eq!(files(&snaps), vec![format!("{TEST}.snap")], "ci={ci}");
    }

    // Pretend the approved diff was different.
    let changed = std::fs::read_to_string(&approved)
        .unwrap()
        .replace("verdict: clean", "verdict: leak");
    std::fs::write(&approved, &changed).unwrap();
    let ci = run(&snaps, true);
    assert!(!ci.status.success(), "a changed snapshot fails under CI");
    assert_eq!(files(&snaps), vec![format!("{TEST}.snap")]);
    let local = run(&snaps, false);
    assert!(!local.status.success());
    assert_eq!(
        files(&snaps),
        vec![format!("{TEST}.snap"), format!("{TEST}.snap.new")]
    );
    assert_eq!(
        std::fs::read_to_string(&approved).unwrap(),
        changed,
        "the approved snapshot is never overwritten"
    );
}

#[test]
fn temporary_allocations_that_change_keep_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let snaps = dir.path().join("snapshots");
    let test = "temporaries_vary_is_clean";
    let first = run_ignored(&snaps, test, &[("FIXTURE_TEMPORARIES", "1")]);
    assert!(first.status.success(), "{}", stdout(&first));
    let approved = std::fs::read(snaps.join(format!("{test}.snap"))).unwrap();
    // Ten times the temporaries, longer ones: a refactor, no leak.
    for n in ["2", "10", "40"] {
        let out = Command::new(FIXTURES)
            .args(["--ignored", "--exact", test])
            .env("MEMWATCH_SNAPSHOT_DIR", &snaps)
            .env("FIXTURE_TEMPORARIES", n)
            .env("CI", "true")
            .env_remove("MEMWATCH_REPORT_DIR")
            .output()
            .unwrap();
        assert!(out.status.success(), "{n}: {}", stdout(&out));
    }
    assert_eq!(files(&snaps), vec![format!("{test}.snap")]);
    assert_eq!(
        std::fs::read(snaps.join(format!("{test}.snap"))).unwrap(),
        approved
    );
}

#[test]
fn an_approved_leak_is_a_known_leak_until_it_grows() {
    let dir = tempfile::tempdir().unwrap();
    let snaps = dir.path().join("snapshots");
    let test = "cache_that_keeps_a_buffer_leaks";
    let bytes = [("FIXTURE_LEAK_BYTES", "64")];

    // A new leak is never recorded as approved: it waits for review.
    let first = run_ignored(&snaps, test, &bytes);
    assert!(!first.status.success());
    assert!(
        stdout(&first)
            .contains("it records a leak: accepting it approves this leak as a known leak"),
        "{}",
        stdout(&first)
    );
    assert_eq!(files(&snaps), vec![format!("{test}.snap.new")]);
    accept(&snaps, test);

    // Approved: it passes while it stays as it is, under CI too, and says so.
    let reports = tempfile::tempdir().unwrap();
    let known = Command::new(FIXTURES)
        .args(["--ignored", "--exact", test])
        .env("MEMWATCH_SNAPSHOT_DIR", &snaps)
        .env("MEMWATCH_REPORT_DIR", reports.path())
        .env("CI", "true")
        .envs(bytes)
        .output()
        .unwrap();
    assert!(known.status.success(), "{}", stdout(&known));
    assert!(
        stdout(&known).contains("known leak, as approved in its snapshot"),
        "{}",
        stdout(&known)
    );
    let report = &memwatch_e2e::read_reports(reports.path())[test];
    assert_eq!(report["snapshot"], "known_leak");
    assert_eq!(report["passed"], true);
    assert_eq!(report["verdict"]["kind"], "leak");

    // It grows: it fails, with the approved and the new figures.
    let grown = run_ignored(&snaps, test, &[("FIXTURE_LEAK_BYTES", "128")]);
    let text = stdout(&grown);
    assert!(!grown.status.success(), "{text}");
    assert!(
        text.contains("changed: the known leak it approved is not what this run found"),
        "{text}"
    );
    assert!(
        text.contains("memory leak: "),
        "the leak is reported: {text}"
    );
    assert!(
        text.contains("-  (untagged)  +1 block  +96 bytes\n+  (untagged)  +1 block  +160 bytes"),
        "{text}"
    );
    assert_eq!(
        files(&snaps),
        vec![format!("{test}.snap"), format!("{test}.snap.new")]
    );
}

#[test]
fn insta_update_cannot_overwrite_under_ci() {
    let dir = tempfile::tempdir().unwrap();
    let snaps = dir.path().join("snapshots");
    std::fs::create_dir_all(&snaps).unwrap();
    let approved = snaps.join(format!("{TEST}.snap"));
    let old = "---\nsource: tests/src/bin/verdict_fixtures.rs\n---\nverdict: leak\n";
    // A new snapshot too: nothing is recorded under CI, whatever insta's
    // variables say.
    let fresh = tempfile::tempdir().unwrap();
    let out = Command::new(FIXTURES)
        .args(["--exact", TEST])
        .env("MEMWATCH_SNAPSHOT_DIR", fresh.path())
        .env("CI", "true")
        .env("INSTA_UPDATE", "always")
        .env_remove("MEMWATCH_REPORT_DIR")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a missing snapshot fails under CI");
    assert!(files(fresh.path()).is_empty());
    std::fs::write(&approved, old).unwrap();
    let out = Command::new(FIXTURES)
        .args(["--exact", TEST])
        .env("MEMWATCH_SNAPSHOT_DIR", &snaps)
        .env("CI", "true")
        .env("INSTA_UPDATE", "always")
        .env("INSTA_FORCE_PASS", "1")
        .env_remove("MEMWATCH_REPORT_DIR")
        .output()
        .unwrap();
    assert!(!out.status.success(), "a changed snapshot fails under CI");
    assert_eq!(files(&snaps), vec![format!("{TEST}.snap")]);
    assert_eq!(std::fs::read_to_string(&approved).unwrap(), old);
}

#[test]
fn a_snapshot_failure_prints_a_diff_and_nothing_inside_the_test_line() {
    let dir = tempfile::tempdir().unwrap();
    let snaps = dir.path().join("snapshots");
    std::fs::create_dir_all(&snaps).unwrap();
    let approved = snaps.join(format!("{TEST}.snap"));
    std::fs::write(&approved, "---\nsource: x.rs\n---\nverdict: leak\n").unwrap();
    let out = Command::new(FIXTURES)
        .args(["--exact", TEST])
        .env("MEMWATCH_SNAPSHOT_DIR", &snaps)
        .env("RUST_BACKTRACE", "1")
        .env_remove("CI")
        .env_remove("MEMWATCH_REPORT_DIR")
        .output()
        .unwrap();
    let text = stdout(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.lines().any(|l| l == format!("test {TEST} ... FAILED")),
        "{text}"
    );
    assert!(
        text.contains("--- approved\n+++ now\n-verdict: leak\n+verdict: clean\n"),
        "{text}"
    );
    assert!(
        !text.contains("Snapshot Summary") && !err.contains("panicked"),
        "{text}\n{err}"
    );
    // The proposed file names the test's own source, with no line.
    let pending = std::fs::read_to_string(snaps.join(format!("{TEST}.snap.new"))).unwrap();
    assert!(
        pending.starts_with("---\nsource: tests/src/bin/verdict_fixtures.rs\n"),
        "{pending}"
    );
    assert!(!pending.contains("assertion_line"), "{pending}");
}

#[test]
fn json_output_stays_one_object_a_line_with_a_new_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(FIXTURES)
        .args([
            "--exact",
            TEST,
            "--format",
            "json",
            "-Z",
            "unstable-options",
        ])
        .env("MEMWATCH_SNAPSHOT_DIR", dir.path().join("snapshots"))
        .env("CI", "true")
        .env_remove("MEMWATCH_REPORT_DIR")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(!text.trim().is_empty());
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("{e}: {line:?}\n{text}"));
    }
}
