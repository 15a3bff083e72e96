//! The language server keeps to the protocol where a client (or a peer pretending to be
//! one) can leave it hanging or misread its end: a `$/` request it does not know gets
//! `MethodNotFound` and it keeps serving; `exit` ends it with 0 only after an accepted
//! `shutdown`, else 1.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard::lsp::ext::{NoParams, QueueStats};
use switchyard_tests::lsp_client::lsp_types::notification::{Exit, Notification};
use switchyard_tests::lsp_client::lsp_types::request::{Request, Shutdown};
use switchyard_tests::lsp_client::{ClientError, ClientOptions, LspClient, within};

const LIMIT: Duration = Duration::from_secs(60);

/// A `$/` request no server implements.
enum DollarFoo {}

impl Request for DollarFoo {
    type Params = Value;
    type Result = Value;
    const METHOD: &'static str = "$/foo";
}

/// The same as a notification, which a server may ignore.
enum DollarBar {}

impl Notification for DollarBar {
    type Params = Value;
    const METHOD: &'static str = "$/bar";
}

async fn still_serving(client: &LspClient) {
    let stats = client.command::<QueueStats>(NoParams {}).await.unwrap();
    assert_eq!(stats.metrics.lanes.len(), 4);
}

#[tokio::test]
async fn an_unknown_dollar_request_gets_method_not_found_and_the_server_keeps_serving() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let (client, _) = LspClient::initialized(ClientOptions::new(dir.path())).await;
        let error = client
            .deadline(client.server.request::<DollarFoo>(json!({"x": 1})))
            .await
            .unwrap_err();
        let ClientError::Response(error) = error else {
            panic!("{error}")
        };
        assert_eq!(error.code.0, -32601, "{error:?}");
        assert!(error.message.contains("$/foo"), "{error:?}");
        // An unknown `$/` notification is ignored, quietly.
        client.server.notify::<DollarBar>(json!({})).unwrap();
        still_serving(&client).await;
        // Twice in a row, with other work between: each one answered.
        let error = client
            .deadline(client.server.request::<DollarFoo>(json!(null)))
            .await
            .unwrap_err();
        assert!(
            matches!(error, ClientError::Response(ref e) if e.code.0 == -32601),
            "{error}"
        );
        assert_eq!(client.shutdown_and_exit().await.code(), Some(0));
    })
    .await;
}

#[tokio::test]
async fn exit_without_shutdown_exits_1_and_with_it_0() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        // After initialize, without shutdown.
        let (mut client, _) = LspClient::initialized(ClientOptions::new(dir.path())).await;
        client.server.notify::<Exit>(()).unwrap();
        assert_eq!(client.wait_exit().await.code(), Some(1));

        // Before initialize: allowed, and not a clean end.
        let mut client = LspClient::start(ClientOptions::new(dir.path()));
        client.server.notify::<Exit>(()).unwrap();
        assert_eq!(client.wait_exit().await.code(), Some(1));

        // A shutdown refused (the server was not initialized) does not make the exit clean.
        let mut client = LspClient::start(ClientOptions::new(dir.path()));
        let refused = client
            .deadline(client.server.request::<Shutdown>(()))
            .await
            .unwrap_err();
        assert!(
            matches!(refused, ClientError::Response(ref e) if e.code.0 == -32002),
            "{refused}"
        );
        client.server.notify::<Exit>(()).unwrap();
        assert_eq!(client.wait_exit().await.code(), Some(1));

        // shutdown, then exit: 0.
        let (client, _) = LspClient::initialized(ClientOptions::new(dir.path())).await;
        assert_eq!(client.shutdown_and_exit().await.code(), Some(0));
    })
    .await;
}
