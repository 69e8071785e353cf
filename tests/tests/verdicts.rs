//! Runs the leak test fixtures (`src/bin/verdict_fixtures.rs`) 50 times,
//! each in a process of its own, and checks every verdict, rate and
//! snapshot in every run: zero flaky verdicts. The runs happen on a loaded
//! machine: the test keeps every core busy while it runs them.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use memwatch_e2e::{read_reports, run_fixture};

const RUNS: usize = 50;
const FIXTURES: &str = env!("CARGO_BIN_EXE_verdict_fixtures");

/// The verdict each fixture must get, and its growth in blocks per
/// iteration where that is exact.
fn expected() -> BTreeMap<&'static str, (&'static str, Option<f64>)> {
    BTreeMap::from([
        ("rc_cycle_leaks", ("leak", Some(4.0))),
        ("mem_forget_leaks", ("leak", Some(1.0))),
        ("box_leak_leaks", ("leak", Some(1.0))),
        ("static_vec_pushed_to_leaks", ("leak", Some(1.0))),
        ("waiter_list_never_pruned_leaks", ("leak", Some(1.0))),
        ("leak_in_a_joined_thread_leaks", ("leak", Some(1.0))),
        ("leak_in_an_async_task_leaks", ("leak", Some(1.0))),
        ("task_stuck_on_a_channel_leaks", ("task_leak", None)),
        ("queue_that_doubles_leaks", ("leak", Some(0.0))),
        // Its rate depends on where the run stops in the cycle of three.
        ("sixteen_bytes_every_third_iteration_leaks", ("leak", None)),
        ("one_byte_per_iteration_leaks", ("leak", Some(1.0))),
        ("vec_appended_forever_leaks", ("leak", Some(0.0))),
        // Its rate depends on how many measured iterations precede call 21.
        ("leak_starting_after_iteration_20_leaks", ("leak", None)),
        ("forgotten_file_leaks", ("fd_leak", None)),
        ("forgotten_socket_leaks", ("fd_leak", None)),
        ("closed_file_is_clean", ("clean", None)),
        ("closed_socket_is_clean", ("clean", None)),
        ("pure_work_is_clean", ("clean", None)),
        ("once_lock_initialisation_is_clean", ("clean", None)),
        ("thread_local_buffer_is_clean", ("clean", None)),
        ("cache_built_on_first_use_is_clean", ("clean", None)),
        ("amortised_vec_growth_is_clean", ("clean", None)),
        ("hash_map_that_plateaus_is_clean", ("clean", None)),
        ("bounded_lru_cache_is_clean", ("clean", None)),
        ("jitter_is_clean", ("clean", None)),
        ("work_in_a_joined_thread_is_clean", ("clean", None)),
        ("async_tasks_that_finish_are_clean", ("clean", None)),
        (
            "cache_of_128_filled_two_per_iteration_is_clean",
            ("clean", None),
        ),
        (
            "cache_of_256_filled_one_per_iteration_is_clean",
            ("clean", None),
        ),
        (
            "reused_buffer_growing_to_a_ceiling_is_clean",
            ("clean", None),
        ),
        ("buffer_pool_growing_to_16_is_clean", ("clean", None)),
        ("hash_table_stepping_late_is_clean", ("clean", None)),
    ])
}

/// Keeps every core busy (at least two threads) until dropped, so that the
/// runs happen on a loaded machine, as on a CI runner shared with other
/// jobs.
struct CpuBurner {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl CpuBurner {
    fn start() -> Self {
        let n = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .max(2);
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|seed| {
                let stop = Arc::clone(&stop);
                std::thread::spawn(move || {
                    let mut x = seed as u64;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..10_000 {
                            x = std::hint::black_box(
                                x.wrapping_mul(6_364_136_223_846_793_005)
                                    .wrapping_add(1_442_695_040_888_963_407),
                            );
                        }
                    }
                })
            })
            .collect();
        CpuBurner { stop, threads }
    }
}

