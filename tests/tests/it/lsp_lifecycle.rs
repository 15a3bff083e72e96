//! `switchyard lsp` as an editor starts it: `initialize` and capability negotiation, where
//! logs go, and how it ends.

use std::time::Duration;

use serde_json::json;
use switchyard::lsp::ext;
use switchyard_tests::lsp_client::lsp_types::{
    GeneralClientCapabilities, MessageType, OneOf, PositionEncodingKind,
    TextDocumentSyncCapability, TextDocumentSyncKind,
};
use switchyard_tests::lsp_client::{ClientOptions, LspClient, ServerEvent, within};

const LIMIT: Duration = Duration::from_secs(60);

fn offering(root: &std::path::Path, encodings: Vec<PositionEncodingKind>) -> ClientOptions {
    let mut options = ClientOptions::new(root);
    options.capabilities.general = Some(GeneralClientCapabilities {
        position_encodings: Some(encodings),
        ..GeneralClientCapabilities::default()
    });
    options
}

#[tokio::test]
async fn initialize_advertises_the_capabilities_and_prefers_utf8() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let options = offering(
            dir.path(),
            vec![PositionEncodingKind::UTF16, PositionEncodingKind::UTF8],
        );
        let (client, init) = LspClient::initialized(options).await;
        let caps = init.capabilities;
        assert_eq!(caps.position_encoding, Some(PositionEncodingKind::UTF8));
        let Some(TextDocumentSyncCapability::Options(sync)) = caps.text_document_sync else {
            panic!("no text document sync options");
        };
        assert_eq!(sync.open_close, Some(true));
        assert_eq!(sync.change, Some(TextDocumentSyncKind::INCREMENTAL));
        let commands = caps.execute_command_provider.unwrap().commands;
        assert_eq!(commands, ext::command_names());
        for command in [
            "switchyard.analyzeWorkspace",
            "switchyard.queueStats",
            "switchyard.cancel",
        ] {
            assert!(
                commands.iter().any(|c| c == command),
                "{command} missing: {commands:?}"
            );
        }
        let folders = caps.workspace.unwrap().workspace_folders.unwrap();
        assert_eq!(folders.supported, Some(true));
        assert_eq!(folders.change_notifications, Some(OneOf::Left(true)));
        let methods = &caps.experimental.unwrap()["switchyard"]["methods"];
        assert!(
            methods
                .as_array()
                .unwrap()
                .contains(&json!("switchyard/laneStatus"))
        );
        assert_eq!(init.server_info.unwrap().name, "switchyard");
        let status = client.shutdown_and_exit().await;
        assert_eq!(status.code(), Some(0));
    })
    .await;
}

#[tokio::test]
async fn utf16_is_used_unless_the_client_offers_utf8() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let (client, init) = LspClient::initialized(ClientOptions::new(dir.path())).await;
        assert_eq!(
            init.capabilities.position_encoding,
            Some(PositionEncodingKind::UTF16)
        );
        client.shutdown_and_exit().await;
        let options = offering(dir.path(), vec![PositionEncodingKind::UTF32]);
        let (client, init) = LspClient::initialized(options).await;
        assert_eq!(
            init.capabilities.position_encoding,
            Some(PositionEncodingKind::UTF16)
        );
        client.shutdown_and_exit().await;
    })
    .await;
}

#[tokio::test]
async fn exit_without_shutdown_is_an_error_exit() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let (mut client, _) = LspClient::initialized(ClientOptions::new(dir.path())).await;
        client
            .server
            .notify::<switchyard_tests::lsp_client::lsp_types::notification::Exit>(())
            .unwrap();
        assert_eq!(client.wait_exit().await.code(), Some(1));
    })
    .await;
}

#[tokio::test]
async fn logs_go_to_stderr_and_to_the_client_at_the_configured_level_never_to_stdout() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        // At `debug`, the server's info line about the initialization reaches the client.
        let mut options = ClientOptions::new(dir.path());
        options.initialization_options = Some(json!({"log": {"level": "debug"}}));
        let (mut client, _) = LspClient::initialized(options).await;
        let ServerEvent::LogMessage(line) = client
            .event("a logMessage about the initialization", |e| {
                matches!(e, ServerEvent::LogMessage(m) if m.message.contains("initialized for"))
            })
            .await
        else {
            unreachable!()
        };
        assert_eq!(line.typ, MessageType::INFO);
        assert!(client.stderr().contains("initialized for"), "{}", client.stderr());
        client.drain_events();
        assert!(
            !client.history.iter().any(|e| matches!(e, ServerEvent::Orphan(_))),
            "stdout carried something that is not a well-formed message: {:?}",
            client.history
        );
        client.shutdown_and_exit().await;

        // At `warn`, the warning about a bad setting arrives, and no info line before it.
        let mut options = ClientOptions::new(dir.path());
        options.initialization_options = Some(json!({"log": {"level": "warn"}}));
        let (mut client, _) = LspClient::initialized(options).await;
        client
            .server
            .notify::<switchyard_tests::lsp_client::lsp_types::notification::DidChangeConfiguration>(
                switchyard_tests::lsp_client::lsp_types::DidChangeConfigurationParams {
                    settings: json!({"switchyard": {"lanes": {"query": {"max_concurrency": 0}}}}),
                },
            )
            .unwrap();
        client
            .event("the warning about the bad setting", |e| {
                matches!(e, ServerEvent::LogMessage(m) if m.typ == MessageType::WARNING)
            })
            .await;
        let infos: Vec<_> = client
            .history
            .iter()
            .filter(|e| matches!(e, ServerEvent::LogMessage(m) if m.typ == MessageType::INFO))
            .collect();
        assert!(infos.is_empty(), "info lines at level warn: {infos:?}");
        assert!(client.stderr().contains("initialized for"), "stderr keeps everything");
        client.shutdown_and_exit().await;
    })
    .await;
}
