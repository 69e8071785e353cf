//! Leak regression testing for Rust, after Mozilla's node-memwatch.
//!
//! node-memwatch watched a running Node process: after each full garbage
//! collection it reported heap statistics, it raised a `leak` event when the
//! heap grew over five consecutive collections, and its `HeapDiff` told what
//! was allocated and freed between two points, grouped by type. This crate
//! gives a Rust program the same four things:
//!
//! | node-memwatch | memwatch-test |
//! |---|---|
//! | `memwatch.gc()` | [`gc()`]: one collection cycle, returns [`Stats`] |
//! | `memwatch.on('stats', f)` | [`on_stats`] |
//! | `memwatch.on('leak', f)` | [`on_leak`], with a tunable [`LeakRule`] |
//! | `new memwatch.HeapDiff()` / `.end()` | [`HeapDiff::new`] / [`HeapDiff::end`], grouped by [`tag`] |
//!
//! Rust has no garbage collector: a *collection cycle* is a quiet point
//! after one repetition of the work. The values of the repetition have been
//! dropped; [`gc()`] runs the registered [collectors](on_collect) (epoch
//! reclamation, a GC crate, a cache flush), samples the heap, and closes the
//! cycle. While [survivors are tracked](track_survivors) (a leak test does
//! so by itself), every block remembers the cycle it was allocated in, so
//! [`survivors()`] tells a leak (survivors in every cycle) from one-time
//! initialisation (survivors in the first cycles only). Without it, blocks
//! carry nothing and counting costs close to nothing.
//!
//! Counting needs [`Alloc`] as the global allocator of the binary:
//!
//! ```
//! #[global_allocator]
//! static ALLOC: memwatch_test::Alloc = memwatch_test::Alloc::system();
//!
//! fn main() {
//!     let leaks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
//!     let seen = leaks.clone();
//!     let _ = memwatch_test::on_leak(move |leak| {
//!         eprintln!("leak: {}", leak.reason);
//!         seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!     });
//!
//!     let mut cache: Vec<Box<[u8; 64]>> = Vec::with_capacity(100);
//!     memwatch_test::gc();
//!     for _ in 0..6 {
//!         cache.push(Box::new([0; 64])); // grows every cycle: a leak
//!         memwatch_test::gc();
//!     }
//!     assert_eq!(leaks.load(std::sync::atomic::Ordering::Relaxed), 1);
//! }
//! ```
//!
//! # What is counted
//!
//! Every allocation, zeroed allocation, reallocation and free made through
//! [`Alloc`], on any thread and at any alignment, summed over threads; the
//! figures are the sizes the program asked for. Counts are exact at a quiet
//! point. The engine's own bookkeeping (statistics, callbacks, diffs) is not
//! counted, and neither is what the callbacks of [`on_stats`] and
//! [`on_leak`] allocate.
//!
//! # Features
//!
//! - `harness` (default): leak tests, [`leak_test`], [`main!`], their
//!   reports and snapshots, allocation sites and DHAT files. Without it
//!   (`default-features = false`) the crate is the engine alone, light
//!   enough for a library's normal dependencies: a library can put
//!   [`tagged`] on its types and take the harness in its dev-dependencies.
//! - `tokio`: `async fn` leak tests, on a tokio current-thread runtime.
//!
//! # Known limits
//!
//! - Only memory allocated through the global allocator is seen: not
//!   `mmap`, not memory a C library gets from its own `malloc`.
//! - In a window (survivors tracked, a leak test, site capture, DHAT) and
//!   under a tag, each block carries a 16-byte header (`align` bytes for
//!   alignments above 16) in the inner allocator; outside, none.
//! - Survivors are kept per cycle for the last 2047 cycles; older cycles are
//!   gathered in one figure.
//! - Up to 254 tag names are told apart; further names share one row.
//! - What keeps a leak alive (retainer paths) is found on Linux x86_64
//!   only, by a conservative scan: see the README's "What keeps it alive".
#![warn(missing_docs)]

