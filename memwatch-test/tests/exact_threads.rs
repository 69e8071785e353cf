//! Several threads allocate, zero-allocate, reallocate and free at every
//! alignment from 1 to 4096, freeing blocks other threads allocated; the
//! live counters are exact at each quiet point and end where they started.

use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, Layout};
use std::sync::{Arc, Barrier, Mutex};

use memwatch_test::{counts, Alloc};

mod common;

#[global_allocator]
static ALLOC: Alloc = Alloc::system();

const THREADS: usize = 4;
const OPS: usize = 20_000;
/// Bookkeeping is reserved up front so that it never allocates while counted.
const MAX_HELD: usize = 4096;

#[derive(Clone, Copy)]
struct Block {
    ptr: usize,
    layout: Layout,
    fill: u8,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn random_layout(rng: &mut Rng) -> Layout {
    let align = 1usize << rng.below(13); // 1..=4096
    let size = match rng.below(4) {
        0 => 1 + rng.below(16),
        1 => 1 + rng.below(256),
        2 => 1 + rng.below(4096),
        _ => 1 + rng.below(70_000),
    } as usize;
    Layout::from_size_align(size, align).unwrap()
}

fn check(b: &Block) {
    // SAFETY (test): the block is live and `layout.size()` bytes long.
    let bytes = unsafe { std::slice::from_raw_parts(b.ptr as *const u8, b.layout.size()) };
    assert!(bytes.iter().all(|&x| x == b.fill), "block contents lost");
    assert_eq!(b.ptr % b.layout.align(), 0, "misaligned block");
}

fn new_block(rng: &mut Rng, zeroed: bool) -> Block {
    let layout = random_layout(rng);
    // SAFETY (test): the layout has a non-zero size.
    let ptr = unsafe {
        if zeroed {
            alloc_zeroed(layout)
        } else {
            alloc(layout)
        }
    };
    assert!(!ptr.is_null());
    let fill = if zeroed { 0 } else { rng.next() as u8 };
    // SAFETY (test): freshly allocated with `layout`.
    unsafe { ptr.write_bytes(fill, layout.size()) };
    let b = Block {
        ptr: ptr as usize,
        layout,
        fill,
    };
    check(&b);
    b
}

fn free(b: Block) {
    check(&b);
    // SAFETY (test): allocated with this layout and not freed yet.
    unsafe { dealloc(b.ptr as *mut u8, b.layout) };
}

fn grow_or_shrink(rng: &mut Rng, b: &mut Block) {
    check(b);
    let new_size = 1 + rng.below(2 * b.layout.size() as u64 + 64) as usize;
    // SAFETY (test): the block is live with this layout; the size is non-zero.
    let ptr = unsafe { realloc(b.ptr as *mut u8, b.layout, new_size) };
    assert!(!ptr.is_null());
    let keep = b.layout.size().min(new_size);
    // SAFETY (test): the first `keep` bytes moved with the block.
    let moved = unsafe { std::slice::from_raw_parts(ptr, keep) };
    assert!(moved.iter().all(|&x| x == b.fill), "realloc lost contents");
    // SAFETY (test): the block now has `new_size` bytes.
    unsafe { ptr.write_bytes(b.fill, new_size) };
    b.ptr = ptr as usize;
    b.layout = Layout::from_size_align(new_size, b.layout.align()).unwrap();
}

fn held(blocks: &[Block]) -> (u64, u64) {
    let bytes = blocks.iter().map(|b| b.layout.size() as u64).sum();
    (bytes, blocks.len() as u64)
}

fn random_operations_on_many_threads_are_counted_exactly() {
    random_operations(false);
}

/// The same, with survivor tracking opened and closed at random on every
/// thread and some blocks tagged: blocks made plain and headered cross
/// threads, and are reallocated and freed on either side of a window.
fn random_operations_in_and_out_of_windows_are_counted_exactly() {
    random_operations(true);
}

fn random_operations(windows: bool) {
    let inboxes: Arc<Vec<Mutex<Vec<Block>>>> = Arc::new(
        (0..THREADS)
            .map(|_| Mutex::new(Vec::with_capacity(MAX_HELD)))
            .collect(),
    );
    let reports: Arc<Mutex<Vec<(u64, u64)>>> = Arc::new(Mutex::new(Vec::with_capacity(THREADS)));
    let barrier = Arc::new(Barrier::new(THREADS + 1));

    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (inboxes, reports, barrier) = (inboxes.clone(), reports.clone(), barrier.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((t as u64 + 1) * 0x1234_5678));
                let mut mine: Vec<Block> = Vec::with_capacity(MAX_HELD);
                let mut window = None;
                // Claim this thread's counters before the measurement starts.
                free(new_block(&mut rng, false));
                barrier.wait(); // 0: every thread has its counters
                barrier.wait(); // 1: start is measured

                for _ in 0..OPS {
                    if windows && rng.below(32) == 0 {
                        window = match window {
                            Some(w) => {
                                drop::<memwatch_test::SurvivorTracking>(w);
                                None
                            }
                            None => Some(memwatch_test::track_survivors()),
                        };
                    }
                    match rng.below(10) {
                        0 if windows && mine.len() < MAX_HELD => {
                            let b = memwatch_test::tag("Random", || new_block(&mut rng, false));
                            mine.push(b)
                        }
                        0..=2 if mine.len() < MAX_HELD => mine.push(new_block(&mut rng, false)),
                        3 if mine.len() < MAX_HELD => mine.push(new_block(&mut rng, true)),
                        4 | 5 if !mine.is_empty() => {
                            let i = rng.below(mine.len() as u64) as usize;
                            grow_or_shrink(&mut rng, &mut mine[i]);
                        }
                        6 | 7 if !mine.is_empty() => {
                            let i = rng.below(mine.len() as u64) as usize;
                            free(mine.swap_remove(i));
                        }
                        8 if !mine.is_empty() => {
                            // Hand a block to another thread, which frees it.
                            let to = (t + 1 + rng.below(THREADS as u64 - 1) as usize) % THREADS;
                            let i = rng.below(mine.len() as u64) as usize;
                            let mut inbox = inboxes[to].lock().unwrap();
                            if inbox.len() < MAX_HELD {
                                inbox.push(mine.swap_remove(i));
                            }
                        }
                        _ => {
                            let received: Vec<Block> = {
                                let mut inbox = inboxes[t].lock().unwrap();
                                let n = inbox.len().min(MAX_HELD - mine.len());
                                let start = inbox.len() - n;
                                // Reuse capacity: move without allocating.
                                let mut taken = std::mem::take(&mut mine);
                                taken.extend(inbox.drain(start..));
                                taken
                            };
                            mine = received;
                            // Free half of what we hold that came from others.
                            for _ in 0..mine.len() / 4 {
                                let i = rng.below(mine.len() as u64) as usize;
                                free(mine.swap_remove(i));
                            }
                        }
                    }
                }
                drop(window);
                barrier.wait(); // 2: no more handing over
                {
                    let mut inbox = inboxes[t].lock().unwrap();
                    for b in inbox.drain(..) {
                        free(b);
                    }
                }
                reports.lock().unwrap().push(held(&mine));
                barrier.wait(); // 3: quiet, everything held is reported
                barrier.wait(); // 4: main has checked
                for b in mine.drain(..) {
                    free(b);
                }
                barrier.wait(); // 5: all freed
                barrier.wait(); // 6: main has checked
            })
        })
        .collect();

    barrier.wait(); // 0
    let start = counts(); // every worker waits at 1: a quiet point
    barrier.wait(); // 1
    barrier.wait(); // 2
    barrier.wait(); // 3
    let middle = counts();
    let (bytes, blocks): (u64, u64) = reports
        .lock()
        .unwrap()
        .iter()
        .fold((0, 0), |acc, r| (acc.0 + r.0, acc.1 + r.1));
    assert!(
        blocks > 0,
        "the workload should hold blocks at the quiet point"
    );
    assert_eq!(middle.live_bytes - start.live_bytes, bytes, "live bytes");
    assert_eq!(
        middle.live_blocks - start.live_blocks,
        blocks,
        "live blocks"
    );
    barrier.wait(); // 4
    barrier.wait(); // 5
    let end = counts();
    barrier.wait(); // 6
    for h in handles {
        h.join().unwrap();
    }

    assert_eq!(end.live_bytes, start.live_bytes, "live bytes back to start");
    assert_eq!(
        end.live_blocks, start.live_blocks,
        "live blocks back to start"
    );
    let allocated = end.allocations - start.allocations;
    let freed = end.frees - start.frees;
    assert_eq!(allocated, freed);
    assert!(
        allocated > (THREADS * OPS / 5) as u64,
        "{allocated} allocations"
    );
    assert_eq!(
        end.bytes_allocated - start.bytes_allocated,
        end.bytes_freed - start.bytes_freed
    );
}

