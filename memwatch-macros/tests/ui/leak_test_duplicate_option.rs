use memwatch_test::leak_test;

#[leak_test(warmup = 2, warmup = 3)]
fn twice() {}

fn main() {}
