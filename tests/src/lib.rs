//! End-to-end tests of memwatch: they build fixture workspaces and run the
//! real binaries against them. The tests live in `tests/tests/`; this
//! library holds what they share.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The memwatch workspace's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The `cargo-memwatch` binary, built from this workspace (a no-op when
/// `cargo test --workspace` built it already).
pub fn cargo_memwatch() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let root = repo_root();
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "cargo-memwatch"])
            .current_dir(&root)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "could not build cargo-memwatch");
        let meta = Command::new(env!("CARGO"))
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .current_dir(&root)
            .output()
            .expect("cargo metadata runs");
        let meta: serde_json::Value = serde_json::from_slice(&meta.stdout).expect("metadata");
        let target = PathBuf::from(meta["target_directory"].as_str().expect("target dir"));
        target
            .join("debug")
            .join(format!("cargo-memwatch{}", std::env::consts::EXE_SUFFIX))
    })
}

/// A cargo workspace made in a temporary folder.
pub struct Fixture {
    dir: tempfile::TempDir,
}

/// A crate of a fixture workspace: its name, and its leak tests' source.
#[derive(Default)]
pub struct Crate<'a> {
    pub name: &'a str,
    /// `tests/leaks.rs`; `None` for a crate without leak tests.
    pub leaks: Option<&'a str>,
    /// `src/lib.rs`, which may use memwatch-test (a normal dependency then).
    pub lib: Option<&'a str>,
    /// More `[dependencies]` lines, and features for memwatch-test.
    pub dependencies: &'a str,
    pub memwatch_features: &'a [&'a str],
    /// Leave `harness = false` out of the leak-test target (a mistake).
    pub standard_harness: bool,
    /// The library depends on memwatch-test's engine alone
    /// (`default-features = false`), and its tests on the whole crate.
    pub engine_only_lib: bool,
}

impl Fixture {
    /// A workspace of `crates`, each depending on this checkout's
    /// memwatch-test. It reuses this workspace's lock file and a shared
    /// target folder, so dependencies build once for every fixture.
    pub fn new(crates: &[Crate<'_>]) -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        let members: Vec<String> = crates.iter().map(|c| format!("\"{}\"", c.name)).collect();
        write(
            &root.join("Cargo.toml"),
            &format!(
                "[workspace]\nresolver = \"2\"\nmembers = [{}]\n",
                members.join(", ")
            ),
        );
        std::fs::copy(repo_root().join("Cargo.lock"), root.join("Cargo.lock")).expect("lock file");
        let memwatch = repo_root().join("memwatch-test");
        for c in crates {
            let section = if c.lib.is_some() {
                "dependencies"
            } else {
                "dev-dependencies"
            };
            let features: Vec<String> = c
                .memwatch_features
                .iter()
                .map(|f| format!("{f:?}"))
                .collect();
            let path = memwatch.display().to_string();
            let mut manifest = format!(
                "[package]\nname = \"{}\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n",
                c.name
            );
            if c.engine_only_lib {
                manifest.push_str(&format!(
                    "[dependencies]\nmemwatch-test = {{ path = {path:?}, default-features = false }}\n\
                     {}\n[dev-dependencies]\nmemwatch-test = {{ path = {path:?}, features = [{}] }}\n",
                    c.dependencies,
                    features.join(", "),
                ));
            } else {
                manifest.push_str(&format!(
                    "[{section}]\nmemwatch-test = {{ path = {path:?}, features = [{}] }}\n{}\n",
                    features.join(", "),
                    c.dependencies,
                ));
            }
            if c.leaks.is_some() && !c.standard_harness {
                manifest.push_str("\n[[test]]\nname = \"leaks\"\nharness = false\n");
            }
            write(&root.join(c.name).join("Cargo.toml"), &manifest);
            write(
                &root.join(c.name).join("src/lib.rs"),
                c.lib.unwrap_or("//! A fixture crate.\n"),
            );
            if let Some(leaks) = c.leaks {
                write(&root.join(c.name).join("tests/leaks.rs"), leaks);
            }
        }
        Fixture { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs `cargo memwatch ARGS` in the fixture, outside CI unless the
    /// caller sets `CI`.
    pub fn memwatch(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("cargo-memwatch runs")
    }

    /// The command, for callers that set more of it.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(cargo_memwatch());
        cmd.arg("memwatch").args(args);
        self.clean_env(&mut cmd);
        cmd
    }

    /// `cargo ARGS` in the fixture (`cargo test`, `cargo nextest run`), with
    /// the same environment as [`Fixture::command`].
    pub fn cargo(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(args);
        self.clean_env(&mut cmd);
        cmd
    }

    /// Runs in the fixture, outside CI, with no `MEMWATCH_*` or insta
    /// variable inherited and the shared fixture target folder.
    fn clean_env(&self, cmd: &mut Command) {
        cmd.current_dir(self.path())
            .env(
                "CARGO_TARGET_DIR",
                repo_root().join("target").join("e2e-fixtures"),
            )
            .env_remove("CI")
            .env_remove("GITHUB_ACTIONS")
            .env_remove("INSTA_UPDATE")
            .env_remove("INSTA_FORCE_PASS")
            .env_remove("MEMWATCH_REPORT_DIR")
            .env_remove("MEMWATCH_SNAPSHOT_DIR")
            .env_remove("CARGO_TERM_COLOR");
    }

    /// Panics, naming the paths, if files differ from `before` (a
    /// [`Fixture::files`] taken earlier).
    pub fn assert_unchanged(&self, before: &[(PathBuf, Vec<u8>)], what: &str) {
        let after = self.files();
        let changed: Vec<String> = before
            .iter()
            .filter(|b| !after.contains(b))
            .chain(after.iter().filter(|a| !before.contains(a)))
            .map(|(p, _)| p.display().to_string())
            .collect();
        assert!(changed.is_empty(), "{what}: files changed: {changed:?}");
    }

    /// Every file under the fixture (but `target/`) with its contents: to
    /// check that a command changed nothing.
    pub fn files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![self.path().to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).expect("readable") {
                let p = e.expect("entry").path();
                if p.is_dir() {
                    if p.file_name().is_some_and(|n| n != "target") {
                        stack.push(p);
                    }
                } else {
                    let bytes = std::fs::read(&p).expect("readable");
                    out.push((p, bytes));
                }
            }
        }
        out.sort();
        out
    }

