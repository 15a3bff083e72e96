//! The tools as a model sees them: each call runs through a real [`Toolbox`] and lanes on a
//! fixture tree, and the text rendering is checked inline.

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::{Duration, Instant};

use expect_test::{Expect, expect};
use serde_json::{Value, json};

use super::*;
use crate::lanes::{Lanes, LanesConfig};

struct Fixture {
    dir: tempfile::TempDir,
    toolbox: Toolbox,
    _runtime: tokio::runtime::Runtime,
}

fn fixture_with(config: ToolsConfig, files: &[(&str, &[u8])]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("ws");
    for (path, content) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    std::fs::create_dir_all(&root).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let lanes = Lanes::with_runtime(LanesConfig::default(), runtime.handle().clone()).unwrap();
    let workspace = Workspace::new([root]).unwrap();
    let toolbox = Toolbox::new(workspace, lanes, Documents::new(), config);
    Fixture {
        dir,
        toolbox,
        _runtime: runtime,
    }
}

fn fixture(files: &[(&str, &[u8])]) -> Fixture {
    fixture_with(ToolsConfig::default(), files)
}

impl Fixture {
    fn root(&self) -> std::path::PathBuf {
        self.toolbox.workspace().primary().to_path_buf()
    }

    fn call(&self, tool: &str, args: Value) -> Result<ToolOutput, ToolError> {
        let toolbox = self.toolbox.clone();
        let tool = tool.to_string();
        self._runtime
            .block_on(async move { toolbox.run(&tool, args, &CallContext::default()).await })
    }

    /// The text a model sees, or `error: ...`.
    fn text(&self, tool: &str, args: Value) -> String {
        match self.call(tool, args) {
            Ok(out) => self.toolbox.render(&out),
            Err(e) => format!("error: {}\n", e.message),
        }
    }

    /// Checks the text under a `tool:` header line (which keeps expect-test's dedent off
    /// the right-aligned line numbers of `read`).
    fn check(&self, tool: &str, args: Value, expected: Expect) {
        expected.assert_eq(&format!("{tool}:\n{}", self.text(tool, args)));
    }
}

fn project() -> Fixture {
    let f = fixture(&[
        (".gitignore", b"target/\n*.log\n"),
        ("Cargo.toml", b"[package]\nname = \"demo\"\n"),
        (
            "src/main.rs",
            b"fn main() {\n    println!(\"Hello\");\n    helper();\n}\n",
        ),
        (
            "src/lib.rs",
            b"pub fn helper() {\n    // TODO: say hello\n}\n",
        ),
        ("src/deep/mod.rs", b"pub mod x;\n"),
        ("target/debug/out.rs", b"fn main() {}\n"),
        ("app.log", b"fn main in a log\n"),
        (".hidden/secret.rs", b"fn main() {}\n"),
        ("image.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR fn main"),
    ]);
    std::process::Command::new("git")
        .arg("init")
        .arg("-q")
        .arg(f.root())
        .status()
        .unwrap();
    f
}

