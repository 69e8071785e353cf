//! `cargo memwatch` against fixture workspaces: exit codes, the summary,
//! JSON and JUnit output, GitHub annotations, the review, accept and reject
//! flows, CI mode, crashes, partitions and bad input.

use memwatch_e2e::{stderr, stdout, Crate, Fixture, CLEAN, CRASHING, HANGS_WITH_A_CHILD, LEAKY};

fn one(name: &str, leaks: &str) -> Fixture {
    Fixture::new(&[Crate {
        name,
        leaks: Some(leaks),
        ..Crate::default()
    }])
}

/// Runs once outside CI: clean tests record their new snapshots and pass,
/// saying so.
fn approved(f: &Fixture) {
    let first = f.memwatch(&["test"]);
    assert_eq!(
        first.status.code(),
        Some(0),
        "new clean snapshots are recorded:\n{}",
        stdout(&first)
    );
    assert!(
        stdout(&first).contains("new snapshots recorded"),
        "{}",
        stdout(&first)
    );
    assert!(
        stdout(&first).lines().any(|l| l.contains(" recorded ")),
        "{}",
        stdout(&first)
    );
}

#[test]
fn a_clean_workspace_passes_with_a_summary_json_and_junit() {
    let f = one("clean", CLEAN);
    approved(&f);
    assert_eq!(
        f.snapshots("clean"),
        vec!["format_is_clean.snap", "parse_is_clean.snap"]
    );

    let out = f.memwatch(&["test", "-j", "2", "--junit", "junit.xml"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("test")
            && text.contains("growth per iteration")
            && text.contains("peak")
            && text.contains("cycles"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("clean/leaks::parse_is_clean")
                && l.contains(" clean ")
                && l.contains(" ok ")),
        "{text}"
    );
    assert!(text.contains("2 leak tests: 2 passed, 0 failed"), "{text}");

    let junit = std::fs::read_to_string(f.path().join("junit.xml")).unwrap();
    assert!(
        junit.contains(r#"<testsuites name="cargo-memwatch" tests="2" failures="0">"#),
        "{junit}"
    );
    assert!(
        junit.contains(r#"<testcase name="parse_is_clean" classname="clean/leaks""#),
        "{junit}"
    );

    let out = f.memwatch(&["test", "--message-format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let tests: Vec<_> = lines.iter().filter(|v| v["type"] == "test").collect();
    assert_eq!(tests.len(), 2);
    for t in &tests {
        assert_eq!(t["verdict"], "clean");
        assert_eq!(t["status"], "passed");
        assert_eq!(t["snapshot"], "matched");
        assert!(t["num_cycles"].as_u64().unwrap() >= 13);
    }
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(
        (summary["passed"].clone(), summary["exit_code"].clone()),
        (2.into(), 0.into())
    );
}

#[test]
fn a_leak_fails_the_run_and_says_where() {
    let f = one("leaky", LEAKY);
    let out = f
        .command(&["test", "--junit", "out/junit.xml"])
        .env("CI", "true")
        .env("GITHUB_ACTIONS", "true")
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("leaky/leaks::cache_leaks")
                && l.contains(" leak ")
                && l.contains("FAILED")),
        "{text}"
    );
    assert!(
        text.contains("and 1 block(s) per iteration over 1024 measured iterations")
            && text.contains("Why: the heap grew in each of the last 3 rounds"),
        "{text}"
    );
    assert!(text.contains("+1.00 blocks"), "{text}");
    // It names the line that allocated the leaked blocks.
    assert!(text.contains("allocated at ("), "{text}");
    assert!(
        text.contains("leaks::cache_leaks (leaky/tests/leaks.rs:"),
        "{text}"
    );
    // The raw failure text cannot issue workflow commands: they are stopped
    // around it, and resumed before the annotations.
    let stop = text
        .lines()
        .position(|l| l.starts_with("::stop-commands::"))
        .unwrap_or_else(|| panic!("{text}"));
    let token = text.lines().nth(stop).unwrap()["::stop-commands::".len()..].to_owned();
    let resume = text
        .lines()
        .position(|l| l == format!("::{token}::"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        text.lines()
            .position(|l| l.contains("leaks::cache_leaks (leaky/tests/leaks.rs:"))
            .is_some_and(|i| stop < i && i < resume),
        "{text}"
    );
    // GitHub annotations point at the test.
    assert!(
        text.lines()
            .any(|l| l.starts_with("::error file=leaky/tests/leaks.rs,line=")
                && l.contains("title=memwatch%3A failed in leaky/leaks%3A%3Acache_leaks::")),
        "{text}"
    );
    let junit = std::fs::read_to_string(f.path().join("out/junit.xml")).unwrap();
    assert!(
        junit.contains(r#"failures="2""#),
        "leak and missing snapshot: {junit}"
    );
    assert!(junit.contains("<failure type=\"FAILED\""), "{junit}");
    // Under CI nothing was written.
    assert!(f.snapshots("leaky").is_empty());
}

#[test]
fn leak_tests_in_several_crates_are_all_found_and_selectable() {
    let f = Fixture::new(&[
        Crate {
            name: "alpha",
            leaks: Some(CLEAN),
            ..Crate::default()
        },
        Crate {
            name: "beta",
            leaks: Some(LEAKY),
            ..Crate::default()
        },
        Crate {
            name: "gamma",
            leaks: None,
            ..Crate::default()
        },
    ]);
    let out = f.memwatch(&["list"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).lines().collect::<Vec<_>>(),
        vec![
            "alpha/leaks::format_is_clean",
            "alpha/leaks::parse_is_clean",
            "beta/leaks::cache_leaks",
            "beta/leaks::parse_is_clean",
        ]
    );
    let only_beta = f.memwatch(&["list", "-p", "beta"]);
    assert_eq!(
        stdout(&only_beta).lines().count(),
        2,
        "{}",
        stdout(&only_beta)
    );
    let filtered = f.memwatch(&["list", "cache"]);
    assert_eq!(stdout(&filtered).trim(), "beta/leaks::cache_leaks");

    // Partitions split the suite without loss or overlap.
    for kind in ["count", "hash"] {
        let mut all: Vec<String> = Vec::new();
        for k in 1..=2 {
            let part = format!("{kind}:{k}/2");
            let out = f.memwatch(&["list", "--partition", &part]);
            assert_eq!(out.status.code(), Some(0));
            all.extend(stdout(&out).lines().map(str::to_owned));
        }
        all.sort();
        assert_eq!(all.len(), 4, "{kind}: {all:?}");
        all.dedup();
        assert_eq!(all.len(), 4, "{kind}: overlap");
    }
}

#[test]
fn a_changed_diff_is_reviewed_accepted_or_rejected() {
    let f = one("cache", CLEAN);
    approved(&f);
    let snap = f.path().join("cache/tests/snapshots/parse_is_clean.snap");
    let approved_text = std::fs::read_to_string(&snap).unwrap();
    // Pretend the approved diff was different: the run now sees a change.
    let old = approved_text.replace("verdict: clean", "verdict: leak");
    std::fs::write(&snap, &old).unwrap();

    // Under CI: fails, writes nothing.
    let ci = f.command(&["test"]).env("CI", "true").output().unwrap();
    assert_eq!(ci.status.code(), Some(1));
    assert!(stdout(&ci).contains("SNAPSHOT CHANGED"), "{}", stdout(&ci));
    assert_eq!(
        f.snapshots("cache"),
        vec!["format_is_clean.snap", "parse_is_clean.snap"]
    );

    // Outside CI: fails and proposes the new diff for review.
    let local = f.memwatch(&["test"]);
    assert_eq!(local.status.code(), Some(1));
    assert!(
        stdout(&local).contains("cargo memwatch review"),
        "{}",
        stdout(&local)
    );
    assert!(f
        .snapshots("cache")
        .contains(&"parse_is_clean.snap.new".to_owned()));
    assert_eq!(
        std::fs::read_to_string(&snap).unwrap(),
        old,
        "never overwritten by a run"
    );

    // Review: skip leaves both files as they are.
    let review = |answers: &str| {
        let mut child = f
            .command(&["review"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(answers.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let skipped = review("s\n");
    assert_eq!(skipped.status.code(), Some(0));
    let shown = stdout(&skipped);
    assert!(
        shown.contains("-verdict: leak") && shown.contains("+verdict: clean"),
        "{shown}"
    );
    assert!(
        shown.contains("0 accepted, 0 rejected, 1 skipped"),
        "{shown}"
    );
    assert!(f
        .snapshots("cache")
        .contains(&"parse_is_clean.snap.new".to_owned()));

    // Reject drops the proposal and keeps the approved file.
    assert!(stdout(&review("r\n")).contains("0 accepted, 1 rejected"));
    assert!(!f
        .snapshots("cache")
        .contains(&"parse_is_clean.snap.new".to_owned()));
    assert_eq!(std::fs::read_to_string(&snap).unwrap(), old);

    // Propose again, accept by name: the run passes again.
    assert_eq!(f.memwatch(&["test"]).status.code(), Some(1));
    let accept = f.memwatch(&["accept", "parse_is"]);
    assert_eq!(accept.status.code(), Some(0), "{}", stderr(&accept));
    assert!(stdout(&accept).contains("accepted parse_is_clean"));
    assert_eq!(
        std::fs::read_to_string(&snap).unwrap().replace("\r", ""),
        approved_text.replace("\r", "")
    );
    assert_eq!(f.memwatch(&["test"]).status.code(), Some(0));

    // A name that matches nothing is an error.
    assert_eq!(
        f.memwatch(&["accept", "no_such_snapshot"]).status.code(),
        Some(2)
    );
}

#[test]
fn a_crashing_test_is_a_result_and_the_others_still_run() {
    let f = one("crashy", CRASHING);
    let out = f.memwatch(&["test", "--timeout", "3", "-j", "2"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    let row = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("crashy/leaks::{name}")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{text}"))
            .to_owned()
    };
    assert!(row("aborts").contains("CRASHED"), "{text}");
    assert!(row("segfaults").contains("CRASHED"), "{text}");
    assert!(row("hangs").contains("TIMED OUT"), "{text}");
    assert!(row("survives_its_neighbours").contains(" ok "), "{text}");
    assert!(text.contains("signal 6: SIGABRT"), "{text}");
    assert!(text.contains("signal 11: SIGSEGV"), "{text}");
    assert!(text.contains("4 leak tests: 1 passed, 3 failed"), "{text}");
}

#[test]
fn a_workspace_without_leak_tests_says_so() {
    let f = Fixture::new(&[Crate {
        name: "plain",
        leaks: None,
        ..Crate::default()
    }]);
    let out = f.memwatch(&["test"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("no leak tests found in this workspace"));
}

#[test]
fn a_build_error_is_said_once_with_exit_code_2() {
    let broken = format!("{CLEAN}\nfn broken() -> u32 {{ \"not a number\" }}\n");
    let f = one("broken", &broken);
    let out = f.memwatch(&["test"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("error[E0308]: mismatched types"), "{err}");
    // cargo's own `error: could not compile` line, and no second `error:`
    // line of ours after it.
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "{err}");
    assert!(errors[0].starts_with("error: could not compile"), "{err}");
    assert_eq!(
        err.lines().last(),
        Some("no leak test ran: cargo could not build the tests (its errors are above)"),
        "{err}"
    );
}

#[test]
fn bad_input_is_a_clear_error_with_exit_code_2_and_no_change() {
    let f = one("bad", CLEAN);
    let before = f.files();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["test", "--no-such-flag"],
            "unexpected argument '--no-such-flag'",
        ),
        (
            vec!["test", "--partition", "count:3/2"],
            "malformed partition `count:3/2`",
        ),
        (
            vec!["test", "--partition", "slices"],
            "expected `count:K/N` or `hash:K/N`",
        ),
        (
            vec!["test", "--manifest-path", "/nonexistent/Cargo.toml"],
            "is not a Cargo.toml",
        ),
        (vec!["frobnicate"], "unrecognized subcommand"),
        (
            vec!["test", "--timeout", "0"],
            "invalid value '0' for '--timeout <SECS>'",
        ),
        (
            vec!["test", "--junit", "/proc/no/such/junit.xml"],
            "cannot write the JUnit file /proc/no/such/junit.xml",
        ),
    ];
    for (args, message) in cases {
        let out = f.memwatch(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    let elsewhere = tempfile::tempdir().unwrap();
    let out = f
        .command(&["test"])
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not a cargo workspace"),
        "{}",
        stderr(&out)
    );
    f.assert_unchanged(&before, "bad flags and paths");

    // A corrupt snapshot stops the run before anything is built or written.
    let snaps = f.path().join("bad/tests/snapshots");
    std::fs::create_dir_all(&snaps).unwrap();
    std::fs::write(
        snaps.join("parse_is_clean.snap"),
        "this is not a snapshot\n",
    )
    .unwrap();
    let before = f.files();
    for args in [vec!["test"], vec!["accept"], vec!["review"]] {
        let out = f.memwatch(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stdout(&out));
        assert!(
            stderr(&out).contains("corrupt snapshot file")
                && stderr(&out).contains("parse_is_clean.snap"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    f.assert_unchanged(&before, "a corrupt snapshot");
}

#[test]
fn dhat_files_and_sites_are_written_for_leaking_tests() {
    let f = one("profiled", LEAKY);
    let out = f
        .command(&["test", "--dhat", "--sites", "--message-format", "json"])
        .env("CI", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let leak = lines.iter().find(|v| v["name"] == "cache_leaks").unwrap();
    let file = leak["dhat_file"]
        .as_str()
        .expect("a DHAT file for the leak");
    let dhat: serde_json::Value = serde_json::from_slice(&std::fs::read(file).unwrap()).unwrap();
    assert_eq!(dhat["dhatFileVersion"], 2);
    let frames = dhat["ftbl"].as_array().unwrap();
    assert!(
        frames
            .iter()
            .any(|f| f.as_str().unwrap().contains("leaks::cache_leaks")),
        "the profile shows the test's frames"
    );
    let top = &leak["sites"][0]["frame"];
    assert_eq!(top["function"], "leaks::cache_leaks");
    // The clean test has sites too (--sites) but no DHAT file.
    let clean = lines
        .iter()
        .find(|v| v["name"] == "parse_is_clean")
        .unwrap();
    assert!(clean["dhat_file"].is_null());
    assert!(clean["sites"].is_array());

    let human = f
        .command(&["test", "--dhat"])
        .env("CI", "true")
        .output()
        .unwrap();
    let text = stdout(&human);
    assert!(
        text.contains("DHAT profiles (open them in DHAT's viewer"),
        "{text}"
    );
    assert!(text.contains("profiled/leaks::cache_leaks: "), "{text}");
}

#[test]
fn an_accepted_leak_is_a_known_leak_until_it_changes() {
    let f = one("known", LEAKY);
    // A new leak is proposed for review, never recorded by itself.
    let first = f.memwatch(&["test"]);
    assert_eq!(first.status.code(), Some(1), "{}", stdout(&first));
    assert!(f
        .snapshots("known")
        .contains(&"cache_leaks.snap.new".to_owned()));
    let accept = f.memwatch(&["accept", "cache_leaks"]);
    assert_eq!(accept.status.code(), Some(0), "{}", stderr(&accept));

    // Accepted: a known leak, passing under CI, shown as such.
    let ci = f.command(&["test"]).env("CI", "true").output().unwrap();
    let text = stdout(&ci);
    assert_eq!(ci.status.code(), Some(0), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("known/leaks::cache_leaks") && l.contains("known leak")),
        "{text}"
    );
    assert!(text.contains("(1 of them known leaks"), "{text}");
    let json = f
        .command(&["test", "--message-format", "json"])
        .env("CI", "true")
        .output()
        .unwrap();
    let line: serde_json::Value = stdout(&json)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["name"] == "cache_leaks")
        .unwrap();
    assert_eq!(line["status"], "known_leak");
    assert_eq!(line["known_leak"], true);
    assert_eq!(line["snapshot"], "known_leak");

    // The approved figures no longer hold: it fails under CI.
    let snap = f.path().join("known/tests/snapshots/cache_leaks.snap");
    let text = std::fs::read_to_string(&snap).unwrap();
    std::fs::write(&snap, text.replace("+1 block", "+2 blocks")).unwrap();
    let grown = f.command(&["test"]).env("CI", "true").output().unwrap();
    assert_eq!(grown.status.code(), Some(1), "{}", stdout(&grown));
    assert!(
        stdout(&grown).contains("the known leak it approved is not what this run found"),
        "{}",
        stdout(&grown)
    );
}

/// Whether process `pid` is gone (or a zombie nobody reaps, on a machine
/// whose init does not).
#[cfg(target_os = "linux")]
fn gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_timed_out_test_is_stopped_with_what_it_started() {
    let f = one("orphans", HANGS_WITH_A_CHILD);
    let pid_file = f.path().join("child.pid");
    let out = f
        .command(&["test", "--timeout", "2"])
        .env("FIXTURE_PID_FILE", &pid_file)
        .output()
        .unwrap();
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    assert!(text.contains("TIMED OUT"), "{text}");
    let pid = std::fs::read_to_string(&pid_file).expect("the test started its child");
    // SIGTERM then SIGKILL went to the test's whole process group.
    let mut tries = 0;
    while !gone(&pid) && tries < 100 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        tries += 1;
    }
    assert!(gone(&pid), "the test's child {pid} still runs");
}

#[cfg(target_os = "linux")]
#[test]
fn ctrl_c_stops_every_running_test_and_exits_130() {
    let f = one("interrupted", HANGS_WITH_A_CHILD);
    let pid_file = f.path().join("child.pid");
    let mut run = f
        .command(&["test"])
        .env("FIXTURE_PID_FILE", &pid_file)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the test to start its child, however long the build takes.
    while !pid_file.exists() {
        assert!(run.try_wait().unwrap().is_none(), "the run ended early");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let pid = loop {
        let text = std::fs::read_to_string(&pid_file).unwrap();
        if !text.is_empty() {
            break text;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let kill = std::process::Command::new("kill")
        .args(["-INT", &run.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = run.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert!(stderr(&out).contains("interrupted"), "{}", stderr(&out));
    let mut tries = 0;
    while !gone(&pid) && tries < 100 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        tries += 1;
    }
    assert!(gone(&pid), "the test's child {pid} still runs");
}
