//! Where the blocks that survived were allocated: the captured stacks,
//! resolved to symbols and folded to the frames of the user's own code.

use std::collections::HashMap;
use std::path::Path;

use crate::allocator::{untracked, RawSite, MAX_FRAMES};

pub(crate) use memwatch_report::report::{
    Frame, FrameKind, Preview, Retention, Site, Sites as SiteReport,
};

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

/// Whose code a frame is, from its function's name and its file's full
/// path as the debug information gives it (before any shortening):
///
/// - std, core, alloc, memwatch and the unwinder, by name or by their
///   sources under `/rustc/<hash>/library/`, and a frame with no file, are
///   the runtime;
/// - a registry or git crate (`.../registry/src/...`, `.../git/checkouts/...`),
///   a crate std vendors (`/rust/deps/...`), the workspace's `vendor/` and
///   `target/` folders, and any file outside the workspace `root` (a path
///   dependency elsewhere) are dependencies;
/// - any other file under `root`, or a relative path (as rustc records the
///   workspace's own files when it cannot join them), is the user's.
fn classify(function: &str, file: Option<&Path>, root: &Path) -> FrameKind {
    if RUNTIME_PREFIXES.iter().any(|p| function.starts_with(p)) {
        return FrameKind::Runtime;
    }
    let Some(path) = file else {
        return FrameKind::Runtime;
    };
    let text = path.to_string_lossy();
    if text.starts_with("/rustc/") {
        return FrameKind::Runtime;
    }
    if text.starts_with("/rust/deps/")
        || text.contains("/registry/src/")
        || text.contains("/git/checkouts/")
    {
        return FrameKind::Dependency;
    }
    if path.is_relative() {
        return FrameKind::User;
    }
    match path.strip_prefix(root) {
        Ok(inside) if !inside.starts_with("target") && !inside.starts_with("vendor") => {
            FrameKind::User
        }
        _ => FrameKind::Dependency,
    }
}

/// A path as short as it can be: relative to `root` (the workspace root)
/// when inside it, `crate-version/...` for a registry crate or a crate std
/// vendors.
fn short_path(path: &Path, root: &Path) -> String {
    if let Ok(rel) = path.strip_prefix(root) {
        return rel.display().to_string();
    }
    let text = path.display().to_string();
    if let Some((_, rest)) = text.split_once("/registry/src/") {
        // `index.crates.io-<hash>/<crate>-<version>/src/...`
        if let Some((_, in_crate)) = rest.split_once('/') {
            return in_crate.to_owned();
        }
    }
    if let Some(in_crate) = text.strip_prefix("/rust/deps/") {
        return in_crate.to_owned();
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
        let path = symbol.filename();
        // Classified on the full path, shortened for people after.
        let kind = classify(&function, path, root);
        frames.push(Frame {
            function,
            file: path.map(|p| short_path(p, root)),
            line: symbol.lineno(),
            kind,
        });
    });
    frames
}

/// Where a stack's blocks are reported: the innermost frame of the user's
/// code, and the innermost dependency frame under it (the library code
/// that allocated for it). With no frame of the user's code on the stack,
/// the outermost dependency frame, which the user's code called or
/// spawned; with no frame outside the runtime at all, a placeholder.
fn site_of(visible: &[Frame]) -> (Frame, Option<Frame>) {
    match visible.iter().position(|f| f.kind == FrameKind::User) {
        Some(user) => (
            visible[user].clone(),
            visible[..user]
                .iter()
                .find(|f| f.kind == FrameKind::Dependency)
                .cloned(),
        ),
        None => match visible.last() {
            Some(outermost) => (
                outermost.clone(),
                visible.first().filter(|f| *f != outermost).cloned(),
            ),
            None => (
                Frame {
                    function:
                        "(only std's frames: the runtime's own work, such as a thread's start)"
                            .to_owned(),
                    file: None,
                    line: None,
                    kind: FrameKind::Runtime,
                },
                None,
            ),
        },
    }
}

/// The last segment of a function's path, without generic arguments:
/// `spawn` for `tokio::task::spawn::spawn<F>` and `<A as B>::spawn`.
fn last_segment(function: &str) -> &str {
    let last = function.rsplit("::").next().unwrap_or(function);
    last.split('<').next().unwrap_or(last)
}

/// The spawn function (of a thread or a task) the stack went through, when
/// it did: the outermost frame of the runtime or of a dependency whose name
/// starts with `spawn` (`std::thread::spawn`, `tokio::task::spawn::spawn`,
/// `Handle::spawn`, `spawn_blocking`, ...). The user's own functions are
/// never one, whatever their name.
fn spawned_by(frames: &[Frame]) -> Option<String> {
    frames
        .iter()
        .rev()
        .find(|f| f.kind != FrameKind::User && last_segment(&f.function).starts_with("spawn"))
        .map(|f| f.function.clone())
}

