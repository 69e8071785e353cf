use memwatch_test::leak_test;

#[leak_test(duration = "2s", time_limit = "5s")]
fn soak_with_a_budget() {}

fn main() {}
