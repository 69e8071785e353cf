//! Headers only in windows. Outside survivor tracking, tags, leak tests and
//! capture, a block is the inner allocator's block for the caller's layout,
//! with no byte added; inside, it carries the 16-byte header that credits
//! its free to its cycle and tag. Blocks cross the boundary both ways
//! (made on one side, freed or reallocated on the other, on any thread)
//! and every count stays exact.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use memwatch_test::__private::headered_for_tests;
use memwatch_test::{counts, gc, survivors, tag, track_survivors, Alloc, HeapDiff};

mod common;

/// `System`, noting the last layout this thread asked of it.
struct Probe;

thread_local! {
    static ASKED: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

fn note(size: usize, align: usize) {
    let _ = ASKED.try_with(|a| a.set((size, align)));
}

/// The `(size, align)` this thread last asked of the inner allocator.
fn asked() -> (usize, usize) {
    ASKED.with(|a| a.get())
}

// SAFETY: forwards each call to `System` unchanged.
unsafe impl GlobalAlloc for Probe {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size(), layout.align());
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size, layout.align());
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Alloc<Probe> = Alloc::new(Probe);

/// Live `(blocks, bytes)` now.
fn live() -> (u64, u64) {
    let c = counts();
    (c.live_blocks, c.live_bytes)
}

fn survivors_of(cycle: u64) -> (i64, i64) {
    survivors()
        .iter()
        .find(|s| s.cycle == cycle)
        .map_or((0, 0), |s| (s.blocks, s.bytes))
}

fn outside_windows_a_block_is_the_inner_allocators_as_asked() {
    let before = live();
    let b = Box::new([7u8; 24]);
    assert_eq!(asked(), (24, 1), "the caller's layout, nothing added");
    assert!(!headered_for_tests(b.as_ptr()));
    assert_eq!(live(), (before.0 + 1, before.1 + 24));
    let v: Vec<u64> = Vec::with_capacity(5);
    assert_eq!(asked(), (40, 8));
    assert!(!headered_for_tests(v.as_ptr().cast()));
    drop((b, v));
    assert_eq!(live(), before);
}

fn a_window_a_tag_each_give_a_header() {
    let before = live();
    let tracking = track_survivors();
    let b = Box::new([7u8; 24]);
    assert_eq!(asked(), (24 + 16, 16), "16 bytes of header, 16-aligned");
    assert!(headered_for_tests(b.as_ptr()));
    drop(tracking);
    let plain = Box::new([7u8; 24]);
    assert!(!headered_for_tests(plain.as_ptr()), "the window closed");
    let tagged = tag("Tagged", || Box::new([7u8; 24]));
    assert!(
        headered_for_tests(tagged.as_ptr()),
        "a tag needs the header"
    );
    // Alignments above 16: the header takes `align` bytes.
    let big = Layout::from_size_align(100, 64).unwrap();
    let _tracking = track_survivors();
    // SAFETY: a valid layout of non-zero size; freed below with it.
    let p = unsafe { std::alloc::alloc(big) };
    assert_eq!(asked(), (164, 64));
    assert_eq!(p as usize % 64, 0);
    assert!(headered_for_tests(p));
    // SAFETY: allocated above with `big`.
    unsafe { std::alloc::dealloc(p, big) };
    drop((b, plain, tagged));
    assert_eq!(live(), before);
}

fn windows_nest_and_close_with_the_last() {
    let outer = track_survivors();
    let inner = track_survivors();
    drop(outer);
    let b = Box::new(1u64);
    assert!(headered_for_tests(&*b as *const u64 as *const u8));
    drop(inner);
    let c = Box::new(1u64);
    assert!(!headered_for_tests(&*c as *const u64 as *const u8));
}

fn frees_across_the_boundary_are_exact_from_any_thread() {
    let start = live();
    // Made outside, freed inside, on another thread.
    let before_window: Vec<Box<[u8; 40]>> = (0..10).map(|_| Box::new([1; 40])).collect();
    let tracking = track_survivors();
    let first = gc().num_cycles + 1;
    let made_inside: Vec<Box<[u8; 56]>> = (0..7).map(|_| Box::new([2; 56])).collect();
    assert!(made_inside.iter().all(|b| headered_for_tests(b.as_ptr())));
    gc();
    assert_eq!(
        survivors_of(first),
        (8, 7 * 56 + 7 * 8),
        "the boxes and the Vec that holds them"
    );
    std::thread::spawn(move || drop(before_window))
        .join()
        .unwrap();
    assert_eq!(
        survivors_of(first),
        (8, 7 * 56 + 7 * 8),
        "frees of blocks made before the window leave its cycles alone"
    );
    assert_eq!(live(), (start.0 + 8, start.1 + 7 * 56 + 7 * 8));
    drop(tracking);
    // Made inside, freed outside, on another thread: credited to its cycle.
    std::thread::spawn(move || drop(made_inside))
        .join()
        .unwrap();
    assert_eq!(survivors_of(first), (0, 0));
    assert_eq!(live(), start);
}

