use memwatch_test::leak_test;

#[leak_test]
fn parse(input: &str) {
    let _ = input;
}

fn main() {}
