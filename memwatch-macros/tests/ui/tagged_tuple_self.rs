trait Describe {
    fn describe(&self) -> String;
}

#[memwatch_test::tagged]
impl Describe for (u8, u8) {
    fn describe(&self) -> String {
        format!("{self:?}")
    }
}

fn main() {}