fn a_heap_diff_shows_frees_of_blocks_made_before_it() {
    let row = |diff: &memwatch_test::Diff, what: &str| {
        diff.change
            .details
            .iter()
            .find(|r| r.what == what)
            .map(|r| (r.allocated, r.freed, r.size_bytes))
    };
    // Tagged blocks carry their tag: freed on another thread, still theirs.
    let made_before: Vec<Box<u64>> = tag("Before", || (0..5).map(Box::new).collect());
    let hd = HeapDiff::new();
    std::thread::spawn(move || drop(made_before))
        .join()
        .unwrap();
    let diff = hd.end();
    assert_eq!(row(&diff, "Before"), Some((0, 6, -(5 * 8 + 5 * 8))));
    // Plain blocks are untagged, and their frees show there.
    let plain_before: Vec<Box<u64>> = (0..3).map(Box::new).collect();
    let hd = HeapDiff::new();
    drop(plain_before);
    let diff = hd.end();
    assert_eq!(row(&diff, "(untagged)"), Some((0, 4, -(3 * 8 + 3 * 8))));
}

fn a_plain_block_reallocated_in_a_window_joins_the_current_cycle() {
    let mut v: Vec<u8> = Vec::with_capacity(10);
    v.extend_from_slice(b"0123456789");
    assert!(!headered_for_tests(v.as_ptr()));
    let start = live();
    let _tracking = track_survivors();
    gc();
    v.reserve_exact(1000); // realloc 10 -> 1010
    assert!(headered_for_tests(v.as_ptr()));
    assert_eq!(&v[..], b"0123456789", "the bytes moved with it");
    let cycle = gc().num_cycles;
    assert_eq!(survivors_of(cycle), (1, 1010));
    assert_eq!(live(), (start.0, start.1 + 1000));
    drop(v);
    assert_eq!(survivors_of(cycle), (0, 0));
    assert_eq!(live(), (start.0 - 1, start.1 - 10));
}

fn a_headered_block_reallocated_outside_windows_stays_exact() {
    let tracking = track_survivors();
    let mut v: Vec<u8> = Vec::with_capacity(10);
    v.extend_from_slice(b"abc");
    drop(tracking);
    let start = live();
    for n in [100usize, 10_000, 50] {
        v.reserve_exact(n.saturating_sub(v.len()));
        v.shrink_to(n);
        assert!(headered_for_tests(v.as_ptr()), "it keeps its header");
        assert_eq!(&v[..3], b"abc");
        assert_eq!(live(), (start.0, start.1 - 10 + v.capacity() as u64));
    }
    drop(v);
    assert_eq!(live(), (start.0 - 1, start.1 - 10));
}

/// In a process the harness starts to run one test (`MEMWATCH_CHILD`),
/// every block is headered from the first, with or without a window, and
/// no free asks the mark map; the counts stay exact across threads and
/// reallocs. Run as this binary started again with the variable set.
fn a_test_process_headers_every_block() {
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .env("MEMWATCH_CHILD", "unused-result-file")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the child failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            "every block headered"
        } else {
            "blocks plain outside windows"
        }
    );
}

/// The child's side of [`a_test_process_headers_every_block`].
fn test_process() {
    let start = live();
    let b = Box::new([7u8; 24]);
    let always = memwatch_test::__private::every_block_headered_for_tests();
    assert_eq!(headered_for_tests(b.as_ptr()), always);
    if always {
        assert_eq!(asked(), (24 + 16, 16), "headered without a window");
    }
    let mut v: Vec<u8> = Vec::with_capacity(10);
    v.extend_from_slice(b"abc");
    v.reserve_exact(5000);
    assert_eq!(&v[..], b"abc");
    let moved: Vec<Box<u64>> = (0..100).map(Box::new).collect();
    std::thread::spawn(move || drop(moved)).join().unwrap();
    assert_eq!(live(), (start.0 + 2, start.1 + 24 + 5003));
    drop((b, v));
    assert_eq!(live(), start);
    println!(
        "{}",
        if always {
            "every block headered"
        } else {
            "blocks plain outside windows"
        }
    );
}

fn main() -> std::process::ExitCode {
    if std::env::var_os("MEMWATCH_CHILD").is_some() {
        test_process();
        return std::process::ExitCode::SUCCESS;
    }
    common::run(&[
        (
            "a_test_process_headers_every_block",
            a_test_process_headers_every_block,
        ),
        (
            "outside_windows_a_block_is_the_inner_allocators_as_asked",
            outside_windows_a_block_is_the_inner_allocators_as_asked,
        ),
        (
            "a_window_a_tag_each_give_a_header",
            a_window_a_tag_each_give_a_header,
        ),
        (
            "windows_nest_and_close_with_the_last",
            windows_nest_and_close_with_the_last,
        ),
        (
            "frees_across_the_boundary_are_exact_from_any_thread",
            frees_across_the_boundary_are_exact_from_any_thread,
        ),
        (
            "a_heap_diff_shows_frees_of_blocks_made_before_it",
            a_heap_diff_shows_frees_of_blocks_made_before_it,
        ),
        (
            "a_plain_block_reallocated_in_a_window_joins_the_current_cycle",
            a_plain_block_reallocated_in_a_window_joins_the_current_cycle,
        ),
        (
            "a_headered_block_reallocated_outside_windows_stays_exact",
            a_headered_block_reallocated_outside_windows_stays_exact,
        ),
    ])
}
