//! Leak tests of the examples: each leaky pattern is caught (they are
//! marked `should_leak`, so this suite passes), each fix is clean.

use std::sync::atomic::{AtomicU64, Ordering};

use memwatch_examples::{cache, config, tree};
use memwatch_test::leak_test;

#[leak_test(should_leak)]
fn rc_cycle_leaks() {
    let family = tree::LeakyNode::family("root");
    std::hint::black_box(&family.name);
}

#[leak_test]
fn weak_parent_is_clean() {
    let family = tree::Node::family("root");
    std::hint::black_box(&family.children.borrow()[0].name);
}

#[leak_test(should_leak)]
fn box_leak_per_call_leaks() {
    std::hint::black_box(config::leaky_settings().entries.len());
}

#[leak_test]
fn lazy_initialisation_is_clean() {
    std::hint::black_box(config::settings().entries.len());
}

/// A new page id on every call.
fn next_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[leak_test(should_leak)]
fn global_cache_that_grows_leaks() {
    std::hint::black_box(cache::leaky_render(next_id()));
}

#[leak_test]
fn bounded_lru_cache_is_clean() {
    std::hint::black_box(cache::render(next_id()));
}

memwatch_test::main!();
