//! What it costs to find where a leak comes from, as ratios on one body.
//!
//! `cargo bench -p memwatch-test --bench sites`
//!
//! The same body (20 JSON request bodies parsed by serde_json and kept, the
//! previous iteration's dropped: a few hundred allocations per iteration,
//! each a dozen serde frames under the user's function) runs its warm-up
//! and 10 measured iterations, each followed by a collection cycle:
//!
//! - `plain counting`: a capture window with nothing captured;
//! - `site capture`: memwatch's second run, a stack per allocation;
//! - `dhat profiler`: the same window under dhat's heap profiler (what
//!   `MEMWATCH_DHAT` does);
//! - `valgrind memcheck`: the body run as often in a child process under
//!   `valgrind --tool=memcheck`, against the same child run natively.
//!
//! The three in-process runs happen inside a libtest-mimic trial, as in the
//! harness, so that stacks are as deep as in a real leak test (dhat unwinds
//! whole stacks; memwatch unwinds up to the frame that calls the test
//! body). Medians over interleaved rounds; valgrind is skipped when it is
//! not installed.

use std::hint::black_box;
use std::process::Command;
use std::time::Instant;

use memwatch_test::__private::{Body, LeakTest, Options, SnapshotName};

#[global_allocator]
static ALLOC: memwatch_test::Alloc = memwatch_test::Alloc::system();

/// Parsed request bodies, kept: the common leak of data deserialised by
/// serde_json into a global.
static AUDIT: std::sync::Mutex<Vec<serde_json::Value>> = std::sync::Mutex::new(Vec::new());

/// A request handler that keeps what it parses: each allocation is made
/// deep in serde_json, a dozen frames under the user's function, which a
/// site must reach. Parses 20 bodies per iteration, a few hundred blocks.
#[inline(never)]
fn handle_request(body: &str) {
    let value: serde_json::Value = serde_json::from_str(body).unwrap();
    AUDIT.lock().unwrap().push(value);
}

fn body() {
    for i in 0..20 {
        let body = format!(
            r#"{{"user": "u{i}", "roles": ["admin", "ops"], "meta": {{"ip": "10.0.0.{i}", "tags": [1, 2, 3]}}}}"#
        );
        handle_request(&body);
    }
    // Kept from the previous iteration only, so that the heap stays small.
    let mut audit = AUDIT.lock().unwrap();
    let len = audit.len();
    if len > 40 {
        audit.drain(..len - 20);
    }
    black_box(len);
}

static TEST: LeakTest = LeakTest {
    module_path: "bench",
    name: "body",
    file: file!(),
    line: line!(),
    body: Body::Sync(body),
    options: Options {
        snapshot: SnapshotName::Off,
        ..Options::DEFAULT
    },
};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn time(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--body-only") {
        // The child process of the valgrind comparison.
        let n: usize = args[i + 1].parse().unwrap();
        for _ in 0..n {
            body();
        }
        return;
    }
    let quick = !args.iter().any(|a| a == "--bench");
    let rounds = if quick { 1 } else { 11 };
    let dir = std::env::temp_dir().join(format!("memwatch-sites-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dhat_file = dir.join("bench.dhat.json");

    let timings: std::sync::Arc<std::sync::Mutex<[Vec<f64>; 3]>> = Default::default();
    let recorded = timings.clone();
    let trial = libtest_mimic::Trial::test("site capture benchmark", move || {
        let mut t = recorded.lock().unwrap();
        for _ in 0..rounds {
            t[0].push(time(|| {
                assert!(memwatch_test::__private::run_capture(&TEST, false, None))
            }));
            t[1].push(time(|| {
                assert!(memwatch_test::__private::run_capture(&TEST, true, None))
            }));
            t[2].push(time(|| {
                assert!(memwatch_test::__private::run_capture(
                    &TEST,
                    false,
                    Some(&dhat_file)
                ))
            }));
        }
        Ok(())
    });
    let mut trial_args = libtest_mimic::Arguments::from_iter(["bench"]);
    trial_args.test_threads = Some(1);
    trial_args.quiet = true;
    let _ = libtest_mimic::run(&trial_args, vec![trial]);
    let [plain, sites, dhat] = std::mem::take(&mut *timings.lock().unwrap());
    let (p, s, d) = (median(plain), median(sites), median(dhat));
    println!("median over {rounds} interleaved rounds; 3 warm-up + 10 measured iterations, a cycle after each");
    println!("{:<20} {:>11} {:>9}", "run", "time", "x plain");
    println!("{:<20} {:>8.2} ms {:>8.2}x", "plain counting", p * 1e3, 1.0);
    println!("{:<20} {:>8.2} ms {:>8.2}x", "site capture", s * 1e3, s / p);
    println!(
        "{:<20} {:>8.2} ms {:>8.2}x",
        "dhat profiler",
        d * 1e3,
        d / p
    );
    println!("site capture is {:.1}x faster than dhat's profiler", d / s);

    // valgrind: the body run 13 times in a child, natively and under memcheck.
    let exe = std::env::current_exe().unwrap();
    let child = |valgrind: bool| {
        let mut cmd = if valgrind {
            let mut c = Command::new("valgrind");
            c.args(["--tool=memcheck", "--leak-check=no", "-q"])
                .arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(["--body-only", "13"]);
        let t = Instant::now();
        let ok = cmd.status().map(|s| s.success()).unwrap_or(false);
        ok.then(|| t.elapsed().as_secs_f64())
    };
    let valgrind_rounds = if quick { 1 } else { 3 };
    let native: Vec<f64> = (0..valgrind_rounds).filter_map(|_| child(false)).collect();
    let memcheck: Vec<f64> = (0..valgrind_rounds).filter_map(|_| child(true)).collect();
    if native.is_empty() || memcheck.is_empty() {
        println!("valgrind memcheck: not run (valgrind is not installed)");
    } else {
        let (n, m) = (median(native), median(memcheck));
        println!(
            "valgrind memcheck    {:>8.2} ms {:>8.2}x the same body natively in a child ({:.2} ms, process start included)",
            m * 1e3,
            m / n,
            n * 1e3
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