/// Threads come and go: each exiting thread gives its counters back for
/// reuse, and what it frees while exiting (its thread-locals) is still
/// counted. Blocks cross in both directions.
fn threads_that_exit_keep_the_counts_exact() {
    let mut from_main: Vec<Box<[u8; 40]>> = (0..200).map(|_| Box::new([1; 40])).collect();
    let mut kept: Vec<Box<[u8; 24]>> = Vec::with_capacity(400);
    let start = counts();
    for _ in 0..200 {
        let given = from_main.pop().unwrap();
        let made = std::thread::spawn(move || {
            thread_local! {
                // Freed during the thread's teardown.
                static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
            }
            SCRATCH.with(|s| s.borrow_mut().extend_from_slice(&[0; 100]));
            drop(given);
            [Box::new([2u8; 24]), Box::new([3u8; 24])]
        })
        .join()
        .unwrap();
        kept.extend(made);
    }
    let end = counts();
    assert_eq!(kept.len(), 400);
    // 200 blocks of 40 bytes freed, 400 blocks of 24 bytes kept, and
    // nothing else left behind by 200 threads.
    assert_eq!(
        end.live_blocks as i64 - start.live_blocks as i64,
        400 - 200,
        "live blocks"
    );
    assert_eq!(
        end.live_bytes as i64 - start.live_bytes as i64,
        400 * 24 - 200 * 40,
        "live bytes"
    );
}