/// Frames of the backtrace kept in a site, from the allocation outwards.
const BACKTRACE_FRAMES: usize = 16;

/// Resolves captured stacks, each return address once.
pub(crate) struct Resolver<'a> {
    root: &'a Path,
    cache: HashMap<usize, Vec<Frame>>,
}

/// A resolved stack, up to the frame that calls the test body.
pub(crate) struct Stack {
    /// Every frame, the runtime's included, from the allocation outwards.
    frames: Vec<Frame>,
    /// The capture kept [`MAX_FRAMES`] and there were more.
    cut: bool,
}

impl<'a> Resolver<'a> {
    /// Paths are given relative to `root`, the workspace's.
    pub(crate) fn new(root: &'a Path) -> Self {
        Resolver {
            root,
            cache: HashMap::new(),
        }
    }

    /// The frames of the return addresses `ips`, innermost first.
    pub(crate) fn stack(&mut self, ips: &[usize]) -> Stack {
        let root = self.root;
        let mut frames: Vec<Frame> = ips
            .iter()
            .flat_map(|&ip| {
                self.cache
                    .entry(ip)
                    .or_insert_with(|| resolve_ip(ip, root))
                    .clone()
            })
            .collect();
        if let Some(caller) = frames.iter().position(is_harness_caller) {
            frames.truncate(caller);
        }
        Stack {
            frames,
            cut: ips.len() >= MAX_FRAMES,
        }
    }
}

impl Stack {
    /// The frames outside the runtime.
    fn visible(&self) -> Vec<Frame> {
        self.frames
            .iter()
            .filter(|f| f.kind != FrameKind::Runtime)
            .cloned()
            .collect()
    }

    /// Where its blocks are reported, and the dependency that made them
    /// (see [`site_of`]).
    pub(crate) fn site(&self) -> (Frame, Option<Frame>) {
        site_of(&self.visible())
    }

    /// What the blocks allocated on this stack are, as the frames under
    /// the user's innermost frame tell it: the outermost of them that makes
    /// a known kind of value (`HashMap::insert` over hashbrown's table is a
    /// table; `String::push_str` over `Vec`'s growth is a `String`).
    pub(crate) fn kind(&self) -> Option<String> {
        let user = self
            .frames
            .iter()
            .position(|f| f.kind == FrameKind::User)
            .unwrap_or(self.frames.len());
        self.frames[..user]
            .iter()
            .rev()
            .find_map(|f| kind_of(&f.function))
            .map(str::to_owned)
    }
}

/// The kind of value a function of std (or of hashbrown) allocates for,
/// from its path's start: generic arguments (`Map<alloc::string::String,
/// Value>::insert`) say nothing of what the function allocates.
fn kind_of(function: &str) -> Option<&'static str> {
    const KINDS: &[(&str, &str)] = &[
        ("alloc::rc::", "Rc<_>"),
        ("alloc::sync::", "Arc<_>"),
        ("alloc::boxed::", "Box<_>"),
        ("alloc::fmt::format", "String"),
        ("alloc::string::", "String"),
        ("alloc::str::", "String"),
        ("str as alloc::borrow::ToOwned>", "String"),
        ("alloc::ffi::c_str::", "CString"),
        ("alloc::collections::vec_deque::", "a VecDeque's buffer"),
        ("alloc::collections::btree::", "a BTreeMap's node"),
        ("std::collections::hash::", "a HashMap's table"),
        ("hashbrown::", "a HashMap's table"),
        ("alloc::vec::", "a Vec's buffer"),
        ("alloc::raw_vec::", "a Vec's buffer"),
        ("alloc::slice::", "a Vec's buffer"),
    ];
    if function.starts_with('<') && function.contains(" as alloc::string::ToString>::") {
        return Some("String");
    }
    let path = function.trim_start_matches('<');
    KINDS
        .iter()
        .find(|(prefix, _)| path.starts_with(prefix))
        .map(|(_, kind)| *kind)
}

/// Orders retention examples, simplest first: a path before a cycle
/// before the rest, fewer steps first, then by what they say, so that
/// merging raw sites picks the same example in every run.
fn story_rank(r: &Retention) -> (u8, usize, Vec<String>) {
    use memwatch_report::report::Retainer;
    let (kind, steps) = match &r.example {
        Retainer::Path { steps, .. } => (0, steps.len()),
        Retainer::Cycle { steps } => (1, steps.len()),
        Retainer::HeldByLost { steps } => (2, steps.len()),
        Retainer::Unreferenced => (3, 0),
        Retainer::Lost => (4, 0),
        Retainer::Unknown { .. } => (5, 0),
    };
    (kind, steps, r.lines())
}

