//! `#[test]` functions in a leak-test target: libtest's harness is off
//! there (`harness = false`), so rustc drops them without a word and they
//! never run. The harness reads the targets' sources and fails with where
//! they are instead.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::registry::LeakTest;

/// The name of the check among the tests.
pub(crate) const NAME: &str = "memwatch::no_test_functions_in_leak_test_targets";

/// `file:line` of every `#[test]` (or `#[tokio::test]`) attribute in the
/// source files of `tests`; files that cannot be found are skipped.
pub(crate) fn find(tests: &[&LeakTest], manifest_dir: &Path) -> Vec<String> {
    let files: BTreeSet<&str> = tests.iter().map(|t| t.file).collect();
    let mut found = Vec::new();
    for file in files {
        let Some(path) = locate(file, manifest_dir) else {
            continue;
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.starts_with("#[test]") || line.starts_with("#[tokio::test") {
                found.push(format!("{file}:{}", i + 1));
            }
        }
    }
    found
}

/// `file!()` is relative to the workspace root, which is the package root
/// or one of its ancestors.
fn locate(file: &str, manifest_dir: &Path) -> Option<PathBuf> {
    let file = Path::new(file);
    if file.is_absolute() {
        return file.is_file().then(|| file.to_path_buf());
    }
    manifest_dir
        .ancestors()
        .map(|dir| dir.join(file))
        .find(|p| p.is_file())
}

/// The failure message for `found`.
pub(crate) fn message(found: &[String]) -> String {
    format!(
        "{} `#[test]` function(s) in a leak-test target never run: the target has \
         `harness = false`, so libtest's harness, which would run them, is off, and rustc \
         drops them.\n{}\nMake each a `#[leak_test]`, or move it to a target with the \
         standard harness (a file of its own under `tests/`, or `src/`).",
        found.len(),
        found
            .iter()
            .map(|f| format!("  {f}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}
