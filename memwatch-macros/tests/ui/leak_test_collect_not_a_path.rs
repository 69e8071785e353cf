use memwatch_test::leak_test;

#[leak_test(collect = || {})]
fn closure() {}

fn main() {}