extern crate self as memwatch_test;

// The engine: counting, cycles, statistics, the leak rule, tags and diffs.
mod allocator;
mod cycle;
mod detector;
mod diff;
mod monitor;
mod resources;
mod stats;
mod tag;
mod units;

// The leak-test harness (feature `harness`, on by default).
#[cfg(feature = "harness")]
mod decision;
#[cfg(feature = "harness")]
mod harness;
#[cfg(feature = "harness")]
mod registry;
#[cfg(feature = "harness")]
mod report;
#[cfg(all(feature = "harness", target_os = "linux", target_arch = "x86_64"))]
mod retainers;
#[cfg(feature = "harness")]
mod runner;
#[cfg(feature = "harness")]
mod sites;

pub use allocator::Alloc;
pub use cycle::{
    gc, on_collect, on_leak, on_stats, set_leak_rule, survivors, track_survivors, CycleSurvivors,
    Registration, SurvivorTracking,
};
pub use detector::{Leak, LeakRule};
pub use diff::{Change, Diff, DiffRow, HeapDiff, HeapSize};
pub use monitor::Monitor;
pub use resources::{resources, Resources};
pub use stats::{counts, is_counting, Counts, Stats};
pub use tag::tag;
pub use units::format_bytes;

/// Tags the allocations of a function, or of every method of an impl block.
///
/// On an impl block, the tag is the name of its `Self` type (`LeakingClass`
/// for `impl LeakingClass` and `impl<T> Trait for LeakingClass<T>`); on a
/// function, the function's name. `#[tagged("name")]` picks another. An
/// `async fn` is tagged in each poll of its body. See [`tag`] for what a tag
/// means.
///
/// ```
/// #[global_allocator]
/// static ALLOC: memwatch_test::Alloc = memwatch_test::Alloc::system();
///
/// struct LeakingClass {
///     data: Vec<u8>,
/// }
///
/// #[memwatch_test::tagged]
/// impl LeakingClass {
///     fn new() -> Self {
///         LeakingClass { data: vec![0; 32] }
///     }
/// }
///
/// fn main() {
///     let hd = memwatch_test::HeapDiff::new();
///     let kept = LeakingClass::new();
///     let diff = hd.end();
///     let row = diff.change.details.iter().find(|r| r.what == "LeakingClass").unwrap();
///     assert_eq!((row.allocated, row.size_bytes), (1, 32));
///     drop(kept.data);
/// }
/// ```
pub use memwatch_macros::tagged;

/// The README's examples compile and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

/// Registers a leak test: the harness of [`main!`] repeats its body across
/// collection cycles and decides whether it leaks.
///
/// ```no_run
/// // tests/leaks.rs, with `harness = false` for this target in Cargo.toml
/// use memwatch_test::leak_test;
///
/// #[leak_test]
/// fn parse_does_not_leak() {
///     std::hint::black_box("1,2,3".split(',').map(str::to_owned).collect::<Vec<_>>());
/// }
///
/// #[leak_test(warmup = 5, max_iterations = 4096, time_limit = "30s", snapshot = false)]
/// fn cache_stays_bounded() {
///     // ...
/// }
///
/// #[leak_test(should_leak)]
/// fn box_leak_is_caught() {
///     Box::leak(Box::new([0u8; 32]));
/// }
///
/// memwatch_test::main!();
/// ```
///
/// Options, all optional:
///
/// | option | default | meaning |
/// |---|---|---|
/// | `iterations = N` | 32 | measured iterations before the first checkpoint, where a clean test stops (at least 2) |
/// | `max_iterations = N` | 1024 | the budget of a test whose evidence stays ambiguous |
/// | `time_limit = "10s"` | 10s | the budget in time: no round starts that would end past it |
/// | `warmup = N` | 3 | iterations before measuring, for one-time initialisation |
/// | `duration = "30s"` | none | a soak test: the rounds last this long in all, instead of counting iterations |
/// | `threshold_bytes = N` | 64 | growth in bytes over a round that counts by itself |
/// | `threshold_blocks = N` | 1 | growth in blocks that, with any growth in bytes, counts |
/// | `collect = path` | none | a `fn()` called in every cycle, after the global collectors |
/// | `ignore` | off | runs only with `--ignored` or `--include-ignored` |
/// | `should_leak` | off | passes only when a leak is found |
/// | `sites` | off | always capture allocation sites (a leak captures them anyway) |
/// | `resources = false` | on | do not watch threads and open file descriptors |
/// | `snapshot = false` or `"name"` | the test's name | the snapshot under `tests/snapshots/`: the verdict and what each iteration keeps, by tag |
/// | `count_allocations` | off | the snapshot also records allocations and frees per iteration, by tag |
///
/// The function takes no arguments and returns nothing; a panic fails the
/// test with no leak verdict. An `async fn` runs on a tokio current-thread
/// runtime made for the test (feature `tokio`). See the crate's README for
/// the rule that decides between clean and leak.
#[cfg(feature = "harness")]
pub use memwatch_macros::leak_test;

