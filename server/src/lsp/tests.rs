//! In-process tests of the server over an in-memory pipe, for what the end-to-end suite in
//! `tests/` cannot reach: a handler that panics (no real handler does), and the progress
//! machinery before a real long command exists. The [`Peer`] here is a bare JSON client;
//! the end-to-end suite uses a real LSP client library against the real binary.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncWriteExt, DuplexStream, ReadHalf, WriteHalf};
use tokio::task::JoinHandle;
use tower_lsp_server::jsonrpc::Result;
use tower_lsp_server::{ClientSocket, LspService};

use super::LogForwarder;
use super::server::Server;
use super::transport::{self, Frame, FrameReader};
use crate::lanes::{Lanes, LanesConfig};

/// Every wait in these tests ends within this, or the test fails.
pub(crate) const PATIENCE: Duration = Duration::from_secs(10);

/// A JSON-RPC peer playing the client.
pub(crate) struct Peer {
    writer: WriteHalf<DuplexStream>,
    reader: FrameReader<ReadHalf<DuplexStream>>,
    next_id: i64,
    /// Messages from the server not consumed yet, in arrival order.
    pub(crate) inbox: Vec<Value>,
    /// Every server → client request and notification seen, in arrival order.
    pub(crate) seen: Vec<Value>,
    server: JoinHandle<transport::Ended>,
}

impl Peer {
    /// Serves `service` in the background and connects to it.
    pub(crate) fn connect(service: LspService<Server>, socket: ClientSocket) -> Peer {
        let (client, server) = tokio::io::duplex(1 << 20);
        let (server_read, server_write) = tokio::io::split(server);
        let (reader, writer) = tokio::io::split(client);
        let server = tokio::spawn(transport::serve(server_read, server_write, service, socket));
        Peer {
            writer,
            reader: FrameReader::new(reader),
            next_id: 0,
            inbox: Vec::new(),
            seen: Vec::new(),
            server,
        }
    }

    /// A server with default lanes, connected.
    pub(crate) fn start() -> (Peer, Server) {
        let lanes = Lanes::new(LanesConfig::default()).unwrap();
        let (service, socket) = Server::service(lanes, LogForwarder::new());
        let server = service.inner().clone();
        (Peer::connect(service, socket), server)
    }

    pub(crate) async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.unwrap();
    }

    pub(crate) async fn send(&mut self, message: Value) {
        let body = message.to_string();
        let frame = format!("Content-Length: {}\r\n\r\n{body}", body.len());
        self.send_raw(frame.as_bytes()).await;
    }

    pub(crate) async fn notify(&mut self, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "method": method, "params": params}))
            .await;
    }

    /// Sends a request; returns its id.
    pub(crate) async fn start_request(&mut self, method: &str, params: Value) -> i64 {
        self.next_id += 1;
        let id = self.next_id;
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        id
    }

    /// Sends a request and waits for its response (`result` or `error` object).
    pub(crate) async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.start_request(method, params).await;
        self.response(id).await
    }

    /// Waits for the response to request `id`.
    pub(crate) async fn response(&mut self, id: i64) -> Value {
        self.wait(|m| m.get("id") == Some(&json!(id)) && m.get("method").is_none())
            .await
    }

    /// Waits for the first message `pick` accepts, answering the server's requests and
    /// keeping the other messages in the inbox.
    pub(crate) async fn wait(&mut self, pick: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(at) = self.inbox.iter().position(&pick) {
                return self.inbox.remove(at);
            }
            let frame = tokio::time::timeout_at(deadline, self.reader.next())
                .await
                .expect("the server did not send the awaited message in time")
                .unwrap()
                .expect("the server closed the connection");
            let Frame::Body(body) = frame else {
                panic!("the server sent a malformed frame: {frame:?}")
            };
            let message: Value = serde_json::from_slice(&body).unwrap();
            if message.get("method").is_some() {
                self.seen.push(message.clone());
            }
            if let (Some(id), Some(method)) = (message.get("id"), message.get("method")) {
                let result = match method.as_str() {
                    Some("workspace/configuration") => json!([null]),
                    _ => Value::Null,
                };
                let id = id.clone();
                self.send(json!({"jsonrpc": "2.0", "id": id, "result": result}))
                    .await;
            }
            self.inbox.push(message);
        }
    }

    /// `initialize` with `capabilities`, then `initialized`.
    pub(crate) async fn initialize(&mut self, capabilities: Value) -> Value {
        let reply = self
            .request("initialize", json!({"capabilities": capabilities}))
            .await;
        assert!(reply.get("result").is_some(), "{reply}");
        self.notify("initialized", json!({})).await;
        reply
    }

    /// `shutdown` and `exit`; returns whether the server ended cleanly.
    pub(crate) async fn close(mut self) -> transport::Ended {
        let reply = self.request("shutdown", Value::Null).await;
        assert_eq!(reply.get("result"), Some(&Value::Null), "{reply}");
        self.notify("exit", Value::Null).await;
        tokio::time::timeout(PATIENCE, self.server)
            .await
            .expect("the server did not stop after exit")
            .unwrap()
    }
}

