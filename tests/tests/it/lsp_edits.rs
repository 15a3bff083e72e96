//! Edits reach the files through the editor: the mutating tools, run over LSP, become
//! `workspace/applyEdit` requests the client applies — to unsaved buffers, with versions
//! checked, resource operations when the client has them and the `changes` map when not,
//! ranges in the negotiated encoding — and approvals are `window/showMessageRequest`s.
//! The server never writes a file itself: after every test the disk is checked.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use switchyard::lsp::ext::{RunTool, RunToolParams, RunToolResult};
use switchyard_tests::lsp_client::lsp_types::{
    ClientCapabilities, DocumentChangeOperation, DocumentChanges, GeneralClientCapabilities,
    PositionEncodingKind, ResourceOp, ResourceOperationKind, WorkspaceClientCapabilities,
    WorkspaceEditClientCapabilities,
};
use switchyard_tests::lsp_client::{
    ClientOptions, EditAnswer, LspClient, ResponseError, ServerEvent, within,
};

const LIMIT: Duration = Duration::from_secs(60);

const MAIN: &str = "fn main() {\n    println!(\"hello\");\n    helper();\n}\n";

fn capabilities(document_changes: bool, resources: bool, encodings: &[&str]) -> ClientCapabilities {
    let resource_operations = resources.then(|| {
        vec![
            ResourceOperationKind::Create,
            ResourceOperationKind::Rename,
            ResourceOperationKind::Delete,
        ]
    });
    ClientCapabilities {
        workspace: Some(WorkspaceClientCapabilities {
            apply_edit: Some(true),
            workspace_edit: Some(WorkspaceEditClientCapabilities {
                document_changes: Some(document_changes),
                resource_operations,
                ..WorkspaceEditClientCapabilities::default()
            }),
            ..WorkspaceClientCapabilities::default()
        }),
        general: (!encodings.is_empty()).then(|| GeneralClientCapabilities {
            position_encodings: Some(
                encodings
                    .iter()
                    .map(|e| PositionEncodingKind::from(e.to_string()))
                    .collect(),
            ),
            ..GeneralClientCapabilities::default()
        }),
        ..ClientCapabilities::default()
    }
}

struct Workspace {
    dir: tempfile::TempDir,
    client: LspClient,
}

impl Workspace {
    async fn start(caps: ClientCapabilities, settings: Value) -> Workspace {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("src")).unwrap();
        std::fs::write(dir.path().join("src/main.rs"), MAIN).unwrap();
        let mut options = ClientOptions::new(dir.path());
        options.capabilities = caps;
        options.initialization_options = Some(settings);
        let (client, _) = LspClient::initialized(options).await;
        Workspace { dir, client }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    async fn tool(&self, name: &str, arguments: Value) -> Result<RunToolResult, ResponseError> {
        self.client
            .command::<RunTool>(RunToolParams {
                name: name.into(),
                arguments,
            })
            .await
    }

    async fn ok(&self, name: &str, arguments: Value) -> String {
        match self.tool(name, arguments).await {
            Ok(result) => result.text,
            Err(e) => panic!(
                "{name} failed: {}; stderr:\n{}",
                e.message,
                self.client.stderr()
            ),
        }
    }

    async fn err(&self, name: &str, arguments: Value) -> String {
        match self.tool(name, arguments).await {
            Ok(result) => panic!("{name} should have failed, got: {}", result.text),
            Err(e) => e.message,
        }
    }

    fn buffer(&self, rel: &str) -> Option<String> {
        self.client
            .editor
            .lock()
            .text(&self.path(rel))
            .map(str::to_string)
    }

    fn disk(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path(rel)).unwrap()
    }

    fn edits_sent(&mut self) -> Vec<ServerEvent> {
        self.client
            .drain_events()
            .into_iter()
            .filter(|e| matches!(e, ServerEvent::ApplyEdit(_)))
            .collect()
    }
}

fn rich() -> ClientCapabilities {
    capabilities(true, true, &[])
}

