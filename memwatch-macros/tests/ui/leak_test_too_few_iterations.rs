use memwatch_test::leak_test;

#[leak_test(iterations = 1)]
fn once() {}

fn main() {}
