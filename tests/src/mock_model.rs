//! The mock model server every agent test talks to: a real HTTP/1.1 server on 127.0.0.1
//! that speaks the OpenAI Chat Completions and Anthropic Messages wire formats, serves
//! scripted responses and records every request.
//!
//! It is the referee for the client: the bytes follow the providers' documented formats
//! (SSE framing, tool-call fragments, usage, error bodies, `Retry-After`), not what any
//! particular client happens to parse.
//!
//! ```no_run
//! # async fn demo() {
//! use serde_json::json;
//! use switchyard_tests::mock_model::{MockModel, Response, Rule, Script, ToolCall};
//!
//! let model = MockModel::start(Script::new(vec![
//!     Rule::openai(Response::tool_calls(vec![ToolCall::new("read", json!({"path": "a.rs"}))]))
//!         .turn(0),
//!     Rule::openai(Response::text("Done.")).turn(1),
//! ]))
//! .await;
//! // Point the client at model.openai_base_url() (ends in /v1) ...
//! let sent = model.requests();
//! # }
//! ```
//!
//! Base URLs: OpenAI clients append `/chat/completions` to a base that ends in `/v1`, so
//! give them [`MockModel::openai_base_url`]; Anthropic clients append `/v1/messages` to a
//! bare origin, so give them [`MockModel::anthropic_base_url`] (the same as
//! [`MockModel::base_url`]). The server answers `/v1/chat/completions`,
//! `/chat/completions` and `/v1/messages`; `GET /props` and `GET /v1/models` report the
//! context window the way llama.cpp or vLLM do when [`MockOptions::reports_window`] says so
//! (404s otherwise), logged apart in [`MockModel::probes`].
//!
//! Before consulting the script, requests are checked the way the real APIs check them: a
//! body that is not a JSON object, a missing `model` or `messages` (and for Anthropic
//! `max_tokens` or the `anthropic-version` header) gets a 400 in the provider's error
//! shape; an unknown path a 404; a method other than POST a 405. A request no rule
//! matches gets a 500 whose message starts `mock: no scripted response for` and says why
//! each rule missed. All of them are recorded.

mod script;
mod server;
mod wire;

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use script::{
    Cut, ErrorReply, Provider, Reasoning, ReasoningField, Response, Rule, Script, ToolCall, Usage,
};

use server::{Shared, Slot};

/// How to start a [`MockModel`] beyond its script.
#[derive(Clone, Debug, Default)]
pub struct MockOptions {
    /// Append every request to this file as one JSON line (a [`RecordedRequest`]).
    pub record_file: Option<PathBuf>,
    /// The port to bind on 127.0.0.1; 0 (the default) picks a free one.
    pub port: u16,
    /// The model's context window in tokens, counted as a quarter of the request body's
    /// characters: a request above it gets the provider's error for it (OpenAI 400
    /// `context_length_exceeded`, Anthropic 400 `prompt is too long`) whatever the script.
    pub context_window: Option<u64>,
    /// How the mock tells a client its context window (`context_window`, else 4,096), as
    /// servers do; `None`: it does not (`GET /props` and `GET /v1/models` are 404s).
    pub reports_window: Option<WindowReport>,
}

/// Where a server reports its context window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowReport {
    /// llama.cpp: `GET /props` has `default_generation_settings.n_ctx` (its `/v1/models`
    /// has only the training context, `meta.n_ctx_train`, which is not the window).
    LlamaCpp,
    /// vLLM: `GET /v1/models` has `data[].max_model_len`.
    Vllm,
}

/// A running mock model server. It stops, closing every connection, when dropped.
pub struct MockModel {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    thread: Option<JoinHandle<()>>,
}

impl MockModel {
    /// Starts a server for `script` on 127.0.0.1 at a free port.
    ///
    /// Panics if the script is invalid or the port cannot be bound: this is test setup.
    pub async fn start(script: Script) -> MockModel {
        MockModel::start_with(script, MockOptions::default())
            .unwrap_or_else(|err| panic!("mock model failed to start: {err:#}"))
    }