#[tokio::test]
async fn an_edit_is_applied_by_the_editor_and_never_written_by_the_server() {
    within(LIMIT, async {
        let mut ws = Workspace::start(rich(), json!({})).await;
        let text = ws.ok("edit", json!({"path": "src/main.rs", "old_string": "helper();", "new_string": "helper(42);"})).await;
        assert_eq!(text, "edited `src/main.rs`: 1 replacement (+1 −1 lines)\n");
        assert_eq!(ws.buffer("src/main.rs").unwrap(), MAIN.replace("helper();", "helper(42);"));
        assert_eq!(ws.disk("src/main.rs"), MAIN, "the server never writes the user's files");
        let sent = ws.edits_sent();
        let [ServerEvent::ApplyEdit(params)] = sent.as_slice() else { panic!("{sent:?}") };
        assert_eq!(params.label.as_deref(), Some("edit src/main.rs"), "a readable undo label");
        // The approval was asked (the default policy for edit is `ask`).
        let asked = ws.client.history.iter().any(|e| {
            matches!(e, ServerEvent::ShowMessageRequest(p) if p.message.contains("edit `src/main.rs`"))
        });
        assert!(asked, "no approval prompt was shown");
    })
    .await;
}

#[tokio::test]
async fn an_edit_lands_in_an_open_unsaved_modified_buffer() {
    within(LIMIT, async {
        let mut ws = Workspace::start(rich(), json!({"approvals": {"edit": "allow"}})).await;
        let main = ws.path("src/main.rs");
        let unsaved = MAIN.replace("helper();", "helper();\n    typed_by_the_user();");
        {
            let mut editor = ws.client.editor.lock();
            editor.open(&main, MAIN);
            editor.type_text(&main, &unsaved);
        }
        // The edit is computed against what the user sees: the unsaved text.
        ws.ok("edit", json!({"path": "src/main.rs", "old_string": "typed_by_the_user();", "new_string": "kept_and_edited();"})).await;
        assert_eq!(ws.buffer("src/main.rs").unwrap(), MAIN.replace("helper();", "helper();\n    kept_and_edited();"));
        assert_eq!(ws.disk("src/main.rs"), MAIN);
        let sent = ws.edits_sent();
        let [ServerEvent::ApplyEdit(params)] = sent.as_slice() else { panic!("{sent:?}") };        // lsp-types reads a list of text edits alone as the `Edits` form.
        let Some(DocumentChanges::Edits(edits)) = &params.edit.document_changes else { panic!("{params:?}") };
        let [edit] = edits.as_slice() else { panic!("{edits:?}") };
        assert_eq!(edit.text_document.version, Some(2), "versioned against the buffer the user sees");
    })
    .await;
}

#[tokio::test]
async fn a_buffer_changed_since_the_edit_was_computed_is_not_clobbered() {
    within(LIMIT, async {
        let ws = Workspace::start(rich(), json!({"approvals": {"edit": "allow"}})).await;
        let main = ws.path("src/main.rs");
        ws.client.editor.lock().open(&main, MAIN);
        // The user types just as the edit arrives: the editor refuses the stale version.
        ws.client.editor.lock().edit_answers.push_back(EditAnswer::TypeFirst("// typed\n".into()));
        let err = ws.err("edit", json!({"path": "src/main.rs", "old_string": "helper();", "new_string": "helper(1);"})).await;
        assert!(err.contains("the change was not applied") && err.contains("version"), "{err}");
        assert!(err.contains("read the file again"), "{err}");
        assert_eq!(ws.buffer("src/main.rs").unwrap(), format!("// typed\n{MAIN}"), "the user's text is kept, nothing clobbered");
        // Read again and retry: it goes through against the new text.
        ws.ok("read", json!({"path": "src/main.rs"})).await;
        ws.ok("edit", json!({"path": "src/main.rs", "old_string": "helper();", "new_string": "helper(1);"})).await;
        assert_eq!(ws.buffer("src/main.rs").unwrap(), format!("// typed\n{}", MAIN.replace("helper();", "helper(1);")));
    })
    .await;
}

