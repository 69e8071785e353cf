use memwatch_test::leak_test;

#[leak_test(iterations = 64, max_iterations = 32)]
fn budget_too_small() {}

fn main() {}
