use memwatch_test::leak_test;

#[leak_test(iterations = "ten")]
fn words() {}

fn main() {}
