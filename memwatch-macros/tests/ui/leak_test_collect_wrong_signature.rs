use memwatch_test::leak_test;

fn flush(_all: bool) {}

#[leak_test(collect = flush)]
fn needs_flush() {}

fn main() {}
