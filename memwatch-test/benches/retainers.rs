//! What a retainer scan costs, by the size of the heap it walks.
//!
//! `cargo bench -p memwatch-test --bench retainers`
//!
//! A leak's scan runs once, in a process of its own, when a leak test
//! fails (or shows its sites); plain runs never pay for it. This benchmark
//! builds heaps of 10,000, 100,000 and 1,000,000 live blocks in such a
//! process and times the scan as a leak's report runs it: stopping the
//! threads, taking the census, walking the heap from every root, finding
//! the cycles and the forgotten blocks, and naming the roots and the
//! blocks on the paths. The heap is a leaking service's:
//!
//! - sessions (a `Box` holding a `String`) in a `Vec` behind a static;
//! - one session in eight also in a map from id to session, in a
//!   `OnceLock`;
//! - one session in sixteen in an `Rc` cycle of two, forgotten.
//!
//! Each size runs in a fresh process (the census keeps every block from a
//! process's start); the medians of 5 runs are printed. The goal: at most
//! 2 s for 100,000 blocks.

use std::cell::RefCell;
use std::collections::HashMap;
use std::process::Command;
use std::rc::Rc;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

#[global_allocator]
static ALLOC: memwatch_test::Alloc = memwatch_test::Alloc::system();

struct Session {
    id: u64,
    _user: String,
}

// Boxed on purpose: each session is a block of its own, as in a service.
#[allow(clippy::vec_box)]
static SESSIONS: Mutex<Vec<Box<Session>>> = Mutex::new(Vec::new());
static BY_ID: OnceLock<Mutex<HashMap<u64, usize>>> = OnceLock::new();

struct Peer {
    next: RefCell<Option<Rc<Peer>>>,
    _name: String,
}

/// About `blocks` live blocks, in the shapes above.
fn build(blocks: usize) {
    let sessions = blocks / 2;
    let mut kept = SESSIONS.lock().unwrap();
    let by_id = BY_ID.get_or_init(Default::default);
    for id in 0..sessions as u64 {
        if id % 16 == 0 {
            let a = Rc::new(Peer {
                next: RefCell::new(None),
                _name: format!("peer {id}"),
            });
            let b = Rc::new(Peer {
                next: RefCell::new(Some(a.clone())),
                _name: format!("peer {id}+"),
            });
            *a.next.borrow_mut() = Some(b);
            continue;
        }
        let session = Box::new(Session {
            id,
            _user: format!("user-{id:08}"),
        });
        if id % 8 == 1 {
            by_id.lock().unwrap().insert(session.id, kept.len());
        }
        kept.push(session);
    }
}

/// Runs one size in this process (a scan process); prints the time.
fn child(blocks: usize) {
    let Some((took, sites)) = memwatch_test::__private::time_scan(|| build(blocks)) else {
        eprintln!("retainer scans need Linux on x86_64");
        std::process::exit(3);
    };
    println!("{} {}", took.as_nanos(), sites);
}

fn main() {
    if let Ok(size) = std::env::var("RETAINER_BENCH_BLOCKS") {
        child(size.parse().expect("a number of blocks"));
        return;
    }
    // `cargo bench` passes `--bench`; any other argument filters nothing.
    let exe = std::env::current_exe().expect("the benchmark's own path");
    println!("retainer scan, by live blocks (median of 5 fresh processes):");
    for blocks in [10_000usize, 100_000, 1_000_000] {
        let mut times = Vec::new();
        for _ in 0..5 {
            let out = Command::new(&exe)
                .env("RETAINER_BENCH_BLOCKS", blocks.to_string())
                .env(memwatch_report::env::SCAN, "benchmark")
                .output()
                .expect("the benchmark runs itself");
            if out.status.code() == Some(3) {
                println!("  skipped: retainer scans need Linux on x86_64");
                return;
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let nanos: u64 = text
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no time from the child: {text} {out:?}"));
            times.push(Duration::from_nanos(nanos));
        }
        times.sort();
        let median = times[times.len() / 2];
        println!(
            "  {blocks:>9} blocks: {:>8.1} ms  ({:.2} µs per block)",
            median.as_secs_f64() * 1e3,
            median.as_secs_f64() * 1e6 / blocks as f64
        );
    }
}
