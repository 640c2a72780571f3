#[meshsim_macros::test(dilation = 0.5)]
async fn t() {}

fn main() {}
