//! Talking to cargo: the workspace, the test executables it builds, and the
//! leak tests inside them.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use cargo_metadata::{Message, Metadata, MetadataCommand};

use crate::cli::Selection;

use memwatch_report::probe::{MARKER, PROBE_HEADER};

/// The workspace, read with `cargo metadata`.
pub fn metadata(manifest_path: Option<&Path>) -> Result<Metadata> {
    let mut cmd = MetadataCommand::new();
    cmd.no_deps();
    if let Some(path) = manifest_path {
        if !path.is_file() {
            bail!("{} is not a Cargo.toml", path.display());
        }
        cmd.manifest_path(path);
    }
    cmd.exec().map_err(|e| match e {
        cargo_metadata::Error::CargoMetadata { stderr } => {
            anyhow::anyhow!("this is not a cargo workspace: {}", stderr.trim())
        }
        other => anyhow::Error::new(other).context("could not read the workspace"),
    })
}

/// One test executable built by cargo.
#[derive(Debug, Clone)]
pub struct TestBinary {
    pub package: String,
    pub target: String,
    pub exe: PathBuf,
    /// The package's folder: tests run there, as under `cargo test`.
    pub package_dir: PathBuf,
}

/// One leak test in a test executable.
#[derive(Debug, Clone)]
pub struct LeakTestRef {
    /// Index into the binaries.
    pub binary: usize,
    pub name: String,
    /// `package/target::name`, unique in the workspace.
    pub id: String,
}

fn push_selection(cmd: &mut Command, s: &Selection) {
    for p in &s.packages {
        cmd.args(["--package", p]);
    }
    if s.workspace {
        cmd.arg("--workspace");
    }
    for p in &s.exclude {
        cmd.args(["--exclude", p]);
    }
    for f in &s.features {
        cmd.args(["--features", f]);
    }
    if s.all_features {
        cmd.arg("--all-features");
    }
    if s.no_default_features {
        cmd.arg("--no-default-features");
    }
    if s.release {
        cmd.arg("--release");
    }
    if let Some(p) = &s.profile {
        cmd.args(["--profile", p]);
    }
    if let Some(d) = &s.target_dir {
        cmd.arg("--target-dir").arg(d);
    }
    if let Some(m) = &s.manifest_path {
        cmd.arg("--manifest-path").arg(m);
    }
}

/// A test executable as cargo reported it.
#[derive(Debug)]
pub struct Built {
    package_id: cargo_metadata::PackageId,
    target: String,
    exe: PathBuf,
    package_dir: PathBuf,
}

/// How to run the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildMode {
    /// Cargo's output goes straight to the terminal.
    Live,
    /// `--locked` (the lock file is never written) with cargo's output held
    /// back: safe to start before the workspace is checked.
    Locked,
}

/// cargo could not compile the tests and has printed why: said once more,
/// as a plain line, not as a second `error:`.
#[derive(Debug)]
pub struct CompileFailed;

impl std::fmt::Display for CompileFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no leak test ran: cargo could not build the tests (its errors are above)")
    }
}

impl std::error::Error for CompileFailed {}

/// Why a build failed.
#[derive(Debug)]
pub enum BuildError {
    /// `--locked` refused to update the lock file: build again normally.
    LockFileStale,
    /// Anything else; cargo's output has been shown.
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for BuildError {
    fn from(e: anyhow::Error) -> Self {
        BuildError::Failed(e)
    }
}

/// Builds the selected test targets with `cargo test --no-run` and returns
/// their executables. In [`BuildMode::Locked`] cargo's output is shown only
/// after it finished.
pub fn build(selection: &Selection, mode: BuildMode) -> Result<Vec<Built>, BuildError> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "test",
        "--no-run",
        "--tests",
        "--message-format=json-render-diagnostics",
    ]);
    push_selection(&mut cmd, selection);
    let held = mode == BuildMode::Locked;
    if held {
        cmd.arg("--locked").stderr(Stdio::piped());
    } else {
        cmd.stderr(Stdio::inherit());
    }
    cmd.stdout(Stdio::piped());
    let mut child = cmd.spawn().context("could not run cargo")?;
    let stdout = child.stdout.take().context("no output from cargo")?;
    // Drain stderr on the side so cargo never blocks on a full pipe.
    let stderr = child.stderr.take().map(|mut e| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = std::io::Read::read_to_end(&mut e, &mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    });
    let mut built = Vec::new();
    for message in Message::parse_stream(BufReader::new(stdout)) {
        let message = message.context("could not read cargo's output")?;
        if let Message::CompilerArtifact(a) = message {
            let (Some(exe), Some(dir)) = (a.executable, a.manifest_path.parent()) else {
                continue;
            };
            // Leak tests are integration tests (`[[test]]`, `harness = false`):
            // unit-test binaries of libraries and binaries are not looked at.
            let integration = a.target.kind.iter().any(|k| k.to_string() == "test");
            if a.profile.test && integration {
                built.push(Built {
                    package_id: a.package_id,
                    target: a.target.name.clone(),
                    exe: exe.into_std_path_buf(),
                    package_dir: dir.as_std_path().to_path_buf(),
                });
            }
        }
    }
    let status = child.wait().context("cargo did not finish")?;
    let held_output = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    if !status.success() {
        if held && held_output.contains("--locked") {
            return Err(BuildError::LockFileStale);
        }
        eprint!("{held_output}");
        return Err(BuildError::Failed(CompileFailed.into()));
    }
    eprint!("{held_output}");
    Ok(built)
}

