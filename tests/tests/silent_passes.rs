//! Nothing passes silently: a leak-test target under libtest's own harness,
//! a `#[test]` function in a leak-test target, a filter that matches
//! nothing, harness flags `cargo memwatch` would drop, and a body that ends
//! the process each fail, saying what to change.

use std::process::Output;

use memwatch_e2e::{stderr, stdout, Crate, Fixture, CLEAN, EXITING, WITH_A_TEST_FN};

/// `cargo test ARGS` in the fixture, outside CI.
fn cargo_test(f: &Fixture, args: &[&str]) -> Output {
    f.cargo(&[&["test"], args].concat())
        .output()
        .expect("cargo runs")
}

fn both(o: &Output) -> String {
    format!("{}\n{}", stdout(o), stderr(o))
}

#[test]
fn a_leak_test_target_without_harness_false_fails_with_the_fix() {
    let f = Fixture::new(&[Crate {
        name: "noharness",
        leaks: Some(CLEAN),
        standard_harness: true,
        ..Crate::default()
    }]);
    let out = cargo_test(&f, &["--test", "leaks"]);
    let text = both(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("the 2 leak test(s) of the target `leaks` did not run")
            && text.contains("[[test]]\nname = \"leaks\"\nharness = false"),
        "{text}"
    );
    let out = f.memwatch(&["test"]);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(
        stderr(&out).contains(
            "the target `leaks` of package `noharness` holds leak tests but is built with \
             libtest's own harness"
        ),
        "{}",
        both(&out)
    );
}

#[test]
fn a_test_function_in_a_leak_test_target_fails() {
    let f = Fixture::new(&[Crate {
        name: "stray",
        leaks: Some(WITH_A_TEST_FN),
        ..Crate::default()
    }]);
    let out = cargo_test(&f, &["--test", "leaks"]);
    let text = both(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("1 `#[test]` function(s) in a leak-test target never run")
            && text.contains("stray/tests/leaks.rs:9"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("test parse_is_clean") && l.ends_with("ok")),
        "the leak test still runs: {text}"
    );
    // cargo memwatch runs the check too.
    let out = f.memwatch(&["test"]);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    assert!(stdout(&out).contains("never run"), "{}", both(&out));
}

#[test]
fn a_body_that_exits_the_process_fails_and_the_others_still_run() {
    let f = Fixture::new(&[Crate {
        name: "exiting",
        leaks: Some(EXITING),
        ..Crate::default()
    }]);
    let out = cargo_test(&f, &["--test", "leaks"]);
    let text = both(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("the test's process ended before it reported a result (exit code 0)"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("test runs_after_it") && l.ends_with("ok")),
        "{text}"
    );
    let out = f.memwatch(&["test"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("exiting/leaks::exits_the_process") && l.contains("CRASHED")),
        "{text}"
    );
    assert!(text.contains("exit code 0"), "{text}");
}

#[test]
fn cargo_memwatch_filters_follow_libtest_and_a_miss_fails() {
    let f = Fixture::new(&[Crate {
        name: "filters",
        leaks: Some(CLEAN),
        ..Crate::default()
    }]);
    let ran = |args: &[&str]| -> (Option<i32>, String) {
        let out = f.memwatch(args);
        (out.status.code(), both(&out))
    };
    let rows = |text: &str| {
        text.lines()
            .filter(|l| l.starts_with("filters/leaks::"))
            .count()
    };

    let (code, text) = ran(&["test", "pars_is_clean"]);
    assert_eq!(code, Some(1), "a typo fails: {text}");
    assert!(
        text.contains("0 of 2 leak tests matched `pars_is_clean`"),
        "{text}"
    );

    let (code, text) = ran(&["test", "--", "parse", "format"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(rows(&text), 2, "{text}");

    let (code, text) = ran(&["test", "--exact", "parse_is_clean"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(rows(&text), 1, "{text}");

    let (code, text) = ran(&["test", "--skip", "format"]);
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(rows(&text), 1, "{text}");
    assert!(text.contains("filters/leaks::parse_is_clean"), "{text}");

    let (code, text) = ran(&["test", "--", "--exact", "parse"]);
    assert_eq!(code, Some(1), "exact: `parse` is no test's name: {text}");

    let (code, text) = ran(&["test", "parse", "--", "--nocapture"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("`--nocapture` after `--` is not taken"),
        "{text}"
    );
}
