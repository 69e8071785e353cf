//! Leak test fixtures: every kind of leak our users meet, and every pattern
//! that must not be called one. Leaks are marked `should_leak`, so a run
//! passes exactly when every verdict is right; `tests/verdicts.rs` runs it
//! many times and checks each verdict in the JSON reports.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::{Mutex, OnceLock};

use memwatch_test::leak_test;

// ---------------------------------------------------------------- leaks --

struct Node {
    _payload: Vec<u8>,
    next: Option<Rc<RefCell<Node>>>,
}

#[leak_test(should_leak)]
fn rc_cycle_leaks() {
    let a = Rc::new(RefCell::new(Node {
        _payload: vec![1; 32],
        next: None,
    }));
    let b = Rc::new(RefCell::new(Node {
        _payload: vec![2; 32],
        next: Some(a.clone()),
    }));
    a.borrow_mut().next = Some(b);
}

#[leak_test(should_leak)]
fn mem_forget_leaks() {
    std::mem::forget(std::hint::black_box(vec![0u8; 16]));
}

#[leak_test(should_leak)]
fn box_leak_leaks() {
    std::hint::black_box(Box::leak(Box::new(7u64)));
}

static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[leak_test(should_leak)]
fn static_vec_pushed_to_leaks() {
    LOG.lock().unwrap().push(format!("request at {:p}", &LOG));
}

/// A notifier whose waiters are registered on every call and never pruned.
struct Notifier {
    waiters: Mutex<Vec<std::sync::mpsc::Sender<()>>>,
}

static NOTIFIER: Notifier = Notifier {
    waiters: Mutex::new(Vec::new()),
};

#[leak_test(should_leak)]
fn waiter_list_never_pruned_leaks() {
    let (tx, rx) = std::sync::mpsc::channel();
    NOTIFIER.waiters.lock().unwrap().push(tx);
    drop(rx); // the waiter gave up; its sender stays in the list
}

#[leak_test(should_leak)]
fn leak_in_a_joined_thread_leaks() {
    std::thread::spawn(|| {
        std::hint::black_box(Box::leak(vec![0u8; 24].into_boxed_slice()));
    })
    .join()
    .unwrap();
}

#[leak_test(should_leak)]
async fn leak_in_an_async_task_leaks() {
    tokio::spawn(async {
        std::hint::black_box(Box::leak(Box::new([0u8; 40])));
    })
    .await
    .unwrap();
}

#[leak_test(should_leak)]
async fn task_stuck_on_a_channel_leaks() {
    let (_tx, rx) = tokio::sync::oneshot::channel::<()>();
    let (keep_tx, keep_rx) = tokio::sync::oneshot::channel::<tokio::sync::oneshot::Sender<()>>();
    // The task waits for a message no one will send: its sender is kept
    // alive by the task itself.
    tokio::spawn(async move {
        let tx = keep_rx.await;
        let _ = rx.await;
        drop(tx);
    });
    let _ = keep_tx.send(_tx);
}

static QUEUE: Mutex<VecDeque<u64>> = Mutex::new(VecDeque::new());

/// Grows in steps: the buffer doubles now and then, no new block is made.
#[leak_test(should_leak)]
fn queue_that_doubles_leaks() {
    QUEUE.lock().unwrap().push_back(42);
}

/// A worker thread that is never told to stop. Its memory moves while the
/// cycles sample it, so its diff is no snapshot. The threads it leaks keep
/// running, and std keeps a map of live threads for its stack-overflow
/// handler (`thread_info::set_current_info`): with these 52 alive, a later
/// test that spawns a thread may allocate and free one more 560-byte node
/// of it per thread, depending on the map's shape. So this test runs in a
/// process of its own: `ignore`d here, run with `--ignored --exact` by
/// `tests/verdicts.rs`.
#[leak_test(should_leak, snapshot = false, ignore)]
fn detached_thread_leaks() {
    // Waits on a channel whose sender is kept forever: it never returns.
    static SENDERS: Mutex<Vec<std::sync::mpsc::Sender<()>>> = Mutex::new(Vec::new());
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    SENDERS.lock().unwrap().push(tx);
    std::thread::spawn(move || rx.recv().ok());
}

#[leak_test(should_leak)]
fn forgotten_file_leaks() {
    let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
    std::mem::forget(file);
}

#[leak_test(should_leak)]
fn forgotten_socket_leaks() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std::mem::forget(listener);
}

// ---------------------------------------------------------------- clean --

#[leak_test]
fn closed_file_is_clean() {
    let file = std::fs::File::open(std::env::current_exe().unwrap()).unwrap();
    std::hint::black_box(file.metadata().unwrap().len());
}

#[leak_test]
fn closed_socket_is_clean() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std::hint::black_box(listener.local_addr().unwrap());
}

