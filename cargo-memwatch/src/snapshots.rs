//! The snapshot files: insta's format, found in each package's
//! `tests/snapshots/`, validated, reviewed, accepted, rejected.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use cargo_metadata::Metadata;
use memwatch_report::env;

/// A snapshot file's parts: insta's YAML header between `---` lines, then
/// the body.
#[derive(Debug)]
pub struct Snap {
    pub body: String,
}

/// Reads and checks a `.snap` or `.snap.new` file, in the contract's
/// snapshot format.
pub fn parse(path: &Path) -> Result<Snap> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read {}", path.display()))?;
    let snap = memwatch_report::snapshot::parse(&text)
        .map_err(|why| anyhow::anyhow!("corrupt snapshot file {}: {why}", path.display()))?;
    Ok(Snap { body: snap.body })
}

/// The snapshot folders of the workspace's packages that exist: each
/// package's `tests/snapshots/`, or `MEMWATCH_SNAPSHOT_DIR` resolved for it
/// as the harness resolves it (a relative folder is under the package).
pub fn folders(meta: &Metadata) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for package in meta.workspace_packages() {
        let Some(root) = package.manifest_path.parent() else {
            continue;
        };
        let root = root.as_std_path();
        let dir = env::folder(env::SNAPSHOT_DIR, root)?
            .unwrap_or_else(|| root.join("tests").join("snapshots"));
        if dir.is_dir() {
            dirs.push(dir);
        }
    }
    dirs.sort();
    dirs.dedup();
    Ok(dirs)
}

fn files_ending(dirs: &[PathBuf], suffix: &str) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for dir in dirs {
        for entry in
            std::fs::read_dir(dir).with_context(|| format!("could not read {}", dir.display()))?
        {
            let path = entry?.path();
            if path.to_string_lossy().ends_with(suffix) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Checks every snapshot file; the first corrupt one is an error.
pub fn validate(dirs: &[PathBuf]) -> Result<()> {
    for path in files_ending(dirs, ".snap")?
        .iter()
        .chain(&files_ending(dirs, ".snap.new")?)
    {
        parse(path)?;
    }
    Ok(())
}

/// A pending snapshot and the approved one it would replace.
#[derive(Debug)]
pub struct Pending {
    pub new: PathBuf,
    pub approved: PathBuf,
    pub name: String,
}

/// Pending snapshots whose name contains one of `filters` (all if none).
pub fn pending(dirs: &[PathBuf], filters: &[String]) -> Result<Vec<Pending>> {
    let list: Vec<Pending> = files_ending(dirs, ".snap.new")?
        .into_iter()
        .map(|new| {
            let approved = PathBuf::from(new.to_string_lossy().trim_end_matches(".new").to_owned());
            let name = approved
                .file_name()
                .map(|n| n.to_string_lossy().trim_end_matches(".snap").to_owned())
                .unwrap_or_default();
            Pending {
                new,
                approved,
                name,
            }
        })
        .filter(|p| filters.is_empty() || filters.iter().any(|f| p.name.contains(f.as_str())))
        .collect();
    // Nothing changes unless every file involved reads well.
    for p in &list {
        parse(&p.new)?;
        if p.approved.exists() {
            parse(&p.approved)?;
        }
    }
    Ok(list)
}

pub fn accept(p: &Pending) -> Result<()> {
    std::fs::rename(&p.new, &p.approved)
        .with_context(|| format!("could not accept {}", p.new.display()))
}

pub fn reject(p: &Pending) -> Result<()> {
    std::fs::remove_file(&p.new).with_context(|| format!("could not reject {}", p.new.display()))
}

/// What the reviewer decided for one snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Accept,
    Reject,
    Skip,
}

/// Shows each pending snapshot beside the approved one and reads a, r or s
/// from `input`; the end of the input skips the rest.
pub fn review(
    list: &[Pending],
    mut input: impl BufRead,
    mut out: impl Write,
) -> Result<Vec<(String, Decision)>> {
    let mut decisions = Vec::new();
    for (n, p) in list.iter().enumerate() {
        let new = parse(&p.new)?;
        let old = if p.approved.exists() {
            Some(parse(&p.approved)?)
        } else {
            None
        };
        writeln!(out, "\n[{}/{}] {}", n + 1, list.len(), p.new.display())?;
        match &old {
            Some(old) => {
                writeln!(out, "--- approved\n+++ pending")?;
                write!(
                    out,
                    "{}",
                    memwatch_report::snapshot::diff(&old.body, &new.body)
                )?;
            }
            None => {
                writeln!(out, "new snapshot:")?;
                for l in new.body.lines() {
                    writeln!(out, "+ {l}")?;
                }
            }
        }
        let decision = loop {
            write!(out, "accept (a), reject (r) or skip (s)? ")?;
            out.flush()?;
            let mut line = String::new();
            if input.read_line(&mut line)? == 0 {
                writeln!(out)?;
                break Decision::Skip;
            }
            match line.trim() {
                "a" | "accept" => break Decision::Accept,
                "r" | "reject" => break Decision::Reject,
                "s" | "skip" | "" => break Decision::Skip,
                other => writeln!(out, "`{other}`: answer a, r or s")?,
            }
        };
        match decision {
            Decision::Accept => accept(p)?,
            Decision::Reject => reject(p)?,
            Decision::Skip => {}
        }
        decisions.push((p.name.clone(), decision));
    }
    if list.is_empty() {
        writeln!(out, "no pending snapshots")?;
    }
    Ok(decisions)
}

/// Fails when a filter given by name matched nothing.
pub fn require_matches(list: &[Pending], filters: &[String]) -> Result<()> {
    if !filters.is_empty() && list.is_empty() {
        bail!("no pending snapshot matches {}", filters.join(", "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_checks_the_header() {
        let dir = std::env::temp_dir().join(format!("memwatch-snap-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.snap");
        std::fs::write(
            &good,
            "---\nsource: x.rs\ndescription: \"d\"\n---\nverdict: clean\n",
        )
        .unwrap();
        assert_eq!(parse(&good).unwrap().body, "verdict: clean");
        for (name, text) in [
            ("a.snap", "verdict: clean\n"),
            ("b.snap", "---\nsource: x.rs\nverdict: clean\n"),
            ("c.snap", "---\nnot a header line\n---\nbody\n"),
        ] {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            let err = parse(&p).unwrap_err().to_string();
            assert!(err.starts_with("corrupt snapshot file"), "{err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
