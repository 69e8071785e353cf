use memwatch_test::leak_test;

#[leak_test]
async fn needs_a_runtime() {}

fn main() {}
