//! A server that keeps serving: malformed frames, unknown methods, unknown commands and bad
//! arguments are answered with errors, and the next request is answered as usual.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard::lsp::ext::{self, Command as _, NoParams, QueueStats};
use switchyard_tests::lsp_client::{ClientOptions, LspClient, ServerEvent, within};

const LIMIT: Duration = Duration::from_secs(60);

enum NoSuchMethod {}

impl switchyard_tests::lsp_client::lsp_types::request::Request for NoSuchMethod {
    type Params = Value;
    type Result = Value;
    const METHOD: &'static str = "switchyard/noSuchMethod";
}

enum NoSuchNotification {}

impl switchyard_tests::lsp_client::lsp_types::notification::Notification for NoSuchNotification {
    type Params = Value;
    const METHOD: &'static str = "switchyard/noSuchNotification";
}

fn frame(body: &str) -> String {
    format!("Content-Length: {}\r\n\r\n{body}", body.len())
}

async fn still_serving(client: &LspClient) {
    let stats = client.command::<QueueStats>(NoParams {}).await.unwrap();
    assert_eq!(stats.metrics.lanes.len(), 4);
}

async fn answer_to_garbage(client: &mut LspClient, garbage: String, code: i64) -> Value {
    client.send_raw(garbage.clone());
    let ServerEvent::Orphan(answer) = client
        .event("the answer to a malformed frame", |e| {
            matches!(e, ServerEvent::Orphan(_))
        })
        .await
    else {
        unreachable!()
    };
    assert_eq!(answer["id"], Value::Null, "{garbage:?}: {answer}");
    assert_eq!(
        answer["error"]["code"],
        json!(code),
        "{garbage:?}: {answer}"
    );
    still_serving(client).await;
    answer
}

#[tokio::test]
async fn malformed_frames_are_answered_and_the_server_keeps_serving() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let (mut client, _) = LspClient::initialized(ClientOptions::new(dir.path())).await;
        still_serving(&client).await;
        // A body that is not JSON.
        let answer = answer_to_garbage(
            &mut client,
            frame("{\"jsonrpc\": \"2.0\", \"id\": 9, "),
            -32700,
        )
        .await;
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("parse error"),
            "{answer}"
        );
        // JSON, but not a JSON-RPC message.
        answer_to_garbage(&mut client, frame("[1, 2, 3]"), -32600).await;
        answer_to_garbage(&mut client, frame("{\"jsonrpc\": \"2.0\"}"), -32600).await;
        // Headers that cannot be read.
        answer_to_garbage(&mut client, "Content-Length: many\r\n\r\n".into(), -32700).await;
        answer_to_garbage(
            &mut client,
            "Content-Type: text/plain\r\n\r\n".into(),
            -32700,
        )
        .await;
        let answer =
            answer_to_garbage(&mut client, "no header at all\r\n\r\n".into(), -32700).await;
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("malformed frame"),
            "{answer}"
        );
        assert_eq!(client.shutdown_and_exit().await.code(), Some(0));
    })
    .await;
}

#[tokio::test]
async fn unknown_methods_and_commands_and_bad_arguments_are_errors() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let (client, _) = LspClient::initialized(ClientOptions::new(dir.path())).await;

        let error = client
            .deadline(client.server.request::<NoSuchMethod>(json!({})))
            .await
            .unwrap_err();
        let switchyard_tests::lsp_client::ClientError::Response(error) = error else {
            panic!("{error}")
        };
        assert_eq!(error.code.0, -32601, "{error:?}");
        client
            .server
            .notify::<NoSuchNotification>(json!({}))
            .unwrap();
        still_serving(&client).await;

        let error = client
            .execute("switchyard.noSuchCommand", vec![], None)
            .await
            .unwrap_err();
        assert_eq!(error.code.0, -32602, "{error:?}");
        assert!(
            error
                .message
                .contains("unknown command `switchyard.noSuchCommand`"),
            "{error:?}"
        );

        let error = client
            .execute(
                ext::RetryDeadLetter::NAME,
                vec![json!({"id": "seven"})],
                None,
            )
            .await
            .unwrap_err();
        assert_eq!(error.code.0, -32602, "{error:?}");
        assert!(
            error
                .message
                .starts_with("switchyard.retryDeadLetter: invalid arguments"),
            "{error:?}"
        );

        let error = client
            .execute(ext::RetryDeadLetter::NAME, vec![json!({"id": 99})], None)
            .await
            .unwrap_err();
        assert!(
            error.message.contains("no dead letter with id 99"),
            "{error:?}"
        );

        let error = client
            .execute(ext::QueueStats::NAME, vec![json!({}), json!({})], None)
            .await
            .unwrap_err();
        assert!(
            error
                .message
                .contains("expected one argument object, got 2"),
            "{error:?}"
        );

        let error = client
            .ext_request::<ext::PendingTasks>(ext::PendingTasksParams {
                claim: Some(1),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(
            error.message.contains("`claim` needs a `lane`"),
            "{error:?}"
        );
        still_serving(&client).await;
        assert_eq!(client.shutdown_and_exit().await.code(), Some(0));
    })
    .await;
}
