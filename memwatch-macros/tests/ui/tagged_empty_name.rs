#[memwatch_test::tagged("  ")]
fn parse() {}

fn main() {}
