//! The run folders under `<target>/memwatch/`: one per `cargo memwatch
//! test`, named by its start time and process id (no two runs share one),
//! marked with the workspace that made it, the last few kept.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// Runs of one workspace kept in a target folder; older ones are removed.
pub const KEEP: usize = 5;

/// The file in a run folder that names its workspace root.
const WORKSPACE_FILE: &str = "workspace";

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
