#[meshsim_macros::test(backend = "kubernetes")]
async fn t() {}

fn main() {}