async fn boom(_: &Server) -> Result<Value> {
    panic!("boom at the test's request")
}

#[tokio::test]
async fn a_panicking_handler_answers_an_internal_error_and_the_server_keeps_serving() {
    let lanes = Lanes::new(LanesConfig::default()).unwrap();
    let (service, socket) = Server::builder(lanes, LogForwarder::new())
        .custom_method("test/panic", boom)
        .finish();
    let mut peer = Peer::connect(service, socket);
    peer.initialize(json!({})).await;
    for _ in 0..2 {
        let reply = peer.request("test/panic", Value::Null).await;
        let error = &reply["error"];
        assert_eq!(error["code"], json!(-32603), "{reply}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains("test/panic") && message.contains("boom"),
            "{message}"
        );
    }
    let stats = peer
        .request(
            "workspace/executeCommand",
            json!({"command": "switchyard.queueStats"}),
        )
        .await;
    assert!(stats["result"]["lanes"].is_array(), "{stats}");
    let ended = peer.close().await;
    assert!(ended.shutdown && ended.exit);
}

#[tokio::test]
async fn every_command_of_the_catalog_is_dispatched() {
    let (mut peer, _) = Peer::start();
    peer.initialize(json!({})).await;
    for name in super::ext::command_names() {
        let reply = peer
            .request(
                "workspace/executeCommand",
                json!({"command": name, "arguments": [{"unexpected": true}]}),
            )
            .await;
        let message = reply["error"]["message"].as_str().unwrap_or_default();
        assert!(!message.contains("unknown command"), "{name}: {reply}");
    }
    let reply = peer
        .request(
            "workspace/executeCommand",
            json!({"command": "switchyard.nope"}),
        )
        .await;
    assert_eq!(reply["error"]["code"], json!(-32602), "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown command `switchyard.nope`"),
        "{reply}"
    );
    peer.close().await;
}

/// Sends ten notifications, then answers.
async fn chatty(server: &Server) -> Result<Value> {
    use tower_lsp_server::ls_types::MessageType;
    for i in 0..10 {
        server
            .inner
            .client
            .log_message(MessageType::INFO, format!("chatty {i}"))
            .await;
    }
    Ok(json!("done"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_comes_after_every_notification_its_handler_sent() {
    let lanes = Lanes::new(LanesConfig::default()).unwrap();
    let (service, socket) = Server::builder(lanes, LogForwarder::new())
        .custom_method("test/chatty", chatty)
        .finish();
    let mut peer = Peer::connect(service, socket);
    peer.initialize(json!({})).await;
    for round in 1..=20 {
        let reply = peer.request("test/chatty", Value::Null).await;
        assert_eq!(reply["result"], json!("done"));
        let said = peer
            .seen
            .iter()
            .filter(|m| {
                m["method"] == "window/logMessage"
                    && m["params"]["message"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("chatty "))
            })
            .count();
        assert_eq!(
            said,
            10 * round,
            "round {round}: a notification came after the reply"
        );
    }
    peer.close().await;
}
