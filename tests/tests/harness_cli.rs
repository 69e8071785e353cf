//! The harness speaks libtest's command line, and a panicking body fails
//! its test with no verdict.

use std::process::{Command, Output};

use memwatch_e2e::run_fixture;

const FIXTURES: &str = env!("CARGO_BIN_EXE_verdict_fixtures");

fn fixtures(args: &[&str]) -> Output {
    Command::new(FIXTURES)
        .args(args)
        .env("CI", "true")
        .env_remove("MEMWATCH_REPORT_DIR")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn list_names_every_test_as_libtest_does() {
    let out = fixtures(&["--list"]);
    assert!(out.status.success());
    let text = stdout(&out);
    let tests: Vec<&str> = text.lines().filter(|l| l.ends_with(": test")).collect();
    assert_eq!(tests.len(), 40, "{text}");
    assert!(tests.contains(&"box_leak_leaks: test"));
    assert!(tests.contains(&"panicking_body: test"));
    assert!(
        !text.contains("memwatch leak tests:"),
        "no summary when listing"
    );

    let ignored = stdout(&fixtures(&["--list", "--ignored"]));
    assert_eq!(ignored.lines().filter(|l| l.ends_with(": test")).count(), 8);
}

#[test]
fn filters_skip_and_exact_select_tests() {
    let out = fixtures(&["_leaks", "--skip", "async", "--skip", "task_"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.lines()
            .any(|l| l.starts_with("test box_leak_leaks ") && l.ends_with("... ok")),
        "{text}"
    );
    assert!(!text.contains("leak_in_an_async_task_leaks"), "{text}");
    assert!(!text.contains("pure_work_is_clean"), "{text}");
    assert!(text.contains("13 passed"), "{text}");

    let exact = stdout(&fixtures(&["--exact", "jitter_is_clean"]));
    assert!(exact.contains("1 passed"), "{exact}");
}

#[test]
fn json_format_is_for_machines() {
    let out = fixtures(&[
        "--format",
        "json",
        "-Z",
        "unstable-options",
        "--exact",
        "pure_work_is_clean",
    ]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}");
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(events
        .iter()
        .any(|e| e["type"] == "test" && e["event"] == "ok" && e["name"] == "pure_work_is_clean"));
}

#[test]
fn a_panicking_body_fails_with_no_verdict() {
    let (out, reports) = run_fixture(FIXTURES, &["--ignored", "--exact", "panicking_body"], &[]);
    let text = stdout(&out);
    assert!(!out.status.success());
    assert!(
        text.contains("the test body panicked in iteration 5 (measured): the fifth call breaks"),
        "{text}"
    );
    assert!(text.contains("no leak verdict"), "{text}");
    let report = &reports["panicking_body"];
    assert_eq!(report["verdict"]["kind"], "panicked");
    assert_eq!(report["verdict"]["iteration"], 5);
    assert_eq!(report["passed"], false);
}

#[test]
fn soak_tests_run_for_their_duration() {
    let (out, reports) = run_fixture(FIXTURES, &["--ignored", "soak_"], &[]);
    assert!(out.status.success(), "{}", stdout(&out));
    let read = |name: &str| reports[name].clone();
    for (name, verdict) in [
        ("soak_leak_is_caught", "leak"),
        ("soak_clean_runs_its_duration", "clean"),
    ] {
        let r = read(name);
        assert_eq!(r["verdict"]["kind"], verdict, "{name}");
        assert_eq!(
            r["rounds"].as_array().unwrap().len(),
            3,
            "{name}: all three rounds"
        );
        assert!(
            r["duration_ms"].as_f64().unwrap() >= 350.0,
            "{name}: {}",
            r["duration_ms"]
        );
        // The rounds follow each other with no iteration left out. (How
        // many iterations fit in a round's time depends on the machine's
        // load: not asserted.)
        let rounds = r["rounds"].as_array().unwrap();
        let iteration = |i: usize, end: &str| rounds[i][end].as_u64().unwrap();
        for i in 0..rounds.len() {
            assert!(
                iteration(i, "first") <= iteration(i, "last"),
                "{name}: {rounds:?}"
            );
            if i > 0 {
                assert_eq!(
                    iteration(i, "first"),
                    iteration(i - 1, "last") + 1,
                    "{name}: round {} starts where round {i} ended: {rounds:?}",
                    i + 1
                );
            }
        }
    }
}

#[test]
fn a_task_leak_says_what_to_look_for_and_nothing_empty() {
    let out = fixtures(&["--ignored", "--exact", "unexpected_task_leak"]);
    let text = stdout(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("task leak: 1 task(s) spawned by the body"),
        "{text}"
    );
    assert!(
        text.contains("next: find what the pending task waits on"),
        "{text}"
    );
    // Where the pending task was spawned: the body's line of the spawn.
    let spawn_line = include_str!("../src/bin/verdict_fixtures.rs")
        .lines()
        .position(|l| l.contains("async fn unexpected_task_leak"))
        .map(|i| i + 3)
        .expect("the fixture");
    assert!(
        text.contains(&format!(
            "the pending tasks were spawned at:\n    verdict_fixtures::unexpected_task_leak::{{{{closure}}}} (tests/src/bin/verdict_fixtures.rs:{spawn_line}), through tokio::task::spawn::spawn"
        )),
        "{text}"
    );
    assert!(text.contains("capture run of 1 iteration,"), "{text}");
    assert!(!text.contains("rounds (measured iterations"), "{text}");
    assert!(!text.contains("0 of 0 measured iterations"), "{text}");
    assert!(
        !text.contains("find what keeps these blocks alive"),
        "{text}"
    );
}
