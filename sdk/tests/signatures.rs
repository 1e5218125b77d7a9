//! The `#[transform]` attribute accepts the documented signatures and refuses others with
//! an error that points at the signature (golden `.stderr` files in `tests/ui/`;
//! regenerate with `TRYBUILD=overwrite`).

#[test]
fn transform_signatures() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass_*.rs");
    cases.compile_fail("tests/ui/fail_*.rs");
}
