use memwatch_test::leak_test;

#[leak_test(iterations = 50, duration = "2s")]
fn soak_with_iterations() {}

fn main() {}
