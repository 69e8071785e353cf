//! The epoch counter wraps after 2^25 collection cycles: the wrap must
//! leave the flags (site capture, DHAT, windows) alone and keep survivors
//! numbered by cycle. The epoch is moved close to the wrap instead of
//! running 2^25 cycles.

#[global_allocator]
static ALLOC: memwatch_test::Alloc = memwatch_test::Alloc::system();

#[test]
fn survivors_and_modes_hold_across_the_wrap() {
    let _tracking = memwatch_test::track_survivors();
    memwatch_test::gc();
    let period = memwatch_test::__private::epoch_period_for_tests();
    assert_eq!(period, 1 << 25);
    memwatch_test::__private::set_epoch_for_tests(period - 4);
    // Made in a cycle of its own, so that it never moves to the others.
    // (Blocks made before the jump carry epochs the wrap comes back to, as
    // a block alive for 2^25 cycles would: none of them is freed here.)
    let mut kept = Vec::with_capacity(10);
    memwatch_test::gc();
    for _ in 0..10 {
        kept.push(Box::new(7u64));
        memwatch_test::gc();
    }
    assert_eq!(
        memwatch_test::__private::modes_for_tests(),
        0,
        "the wrap carried into the mode bits"
    );
    let survivors = memwatch_test::survivors();
    let last: Vec<_> = survivors.iter().rev().take(10).collect();
    for (k, s) in last.iter().enumerate() {
        assert_eq!(
            (s.blocks, s.bytes),
            (1, 8),
            "cycle {}: {survivors:?}",
            s.cycle
        );
        if k > 0 {
            assert_eq!(s.cycle + 1, last[k - 1].cycle, "cycles stay consecutive");
        }
    }
    drop(kept);
    let after = memwatch_test::survivors();
    assert!(
        after.iter().rev().take(10).all(|s| s.blocks == 0),
        "freed blocks leave their cycles across the wrap: {after:?}"
    );
}
