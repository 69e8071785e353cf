use memwatch_test::leak_test;

#[leak_test(snapshot = "my snapshot!")]
fn named() {}

fn main() {}
