#[meshsim_macros::test(seed = -1)]
async fn t() {}

fn main() {}
