//! Long-running programs: the `slow_leak` example service is caught within
//! a bounded number of checkpoints, and the same service without its leak
//! raises no alarm.

use std::process::Command;

use memwatch_e2e::{repo_root, stdout};

fn slow_leak(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO"))
        .args([
            "run",
            "-q",
            "-p",
            "memwatch-test",
            "--example",
            "slow_leak",
            "--",
        ])
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap()
}

#[test]
fn a_slow_leak_is_caught_within_bounded_checkpoints() {
    let out = slow_leak(&[]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("heap growth over 5 consecutive collections"),
        "{text}"
    );
    let after: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("caught after "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    // Counted from the first checkpoint: the warm-up (20), then 5 growing.
    assert!((24..=30).contains(&after), "{text}");
}

#[test]
fn without_the_leak_there_is_no_alarm() {
    let out = slow_leak(&["--no-leak"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("no leak reported in 100 checkpoints"),
        "{text}"
    );
}
