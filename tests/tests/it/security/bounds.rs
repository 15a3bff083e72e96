//! Inputs that must stay linear or bounded, and names and files that must not mislead:
//! an `edit` of every line of an 83,000-line file, a 20 MiB tool-call argument in one SSE
//! event (and one over the 64 MiB cap), a 50 MB editor buffer under incremental edits while
//! stats are asked for, file names with newlines or bytes that are not UTF-8, and the modes
//! of session files. Figures are in `server/benches/bounds.rs`; the time limits here only
//! keep a regression from hanging the suite.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use switchyard_tests::cli;
pub(crate) use switchyard_tests::cli::Output;

use serde_json::{Value, json};
use switchyard::lanes::Lane;
use switchyard::lsp::ext::{NoParams, QueueStats, RunTool, RunToolParams};
use switchyard_tests::lsp_client::lsp_types::notification::{
    DidChangeTextDocument, DidOpenTextDocument,
};
use switchyard_tests::lsp_client::lsp_types::{
    DidChangeTextDocumentParams, DidOpenTextDocumentParams, Position, Range,
    TextDocumentContentChangeEvent, TextDocumentItem, VersionedTextDocumentIdentifier,
};
use switchyard_tests::lsp_client::{ClientOptions, LspClient, file_url, within};
use switchyard_tests::mock_model::{MockModel, Response, Rule, Script, ToolCall};

/// Only a guard against a hang: every run here takes a few seconds at most.
pub(crate) const HANG_GUARD: Duration = Duration::from_secs(60);

/// Held by the tests that move tens of megabytes, so they do not run at once and starve
/// each other on a small machine (a failed one poisons it harmlessly).
static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn heavy() -> std::sync::MutexGuard<'static, ()> {
    HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `switchyard ARGS` in `root`, with a private state and config home under `home` and, if
/// given, `model` as an OpenAI-compatible provider.
pub(crate) fn switchyard(home: &Path, model: Option<&MockModel>, args: &[&OsStr]) -> Command {
    let mut command = cli::switchyard(home, args);
    command
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("SWITCHYARD_LANES__GENERATE__RETRY__BASE_DELAY_MS", "10")
        .env("SWITCHYARD_LANES__GENERATE__RETRY__MAX_DELAY_MS", "50");
    if let Some(model) = model {
        command
            .env("SWITCHYARD_PROVIDER", "openai")
            .env("SWITCHYARD_MODEL", "mock-model")
            .env("OPENAI_BASE_URL", model.openai_base_url())
            .env("OPENAI_API_KEY", "sk-security-key");
    }
    command
}

/// Runs `command` to its end; kills it by its PID and fails past [`HANG_GUARD`].
pub(crate) fn run(command: Command) -> Output {
    cli::run(command, HANG_GUARD)
}

/// `switchyard tool NAME ARGS --cwd ROOT` plus `extra`.
fn tool(root: &Path, name: &str, args: Value, extra: &[&str]) -> Output {
    let home = root.join(".home");
    let args = args.to_string();
    let mut argv: Vec<&OsStr> = vec![
        OsStr::new("tool"),
        OsStr::new(name),
        OsStr::new(&args),
        OsStr::new("--cwd"),
        root.as_os_str(),
    ];
    argv.extend(extra.iter().map(OsStr::new));
    run(switchyard(&home, None, &argv))
}

#[test]
fn an_edit_of_every_line_of_83000_lines_finishes_with_the_right_file() {
    let _heavy = heavy();
    let dir = tempfile::tempdir().unwrap();
    let line = |i: usize, call: &str| format!("let value_{i} = {call}({i});\n");
    let before: String = (0..83_000).map(|i| line(i, "compute")).collect();
    let after: String = (0..83_000).map(|i| line(i, "recompute")).collect();
    std::fs::write(dir.path().join("big.rs"), &before).unwrap();
    let out = tool(
        dir.path(),
        "edit",
        json!({
            "path": "big.rs",
            "old_string": " = compute(",
            "new_string": " = recompute(",
            "replace_all": true,
        }),
        &["--yes"],
    );
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout.contains("83000 replacements") || out.stdout.contains("83,000 replacements"),
        "{}",
        out.stdout
    );
    assert!(
        std::fs::read_to_string(dir.path().join("big.rs")).unwrap() == after,
        "the file is not the edited text"
    );
}

/// A script whose first answer is one `write` call with `content` as a single SSE event,
/// and whose second says it is done.
fn one_big_event(content: &str) -> Script {
    Script::new(vec![
        Rule::openai(
            Response::tool_calls(vec![ToolCall::new(
                "write",
                json!({"path": "big.txt", "content": content}),
            )])
            // Larger than the arguments: they go in one event.
            .chunk_size(content.len() + 1024)
            .usage(100, 100),
        )
        .turn(0),
        Rule::openai(Response::text("Written.").usage(100, 100)).turn(1),
    ])
}