/// Declares the `main` of a leak test target: installs [`Alloc`] as the
/// global allocator and runs every [`leak_test`] of the binary with
/// libtest's command line (filters, `--exact`, `--skip`, `--list`,
/// `--ignored`, `--include-ignored`, `--format`, `--nocapture`,
/// `--test-threads`), each test in a process of its own started from the
/// binary (`MEMWATCH_IN_PROCESS=1` keeps them in this one).
///
/// `main!(alloc = mimalloc::MiMalloc)` counts on top of another allocator.
///
/// ```no_run
/// #[memwatch_test::leak_test]
/// fn nothing_leaks() {}
///
/// memwatch_test::main!();
/// ```
#[cfg(feature = "harness")]
#[macro_export]
macro_rules! main {
    () => {
        $crate::main!(@with $crate::__private::System, $crate::Alloc::system());
    };
    (alloc = $inner:path $(,)?) => {
        $crate::main!(@with $inner, $crate::Alloc::new($inner));
    };
    (@with $ty:ty, $alloc:expr) => {
        #[global_allocator]
        static __MEMWATCH_ALLOC: $crate::Alloc<$ty> = $alloc;

        #[cfg_attr(test, allow(dead_code))]
        fn main() -> ::std::process::ExitCode {
            $crate::__private::run_main(::std::env!("CARGO_MANIFEST_DIR"))
        }

        // Compiled only under libtest's own harness, which never calls the
        // `main` above: the target then fails, saying what to change,
        // instead of passing with no test run.
        #[cfg(test)]
        #[test]
        fn memwatch_leak_tests_need_harness_false(
        ) -> ::std::result::Result<(), $crate::__private::WrongHarness> {
            ::std::result::Result::Err($crate::__private::standard_harness(::std::env!("CARGO_CRATE_NAME")))
        }
    };
}

/// What the macros of `memwatch-macros` and [`main!`] call; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::allocator::{
        epoch_period_for_tests, every_block_headered_for_tests, headered_for_tests,
        modes_for_tests, set_epoch_for_tests, slots_summed_for_tests,
    };
    #[cfg(feature = "harness")]
    pub use crate::harness::{
        run_capture, run_main, run_one, standard_harness, time_scan, WrongHarness,
    };
    #[cfg(all(feature = "harness", not(feature = "tokio")))]
    pub use crate::registry::AsyncNeedsTokioFeature;
    #[cfg(feature = "harness")]
    pub use crate::registry::{async_body, collector, Body, LeakTest, Options, SnapshotName};
    pub use crate::tag::{TagGuard, TagKey, Tagged};
    #[cfg(feature = "harness")]
    pub use inventory;
    pub use std::alloc::System;
}
