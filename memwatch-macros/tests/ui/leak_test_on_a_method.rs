use memwatch_test::leak_test;

struct Cache;

impl Cache {
    #[leak_test]
    fn fills(&self) {}
}

fn main() {}
