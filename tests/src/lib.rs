//! Shared pieces of Switchyard's end-to-end suites: locating the built binary, fixtures,
//! the mock model server and the LSP client harness.

use std::path::PathBuf;

pub mod cli;
pub mod lsp_client;
pub mod mock_model;
pub mod nats;

/// The `switchyard` binary that `cargo test` built for this workspace.
pub fn switchyard_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("SWITCHYARD_BIN") {
        return PathBuf::from(path);
    }
    let mut dir = std::env::current_exe().expect("test executable path");
    dir.pop(); // deps/
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(format!("switchyard{}", std::env::consts::EXE_SUFFIX))
}

/// Writes the small workspace the agent suites share into `dir`: `src/main.rs`, a program
/// that prints `hello`, and a `README.md`.
pub fn hello_workspace(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("src")).expect("the workspace folder can be written");
    std::fs::write(
        dir.join("src/main.rs"),
        "fn main() {\n    println!(\"hello\");\n}\n",
    )
    .expect("the workspace folder can be written");
    std::fs::write(dir.join("README.md"), "# Demo\nSays hello.\n")
        .expect("the workspace folder can be written");
}

/// How the summarizer's prompt begins: what tells a compaction request apart in a mock
/// model's log.
pub const SUMMARIZER: &str = "You compact the conversation of a coding agent";

/// Writes `big.txt` into `dir`: 60 long lines, so that a few reads of it fill a small
/// context window.
pub fn write_big_file(dir: &std::path::Path) {
    let big: String = (0..60)
        .map(|n| format!("line {n:02} of a large file, padded to be long enough to matter\n"))
        .collect();
    std::fs::write(dir.join("big.txt"), big).expect("the workspace folder can be written");
}

/// An OpenAI-format script that refuses the first request with a 429 asking for a wait of
/// `retry_after` seconds, then answers `answer`.
pub fn rate_limited_then(retry_after: u64, answer: &str) -> mock_model::Script {
    use mock_model::{ErrorReply, Response, Rule, Script};
    Script::new(vec![
        Rule::openai(Response::error(
            ErrorReply::new(429).retry_after(retry_after),
        )),
        Rule::openai(Response::text(answer)),
    ])
}

/// The script of a long session, in either wire format: every summary request answered
/// with `summary`, then `reads` turns that each read `big.txt`, then `answer`.
pub fn rereading_script(reads: u32, summary: &str, answer: &str) -> mock_model::Script {
    use mock_model::{Response, Rule, Script, ToolCall};
    Script::new(vec![
        Rule::new(Response::text(summary))
            .contains(SUMMARIZER)
            .repeat(),
        Rule::new(Response::tool_calls(vec![ToolCall::new(
            "read",
            serde_json::json!({"path": "big.txt"}),
        )]))
        .times(reads),
        Rule::new(Response::text(answer)).repeat(),
    ])
}

/// Asserts that no request a mock model logged was over `window` tokens or failed, and
/// returns how many of them were summary requests (compactions).
pub fn summaries_within(requests: &[mock_model::RecordedRequest], window: u64) -> usize {
    let over: Vec<(u64, u64)> = requests
        .iter()
        .filter(|r| r.tokens() > window || r.status != 200)
        .map(|r| (r.seq, r.tokens()))
        .collect();
    assert!(
        over.is_empty(),
        "requests above the window or failed: {over:?}"
    );
    requests
        .iter()
        .filter(|r| r.raw_body.contains(SUMMARIZER))
        .count()
}

/// Asserts that a mock model refused at least one prompt as too long (status 400), and
/// that each refusal was followed by a compaction and a retry that went through.
pub fn assert_refusals_compacted_and_retried(requests: &[mock_model::RecordedRequest]) {
    let rejected: Vec<usize> = requests
        .iter()
        .enumerate()
        .filter(|(_, r)| r.status == 400)
        .map(|(i, _)| i)
        .collect();
    assert!(
        !rejected.is_empty(),
        "the server refused a prompt as too long"
    );
    for at in rejected {
        assert!(
            requests[at + 1].raw_body.contains(SUMMARIZER),
            "a refusal is followed by a compaction"
        );
        assert_eq!(requests[at + 2].status, 200, "and the retry goes through");
    }
}
