//! Collection cycles: stable samples, the stats and leak callbacks,
//! collectors, survivors per cycle and the peak.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use memwatch_test::{gc, on_collect, on_leak, on_stats, survivors, Alloc, Leak, LeakRule};

#[global_allocator]
static ALLOC: Alloc = Alloc::system();

fn survivors_of(cycle: u64) -> (i64, i64) {
    survivors()
        .iter()
        .find(|s| s.cycle == cycle)
        .map(|s| (s.blocks, s.bytes))
        .unwrap_or((0, 0))
}

fn two_cycles_in_a_row_report_the_same_base() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    // A callback that allocates and keeps what it allocates: not counted.
    let kept: Arc<Mutex<Vec<String>>> = Arc::default();
    let k = kept.clone();
    let reg = on_stats(move |s| {
        seen.fetch_add(1, Ordering::Relaxed);
        k.lock().unwrap().push(format!("{s:?}"));
    });
    let a = gc();
    let b = gc();
    let c = gc();
    assert!(reg.remove());
    assert_eq!(a.current_base, b.current_base);
    assert_eq!(b.current_base, c.current_base);
    assert_eq!(a.live_blocks, c.live_blocks);
    assert_eq!(c.num_cycles, a.num_cycles + 2);
    assert_eq!(calls.load(Ordering::Relaxed), 3);
    assert_eq!(kept.lock().unwrap().len(), 3);
    gc();
    assert_eq!(
        calls.load(Ordering::Relaxed),
        3,
        "removed callback was called"
    );
}

fn the_leak_event_fires_after_five_growing_cycles() {
    set_default_rule();
    let leaks: Arc<Mutex<Vec<Leak>>> = Arc::default();
    let l = leaks.clone();
    let reg = on_leak(move |leak| l.lock().unwrap().push(leak.clone()));
    let mut kept: Vec<Box<u64>> = Vec::with_capacity(64);
    gc();
    gc(); // the detector's previous sample is now a quiet one
    for i in 0..5 {
        kept.push(Box::new(i));
        let fired = !leaks.lock().unwrap().is_empty();
        assert!(!fired, "fired early, before growing cycle {}", i + 1);
        gc();
    }
    assert!(reg.remove());
    let leaks = leaks.lock().unwrap();
    assert_eq!(leaks.len(), 1);
    let leak = &leaks[0];
    assert_eq!(leak.cycles, 5);
    assert_eq!((leak.growth_blocks, leak.growth_bytes), (5, 40));
    assert_eq!(leak.blocks_per_cycle, 1.0);
    assert!(
        leak.reason
            .starts_with("heap growth over 5 consecutive collections ("),
        "{}",
        leak.reason
    );
    assert!(leak.reason.contains(" - 8 bytes/cycle"), "{}", leak.reason);
}

fn a_plateau_and_a_bounded_cache_raise_no_leak() {
    set_default_rule();
    let fired = Arc::new(AtomicUsize::new(0));
    let f = fired.clone();
    let reg = on_leak(move |_| {
        f.fetch_add(1, Ordering::Relaxed);
    });
    let mut cache: std::collections::VecDeque<Vec<u8>> = Default::default();
    let mut jitter: Option<Vec<u8>> = None;
    for i in 0..40 {
        cache.push_back(vec![0; 100]);
        if cache.len() > 8 {
            cache.pop_front();
        }
        // Jitter: a small buffer that comes and goes.
        jitter = match i % 3 {
            0 => Some(vec![0; 300]),
            1 => None,
            _ => jitter,
        };
        gc();
    }
    assert!(reg.remove());
    drop(jitter);
    assert_eq!(fired.load(Ordering::Relaxed), 0);
}

fn set_default_rule() {
    memwatch_test::set_leak_rule(LeakRule::default());
}

fn collectors_run_every_cycle_and_their_frees_count() {
    static CACHE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let reg = on_collect(move || {
        r.fetch_add(1, Ordering::Relaxed);
        CACHE.lock().unwrap().clear();
    });
    let base = gc().current_base;
    CACHE.lock().unwrap().push(vec![1; 4096]);
    let after = gc();
    assert!(reg.remove());
    // The cache's buffer (its Vec of Vecs) stays; the 4 KiB block is gone.
    assert!(
        after.current_base < base + 4096,
        "{base} -> {}",
        after.current_base
    );
    assert_eq!(runs.load(Ordering::Relaxed), 2);
}

fn survivors_tell_a_leak_from_one_time_initialisation() {
    let _tracking = memwatch_test::track_survivors();
    static ONCE: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    let mut leaked: Vec<Box<[u8; 40]>> = Vec::with_capacity(16);
    let first = gc().num_cycles + 1;
    for _ in 0..6 {
        ONCE.get_or_init(|| vec![0; 500]);
        let temporary = vec![0u8; 300];
        leaked.push(Box::new([0; 40]));
        drop(temporary);
        gc();
    }
    assert_eq!(survivors_of(first), (2, 540), "init + one leaked box");
    for cycle in first + 1..first + 6 {
        assert_eq!(survivors_of(cycle), (1, 40), "cycle {cycle}");
    }
    // Freeing a block of an old cycle, from another thread, credits that cycle.
    let b = leaked.remove(2);
    std::thread::spawn(move || drop(b)).join().unwrap();
    assert_eq!(survivors_of(first + 2), (0, 0));
}

