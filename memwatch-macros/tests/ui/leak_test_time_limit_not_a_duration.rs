use memwatch_test::leak_test;

#[leak_test(time_limit = "soon")]
fn when() {}

fn main() {}
