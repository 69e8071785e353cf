//! HeapDiff: per-tag rows, frees on other threads, memwatch's JSON shape.

mod common;

use memwatch_test::{tag, Alloc, HeapDiff};

#[global_allocator]
static ALLOC: Alloc = Alloc::system();

fn row<'a>(diff: &'a memwatch_test::Diff, what: &str) -> &'a memwatch_test::DiffRow {
    diff.change
        .details
        .iter()
        .find(|r| r.what == what)
        .unwrap_or_else(|| panic!("no row {what} in {diff}"))
}

fn frees_on_another_thread_are_credited_to_the_tag() {
    let hd = HeapDiff::new();
    let mut blocks: Vec<Box<[u8; 100]>> =
        tag("Producer", || (0..10).map(|_| Box::new([7; 100])).collect());
    let given: Vec<_> = blocks.drain(..4).collect();
    // The other thread frees four Producer blocks and keeps three of its own.
    let kept = std::thread::spawn(move || {
        drop(given);
        tag("Worker", || vec![Box::new(1u32), Box::new(2), Box::new(3)])
    })
    .join()
    .unwrap();
    let diff = hd.end();

    let p = row(&diff, "Producer");
    // 10 boxes + the Vec that collects them, 4 boxes freed elsewhere.
    assert_eq!((p.allocated, p.freed), (11, 4));
    assert_eq!(p.size_bytes, 600 + 10 * 8);
    let w = row(&diff, "Worker");
    assert_eq!((w.allocated, w.freed, w.size_bytes), (4, 0, 12 + 3 * 8));
    assert!(diff.change.allocated_blocks >= 15);
    assert_eq!(
        diff.change.allocated_blocks,
        diff.change.details.iter().map(|r| r.allocated).sum::<u64>()
    );
    assert_eq!(
        diff.after.size_bytes as i64 - diff.before.size_bytes as i64,
        diff.change.size_bytes
    );
    drop((blocks, kept));
}

fn a_block_keeps_its_tag_through_realloc_and_free_outside_the_tag() {
    let mut v: Vec<u8> = tag("Buffer", || Vec::with_capacity(16));
    let hd = HeapDiff::new();
    v.reserve_exact(1000); // untagged code grows a Buffer block
    let diff = hd.end();
    let b = row(&diff, "Buffer");
    assert_eq!((b.allocated, b.freed, b.size_bytes), (0, 0, 1000 - 16));

    let hd = HeapDiff::new();
    drop(v);
    let diff = hd.end();
    let b = row(&diff, "Buffer");
    assert_eq!((b.allocated, b.freed, b.size_bytes), (0, 1, -1000));
    assert_eq!(b.size, "-1000 bytes");
}

fn the_json_has_memwatchs_shape() {
    let hd = HeapDiff::new();
    let kept = tag("LeakingClass", || {
        (0..1000).map(|_| Box::new([0u8; 240])).collect::<Vec<_>>()
    });
    let diff = hd.end();
    let json = serde_json::to_value(&diff).unwrap();
    for end in ["before", "after"] {
        for key in ["blocks", "size_bytes", "size"] {
            assert!(json[end].get(key).is_some(), "{end}.{key} missing: {json}");
        }
    }
    let change = &json["change"];
    for key in [
        "size_bytes",
        "size",
        "freed_blocks",
        "allocated_blocks",
        "details",
    ] {
        assert!(change.get(key).is_some(), "change.{key} missing");
    }
    let first = &change["details"][0];
    assert_eq!(first["what"], "LeakingClass");
    assert_eq!(first["+"], 1001);
    assert_eq!(first["-"], 0);
    assert_eq!(first["size_bytes"], 240_000 + 8 * 1000);
    assert_eq!(first["size"], "242.19 kb");
    drop(kept);
}

fn a_heap_diff_is_not_a_collection_cycle() {
    let n = memwatch_test::gc().num_cycles;
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = calls.clone();
    let reg = memwatch_test::on_stats(move |_| {
        c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    });
    let diff = HeapDiff::new().end();
    assert!(reg.remove());
    assert_eq!(calls.load(std::sync::atomic::Ordering::Relaxed), 0);
    assert_eq!(memwatch_test::gc().num_cycles, n + 1);
    // Nothing happened in between: no row, no change.
    assert_eq!(diff.change.size_bytes, 0, "{diff}");
    assert!(diff.change.details.is_empty(), "{diff}");
}

fn the_display_table_lists_each_tag() {
    let hd = HeapDiff::new();
    let kept = tag("Table", || vec![0u8; 2048]);
    let text = hd.end().to_string();
    assert!(text.starts_with("heap: "), "{text}");
    assert!(text.contains("Table"), "{text}");
    assert!(text.contains("2.00 kb"), "{text}");
    drop(kept);
}

fn main() -> std::process::ExitCode {
    common::run(&[
        (
            "frees_on_another_thread_are_credited_to_the_tag",
            frees_on_another_thread_are_credited_to_the_tag,
        ),
        (
            "a_block_keeps_its_tag_through_realloc_and_free_outside_the_tag",
            a_block_keeps_its_tag_through_realloc_and_free_outside_the_tag,
        ),
        ("the_json_has_memwatchs_shape", the_json_has_memwatchs_shape),
        (
            "a_heap_diff_is_not_a_collection_cycle",
            a_heap_diff_is_not_a_collection_cycle,
        ),
        (
            "the_display_table_lists_each_tag",
            the_display_table_lists_each_tag,
        ),
    ])
}
