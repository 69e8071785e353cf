//! `#[tagged]` on a library's own types, with memwatch-test's engine alone
//! in the library's normal dependencies: the harness and its dependencies
//! stay out of what the library ships, and its leak tests still see the
//! tag.

use memwatch_e2e::{read_reports, stderr, stdout, Crate, Fixture};

const LIB: &str = r#"
//! A library that tags its own type.

pub struct Session {
    pub token: Box<[u8; 48]>,
}

#[memwatch_test::tagged]
impl Session {
    pub fn open() -> Session {
        Session { token: Box::new([7; 48]) }
    }
}
"#;

const LEAKS: &str = r#"
use memwatch_test::leak_test;

#[leak_test(should_leak, snapshot = false)]
fn kept_sessions_leak() {
    static KEPT: std::sync::Mutex<Vec<appcore::Session>> = std::sync::Mutex::new(Vec::new());
    KEPT.lock().unwrap().push(appcore::Session::open());
}

memwatch_test::main!();
"#;

/// The harness's own dependencies, none of which a library tagging its
/// types may be made to ship.
const HARNESS_ONLY: &[&str] = &["libtest-mimic", "dhat", "backtrace", "inventory"];

#[test]
fn a_library_tags_its_types_with_the_engine_alone() {
    let fixture = Fixture::new(&[Crate {
        name: "appcore",
        lib: Some(LIB),
        leaks: Some(LEAKS),
        engine_only_lib: true,
        ..Crate::default()
    }]);

    // What the library ships: the engine, not the harness.
    let tree = fixture
        .cargo(&[
            "tree", "-p", "appcore", "-e", "normal", "--prefix", "none", "--format", "{p}",
        ])
        .output()
        .expect("cargo tree runs");
    assert!(tree.status.success(), "{}", stderr(&tree));
    let shipped = stdout(&tree);
    assert!(shipped.contains("memwatch-test"), "{shipped}");
    for name in HARNESS_ONLY {
        assert!(
            !shipped.lines().any(|l| l.starts_with(&format!("{name} "))),
            "{name} is in the library's normal dependencies:\n{shipped}"
        );
    }

    // The library builds on the engine alone.
    let build = fixture
        .cargo(&["build", "-q", "-p", "appcore", "--lib"])
        .output()
        .expect("cargo build runs");
    assert!(build.status.success(), "{}", stderr(&build));

    // Its leak tests, on the whole crate, see the tag.
    let reports = tempfile::tempdir().expect("temp dir");
    let test = fixture
        .cargo(&["test", "-q", "--test", "leaks"])
        .env(memwatch_report::env::REPORT_DIR, reports.path())
        .output()
        .expect("cargo test runs");
    assert!(
        test.status.success(),
        "{}\n{}",
        stdout(&test),
        stderr(&test)
    );
    let reports = read_reports(reports.path());
    let report = &reports["kept_sessions_leak"];
    assert_eq!(report["verdict"]["kind"], "leak", "{report:#}");
    let rows = report["per_iteration"].as_array().expect("rows");
    let session = rows
        .iter()
        .find(|r| r["what"] == "Session")
        .unwrap_or_else(|| panic!("no Session row in {rows:#?}"));
    assert_eq!(session["+"], 1.0, "{session}");
    assert_eq!(session["size_bytes"], 48.0, "{session}");
}
