//! Open buffers as the tools see them: `didOpen`/`didChange`/`didClose` keep an overlay that
//! `switchyard.runTool` (read, grep) reads before the disk. Incremental changes are applied
//! in the negotiated encoding, with emoji, CJK, combining marks and CRLF in the way.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard::lsp::ext::{RunTool, RunToolParams, RunToolResult};
use switchyard_tests::lsp_client::lsp_types::notification::{
    DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument,
};
use switchyard_tests::lsp_client::lsp_types::{
    DidChangeTextDocumentParams, DidCloseTextDocumentParams, DidOpenTextDocumentParams,
    GeneralClientCapabilities, Position, PositionEncodingKind, Range,
    TextDocumentContentChangeEvent, TextDocumentIdentifier, TextDocumentItem,
    VersionedTextDocumentIdentifier,
};
use switchyard_tests::lsp_client::{ClientOptions, LspClient, file_url, within};

const LIMIT: Duration = Duration::from_secs(60);

/// On disk: no marker anywhere.
const DISK: &str = "// saved text\r\nfn main() {}\r\n";

async fn tool(client: &LspClient, name: &str, arguments: Value) -> RunToolResult {
    client
        .command::<RunTool>(RunToolParams {
            name: name.into(),
            arguments,
        })
        .await
        .unwrap_or_else(|e| panic!("{name} failed: {e:?}; stderr:\n{}", client.stderr()))
}

/// The text of the lines grep finds for `pattern`.
async fn grep(client: &LspClient, pattern: &str) -> Vec<String> {
    let result = tool(
        client,
        "grep",
        json!({"pattern": pattern, "output": "content"}),
    )
    .await;
    result.output["files"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|file| file["lines"].as_array().unwrap().clone())
        .map(|line| line["text"].as_str().unwrap().to_string())
        .collect()
}

fn edit(line: u32, from: u32, to: u32, text: &str) -> TextDocumentContentChangeEvent {
    TextDocumentContentChangeEvent {
        range: Some(Range::new(
            Position::new(line, from),
            Position::new(line, to),
        )),
        range_length: None,
        text: text.into(),
    }
}

/// Opens `src/lib.rs` with emoji, CJK and a combining mark before the spot the edits
/// target, edits it with `columns` (the spot's column in the negotiated encoding), and
/// checks what the tools see; then closes it and checks the disk is back.
async fn edit_unsaved_buffer(encodings: Option<Vec<PositionEncodingKind>>, column: u32) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    let path = dir.path().join("src/lib.rs");
    std::fs::write(&path, DISK).unwrap();
    let mut options = ClientOptions::new(dir.path());
    options.capabilities.general = encodings.map(|encodings| GeneralClientCapabilities {
        position_encodings: Some(encodings),
        ..GeneralClientCapabilities::default()
    });
    let (client, _) = LspClient::initialized(options).await;
    let uri = file_url(&path);

    // Line 1 is `let s = "😀中e\u{301}X";` and the edits replace the X.
    let opened = "// buffer text\r\nlet s = \"😀中e\u{301}X\";\r\n";
    client
        .server
        .notify::<DidOpenTextDocument>(DidOpenTextDocumentParams {
            text_document: TextDocumentItem {
                uri: uri.clone(),
                language_id: "rust".into(),
                version: 1,
                text: opened.into(),
            },
        })
        .unwrap();
    client
        .server
        .notify::<DidChangeTextDocument>(DidChangeTextDocumentParams {
            text_document: VersionedTextDocumentIdentifier {
                uri: uri.clone(),
                version: 2,
            },
            content_changes: vec![
                // Replace the X, then append after the closing `";` of the same line.
                edit(1, column, column + 1, "unsaved_marker"),
                edit(1, column + 16, column + 16, " // 👍 done"),
                // Join line 0 and line 1: the CRLF between them is one line break.
                TextDocumentContentChangeEvent {
                    range: Some(Range::new(Position::new(0, 14), Position::new(1, 0))),
                    range_length: None,
                    text: " | ".into(),
                },
            ],
        })
        .unwrap();

    let lines = grep(&client, "unsaved_marker").await;
    assert_eq!(
        lines,
        ["// buffer text | let s = \"😀中e\u{301}unsaved_marker\"; // 👍 done"],
        "the edits landed elsewhere"
    );
    let read = tool(&client, "read", json!({"path": "src/lib.rs"})).await;
    assert!(
        read.text.contains("(unsaved editor buffer, version 2)"),
        "{}",
        read.text
    );
    assert!(
        grep(&client, "saved text").await.is_empty(),
        "the disk was read"
    );

    client
        .server
        .notify::<DidCloseTextDocument>(DidCloseTextDocumentParams {
            text_document: TextDocumentIdentifier { uri },
        })
        .unwrap();
    assert!(
        grep(&client, "unsaved_marker").await.is_empty(),
        "the buffer outlived its close"
    );
    assert_eq!(grep(&client, "saved text").await, ["// saved text"]);
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        DISK,
        "the server wrote the file"
    );
    client.shutdown_and_exit().await;
}

#[tokio::test]
async fn unsaved_utf16_edits_are_seen_by_grep_and_read() {
    // 😀 is 2 UTF-16 units; 中, e and the combining accent 1 each: the X is at 9 + 5.
    within(LIMIT, edit_unsaved_buffer(None, 14)).await;
}

#[tokio::test]
async fn unsaved_utf8_edits_are_seen_by_grep_and_read() {
    // In bytes: 😀 4, 中 3, e 1, the accent 2: the X is at 9 + 10.
    let offered = vec![PositionEncodingKind::UTF16, PositionEncodingKind::UTF8];
    within(LIMIT, edit_unsaved_buffer(Some(offered), 19)).await;
}

#[tokio::test]
async fn tool_errors_are_errors_with_the_tools_message() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let (client, _) = LspClient::initialized(ClientOptions::new(dir.path())).await;
        let error = client
            .command::<RunTool>(RunToolParams {
                name: "teleport".into(),
                arguments: json!({}),
            })
            .await
            .unwrap_err();
        assert_eq!(error.code.0, -32602, "{error:?}");
        assert!(
            error.message.contains("unknown tool `teleport`"),
            "{error:?}"
        );
        let error = client
            .command::<RunTool>(RunToolParams {
                name: "read".into(),
                arguments: json!({"path": "missing.rs"}),
            })
            .await
            .unwrap_err();
        assert_eq!(error.code.0, -32803, "{error:?}");
        assert!(error.message.contains("missing.rs"), "{error:?}");
        client.shutdown_and_exit().await;
    })
    .await;
}