#[test]
fn a_20_mib_argument_in_one_event_is_received_whole() {
    let _heavy = heavy();
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    // 20 MiB of varied lines, so a lost or repeated piece shows.
    let mut content = String::with_capacity(21 << 20);
    let mut i = 0u64;
    while content.len() < 20 << 20 {
        content.push_str(&format!("line {i:08} of the generated file\n"));
        i += 1;
    }
    let model = MockModel::start_with(one_big_event(&content), Default::default()).unwrap();
    let out = run(switchyard(
        home.path(),
        Some(&model),
        &[
            OsStr::new("ask"),
            OsStr::new("--yes"),
            OsStr::new("--cwd"),
            dir.path().as_os_str(),
            OsStr::new("Write the big file."),
        ],
    ));
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout.trim(), "Written.");
    let written = std::fs::read_to_string(dir.path().join("big.txt")).unwrap();
    assert!(
        written == content,
        "the file differs from the argument sent"
    );
}

#[test]
fn an_event_over_the_cap_is_a_clear_error() {
    let _heavy = heavy();
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let content = "x".repeat(65 << 20);
    let model = MockModel::start_with(one_big_event(&content), Default::default()).unwrap();
    drop(content);
    let out = run(switchyard(
        home.path(),
        Some(&model),
        &[
            OsStr::new("ask"),
            OsStr::new("--yes"),
            OsStr::new("--cwd"),
            dir.path().as_os_str(),
            OsStr::new("Write the big file."),
        ],
    ));
    assert_eq!(out.code, Some(1), "stderr: {}", out.stderr);
    assert!(
        out.stderr.contains("larger than 64 MiB"),
        "stderr: {}",
        out.stderr
    );
    assert_eq!(
        model.requests().len(),
        1,
        "an oversized event is not retried"
    );
    assert!(!dir.path().join("big.txt").exists());
}

#[test]
fn a_name_with_a_newline_forges_no_row_and_reads_back_escaped() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.rs"), "fn main() { needle(); }\n").unwrap();
    let evil = "evil\nmain.rs:7:fn forged() { needle(); }";
    std::fs::write(dir.path().join(evil), "needle in the evil file\n").unwrap();
    let shown = r#""evil\nmain.rs:7:fn forged() { needle(); }""#;

    let grep = tool(
        dir.path(),
        "grep",
        json!({"pattern": "needle", "output": "content"}),
        &[],
    );
    assert_eq!(grep.code, Some(0), "stderr: {}", grep.stderr);
    assert!(
        !grep.stdout.lines().any(|l| l.starts_with("main.rs:7:")),
        "a forged row:\n{}",
        grep.stdout
    );
    assert!(grep.stdout.contains(shown), "{}", grep.stdout);
    for (name, args) in [("glob", json!({"pattern": "*"})), ("ls", json!({}))] {
        let out = tool(dir.path(), name, args, &[]);
        assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
        assert!(
            !out.stdout
                .lines()
                .any(|l| l.contains("main.rs:7:") && !l.contains(shown)),
            "{name} shows the raw name:\n{}",
            out.stdout
        );
        assert!(out.stdout.contains(shown), "{name}:\n{}", out.stdout);
    }

    let read = tool(dir.path(), "read", json!({"path": shown}), &[]);
    assert_eq!(read.code, Some(0), "stderr: {}", read.stderr);
    assert!(
        read.stdout.contains("needle in the evil file"),
        "{}",
        read.stdout
    );
}

#[test]
fn a_name_that_is_not_utf8_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let name = OsStr::from_bytes(b"caf\xe9.txt");
    std::fs::write(dir.path().join(name), "latin-1 named\n").unwrap();
    let shown = r#""caf\xE9.txt""#;
    let ls = tool(dir.path(), "ls", json!({}), &[]);
    assert!(ls.stdout.contains(shown), "{}", ls.stdout);
    assert!(!ls.stdout.contains('\u{fffd}'), "{}", ls.stdout);

    let read = tool(dir.path(), "read", json!({"path": shown}), &[]);
    assert_eq!(read.code, Some(0), "stderr: {}", read.stderr);
    assert!(read.stdout.contains("latin-1 named"), "{}", read.stdout);
    // What the tools show, they take back: an edit reaches the same file.
    let edit = tool(
        dir.path(),
        "edit",
        json!({"path": shown, "old_string": "latin-1", "new_string": "Latin-1"}),
        &["--yes"],
    );
    assert_eq!(edit.code, Some(0), "stderr: {}", edit.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join(name)).unwrap(),
        "Latin-1 named\n"
    );
}

