//! `grep` finds exactly the lines ripgrep finds: the same patterns over real code (this
//! crate's sources) and over a tree built to be awkward (ignore files at several levels,
//! hidden files, binary files, CRLF, invalid UTF-8, long lines), compared with `rg` run
//! beside it. `tests/run` installs ripgrep; a missing `rg` fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::json;
use switchyard::tools::{CallContext, ToolOutput, ToolsConfig};

type Lines = BTreeSet<(String, u64, String)>;

fn rg() -> String {
    std::env::var("SWITCHYARD_RG").unwrap_or_else(|_| "rg".to_string())
}

fn rg_lines(root: &Path, pattern: &str, extra: &[&str]) -> Lines {
    let out = Command::new(rg())
        .current_dir(root)
        .args([
            "--no-config",
            "-n",
            "--no-heading",
            "--with-filename",
            "--color",
            "never",
        ])
        .args(extra)
        .arg("--")
        .arg(pattern)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run ripgrep (`{}`): {e}; tests/run installs it",
                rg()
            )
        });
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "rg failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // rg also prints `path: WARNING: stopped searching binary file after match (...)`.
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (path, number, text) = (parts.next()?, parts.next()?, parts.next().unwrap_or(""));
            Some((path.to_string(), number.parse().ok()?, text.to_string()))
        })
        .collect()
}

fn our_lines(root: &Path, args: serde_json::Value) -> Lines {
    let config = ToolsConfig {
        grep_max_line_chars: usize::MAX,
        max_output_bytes: 0,
        ..ToolsConfig::default()
    };
    let (runtime, toolbox) = common::toolbox::on(root, config);
    let mut args = args;
    args["max_results"] = json!(10_000_000);
    let output = runtime
        .block_on(toolbox.run("grep", args, &CallContext::default()))
        .unwrap();
    let ToolOutput::Grep(grep) = output else {
        panic!("not a grep result")
    };
    assert!(!grep.stopped_at_limit);
    grep.files
        .into_iter()
        .flat_map(|file| {
            let path = file.path.clone();
            file.lines
                .into_iter()
                .filter(|l| !l.context)
                .map(move |l| (path.clone(), l.line, l.text))
        })
        .collect()
}

fn assert_same(root: &Path, pattern: &str, rg_flags: &[&str], args: serde_json::Value) {
    let theirs = rg_lines(root, pattern, rg_flags);
    let ours = our_lines(root, args);
    let missing: Vec<_> = theirs.difference(&ours).take(5).collect();
    let extra: Vec<_> = ours.difference(&theirs).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "`{pattern}` {rg_flags:?}: {} lines from rg, {} from us\nonly rg: {missing:#?}\nonly us: {extra:#?}",
        theirs.len(),
        ours.len()
    );
    eprintln!("`{pattern}` {rg_flags:?}: {} identical lines", ours.len());
}

/// Writes `content` to `path` below `root`, creating its directories.
fn write_file(root: &Path, path: &str, content: &[u8]) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

fn awkward_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let write = |path: &str, content: &[u8]| write_file(root, path, content);
    Command::new("git")
        .arg("init")
        .arg("-q")
        .arg(root)
        .status()
        .unwrap();
    write(".gitignore", b"build/\n*.tmp\n!keep.tmp\n");
    write("src/.ignore", b"generated.rs\n");
    write(
        "src/main.rs",
        b"fn main() {\n    // TODO: fix\n    let s = \"fn in a string\";\n}\n",
    );
    write("src/generated.rs", b"fn generated() {} // TODO\n");
    write("src/crlf.rs", b"fn crlf() {\r\n    todo!()\r\n}\r\n");
    write("src/latin1.txt", b"fn caf\xE9 TODO\n");
    write(
        "src/unicode.md",
        "# Überschrift — fn émoji 🚀 TODO\n".as_bytes(),
    );
    write(
        "src/long.js",
        format!(
            "function f() {{ return '{}'; }} // TODO\n",
            "x".repeat(20_000)
        )
        .as_bytes(),
    );
    write("build/out.rs", b"fn built() {} // TODO\n");
    write("scratch.tmp", b"fn scratch() TODO\n");
    write("keep.tmp", b"fn keep() TODO\n");
    write(".hidden/secret.rs", b"fn hidden() TODO\n");
    write("data/blob.bin", b"\x7fELF\0\0\0fn binary TODO\n");
    let mut late_binary = b"fn before_nul() TODO\n".repeat(10_000);
    late_binary.extend_from_slice(b"\0after the nul TODO\n");
    write("data/late.bin", &late_binary);
    write("deep/a/b/c/d/nested.py", b"def fn(): pass  # TODO\n\n\n");
    dir
}

