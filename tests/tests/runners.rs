//! One test, one snapshot, whoever runs it: `cargo test` (every test of a
//! binary from one harness process), `cargo nextest run` (a process per
//! test) and `cargo memwatch test` record byte-identical snapshots for the
//! examples and the verdict fixtures. Relative snapshot folders are
//! resolved under each package by the harness and by `cargo memwatch`
//! alike; an empty one is an error; tests that would share a file fail.

use std::collections::BTreeMap;
use std::process::{Command, Output};

use memwatch_e2e::{repo_root, stderr, stdout, Crate, Fixture, CLEAN};

fn fixture() -> Fixture {
    let root = repo_root();
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    let lib: &'static str = Box::leak(read("examples/src/lib.rs").into_boxed_str());
    let examples: &'static str = Box::leak(
        read("examples/tests/leaks.rs")
            .replace("memwatch_examples", "example_lib")
            .into_boxed_str(),
    );
    let fixtures: &'static str =
        Box::leak(read("tests/src/bin/verdict_fixtures.rs").into_boxed_str());
    Fixture::new(&[
        Crate {
            name: "example_lib",
            leaks: Some(examples),
            lib: Some(lib),
            ..Crate::default()
        },
        Crate {
            name: "fixtures",
            leaks: Some(fixtures),
            dependencies: "tokio = { version = \"1.39\", default-features = false, \
                           features = [\"rt\", \"sync\", \"time\"] }",
            memwatch_features: &["tokio"],
            ..Crate::default()
        },
    ])
}

/// `cargo ARGS` in the fixture, outside CI, with `MEMWATCH_SNAPSHOT_DIR`
/// set to the relative folder `snapshots`.
fn cargo(f: &Fixture, args: &[&str], snapshots: &str) -> Output {
    f.cargo(args)
        .env("MEMWATCH_SNAPSHOT_DIR", snapshots)
        .output()
        .expect("cargo runs")
}

/// Every file in `<crate>/<dir>` of each crate, by crate and name.
fn snapshot_files(f: &Fixture, dir: &str) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for krate in ["example_lib", "fixtures"] {
        let folder = f.path().join(krate).join(dir);
        for e in std::fs::read_dir(&folder).unwrap_or_else(|e| panic!("{folder:?}: {e}")) {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            out.insert(format!("{krate}/{name}"), std::fs::read(&p).unwrap());
        }
    }
    out
}

fn nextest_installed() -> bool {
    Command::new(env!("CARGO"))
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn cargo_test_nextest_and_cargo_memwatch_record_byte_identical_snapshots() {
    assert!(
        nextest_installed(),
        "cargo-nextest is needed: `cargo install cargo-nextest --locked` (.ci/run installs it)"
    );
    let f = fixture();
    let build = cargo(&f, &["test", "--workspace", "--no-run"], "unused");
    assert!(build.status.success(), "{}", stderr(&build));

    let runs: [(&str, Vec<&str>); 3] = [
        (
            "snaps-cargo-test",
            vec!["test", "--workspace", "--no-fail-fast"],
        ),
        (
            "snaps-nextest",
            vec!["nextest", "run", "--workspace", "--no-fail-fast"],
        ),
        ("snaps-memwatch", vec!["memwatch", "test"]),
    ];
    let mut seen: Vec<(&str, BTreeMap<String, Vec<u8>>)> = Vec::new();
    for (dir, args) in &runs {
        let out = if args[0] == "memwatch" {
            f.command(&args[1..])
                .env("MEMWATCH_SNAPSHOT_DIR", dir)
                .output()
                .unwrap()
        } else {
            cargo(&f, args, dir)
        };
        // The should_leak tests' new snapshots wait for review: each runner
        // fails, and for that reason only.
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!text.contains("expected a leak"), "{dir}: {text}");
        assert!(!text.contains("CRASHED"), "{dir}: {text}");
        let files = snapshot_files(&f, dir);
        assert!(
            files.keys().any(|k| k.ends_with(".snap"))
                && files.keys().any(|k| k.ends_with(".snap.new")),
            "{dir}: clean tests recorded, leaks proposed: {:?}\n{text}",
            files.keys()
        );
        seen.push((dir, files));
    }
    let (first_dir, first) = &seen[0];
    for (dir, files) in &seen[1..] {
        assert_eq!(
            files.keys().collect::<Vec<_>>(),
            first.keys().collect::<Vec<_>>(),
            "{dir} and {first_dir} record the same snapshots"
        );
        for (name, bytes) in files {
            assert_eq!(
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(&first[name]),
                "{name}: {dir} and {first_dir} differ"
            );
        }
    }

    // `cargo memwatch accept` finds them where the harness wrote them.
    let accept = f
        .command(&["accept"])
        .env("MEMWATCH_SNAPSHOT_DIR", "snaps-memwatch")
        .output()
        .unwrap();
    assert_eq!(accept.status.code(), Some(0), "{}", stderr(&accept));
    let accepted = snapshot_files(&f, "snaps-memwatch");
    assert!(
        accepted.keys().all(|k| k.ends_with(".snap")),
        "{:?}",
        accepted.keys()
    );
    // Nothing went into memwatch-test's own folder.
    assert!(!repo_root().join("memwatch-test/snaps-memwatch").exists());
}

#[test]
fn an_empty_folder_variable_is_an_error() {
    let harness = Command::new(env!("CARGO_BIN_EXE_verdict_fixtures"))
        .args(["--exact", "pure_work_is_clean"])
        .env("MEMWATCH_SNAPSHOT_DIR", "")
        .output()
        .unwrap();
    assert_eq!(harness.status.code(), Some(2));
    assert!(
        stderr(&harness).contains("MEMWATCH_SNAPSHOT_DIR is set but empty"),
        "{}",
        stderr(&harness)
    );
    let f = Fixture::new(&[Crate {
        name: "clean",
        leaks: Some(CLEAN),
        ..Crate::default()
    }]);
    for var in ["MEMWATCH_SNAPSHOT_DIR", "MEMWATCH_REPORT_DIR"] {
        let out = f.command(&["test"]).env(var, "").output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(&format!("{var} is set but empty")),
            "{}",
            stderr(&out)
        );
    }
}

const SHARED_NAMES: &str = r#"
use memwatch_test::leak_test;

mod odd2 {
    use memwatch_test::leak_test;

    #[leak_test]
    fn тест() {}

    #[leak_test]
    fn тесю() {}
}

mod a {
    use memwatch_test::leak_test;

    #[leak_test]
    fn t() {}
}

#[leak_test(snapshot = "a__t")]
fn b() {}

memwatch_test::main!();
"#;

#[test]
fn tests_that_would_share_a_file_fail_and_others_do_not() {
    let f = Fixture::new(&[Crate {
        name: "names",
        leaks: Some(SHARED_NAMES),
        ..Crate::default()
    }]);
    let out = f.memwatch(&["test"]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}\n{}", stderr(&out));
    assert!(
        text.contains("the tests `a::t` and `b` would share the snapshot file `a__t`"),
        "{text}"
    );
    let row = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("names/leaks::{name} ")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{text}"))
            .to_owned()
    };
    assert!(row("a::t").contains("FAILED"), "{text}");
    assert!(row("b").contains("FAILED"), "{text}");
    assert!(row("odd2::тест").contains("recorded"), "{text}");
    assert!(row("odd2::тесю").contains("recorded"), "{text}");
    assert_eq!(
        f.snapshots("names"),
        vec!["odd2__тест.snap", "odd2__тесю.snap"]
    );
}
