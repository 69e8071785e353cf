//! A service with a slow leak, watched at its checkpoints: memwatch's leak
//! event names it within a bounded number of them.
//!
//! `cargo run -p memwatch-test --example slow_leak`
//!
//! The service answers batches of requests. Most of what a batch allocates
//! is freed, and a session table churns, but one small audit record per
//! batch is kept forever: a few dozen bytes a batch, under the noise of the
//! rest. The service
//! calls `gc()` after each batch, its checkpoint. Exit code 0 when the leak
//! was caught within `LIMIT` checkpoints, 1 otherwise. With `--no-leak` the
//! audit records are trimmed, and the exit code is 0 when 100 checkpoints
//! pass without a false alarm.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use memwatch_test::{gc, on_leak, Alloc, LeakRule};

#[global_allocator]
static ALLOC: Alloc = Alloc::system();

/// Checkpoints the service needs to fill its tables: not judged.
const WARMUP: u64 = 20;
/// Checkpoints within which the leak must be reported: the warm-up, then
/// memwatch's five growing cycles, and some slack.
const LIMIT: u64 = WARMUP + 10;

static AUDIT: Mutex<Vec<String>> = Mutex::new(Vec::new());
static SESSIONS: Mutex<Option<HashMap<u64, String>>> = Mutex::new(None);

fn handle_batch(batch: u64, leak: bool) {
    // Work that comes and goes.
    let responses: Vec<String> = (0..50).map(|i| format!("response {batch}/{i}")).collect();
    std::hint::black_box(&responses);
    // A session table that churns but stays bounded.
    let mut sessions = SESSIONS.lock().unwrap();
    let sessions = sessions.get_or_insert_with(HashMap::new);
    sessions.insert(batch % 8, format!("session {batch}"));
    // The leak: an audit record per batch, never trimmed.
    let mut audit = AUDIT.lock().unwrap();
    audit.push(format!("batch {batch} answered 50 requests"));
    if !leak && audit.len() > 16 {
        audit.remove(0);
    }
}

fn main() {
    let leak = !std::env::args().any(|a| a == "--no-leak");
    static CAUGHT_AT: AtomicU64 = AtomicU64::new(0);
    // One block or 32 bytes per checkpoint is growth, after a warm-up in
    // which the session table and the audit list fill up.
    memwatch_test::set_leak_rule(LeakRule {
        cycles: 5,
        min_bytes: 32,
        min_blocks: 1,
        warmup: WARMUP,
    });
    let _ = on_leak(|leak| {
        if CAUGHT_AT.load(Ordering::Relaxed) == 0 {
            println!("checkpoint {}: {}", leak.end_cycle, leak.reason);
            CAUGHT_AT.store(leak.end_cycle, Ordering::Relaxed);
        }
    });
    let start = gc().num_cycles;
    for batch in 0..100 {
        handle_batch(batch, leak);
        let stats = gc(); // the checkpoint
        let at = CAUGHT_AT.load(Ordering::Relaxed);
        if at != 0 {
            let after = stats.num_cycles - start;
            if !leak {
                println!("false alarm after {after} checkpoints");
                std::process::exit(1);
            }
            println!("caught after {after} checkpoints (limit {LIMIT})");
            std::process::exit(if after <= LIMIT { 0 } else { 1 });
        }
    }
    if leak {
        println!("not caught in 100 checkpoints");
        std::process::exit(1);
    }
    println!("no leak reported in 100 checkpoints");
}
