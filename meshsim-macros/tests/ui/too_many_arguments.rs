#[meshsim_macros::test]
async fn t(_a: u32, _b: u32) {}

fn main() {}