#[test]
fn grep_matches_ripgrep_on_real_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for (pattern, rg_flags, args) in [
        ("fn", vec![], json!({"pattern": "fn"})),
        ("TODO|FIXME", vec![], json!({"pattern": "TODO|FIXME"})),
        (
            r"\bpub\s+fn\s+\w+",
            vec![],
            json!({"pattern": r"\bpub\s+fn\s+\w+"}),
        ),
        (
            "::",
            vec!["-F"],
            json!({"pattern": "::", "fixed_string": true}),
        ),
        (
            "error",
            vec!["-i"],
            json!({"pattern": "error", "case_insensitive": true}),
        ),
        (
            "Lane",
            vec!["-S"],
            json!({"pattern": "Lane", "smart_case": true}),
        ),
        ("^$", vec![], json!({"pattern": "^$"})),
        (
            "impl",
            vec!["-g", "*.rs"],
            json!({"pattern": "impl", "glob": "*.rs"}),
        ),
        (
            "use",
            vec!["-t", "rust"],
            json!({"pattern": "use", "type": "rust"}),
        ),
    ] {
        assert_same(&root, pattern, &rg_flags, args);
    }
}

#[test]
fn grep_matches_ripgrep_on_an_awkward_tree() {
    let dir = awkward_tree();
    for (pattern, rg_flags, args) in [
        ("TODO", vec![], json!({"pattern": "TODO"})),
        ("fn", vec![], json!({"pattern": "fn"})),
        (
            "todo",
            vec!["-i"],
            json!({"pattern": "todo", "case_insensitive": true}),
        ),
        ("é|🚀|\\xE9", vec![], json!({"pattern": "é|🚀|\\xE9"})),
        ("^$", vec![], json!({"pattern": "^$"})),
        ("x{100}", vec![], json!({"pattern": "x{100}"})),
        (
            "TODO",
            vec!["-g", "*.rs"],
            json!({"pattern": "TODO", "glob": "*.rs"}),
        ),
        (
            "TODO",
            vec!["-g", "!*.rs"],
            json!({"pattern": "TODO", "glob": "!*.rs"}),
        ),
        (
            "TODO",
            vec!["-t", "py"],
            json!({"pattern": "TODO", "type": "py"}),
        ),
    ] {
        assert_same(dir.path(), pattern, &rg_flags, args);
    }
}

fn rg_files(root: &Path) -> BTreeSet<String> {
    let out = Command::new(rg())
        .current_dir(root)
        .args(["--no-config", "--files"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn our_files(root: &Path, tool: &str, args: serde_json::Value) -> BTreeSet<String> {
    let (runtime, toolbox) = common::toolbox::on(root, ToolsConfig::default());
    match runtime
        .block_on(toolbox.run(tool, args, &CallContext::default()))
        .unwrap()
    {
        ToolOutput::Glob(glob) => {
            assert_eq!(glob.total as usize, glob.paths.len(), "raise the limit");
            glob.paths.into_iter().collect()
        }
        ToolOutput::Ls(ls) => ls
            .entries
            .into_iter()
            .filter(|e| e.kind == switchyard::tools::EntryKind::File)
            .map(|e| e.path)
            .collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_parallel_listing_is_what_rg_files_lists() {
    let awkward = awkward_tree();
    let real = Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf();
    for root in [awkward.path(), real.as_path()] {
        let theirs = rg_files(root);
        assert!(!theirs.is_empty());
        let glob = our_files(root, "glob", json!({"pattern": "**", "limit": 1_000_000}));
        assert_eq!(glob, theirs, "glob ** under {}", root.display());
        let ls = our_files(root, "ls", json!({"depth": 64, "limit": 1_000_000}));
        assert_eq!(ls, theirs, "ls under {}", root.display());
    }
}

/// A `.gitignore` outside every repository is not read (ripgrep ignores it too), one
/// inside a repository nested below it applies, and `.ignore` applies everywhere.
#[test]
fn gitignore_files_apply_only_inside_a_repository() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let write = |path: &str, content: &[u8]| write_file(root, path, content);
    write(".gitignore", b"*.log\n");
    write(".ignore", b"*.tmp\n");
    for name in ["a.log", "b.tmp", "c.rs", "plain/d.log", "plain/e.rs"] {
        write(name, b"fn marker() {}\n");
    }
    write("repo/.gitignore", b"*.out\n");
    write("repo/sub/.gitignore", b"*.rs\n");
    for name in [
        "repo/x.out",
        "repo/y.log",
        "repo/z.rs",
        "repo/sub/w.rs",
        "repo/sub/v.tmp",
    ] {
        write(name, b"fn marker() {}\n");
    }
    let status = Command::new("git")
        .args(["init", "-q"])
        .arg(root.join("repo"))
        .status()
        .unwrap();
    assert!(status.success());
    let theirs = rg_files(root);
    for expected in ["a.log", "c.rs", "plain/d.log", "repo/y.log", "repo/z.rs"] {
        assert!(theirs.contains(expected), "rg lists {expected}: {theirs:?}");
    }
    let glob = our_files(root, "glob", json!({"pattern": "**", "limit": 1_000}));
    assert_eq!(glob, theirs);
    assert_same(root, "marker", &[], json!({"pattern": "marker"}));
}
