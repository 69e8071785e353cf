//! The run folders under `<target>/memwatch/`: one per `cargo memwatch
//! test`, named by its start time and process id (no two runs share one),
//! marked with the workspace that made it, the last few kept.
//!
//! A run folder holds a folder per test (`00000`, `00001`, ... in test
//! order) with the test's id in the workspace, its output, the harness's
//! JSON report when it wrote one, and the outcome the terminal showed.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Runs of one workspace kept in a target folder; older ones are removed.
pub const KEEP: usize = 5;

/// The file in a run folder that names its workspace root.
const WORKSPACE_FILE: &str = "workspace";

/// The file in a test's folder that holds its id in the workspace.
const ID_FILE: &str = "id";

/// The file in a test's folder that holds its [`Outcome`]. Not `.json`: the
/// harness's report is the folder's one JSON file.
const OUTCOME_FILE: &str = "outcome";

/// The folder of the `index`-th test of a run.
pub fn test_dir(run: &Path, index: usize) -> PathBuf {
    run.join(format!("{index:05}"))
}

/// Makes the folder of a test of a run, with its id.
pub fn create_test_dir(run: &Path, index: usize, id: &str) -> Result<PathBuf> {
    let dir = test_dir(run, index);
    std::fs::create_dir_all(&dir).with_context(|| format!("could not create {}", dir.display()))?;
    std::fs::write(dir.join(ID_FILE), id)
        .with_context(|| format!("could not write into {}", dir.display()))?;
    Ok(dir)
}

/// What the terminal showed of a test, kept for `cargo memwatch report`:
/// also a test that left no report (it crashed or timed out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// The status column (`ok`, `known leak`, `FAILED`, `CRASHED`, ...).
    pub status: String,
    /// Whether the test passed.
    pub passed: bool,
    /// Its time column, in seconds: the test process's wall time.
    pub seconds: f64,
    /// Its failure message, when it failed.
    pub message: Option<String>,
}

/// Writes `outcome` into a test's folder.
pub fn write_outcome(dir: &Path, outcome: &Outcome) -> Result<()> {
    let path = dir.join(OUTCOME_FILE);
    let text = serde_json::to_string(outcome)?;
    std::fs::write(&path, text).with_context(|| format!("could not write {}", path.display()))
}

/// One test's folder of a run, as `cargo memwatch report` reads it.
#[derive(Debug)]
pub struct TestEntry {
    /// Its id in the workspace (the report names it within its binary).
    pub id: Option<String>,
    /// The outcome, unless the run was stopped before the test ended.
    pub outcome: Option<Outcome>,
    /// The folder, where the harness's report is.
    pub dir: PathBuf,
}

/// The test folders of a run, in test order.
pub fn tests_of(run: &Path) -> Result<Vec<TestEntry>> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(run)
        .with_context(|| format!("could not read {}", run.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    Ok(dirs
        .into_iter()
        .map(|dir| TestEntry {
            id: std::fs::read_to_string(dir.join(ID_FILE)).ok(),
            outcome: std::fs::read(dir.join(OUTCOME_FILE))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok()),
            dir,
        })
        .collect())
}

/// `<target>/memwatch`, with `--target-dir` (when given) over cargo's.
pub fn memwatch_dir(target_dir: Option<&Path>, meta: &cargo_metadata::Metadata) -> PathBuf {
    target_dir
        .map(Path::to_path_buf)
        .unwrap_or_else(|| meta.target_directory.clone().into_std_path_buf())
        .join("memwatch")
}

/// Makes the folder of a new run of `workspace`, and removes this
/// workspace's runs beyond the last [`KEEP`].
pub fn create(memwatch_dir: &Path, workspace: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(memwatch_dir)
        .with_context(|| format!("could not create {}", memwatch_dir.display()))?;
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    // A folder of its own, even for two runs in one millisecond.
    let mut n = 0u32;
    let dir = loop {
        let dir = memwatch_dir.join(format!("run-{millis:014}-{}-{n:04}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => break dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
            Err(e) => return Err(e).with_context(|| format!("could not create {}", dir.display())),
        }
    };
    std::fs::write(
        dir.join(WORKSPACE_FILE),
        workspace.to_string_lossy().as_bytes(),
    )
    .with_context(|| format!("could not write into {}", dir.display()))?;
    let runs = of_workspace(memwatch_dir, workspace)?;
    for old in runs.iter().take(runs.len().saturating_sub(KEEP)) {
        // Best effort: a folder in use elsewhere stays.
        let _ = std::fs::remove_dir_all(old);
    }
    Ok(dir)
}

/// The runs of `workspace`, oldest first.
fn of_workspace(memwatch_dir: &Path, workspace: &Path) -> Result<Vec<PathBuf>> {
    let Ok(entries) = std::fs::read_dir(memwatch_dir) else {
        return Ok(Vec::new());
    };
    let mut runs: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let path = entry?.path();
        let is_run = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("run-"));
        let ours = std::fs::read_to_string(path.join(WORKSPACE_FILE))
            .is_ok_and(|w| Path::new(&w) == workspace);
        if is_run && ours {
            runs.push(path);
        }
    }
    // The names start with the zero-padded start time.
    runs.sort();
    Ok(runs)
}

/// The newest run of `workspace`.
pub fn latest(memwatch_dir: &Path, workspace: &Path) -> Result<PathBuf> {
    match of_workspace(memwatch_dir, workspace)?.pop() {
        Some(run) => Ok(run),
        None => bail!(
            "no run of {} in {}: run `cargo memwatch test` first",
            workspace.display(),
            memwatch_dir.display()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_unique_per_workspace_and_pruned() {
        let tmp = std::env::temp_dir().join(format!("memwatch-runs-{}", std::process::id()));
        let (a, b) = (Path::new("/ws/a"), Path::new("/ws/b"));
        let other = create(&tmp, b).unwrap();
        let mut made = Vec::new();
        for _ in 0..KEEP + 2 {
            made.push(create(&tmp, a).unwrap());
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let kept = of_workspace(&tmp, a).unwrap();
        assert_eq!(kept, made[2..].to_vec(), "the last {KEEP} are kept");
        assert_eq!(latest(&tmp, a).unwrap(), made[KEEP + 1]);
        assert_eq!(
            latest(&tmp, b).unwrap(),
            other,
            "another workspace's run stays"
        );
        assert!(latest(&tmp, Path::new("/ws/c")).is_err());
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
