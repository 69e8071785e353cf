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

#[test]
fn a_new_snapshot_is_proposed_outside_ci_and_fails_under_ci() {
    let dir = tempfile::tempdir().unwrap();
    let snaps = dir.path().join("snapshots");

    let under_ci = run(&snaps, true);
    assert!(
        !under_ci.status.success(),
        "a missing snapshot fails under CI"
    );
    assert!(files(&snaps).is_empty(), "nothing is written under CI");

    let local = run(&snaps, false);
    assert!(!local.status.success(), "a new snapshot needs review");
    assert!(
        stdout(&local).contains(&format!("snapshot `{TEST}` is new")),
        "{}",
        stdout(&local)
    );
    assert_eq!(files(&snaps), vec![format!("{TEST}.snap.new")]);
}

#[test]
fn an_approved_snapshot_passes_and_a_changed_one_fails_without_being_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let snaps = dir.path().join("snapshots");
    assert!(!run(&snaps, false).status.success());
    // Approve: what `cargo insta accept` does.
    let pending = snaps.join(format!("{TEST}.snap.new"));
    let approved = snaps.join(format!("{TEST}.snap"));
    std::fs::rename(&pending, &approved).unwrap();
    let text = std::fs::read_to_string(&approved).unwrap();
    assert!(text.contains("verdict: clean"), "{text}");
    assert!(text.contains("per iteration, by tag"), "{text}");

    for ci in [false, true] {
        let out = run(&snaps, ci);
        assert!(out.status.success(), "ci={ci}: {}", stdout(&out));
        assert_eq!(files(&snaps), vec![format!("{TEST}.snap")], "ci={ci}");
    }

    // Someone's change altered the diff: here, the approved text.
    let changed = text.replace("verdict: clean", "verdict: leak");
    std::fs::write(&approved, &changed).unwrap();

    let out = run(&snaps, true);
    assert!(!out.status.success(), "a changed diff fails under CI");
    assert_eq!(
        files(&snaps),
        vec![format!("{TEST}.snap")],
        "CI writes nothing"
    );

    let out = run(&snaps, false);
    assert!(!out.status.success(), "a changed diff fails outside CI");
    assert!(
        stdout(&out).contains(&format!("snapshot `{TEST}` changed")),
        "{}",
        stdout(&out)
    );
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
fn insta_update_cannot_overwrite_under_ci() {
    let dir = tempfile::tempdir().unwrap();
    let snaps = dir.path().join("snapshots");
    std::fs::create_dir_all(&snaps).unwrap();
    let approved = snaps.join(format!("{TEST}.snap"));
    let old = "---\nsource: tests/src/bin/verdict_fixtures.rs\n---\nverdict: leak\n";
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
