use memwatch_test::leak_test;

#[leak_test]
fn parse() -> usize {
    4
}

fn main() {}
