//! The binary's own surface: `--version`, `--help`, and `switchyard tool` end to end —
//! exit codes, changes written atomically to disk with their permissions kept, `--dry-run`
//! writing nothing, and `bash` off by default, then with a time limit and no API keys.
//!
//! Having an integration test here also makes `cargo test --workspace` build
//! `target/debug/switchyard` before the end-to-end suites in `tests/` run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

fn switchyard(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .current_dir(dir)
        .env_remove("SWITCHYARD_LOG")
        .env("XDG_CONFIG_HOME", dir.join(".no-user-config"))
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn version_names_the_crate_version() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout).trim(),
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
    let help = text(&out.stdout);
    assert!(help.contains("Usage: switchyard"), "{help}");
    assert!(help.contains("tool"), "{help}");
}

#[test]
fn tool_exit_codes_are_0_1_and_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "alpha\n").unwrap();
    let ok = switchyard(dir.path(), &["tool", "read", r#"{"path": "a.txt"}"#]);
    assert_eq!(
        (ok.status.code(), text(&ok.stdout)),
        (Some(0), "     1\talpha\n".to_string())
    );
    let json = switchyard(
        dir.path(),
        &["tool", "read", r#"{"path": "a.txt"}"#, "--json"],
    );
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["lines"][0], "alpha");
    let tool_error = switchyard(dir.path(), &["tool", "read", r#"{"path": "missing.txt"}"#]);
    assert_eq!(tool_error.status.code(), Some(1));
    assert!(
        text(&tool_error.stderr).contains("`missing.txt` does not exist"),
        "{}",
        text(&tool_error.stderr)
    );
    for bad in [
        vec!["tool", "frobnicate"],
        vec!["tool", "read", "{not json"],
        vec!["tool"],
    ] {
        let out = switchyard(dir.path(), &bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", text(&out.stderr));
    }
}

#[test]
fn changes_are_written_atomically_keeping_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("run.sh");
    std::fs::write(&script, "#!/bin/sh\necho old\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o751)).unwrap();
    let args = r#"{"path": "run.sh", "old_string": "echo old", "new_string": "echo new"}"#;

    let dry = switchyard(dir.path(), &["tool", "edit", args, "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry.stderr));
    assert!(text(&dry.stdout).contains("(dry run: nothing was written)"));
    assert!(
        text(&dry.stderr).contains("-echo old\n+echo new\n"),
        "the diff goes to stderr: {}",
        text(&dry.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&script).unwrap(),
        "#!/bin/sh\necho old\n"
    );

    // Without a terminal to ask and without --yes, nothing is changed.
    let unasked = switchyard(dir.path(), &["tool", "edit", args]);
    assert_eq!(unasked.status.code(), Some(1));
    assert!(
        text(&unasked.stderr).contains("needs the user's approval"),
        "{}",
        text(&unasked.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&script).unwrap(),
        "#!/bin/sh\necho old\n"
    );

    let done = switchyard(dir.path(), &["tool", "edit", args, "--yes"]);
    assert!(done.status.success(), "{}", text(&done.stderr));
    assert_eq!(
        std::fs::read_to_string(&script).unwrap(),
        "#!/bin/sh\necho new\n"
    );
    assert_eq!(
        std::fs::metadata(&script).unwrap().permissions().mode() & 0o777,
        0o751
    );
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["run.sh"], "no temporary file is left behind");
}

#[test]
fn bash_is_off_by_default_then_runs_without_api_keys_and_within_its_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let off = switchyard(
        dir.path(),
        &["tool", "bash", r#"{"command": "echo hi"}"#, "--yes"],
    );
    assert_eq!(off.status.code(), Some(1));
    assert!(
        text(&off.stderr).contains("approvals.bash = \"deny\""),
        "{}",
        text(&off.stderr)
    );

    let run = |args: &str| {
        Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["tool", "bash", args, "--yes"])
            .current_dir(dir.path())
            .env("SWITCHYARD_APPROVALS__BASH", "allow")
            .env("OPENAI_API_KEY", "sk-test-must-not-leak")
            .env("ANTHROPIC_API_KEY", "sk-ant-must-not-leak")
            .output()
            .unwrap()
    };
    let env = run(r#"{"command": "env"}"#);
    assert!(env.status.success(), "{}", text(&env.stderr));
    let shown = text(&env.stdout);
    assert!(shown.contains("PATH="), "{shown}");
    assert!(
        !shown.contains("must-not-leak") && !shown.contains("API_KEY"),
        "{shown}"
    );

    let started = std::time::Instant::now();
    let runaway = run(r#"{"command": "echo begun; sleep 60", "timeout_ms": 500}"#);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let shown = text(&runaway.stdout);
    assert!(
        shown.contains("killed after") && shown.contains("begun"),
        "{shown}"
    );
}