/// Names the built executables' packages, sorted by package and target.
pub fn resolve(built: Vec<Built>, meta: &Metadata) -> Vec<TestBinary> {
    let mut binaries: Vec<TestBinary> = built
        .into_iter()
        .filter_map(|b| {
            let package = meta.packages.iter().find(|p| p.id == b.package_id)?;
            Some(TestBinary {
                package: package.name.to_string(),
                target: b.target,
                exe: b.exe,
                package_dir: b.package_dir,
            })
        })
        .collect();
    binaries.sort_by(|a, b| (&a.package, &a.target).cmp(&(&b.package, &b.target)));
    binaries
}

/// Whether the executable links memwatch's harness: reads it in chunks and
/// stops at the marker, which sits near the start of the data.
fn has_marker(exe: &Path) -> Result<bool> {
    use std::io::Read;
    let read_err = || format!("could not read {}", exe.display());
    let mut file = std::fs::File::open(exe).with_context(read_err)?;
    let finder = memchr::memmem::Finder::new(MARKER);
    let mut buf = vec![0u8; 1 << 20];
    let mut kept = 0; // bytes carried over from the previous chunk
    loop {
        let n = file.read(&mut buf[kept..]).with_context(read_err)?;
        if n == 0 {
            return Ok(false);
        }
        let filled = kept + n;
        if finder.find(&buf[..filled]).is_some() {
            return Ok(true);
        }
        // Keep the tail, in case the marker straddles two chunks.
        kept = (MARKER.len() - 1).min(filled);
        buf.copy_within(filled - kept..filled, 0);
    }
}

/// The leak tests of one memwatch binary (a probed `--list` answers with
/// each test's ignore flag), ignored ones only with `include_ignored`;
/// `None` if it is not a memwatch harness.
fn list(binary: &TestBinary, include_ignored: bool) -> Result<Option<Vec<String>>> {
    let out = Command::new(&binary.exe)
        .args(["--list", "--format", "terse"])
        .env(memwatch_report::env::PROBE, "1")
        .current_dir(&binary.package_dir)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not run {}", binary.exe.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    if !out.status.success() || lines.next() != Some(PROBE_HEADER) {
        return Ok(None);
    }
    Ok(Some(
        lines
            .filter_map(|l| match l.rsplit_once(": ") {
                Some((name, "test")) => Some(name.to_owned()),
                Some((name, "ignored")) if include_ignored => Some(name.to_owned()),
                _ => None,
            })
            .collect(),
    ))
}

/// Every leak test of the binaries, sorted by id.
pub fn discover(binaries: &[TestBinary], include_ignored: bool) -> Result<Vec<LeakTestRef>> {
    let mut tests = Vec::new();
    for (i, b) in binaries.iter().enumerate() {
        if !has_marker(&b.exe)? {
            continue;
        }
        let Some(names) = list(b, include_ignored)? else {
            // memwatch's harness is linked in, but libtest's harness runs:
            // its leak tests would never run.
            anyhow::bail!(
                "the target `{}` of package `{}` holds leak tests but is built with libtest's \
                 own harness, which never runs them: add `harness = false` to it in {}",
                b.target,
                b.package,
                b.package_dir.join("Cargo.toml").display()
            );
        };
        for name in names {
            tests.push(LeakTestRef {
                binary: i,
                id: format!("{}/{}::{}", b.package, b.target, name),
                name,
            });
        }
    }
    tests.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(tests)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with_marker_at(dir: &Path, name: &str, at: Option<usize>) -> PathBuf {
        let mut bytes = vec![b'x'; 3 << 20];
        if let Some(at) = at {
            bytes[at..at + MARKER.len()].copy_from_slice(MARKER);
        }
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn the_marker_is_found_anywhere_even_across_chunks() {
        let dir = std::env::temp_dir().join(format!("memwatch-marker-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, at) in [
            ("start", Some(0)),
            ("straddles", Some((1 << 20) - 5)),
            ("late", Some((3 << 20) - MARKER.len())),
        ] {
            assert!(
                has_marker(&file_with_marker_at(&dir, name, at)).unwrap(),
                "{name}"
            );
        }
        assert!(!has_marker(&file_with_marker_at(&dir, "none", None)).unwrap());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
