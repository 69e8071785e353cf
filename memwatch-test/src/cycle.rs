//! Collection cycles: `gc()`, the collectors it runs, the `stats` and `leak`
//! callbacks it calls, and the survivors of each cycle.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use serde::Serialize;

use crate::allocator::{self, untracked, EPOCH_WINDOW};
use crate::detector::{Detector, Leak, LeakRule};
use crate::stats::{counts, Stats, StatsTracker};

type Collector = Arc<dyn Fn() + Send + Sync>;
type StatsFn = Arc<dyn Fn(&Stats) + Send + Sync>;
type LeakFn = Arc<dyn Fn(&Leak) + Send + Sync>;

/// A list of callbacks with the ids that remove them.
struct Callbacks<F> {
    list: Mutex<Vec<(u64, F)>>,
}

impl<F: Clone> Callbacks<F> {
    const fn new() -> Self {
        Callbacks {
            list: Mutex::new(Vec::new()),
        }
    }

    fn add(&self, f: F) -> Registration {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        untracked(|| lock(&self.list).push((id, f)));
        Registration { id }
    }

    fn remove(&self, id: u64) -> bool {
        let mut list = lock(&self.list);
        let before = list.len();
        list.retain(|(i, _)| *i != id);
        list.len() != before
    }

    /// A copy of the list, so that callbacks run without the lock held and
    /// may register, remove or call `gc()` themselves.
    fn snapshot(&self) -> Vec<F> {
        untracked(|| lock(&self.list).iter().map(|(_, f)| f.clone()).collect())
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static COLLECTORS: Callbacks<Collector> = Callbacks::new();
static ON_STATS: Callbacks<StatsFn> = Callbacks::new();
static ON_LEAK: Callbacks<LeakFn> = Callbacks::new();

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A registered callback; [`Registration::remove`] takes it back out.
///
/// ```
/// let reg = memwatch_test::on_stats(|s| println!("{} bytes", s.current_base));
/// assert!(reg.remove());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "dropping a Registration keeps the callback; call .remove() to take it out"]
pub struct Registration {
    id: u64,
}

impl Registration {
    /// Unregisters the callback. Returns `false` if it was already removed.
    /// A cycle already running may still call it once.
    pub fn remove(self) -> bool {
        COLLECTORS.remove(self.id) || ON_STATS.remove(self.id) || ON_LEAK.remove(self.id)
    }
}

/// Registers a collector, run at the start of every collection cycle (and of
/// each end of a [`HeapDiff`](crate::HeapDiff)): the place to flush
/// `crossbeam_epoch`, run a GC crate's collection or clear a cache that is
/// not part of what you measure. Collectors run in the order registered,
/// and their allocations and frees are counted as the program's.
///
/// ```
/// use std::sync::Mutex;
/// static CACHE: Mutex<Vec<String>> = Mutex::new(Vec::new());
///
/// let _ = memwatch_test::on_collect(|| CACHE.lock().unwrap().clear());
/// ```
pub fn on_collect(f: impl Fn() + Send + Sync + 'static) -> Registration {
    COLLECTORS.add(Arc::new(f))
}

/// Registers a callback called with the [`Stats`] after every collection
/// cycle: node-memwatch's `stats` event. Its own allocations are not counted.
///
/// ```
/// let _ = memwatch_test::on_stats(|stats| {
///     eprintln!("cycle {}: {} bytes live", stats.num_cycles, stats.current_base);
/// });
/// memwatch_test::gc();
/// ```
pub fn on_stats(f: impl Fn(&Stats) + Send + Sync + 'static) -> Registration {
    ON_STATS.add(Arc::new(f))
}

/// Registers a callback called when the [`LeakRule`] fires after a cycle:
/// node-memwatch's `leak` event. Its own allocations are not counted.
///
/// ```
/// let _ = memwatch_test::on_leak(|leak| eprintln!("possible leak: {}", leak.reason));
/// ```
pub fn on_leak(f: impl Fn(&Leak) + Send + Sync + 'static) -> Registration {
    ON_LEAK.add(Arc::new(f))
}

/// Live blocks and bytes allocated in one collection cycle.
///
/// ```
/// for s in memwatch_test::survivors() {
///     println!("cycle {}: {} blocks, {} bytes still live", s.cycle, s.blocks, s.bytes);
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CycleSurvivors {
    /// The cycle the blocks were allocated in. Cycle `n` is the work between
    /// the `(n - 1)`th collection and the `n`th. `0` gathers the rest: blocks
    /// of cycles older than the last 2048, and blocks allocated while
    /// survivors were not [tracked](track_survivors) (and under no tag).
    pub cycle: u64,
    /// Blocks allocated in that cycle and still live.
    pub blocks: i64,
    /// Their bytes (a realloc moves a block to the cycle it happened in).
    pub bytes: i64,
}

/// Everything a collection cycle updates, behind one lock.
struct Engine {
    stats: StatsTracker,
    detector: Detector,
    /// For each ring bucket, what epochs that left the window still hold in
    /// it; subtracted so the bucket reads as its current epoch alone.
    carry: [(i64, i64); EPOCH_WINDOW],
    /// Live bytes and blocks of epochs that left the window, as of the fold.
    folded: (i64, i64),
    last_live: u64,
    /// The collection cycle in progress, counted without wrapping: the
    /// epoch is this cycle modulo 2^25.
    cycle: u64,
}

static ENGINE: Mutex<Engine> = Mutex::new(Engine {
    stats: StatsTracker::new(),
    detector: Detector::new(LeakRule::DEFAULT),
    carry: [(0, 0); EPOCH_WINDOW],
    folded: (0, 0),
    last_live: 0,
    cycle: 1,
});

/// Sets the rule the `leak` event follows, and starts its count again.
///
/// ```
/// memwatch_test::set_leak_rule(memwatch_test::LeakRule {
///     cycles: 3,
///     min_bytes: 1024,
///     min_blocks: 4,
///     warmup: 10,
/// });
/// ```
pub fn set_leak_rule(rule: LeakRule) {
    lock(&ENGINE).detector.set_rule(rule);
}

/// Runs the registered collectors, outside of any lock.
pub(crate) fn run_collectors() {
    for collect in COLLECTORS.snapshot() {
        collect();
    }
}

/// Runs one collection cycle and returns the heap statistics after it:
/// node-memwatch's `memwatch.gc()`.
///
/// A cycle runs the [collectors](on_collect), samples the heap, updates the
/// statistics and the [leak rule](LeakRule), closes the cycle (blocks
/// allocated from now on belong to the next one), then calls the
/// [`on_stats`] and, when the rule fires, the [`on_leak`] callbacks. Call it
/// at the program's quiet points: in a test after each repetition, in a
/// service between requests. The engine's own work is not counted, so two
/// calls in a row report the same `current_base`.
///
/// ```
/// #[global_allocator]
/// static ALLOC: memwatch_test::Alloc = memwatch_test::Alloc::system();
///
/// fn main() {
///     let a = memwatch_test::gc();
///     let b = memwatch_test::gc();
///     assert_eq!(a.current_base, b.current_base);
///     assert_eq!(b.num_cycles, a.num_cycles + 1);
/// }
/// ```
pub fn gc() -> Stats {
    run_collectors();
    let (stats, leak) = untracked(|| {
        let mut engine = lock(&ENGINE);
        let sample = counts();
        let epoch = allocator::epoch();
        let cycle_peak = engine.last_live + allocator::peak_rise(epoch);
        let stats = engine.stats.record(&sample, cycle_peak);
        let leak = engine.detector.observe(
            stats.num_cycles,
            sample.live_bytes,
            sample.live_blocks,
            SystemTime::now(),
        );
        engine.last_live = sample.live_bytes;
        let next = allocator::advance_epoch();
        engine.cycle += 1;
        engine.fold(next);
        (stats, leak)
    });
    untracked(|| {
        for f in ON_STATS.snapshot() {
            f(&stats);
        }
        if let Some(leak) = &leak {
            for f in ON_LEAK.snapshot() {
                f(leak);
            }
        }
    });
    stats
}

impl Engine {
    /// Epoch `next` takes over the ring bucket of epoch `next - WINDOW`:
    /// what that epoch still holds moves to `folded`.
    fn fold(&mut self, next: u32) {
        let b = next as usize % EPOCH_WINDOW;
        let (bytes, blocks) = allocator::bucket_totals(next);
        let (cb, cn) = self.carry[b];
        self.folded.0 += bytes - cb;
        self.folded.1 += blocks - cn;
        self.carry[b] = (bytes, blocks);
    }

    fn survivors(&self) -> Vec<CycleSurvivors> {
        // Cycles are numbered without wrapping; the epoch of cycle `c` is
        // found back from the current one, across the epoch's wrap.
        let now_epoch = allocator::epoch();
        let now = self.cycle;
        let epoch_of = |c: u64| allocator::epoch_before(now_epoch, (now - c) as u32);
        let done = now.saturating_sub(1);
        let first = now.saturating_sub(EPOCH_WINDOW as u64 - 1).max(1);
        let mut out = Vec::with_capacity(EPOCH_WINDOW);
        // Blocks of epochs older than the window (folded, plus the frees
        // that came after the fold: the slots' `old` counters are in the
        // totals but in no bucket), and blocks made while survivors were
        // not tracked, which are in no bucket either.
        let totals = allocator::totals();
        let in_window: (i64, i64) = (first..=now).fold((0, 0), |acc, c| {
            let (b, n) = self.bucket(epoch_of(c));
            (acc.0 + b, acc.1 + n)
        });
        let rest = CycleSurvivors {
            cycle: 0,
            bytes: totals.live_bytes - in_window.0,
            blocks: totals.live_blocks - in_window.1,
        };
        if done >= EPOCH_WINDOW as u64 || rest.bytes != 0 || rest.blocks != 0 {
            out.push(rest);
        }
        for c in first..=done {
            let (bytes, blocks) = self.bucket(epoch_of(c));
            out.push(CycleSurvivors {
                cycle: c,
                blocks,
                bytes,
            });
        }
        out
    }

    fn bucket(&self, epoch: u32) -> (i64, i64) {
        let (bytes, blocks) = allocator::bucket_totals(epoch);
        let (cb, cn) = self.carry[epoch as usize % EPOCH_WINDOW];
        (bytes - cb, blocks - cn)
    }
}

/// Keeps survivors by cycle while alive: see [`track_survivors`].
///
/// ```
/// let tracking = memwatch_test::track_survivors();
/// drop(tracking); // blocks allocated from now on are no longer stamped
/// ```
#[derive(Debug)]
#[must_use = "survivors are tracked only while the guard is alive"]
pub struct SurvivorTracking {
    _window: allocator::Window,
}

/// Stamps every block allocated from now on with its collection cycle,
/// until the guard is dropped, so that [`survivors`] can tell which cycle
/// each live block comes from.
///
/// A stamp is a 16-byte header in front of the block. Without tracking
/// (nor a [tag](crate::tag), a leak test or a capture), blocks carry
/// nothing: a service that only wants [`gc`], its stats and the leak rule
/// pays for counting alone. Blocks that carry nothing show in
/// [`survivors`] under cycle `0`; blocks made under a tag carry their
/// cycle, tracked or not. Guards nest: tracking stops when the last one
/// goes. Leak tests track survivors by themselves.
///
/// ```
/// #[global_allocator]
/// static ALLOC: memwatch_test::Alloc = memwatch_test::Alloc::system();
///
/// fn main() {
///     let _tracking = memwatch_test::track_survivors();
///     memwatch_test::gc();
///     let kept = Box::new(7u64);
///     memwatch_test::gc();
///     let last = *memwatch_test::survivors().last().unwrap();
///     assert_eq!((last.blocks, last.bytes), (1, 8));
///     drop(kept);
/// }
/// ```
pub fn track_survivors() -> SurvivorTracking {
    SurvivorTracking {
        _window: allocator::Window::open(),
    }
}

/// Survivors of each finished collection cycle: for every cycle `k` of the
/// last 2048, the blocks and bytes allocated in `k` that are still live now
/// (older cycles, and blocks made while survivors were not
/// [tracked](track_survivors), gathered in one entry with `cycle: 0`).
///
/// This is how a leak, which leaves survivors in every cycle, is told from
/// one-time initialisation, which leaves them in the first cycles only.
///
/// ```
/// #[global_allocator]
/// static ALLOC: memwatch_test::Alloc = memwatch_test::Alloc::system();
///
/// fn main() {
///     let _tracking = memwatch_test::track_survivors();
///     let mut kept = Vec::new();
///     for _ in 0..3 {
///         kept.push(Box::new(7u64));
///         memwatch_test::gc();
///     }
///     let survivors = memwatch_test::survivors();
///     let last = survivors.last().unwrap();
///     assert_eq!((last.blocks, last.bytes), (1, 8));
/// }
/// ```
pub fn survivors() -> Vec<CycleSurvivors> {
    untracked(|| lock(&ENGINE).survivors())
}
