//! What `#[leak_test]` registers: one [`LeakTest`] per test, gathered with
//! `inventory` before `main` runs.

use std::future::Future;
use std::pin::Pin;

/// An async test body, boxed so that every test has the same type.
pub type AsyncBody = fn() -> Pin<Box<dyn Future<Output = ()>>>;

/// The body of a leak test.
#[derive(Clone, Copy)]
pub enum Body {
    /// A plain `fn`.
    Sync(fn()),
    /// An `async fn`, run on a tokio runtime made for the test.
    Async(AsyncBody),
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Body::Sync(_) => "Body::Sync",
            Body::Async(_) => "Body::Async",
        })
    }
}

/// What `#[leak_test]` makes of an `async fn`.
#[cfg(feature = "tokio")]
pub const fn async_body(f: AsyncBody) -> Body {
    Body::Async(f)
}

/// Without the `tokio` feature an `async fn` leak test is a compile error
/// that says what to do.
#[cfg(not(feature = "tokio"))]
pub const fn async_body<F: AsyncNeedsTokioFeature + Copy>(_f: F) -> Body {
    Body::Sync(|| {})
}

/// Implemented by nothing: names the missing feature in the compile error.
#[cfg(not(feature = "tokio"))]
#[diagnostic::on_unimplemented(
    message = "an `async fn` leak test needs memwatch-test's `tokio` feature",
    label = "async leak test",
    note = "enable it: memwatch-test = {{ version = \"0.1\", features = [\"tokio\"] }}"
)]
pub trait AsyncNeedsTokioFeature {}

/// What `collect = path` turns into: a `fn()` (the type check names the
/// path when the function has another signature).
pub const fn collector(f: fn()) -> fn() {
    f
}

/// Which snapshot a leak test records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotName {
    /// Named after the test.
    Default,
    /// `snapshot = false`: none.
    Off,
    /// `snapshot = "name"`.
    Named(&'static str),
}

/// The options of `#[leak_test(...)]`; the defaults live here, not in the
/// macro.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Measured iterations before the first checkpoint, where a clean test
    /// stops (its second half is the first round).
    pub iterations: u32,
    /// The budget of a test whose evidence stays ambiguous: at most this
    /// many measured iterations.
    pub max_iterations: u32,
    /// The budget in time: no round starts that would, at the pace so far,
    /// end past this much measured time.
    pub time_limit: std::time::Duration,
    /// Iterations run before measuring, to let one-time work happen.
    pub warmup: u32,
    /// A soak test: the measured rounds last this long in all, instead of
    /// counting iterations.
    pub duration: Option<std::time::Duration>,
    /// Growth in bytes over a round that counts as growth by itself.
    pub threshold_bytes: u64,
    /// Growth in blocks over a round that, with any growth in bytes, counts.
    pub threshold_blocks: u64,
    /// Called in every cycle, after the global collectors.
    pub collect: Option<fn()>,
    /// Registered as ignored (`--ignored` runs it).
    pub ignore: bool,
    /// Passes only when a leak is found.
    pub should_leak: bool,
    /// Captures allocation sites even when no leak is found.
    pub sites: bool,
    /// The snapshot records allocations and frees per iteration too.
    pub count_allocations: bool,
    /// Watches threads and open file descriptors too (Linux).
    pub resources: bool,
    /// The snapshot the test records.
    pub snapshot: SnapshotName,
}

impl Options {
    /// The defaults: a first checkpoint after 32 iterations that follow 3
    /// warm-up ones, a budget of 1024 iterations and 10 seconds; thresholds
    /// of 64 bytes and 1 block.
    pub const DEFAULT: Options = Options {
        iterations: 32,
        max_iterations: crate::decision::DEFAULT_MAX_ITERATIONS,
        time_limit: crate::decision::DEFAULT_TIME_LIMIT,
        warmup: 3,
        duration: None,
        threshold_bytes: 64,
        threshold_blocks: 1,
        collect: None,
        ignore: false,
        should_leak: false,
        sites: false,
        count_allocations: false,
        resources: true,
        snapshot: SnapshotName::Default,
    };
}

/// One registered leak test.
#[derive(Debug)]
pub struct LeakTest {
    /// `module_path!()` where the test is defined.
    pub module_path: &'static str,
    /// The function's name.
    pub name: &'static str,
    /// `file!()` and `line!()` of the test.
    pub file: &'static str,
    /// See `file`.
    pub line: u32,
    /// What to repeat.
    pub body: Body,
    /// Its options.
    pub options: Options,
}

inventory::collect!(LeakTest);

impl LeakTest {
    /// The name libtest would give: the module path without the crate's
    /// name, then the function's name.
    pub(crate) fn full_name(&self) -> String {
        match self.module_path.split_once("::") {
            Some((_, rest)) => format!("{rest}::{}", self.name),
            None => self.name.to_owned(),
        }
    }
}

/// Every registered leak test, sorted by name.
pub(crate) fn all() -> Vec<&'static LeakTest> {
    let mut tests: Vec<&'static LeakTest> = inventory::iter::<LeakTest>.into_iter().collect();
    tests.sort_by_key(|t| t.full_name());
    tests
}
