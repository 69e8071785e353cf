//! Leaks through published crates, in the shapes users meet: data
//! deserialised by serde_json kept in a global, a regex compiled per call
//! and cached, spans of a tracing registry never closed, a tokio task left
//! waiting, and a thread left running. Each is `should_leak` and `sites`:
//! it passes, and its report names the function of this file that made
//! what leaked (`tests/sites.rs`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once, OnceLock};

use memwatch_test::leak_test;

static NEXT: AtomicU64 = AtomicU64::new(0);

fn next() -> u64 {
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Every request's parsed body, kept for an audit that never comes.
static AUDIT: Mutex<Vec<serde_json::Value>> = Mutex::new(Vec::new());

fn handle_request(body: &str) -> usize {
    let value: serde_json::Value = serde_json::from_str(body).expect("JSON");
    let items = value["items"].as_array().map_or(0, Vec::len);
    AUDIT.lock().unwrap().push(value);
    items
}

#[leak_test(should_leak, sites, snapshot = false)]
fn audit_log_leaks() {
    let body = format!(
        r#"{{"user": "ada", "request": {}, "items": [1, 2, 3], "meta": {{"ip": "10.0.0.1"}}}}"#,
        next()
    );
    std::hint::black_box(handle_request(&body));
}

/// Deeply nested documents, kept: their innermost arrays are allocated
/// further down serde's recursion than capture keeps frames.
static NESTED: Mutex<Vec<serde_json::Value>> = Mutex::new(Vec::new());

fn keep_nested(depth: usize) {
    let text = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    NESTED.lock().unwrap().push(value);
}

#[leak_test(should_leak, sites, snapshot = false)]
fn deeply_nested_json_leaks() {
    keep_nested(60);
}

/// Compiled rules by pattern: a new tenant's pattern per call, never evicted.
static RULES: OnceLock<Mutex<HashMap<String, regex::Regex>>> = OnceLock::new();

fn rule_for(tenant: u64) -> regex::Regex {
    let pattern = format!(r"^tenant-{tenant}/[a-z]+/\d+$");
    let mut rules = RULES.get_or_init(Default::default).lock().unwrap();
    if let Some(rule) = rules.get(&pattern) {
        return rule.clone();
    }
    let rule = regex::Regex::new(&pattern).expect("a valid pattern");
    rules.insert(pattern, rule.clone());
    rule
}

#[leak_test(should_leak, sites, snapshot = false)]
fn regex_rule_cache_leaks() {
    let tenant = next();
    std::hint::black_box(rule_for(tenant).is_match(&format!("tenant-{tenant}/orders/42")));
}

/// Spans of requests that were never closed.
static OPEN_SPANS: Mutex<Vec<tracing::Span>> = Mutex::new(Vec::new());

fn start_request(id: u64) {
    let span = tracing::info_span!("request", id, route = "/orders");
    OPEN_SPANS.lock().unwrap().push(span);
}

#[leak_test(should_leak, sites, snapshot = false)]
fn tracing_span_leaks() {
    static SUBSCRIBER: Once = Once::new();
    SUBSCRIBER.call_once(|| {
        // The fmt layer keeps each span's formatted fields in the span's
        // extensions, in the registry, for as long as the span lives.
        use tracing_subscriber::layer::SubscriberExt;
        let subscriber = tracing_subscriber::registry().with(tracing_subscriber::fmt::layer());
        tracing::subscriber::set_global_default(subscriber).expect("the first global subscriber");
    });
    start_request(next());
}

/// Senders nobody ever sends on: each watcher task waits forever.
static FORGOTTEN: Mutex<Vec<tokio::sync::oneshot::Sender<()>>> = Mutex::new(Vec::new());

fn spawn_watcher(done: tokio::sync::oneshot::Receiver<()>) {
    tokio::spawn(async move {
        let _ = done.await;
    });
}

#[leak_test(should_leak, sites, snapshot = false)]
async fn orphaned_task_leaks() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    FORGOTTEN.lock().unwrap().push(tx);
    spawn_watcher(rx);
}

/// Workers started per call and never stopped.
static WORKERS: Mutex<Vec<std::sync::mpsc::Sender<()>>> = Mutex::new(Vec::new());

fn start_worker() {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || while rx.recv().is_ok() {});
    WORKERS.lock().unwrap().push(tx);
}

#[leak_test(should_leak, sites, snapshot = false)]
fn detached_worker_leaks() {
    start_worker();
}

memwatch_test::main!();
