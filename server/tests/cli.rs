//! The binary's own surface. Having an integration test here also makes `cargo test
//! --workspace` build `target/debug/switchyard` before the end-to-end suites in `tests/` run.

use std::process::Command;

#[test]
fn version_names_the_crate_version() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        text.trim(),
        format!("switchyard {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn help_lists_the_program() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Usage: switchyard"), "{text}");
}
