//! Where the blocks that survived were allocated: the captured stacks,
//! resolved to symbols and folded to the frames of the user's own code.

use std::collections::HashMap;
use std::path::Path;

use crate::allocator::{untracked, RawSite};

pub(crate) use memwatch_report::report::{Frame, FrameKind, Site, Sites as SiteReport};

/// Function-name prefixes of frames that are never the user's.
const RUNTIME_PREFIXES: &[&str] = &[
    "std::",
    "core::",
    "alloc::",
    "backtrace::",
    "memwatch_test::",
    "__rust",
    "__rdl",
    "__libc",
    "_start",
    "start_thread",
    "clone",
    "<std::",
    "<core::",
    "<alloc::",
    "<memwatch_test::",
];

fn classify(function: &str, file: Option<&str>) -> FrameKind {
    if RUNTIME_PREFIXES.iter().any(|p| function.starts_with(p)) {
        return FrameKind::Runtime;
    }
    match file {
        None => FrameKind::Runtime,
        Some(f) if f.starts_with("/rustc/") || f.contains("/library/std/") => FrameKind::Runtime,
        Some(f) if f.contains("/.cargo/registry/") || f.contains("/.cargo/git/") => {
            FrameKind::Dependency
        }
        Some(_) => FrameKind::User,
    }
}

/// A path as short as it can be: relative to `root` (the workspace root)
/// when inside it, `crate-version/...` for a registry crate.
fn short_path(path: &Path, root: &Path) -> String {
    if let Ok(rel) = path.strip_prefix(root) {
        return rel.display().to_string();
    }
    let text = path.display().to_string();
    if let Some((_, rest)) = text.split_once("/.cargo/registry/src/") {
        // `index.crates.io-<hash>/<crate>-<version>/src/...`
        if let Some((_, in_crate)) = rest.split_once('/') {
            return in_crate.to_owned();
        }
    }
    text
}

/// Frames from the one that calls the test body outward belong to the
/// harness and its callers: not part of the allocation's story.
fn is_harness_caller(frame: &Frame) -> bool {
    frame.function.starts_with("memwatch_test::runner::")
        || frame.function.starts_with("<memwatch_test::runner::")
}

/// The frames of one return address (several when calls were inlined).
fn resolve_ip(ip: usize, root: &Path) -> Vec<Frame> {
    let mut frames = Vec::new();
    backtrace::resolve(ip as *mut std::ffi::c_void, |symbol| {
        let function = symbol
            .name()
            .map(|n| format!("{n:#}"))
            .unwrap_or_else(|| format!("{ip:#x}"));
        let file = symbol.filename().map(|f| short_path(f, root));
        let kind = classify(&function, file.as_deref());
        frames.push(Frame {
            function,
            file,
            line: symbol.lineno(),
            kind,
        });
    });
    frames
}

/// Resolves and folds the raw sites of a capture window of `iterations`,
/// with paths relative to `root`.
pub(crate) fn report(
    raw: Vec<RawSite>,
    unattributed: u64,
    iterations: u32,
    root: &Path,
) -> SiteReport {
    untracked(|| {
        let mut cache: HashMap<usize, Vec<Frame>> = HashMap::new();
        let mut merged: Vec<(Frame, i64, i64, Vec<Frame>)> = Vec::new();
        for site in raw {
            let mut frames: Vec<Frame> = site
                .frames
                .iter()
                .flat_map(|&ip| {
                    cache
                        .entry(ip)
                        .or_insert_with(|| resolve_ip(ip, root))
                        .clone()
                })
                .collect();
            if let Some(cut) = frames.iter().position(is_harness_caller) {
                frames.truncate(cut);
            }
            let visible: Vec<Frame> = frames
                .iter()
                .filter(|f| f.kind != FrameKind::Runtime)
                .cloned()
                .collect();
            let top = visible
                .iter()
                .find(|f| f.kind == FrameKind::User)
                .or_else(|| visible.first())
                .cloned()
                .unwrap_or_else(|| Frame {
                    function: "(no frame outside the runtime)".to_owned(),
                    file: None,
                    line: None,
                    kind: FrameKind::Runtime,
                });
            match merged.iter_mut().find(|(f, ..)| *f == top) {
                Some((_, blocks, bytes, _)) => {
                    *blocks += site.live_blocks;
                    *bytes += site.live_bytes;
                }
                None => merged.push((top, site.live_blocks, site.live_bytes, visible)),
            }
        }
        let n = iterations.max(1) as f64;
        let mut sites: Vec<Site> = merged
            .into_iter()
            .map(|(frame, blocks, bytes, mut backtrace)| {
                backtrace.truncate(8);
                Site {
                    frame,
                    blocks_per_iteration: blocks as f64 / n,
                    bytes_per_iteration: bytes as f64 / n,
                    backtrace,
                }
            })
            .collect();
        sites.sort_by(|a, b| {
            b.bytes_per_iteration
                .total_cmp(&a.bytes_per_iteration)
                .then_with(|| a.frame.function.cmp(&b.frame.function))
                .then_with(|| a.frame.file.cmp(&b.frame.file))
                .then_with(|| a.frame.line.cmp(&b.frame.line))
        });
        SiteReport {
            iterations,
            sites,
            unattributed_blocks: unattributed,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_classified_by_crate() {
        assert_eq!(
            classify(
                "alloc::vec::Vec<T>::push",
                Some("/rustc/abc/library/alloc/src/vec.rs")
            ),
            FrameKind::Runtime
        );
        assert_eq!(
            classify(
                "memwatch_test::runner::run",
                Some("memwatch-test/src/runner.rs")
            ),
            FrameKind::Runtime
        );
        assert_eq!(
            classify(
                "hashbrown::raw::RawTable<T>::reserve",
                Some("/home/u/.cargo/registry/src/x/hashbrown-0.14/src/raw.rs")
            ),
            FrameKind::Dependency
        );
        assert_eq!(
            classify("leaks::helper", Some("tests/leaks.rs")),
            FrameKind::User
        );
        assert_eq!(
            classify("<myapp::Cache as myapp::Store>::put", Some("src/cache.rs")),
            FrameKind::User
        );
        assert_eq!(classify("0x1234", None), FrameKind::Runtime);
    }

    #[test]
    fn registry_paths_are_shortened() {
        let p = Path::new(
            "/home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.40.0/src/task/spawn.rs",
        );
        assert_eq!(
            short_path(p, Path::new("/ws")),
            "tokio-1.40.0/src/task/spawn.rs"
        );
        let member = Path::new("/ws/appcore/src/lib.rs");
        assert_eq!(short_path(member, Path::new("/ws")), "appcore/src/lib.rs");
    }
}