    /// The file names in a crate's `tests/snapshots/`.
    pub fn snapshots(&self, krate: &str) -> Vec<String> {
        let dir = self.path().join(krate).join("tests/snapshots");
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// The JSON reports a leak test binary wrote to a `MEMWATCH_REPORT_DIR`,
/// by test name.
pub fn read_reports(dir: &Path) -> std::collections::BTreeMap<String, serde_json::Value> {
    std::fs::read_dir(dir)
        .expect("a report folder")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .map(|p| {
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&p).expect("readable")).expect("JSON");
            (v["test"].as_str().expect("a test name").to_owned(), v)
        })
        .collect()
}

/// Runs a leak test binary with `args` as CI would (snapshots compared,
/// none written) and a fresh `MEMWATCH_REPORT_DIR`, with `env` set and no
/// `MEMWATCH_SITES` or `MEMWATCH_DHAT` inherited; returns its output and
/// its JSON reports by test name.
pub fn run_fixture(
    exe: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (
    Output,
    std::collections::BTreeMap<String, serde_json::Value>,
) {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(exe)
        .args(args)
        .env("CI", "true")
        .env("MEMWATCH_REPORT_DIR", dir.path())
        .env_remove("MEMWATCH_SITES")
        .env_remove("MEMWATCH_DHAT")
        .envs(env.iter().copied())
        .output()
        .expect("the fixture binary runs");
    let reports = read_reports(dir.path());
    (out, reports)
}

/// Standard output as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Clean leak tests.
pub const CLEAN: &str = r#"
use memwatch_test::leak_test;

#[leak_test]
fn parse_is_clean() {
    let v: Vec<String> = "a,b,c".split(',').map(str::to_owned).collect();
    std::hint::black_box(v);
}

#[leak_test]
fn format_is_clean() {
    std::hint::black_box(format!("{}-{}", 1, 2));
}

memwatch_test::main!();
"#;

/// A leak (not marked `should_leak`) and a clean test.
pub const LEAKY: &str = r#"
use memwatch_test::leak_test;

#[leak_test]
fn cache_leaks() {
    static CACHE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    CACHE.lock().unwrap().push("entry".to_owned());
}

#[leak_test]
fn parse_is_clean() {
    std::hint::black_box("1,2".split(',').count());
}

memwatch_test::main!();
"#;

/// A test that starts a child process, writes its pid to the file named
/// by `FIXTURE_PID_FILE` and hangs.
pub const HANGS_WITH_A_CHILD: &str = r#"
use memwatch_test::leak_test;

#[leak_test(snapshot = false)]
fn hangs_with_a_child() {
    let child = std::process::Command::new("sleep").arg("600").spawn().unwrap();
    std::fs::write(std::env::var("FIXTURE_PID_FILE").unwrap(), child.id().to_string()).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(600));
}

memwatch_test::main!();
"#;

/// A test that ends the process with exit code 0, beside a clean one.
pub const EXITING: &str = r#"
use memwatch_test::leak_test;

#[leak_test(snapshot = false)]
fn exits_the_process() {
    std::process::exit(0);
}

#[leak_test(snapshot = false)]
fn runs_after_it() {
    std::hint::black_box(vec![1u8; 10]);
}

memwatch_test::main!();
"#;

/// A leak test beside a `#[test]` function, which such a target never runs.
pub const WITH_A_TEST_FN: &str = r#"
use memwatch_test::leak_test;

#[leak_test(snapshot = false)]
fn parse_is_clean() {
    std::hint::black_box("a,b".split(',').count());
}

#[test]
fn forgotten_unit_test() {
    assert_eq!(2 + 2, 5);
}

memwatch_test::main!();
"#;

/// Tests that abort, fault and hang, beside a clean one.
pub const CRASHING: &str = r#"
use memwatch_test::leak_test;

#[leak_test(snapshot = false)]
fn aborts() {
    std::process::abort();
}

#[leak_test(snapshot = false)]
fn segfaults() {
    // SAFETY: none; this fixture crashes on purpose.
    unsafe { std::ptr::null_mut::<u64>().write_volatile(1) };
}

#[leak_test(snapshot = false)]
fn hangs() {
    std::thread::sleep(std::time::Duration::from_secs(600));
}

#[leak_test(snapshot = false)]
fn survives_its_neighbours() {
    std::hint::black_box(vec![1u8; 10]);
}

memwatch_test::main!();
"#;
