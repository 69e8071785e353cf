//! The allocator's cost, as ratios to the system allocator, in one run.
//!
//! `cargo bench -p memwatch-test --bench alloc`
//!
//! Every allocator is called through `GlobalAlloc` the same way, side by
//! side in interleaved rounds, so machine noise hits them alike; the bench
//! binary's own global allocator stays `System`. Times are each thread's
//! CPU time (see `common`). Each is called as a
//! global allocator is: on its static, known at compile time, with the
//! workload compiled for it (not through `dyn`). Reported: the median
//! nanoseconds per alloc+free pair over the rounds, and its ratio to System.
//!
//! - `system`: `std::alloc::System`.
//! - `plain-counter`: a reference counting allocator with per-thread `Cell`
//!   counters of live bytes and blocks, no header, tags or epochs: the floor
//!   any counting design pays.
//! - `memwatch`: `memwatch_test::Alloc` as a service runs it: counting for
//!   `gc()`, the stats and the leak rule, no window open.
//! - `memwatch, all on`: with every feature on, as in a leak test: survivors
//!   tracked (each block stamped with its cycle) and a tag set.
//! - the peers a Rust team would otherwise pick, each over `System`:
//!   divan's `AllocProfiler` (counts per thread for its benchmarks),
//!   `alloc_counter`, `stats_alloc` (global atomic counters), `cap` (a
//!   limit and an atomic count), and `dhat::Alloc` with no profiler running.
//! - `mimalloc`, and `memwatch/mimalloc` (memwatch over it): the second's
//!   ratio is also given against the first.
//!
//! Three tables. The first runs before any window was ever opened. The
//! second runs after: from then on every free asks the mark map whether
//! its block has a header (`memwatch, after a window`), and the `all on`
//! rows open a window for each measurement. The third runs in a process of
//! its own started as the harness starts a test's (`MEMWATCH_CHILD` set),
//! where every block is headered from the first and no free asks the map.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::{Arc, Barrier};

mod common;
use common::{cpu_time, Clock};

struct PlainCounter;

thread_local! {
    static PLAIN: (Cell<u64>, Cell<u64>) = const { (Cell::new(0), Cell::new(0)) };
}

// SAFETY: forwards to System unchanged; counting touches only thread-locals.
unsafe impl GlobalAlloc for PlainCounter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        PLAIN.with(|(bytes, blocks)| {
            bytes.set(bytes.get() + layout.size() as u64);
            blocks.set(blocks.get() + 1);
        });
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        PLAIN.with(|(bytes, blocks)| {
            bytes.set(bytes.get().wrapping_sub(layout.size() as u64));
            blocks.set(blocks.get().wrapping_sub(1));
        });
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

static MEMWATCH: memwatch_test::Alloc = memwatch_test::Alloc::system();
static DIVAN: divan::AllocProfiler = divan::AllocProfiler::system();
static ALLOC_COUNTER: alloc_counter::AllocCounterSystem = alloc_counter::AllocCounter(System);
static STATS_ALLOC: &stats_alloc::StatsAlloc<System> = &stats_alloc::INSTRUMENTED_SYSTEM;
static CAP: cap::Cap<System> = cap::Cap::new(System, usize::MAX);
static MIMALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
static MEMWATCH_MIMALLOC: memwatch_test::Alloc<mimalloc::MiMalloc> =
    memwatch_test::Alloc::new(mimalloc::MiMalloc);

const ROUNDS: usize = 31;
const PAIRS: usize = 200_000;
/// Sizes of the mixed workload: mostly small, some medium, a few large.
const MIX: [usize; 16] = [
    8, 16, 24, 32, 48, 64, 96, 128, 8, 16, 200, 512, 1024, 24, 4096, 32,
];
const BATCH: usize = 32;

/// One alloc+free pair of an 8-byte box, `n` times.
#[inline(always)]
fn boxes<A: GlobalAlloc>(a: &A, n: usize) {
    let layout = Layout::new::<u64>();
    for i in 0..n {
        // SAFETY: a non-zero layout; the block is freed with it right away.
        unsafe {
            let p = a.alloc(layout);
            p.cast::<u64>().write(i as u64);
            black_box(p);
            a.dealloc(p, layout);
        }
    }
}

/// Batches of blocks of mixed sizes, freed in another order; `n` pairs.
#[inline(always)]
fn mix<A: GlobalAlloc>(a: &A, n: usize) {
    let mut held = [(std::ptr::null_mut::<u8>(), Layout::new::<u8>()); BATCH];
    for round in 0..n / BATCH {
        for (i, slot) in held.iter_mut().enumerate() {
            let size = MIX[(i + round) % MIX.len()];
            let layout = Layout::from_size_align(size, 8).unwrap();
            // SAFETY: a non-zero layout.
            let p = unsafe { a.alloc(layout) };
            // SAFETY: the block has at least 8 bytes.
            unsafe { p.write(i as u8) };
            *slot = (black_box(p), layout);
        }
        for i in (0..BATCH).rev().step_by(2).chain((0..BATCH).step_by(2)) {
            let (p, layout) = held[i ^ 1];
            // SAFETY: each block is freed once, with its layout.
            unsafe { a.dealloc(p, layout) };
        }
    }
}

/// The workloads.
#[derive(Clone, Copy)]
enum Workload {
    Boxes,
    Mix,
}

#[inline(always)]
fn work<A: GlobalAlloc>(a: &A, workload: Workload, n: usize) {
    match workload {
        Workload::Boxes => boxes(a, n),
        Workload::Mix => mix(a, n),
    }
}