/// Many threads live at once, under tags, then all exit: their counters
/// move to the shared slot, the counts stay exact, and readers no longer
/// sum a slot per thread that is gone.
fn threads_that_exit_together_are_folded_and_stay_exact() {
    const N: usize = 64;
    let mut from_main: Vec<Box<[u8; 40]>> = (0..N).map(|_| Box::new([1; 40])).collect();
    let start_tags = memwatch_test::HeapDiff::new();
    let barrier = Arc::new(Barrier::new(N));
    let mut kept: Vec<Box<[u8; 24]>> = Vec::with_capacity(N);
    let start = counts();
    let handles: Vec<_> = (0..N)
        .map(|_| {
            let given = from_main.pop().unwrap();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let made = memwatch_test::tag("Folded", || Box::new([2u8; 24]));
                drop(given);
                barrier.wait();
                made
            })
        })
        .collect();
    for h in handles {
        kept.push(h.join().unwrap());
    }
    let end = counts();
    assert_eq!(
        end.live_blocks as i64 - start.live_blocks as i64,
        0,
        "{N} kept, {N} freed"
    );
    assert_eq!(
        end.live_bytes as i64 - start.live_bytes as i64,
        (N * 24) as i64 - (N * 40) as i64
    );
    let diff = start_tags.end();
    let row = diff
        .change
        .details
        .iter()
        .find(|r| r.what == "Folded")
        .expect("the tag's row survives its threads");
    assert_eq!((row.allocated, row.size_bytes), (N as u64, (N * 24) as i64));
    assert!(
        memwatch_test::__private::slots_summed_for_tests() <= 4,
        "{} slots summed after {N} threads exited",
        memwatch_test::__private::slots_summed_for_tests()
    );
    drop(kept);
}

fn main() -> std::process::ExitCode {
    common::run(&[
        (
            "random_operations_on_many_threads_are_counted_exactly",
            random_operations_on_many_threads_are_counted_exactly,
        ),
        (
            "random_operations_in_and_out_of_windows_are_counted_exactly",
            random_operations_in_and_out_of_windows_are_counted_exactly,
        ),
        (
            "threads_that_exit_keep_the_counts_exact",
            threads_that_exit_keep_the_counts_exact,
        ),
        (
            "threads_that_exit_together_are_folded_and_stay_exact",
            threads_that_exit_together_are_folded_and_stay_exact,
        ),
    ])
}