#[leak_test]
fn pure_work_is_clean() {
    let parsed: Vec<u64> = "1,2,3,4,5,6,7,8"
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    let text = parsed
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join("-");
    std::hint::black_box(text);
}

static CONFIG: OnceLock<HashMap<String, String>> = OnceLock::new();

#[leak_test]
fn once_lock_initialisation_is_clean() {
    let config = CONFIG.get_or_init(|| {
        (0..50)
            .map(|i| (format!("key{i}"), format!("value{i}")))
            .collect()
    });
    std::hint::black_box(config.len());
}

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

#[leak_test]
fn thread_local_buffer_is_clean() {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        s.clear();
        s.extend_from_slice(&[0; 512]);
    });
}

static TABLE: Mutex<Option<HashMap<u32, String>>> = Mutex::new(None);

#[leak_test]
fn cache_built_on_first_use_is_clean() {
    let mut table = TABLE.lock().unwrap();
    let table = table.get_or_insert_with(|| (0..100).map(|i| (i, i.to_string())).collect());
    std::hint::black_box(table.get(&7));
}

static BUFFER: Mutex<Vec<u64>> = Mutex::new(Vec::new());

/// The buffer grows by doubling while it is filled the first times, then
/// its capacity is enough: amortised growth that plateaus.
#[leak_test]
fn amortised_vec_growth_is_clean() {
    let mut buffer = BUFFER.lock().unwrap();
    buffer.clear();
    buffer.extend(0..300);
}

static SEEN: Mutex<Option<HashMap<u64, u64>>> = Mutex::new(None);
static CALLS: Mutex<u64> = Mutex::new(0);

/// A map keyed by 20 distinct keys: it fills and rehashes over the first
/// 20 calls, then stays.
#[leak_test]
fn hash_map_that_plateaus_is_clean() {
    let mut calls = CALLS.lock().unwrap();
    *calls += 1;
    let mut seen = SEEN.lock().unwrap();
    seen.get_or_insert_with(HashMap::new)
        .insert(*calls % 20, *calls);
}

/// A least-recently-used cache bounded to 16 entries, fed a new key on every
/// call: it fills, then evicts.
struct Lru {
    order: VecDeque<u64>,
    values: HashMap<u64, Vec<u8>>,
    next: u64,
}

static LRU: Mutex<Option<Lru>> = Mutex::new(None);

#[leak_test]
fn bounded_lru_cache_is_clean() {
    let mut guard = LRU.lock().unwrap();
    let lru = guard.get_or_insert_with(|| Lru {
        order: VecDeque::with_capacity(17),
        values: HashMap::with_capacity(17),
        next: 0,
    });
    lru.next += 1;
    lru.order.push_back(lru.next);
    lru.values.insert(lru.next, vec![0; 100]);
    if lru.order.len() > 16 {
        let old = lru.order.pop_front().unwrap();
        lru.values.remove(&old);
    }
}

static JITTER: Mutex<(u64, Option<Vec<u8>>)> = Mutex::new((0, None));

/// A buffer that is there after some iterations and gone after others.
#[leak_test]
fn jitter_is_clean() {
    let mut j = JITTER.lock().unwrap();
    j.0 += 1;
    j.1 = match j.0 % 3 {
        0 => Some(vec![0; 700]),
        1 => None,
        _ => j.1.take(),
    };
}

#[leak_test]
fn work_in_a_joined_thread_is_clean() {
    let total = std::thread::spawn(|| {
        (0..100)
            .map(|i| vec![i as u8; 64])
            .map(|v| v.len())
            .sum::<usize>()
    })
    .join()
    .unwrap();
    std::hint::black_box(total);
}

#[leak_test]
async fn async_tasks_that_finish_are_clean() {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let producer = tokio::spawn(async move {
        for i in 0..10 {
            tx.send(vec![i; 128]).await.unwrap();
        }
    });
    let mut total = 0;
    while let Some(v) = rx.recv().await {
        total += v.len();
    }
    producer.await.unwrap();
    std::hint::black_box(total);
}

// ------------------------------------------------- run only on request --

static SOAKED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A soak test: rounds by time, not by count.
#[leak_test(should_leak, duration = "350ms", snapshot = false, ignore)]
fn soak_leak_is_caught() {
    SOAKED.lock().unwrap().push("kept".to_owned());
}

/// A soak test runs its whole duration even when it is clean.
#[leak_test(duration = "350ms", snapshot = false, ignore)]
fn soak_clean_runs_its_duration() {
    std::hint::black_box("a,b,c".split(',').map(str::to_owned).collect::<Vec<_>>());
}

/// Panics in its fifth iteration: the test fails with no verdict.
#[leak_test(ignore)]
fn panicking_body() {
    static CALLS: Mutex<u32> = Mutex::new(0);
    let mut calls = CALLS.lock().unwrap();
    *calls += 1;
    assert!(*calls < 5, "the fifth call breaks");
}

memwatch_test::main!();
