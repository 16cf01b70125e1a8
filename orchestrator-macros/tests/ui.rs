//! Compile-time checks of `orchestrate!`: each failing definition is reported on the offending
//! token (`tests/ui/fail/*.stderr`, recorded on the pinned toolchain).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