fn a_realloc_moves_the_block_to_the_current_cycle() {
    let _tracking = memwatch_test::track_survivors();
    gc(); // close the cycle of whatever ran before
    let mut v: Vec<u8> = Vec::with_capacity(10);
    let c1 = gc().num_cycles;
    v.reserve_exact(1000); // realloc 10 -> 1000
    let c2 = gc().num_cycles;
    assert_eq!(survivors_of(c1), (0, 0));
    assert_eq!(survivors_of(c2), (1, 1000));
    drop(v);
}

fn survivors_older_than_the_window_are_gathered() {
    let _tracking = memwatch_test::track_survivors();
    let old = std::hint::black_box(Box::new([0u8; 77]));
    gc();
    for _ in 0..2060 {
        gc();
    }
    let all = survivors();
    assert_eq!(all.len(), 2048, "one gathered entry and 2047 cycles");
    assert_eq!(all[0].cycle, 0);
    assert!(all[0].blocks >= 1 && all[0].bytes >= 77, "{:?}", all[0]);
    let before = all[0];
    drop(old);
    let after = survivors()[0];
    assert_eq!(
        (after.blocks, after.bytes),
        (before.blocks - 1, before.bytes - 77)
    );
    let live = memwatch_test::counts();
    let sum: i64 = survivors().iter().map(|s| s.bytes).sum();
    assert_eq!(
        sum, live.live_bytes as i64,
        "survivors add up to the live heap"
    );
}

fn the_cycle_peak_is_exact_on_one_thread() {
    let s0 = gc();
    let a = vec![0u8; 10_000];
    let b = vec![0u8; 5_000];
    drop(a);
    let c = vec![0u8; 1_000];
    drop((b, c));
    let s1 = gc();
    assert_eq!(s1.current_base, s0.current_base);
    assert_eq!(s1.cycle_peak, s0.current_base + 15_000);
    assert!(s1.peak >= s1.cycle_peak);
}

fn open_files_and_threads_are_counted() {
    let sample = memwatch_test::resources();
    if !cfg!(target_os = "linux") {
        assert_eq!(sample, None, "only Linux is supported");
        return;
    }
    let before = sample.expect("supported on Linux");
    let file = std::fs::File::open("Cargo.toml").unwrap();
    assert_eq!(
        memwatch_test::resources().unwrap().open_fds,
        before.open_fds + 1
    );
    drop(file);
    assert_eq!(
        memwatch_test::resources().unwrap().open_fds,
        before.open_fds
    );

    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || rx.recv().ok());
    assert_eq!(
        memwatch_test::resources().unwrap().threads,
        before.threads + 1
    );
    drop(tx);
    t.join().unwrap();
    assert_eq!(memwatch_test::resources().unwrap().threads, before.threads);
}

fn a_monitor_runs_cycles_on_a_timer_until_stopped() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let reg = on_stats(move |_| {
        c.fetch_add(1, Ordering::Relaxed);
    });
    let monitor = memwatch_test::Monitor::every(std::time::Duration::from_millis(2));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while calls.load(Ordering::Relaxed) < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the monitor did not run"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    monitor.stop();
    let after_stop = calls.load(Ordering::Relaxed);
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(reg.remove());
    assert_eq!(
        calls.load(Ordering::Relaxed),
        after_stop,
        "no cycle after stop"
    );
}

fn main() -> std::process::ExitCode {
    common::run(&[
        (
            "two_cycles_in_a_row_report_the_same_base",
            two_cycles_in_a_row_report_the_same_base,
        ),
        (
            "the_leak_event_fires_after_five_growing_cycles",
            the_leak_event_fires_after_five_growing_cycles,
        ),
        (
            "a_plateau_and_a_bounded_cache_raise_no_leak",
            a_plateau_and_a_bounded_cache_raise_no_leak,
        ),
        (
            "collectors_run_every_cycle_and_their_frees_count",
            collectors_run_every_cycle_and_their_frees_count,
        ),
        (
            "survivors_tell_a_leak_from_one_time_initialisation",
            survivors_tell_a_leak_from_one_time_initialisation,
        ),
        (
            "a_realloc_moves_the_block_to_the_current_cycle",
            a_realloc_moves_the_block_to_the_current_cycle,
        ),
        (
            "survivors_older_than_the_window_are_gathered",
            survivors_older_than_the_window_are_gathered,
        ),
        (
            "the_cycle_peak_is_exact_on_one_thread",
            the_cycle_peak_is_exact_on_one_thread,
        ),
        (
            "open_files_and_threads_are_counted",
            open_files_and_threads_are_counted,
        ),
        (
            "a_monitor_runs_cycles_on_a_timer_until_stopped",
            a_monitor_runs_cycles_on_a_timer_until_stopped,
        ),
    ])
}
