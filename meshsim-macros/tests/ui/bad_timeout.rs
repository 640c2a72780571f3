#[meshsim_macros::test(timeout = "90 parsecs")]
async fn t() {}

fn main() {}
