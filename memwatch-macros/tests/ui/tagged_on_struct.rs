#[memwatch_test::tagged]
struct NotAFunction {
    field: u8,
}

fn main() {}
