//! `main!(alloc = ...)` counts on top of another allocator: verdicts and
//! figures are the same as over the system allocator.

use memwatch_test::leak_test;

#[leak_test(should_leak, snapshot = false)]
fn box_leak_is_caught_over_another_allocator() {
    std::hint::black_box(Box::leak(Box::new([0u8; 24])));
}

#[leak_test(snapshot = false)]
fn clean_work_is_clean_over_another_allocator() {
    std::hint::black_box((0..64).map(|i| i.to_string()).collect::<Vec<_>>());
}

memwatch_test::main!(alloc = std::alloc::System);
