#[memwatch_test::tagged(name)]
fn parse() {}

fn main() {}
