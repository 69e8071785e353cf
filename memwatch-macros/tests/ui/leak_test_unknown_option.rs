use memwatch_test::leak_test;

#[leak_test(iterationz = 5)]
fn typo() {}

fn main() {}
