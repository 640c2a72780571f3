//! Bad arguments and bad functions give compile errors pointing at the culprit.

#[test]
fn compile_errors() {
    trybuild::TestCases::new().compile_fail("tests/ui/*.rs");
}
