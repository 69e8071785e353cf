//! Retainer paths: for each way a leak's blocks can be kept (a static
//! collection, a map in a `OnceLock`, a waiter list behind a static, a
//! thread-local, a parked thread, a pending task) the report names the
//! root and the blocks on the way; for blocks nothing keeps (Rc cycles,
//! `mem::forget`, a dropped `Box::leak`) it says they are lost, and how.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use memwatch_e2e::{run_fixture, stdout};
use serde_json::Value;

const FIXTURES: &str = env!("CARGO_BIN_EXE_retainer_fixtures");
const SOURCE: &str = "tests/src/bin/retainer_fixtures.rs";

/// Every fixture's report, run once for all the tests of this file.
fn reports() -> &'static BTreeMap<String, Value> {
    static REPORTS: OnceLock<BTreeMap<String, Value>> = OnceLock::new();
    REPORTS.get_or_init(|| {
        let (out, reports) = run_fixture(FIXTURES, &[], &[]);
        assert!(out.status.success(), "{}", stdout(&out));
        reports
    })
}

/// The line of the first line of the fixture source containing `text`.
fn line_of(text: &str) -> u64 {
    let source = include_str!("../src/bin/retainer_fixtures.rs");
    source
        .lines()
        .position(|l| l.contains(text))
        .unwrap_or_else(|| panic!("no line with {text:?}")) as u64
        + 1
}

/// The site of `test` allocated at the fixture line containing `text`.
fn site<'a>(test: &str, text: &str) -> &'a Value {
    let report = &reports()[test];
    let line = line_of(text);
    let sites = report["sites"]["sites"].as_array().expect("sites");
    sites
        .iter()
        .find(|s| s["frame"]["line"] == line && s["frame"]["file"] == SOURCE)
        .unwrap_or_else(|| panic!("{test}: no site at line {line}: {report:#}"))
}

fn example(site: &Value) -> &Value {
    &site["retention"]["example"]
}

/// The survivors of a site per capture window: its blocks per iteration
/// times the window's iterations.
fn survivors(test: &str, site: &Value) -> u64 {
    let iterations = reports()[test]["sites"]["iterations"].as_f64().unwrap();
    (site["blocks_per_iteration"].as_f64().unwrap() * iterations).round() as u64
}