/// An allocator of a table: the workloads compiled for its static, and
/// whether it runs with every feature on.
struct Entry {
    name: &'static str,
    run: fn(Workload, usize),
    all_on: bool,
}

/// An [`Entry`] for the static `$alloc`, with every feature on or not.
macro_rules! entry {
    ($name:expr, $alloc:expr) => {
        entry!($name, $alloc, false)
    };
    ($name:expr, $alloc:expr, $all_on:expr) => {{
        fn run(workload: Workload, n: usize) {
            work($alloc, workload, n)
        }
        Entry {
            name: $name,
            run,
            all_on: $all_on,
        }
    }};
}

/// Nanoseconds per pair, on `threads` threads running at once.
fn measure(entry: &Entry, workload: Workload, threads: usize) -> f64 {
    let run = entry.run;
    let all_on = entry.all_on;
    let tracking = all_on.then(memwatch_test::track_survivors);
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let start = start.clone();
            std::thread::spawn(move || {
                let timed = || {
                    run(workload, 1000); // warm the thread's caches and slot
                    start.wait();
                    let t = cpu_time(Clock::Thread);
                    run(workload, PAIRS);
                    (cpu_time(Clock::Thread) - t).as_nanos() as f64 / PAIRS as f64
                };
                if all_on {
                    memwatch_test::tag("bench", timed)
                } else {
                    timed()
                }
            })
        })
        .collect();
    let per_thread: Vec<f64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    drop(tracking);
    per_thread.iter().sum::<f64>() / threads as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    // `cargo test --benches` runs this with no `--bench` flag: a smoke run.
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds = if quick { 1 } else { ROUNDS };
    if std::env::var_os(memwatch_report::env::CHILD).is_some() {
        in_a_test_process(rounds);
        return;
    }
    println!(
        "median CPU ns per alloc+free pair over {rounds} interleaved rounds of {PAIRS} pairs per thread"
    );
    println!("\nno window ever opened");
    table(
        rounds,
        &[
            entry!("system", &System),
            entry!("plain-counter", &PlainCounter),
            entry!("memwatch", &MEMWATCH),
            entry!("divan", &DIVAN),
            entry!("alloc_counter", &ALLOC_COUNTER),
            entry!("stats_alloc", STATS_ALLOC),
            entry!("cap", &CAP),
            entry!("dhat", &dhat::Alloc),
            entry!("mimalloc", &MIMALLOC),
            entry!("memwatch/mimalloc", &MEMWATCH_MIMALLOC),
        ],
    );
    println!("\nafter a window was opened; `all on` rows in one");
    table(
        rounds,
        &[
            entry!("system", &System),
            entry!("memwatch, after a window", &MEMWATCH),
            entry!("memwatch, all on", &MEMWATCH, true),
            entry!("mimalloc", &MIMALLOC),
            entry!("memwatch/mimalloc, all on", &MEMWATCH_MIMALLOC, true),
        ],
    );
    // The third table needs a process of its own: the mode is decided at
    // its first allocation.
    let me = std::env::current_exe().expect("the bench's own path");
    let mut child = std::process::Command::new(me);
    if !quick {
        child.arg("--bench");
    }
    let status = child
        .env(memwatch_report::env::CHILD, "unused")
        .status()
        .expect("the bench runs itself");
    assert!(status.success(), "the third table failed");
}

/// The third table: in a process the harness starts to run one test, where
/// every block gets a header from the first and no free asks the mark map.
fn in_a_test_process(rounds: usize) {
    // The mode is decided at memwatch's first allocation (this binary's
    // own global allocator is `System`).
    work(&MEMWATCH, Workload::Boxes, 1);
    assert!(memwatch_test::__private::every_block_headered_for_tests());
    println!("\nin a leak test's own process (every block headered, no mark map)");
    table(
        rounds,
        &[
            entry!("system", &System),
            entry!("memwatch, all on", &MEMWATCH, true),
            entry!("mimalloc", &MIMALLOC),
            entry!("memwatch/mimalloc, all on", &MEMWATCH_MIMALLOC, true),
        ],
    );
}

/// Measures `allocators` (the first is the baseline) in interleaved
/// rounds, and prints one table.
fn table(rounds: usize, allocators: &[Entry]) {
    let cases: [(&str, Workload, usize); 4] = [
        ("box8, 1 thread", Workload::Boxes, 1),
        ("box8, 2 threads", Workload::Boxes, 2),
        ("mixed sizes, 1 thread", Workload::Mix, 1),
        ("mixed sizes, 2 threads", Workload::Mix, 2),
    ];
    println!(
        "{:<24} {:>26} {:>10} {:>10}",
        "workload", "allocator", "ns/pair", "x system"
    );
    for (name, workload, threads) in cases {
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); allocators.len()];
        for round in 0..rounds {
            // Rotate the order so no allocator always runs first.
            for k in 0..allocators.len() {
                let i = (k + round) % allocators.len();
                samples[i].push(measure(&allocators[i], workload, threads));
            }
        }
        let medians: Vec<f64> = samples.into_iter().map(median).collect();
        let mimalloc = allocators.iter().position(|a| a.name == "mimalloc");
        for (i, entry) in allocators.iter().enumerate() {
            let over_mimalloc = match mimalloc {
                Some(m) if entry.name.contains("/mimalloc") => {
                    format!("  ({:.2}x mimalloc)", medians[i] / medians[m])
                }
                _ => String::new(),
            };
            println!(
                "{:<24} {:>26} {:>10.2} {:>9.2}x{over_mimalloc}",
                name,
                entry.name,
                medians[i],
                medians[i] / medians[0]
            );
        }
    }
}
