struct Config;

#[memwatch_test::tagged]
impl Config {
    const fn limit() -> usize {
        4
    }
}

fn main() {}
