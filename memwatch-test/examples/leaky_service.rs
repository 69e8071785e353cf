//! node-memwatch's demo in Rust: a service that leaks a little on every
//! request, watched with `gc()`, the `stats` and `leak` events and a
//! `HeapDiff`.
//!
//! `cargo run -p memwatch-test --example leaky_service`

use std::sync::Mutex;

use memwatch_test::{format_bytes, gc, on_leak, on_stats, tagged, Alloc, HeapDiff};

#[global_allocator]
static ALLOC: Alloc = Alloc::system();

/// What a request builds. Its allocations are tagged `LeakingClass`.
struct LeakingClass {
    payload: Vec<u8>,
}

#[tagged]
impl LeakingClass {
    fn new(id: usize) -> Self {
        LeakingClass {
            payload: format!("request {id}").into_bytes(),
        }
    }
}

/// The bug: every request is remembered, and nothing ever forgets one.
static SEEN: Mutex<Vec<LeakingClass>> = Mutex::new(Vec::new());

fn handle(id: usize) -> usize {
    let scratch = vec![0u8; 4096]; // freed at the end of the request: fine
    let request = LeakingClass::new(id);
    let len = request.payload.len() + scratch.len();
    SEEN.lock().unwrap().push(request); // the leak
    len
}

fn main() {
    let _ = on_stats(|s| {
        println!(
            "stats: cycle {:>2}  current_base {:>9}  estimated_base {:>9}  trend {:>5.1}%",
            s.num_cycles,
            format_bytes(s.current_base as i64),
            format_bytes(s.estimated_base as i64),
            s.usage_trend
        );
    });
    let _ = on_leak(|leak| println!("leak:  {}", leak.reason));

    gc(); // the quiet point before the work
    let diff = HeapDiff::new();
    for batch in 0..8 {
        for id in 0..50 {
            std::hint::black_box(handle(batch * 50 + id));
        }
        gc(); // a quiet point between batches of requests
    }
    let diff = diff.end();

    println!("\nwhat the 8 batches left behind:\n{diff}");
    println!("as node-memwatch's JSON:");
    println!("{}", serde_json::to_string_pretty(&diff).unwrap());
}
