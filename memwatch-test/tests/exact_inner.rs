//! `Alloc::new` over an inner allocator that keeps `GlobalAlloc`'s
//! contract and nothing more: it returns blocks aligned to exactly the
//! alignment asked for (never more, as `System` and mimalloc happen to),
//! and it fails now and then when told to. Every alignment from 1 to 4096,
//! every operation: the pointers handed out keep their alignment, the
//! bytes survive reallocs, the header is never misaligned (debug builds
//! check each access), and the counts are exact, failures included.

use std::alloc::{alloc, alloc_zeroed, dealloc, realloc, GlobalAlloc, Layout, System};
use std::cell::Cell;

use memwatch_test::{counts, track_survivors, Alloc, SurvivorTracking};

/// Returns blocks whose address is a multiple of the alignment asked for
/// and an odd multiple of it: aligned exactly, never by accident more.
struct ExactAlign;

thread_local! {
    /// Set: every third allocation on this thread fails.
    static FLAKY: Cell<bool> = const { Cell::new(false) };
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

fn fails_now() -> bool {
    FLAKY.with(|f| f.get())
        && CALLS.with(|c| {
            c.set(c.get() + 1);
            c.get() % 3 == 0
        })
}

/// The layout asked of `System`: room to move the block up by `align`.
fn backing(layout: Layout) -> Layout {
    Layout::from_size_align(layout.size() + layout.align(), layout.align() * 2).unwrap()
}

// SAFETY: each block is `layout.align()` bytes into a `System` block of
// `backing(layout)`, which is aligned to twice that: the block is aligned
// to `align` and lies inside it. `dealloc` recomputes the same offset from
// the same layout. `realloc` is `GlobalAlloc`'s default (alloc, copy,
// dealloc).
unsafe impl GlobalAlloc for ExactAlign {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if fails_now() {
            return std::ptr::null_mut();
        }
        // SAFETY: `backing` has a non-zero size.
        let base = unsafe { System.alloc(backing(layout)) };
        if base.is_null() {
            return base;
        }
        // SAFETY: `align` bytes into a block of `size + align` bytes.
        unsafe { base.add(layout.align()) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr.sub(layout.align()), backing(layout)) }
    }
}

#[global_allocator]
static ALLOC: Alloc<ExactAlign> = Alloc::new(ExactAlign);

fn fill(ptr: *mut u8, len: usize, byte: u8) {
    // SAFETY (test): `ptr` is a live block of at least `len` bytes.
    unsafe { ptr.write_bytes(byte, len) }
}

fn holds(ptr: *const u8, len: usize, byte: u8) -> bool {
    // SAFETY (test): `ptr` is a live block of at least `len` bytes.
    unsafe { std::slice::from_raw_parts(ptr, len) }
        .iter()
        .all(|&b| b == byte)
}

/// When survivors are tracked, by step (allocation, each realloc, free):
/// never, always, or every other step either way, so that blocks made
/// plain are reallocated and freed in a window and the other way round.
const WINDOW_PLANS: [fn(usize) -> bool; 4] = [|_| false, |_| true, |s| s % 2 == 0, |s| s % 2 == 1];

fn every_alignment_and_operation_keeps_alignment_bytes_and_counts() {
    for plan in WINDOW_PLANS {
        every_alignment_and_operation(plan);
    }
}

/// Opens or closes the window for `step` of `plan`.
fn window_for(plan: fn(usize) -> bool, step: usize, window: &mut Option<SurvivorTracking>) {
    if !plan(step) {
        *window = None;
    } else if window.is_none() {
        *window = Some(track_survivors());
    }
}

