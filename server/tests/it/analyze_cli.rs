//! `switchyard analyze [PATH] [--json]` as a user runs it: the built binary, Markdown on
//! stdout (or JSON that is the library's `Analysis`), and nothing on stderr when stderr is
//! not a terminal — no progress bar in logs and pipes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use switchyard::analyze::Analysis;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/analyze")
        .canonicalize()
        .unwrap()
}

fn switchyard(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .current_dir(cwd)
        .env_remove("SWITCHYARD_LOG")
        .output()
        .unwrap()
}

#[test]
fn prints_the_markdown_report_and_nothing_else() {
    let dir = fixture();
    let out = switchyard(&["analyze", dir.to_str().unwrap()], Path::new("/"));
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("# Workspace analysis: acme-engine\n"),
        "{text}"
    );
    for section in [
        "## Languages",
        "## Markers",
        "## Largest files",
        "## Projects",
        "## Files",
    ] {
        assert!(text.contains(section), "{section} in:\n{text}");
    }
    assert!(text.contains("| Rust | 1 | 5 | 3 | 2 | 10 |"), "{text}");
    assert!(
        text.contains("| TODO | `src/main.rs:4` | `// TODO: parse the arguments` |"),
        "{text}"
    );
}

#[test]
fn analyzes_the_current_directory_by_default() {
    let dir = fixture();
    let out = switchyard(&["analyze"], &dir.join("web"));
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("# Workspace analysis: acme-web\n"),
        "{text}"
    );
    assert!(
        text.contains("| `package.json` | npm | `acme-web` |"),
        "{text}"
    );
}

#[test]
fn json_is_the_structured_analysis() {
    let dir = fixture();
    let out = switchyard(&["analyze", "--json", "."], &dir);
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let analysis: Analysis = serde_json::from_slice(&out.stdout).expect("the analysis as JSON");
    assert_eq!(analysis.root, dir.display().to_string());
    assert_eq!(analysis.total.files, 8);
    assert_eq!(analysis.markers.total(), 6);
    assert_eq!(analysis.manifests.len(), 4);
    // Fields are camelCase, as the language server sends them.
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["largestFiles"].is_array());
    assert_eq!(json["skipped"]["ignoredDirNames"][0], "build/");
    assert_eq!(json["manifests"][1]["kind"], "goModule");
    assert_eq!(json["markers"]["locations"][0]["kind"], "TODO");
}

#[test]
fn a_missing_path_is_a_usage_error() {
    let out = switchyard(&["analyze", "/no/such/dir"], Path::new("/"));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/no/such/dir"), "{stderr}");
    assert!(out.stdout.is_empty());
}
