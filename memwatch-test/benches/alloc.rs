//! The allocator's cost, as ratios to the system allocator, in one run.
//!
//! `cargo bench -p memwatch-test --bench alloc`
//!
//! Every allocator is called through `GlobalAlloc` the same way, side by
//! side in interleaved rounds, so machine noise hits them alike; the bench
//! binary's own global allocator stays `System`. Reported: the median
//! nanoseconds per alloc+free pair over the rounds, and its ratio to System.
//!
//! - `system`: `std::alloc::System`.
//! - `plain-counter`: a reference counting allocator with per-thread `Cell`
//!   counters of live bytes and blocks, no header, tags or epochs: the floor
//!   any counting design pays.
//! - `memwatch`: `memwatch_test::Alloc`, with a tag set and epochs on (they
//!   are always on).
//! - the peers a Rust team would otherwise pick, each over `System`:
//!   divan's `AllocProfiler` (counts per thread for its benchmarks),
//!   `alloc_counter`, `stats_alloc` (global atomic counters), `cap` (a
//!   limit and an atomic count), and `dhat::Alloc` with no profiler running.
//! - `mimalloc`, and `memwatch/mimalloc` (memwatch over it): the second's
//!   ratio is also given against the first.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::Instant;

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
fn boxes(a: &dyn GlobalAlloc, n: usize) {
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
fn mix(a: &dyn GlobalAlloc, n: usize) {
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

type Workload = fn(&dyn GlobalAlloc, usize);

/// Nanoseconds per pair, on `threads` threads running at once.
fn measure(alloc: &'static (dyn GlobalAlloc + Sync), work: Workload, threads: usize) -> f64 {
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let start = start.clone();
            std::thread::spawn(move || {
                memwatch_test::tag("bench", || {
                    work(alloc, 1000); // warm the thread's caches and slot
                    start.wait();
                    let t = Instant::now();
                    work(alloc, PAIRS);
                    t.elapsed().as_nanos() as f64 / PAIRS as f64
                })
            })
        })
        .collect();
    let per_thread: Vec<f64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
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
    let allocators: [(&str, &'static (dyn GlobalAlloc + Sync)); 10] = [
        ("system", &System),
        ("plain-counter", &PlainCounter),
        ("memwatch", &MEMWATCH),
        ("divan", &DIVAN),
        ("alloc_counter", &ALLOC_COUNTER),
        ("stats_alloc", STATS_ALLOC),
        ("cap", &CAP),
        ("dhat", &dhat::Alloc),
        ("mimalloc", &MIMALLOC),
        ("memwatch/mimalloc", &MEMWATCH_MIMALLOC),
    ];
    let cases: [(&str, Workload, usize); 4] = [
        ("box8, 1 thread", boxes, 1),
        ("box8, 2 threads", boxes, 2),
        ("mixed sizes, 1 thread", mix, 1),
        ("mixed sizes, 2 threads", mix, 2),
    ];
    println!(
        "median ns per alloc+free pair over {rounds} interleaved rounds of {PAIRS} pairs per thread"
    );
    println!(
        "{:<24} {:>18} {:>10} {:>10}",
        "workload", "allocator", "ns/pair", "x system"
    );
    for (name, work, threads) in cases {
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); allocators.len()];
        for round in 0..rounds {
            // Rotate the order so no allocator always runs first.
            for k in 0..allocators.len() {
                let i = (k + round) % allocators.len();
                samples[i].push(measure(allocators[i].1, work, threads));
            }
        }
        let medians: Vec<f64> = samples.into_iter().map(median).collect();
        let mimalloc = allocators.iter().position(|a| a.0 == "mimalloc");
        for (i, (alloc, _)) in allocators.iter().enumerate() {
            let over_mimalloc = match mimalloc {
                Some(m) if alloc.ends_with("/mimalloc") => {
                    format!("  ({:.2}x mimalloc)", medians[i] / medians[m])
                }
                _ => String::new(),
            };
            println!(
                "{:<24} {:>18} {:>10.2} {:>9.2}x{over_mimalloc}",
                name,
                alloc,
                medians[i],
                medians[i] / medians[0]
            );
        }
    }
}