    /// Starts a server with options, reporting an invalid script or a bind failure.
    /// Works with or without a tokio runtime: the server runs on its own thread.
    pub fn start_with(script: Script, options: MockOptions) -> anyhow::Result<MockModel> {
        script.validate().map_err(anyhow::Error::msg)?;
        let record = match &options.record_file {
            Some(path) => Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .with_context(|| format!("cannot open record file {}", path.display()))?,
            ),
            None => None,
        };
        // Loopback only, always.
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], options.port)))
            .with_context(|| format!("cannot bind 127.0.0.1:{}", options.port))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(
            script,
            record,
            options.context_window,
            options.reports_window,
        ));
        let cancel = CancellationToken::new();
        let thread = server::spawn(listener, Arc::clone(&shared), cancel.clone())
            .context("cannot start the mock model thread")?;
        Ok(MockModel {
            addr,
            shared,
            cancel,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`, without a path.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:PORT/v1`: what `OPENAI_BASE_URL` should be.
    pub fn openai_base_url(&self) -> String {
        format!("{}/v1", self.base_url())
    }

    /// `http://127.0.0.1:PORT`: what `ANTHROPIC_BASE_URL` should be.
    pub fn anthropic_base_url(&self) -> String {
        self.base_url()
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.state.lock().requests.clone()
    }

    /// The `GET /props` and `GET /v1/models` a client asked, in order, as `GET /props 200`
    /// (kept apart from [`requests`](MockModel::requests)).
    pub fn probes(&self) -> Vec<String> {
        self.shared.state.lock().probes.clone()
    }

    /// Requests whose response is still being sent (or hanging).
    pub fn in_flight(&self) -> usize {
        self.shared.state.lock().in_flight
    }

    /// The most requests that were ever in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.state.lock().max_in_flight
    }

    /// Appends a rule to the script. Panics if the rule is invalid.
    pub fn push_rule(&self, rule: Rule) {
        let script = Script::new(vec![rule]);
        if let Err(err) = script.validate() {
            panic!("push_rule: {err}");
        }
        let mut state = self.shared.state.lock();
        state.rules.extend(script.rules.into_iter().map(Slot::new));
    }

    /// Indices of rules that still have a limited number of uses left: a test can assert
    /// this is empty to prove every scripted turn was consumed.
    pub fn unused_rules(&self) -> Vec<usize> {
        let state = self.shared.state.lock();
        state
            .rules
            .iter()
            .enumerate()
            .filter(|(_, slot)| slot.left.is_some_and(|left| left > 0))
            .map(|(index, _)| index)
            .collect()
    }

    /// Waits until at least `count` requests have arrived and returns them all. Panics
    /// after `timeout`, listing what did arrive.
    pub async fn wait_for_requests(&self, count: usize, timeout: Duration) -> Vec<RecordedRequest> {
        let arrived = tokio::time::timeout(
            timeout,
            self.shared.wait_until(|s| s.requests.len() >= count),
        )
        .await;
        let requests = self.requests();
        if arrived.is_err() || requests.len() < count {
            let seen: Vec<String> = requests
                .iter()
                .map(|r| format!("#{} {} {} -> {}", r.seq, r.method, r.path, r.status))
                .collect();
            panic!(
                "mock model: waited {timeout:?} for {count} requests, got {}: {seen:?}",
                requests.len()
            );
        }
        requests
    }

    /// Waits until exactly `count` requests are in flight. Panics after `timeout`.
    pub async fn wait_for_in_flight(&self, count: usize, timeout: Duration) {
        let reached =
            tokio::time::timeout(timeout, self.shared.wait_until(|s| s.in_flight == count)).await;
        if reached.is_err() {
            panic!(
                "mock model: waited {timeout:?} for {count} requests in flight, have {}",
                self.in_flight()
            );
        }
    }
}

impl Drop for MockModel {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(thread) = self.thread.take() {
            // Quick: the accept loop returns at once and the runtime drops its connections.
            let _ = thread.join();
        }
    }
}

/// One request as the mock received it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecordedRequest {
    /// 1-based arrival number.
    pub seq: u64,
    /// `POST`, usually.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// Headers by lowercase name (repeated headers joined with `, `). Credentials such as
    /// `authorization` and `x-api-key` are kept so tests can assert they were sent.
    pub headers: BTreeMap<String, String>,
    /// The body as JSON, or `null` if it was not JSON.
    pub body: Value,
    /// The body as text (lossy UTF-8).
    pub raw_body: String,
    /// When the body had fully arrived; in JSON, Unix milliseconds.
    #[serde(rename = "received_at_ms", with = "unix_ms")]
    pub received_at: SystemTime,
    /// The wire format its path belongs to (`None`: unknown path).
    pub provider: Option<Provider>,
    /// The body asked for `"stream": true`.
    pub stream: bool,
    /// Assistant messages in its history.
    pub turn: usize,
    /// The index of the rule that answered it, if one did.
    pub rule: Option<usize>,
    /// The HTTP status it was answered with.
    pub status: u16,
}

impl RecordedRequest {
    /// Its size in tokens as the mock counts them: a quarter of the body's characters.
    pub fn tokens(&self) -> u64 {
        server::tokens(&self.raw_body)
    }

    /// A header's value by name (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The `thinking` and `redacted_thinking` blocks of each assistant message of an
    /// Anthropic body, in order: what a client sent back of the model's reasoning.
    pub fn thinking_blocks(&self) -> Vec<Vec<Value>> {
        self.messages()
            .iter()
            .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
            .map(|m| {
                m.get("content")
                    .and_then(Value::as_array)
                    .map(|blocks| {
                        blocks
                            .iter()
                            .filter(|b| {
                                matches!(
                                    b.get("type").and_then(Value::as_str),
                                    Some("thinking" | "redacted_thinking")
                                )
                            })
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect()
    }

    /// The `messages` array of the body (empty if absent).
    pub fn messages(&self) -> &[Value] {
        self.body
            .get("messages")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }
}

/// `SystemTime` as Unix milliseconds.
mod unix_ms {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
        let ms = time
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        serializer.serialize_u64(ms)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SystemTime, D::Error> {
        let ms = u64::deserialize(deserializer)?;
        Ok(UNIX_EPOCH + Duration::from_millis(ms))
    }
}