impl Drop for CpuBurner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[test]
fn every_verdict_holds_in_50_runs() {
    let _load = CpuBurner::start();
    let expected = expected();
    for run in 0..RUNS {
        // Compare snapshots without writing any.
        let (out, reports) = run_fixture(FIXTURES, &[], &[]);
        assert!(
            out.status.success(),
            "run {run} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            reports.keys().map(String::as_str).collect::<Vec<_>>(),
            expected.keys().copied().collect::<Vec<_>>(),
            "run {run}: one report per fixture"
        );
        // The leaked threads outlive their test: that one runs alone.
        let (alone, threads) = run_fixture(
            FIXTURES,
            &["--ignored", "--exact", "detached_thread_leaks"],
            &[],
        );
        assert!(
            alone.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&alone.stdout)
        );
        let t = &threads["detached_thread_leaks"];
        assert_eq!(t["verdict"]["kind"], "thread_leak", "run {run}");
        assert_eq!(t["verdict"]["per_iteration"], 1.0, "run {run}");
        // Its background thread churns for ever: it runs alone too.
        let churn_name = "background_churn_beside_clean_body_is_clean";
        let (alone, churn) = run_fixture(FIXTURES, &["--ignored", "--exact", churn_name], &[]);
        assert!(
            alone.status.success(),
            "run {run}: {}",
            String::from_utf8_lossy(&alone.stdout)
        );
        let c = &churn[churn_name];
        assert_eq!(c["verdict"]["kind"], "clean", "run {run}: {churn_name}");
        assert_eq!(c["passed"], true, "run {run}: {churn_name}");
        for (name, (verdict, blocks)) in &expected {
            let r = &reports[*name];
            assert_eq!(r["verdict"]["kind"], *verdict, "run {run}: {name}");
            assert_eq!(r["passed"], true, "run {run}: {name}");
            if let Some(rate) = r["verdict"]["per_iteration"].as_f64() {
                assert_eq!(
                    rate, 1.0,
                    "run {run}: {name}: one thread or descriptor per iteration"
                );
            }
            if let Some(blocks) = blocks {
                assert_eq!(
                    r["growth_per_iteration"]["blocks"].as_f64(),
                    Some(*blocks),
                    "run {run}: {name} blocks per iteration"
                );
            }
        }
    }
}

#[test]
fn the_report_has_the_documented_shape() {
    // Run by hand: this test looks into the report folder itself.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(FIXTURES)
        .args(["--exact", "box_leak_leaks"])
        .env("MEMWATCH_REPORT_DIR", dir.path())
        .env("CI", "true")
        .output()
        .unwrap();
    assert!(out.status.success());
    let reports = read_reports(dir.path());
    assert_eq!(reports.len(), 1, "only the selected test ran");
    let r = &reports["box_leak_leaks"];
    assert_eq!(r["version"], memwatch_report::report::VERSION);
    // What the harness wrote is what the contract reads.
    let file = dir.path().join("box_leak_leaks.json");
    let typed = memwatch_report::report::read(&std::fs::read(file).unwrap()).unwrap();
    assert_eq!(typed.verdict, memwatch_report::report::Verdict::Leak);
    assert!(typed.passed && typed.should_leak);
    let expected = if cfg!(target_os = "linux") {
        "watched"
    } else {
        "not supported on this platform"
    };
    assert_eq!(r["resources"], expected);
    for key in [
        "test",
        "file",
        "line",
        "verdict",
        "should_leak",
        "passed",
        "snapshot",
        "resources",
        "num_cycles",
        "peak_bytes",
        "sites",
        "dhat_file",
        "warmup",
        "iterations",
        "iterations_run",
        "duration_ms",
        "growth_per_iteration",
        "rounds",
        "decision",
        "memwatch_leak",
        "per_iteration",
        "survivors",
        "cycles",
        "failure",
    ] {
        assert!(r.get(key).is_some(), "{key} missing from the report");
    }
    assert_eq!(r["growth_per_iteration"]["bytes"], 8.0);
    // Rounds double the run from the first checkpoint (32) to the budget.
    let rounds = r["rounds"].as_array().unwrap();
    let ends: Vec<u64> = rounds.iter().map(|x| x["last"].as_u64().unwrap()).collect();
    assert_eq!(ends, [32, 64, 128, 256, 512, 1024]);
    assert!(rounds
        .iter()
        .all(|x| x["grew"] == true && x["growth"] == "new_blocks"));
    // The decision says why, and carries the evidence it read.
    let d = &r["decision"];
    assert_eq!(d["call"], "leak");
    assert_eq!(d["max_iterations"], 1024);
    assert_eq!(d["why"]["exhausted"], "iterations");
    assert_eq!(d["why"]["survivor_iterations"], 1024);
    assert_eq!(d["why"]["extra_iterations"], 1024 - 32);
    assert_eq!(d["why"]["end"]["accumulating"], true);
    let samples = d["evidence"]["samples"].as_array().unwrap();
    assert_eq!(samples.len(), 1024);
    assert_eq!(samples[0][0], 1, "[iteration, bytes, blocks]");
    assert_eq!(
        samples[1023][1].as_u64().unwrap() - samples[0][1].as_u64().unwrap(),
        8 * 1023
    );
    let reason = r["memwatch_leak"].as_str().unwrap();
    assert!(
        reason.starts_with("heap growth over 5 consecutive collections"),
        "{reason}"
    );
    // Every measured iteration left its one block.
    let survivors = r["survivors"].as_array().unwrap();
    assert_eq!(
        survivors.len(),
        r["iterations_run"].as_u64().unwrap() as usize - 3
    );
    assert!(survivors
        .iter()
        .all(|s| s["blocks"] == 1 && s["bytes"] == 8));
    let cycles = r["cycles"].as_array().unwrap();
    assert_eq!(cycles[0]["phase"], "warmup");
    assert!(cycles[3]["stats"]["current_base"].is_u64());
    // No temporary file is left behind by the atomic write.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .collect();
    assert!(leftovers.is_empty());
}
