#[meshsim_macros::test(time = "fast")]
async fn t() {}

fn main() {}
