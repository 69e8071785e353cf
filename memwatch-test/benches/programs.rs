//! Whole programs under each allocator: wall time and peak memory, as
//! ratios to the system allocator.
//!
//! `cargo bench -p memwatch-test --bench programs`
//!
//! A global allocator is one per process, so each measurement is a fresh
//! process of this binary (`--child <allocator> <workload>`), whose global
//! allocator forwards to the one named. The forwarding costs every
//! allocator alike, `System` included. Rounds run every allocator in turn,
//! in a rotated order; reported are the median CPU time of the workload
//! (see `common`) and the median peak resident memory (`VmHWM`) over the
//! rounds.
//!
//! Workloads:
//! - `json`: parse a 2 MB JSON document into `serde_json::Value` and
//!   serialise it back, 20 times;
//! - `btreemap`: build a `BTreeMap<u64, u64>` of 1,000,000 entries, look
//!   each up, drop it.
//!
//! Allocators: `System`; memwatch as a service runs it (counting, a `gc()`
//! after each pass, no window); memwatch with every feature on (survivors
//! tracked, a tag set, as in a leak test); and the peers a team would
//! otherwise pick, each over `System`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeMap;
use std::hint::black_box;
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering::Relaxed};

mod common;
use common::{cpu_time, Clock};

static MEMWATCH: memwatch_test::Alloc = memwatch_test::Alloc::system();
static DIVAN: divan::AllocProfiler = divan::AllocProfiler::system();
static STATS_ALLOC: &stats_alloc::StatsAlloc<System> = &stats_alloc::INSTRUMENTED_SYSTEM;
static DHAT: dhat::Alloc = dhat::Alloc;

/// The allocators, by the index `Dispatch` forwards to. Each of them hands
/// out `System`'s blocks for the caller's layout when no memwatch window
/// is open, so a block allocated before the child picks one (by `System`)
/// may be freed by any of them.
const ALLOCATORS: [&str; 6] = [
    "system",
    "memwatch",
    "memwatch, all on",
    "divan",
    "stats_alloc",
    "dhat",
];

/// Which allocator the process uses: set once, first thing in `main`.
static CHOSEN: AtomicU8 = AtomicU8::new(0);

struct Dispatch;

impl Dispatch {
    #[inline(always)]
    fn inner(&self) -> &'static dyn GlobalAlloc {
        match CHOSEN.load(Relaxed) {
            1 | 2 => &MEMWATCH,
            3 => &DIVAN,
            4 => STATS_ALLOC,
            5 => &DHAT,
            _ => &System,
        }
    }
}

// SAFETY: forwards each call to one allocator, chosen before any block
// the program measures is made and never changed after. Blocks made
// before the choice are `System`'s, which every choice frees as `System`
// does (memwatch's window opens after the choice, so those are plain).
unsafe impl GlobalAlloc for Dispatch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        unsafe { self.inner().alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        unsafe { self.inner().alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { self.inner().dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        unsafe { self.inner().realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Dispatch = Dispatch;

const ROUNDS: usize = 11;
const WORKLOADS: [&str; 2] = ["json", "btreemap"];

/// A JSON document of about 2 MB: records with strings, numbers, arrays.
fn document() -> String {
    let mut out = String::from("[");
    for i in 0..12_000 {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            r#"{{"id":{i},"name":"user-{i}","email":"user{i}@example.com","score":{},"tags":["a{}","b{}","c"],"address":{{"street":"{} Main St","city":"Town {}","zip":"{:05}"}},"active":{}}}"#,
            i as f64 * 1.5,
            i % 7,
            i % 13,
            i,
            i % 100,
            i,
            i % 2 == 0
        ));
    }
    out.push(']');
    out
}

fn json(after_pass: &dyn Fn()) {
    let text = document();
    for _ in 0..20 {
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let back = serde_json::to_string(&value).unwrap();
        black_box(back.len());
        drop(value);
        after_pass();
    }
}

fn btreemap(after_pass: &dyn Fn()) {
    let mut map = BTreeMap::new();
    for i in 0..1_000_000u64 {
        map.insert(i.wrapping_mul(0x9e37_79b9_7f4a_7c15), i);
    }
    after_pass();
    let mut sum = 0u64;
    for i in 0..1_000_000u64 {
        sum = sum.wrapping_add(map[&i.wrapping_mul(0x9e37_79b9_7f4a_7c15)]);
    }
    black_box(sum);
    drop(map);
    after_pass();
}

/// Peak resident memory of this process, in kB.
fn peak_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn child(allocator: usize, workload: &str) {
    CHOSEN.store(allocator as u8, Relaxed);
    let _tracking = (allocator == 2).then(memwatch_test::track_survivors);
    let memwatch = allocator == 1 || allocator == 2;
    let after_pass = move || {
        if memwatch {
            memwatch_test::gc();
        }
    };
    let run = || {
        let t = cpu_time(Clock::Process);
        match workload {
            "json" => json(&after_pass),
            _ => btreemap(&after_pass),
        }
        cpu_time(Clock::Process) - t
    };
    let elapsed = if allocator == 2 {
        memwatch_test::tag("program", run)
    } else {
        run()
    };
    println!("{} {}", elapsed.as_nanos(), peak_kb());
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let allocator = args[i + 1].parse().unwrap_or(0);
        child(allocator, &args[i + 2]);
        return;
    }
    // `cargo test --benches` runs this with no `--bench` flag: a smoke run.
    let quick = !args.iter().any(|a| a == "--bench");
    let rounds = if quick { 1 } else { ROUNDS };
    let me = std::env::current_exe().expect("the bench's own path");
    println!("median over {rounds} rounds, each allocator in a fresh process");
    println!(
        "{:<10} {:>18} {:>10} {:>9} {:>10} {:>9}",
        "workload", "allocator", "CPU ms", "x system", "peak MB", "x system"
    );
    for workload in WORKLOADS {
        let mut times = vec![Vec::new(); ALLOCATORS.len()];
        let mut peaks = vec![Vec::new(); ALLOCATORS.len()];
        for round in 0..rounds {
            for k in 0..ALLOCATORS.len() {
                let a = (k + round) % ALLOCATORS.len();
                let out = Command::new(&me)
                    .args(["--child", &a.to_string(), workload])
                    .output()
                    .expect("the bench runs itself");
                let text = String::from_utf8_lossy(&out.stdout);
                let mut fields = text.split_whitespace().map(|f| f.parse::<f64>());
                match (fields.next(), fields.next()) {
                    (Some(Ok(ns)), Some(Ok(kb))) => {
                        times[a].push(ns / 1e6);
                        peaks[a].push(kb / 1024.0);
                    }
                    _ => panic!(
                        "child {} {workload} failed: {}",
                        ALLOCATORS[a],
                        String::from_utf8_lossy(&out.stderr)
                    ),
                }
            }
        }
        let times: Vec<f64> = times.into_iter().map(median).collect();
        let peaks: Vec<f64> = peaks.into_iter().map(median).collect();
        for (a, name) in ALLOCATORS.iter().enumerate() {
            println!(
                "{:<10} {:>18} {:>10.1} {:>8.3}x {:>10.1} {:>8.3}x",
                workload,
                name,
                times[a],
                times[a] / times[0],
                peaks[a],
                peaks[a] / peaks[0]
            );
        }
    }
}