fn session_files(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(session_files(&path));
        } else if path.extension().is_some_and(|e| e == "jsonl") {
            found.push(path);
        }
    }
    found
}

#[test]
fn session_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let model = MockModel::start_with(
        Script::new(vec![Rule::openai(Response::text("Hello.")).repeat()]),
        Default::default(),
    )
    .unwrap();
    let ask = |extra: &[&str]| {
        let mut argv: Vec<&OsStr> = vec![
            OsStr::new("ask"),
            OsStr::new("--cwd"),
            dir.path().as_os_str(),
        ];
        argv.extend(extra.iter().map(OsStr::new));
        argv.push(OsStr::new("Hi"));
        run(switchyard(home.path(), Some(&model), &argv))
    };
    let out = ask(&[]);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let files = session_files(&home.path().join("state"));
    assert_eq!(files.len(), 1);
    let file = &files[0];
    let folder = file.parent().unwrap();
    assert_eq!(mode(file), 0o600, "{}", file.display());
    assert_eq!(mode(folder), 0o700, "{}", folder.display());

    // One an older version left world-readable is narrowed when continued.
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o755)).unwrap();
    let id = file.file_stem().unwrap().to_str().unwrap().to_owned();
    let out = ask(&["--session", &id]);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(mode(file), 0o600);
    assert_eq!(mode(folder), 0o700);
}

/// 50 MB of numbered lines, then 100 incremental edits with `switchyard.queueStats` asked
/// after each tenth: every stats request is answered, and the buffer the tools read holds
/// every edit. Applying an edit must not cost a pass over the buffer: the 100 edits, stats
/// included, take less time than the one `didOpen` that brought the buffer (each edit used
/// to copy and re-index all 50 MB, several times what opening it costs).
#[test]
fn a_50_mb_buffer_takes_incremental_edits_while_stats_answer() {
    let _heavy = heavy();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(within(HANG_GUARD * 3, async {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.txt");
        let line = |i: usize| format!("line {i:07} of a very large open buffer, padded out\n");
        let lines = 50_000_000 / line(0).len();
        let text: String = (0..lines).map(line).collect();
        std::fs::write(&path, "on disk\n").unwrap();
        let (client, _) = LspClient::initialized(ClientOptions::new(dir.path())).await;
        let uri = file_url(&path);
        let stats = || async {
            let stats = client
                .command::<QueueStats>(NoParams {})
                .await
                .unwrap_or_else(|e| panic!("queueStats failed: {e:?}"));
            assert_eq!(stats.lane(Lane::Query).running, 0);
        };

        let opening = Instant::now();
        client
            .server
            .notify::<DidOpenTextDocument>(DidOpenTextDocumentParams {
                text_document: TextDocumentItem {
                    uri: uri.clone(),
                    language_id: "plaintext".into(),
                    version: 1,
                    text,
                },
            })
            .unwrap();
        stats().await;
        let open = opening.elapsed();

        let editing = Instant::now();
        let mut answered = 0;
        for edit in 0..100u32 {
            // Edit k replaces the start of line k * 1000 (`line`) with `EDIT-k`.
            let at = edit * 1000;
            client
                .server
                .notify::<DidChangeTextDocument>(DidChangeTextDocumentParams {
                    text_document: VersionedTextDocumentIdentifier {
                        uri: uri.clone(),
                        version: 2 + edit as i32,
                    },
                    content_changes: vec![TextDocumentContentChangeEvent {
                        range: Some(Range::new(Position::new(at, 0), Position::new(at, 4))),
                        range_length: None,
                        text: format!("EDIT-{edit}"),
                    }],
                })
                .unwrap();
            if edit % 10 == 9 {
                stats().await;
                answered += 1;
            }
        }
        let edits = editing.elapsed();
        assert_eq!(answered, 10);
        assert!(
            edits < open,
            "100 edits and 10 stats took {edits:?}, more than opening the buffer ({open:?})"
        );

        let grep = client
            .command::<RunTool>(RunToolParams {
                name: "grep".into(),
                arguments: json!({"pattern": "^EDIT-", "output": "content"}),
            })
            .await
            .unwrap();
        let found: Vec<String> = grep.output["files"][0]["lines"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["text"].as_str().unwrap().to_owned())
            .collect();
        let expected: Vec<String> = (0..100)
            .map(|k| {
                let full = line(k * 1000);
                format!("EDIT-{k}{}", full[4..].trim_end())
            })
            .collect();
        assert_eq!(found, expected);
        client.shutdown_and_exit().await;
    }));
}