#[tokio::test]
async fn files_are_created_renamed_and_deleted_with_resource_operations() {
    within(LIMIT, async {
        let mut ws = Workspace::start(rich(), json!({"approvals": {"write": "allow", "move": "allow", "delete": "allow", "copy": "allow"}})).await;
        ws.ok("write", json!({"path": "src/new.rs", "content": "pub fn new() {}\n"})).await;
        assert_eq!(ws.buffer("src/new.rs").unwrap(), "pub fn new() {}\n", "created, content in an unsaved buffer");
        ws.ok("move", json!({"from": "src/new.rs", "to": "src/moved.rs"})).await;
        assert!(!ws.path("src/new.rs").exists() && ws.path("src/moved.rs").exists());
        assert_eq!(ws.buffer("src/moved.rs").unwrap(), "pub fn new() {}\n");
        ws.ok("delete", json!({"path": "src/moved.rs"})).await;
        assert!(!ws.path("src/moved.rs").exists());
        let kinds: Vec<&str> = ws
            .edits_sent()
            .iter()
            .flat_map(|e| match e {
                ServerEvent::ApplyEdit(p) => match &p.edit.document_changes {
                    Some(DocumentChanges::Operations(ops)) => ops
                        .iter()
                        .map(|op| match op {
                            DocumentChangeOperation::Op(ResourceOp::Create(_)) => "create",
                            DocumentChangeOperation::Op(ResourceOp::Rename(_)) => "rename",
                            DocumentChangeOperation::Op(ResourceOp::Delete(_)) => "delete",
                            DocumentChangeOperation::Edit(_) => "edit",
                        })
                        .collect::<Vec<_>>(),
                    _ => vec!["changes"],
                },
                _ => vec![],
            })
            .collect();
        assert_eq!(kinds, ["create", "edit", "rename", "delete"]);
    })
    .await;
}

#[tokio::test]
async fn without_document_changes_the_plain_changes_map_is_used() {
    within(LIMIT, async {
        let mut ws = Workspace::start(capabilities(false, false, &[]), json!({"approvals": {"edit": "allow", "delete": "allow"}})).await;
        ws.ok("edit", json!({"path": "src/main.rs", "old_string": "hello", "new_string": "world"})).await;
        assert_eq!(ws.buffer("src/main.rs").unwrap(), MAIN.replace("hello", "world"));
        let sent = ws.edits_sent();
        let [ServerEvent::ApplyEdit(params)] = sent.as_slice() else { panic!("{sent:?}") };
        assert!(params.edit.document_changes.is_none() && params.edit.changes.is_some(), "{params:?}");
        // What the plain map cannot say is refused with the reason, and nothing happens.
        let err = ws.err("delete", json!({"path": "src/main.rs"})).await;
        assert!(err.contains("cannot delete src/main.rs: it supports neither documentChanges nor resource operations"), "{err}");
        assert!(ws.path("src/main.rs").exists());
    })
    .await;
}

/// Lines with emoji (two UTF-16 units, four bytes), CJK, a combining mark and CRLF endings.
const TRICKY: &str = "// 😀 emoji\r\nlet 名前 = \"e\u{301}😀\"; // target one\r\n中文 😀😀 target two\r\nlast line target three";

async fn tricky_edits(encodings: &[&str], expect_encoding: &str) {
    let ws = Workspace::start(
        capabilities(true, true, encodings),
        json!({"approvals": {"multi_edit": "allow"}}),
    )
    .await;
    assert_eq!(ws.client.editor.lock().encoding, expect_encoding);
    std::fs::write(ws.path("src/tricky.rs"), TRICKY).unwrap();
    ws.client
        .editor
        .lock()
        .open(&ws.path("src/tricky.rs"), TRICKY);
    ws.ok(
        "multi_edit",
        json!({"path": "src/tricky.rs", "edits": [
            {"old_string": "target one", "new_string": "🎯 one"},
            {"old_string": "😀😀 target two", "new_string": "two"},
            {"old_string": "target three", "new_string": "three\r\n"},
        ]}),
    )
    .await;
    let expected = TRICKY
        .replace("target one", "🎯 one")
        .replace("😀😀 target two", "two")
        .replace("target three", "three\r\n");
    assert_eq!(
        ws.buffer("src/tricky.rs").unwrap().as_bytes(),
        expected.as_bytes(),
        "byte for byte"
    );
}

