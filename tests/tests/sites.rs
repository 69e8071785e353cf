//! Allocation sites: for leaks made in a helper function, a method, a
//! closure, a spawned thread and an async task, the top site is the user's
//! function that allocated, and a second run names the same sites.

use std::collections::BTreeMap;

use memwatch_e2e::run_fixture;
use serde_json::Value;

const FIXTURES: &str = env!("CARGO_BIN_EXE_site_fixtures");

/// Runs every site fixture in a process of its own; returns each test's
/// `sites` report.
fn run() -> BTreeMap<String, Value> {
    let (out, reports) = run_fixture(FIXTURES, &[], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    reports
        .into_iter()
        .map(|(test, report)| (test, report["sites"].clone()))
        .collect()
}

/// The sites without what may differ between builds: (function, file,
/// line, blocks and bytes per iteration).
fn key(sites: &Value) -> Vec<(String, String, u64, f64, f64)> {
    sites["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["frame"]["function"].as_str().unwrap().to_owned(),
                s["frame"]["file"].as_str().unwrap_or("").to_owned(),
                s["frame"]["line"].as_u64().unwrap_or(0),
                s["blocks_per_iteration"].as_f64().unwrap(),
                s["bytes_per_iteration"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_top_site_is_the_users_function_and_runs_agree() {
    let expected = [
        ("helper_function_leaks", "site_fixtures::remember", 48.0),
        ("method_leaks", "site_fixtures::Registry::register", 38.0),
        (
            "closure_leaks",
            "site_fixtures::closure_leaks::{{closure}}",
            24.0,
        ),
        (
            "spawned_thread_leaks",
            "site_fixtures::spawned_thread_leaks::{{closure}}",
            40.0,
        ),
        (
            "async_task_leaks",
            "site_fixtures::async_task_leaks::",
            40.0,
        ),
        (
            "many_threads_while_capturing_leaks",
            "site_fixtures::many_threads_while_capturing_leaks::{{closure}}",
            64.0,
        ),
    ];
    let first = run();
    let second = run();
    for (test, function, bytes) in expected {
        let sites = &first[test];
        let top = &sites["sites"][0];
        let name = top["frame"]["function"].as_str().unwrap();
        assert!(name.starts_with(function), "{test}: top site is {name}");
        assert_eq!(top["frame"]["kind"], "user", "{test}");
        // Relative to the workspace root: the member's folder first.
        assert_eq!(
            top["frame"]["file"], "tests/src/bin/site_fixtures.rs",
            "{test}"
        );
        assert!(top["frame"]["line"].as_u64().unwrap() > 0, "{test}");
        assert_eq!(top["blocks_per_iteration"], 1.0, "{test}");
        assert_eq!(top["bytes_per_iteration"], bytes, "{test}");
        assert_eq!(sites["unattributed_blocks"], 0, "{test}");
        // No frame of the runtime or the harness is shown.
        for frame in top["backtrace"].as_array().unwrap() {
            let f = frame["function"].as_str().unwrap();
            assert!(
                !f.starts_with("memwatch_test::") && !f.starts_with("std::"),
                "{test}: {f}"
            );
        }
        assert_eq!(
            key(sites),
            key(&second[test]),
            "{test}: a second run names the same sites"
        );
    }
}

/// The report of `static_vec_pushed_to_leaks`, run with or without
/// `MEMWATCH_SITES`.
fn static_vec_report(sites: bool) -> Value {
    let env: &[(&str, &str)] = if sites {
        &[("MEMWATCH_SITES", "1")]
    } else {
        &[]
    };
    let (out, reports) = run_fixture(
        env!("CARGO_BIN_EXE_verdict_fixtures"),
        &["--exact", "static_vec_pushed_to_leaks"],
        env,
    );
    assert!(out.status.success());
    reports["static_vec_pushed_to_leaks"].clone()
}

#[test]
fn memwatch_sites_asks_for_sites_on_any_test() {
    let report = static_vec_report(true);
    let top = &report["sites"]["sites"][0]["frame"];
    assert_eq!(
        top["function"],
        "verdict_fixtures::static_vec_pushed_to_leaks"
    );
    // Without it, a should_leak test that leaks as expected pays no capture.
    assert!(static_vec_report(false)["sites"].is_null());
}

/// 100 capturing tests in one process: the site table is reclaimed
/// between windows, so no block goes unattributed, however many windows a
/// process runs (before, blocks went unattributed from about the 24th).
#[test]
fn a_hundred_capture_windows_in_one_process_attribute_every_block() {
    let (out, reports) = run_fixture(
        FIXTURES,
        &["--ignored", "window_"],
        &[(memwatch_report::env::IN_PROCESS, "1")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(reports.len(), 100, "{:?}", reports.keys());
    for (test, report) in &reports {
        assert_eq!(report["verdict"]["kind"], "clean", "{test}");
        let sites = &report["sites"];
        assert_eq!(sites["unattributed_blocks"], 0, "{test}: {sites:#}");
    }
}