/// What blocks are, from the kind of value their stack made and the tag
/// they were allocated under: `Box<_> (tagged Session)`. A tag names the
/// code that allocated (everything `Session::open` allocates, serde's
/// nodes included), not the block's type, so both are said.
pub(crate) fn what(kind: Option<String>, tag: Option<&str>) -> Option<String> {
    match (kind, tag) {
        (Some(kind), Some(tag)) => Some(format!("{kind} (tagged {tag})")),
        (None, Some(tag)) => Some(format!("a block (tagged {tag})")),
        (kind, None) => kind,
    }
}

/// A site's raw figures and what a scan found about its blocks.
pub(crate) struct SiteEvidence {
    pub raw: RawSite,
    /// The `#[tagged]` name of its blocks, when tagged.
    pub tag: Option<String>,
    pub retention: Option<Retention>,
    pub preview: Option<Preview>,
}

impl From<RawSite> for SiteEvidence {
    fn from(raw: RawSite) -> Self {
        SiteEvidence {
            raw,
            tag: None,
            retention: None,
            preview: None,
        }
    }
}

/// Resolves and folds the raw sites of a capture window of `iterations`.
pub(crate) fn report(
    evidence: Vec<SiteEvidence>,
    unattributed: u64,
    iterations: u32,
    resolver: &mut Resolver<'_>,
) -> SiteReport {
    untracked(|| {
        // Sites with the same frame, dependency frame and spawn are one;
        // their live blocks and bytes add up, and the scan's counts too.
        let mut merged: Vec<(Site, i64, i64)> = Vec::new();
        for e in evidence {
            let raw_site = e.raw;
            let stack = resolver.stack(&raw_site.frames);
            let spawned_by = spawned_by(&stack.frames);
            let (frame, allocated_in) = stack.site();
            let same = |s: &Site| {
                s.frame == frame && s.allocated_in == allocated_in && s.spawned_by == spawned_by
            };
            match merged.iter_mut().find(|(s, ..)| same(s)) {
                Some((site, blocks, bytes)) => {
                    site.stack_cut |= stack.cut;
                    *blocks += raw_site.live_blocks;
                    *bytes += raw_site.live_bytes;
                    match (&mut site.retention, e.retention) {
                        (Some(kept), Some(more)) => {
                            let (reachable, lost) =
                                (kept.reachable + more.reachable, kept.lost + more.lost);
                            // The simplest story of the two, whatever the
                            // order the raw sites came in.
                            if story_rank(&more) < story_rank(kept) {
                                *kept = more;
                            }
                            kept.reachable = reachable;
                            kept.lost = lost;
                        }
                        (kept @ None, more) => *kept = more,
                        _ => {}
                    }
                    site.preview = site.preview.take().or(e.preview);
                }
                None => {
                    let mut backtrace = stack.visible();
                    backtrace.truncate(BACKTRACE_FRAMES);
                    let site = Site {
                        kind: what(stack.kind(), e.tag.as_deref()),
                        frame,
                        allocated_in,
                        spawned_by,
                        stack_cut: stack.cut,
                        blocks_per_iteration: 0.0,
                        bytes_per_iteration: 0.0,
                        backtrace,
                        retention: e.retention,
                        preview: e.preview,
                    };
                    merged.push((site, raw_site.live_blocks, raw_site.live_bytes));
                }
            }
        }
        let n = iterations.max(1) as f64;
        let mut sites: Vec<Site> = merged
            .into_iter()
            .map(|(mut site, blocks, bytes)| {
                site.blocks_per_iteration = blocks as f64 / n;
                site.bytes_per_iteration = bytes as f64 / n;
                site
            })
            .collect();
        sites.sort_by(|a, b| {
            b.bytes_per_iteration
                .total_cmp(&a.bytes_per_iteration)
                .then_with(|| a.frame.function.cmp(&b.frame.function))
                .then_with(|| a.frame.file.cmp(&b.frame.file))
                .then_with(|| a.frame.line.cmp(&b.frame.line))
                .then_with(|| {
                    let name = |s: &Site| s.allocated_in.as_ref().map(|f| f.describe());
                    name(a).cmp(&name(b))
                })
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

    /// The workspace root, as the harness finds it for this crate.
    fn root() -> &'static Path {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("memwatch-test is a workspace member")
    }

    /// The return addresses of the current stack, innermost first.
    fn stack() -> Vec<usize> {
        let mut ips = Vec::new();
        backtrace::trace(|frame| {
            ips.push(frame.ip() as usize);
            true
        });
        ips
    }

    /// The resolved frames of `ips`, as a capture's report resolves them.
    fn resolved(ips: &[usize]) -> Vec<Frame> {
        ips.iter().flat_map(|&ip| resolve_ip(ip, root())).collect()
    }

    /// A value whose deserialisation records the stack: serde_json's frames
    /// (a registry crate) are then on it, under this crate's.
    struct StackOnDeserialize(Vec<usize>);

    impl<'de> serde::Deserialize<'de> for StackOnDeserialize {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let stack = stack();
            <serde::de::IgnoredAny as serde::Deserialize>::deserialize(d)?;
            Ok(StackOnDeserialize(stack))
        }
    }

    #[test]
    fn real_frames_of_a_registry_crate_are_a_dependency() {
        let value: Vec<StackOnDeserialize> = serde_json::from_str("[1]").unwrap();
        let frames = resolved(&value[0].0);
        let serde: Vec<&Frame> = frames
            .iter()
            .filter(|f| {
                f.function.starts_with("serde_json::") || f.function.starts_with("<serde_json::")
            })
            .collect();
        assert!(!serde.is_empty(), "{frames:#?}");
        for f in &serde {
            assert_eq!(f.kind, FrameKind::Dependency, "{f:?}");
            let file = f.file.as_deref().unwrap_or("");
            assert!(file.starts_with("serde_json-1."), "shortened after: {f:?}");
        }
        // This crate's own frames are the runtime's (memwatch), and std's too.
        for f in frames
            .iter()
            .filter(|f| f.function.starts_with("memwatch_test::"))
        {
            assert_eq!(f.kind, FrameKind::Runtime, "{f:?}");
        }
    }

    #[test]
    fn real_frames_of_a_crate_std_vendors_are_a_dependency() {
        let mut map: std::collections::HashMap<u32, u32> = (0..4).map(|k| (k, k)).collect();
        let mut seen = Vec::new();
        map.retain(|k, _| {
            if seen.is_empty() {
                seen = stack();
            }
            *k > 0
        });
        let frames = resolved(&seen);
        let hashbrown: Vec<&Frame> = frames
            .iter()
            .filter(|f| {
                f.file
                    .as_deref()
                    .is_some_and(|p| p.starts_with("hashbrown-"))
            })
            .collect();
        assert!(!hashbrown.is_empty(), "{frames:#?}");
        for f in hashbrown {
            assert_eq!(f.kind, FrameKind::Dependency, "{f:?}");
        }
        let std_frame = frames
            .iter()
            .find(|f| {
                f.function
                    .starts_with("std::collections::hash::map::HashMap")
            })
            .unwrap_or_else(|| panic!("{frames:#?}"));
        assert_eq!(std_frame.kind, FrameKind::Runtime);
    }

    #[test]
    fn paths_in_the_workspace_are_the_users_but_its_vendor_and_target() {
        let root = Path::new("/ws");
        let kind = |f: &str| classify("app::f", Some(Path::new(f)), root);
        assert_eq!(kind("/ws/app/src/lib.rs"), FrameKind::User);
        assert_eq!(kind("app/src/lib.rs"), FrameKind::User);
        assert_eq!(kind("/ws/vendor/serde/src/de.rs"), FrameKind::Dependency);
        assert_eq!(
            kind("/ws/target/debug/build/app-1/out/gen.rs"),
            FrameKind::Dependency
        );
        assert_eq!(kind("/elsewhere/lib/src/lib.rs"), FrameKind::Dependency);
        assert_eq!(
            kind("/home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/serde-1.0.0/src/de.rs"),
            FrameKind::Dependency
        );
        assert_eq!(
            kind("/home/u/.cargo/git/checkouts/tokio-1a2b/3c4d/tokio/src/lib.rs"),
            FrameKind::Dependency
        );
        assert_eq!(
            kind("/rust/deps/hashbrown-0.15.2/src/raw/mod.rs"),
            FrameKind::Dependency
        );
        assert_eq!(
            kind("/rustc/59807616e1fa/library/alloc/src/vec/mod.rs"),
            FrameKind::Runtime
        );
        assert_eq!(classify("app::f", None, root), FrameKind::Runtime);
        assert_eq!(
            classify(
                "memwatch_test::runner::run",
                Some(Path::new("/ws/memwatch-test/src/runner.rs")),
                root
            ),
            FrameKind::Runtime
        );
    }

    #[test]
    fn paths_are_shortened_for_people() {
        let root = Path::new("/ws");
        let p = Path::new(
            "/home/u/.cargo/registry/src/index.crates.io-1949cf8c6b5b557f/tokio-1.40.0/src/task/spawn.rs",
        );
        assert_eq!(short_path(p, root), "tokio-1.40.0/src/task/spawn.rs");
        let member = Path::new("/ws/appcore/src/lib.rs");
        assert_eq!(short_path(member, root), "appcore/src/lib.rs");
        let vendored = Path::new("/rust/deps/hashbrown-0.15.2/src/map.rs");
        assert_eq!(short_path(vendored, root), "hashbrown-0.15.2/src/map.rs");
    }

    fn frame(function: &str, kind: FrameKind) -> Frame {
        Frame {
            function: function.to_owned(),
            file: Some("f.rs".to_owned()),
            line: Some(1),
            kind,
        }
    }

    #[test]
    fn kinds_come_from_the_start_of_std_s_paths_not_their_generics() {
        assert_eq!(kind_of("alloc::rc::Rc<T>::new"), Some("Rc<_>"));
        assert_eq!(
            kind_of("<alloc::vec::Vec<T,A> as core::clone::Clone>::clone"),
            Some("a Vec's buffer")
        );
        assert_eq!(
            kind_of("<str as alloc::borrow::ToOwned>::to_owned"),
            Some("String")
        );
        assert_eq!(
            kind_of("<T as alloc::string::ToString>::to_string"),
            Some("String")
        );
        assert_eq!(
            kind_of("alloc::collections::btree::map::BTreeMap<K,V,A>::insert"),
            Some("a BTreeMap's node")
        );
        assert_eq!(
            kind_of("serde_json::map::Map<alloc::string::String,serde_json::value::Value>::insert"),
            None
        );
        assert_eq!(
            kind_of("<core::iter::adapters::map::Map<I,F> as alloc::string::ToString>"),
            None
        );
    }

    #[test]
    fn a_spawn_is_a_runtime_or_dependency_function_named_spawn() {
        use FrameKind::{Dependency, Runtime, User};
        let task = [
            frame("tokio::runtime::task::core::Cell<T,S>::new", Dependency),
            frame("tokio::task::spawn::spawn_inner", Dependency),
            frame("tokio::task::spawn::spawn<F>", Dependency),
            frame("app::spawn_watcher", User),
        ];
        assert_eq!(
            spawned_by(&task).as_deref(),
            Some("tokio::task::spawn::spawn<F>")
        );
        let thread = [
            frame("alloc::sync::Arc<T>::new", Runtime),
            frame("std::thread::Builder::spawn_unchecked_", Runtime),
            frame("std::thread::spawn", Runtime),
            frame("app::start_worker", User),
        ];
        assert_eq!(spawned_by(&thread).as_deref(), Some("std::thread::spawn"));
        let in_the_thread = [
            frame("app::start_worker::{{closure}}", User),
            frame(
                "std::thread::Builder::spawn_unchecked_::{{closure}}",
                Runtime,
            ),
        ];
        assert_eq!(spawned_by(&in_the_thread), None, "the thread's own work");
        let named_so = [frame("app::spawn_watcher", User)];
        assert_eq!(
            spawned_by(&named_so),
            None,
            "the user's code is never the spawn"
        );
    }

    #[test]
    fn a_site_is_the_innermost_user_frame_and_the_dependency_that_allocated() {
        use FrameKind::{Dependency, User};
        let stack = [
            frame("serde_json::map::Map::insert", Dependency),
            frame("serde_json::de::from_str", Dependency),
            frame("app::handle_request", User),
            frame("leaks::audit_log_leaks", User),
        ];
        let (site, allocated_in) = site_of(&stack);
        assert_eq!(site.function, "app::handle_request");
        assert_eq!(
            allocated_in.unwrap().function,
            "serde_json::map::Map::insert"
        );

        let own = [frame("app::remember", User), frame("leaks::t", User)];
        assert_eq!(
            site_of(&own),
            (own[0].clone(), None),
            "allocated by the user's code itself"
        );

        let background = [
            frame("hashbrown::raw::RawTable::reserve", Dependency),
            frame("tokio::runtime::task::harness::Harness::poll", Dependency),
        ];
        let (site, allocated_in) = site_of(&background);
        assert_eq!(site, background[1], "the outermost dependency frame");
        assert_eq!(allocated_in, Some(background[0].clone()));
    }
}