fn every_alignment_and_operation(plan: fn(usize) -> bool) {
    let before = counts();
    let mut window = None;
    for shift in 0..=12 {
        let align = 1usize << shift;
        // Under Miri, which checks every access and is slow at it, the
        // large sizes are left out; every alignment stays.
        let sizes: &[usize] = if cfg!(miri) {
            &[1, 7, 16, 17, 100]
        } else {
            &[1, 7, 16, 17, 100, 4096, 70_000]
        };
        for &size in sizes {
            let layout = Layout::from_size_align(size, align).unwrap();
            // SAFETY (test): non-zero sizes; each block freed once with
            // its layout.
            unsafe {
                window_for(plan, 0, &mut window);
                let p = alloc(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % align, 0, "align {align}");
                fill(p, size, 0xa5);
                let z = alloc_zeroed(layout);
                assert_eq!(z as usize % align, 0);
                assert!(holds(z, size, 0));
                let after = counts();
                assert_eq!(after.live_blocks - before.live_blocks, 2);
                assert_eq!(after.live_bytes - before.live_bytes, 2 * size as u64);
                let (mut p, mut current) = (p, layout);
                for (step, new_size) in [size * 3, 1, size].into_iter().enumerate() {
                    window_for(plan, step + 1, &mut window);
                    let q = realloc(p, current, new_size);
                    assert!(!q.is_null());
                    assert_eq!(q as usize % align, 0, "realloc keeps align {align}");
                    assert!(
                        holds(q, current.size().min(new_size), 0xa5),
                        "bytes survive"
                    );
                    current = Layout::from_size_align(new_size, align).unwrap();
                    fill(q, new_size, 0xa5);
                    let now = counts();
                    assert_eq!(now.live_blocks - before.live_blocks, 2);
                    assert_eq!(
                        now.live_bytes - before.live_bytes,
                        (size + new_size) as u64,
                        "align {align}, to {new_size}"
                    );
                    p = q;
                }
                window_for(plan, 4, &mut window);
                dealloc(p, current);
                dealloc(z, layout);
            }
            assert_eq!(counts().live_blocks, before.live_blocks);
            assert_eq!(counts().live_bytes, before.live_bytes);
        }
    }
}

fn failures_change_no_count_and_a_failed_realloc_keeps_the_block() {
    for plan in WINDOW_PLANS {
        failures_change_no_count(plan);
    }
}

fn failures_change_no_count(plan: fn(usize) -> bool) {
    let mut window = None;
    let mut kept = Vec::with_capacity(64);
    let before = counts();
    let layout = Layout::from_size_align(24, 8).unwrap();
    let mut failed = 0;
    FLAKY.with(|f| f.set(true));
    for step in 0..60 {
        window_for(plan, step, &mut window);
        // SAFETY (test): a non-zero size.
        let p = unsafe { alloc(layout) };
        if p.is_null() {
            failed += 1;
        } else {
            kept.push(p as usize);
        }
    }
    let grown = Layout::from_size_align(4000, 8).unwrap();
    let mut realloc_failed = 0;
    for (step, slot) in kept.iter_mut().enumerate() {
        window_for(plan, step + 1, &mut window);
        let p = *slot as *mut u8;
        fill(p, 24, 0x5a);
        // SAFETY (test): `p` is live with `layout`.
        let q = unsafe { realloc(p, layout, grown.size()) };
        if q.is_null() {
            realloc_failed += 1;
            assert!(holds(p, 24, 0x5a), "the old block is intact");
            // SAFETY (test): still live with `layout`; freed once.
            unsafe { dealloc(p, layout) };
        } else {
            assert!(holds(q, 24, 0x5a));
            // SAFETY (test): live with `grown`; freed once.
            unsafe { dealloc(q, grown) };
        }
        *slot = 0;
    }
    FLAKY.with(|f| f.set(false));
    drop(window);
    assert!(
        failed > 0 && realloc_failed > 0,
        "{failed} {realloc_failed}"
    );
    let after = counts();
    assert_eq!(after.live_blocks, before.live_blocks);
    assert_eq!(after.live_bytes, before.live_bytes);
    drop(kept);
}

fn main() {
    every_alignment_and_operation_keeps_alignment_bytes_and_counts();
    failures_change_no_count_and_a_failed_realloc_keeps_the_block();
    println!("exact_inner: ok");
}
