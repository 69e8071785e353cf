//! What a leak test costs over running its body the same number of times.
//!
//! `cargo bench -p memwatch-test --bench harness`
//!
//! For bodies of three sizes, each round times the harness running a clean
//! leak test (warm-up, measured iterations, a collection cycle after each,
//! the heap diff, the verdict) and, side by side, a plain loop running the
//! body as many times. Both run in this binary with the counting allocator
//! installed, so the ratio is the price of the harness itself. Two more
//! bodies are ambiguous at the first checkpoint, so the harness runs them
//! longer: a cache of 128 entries filling up (clean once it is full) and a
//! leak (run to the budget). Reported: medians over interleaved rounds,
//! with the iterations each test ran.

use std::hint::black_box;
use std::time::Instant;

use memwatch_test::__private::{Body, LeakTest, Options};

#[global_allocator]
static ALLOC: memwatch_test::Alloc = memwatch_test::Alloc::system();

/// Tens of nanoseconds: parse a short line.
fn tiny() {
    let v: Vec<u32> = black_box("10,20,30,40")
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    black_box(v);
}

/// Tens of microseconds: build and sort a few hundred strings.
fn small() {
    let mut v: Vec<String> = (0..300)
        .map(|i| format!("item-{}", (i * 7919) % 300))
        .collect();
    v.sort();
    black_box(v);
}

/// Around a millisecond: a map of a few thousand entries.
fn medium() {
    let m: std::collections::HashMap<u64, String> =
        (0..5000u64).map(|i| (i, i.to_string())).collect();
    black_box(m.len());
}

static CACHE: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// A few microseconds: a cache of 128 entries filled two a call, the
/// oldest dropped; it is full after 64 calls.
fn filling() {
    small_work();
    let mut cache = CACHE.lock().unwrap();
    for _ in 0..2 {
        if cache.len() == 128 {
            cache.remove(0);
        }
        let n = cache.len();
        cache.push(format!("entry-{n}"));
    }
}

static KEPT: std::sync::Mutex<Vec<u64>> = std::sync::Mutex::new(Vec::new());

/// A few microseconds, and a leak: one more `u64` kept per call.
fn leaking() {
    small_work();
    KEPT.lock().unwrap().push(7);
}

fn small_work() {
    let v: Vec<String> = (0..20).map(|i| format!("item-{i}")).collect();
    black_box(v);
}

macro_rules! leak_test {
    ($name:ident, $body:ident) => {
        static $name: LeakTest = LeakTest {
            module_path: "bench",
            name: stringify!($body),
            file: file!(),
            line: line!(),
            body: Body::Sync($body),
            options: Options {
                snapshot: memwatch_test::__private::SnapshotName::Off,
                ..Options::DEFAULT
            },
        };
    };
}

leak_test!(TINY, tiny);
leak_test!(SMALL, small);
leak_test!(MEDIUM, medium);
leak_test!(FILLING, filling);
leak_test!(LEAKING, leaking);

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let rounds = if quick { 1 } else { 21 };
    println!("median time per leak test over {rounds} interleaved rounds");
    println!(
        "{:<8} {:>10} {:>14} {:>14} {:>8}",
        "body", "iterations", "plain loop", "leak test", "ratio"
    );
    for (name, test, body) in [
        ("tiny", &TINY, tiny as fn()),
        ("small", &SMALL, small as fn()),
        ("medium", &MEDIUM, medium as fn()),
        ("filling", &FILLING, filling as fn()),
        ("leaking", &LEAKING, leaking as fn()),
    ] {
        // Each run starts with an empty cache and nothing kept.
        let reset = || {
            *CACHE.lock().unwrap() = Vec::new();
            *KEPT.lock().unwrap() = Vec::new();
        };
        reset();
        let (passed, iterations) = memwatch_test::__private::run_one(test);
        assert_eq!(
            passed,
            name != "leaking",
            "{name}: every benchmark body but `leaking` is clean"
        );
        let (mut plain, mut harness) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            reset();
            let t = Instant::now();
            for _ in 0..iterations {
                body();
            }
            plain.push(t.elapsed().as_secs_f64());
            reset();
            let t = Instant::now();
            black_box(memwatch_test::__private::run_one(test));
            harness.push(t.elapsed().as_secs_f64());
        }
        let (p, h) = (median(plain), median(harness));
        println!(
            "{:<8} {:>10} {:>11.1} µs {:>11.1} µs {:>7.2}x",
            name,
            iterations,
            p * 1e6,
            h * 1e6,
            h / p
        );
    }
}
