#[meshsim_macros::test(time = "virtual", dilation = 10)]
async fn t() {}

fn main() {}
