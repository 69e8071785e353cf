use memwatch_test::leak_test;

#[leak_test]
fn generic<T: Default>() {
    let _ = T::default();
}

fn main() {}
