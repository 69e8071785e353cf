//! Leaks made in different places of the user's code, for the tests of
//! allocation sites (`tests/sites.rs`). Each is `should_leak` and `sites`:
//! it passes, and its report names where the survivors were allocated.

use std::sync::Mutex;

use memwatch_test::leak_test;

// Boxed on purpose: each kept box is one block for the site to find.
#[allow(clippy::vec_box)]
static KEPT: Mutex<Vec<Box<[u8; 48]>>> = Mutex::new(Vec::new());

/// A helper that keeps what it makes.
fn remember(fill: u8) {
    let block = Box::new([fill; 48]);
    KEPT.lock().unwrap().push(block);
}

#[leak_test(should_leak, sites, snapshot = false)]
fn helper_function_leaks() {
    remember(1);
}

struct Registry {
    entries: Mutex<Vec<String>>,
}

impl Registry {
    fn register(&self, name: &str) {
        let entry = format!("entry:{name}");
        self.entries.lock().unwrap().push(entry);
    }
}

static REGISTRY: Registry = Registry {
    entries: Mutex::new(Vec::new()),
};

#[leak_test(should_leak, sites, snapshot = false)]
fn method_leaks() {
    REGISTRY.register("a listener that is never removed");
}

#[leak_test(should_leak, sites, snapshot = false)]
fn closure_leaks() {
    let make = |n: usize| Box::leak(vec![7u8; n].into_boxed_slice());
    std::hint::black_box(make(24));
}

#[leak_test(should_leak, sites, snapshot = false)]
fn spawned_thread_leaks() {
    std::thread::spawn(|| {
        std::hint::black_box(Box::leak(Box::new([3u64; 5])));
    })
    .join()
    .unwrap();
}

#[leak_test(should_leak, sites, snapshot = false)]
async fn async_task_leaks() {
    tokio::spawn(async {
        std::hint::black_box(Box::leak(Box::new([9u8; 40])));
    })
    .await
    .unwrap();
}

static CHURN_KEPT: Mutex<Vec<Vec<u64>>> = Mutex::new(Vec::new());

/// Eight threads allocate and free thousands of blocks at once while sites
/// are captured; one of them keeps one block per iteration.
#[leak_test(should_leak, sites, snapshot = false)]
fn many_threads_while_capturing_leaks() {
    let handles: Vec<_> = (0..8u64)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..2000u64 {
                    std::hint::black_box(vec![t; (i % 64) as usize + 1]);
                }
                if t == 3 {
                    CHURN_KEPT.lock().unwrap().push(vec![t; 8]);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

memwatch_test::main!();