#[tokio::test]
async fn ranges_are_right_in_utf16_for_emoji_cjk_combining_marks_and_crlf() {
    within(LIMIT, tricky_edits(&[], "utf-16")).await;
}

#[tokio::test]
async fn ranges_are_right_in_utf8_when_the_client_offers_it() {
    within(LIMIT, tricky_edits(&["utf-8", "utf-16"], "utf-8")).await;
}

#[tokio::test]
async fn an_edit_the_editor_refuses_is_reported_to_the_model() {
    within(LIMIT, async {
        let ws = Workspace::start(rich(), json!({"approvals": {"edit": "allow"}})).await;
        ws.client
            .editor
            .lock()
            .edit_answers
            .push_back(EditAnswer::Refuse(
                "the file is read-only in this editor".into(),
            ));
        let err = ws
            .err(
                "edit",
                json!({"path": "src/main.rs", "old_string": "hello", "new_string": "x"}),
            )
            .await;
        assert!(
            err.contains("the file is read-only in this editor"),
            "{err}"
        );
        assert_eq!(ws.disk("src/main.rs"), MAIN);
    })
    .await;
}

#[tokio::test]
async fn approvals_allow_reject_for_the_session_and_deny() {
    within(LIMIT, async {
        let mut ws = Workspace::start(rich(), json!({"approvals": {"delete": "deny"}})).await;
        {
            let mut editor = ws.client.editor.lock();
            editor.prompt_answers.push_back(Some("Reject".into()));
            editor.prompt_answers.push_back(None); // dismissed
            editor.prompt_answers.push_back(Some("Allow for this session".into()));
        }
        let edit = |old: &str, new: &str| json!({"path": "src/main.rs", "old_string": old, "new_string": new});
        let err = ws.err("edit", edit("hello", "a")).await;
        assert!(err.starts_with("the user rejected this `edit`"), "{err}");
        let err = ws.err("edit", edit("hello", "b")).await;
        assert!(err.starts_with("the user rejected this `edit`"), "a dismissed prompt is a refusal: {err}");
        assert!(ws.edits_sent().is_empty(), "nothing reached the editor");
        ws.ok("edit", edit("hello", "c")).await;
        // Allowed for the session: the next edit is not asked about.
        ws.client.drain_events();
        ws.ok("edit", edit("helper();", "helper(2);")).await;
        let prompts = ws.client.drain_events().iter().filter(|e| matches!(e, ServerEvent::ShowMessageRequest(_))).count();
        assert_eq!(prompts, 0);
        // Denied: refused without a prompt.
        let err = ws.err("delete", json!({"path": "src/main.rs"})).await;
        assert_eq!(err, "switchyard.runTool: `delete` is turned off by the user's policy (approvals.delete = \"deny\")");
        assert!(ws.path("src/main.rs").exists());
    })
    .await;
}

#[tokio::test]
async fn paths_outside_the_workspace_are_refused_before_the_editor_hears_of_them() {
    within(LIMIT, async {
        let mut ws = Workspace::start(
            rich(),
            json!({"approvals": {"write": "allow", "edit": "allow"}}),
        )
        .await;
        let outside = ws.dir.path().parent().unwrap().join("escape.txt");
        for args in [
            json!({"path": "../escape.txt", "content": "x"}),
            json!({"path": outside.to_str().unwrap(), "content": "x"}),
            json!({"path": "src/../../escape.txt", "content": "x"}),
        ] {
            let err = ws.err("write", args).await;
            assert!(err.contains("outside the workspace"), "{err}");
        }
        assert!(!Path::new(&outside).exists());
        assert!(ws.edits_sent().is_empty());
    })
    .await;
}
