#[meshsim_macros::test(nodes = 5)]
async fn t() {}

fn main() {}