#[test]
fn read_numbers_lines_like_cat_n() {
    let f = project();
    f.check(
        "read",
        json!({"path": "src/main.rs"}),
        expect![[r#"
        read:
             1	fn main() {
             2	    println!("Hello");
             3	    helper();
             4	}
    "#]],
    );
    f.check(
        "read",
        json!({"path": "src/main.rs", "offset": 2, "limit": 2}),
        expect![[r#"
        read:
             2	    println!("Hello");
             3	    helper();
        (lines 2–3 of 4; continue with offset=4)
    "#]],
    );
    f.check(
        "read",
        json!({"path": "src/main.rs", "offset": -2}),
        expect![[r#"
        read:
             3	    helper();
             4	}
        (lines 3–4 of 4)
    "#]],
    );
    f.check(
        "read",
        json!({"path": "src/main.rs", "offset": 9}),
        expect![[r#"
        read:
        error: `offset` 9 is past the end of `src/main.rs` (4 lines)
    "#]],
    );
    f.check(
        "read",
        json!({"path": "src/main.rs", "limit": -3}),
        expect![[r#"
        read:
        error: `limit` must be a positive integer, got -3
    "#]],
    );
    f.check(
        "read",
        json!({"file": "src/main.rs"}),
        expect![[r#"
        read:
        error: `read` has no argument `file`; it takes `path`, `offset`, `limit`
    "#]],
    );
}

#[test]
fn read_handles_encodings_and_odd_content() {
    let long = format!("{}\n", "x".repeat(5_000));
    let f = fixture(&[
        ("bom.txt", b"\xEF\xBB\xBFfirst\nsecond\n"),
        ("crlf.txt", b"one\r\ntwo\r\n"),
        ("latin1.txt", b"caf\xE9\n"),
        ("empty.txt", b""),
        ("long.txt", long.as_bytes()),
        ("bin.dat", b"ELF\0\0\0binary"),
    ]);
    f.check(
        "read",
        json!({"path": "bom.txt"}),
        expect![[r#"
        read:
             1	first
             2	second
    "#]],
    );
    f.check(
        "read",
        json!({"path": "crlf.txt"}),
        expect![[r#"
        read:
             1	one
             2	two
    "#]],
    );
    f.check(
        "read",
        json!({"path": "latin1.txt"}),
        expect![[r#"
        read:
             1	caf�
        (invalid UTF-8 replaced with U+FFFD)
    "#]],
    );
    f.check(
        "read",
        json!({"path": "empty.txt"}),
        expect![[r#"
        read:
        (`empty.txt` is empty)
    "#]],
    );
    let text = f.text("read", json!({"path": "long.txt"}));
    assert!(
        text.starts_with(&format!(
            "     1\t{} … [line cut: 3,000 more bytes]",
            "x".repeat(2_000)
        )),
        "{text:.80}"
    );
    assert!(text.ends_with("(1 long line(s) cut; each shows its first characters)\n"));
    f.check("read", json!({"path": "bin.dat"}), expect![[r#"
        read:
        error: `bin.dat` is a binary file (12 bytes, a NUL byte at offset 3); `read` shows text only — use `ls` for its size or `grep` to search text files
    "#]]);
    f.check(
        "read",
        json!({"path": "."}),
        expect![[r#"
        read:
        error: `.` is a directory; use `ls` or `glob` to list it
    "#]],
    );
}

#[test]
fn a_fifo_is_refused_without_hanging() {
    let f = fixture(&[]);
    let fifo = f.root().join("pipe");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    f.check(
        "read",
        json!({"path": "pipe"}),
        expect![[r#"
        read:
        error: `pipe` is a FIFO (named pipe); only regular files can be read
    "#]],
    );
    f.check(
        "grep",
        json!({"pattern": "x", "path": "pipe"}),
        expect![[r#"
        grep:
        error: `pipe` is a FIFO (named pipe); only regular files can be read
    "#]],
    );
    // A FIFO met during a directory walk is not a file to search either.
    assert!(
        f.text("grep", json!({"pattern": "x"}))
            .starts_with("(no matches")
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn paths_outside_the_workspace_are_refused() {
    let f = project();
    std::fs::write(f.dir.path().join("outside.txt"), "secret").unwrap();
    symlink("/etc", f.root().join("etc")).unwrap();
    for (tool, args) in [
        ("read", json!({"path": "../outside.txt"})),
        ("read", json!({"path": "/etc/hostname"})),
        ("read", json!({"path": "etc/hostname"})),
        ("grep", json!({"pattern": "root", "path": "etc"})),
        ("ls", json!({"path": "etc"})),
        ("glob", json!({"pattern": "*", "path": ".."})),
    ] {
        let err = f.call(tool, args.clone()).unwrap_err().message;
        assert!(
            err.contains("outside the workspace"),
            "{tool} {args}: {err}"
        );
    }
}

#[test]
fn the_open_buffer_wins_over_the_disk() {
    let f = project();
    let main = f.root().join("src/main.rs");
    f.toolbox
        .documents()
        .open(main.clone(), 7, "fn main() {\n    unsaved_change();\n}\n");
    f.check(
        "read",
        json!({"path": "src/main.rs"}),
        expect![[r#"
        read:
             1	fn main() {
             2	    unsaved_change();
             3	}
        (unsaved editor buffer, version 7)
    "#]],
    );
    f.check(
        "grep",
        json!({"pattern": "unsaved_change|helper\\(\\);"}),
        expect![[r#"
        grep:
        src/main.rs:2:    unsaved_change();
        (1 matching line in 1 file)
    "#]],
    );
    f.toolbox.documents().close(&main);
    f.check(
        "grep",
        json!({"pattern": "unsaved_change|helper\\(\\);"}),
        expect![[r#"
        grep:
        src/main.rs:3:    helper();
        (1 matching line in 1 file)
    "#]],
    );
}

#[test]
fn glob_respects_ignore_files_and_hidden_files() {
    let f = project();
    f.check(
        "glob",
        json!({"pattern": "*.rs"}),
        expect![[r#"
        glob:
        src/deep/mod.rs
        src/lib.rs
        src/main.rs
        (3 files match `*.rs`)
    "#]],
    );
    f.check(
        "glob",
        json!({"pattern": "src/*.rs"}),
        expect![[r#"
        glob:
        src/lib.rs
        src/main.rs
        (2 files match `src/*.rs`)
    "#]],
    );
    f.check(
        "glob",
        json!({"pattern": "**/*.rs", "include_ignored": true, "include_hidden": true, "limit": 2}),
        expect![[r#"
        glob:
        .hidden/secret.rs
        src/deep/mod.rs
        (2 of 5 matching files shown; narrow the pattern or pass `path`)
    "#]],
    );
    f.check(
        "glob",
        json!({"pattern": "*.py"}),
        expect![[r#"
        glob:
        (no files match `*.py`)
    "#]],
    );
    f.check(
        "glob",
        json!({"pattern": "[a-"}),
        expect![[r#"
        glob:
        error: invalid glob `[a-`: unclosed character class; missing ']'
    "#]],
    );
}

#[test]
fn ls_lists_directories_first_with_sizes() {
    let f = project();
    symlink("src/main.rs", f.root().join("link.rs")).unwrap();
    f.check(
        "ls",
        json!({}),
        expect![[r#"
        ls:
        src/
        Cargo.toml  24 B
        image.png  24 B
        link.rs -> src/main.rs
    "#]],
    );
    f.check(
        "ls",
        json!({"depth": 2, "limit": 4}),
        expect![[r#"
        ls:
        src/
          deep/
          lib.rs  43 B
          main.rs  51 B
        (4 of 7 entries shown; list a subdirectory or lower `depth`)
    "#]],
    );
    f.check(
        "ls",
        json!({"path": "src/main.rs"}),
        expect![[r#"
        ls:
        error: `src/main.rs` is not a directory; use `read` for files
    "#]],
    );
}

#[test]
fn grep_searches_like_ripgrep() {
    let f = project();
    // .gitignore'd, hidden and binary files are skipped.
    f.check(
        "grep",
        json!({"pattern": "fn main"}),
        expect![[r#"
        grep:
        src/main.rs:1:fn main() {
        (1 matching line in 1 file)
    "#]],
    );
    f.check(
        "grep",
        json!({"pattern": "hello", "smart_case": true, "context": 1}),
        expect![[r#"
        grep:
        src/lib.rs-1-pub fn helper() {
        src/lib.rs:2:    // TODO: say hello
        src/lib.rs-3-}
        src/main.rs-1-fn main() {
        src/main.rs:2:    println!("Hello");
        src/main.rs-3-    helper();
        (2 matching lines in 2 files)
    "#]],
    );
    f.check(
        "grep",
        json!({"pattern": "Hello", "smart_case": true}),
        expect![[r#"
        grep:
        src/main.rs:2:    println!("Hello");
        (1 matching line in 1 file)
    "#]],
    );
    f.check(
        "grep",
        json!({"pattern": "helper()", "fixed_string": true, "output": "count"}),
        expect![[r#"
        grep:
        src/lib.rs:1
        src/main.rs:1
        (2 matching lines in 2 files)
    "#]],
    );
    f.check("grep", json!({"pattern": "fn", "output": "files", "glob": "*.rs", "include_ignored": true}), expect![[r#"
        grep:
        error: `grep` has no argument `include_ignored`; it takes `pattern`, `path`, `glob`, `type`, `case_insensitive`, `smart_case`, `fixed_string`, `multiline`, `context`, `output`, `max_results`
    "#]]);
    f.check(
        "grep",
        json!({"pattern": "fn", "output": "files", "type": "rust"}),
        expect![[r#"
        grep:
        src/lib.rs
        src/main.rs
        (2 files match)
    "#]],
    );
    f.check(
        "grep",
        json!({"pattern": "name", "type": "toml"}),
        expect![[r#"
        grep:
        Cargo.toml:2:name = "demo"
        (1 matching line in 1 file)
    "#]],
    );
    f.check(
        "grep",
        json!({"pattern": "\\{\\n\\s+println", "multiline": true}),
        expect![[r#"
        grep:
        src/main.rs:1:fn main() {
        src/main.rs:2:    println!("Hello");
        (2 matching lines in 1 file)
    "#]],
    );
    f.check("grep", json!({"pattern": "x", "type": "klingon"}), expect![[r#"
        grep:
        error: unknown file `type` "klingon"; use a ripgrep type name such as rust, py, js, ts, go, c, cpp, java, md, toml — or `glob`
    "#]]);
}

#[test]
fn grep_stops_at_max_results_deterministically() {
    let files: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| (format!("f{i:02}.txt"), b"match\nmatch\nmatch\n".to_vec()))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    let f = fixture(&refs);
    let first = f.text("grep", json!({"pattern": "match", "max_results": 5}));
    expect![[r#"
        f00.txt:1:match
        f00.txt:2:match
        f00.txt:3:match
        f01.txt:1:match
        f01.txt:2:match
        (5 matching lines in 2 files)
        (stopped at the `max_results` limit; there may be more — narrow the pattern, add `glob` or `type`, or raise `max_results`)
    "#]]
    .assert_eq(&first);
    for _ in 0..20 {
        assert_eq!(
            f.text("grep", json!({"pattern": "match", "max_results": 5})),
            first
        );
    }
    let files = f.text(
        "grep",
        json!({"pattern": "match", "output": "files", "max_results": 2}),
    );
    assert!(files.starts_with("f00.txt\nf01.txt\n"), "{files}");
    assert!(
        files.contains("stopped at the `max_results` limit"),
        "{files}"
    );
}

#[test]
fn output_is_capped_and_says_how() {
    let files: Vec<(String, Vec<u8>)> = (0..300)
        .map(|i| (format!("d/f{i:03}.rs"), b"fn f() {}\n".to_vec()))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    let config = ToolsConfig {
        max_output_bytes: 200,
        ..ToolsConfig::default()
    };
    let f = fixture_with(config, &refs);
    let text = f.text("grep", json!({"pattern": "fn", "max_results": 1000}));
    assert!(text.len() < 600, "{}", text.len());
    assert!(
        text.contains("(300 matching lines in 300 files)\n(output cut at its size cap"),
        "{text}"
    );
    let text = f.text("glob", json!({"pattern": "*.rs", "limit": 1000}));
    assert!(text.contains("of 300 matching files shown"), "{text}");
    let text = f.text("read", json!({"path": "d/f000.rs"}));
    assert_eq!(text, "     1\tfn f() {}\n");
}

#[test]
fn invalid_regexes_point_at_the_problem() {
    let f = project();
    let err = f
        .call("grep", json!({"pattern": "fn("}))
        .unwrap_err()
        .message;
    assert!(err.starts_with("invalid regex `fn(`"), "{err}");
    assert!(err.contains("unclosed group"), "{err}");
    assert!(err.contains("fixed_string: true"), "{err}");
}

#[test]
fn large_files_are_streamed_in_windows() {
    let body: String = (1..=10_000).map(|i| format!("line {i}\n")).collect();
    let config = ToolsConfig {
        streaming_threshold_bytes: 1_000,
        line_index_every: 100,
        ..ToolsConfig::default()
    };
    let f = fixture_with(config, &[("big.txt", body.as_bytes())]);
    let read = |args: Value| match f.call("read", args).unwrap() {
        ToolOutput::Read(out) => out,
        other => panic!("{other:?}"),
    };
    let head = read(json!({"path": "big.txt", "limit": 2}));
    assert!(head.streamed);
    assert_eq!(
        (head.start_line, head.lines.clone(), head.total_lines),
        (1, vec!["line 1".into(), "line 2".into()], None)
    );
    let tail = read(json!({"path": "big.txt", "offset": -3}));
    assert_eq!(tail.lines, ["line 9998", "line 9999", "line 10000"]);
    assert_eq!((tail.start_line, tail.total_lines), (9_998, Some(10_000)));
    // The second window comes from the line index, and agrees with the first scan.
    let middle = read(json!({"path": "big.txt", "offset": 5_050, "limit": 2}));
    assert_eq!(middle.lines, ["line 5050", "line 5051"]);
    assert_eq!(middle.total_lines, Some(10_000));
    let text = f.toolbox.render(&ToolOutput::Read(middle));
    assert!(
        text.ends_with("(lines 5,050–5,051 of 10,000; continue with offset=5052)\n"),
        "{text}"
    );
    // A changed file is not read through a stale index.
    std::fs::write(
        f.root().join("big.txt"),
        body.replace("line 5050\n", "LINE 5050 CHANGED\n"),
    )
    .unwrap();
    assert_eq!(
        read(json!({"path": "big.txt", "offset": 5_050, "limit": 1})).lines,
        ["LINE 5050 CHANGED"]
    );
    let past = f
        .call("read", json!({"path": "big.txt", "offset": 20_000}))
        .unwrap_err();
    assert_eq!(
        past.message,
        "`offset` 20000 is past the end of `big.txt` (10,000 lines)"
    );
}

#[test]
fn a_long_grep_stops_promptly_when_cancelled() {
    let files: Vec<(String, Vec<u8>)> = (0..2_000)
        .map(|i| {
            (
                format!("d{}/f{i}.txt", i % 20),
                "needle haystack\n".repeat(500).into_bytes(),
            )
        })
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    let f = fixture(&refs);
    let ctx = CallContext::default();
    let token = ctx.token.clone();
    let toolbox = f.toolbox.clone();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    f._runtime.spawn(async move {
        let result = toolbox
            .run(
                "grep",
                json!({"pattern": "needle", "output": "count", "max_results": 1_000_000}),
                &ctx,
            )
            .await;
        let _ = done_tx.send((result, Instant::now()));
    });
    // Cancel once the search is under way.
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.toolbox.lanes().metrics().lane(Lane::Query).running == 0 {
        assert!(Instant::now() < deadline, "the grep never started");
        std::thread::yield_now();
    }
    let cancelled_at = Instant::now();
    token.cancel();
    let (result, finished) = done_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("grep did not stop");
    assert_eq!(result.unwrap_err().message, "cancelled");
    assert!(
        finished - cancelled_at < Duration::from_secs(1),
        "took {:?} to stop",
        finished - cancelled_at
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while f.toolbox.lanes().metrics().lane(Lane::Query).running > 0 {
        assert!(Instant::now() < deadline, "the lane never drained");
        std::thread::yield_now();
    }
    assert_eq!(f.toolbox.lanes().metrics().lane(Lane::Query).cancelled, 1);
}

#[test]
fn tool_errors_are_results_not_dead_letters() {
    let f = project();
    assert!(f.call("read", json!({"path": "missing.rs"})).is_err());
    assert!(f.call("grep", json!({"pattern": "("})).is_err());
    let m = f.toolbox.lanes().metrics();
    assert_eq!(m.dead_letters, 0);
    // A bad argument fails before it takes a lane slot.
    assert_eq!(m.lane(Lane::Query).submitted, 1);
    assert!(Path::new(&f.root()).exists());
}

// --- The mutating tools -------------------------------------------------------------------

use crate::approvals::{Approvals, ApprovalsConfig, Policy, Prompter};
use crate::edits::{Applier, ApplyOutcome, Change, EditorRequest};

impl Fixture {
    fn allow_changes_on_disk(&self, prompter: Prompter, config: ApprovalsConfig) {
        self.toolbox.set_mutations(Mutations {
            applier: Applier::Disk { dry_run: false },
            approvals: Arc::new(Approvals::new(config, prompter)),
        });
    }

    fn on_disk(&self, path: &str) -> String {
        std::fs::read_to_string(self.root().join(path)).unwrap()
    }
}

fn editing() -> Fixture {
    let f = project();
    f.allow_changes_on_disk(Prompter::AllowAll, ApprovalsConfig::default());
    f
}

#[test]
fn edit_replaces_exact_text_once() {
    let f = editing();
    f.check(
        "edit",
        json!({"path": "src/main.rs", "old_string": "helper();", "new_string": "helper(1);"}),
        expect![[r#"
        edit:
        edited `src/main.rs`: 1 replacement (+1 −1 lines)
    "#]],
    );
    assert_eq!(
        f.on_disk("src/main.rs"),
        "fn main() {\n    println!(\"Hello\");\n    helper(1);\n}\n"
    );
    f.check("edit", json!({"path": "src/main.rs", "old_string": "nowhere", "new_string": "x"}), expect![[r#"
        edit:
        error: `old_string` was not found in `src/main.rs`; read the file again and copy the text exactly, whitespace and indentation included — nothing was changed
    "#]]);
    f.check("edit", json!({"path": "src/main.rs", "old_string": "    ", "new_string": "\t"}), expect![[r#"
        edit:
        error: `old_string` occurs 2 times in `src/main.rs` (lines 2, 3); include more of the surrounding lines to make it unique, or pass `replace_all: true` — nothing was changed
    "#]]);
    f.check("edit", json!({"path": "src/main.rs", "old_string": "    ", "new_string": "\t", "replace_all": true}), expect![[r#"
        edit:
        edited `src/main.rs`: 2 replacements (+2 −2 lines)
    "#]]);
    f.check(
        "edit",
        json!({"path": "src/main.rs", "old_string": "x", "new_string": "x"}),
        expect![[r#"
        edit:
        error: `old_string` and `new_string` are the same; nothing to change
    "#]],
    );
    f.check(
        "edit",
        json!({"path": "image.png", "old_string": "PNG", "new_string": "GIF"}),
        expect![[r#"
        edit:
        error: `image.png` is a binary file; `edit` changes text files only
    "#]],
    );
    let err = f
        .call(
            "edit",
            json!({"path": "../outside.rs", "old_string": "a", "new_string": "b"}),
        )
        .unwrap_err();
    assert!(
        err.message
            .starts_with("`../outside.rs` is outside the workspace"),
        "{}",
        err.message
    );
}

#[test]
fn multi_edit_applies_all_or_nothing() {
    let f = editing();
    let before = f.on_disk("src/lib.rs");
    f.check("multi_edit", json!({"path": "src/lib.rs", "edits": [
        {"old_string": "helper", "new_string": "assist"},
        {"old_string": "missing", "new_string": "x"},
    ]}), expect![[r#"
        multi_edit:
        error: edit 2 of 2: `old_string` was not found in `src/lib.rs`; read the file again and copy the text exactly, whitespace and indentation included — nothing was changed
    "#]]);
    assert_eq!(f.on_disk("src/lib.rs"), before);
    f.check(
        "multi_edit",
        json!({"path": "src/lib.rs", "edits": [
            {"old_string": "helper", "new_string": "assist"},
            {"old_string": "assist()", "new_string": "assist(x: u8)"},
        ]}),
        expect![[r#"
        multi_edit:
        edited `src/lib.rs`: 2 replacements (+1 −1 lines)
    "#]],
    );
    assert_eq!(
        f.on_disk("src/lib.rs"),
        "pub fn assist(x: u8) {\n    // TODO: say hello\n}\n"
    );
    f.check(
        "multi_edit",
        json!({"path": "src/lib.rs", "edits": []}),
        expect![[r#"
        multi_edit:
        error: `edits` must hold at least one edit
    "#]],
    );
}

#[test]
fn write_delete_move_and_copy_change_files() {
    let f = editing();
    f.check(
        "write",
        json!({"path": "notes/todo.md", "content": "# Todo\n- a\n"}),
        expect![[r#"
        write:
        created `notes/todo.md` (2 lines)
    "#]],
    );
    f.check(
        "write",
        json!({"path": "notes/todo.md", "content": "# Todo\n- a\n- b\n"}),
        expect![[r#"
        write:
        wrote `notes/todo.md` (+1 −0 lines)
    "#]],
    );
    f.check(
        "copy",
        json!({"from": "notes/todo.md", "to": "notes/copy.md"}),
        expect![[r#"
        copy:
        copied `notes/todo.md` to `notes/copy.md`
    "#]],
    );
    f.check(
        "move",
        json!({"from": "notes/copy.md", "to": "notes/todo.md"}),
        expect![[r#"
        move:
        error: `notes/todo.md` already exists; choose a new path or delete it first
    "#]],
    );
    f.check(
        "move",
        json!({"from": "notes/copy.md", "to": "archive/old.md"}),
        expect![[r#"
        move:
        moved `notes/copy.md` to `archive/old.md`
    "#]],
    );
    f.check(
        "delete",
        json!({"path": "archive/old.md"}),
        expect![[r#"
        delete:
        deleted `archive/old.md`
    "#]],
    );
    f.check(
        "delete",
        json!({"path": "src"}),
        expect![[r#"
        delete:
        error: `src` is a directory; `delete` removes files only
    "#]],
    );
    assert_eq!(f.on_disk("notes/todo.md"), "# Todo\n- a\n- b\n");
    assert!(!f.root().join("archive/old.md").exists());
}

#[test]
fn a_file_changed_since_it_was_read_is_not_edited() {
    let f = editing();
    let ctx = CallContext {
        session: Some("s1".into()),
        ..CallContext::default()
    };
    let call = |tool: &str, args: Value| {
        let toolbox = f.toolbox.clone();
        let (tool, ctx) = (tool.to_string(), ctx.clone());
        f._runtime
            .block_on(async move { toolbox.run(&tool, args, &ctx).await })
    };
    call("read", json!({"path": "src/main.rs"})).unwrap();
    // The user changes the file after the agent read it.
    std::fs::write(
        f.root().join("src/main.rs"),
        "fn main() {\n    println!(\"Hello\");\n    helper();\n    user_typed();\n}\n",
    )
    .unwrap();
    let err = call(
        "edit",
        json!({"path": "src/main.rs", "old_string": "helper();", "new_string": "helper(2);"}),
    )
    .unwrap_err();
    assert!(
        err.message
            .starts_with("`src/main.rs` changed since you last read it"),
        "{}",
        err.message
    );
    // Read again: the edit goes through, against what the user sees.
    call("read", json!({"path": "src/main.rs"})).unwrap();
    call(
        "edit",
        json!({"path": "src/main.rs", "old_string": "helper();", "new_string": "helper(2);"}),
    )
    .unwrap();
    // Another session never read it: nothing to compare.
    let other = CallContext {
        session: Some("s2".into()),
        ..CallContext::default()
    };
    f._runtime
        .block_on(f.toolbox.run(
            "edit",
            json!({"path": "src/lib.rs", "old_string": "TODO", "new_string": "DONE"}),
            &other,
        ))
        .unwrap();
}

#[test]
fn edits_of_open_buffers_go_to_the_editor_with_their_version() {
    let f = project();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<EditorRequest>(4);
    f.toolbox.set_mutations(Mutations {
        applier: Applier::Editor {
            edits: tx,
            reviews: None,
        },
        approvals: Arc::new(Approvals::new(
            ApprovalsConfig::default(),
            Prompter::AllowAll,
        )),
    });
    let main = f.root().join("src/main.rs");
    f.toolbox
        .documents()
        .open(main.clone(), 7, "fn main() {\n    unsaved();\n}\n");
    let docs = f.toolbox.documents().clone();
    let editor = f._runtime.spawn(async move {
        let request = rx.recv().await.unwrap();
        let change = request.changes.changes[0].clone();
        // As an editor does: apply it to the buffer and report the new version.
        let Change::Edit { path, version, .. } = &change else {
            panic!()
        };
        docs.replace(path, version.unwrap() + 1, change.after().unwrap());
        request.reply.send(ApplyOutcome::Applied).unwrap();
        let request = rx.recv().await.unwrap();
        request
            .reply
            .send(ApplyOutcome::NotApplied {
                reason: "the document version changed".into(),
            })
            .unwrap();
        change
    });
    f.check(
        "edit",
        json!({"path": "src/main.rs", "old_string": "unsaved();", "new_string": "saved();"}),
        expect![[r#"
        edit:
        edited `src/main.rs`: 1 replacement (+1 −1 lines)
    "#]],
    );
    f.check("edit", json!({"path": "src/main.rs", "old_string": "saved();", "new_string": "again();"}), expect![[r#"
        edit:
        error: the change was not applied (edit src/main.rs): the document version changed; read the file again before retrying
    "#]]);
    let change = f._runtime.block_on(editor).unwrap();
    let Change::Edit {
        path,
        version,
        before,
        edits,
    } = change
    else {
        panic!("{change:?}")
    };
    assert_eq!(
        (path, version, &*before),
        (main, Some(7), "fn main() {\n    unsaved();\n}\n")
    );
    assert_eq!(
        crate::edits::apply_text_edits(&before, &edits),
        "fn main() {\n    saved();\n}\n"
    );
    // The server never wrote the file: the disk still has what it had.
    assert_eq!(
        f.on_disk("src/main.rs"),
        "fn main() {\n    println!(\"Hello\");\n    helper();\n}\n"
    );
}

#[test]
fn approvals_ask_reject_and_deny() {
    let f = project();
    f.allow_changes_on_disk(Prompter::Nobody, ApprovalsConfig::default());
    let err = f
        .call(
            "edit",
            json!({"path": "src/lib.rs", "old_string": "TODO", "new_string": "DONE"}),
        )
        .unwrap_err();
    assert!(
        err.message
            .starts_with("`edit` needs the user's approval and nobody can be asked here"),
        "{}",
        err.message
    );
    let names = |f: &Fixture| {
        f.toolbox
            .specs(None)
            .iter()
            .map(|s| s.name.clone())
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        names(&f),
        "read glob grep ls update_plan write edit multi_edit delete move copy"
    );
    let config = ApprovalsConfig {
        delete: Policy::Deny,
        edit: Policy::Allow,
        ..ApprovalsConfig::default()
    };
    f.allow_changes_on_disk(Prompter::Nobody, config);
    assert_eq!(
        names(&f),
        "read glob grep ls update_plan write edit multi_edit move copy"
    );
    let err = f.call("delete", json!({"path": "src/lib.rs"})).unwrap_err();
    assert_eq!(
        err.message,
        "`delete` is turned off by the user's policy (approvals.delete = \"deny\")"
    );
    f.call(
        "edit",
        json!({"path": "src/lib.rs", "old_string": "TODO", "new_string": "DONE"}),
    )
    .unwrap();
    assert!(f.on_disk("src/lib.rs").contains("DONE"));
    // A read-only toolbox offers no mutating tool, and refuses one called anyway.
    let read_only = project();
    assert_eq!(names(&read_only), "read glob grep ls update_plan");
    let err = read_only
        .call("write", json!({"path": "x", "content": "y"}))
        .unwrap_err();
    assert!(
        err.message.contains("cannot change files"),
        "{}",
        err.message
    );
}

#[test]
fn bash_is_off_by_default_and_a_runaway_command_is_killed() {
    let f = editing();
    let err = f.call("bash", json!({"command": "echo hi"})).unwrap_err();
    assert!(
        err.message.contains("approvals.bash = \"deny\""),
        "{}",
        err.message
    );
    f.allow_changes_on_disk(
        Prompter::AllowAll,
        ApprovalsConfig {
            bash: Policy::Allow,
            ..ApprovalsConfig::default()
        },
    );
    f.check(
        "bash",
        json!({"command": "echo out; echo err >&2; exit 3"}),
        expect![[r#"
        bash:
        $ echo out; echo err >&2; exit 3
        (exit code 3)
        stdout:
        out
        stderr:
        err
    "#]],
    );
    let started = Instant::now();
    let out = f
        .call(
            "bash",
            json!({"command": "echo started; sleep 30 & sleep 30", "timeout_ms": 300}),
        )
        .unwrap();
    let ToolOutput::Bash(out) = out else { panic!() };
    assert!(out.timed_out && out.exit_code.is_none(), "{out:?}");
    assert_eq!(out.stdout, "started\n");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    // Its working directory is the workspace root.
    let ToolOutput::Bash(pwd) = f.call("bash", json!({"command": "pwd"})).unwrap() else {
        panic!()
    };
    assert_eq!(pwd.stdout.trim(), f.root().display().to_string());
}

#[test]
fn every_tool_runs_as_the_table_says() {
    let samples = [
        (Tool::Read, json!({"path": "a"})),
        (Tool::Glob, json!({"pattern": "*"})),
        (Tool::Grep, json!({"pattern": "x"})),
        (Tool::Ls, json!({})),
        (Tool::UpdatePlan, json!({"plan": []})),
        (Tool::Write, json!({"path": "a", "content": ""})),
        (
            Tool::Edit,
            json!({"path": "a", "old_string": "x", "new_string": "y"}),
        ),
        (
            Tool::MultiEdit,
            json!({"path": "a", "edits": [{"old_string": "x", "new_string": "y"}]}),
        ),
        (Tool::Delete, json!({"path": "a"})),
        (Tool::Move, json!({"from": "a", "to": "b"})),
        (Tool::Copy, json!({"from": "a", "to": "b"})),
        (Tool::Bash, json!({"command": "true"})),
    ];
    assert_eq!(samples.len(), Tool::all().len());
    for (tool, args) in samples {
        let call = Call::parse(tool, &args).unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert_eq!(call.effect(), tool.effect(), "{tool}");
        if let Call::Change(mutation) = call {
            assert_eq!(mutation.tool(), tool);
        }
    }
}

#[test]
fn the_paths_a_call_changes() {
    let f = fixture(&[("a.rs", b"a")]);
    let root = f.root();
    let args = json!({"from": "a.rs", "to": "b/c.rs"});
    assert_eq!(
        f.toolbox.changed_paths("move", &args),
        [root.join("a.rs"), root.join("b/c.rs")]
    );
    assert_eq!(
        f.toolbox.changed_paths("copy", &args),
        [root.join("b/c.rs")]
    );
    assert!(
        f.toolbox
            .changed_paths("read", &json!({"path": "a.rs"}))
            .is_empty()
    );
    let outside = json!({"path": "../x", "content": ""});
    assert!(f.toolbox.changed_paths("write", &outside).is_empty());
}

/// A cancelled call of a fused walk answers "cancelled"; the others get their results, as
/// alone, with hidden files, ignore files and nested starts in play.
#[test]
fn cancelling_one_fused_search_stops_only_its_share() {
    let f = fixture(&[
        (".git/HEAD", b"ref: refs/heads/main\n"),
        (".gitignore", b"build/\n*.log\n"),
        ("src/a.rs", b"fn main() {}\n// TODO one\n"),
        ("src/deep/b.rs", b"fn b() {}\n"),
        ("build/out.rs", b"fn built() {}\n"),
        ("x.log", b"fn logged() {}\n"),
        (".hidden/c.rs", b"fn hidden() {}\n"),
        ("docs/d.md", b"TODO two\n"),
    ]);
    let grep = |args: Value| {
        fuse::Query::Grep(GrepArgs::parse(&Args::new("grep", &args).unwrap()).unwrap())
    };
    let glob = |args: Value| {
        fuse::Query::Glob(GlobArgs::parse(&Args::new("glob", &args).unwrap()).unwrap())
    };
    let queries = [
        grep(json!({"pattern": "fn \\w+"})),
        grep(json!({"pattern": "TODO", "output": "files"})),
        grep(json!({"pattern": "fn", "path": "src/deep"})),
        glob(json!({"pattern": "**/*.rs", "include_hidden": true, "include_ignored": true})),
        glob(json!({"pattern": "*.md"})),
    ];
    let toolbox = &f.toolbox;
    let config = toolbox.inner.tools_config();
    // Runs a batch with the calls `cancelled` cancelled.
    let run = |queries: &[fuse::Query], cancelled: &[usize]| {
        let tokens: Vec<CancellationToken> =
            queries.iter().map(|_| CancellationToken::new()).collect();
        for &i in cancelled {
            tokens[i].cancel();
        }
        let (workspace, documents) = (toolbox.workspace(), toolbox.documents());
        fuse::run(queries, &tokens, workspace, documents, &config)
    };
    let results = run(&queries, &[1]);
    let alone = [
        f.call("grep", json!({"pattern": "fn \\w+"})),
        Err(ToolError::new("cancelled")),
        f.call("grep", json!({"pattern": "fn", "path": "src/deep"})),
        f.call(
            "glob",
            json!({"pattern": "**/*.rs", "include_hidden": true, "include_ignored": true}),
        ),
        f.call("glob", json!({"pattern": "*.md"})),
    ];
    assert_eq!(results, alone);
    let ToolOutput::Glob(all) = &results[3].clone().unwrap() else {
        panic!("a glob")
    };
    assert_eq!(all.total, 4, "{:?}", all.paths);
    let ToolOutput::Grep(found) = &results[0].clone().unwrap() else {
        panic!("a grep")
    };
    let files: Vec<&str> = found.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(files, ["src/a.rs", "src/deep/b.rs"]);

    // Calls that all walk the tree alike share one walk of their own (the walkers share
    // out its units as one call's walkers do): cancelling one leaves the others whole, and
    // cancelling all answers each "cancelled".
    let queries = [
        grep(json!({"pattern": "fn \\w+"})),
        grep(json!({"pattern": "TODO", "output": "files"})),
        glob(json!({"pattern": "*.md"})),
    ];
    let alone = [
        f.call("grep", json!({"pattern": "fn \\w+"})),
        Err(ToolError::new("cancelled")),
        f.call("glob", json!({"pattern": "*.md"})),
    ];
    assert_eq!(run(&queries, &[1]), alone);
    let cancelled = run(&queries, &[0, 1, 2]);
    assert!(
        cancelled
            .iter()
            .all(|r| r == &Err(ToolError::new("cancelled"))),
        "{cancelled:?}"
    );
}