/// Asserts that `site` is reached by a path from `root` through steps
/// whose `what` are `whats`, ending at a surviving block of the site.
fn assert_path(test: &str, site: &Value, kind: &str, root: &str, whats: &[&str]) {
    let ex = example(site);
    assert_eq!(ex["kind"], "path", "{test}: {site:#}");
    assert_eq!(ex["root"]["kind"], kind, "{test}: {ex:#}");
    assert_eq!(ex["root"]["name"], root, "{test}: {ex:#}");
    let steps = ex["steps"].as_array().unwrap();
    let got: Vec<&str> = steps
        .iter()
        .map(|s| s["what"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(got, whats, "{test}: {ex:#}");
    let last = steps.last().unwrap();
    assert_eq!(last["survivor"], true, "{test}");
    assert_eq!(
        last["site"], site["frame"],
        "{test}: the path ends at the site's block"
    );
    assert!(last.get("next_at").is_none(), "{test}");
    // Every survivor of the site is reachable.
    assert_eq!(site["retention"]["lost"], 0, "{test}");
    assert_eq!(
        site["retention"]["reachable"].as_u64().unwrap(),
        survivors(test, site),
        "{test}"
    );
}

#[test]
fn a_static_vec_of_strings_is_held_by_the_static_at_an_element_of_its_buffer() {
    let test = "static_vec_of_strings_leaks";
    let strings = site(test, "let line = format!");
    assert_eq!(strings["kind"], "String");
    assert_path(
        test,
        strings,
        "static",
        "retainer_fixtures::AUDIT",
        &["a Vec's buffer", "String"],
    );
    let ex = example(strings);
    // The Vec sits after the mutex's state in the static.
    assert!(ex["root"]["offset"].as_u64().unwrap() > 0, "{ex:#}");
    let buffer = &ex["steps"][0];
    assert_eq!(buffer["site"]["line"], line_of(".push(line)"), "{buffer:#}");
    let element = &buffer["next_at"]["element"];
    assert_eq!(element["size"], 24, "a String is three words: {buffer:#}");
    assert_eq!(
        buffer["next_at"]["offset"].as_u64().unwrap() / 24,
        element["index"].as_u64().unwrap(),
        "{buffer:#}"
    );
}

#[test]
fn a_map_in_a_once_lock_is_held_through_its_table() {
    let test = "once_lock_map_that_never_evicts_leaks";
    let bodies = site(test, "format!(\"response body");
    assert_eq!(bodies["kind"], "String");
    assert_path(
        test,
        bodies,
        "static",
        "retainer_fixtures::RESPONSES",
        &["a HashMap's table", "String"],
    );
    let table = &example(bodies)["steps"][0];
    assert!(
        table["allocated_in"]["function"]
            .as_str()
            .unwrap()
            .starts_with("hashbrown::"),
        "{table:#}"
    );
    assert!(
        table["next_at"]["element"]["size"].as_u64().is_some(),
        "{table:#}"
    );
}

#[test]
fn a_waiter_list_behind_a_static_is_held_through_two_blocks() {
    let test = "waiter_list_behind_a_static_leaks";
    let waiters = site(test, "let waiter = Arc::new");
    assert_eq!(waiters["kind"], "Arc<_>");
    assert_path(
        test,
        waiters,
        "static",
        "retainer_fixtures::HUB",
        &["Box<_>", "a Vec's buffer", "Arc<_>"],
    );
    let steps = example(waiters)["steps"].as_array().unwrap();
    assert_eq!(steps[0]["survivor"], false, "the hub was made once, before");
    assert_eq!(steps[0]["site"]["line"], line_of("Box::new(Hub {"));
    assert_eq!(steps[1]["next_at"]["element"]["size"], 8, "{:#}", steps[1]);
}

#[test]
fn a_tagged_type_is_named_by_its_tag() {
    let test = "tagged_sessions_leak";
    let sessions = site(test, "Box::new(Session { token");
    assert_eq!(sessions["kind"], "Box<_> (tagged Session)");
    assert_path(
        test,
        sessions,
        "static",
        "retainer_fixtures::OPEN",
        &["a Vec's buffer", "Box<_> (tagged Session)"],
    );
}

#[test]
fn a_thread_local_cache_is_held_by_the_thread_local_of_the_test_thread() {
    let test = "thread_local_cache_leaks";
    let visitors = site(test, "let visitor = format!");
    assert_path(
        test,
        visitors,
        "thread_local",
        "retainer_fixtures::SEEN",
        &["a Vec's buffer", "String"],
    );
    assert_eq!(example(visitors)["root"]["thread"], "main");
}

#[test]
fn a_parked_threads_job_is_held_by_its_stack_and_its_name_by_std_s_handle() {
    let test = "parked_worker_holds_its_job_leaks";
    assert_eq!(reports()[test]["verdict"]["kind"], "thread_leak");
    let job = site(test, "let job = vec!");
    assert_path(test, job, "stack", "holder", &["a Vec's buffer"]);
    assert_eq!(example(job)["root"]["thread"], "holder");
    // std keeps a thread's handle in memory from `System`, which the scan
    // reads last: the name is held from there, not called lost.
    let name = site(test, ".name(\"holder\"");
    let ex = example(name);
    assert_eq!(ex["kind"], "path", "{name:#}");
    assert_eq!(ex["root"]["kind"], "foreign", "{ex:#}");
    assert_eq!(name["retention"]["lost"], 0);
}

#[test]
fn data_kept_by_a_pending_task_is_held_through_the_runtime_s_task() {
    let test = "task_that_never_finishes_leaks";
    assert_eq!(reports()[test]["verdict"]["kind"], "task_leak");
    let session = site(test, "let session = vec!");
    let ex = example(session);
    assert_eq!(ex["kind"], "path", "{session:#}");
    assert_eq!(
        ex["root"]["kind"], "stack",
        "the runtime is the harness's local"
    );
    let steps = ex["steps"].as_array().unwrap();
    let task = steps
        .iter()
        .position(|s| {
            s["allocated_in"]["function"]
                .as_str()
                .is_some_and(|f| f.starts_with("tokio::runtime::task::"))
        })
        .unwrap_or_else(|| panic!("no task on the path: {ex:#}"));
    assert_eq!(
        steps[task]["site"]["line"],
        line_of("tokio::spawn(async move")
    );
    assert_eq!(task + 2, steps.len(), "the task holds the data: {ex:#}");
    assert_eq!(steps.last().unwrap()["what"], "a Vec's buffer");
    // The runtime's own blocks were made before the window.
    assert!(
        steps[..task].iter().all(|s| s["survivor"] == false),
        "{ex:#}"
    );
}

#[test]
fn a_thread_the_scan_cannot_stop_makes_it_say_it_cannot_tell_not_lost() {
    let test = "worker_blocking_signals_leaks";
    let job = site(test, "let job = vec![8u64");
    let retention = &job["retention"];
    let why = retention["unseen"]
        .as_str()
        .unwrap_or_else(|| panic!("{job:#}"));
    assert!(why.contains("a thread did not stop"), "{why}");
    // Every job sits on the stack of a worker the scan could not stop: not
    // reached, and never called lost.
    assert_eq!(retention["example"]["kind"], "unknown", "{job:#}");
    assert_eq!(retention["reachable"], 0, "{job:#}");
    assert_eq!(
        retention["lost"].as_u64().unwrap(),
        survivors(test, job),
        "{job:#}"
    );
}

#[test]
fn a_scan_process_that_dies_leaves_the_leak_reported_and_says_why() {
    let (out, _) = run_fixture(
        FIXTURES,
        &["--ignored", "--exact", "scan_process_crash_fails"],
        &[],
    );
    assert!(!out.status.success());
    let text = stdout(&out);
    assert!(text.contains("memory leak: "), "{text}");
    assert!(
        text.contains("allocated at: not found: the scan process ended without its findings"),
        "{text}"
    );
    assert!(
        text.contains("SIGABRT") || text.contains("signal 6"),
        "{text}"
    );
    // The JSON report says so too.
    let (_, reports) = run_fixture(
        FIXTURES,
        &["--ignored", "--exact", "scan_process_crash_fails"],
        &[],
    );
    let report = &reports["scan_process_crash_fails"];
    assert!(report["sites"].is_null(), "{report:#}");
    assert!(
        report["sites_error"]
            .as_str()
            .is_some_and(|e| e.starts_with("the scan process ended without its findings")),
        "{report:#}"
    );
}

/// The cycle of a ring of `n` peers.
fn assert_cycle(test: &str, n: usize) {
    let peers = site(test, "Rc::new(Peer {");
    assert_eq!(peers["kind"], "Rc<_>");
    let retention = &peers["retention"];
    assert_eq!(retention["reachable"], 0, "{test}: {peers:#}");
    assert_eq!(retention["lost"].as_u64().unwrap(), survivors(test, peers));
    let ex = &retention["example"];
    assert_eq!(ex["kind"], "cycle", "{test}: {ex:#}");
    let steps = ex["steps"].as_array().unwrap();
    assert_eq!(steps.len(), n, "{test}: {ex:#}");
    for step in steps {
        assert_eq!(step["what"], "Rc<_>");
        assert_eq!(step["survivor"], true);
        assert_eq!(step["site"], peers["frame"]);
        // Each holds the next in the same field of its `Peer`.
        assert_eq!(step["next_at"]["offset"], steps[0]["next_at"]["offset"]);
    }
}

#[test]
fn an_rc_cycle_of_two_is_lost_as_a_cycle() {
    assert_cycle("rc_cycle_of_two_leaks", 2);
}

#[test]
fn an_rc_cycle_of_three_is_lost_as_a_cycle() {
    assert_cycle("rc_cycle_of_three_leaks", 3);
}

#[test]
fn a_forgotten_box_and_a_dropped_box_leak_are_lost_and_unreferenced() {
    for (test, line) in [
        ("mem_forget_leaks", "std::mem::forget"),
        ("dropped_box_leak_leaks", "Box::leak(Box::new"),
    ] {
        let boxes = site(test, line);
        assert_eq!(boxes["kind"], "Box<_>", "{test}");
        let retention = &boxes["retention"];
        assert_eq!(
            retention["example"]["kind"], "unreferenced",
            "{test}: {boxes:#}"
        );
        assert_eq!(retention["reachable"], 0, "{test}");
        assert_eq!(
            retention["lost"].as_u64().unwrap(),
            survivors(test, boxes),
            "{test}"
        );
    }
}

#[test]
fn a_clean_test_with_sites_on_has_no_retention_and_no_preview() {
    let report = &reports()["bounded_cache_with_sites_is_clean"];
    assert_eq!(report["verdict"]["kind"], "clean");
    let sites = report["sites"]["sites"].as_array().expect("sites are on");
    for s in sites {
        assert!(s.get("retention").is_none(), "{s:#}");
        assert!(s.get("preview").is_none(), "{s:#}");
    }
    // Nor any leak's report without MEMWATCH_PREVIEW.
    for (test, r) in reports() {
        for s in r["sites"]["sites"].as_array().into_iter().flatten() {
            assert!(s.get("preview").is_none(), "{test}: {s:#}");
        }
    }
}

#[test]
fn a_preview_is_shown_only_when_asked_for() {
    let (out, reports) = run_fixture(
        FIXTURES,
        &["--exact", "static_vec_of_strings_leaks"],
        &[("MEMWATCH_PREVIEW", "1")],
    );
    assert!(out.status.success(), "{}", stdout(&out));
    let report = &reports["static_vec_of_strings_leaks"];
    let strings = report["sites"]["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "String")
        .unwrap_or_else(|| panic!("{report:#}"));
    let head: Vec<u8> = strings["preview"]["head"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b.as_u64().unwrap() as u8)
        .collect();
    // The text, then the string's spare capacity.
    let text = String::from_utf8(head).unwrap();
    assert!(text.starts_with("request "), "{text:?}");
    assert!(text.contains(" from 10.0.0.1"), "{text:?}");
    assert!(
        !stdout(&out).contains("preview of one"),
        "a passing test prints no message"
    );
}

#[test]
fn the_failure_message_shows_the_retainer_path() {
    let (out, _) = run_fixture(FIXTURES, &["--ignored", "--exact", "audit_log_fails"], &[]);
    assert!(!out.status.success());
    let text = stdout(&out);
    let format_line = line_of("let line = format!");
    for expected in [
        "what: String".to_owned(),
        "held (possibly): all 32 surviving blocks, from the static `retainer_fixtures::AUDIT` (16 bytes into it)".to_owned(),
        "a conservative scan of the heap".to_owned(),
        "of a Vec's buffer of ".to_owned(),
        format!(
            "-> String of 44 bytes allocated at retainer_fixtures::log_request ({SOURCE}:{format_line}) [leaked]"
        ),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("preview"), "{text}");
}

#[test]
fn a_second_run_finds_the_same_retention() {
    let shape = |reports: &BTreeMap<String, Value>| -> Vec<(String, String, String, Vec<String>)> {
        reports
            .iter()
            .flat_map(|(test, r)| {
                r["sites"]["sites"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|s| s["frame"]["file"] == SOURCE)
                    .map(move |s| {
                        let ex = &s["retention"]["example"];
                        let root = &ex["root"];
                        (
                            format!("{test}:{}", s["frame"]["line"]),
                            ex["kind"].to_string(),
                            // A stack's thread may be stopped before it
                            // names itself: its kind, not its name.
                            if root["kind"] == "stack" {
                                root["kind"].to_string()
                            } else {
                                root["name"].to_string()
                            },
                            ex["steps"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(|st| format!("{}@{}", st["what"], st["site"]["line"]))
                                .collect(),
                        )
                    })
            })
            .collect()
    };
    let (out, again) = run_fixture(FIXTURES, &[], &[]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(shape(reports()), shape(&again));
}
