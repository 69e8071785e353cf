//! What watching a running program costs.
//!
//! `cargo bench -p memwatch-test --bench monitor`
//!
//! - one checkpoint: a collection cycle (`gc()`) in a process whose threads
//!   have allocated under a few tags, median over many;
//! - a workload (two threads allocating and freeing small strings) with a
//!   `Monitor` running a cycle every millisecond, against the same workload
//!   without one, side by side in interleaved rounds;
//! - how one checkpoint and one `HeapDiff` (254 tags) cost after 64
//!   threads ran one after another, then 64 at once, and exited: the cost
//!   should not grow with threads that are gone.

use std::hint::black_box;
use std::time::{Duration, Instant};

#[global_allocator]
static ALLOC: memwatch_test::Alloc = memwatch_test::Alloc::system();

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Two threads, 200,000 small allocations and frees each.
fn workload() -> f64 {
    let t = Instant::now();
    let threads: Vec<_> = (0..2)
        .map(|k| {
            std::thread::spawn(move || {
                for i in 0..200_000u64 {
                    black_box(format!("{k}:{i}"));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    t.elapsed().as_secs_f64()
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds = if quick { 1 } else { 15 };
    // A process that has lived a little: threads, tags, a heap.
    let kept: Vec<String> = (0..10_000).map(|i| i.to_string()).collect();
    for name in ["Session", "Cache", "Request", "Parser"] {
        black_box(memwatch_test::tag(name, || vec![0u8; 64]));
    }
    let checkpoints: Vec<f64> = (0..2000)
        .map(|_| {
            let t = Instant::now();
            black_box(memwatch_test::gc());
            t.elapsed().as_secs_f64()
        })
        .collect();
    println!(
        "one checkpoint (gc()): median {:.2} µs over 2000",
        median(checkpoints) * 1e6
    );

    // Threads that come and go: each exits before the next starts, then
    // 64 live at once, then none.
    let checkpoint = || {
        median(
            (0..500)
                .map(|_| {
                    let t = Instant::now();
                    black_box(memwatch_test::gc());
                    t.elapsed().as_secs_f64()
                })
                .collect(),
        ) * 1e6
    };
    let diff = || {
        median(
            (0..50)
                .map(|_| {
                    let t = Instant::now();
                    let hd = memwatch_test::HeapDiff::new();
                    black_box(hd.end());
                    t.elapsed().as_secs_f64()
                })
                .collect(),
        ) * 1e6
    };
    for k in 0..254 {
        black_box(memwatch_test::tag(&format!("tag{k}"), || vec![0u8; 8]));
    }
    let (gc_fresh, diff_fresh) = (checkpoint(), diff());
    for _ in 0..64 {
        std::thread::spawn(|| black_box(vec![0u8; 64]))
            .join()
            .unwrap();
    }
    let (gc_serial, diff_serial) = (checkpoint(), diff());
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(64));
    let at_once: Vec<_> = (0..64)
        .map(|_| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                black_box(vec![0u8; 64]);
                barrier.wait();
            })
        })
        .collect();
    for t in at_once {
        t.join().unwrap();
    }
    let (gc_burst, diff_burst) = (checkpoint(), diff());
    println!(
        "gc(), median µs: {gc_fresh:.2} before, {gc_serial:.2} after 64 threads one by one, \
         {gc_burst:.2} after 64 at once (all exited)"
    );
    println!(
        "HeapDiff with 254 tags, median µs: {diff_fresh:.1} before, {diff_serial:.1} after 64 \
         threads one by one, {diff_burst:.1} after 64 at once (all exited)"
    );

    let (mut plain, mut watched) = (Vec::new(), Vec::new());
    let mut cycles = 0;
    for _ in 0..rounds {
        plain.push(workload());
        let before = memwatch_test::gc().num_cycles;
        let monitor = memwatch_test::Monitor::every(Duration::from_millis(1));
        watched.push(workload());
        monitor.stop();
        cycles += memwatch_test::gc().num_cycles - before - 1;
    }
    let (p, w) = (median(plain), median(watched));
    println!(
        "workload without a monitor {:.2} ms, with one every 1 ms {:.2} ms: {:.3}x ({} cycles ran)",
        p * 1e3,
        w * 1e3,
        w / p,
        cycles
    );
    black_box(kept);
}
