//! Talking to cargo: the workspace, the test executables it builds, and the
//! leak tests inside them.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use cargo_metadata::{Message, Metadata, MetadataCommand};

use crate::cli::Selection;

/// The marker `memwatch-test` puts in every binary that links its harness.
const MARKER: &[u8] = b"memwatch-harness-marker:v1";
/// The first line a probed memwatch harness prints for `--list`.
const PROBE_HEADER: &str = "memwatch-harness 1";

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

/// Builds the selected test targets with `cargo test --no-run` and returns
/// their executables. Compiler diagnostics go to stderr as cargo renders
/// them.
pub fn build(selection: &Selection, meta: &Metadata) -> Result<Vec<TestBinary>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "test",
        "--no-run",
        "--tests",
        "--message-format=json-render-diagnostics",
    ]);
    push_selection(&mut cmd, selection);
    cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd.spawn().context("could not run cargo")?;
    let stdout = child.stdout.take().context("no output from cargo")?;
    let mut binaries = Vec::new();
    for message in Message::parse_stream(BufReader::new(stdout)) {
        let message = message.context("could not read cargo's output")?;
        if let Message::CompilerArtifact(a) = message {
            let Some(exe) = a.executable else { continue };
            if !a.profile.test {
                continue;
            }
            let package = meta
                .packages
                .iter()
                .find(|p| p.id == a.package_id)
                .map(|p| {
                    (
                        p.name.to_string(),
                        p.manifest_path.parent().map(|d| d.to_path_buf()),
                    )
                });
            let (package, dir) = match package {
                Some((name, Some(dir))) => (name, dir.into_std_path_buf()),
                _ => continue,
            };
            binaries.push(TestBinary {
                package,
                target: a.target.name.clone(),
                exe: exe.into_std_path_buf(),
                package_dir: dir,
            });
        }
    }
    let status = child.wait().context("cargo did not finish")?;
    if !status.success() {
        bail!("cargo could not build the tests (see above)");
    }
    binaries.sort_by(|a, b| (&a.package, &a.target).cmp(&(&b.package, &b.target)));
    Ok(binaries)
}

/// Whether the executable links memwatch's harness.
fn has_marker(exe: &Path) -> Result<bool> {
    let bytes = std::fs::read(exe).with_context(|| format!("could not read {}", exe.display()))?;
    Ok(memchr::memmem::find(&bytes, MARKER).is_some())
}

/// The leak tests of one memwatch binary (`--list`, probed), ignored ones
/// only with `include_ignored`; `None` if it is not a memwatch harness.
fn list(binary: &TestBinary, include_ignored: bool) -> Result<Option<Vec<String>>> {
    let run = |extra: &[&str]| -> Result<Option<Vec<String>>> {
        let out = Command::new(&binary.exe)
            .args(["--list", "--format", "terse"])
            .args(extra)
            .env("MEMWATCH_PROBE", "1")
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
                .filter_map(|l| l.strip_suffix(": test"))
                .map(str::to_owned)
                .collect(),
        ))
    };
    let Some(all) = run(&[])? else {
        return Ok(None);
    };
    if include_ignored {
        return Ok(Some(all));
    }
    let ignored = run(&["--ignored"])?.unwrap_or_default();
    Ok(Some(
        all.into_iter().filter(|t| !ignored.contains(t)).collect(),
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
            continue;
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
