use memwatch_test::leak_test;

#[leak_test(should_leak = 3)]
fn flag() {}

fn main() {}
