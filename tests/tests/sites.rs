//! Allocation sites: for leaks made in a helper function, a method, a
//! closure, a spawned thread and an async task, the top site is the user's
//! function that allocated, and a second run names the same sites.

use std::collections::BTreeMap;

use memwatch_e2e::run_fixture;
use serde_json::Value;

const FIXTURES: &str = env!("CARGO_BIN_EXE_site_fixtures");

/// Runs every test of the fixture binary `exe`, each in a process of its
/// own, and checks that all pass; returns their reports by test name.
fn reports_of(exe: &str) -> BTreeMap<String, Value> {
    let (out, reports) = run_fixture(exe, &[], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    reports
}

/// Runs every site fixture; returns each test's `sites` report.
fn run() -> BTreeMap<String, Value> {
    reports_of(FIXTURES)
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

const PUBLISHED: &str = env!("CARGO_BIN_EXE_published_crate_leaks");
const PUBLISHED_SOURCE: &str = include_str!("../src/bin/published_crate_leaks.rs");
const PUBLISHED_FILE: &str = "tests/src/bin/published_crate_leaks.rs";

/// The line of the published-crate fixtures that holds `needle`.
fn line_of(needle: &str) -> u64 {
    let lines: Vec<usize> = PUBLISHED_SOURCE
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(lines.len(), 1, "{needle} is on one line: {lines:?}");
    lines[0] as u64
}

/// A site as compared between runs: its frame, the dependency frame that
/// allocated and the spawn, with the rates when `rates`.
fn site_key(site: &Value, rates: bool) -> String {
    let mut key = format!(
        "{} {}:{} in {} spawned by {}",
        site["frame"]["function"],
        site["frame"]["file"],
        site["frame"]["line"],
        site["allocated_in"]["function"],
        site["spawned_by"],
    );
    if rates {
        key += &format!(
            " {} {}",
            site["blocks_per_iteration"], site["bytes_per_iteration"]
        );
    }
    key
}

/// Leaks through serde_json, regex, tracing, tokio and std's threads: each
/// site names the user's function and line first (however deep the
/// library's stack under it), with the library frame that allocated; a
/// task or a thread is named where it was spawned; a second run names the
/// same sites.
#[test]
fn leaks_through_published_crates_name_the_users_line_first() {
    let first = reports_of(PUBLISHED);
    let second = reports_of(PUBLISHED);
    let expected = [
        (
            "audit_log_leaks",
            "leak",
            "handle_request",
            "serde_json::from_str(body)",
            Some("serde_json::"),
        ),
        (
            "regex_rule_cache_leaks",
            "leak",
            "rule_for",
            "regex::Regex::new(&pattern)",
            Some("regex_automata::"),
        ),
        (
            "tracing_span_leaks",
            "leak",
            "start_request",
            "tracing::info_span!",
            Some(""),
        ),
        (
            "orphaned_task_leaks",
            "task_leak",
            "spawn_watcher",
            "tokio::spawn(async move",
            Some("tokio::"),
        ),
        (
            "detached_worker_leaks",
            "thread_leak",
            "start_worker",
            "let (tx, rx) = std::sync::mpsc::channel",
            None,
        ),
    ];
    for (test, verdict, function, needle, allocated_in) in expected {
        let report = &first[test];
        assert_eq!(report["verdict"]["kind"], verdict, "{test}");
        let sites = &report["sites"];
        assert_eq!(sites["unattributed_blocks"], 0, "{test}");
        let all = sites["sites"].as_array().expect("sites");
        let top = &all[0];
        assert_eq!(
            top["frame"]["function"],
            format!("published_crate_leaks::{function}"),
            "{test}: {top:#}"
        );
        assert_eq!(top["frame"]["kind"], "user", "{test}");
        assert_eq!(top["frame"]["file"], PUBLISHED_FILE, "{test}");
        assert_eq!(top["frame"]["line"], line_of(needle), "{test}: {top:#}");
        match allocated_in {
            Some(prefix) => {
                let dep = &top["allocated_in"];
                assert_eq!(dep["kind"], "dependency", "{test}: {top:#}");
                let name = dep["function"].as_str().unwrap();
                assert!(
                    name.starts_with(prefix) || name.starts_with(&format!("<{prefix}")),
                    "{test}: allocated in {name}"
                );
            }
            None => assert!(top["allocated_in"].is_null(), "{test}: {top:#}"),
        }
        // No site names a dependency where the user's code is on the stack.
        for site in all {
            assert_ne!(site["frame"]["kind"], "dependency", "{test}: {site:#}");
        }
        // The same sites in the same order, with the same rates. For the
        // threads left running, what they allocate themselves (the body of
        // the thread, std's start of it) races with the end of the capture
        // run, on a loaded machine most of all: there the sites made on the
        // body's thread are compared, where it spawned them, without rates.
        let threads = verdict == "thread_leak";
        let spawner = format!("published_crate_leaks::{function}");
        let keys = |r: &Value| -> Vec<String> {
            let mut keys: Vec<String> = r["sites"]["sites"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|site| !threads || site["frame"]["function"] == spawner.as_str())
                .map(|site| site_key(site, !threads))
                .collect();
            if threads {
                keys.sort();
            }
            keys
        };
        assert_eq!(
            keys(report),
            keys(&second[test]),
            "{test}: a second run names the same sites"
        );
    }
    // A stack deeper than capture keeps: the sites near the user's frame
    // name it; the deepest say that they could not reach it.
    let nested = first["deeply_nested_json_leaks"]["sites"]["sites"]
        .as_array()
        .unwrap();
    assert!(
        nested.iter().any(
            |s| s["frame"]["function"] == "published_crate_leaks::keep_nested"
                && s["frame"]["line"] == line_of("serde_json::from_str(&text)")
        ),
        "{nested:#?}"
    );
    assert!(
        nested
            .iter()
            .any(|s| s["stack_cut"] == true && s["frame"]["kind"] == "dependency"),
        "{nested:#?}"
    );
    // Where the pending task and the running thread were spawned.
    let spawned = |test: &str, line: u64, through: &str| {
        let sites = first[test]["sites"]["sites"].as_array().unwrap();
        assert!(
            sites.iter().any(|s| s["frame"]["line"] == line
                && s["spawned_by"]
                    .as_str()
                    .is_some_and(|f| f.starts_with(through))),
            "{test}: {sites:#?}"
        );
    };
    spawned(
        "orphaned_task_leaks",
        line_of("tokio::spawn(async move"),
        "tokio::task::spawn::spawn",
    );
    spawned(
        "detached_worker_leaks",
        line_of("std::thread::spawn(move"),
        "std::thread::",
    );
}
