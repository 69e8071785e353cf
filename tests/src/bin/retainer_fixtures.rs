//! Leaks kept alive in different ways, for the tests of retainer paths
//! (`tests/retainers.rs`). Each is `should_leak` and `sites`: it passes,
//! and its report says what keeps its blocks, or that they are lost.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex, OnceLock};

use memwatch_test::leak_test;

static AUDIT: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Every request is logged, and the log is never trimmed.
fn log_request(n: usize) {
    let line = format!("request {n:>8} from 10.0.0.1");
    AUDIT.lock().unwrap().push(line);
}

#[leak_test(should_leak, sites, snapshot = false)]
fn static_vec_of_strings_leaks() {
    let n = AUDIT.lock().unwrap().len();
    log_request(n);
}

/// The same leak as a test that fails: its message is the one users read.
#[leak_test(ignore, snapshot = false)]
fn audit_log_fails() {
    let n = AUDIT.lock().unwrap().len();
    log_request(n);
}

static RESPONSES: OnceLock<Mutex<HashMap<u64, String>>> = OnceLock::new();

/// A response cache that never evicts.
fn cached_response(key: u64) {
    let cache = RESPONSES.get_or_init(|| Mutex::new(HashMap::new()));
    cache
        .lock()
        .unwrap()
        .entry(key)
        .or_insert_with(|| format!("response body for {key:>12}"));
}

#[leak_test(should_leak, sites, snapshot = false)]
fn once_lock_map_that_never_evicts_leaks() {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    cached_response(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
}

struct Peer {
    name: [u8; 16],
    next: RefCell<Option<Rc<Peer>>>,
}

fn peer(name: u8) -> Rc<Peer> {
    Rc::new(Peer {
        name: [name; 16],
        next: RefCell::new(None),
    })
}

/// `n` peers, each holding the next, the last holding the first.
fn ring(n: u8) {
    let first = peer(0);
    let mut last = first.clone();
    for k in 1..n {
        let p = peer(k);
        *last.next.borrow_mut() = Some(p.clone());
        last = p;
    }
    *last.next.borrow_mut() = Some(first.clone());
    std::hint::black_box(&first.name);
}

#[leak_test(should_leak, sites, snapshot = false)]
fn rc_cycle_of_two_leaks() {
    ring(2);
}

#[leak_test(should_leak, sites, snapshot = false)]
fn rc_cycle_of_three_leaks() {
    ring(3);
}

#[leak_test(should_leak, sites, snapshot = false)]
fn mem_forget_leaks() {
    std::mem::forget(std::hint::black_box(Box::new([1u8; 40])));
}

#[leak_test(should_leak, sites, snapshot = false)]
fn dropped_box_leak_leaks() {
    let leaked: &mut [u8; 56] = Box::leak(Box::new([2u8; 56]));
    std::hint::black_box(leaked);
}

struct Waiter {
    id: u64,
    wake: Option<Box<dyn Fn() + Send + Sync>>,
}

struct Hub {
    waiters: Mutex<Vec<Arc<Waiter>>>,
}

static HUB: OnceLock<Box<Hub>> = OnceLock::new();

/// Subscribes a waiter that is never removed.
fn subscribe(id: u64) -> Arc<Waiter> {
    let hub = HUB.get_or_init(|| {
        Box::new(Hub {
            waiters: Mutex::new(Vec::new()),
        })
    });
    let waiter = Arc::new(Waiter { id, wake: None });
    hub.waiters.lock().unwrap().push(waiter.clone());
    waiter
}

#[leak_test(should_leak, sites, snapshot = false)]
fn waiter_list_behind_a_static_leaks() {
    let w = subscribe(7);
    std::hint::black_box((w.id, w.wake.is_some()));
}

thread_local! {
    static SEEN: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

#[leak_test(should_leak, sites, snapshot = false)]
fn thread_local_cache_leaks() {
    SEEN.with(|seen| {
        let mut seen = seen.borrow_mut();
        let visitor = format!("visitor number {:>10}", seen.len());
        seen.push(visitor);
    });
}

#[leak_test(should_leak, sites, snapshot = false)]
async fn task_that_never_finishes_leaks() {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let session = vec![5u64; 12];
    tokio::spawn(async move {
        // Waits for a message that never comes, holding the session.
        let _ = rx.await;
        drop(session);
    });
    // The sender is forgotten, not dropped: the task never wakes.
    std::mem::forget(tx);
}

struct Session {
    token: [u8; 24],
}

#[memwatch_test::tagged]
impl Session {
    fn open(n: u8) -> Box<Session> {
        Box::new(Session { token: [n; 24] })
    }
}

#[allow(clippy::vec_box)]
static OPEN: Mutex<Vec<Box<Session>>> = Mutex::new(Vec::new());

#[leak_test(should_leak, sites, snapshot = false)]
fn tagged_sessions_leak() {
    let session = Session::open(3);
    std::hint::black_box(&session.token);
    OPEN.lock().unwrap().push(session);
}

/// A worker that holds its job's data on its stack and never ends. The
/// body waits until the worker has its job in hand, so that no worker is
/// caught still starting (its job then still in std's boxed closure).
#[leak_test(should_leak, sites, snapshot = false)]
fn parked_worker_holds_its_job_leaks() {
    let job = vec![6u64; 20];
    let (ready, started) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("holder".to_owned())
        .spawn(move || {
            let job = std::hint::black_box(job);
            let _ = ready.send(());
            loop {
                std::hint::black_box(&job);
                std::thread::park();
            }
        })
        .unwrap();
    let _ = started.recv();
}

/// A worker that blocks every signal, so the scan cannot stop it: what it
/// holds on its stack is unseen, and the scan must not call it lost.
#[leak_test(should_leak, sites, snapshot = false)]
fn worker_blocking_signals_leaks() {
    let job = vec![8u64; 24];
    let (ready, started) = std::sync::mpsc::sync_channel(1);
    std::thread::spawn(move || {
        // SAFETY: a zeroed set filled by `sigfillset`, applied to this
        // thread only.
        unsafe {
            let mut all: libc::sigset_t = std::mem::zeroed();
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_BLOCK, &all, std::ptr::null_mut());
        }
        let job = std::hint::black_box(job);
        let _ = ready.send(());
        loop {
            std::hint::black_box(&job);
            std::thread::park();
        }
    });
    // Every worker blocks the signal before the body goes on: the scan
    // meets only workers it cannot stop.
    let _ = started.recv();
}

/// The same leak as a failing test whose scan process dies: the failure
/// still says what leaked, and why its sites are missing.
#[leak_test(ignore, snapshot = false)]
fn scan_process_crash_fails() {
    // The test's own process has this set; the scan process it starts
    // does not.
    if std::env::var_os("MEMWATCH_CHILD").is_none() {
        std::process::abort();
    }
    let n = AUDIT.lock().unwrap().len();
    log_request(n);
}

#[leak_test(sites, snapshot = false)]
fn bounded_cache_with_sites_is_clean() {
    thread_local! {
        static RECENT: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    }
    RECENT.with(|recent| {
        let mut recent = recent.borrow_mut();
        if recent.len() == 8 {
            recent.remove(0);
        }
        recent.push("a recent item".to_owned());
    });
}

memwatch_test::main!();
