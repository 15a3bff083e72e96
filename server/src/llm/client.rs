//! The HTTP side of a model call: one reqwest client per configuration, the request with
//! its headers, the status check, and the hand-off to the stream reader.

use std::time::{Duration, Instant, SystemTime};

use reqwest::Url;
use reqwest::header::{self, HeaderMap, HeaderValue};
use tokio_util::sync::CancellationToken;

use super::config::{ResolvedLlmConfig, show};
use super::error::{self, LlmError, LlmErrorKind, Target};
use super::stream::{self, Decoder};
use super::{ModelRequest, ModelResponse, ProviderKind, StreamEvent, anthropic, openai};

/// The most of an error body read to build a message.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// A model API client for one resolved configuration. Cheap to clone; clones share the
/// connection pool.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    cfg: ResolvedLlmConfig,
    headers: HeaderMap,
}

impl Client {
    /// Builds the HTTP client: rustls, the configured connect timeout, no redirects (a
    /// redirected POST would turn into a GET), and no proxy for loopback servers.
    pub fn new(cfg: ResolvedLlmConfig) -> Result<Self, LlmError> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        if let Some(key) = &cfg.api_key {
            let (name, value) = match cfg.provider {
                ProviderKind::OpenAi => (header::AUTHORIZATION, format!("Bearer {}", key.expose())),
                ProviderKind::Anthropic => (
                    header::HeaderName::from_static("x-api-key"),
                    key.expose().to_owned(),
                ),
            };
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                LlmError::new(
                    LlmErrorKind::Config,
                    false,
                    format!(
                        "the API key contains characters that cannot be sent in an HTTP header: check llm.api_key or {}",
                        cfg.provider.api_key_env()
                    ),
                )
            })?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        if cfg.provider == ProviderKind::Anthropic {
            headers.insert(
                "anthropic-version",
                HeaderValue::from_static(anthropic::API_VERSION),
            );
        }

        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(cfg.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
            .tcp_nodelay(true);
        let host = cfg.endpoint.host_str().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if loopback {
            builder = builder.no_proxy();
        }
        let http = builder.build().map_err(|e| {
            LlmError::new(
                LlmErrorKind::Config,
                false,
                format!("cannot build the HTTP client ({e})"),
            )
        })?;
        Ok(Self { http, cfg, headers })
    }

    /// The configuration this client was built from.
    pub fn config(&self) -> &ResolvedLlmConfig {
        &self.cfg
    }

    /// The context window the server reports for this client's model, where it does:
    /// llama.cpp's `GET /props` (`default_generation_settings.n_ctx`), else vLLM's and
    /// others' `GET <base>/models` (`data[].max_model_len`, of the model's entry or the only
    /// one). Both are asked at once, for at most `limit`; `None` when neither says (the
    /// hosted APIs do not, and are not asked). OpenAI wire format only.
    pub async fn discover_window(&self, limit: Duration) -> Option<u64> {
        let endpoint = &self.cfg.endpoint;
        if self.cfg.provider != ProviderKind::OpenAi
            || endpoint.host_str() == Some("api.openai.com")
        {
            return None;
        }
        let get = |url: Url| {
            let mut headers = self.headers.clone();
            headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
            headers.remove(header::CONTENT_TYPE);
            let request = self.http.get(url).headers(headers).send();
            async move {
                let response = request.await.ok()?.error_for_status().ok()?;
                response.json::<serde_json::Value>().await.ok()
            }
        };
        let props = endpoint.join("/props").ok()?;
        let models = endpoint.join("../models").ok()?;
        let model = self.cfg.model.as_str();
        let asked = async {
            let (props, models) = tokio::join!(get(props), get(models));
            let from_props =
                props.and_then(|p| p.pointer("/default_generation_settings/n_ctx")?.as_u64());
            from_props.or_else(|| {
                let data = models?.get("data")?.as_array()?.clone();
                let entry = match data
                    .iter()
                    .find(|m| m.get("id").and_then(|id| id.as_str()) == Some(model))
                {
                    Some(entry) => entry,
                    None if data.len() == 1 => &data[0],
                    None => return None,
                };
                entry.get("max_model_len")?.as_u64()
            })
        };
        tokio::time::timeout(limit, asked)
            .await
            .ok()
            .flatten()
            .filter(|window| *window > 0)
    }

    /// Sends `req` and streams the answer: `on_event` sees each piece as it is decoded and
    /// the assembled [`ModelResponse`] is returned at the stream's terminator.
    ///
    /// Cancelling `cancel` drops the in-flight HTTP request at once (closing the connection)
    /// and returns an error of kind [`LlmErrorKind::Cancelled`]. Nothing here retries. The
    /// call gets the whole `llm.request_budget`; see [`Client::stream_until`].
    pub async fn stream(
        &self,
        req: &ModelRequest,
        cancel: &CancellationToken,
        on_event: impl FnMut(StreamEvent),
    ) -> Result<ModelResponse, LlmError> {
        let deadline = Instant::now() + self.cfg.request_budget;
        self.stream_until(req, deadline, cancel, on_event).await
    }

    /// [`Client::stream`] for one attempt of a request that must be over by `deadline` (its
    /// `llm.request_budget`, counted from the first attempt). Every wait is cut at the
    /// deadline, and a failure that leaves no time to try again — the budget spent, or a
    /// `Retry-After` longer than what is left or than `llm.max_retry_after` — is not
    /// retryable. A wait for the first byte that lasts is announced as a
    /// [`StreamEvent::Waiting`].
    pub async fn stream_until(
        &self,
        req: &ModelRequest,
        deadline: Instant,
        cancel: &CancellationToken,
        mut on_event: impl FnMut(StreamEvent),
    ) -> Result<ModelResponse, LlmError> {
        if cancel.is_cancelled() {
            return Err(LlmError::cancelled());
        }
        let cfg = &self.cfg;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(self.over_budget());
        }
        let url = cfg.endpoint.as_str();
        let target = Target {
            provider: cfg.provider,
            url,
            model: &cfg.model,
            key: cfg.api_key.as_ref(),
        };
        let body = match cfg.provider {
            ProviderKind::OpenAi => openai::request_body(cfg, req),
            ProviderKind::Anthropic => anthropic::request_body(cfg, req),
        };
        let body = body.to_string();
        tracing::debug!(
            provider = %cfg.provider,
            url,
            model = %cfg.model,
            messages = req.messages.len(),
            tools = req.tools.len(),
            bytes = body.len(),
            "model request"
        );
        tracing::trace!(body = %body, "model request body");

        let send = self
            .http
            .post(cfg.endpoint.clone())
            .headers(self.headers.clone())
            .body(body)
            .send();
        let first_byte = cfg.first_byte_timeout.min(left);
        let mut send = std::pin::pin!(tokio::time::timeout(first_byte, send));
        // Say what is awaited once the wait is no longer the usual blink.
        let mut notice = std::pin::pin!(tokio::time::sleep(waiting_notice_after(first_byte)));
        let mut announced = false;
        let sent = loop {
            tokio::select! {
                biased;
                () = cancel.cancelled() => return Err(LlmError::cancelled()),
                sent = &mut send => break sent,
                () = &mut notice, if !announced => {
                    announced = true;
                    on_event(StreamEvent::Waiting {
                        what: format!("the first byte of the answer from {url}"),
                        up_to: first_byte,
                    });
                }
            }
        };
        let response = match sent {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => {
                let err = error::from_transport(&target, &e);
                tracing::debug!(kind = ?err.kind, error = %err, "model request failed");
                return Err(self.within_budget(err, deadline));
            }
            Err(_) if first_byte < cfg.first_byte_timeout => return Err(self.over_budget()),
            Err(_) => {
                let err = LlmError::new(
                    LlmErrorKind::Timeout,
                    true,
                    format!(
                        "the model API at {url} sent no response headers within {} (llm.first_byte_timeout)",
                        show(cfg.first_byte_timeout)
                    ),
                );
                return Err(self.within_budget(err, deadline));
            }
        };

        let status = response.status();
        if !status.is_success() {
            let headers = response.headers().clone();
            let text = self.error_body(response, cancel).await?;
            let err =
                error::from_status(&target, status.as_u16(), &headers, &text, SystemTime::now());
            tracing::debug!(status = status.as_u16(), kind = ?err.kind, error = %err, "model request failed");
            return Err(self.within_budget(err, deadline));
        }
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if content_type.starts_with("application/json") {
            return Err(LlmError::new(
                LlmErrorKind::Protocol,
                false,
                format!(
                    "{url} answered with JSON instead of an event stream: the server does not support `stream: true`"
                ),
            ));
        }

        let read = stream::read_events(
            Decoder::new(cfg.provider),
            Box::pin(response.bytes_stream()),
            cfg.idle_stream_timeout,
            cancel,
            &target,
            &mut on_event,
        );
        let left = deadline.saturating_duration_since(Instant::now());
        let result = match tokio::time::timeout(left, read).await {
            Ok(result) => result.map_err(|err| self.within_budget(err, deadline)),
            Err(_) => Err(self.over_budget()),
        };
        match &result {
            Ok(r) => tracing::debug!(
                input_tokens = r.usage.input_tokens,
                output_tokens = r.usage.output_tokens,
                tool_calls = r.tool_calls.len(),
                stop = ?r.stop,
                "model response"
            ),
            Err(err) => tracing::debug!(kind = ?err.kind, error = %err, "model stream failed"),
        }
        result
    }

    /// The error of a request whose `llm.request_budget` is spent: final.
    fn over_budget(&self) -> LlmError {
        LlmError::new(
            LlmErrorKind::Timeout,
            false,
            format!(
                "the model API at {} did not finish answering within {} (llm.request_budget), retries included",
                self.cfg.endpoint,
                show(self.cfg.request_budget)
            ),
        )
    }

    /// `err` made final when the wait it asks for is longer than `llm.max_retry_after` or
    /// than what is left before `deadline`; a retryable error whose wait fits is unchanged.
    fn within_budget(&self, mut err: LlmError, deadline: Instant) -> LlmError {
        if !err.retryable {
            return err;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(wait) = err.retry_after else {
            if left.is_zero() {
                return self.over_budget();
            }
            return err;
        };
        let why = if wait > self.cfg.max_retry_after {
            format!(
                "the provider asked to wait {}, more than the {} allowed by llm.max_retry_after",
                show(wait),
                show(self.cfg.max_retry_after)
            )
        } else if wait >= left {
            format!(
                "the provider asked to wait {}, more than the {} left of this request's llm.request_budget",
                show(wait),
                show(left)
            )
        } else {
            return err;
        };
        err.message = format!("{}; {why}", err.message);
        err.retryable = false;
        err
    }

    /// Reads up to [`ERROR_BODY_LIMIT`] of an error response, giving up quietly (with what
    /// arrived) on a silent or broken body; only cancellation is an error.
    async fn error_body(
        &self,
        mut response: reqwest::Response,
        cancel: &CancellationToken,
    ) -> Result<String, LlmError> {
        let mut bytes = Vec::new();
        loop {
            let chunk = tokio::select! {
                biased;
                () = cancel.cancelled() => return Err(LlmError::cancelled()),
                chunk = tokio::time::timeout(self.cfg.idle_stream_timeout, response.chunk()) => chunk,
            };
            match chunk {
                Ok(Ok(Some(chunk))) => {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() >= ERROR_BODY_LIMIT {
                        bytes.truncate(ERROR_BODY_LIMIT);
                        break;
                    }
                }
                _ => break,
            }
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// How long a wait for the first byte lasts before it is announced: a few seconds, or half
/// the limit when that is shorter.
fn waiting_notice_after(limit: Duration) -> Duration {
    (limit / 2).min(Duration::from_secs(5))
}

#[cfg(test)]
mod tests {
    //! The HTTP layer against a tiny canned server on 127.0.0.1: headers sent, errors,
    //! cancellation, timeouts, cut streams. The full mock model server lives in `tests/`.

    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use parking_lot::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;

    use super::*;
    use crate::llm::{LlmConfig, Message, Secret, StopReason};

    const KEY: &str = "sk-http-secret-4f1c";

    /// What the canned server does after reading the request.
    enum Step {
        Write(Vec<u8>),
        /// Waits (up to 10 s) for the client to close the connection.
        AwaitClose,
    }

    /// What the canned server saw.
    struct Seen {
        request: String,
        client_closed: bool,
    }

    async fn serve(steps: Vec<Step>) -> (SocketAddr, JoinHandle<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let request = read_request(&mut socket).await;
            let mut client_closed = false;
            for step in steps {
                match step {
                    Step::Write(bytes) => {
                        if socket.write_all(&bytes).await.is_err() {
                            break;
                        }
                        socket.flush().await.unwrap();
                    }
                    Step::AwaitClose => {
                        let mut buf = [0u8; 64];
                        let read =
                            tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf))
                                .await;
                        client_closed = matches!(read, Ok(Ok(0)) | Ok(Err(_)));
                    }
                }
            }
            Seen {
                request,
                client_closed,
            }
        });
        (addr, handle)
    }

    async fn read_request(socket: &mut TcpStream) -> String {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0, "client closed before sending a request");
            data.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&data).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if data.len() >= end + 4 + length {
                    return text;
                }
            }
        }
    }

    fn head(status: &str, headers: &[&str]) -> Vec<u8> {
        let mut text = format!("HTTP/1.1 {status}\r\n");
        for h in headers {
            text.push_str(h);
            text.push_str("\r\n");
        }
        text.push_str("\r\n");
        text.into_bytes()
    }

    fn chunk(data: &str) -> Vec<u8> {
        format!("{:x}\r\n{data}\r\n", data.len()).into_bytes()
    }

    const SSE_CHUNKED: &[&str] = &[
        "Content-Type: text/event-stream",
        "Transfer-Encoding: chunked",
    ];

    fn client_for(
        provider: ProviderKind,
        addr: SocketAddr,
        key: Option<&str>,
        tweak: impl FnOnce(&mut LlmConfig),
    ) -> Client {
        let mut cfg = LlmConfig {
            provider: Some(provider),
            base_url: Some(match provider {
                ProviderKind::OpenAi => format!("http://{addr}/v1"),
                ProviderKind::Anthropic => format!("http://{addr}"),
            }),
            model: Some("test-model".into()),
            api_key: key.map(Secret::new),
            first_byte_timeout: Duration::from_secs(5),
            idle_stream_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
            ..LlmConfig::default()
        };
        tweak(&mut cfg);
        Client::new(cfg.resolve(&|_: &str| None).unwrap()).unwrap()
    }

    fn hello() -> ModelRequest {
        ModelRequest {
            system: "be brief".into(),
            messages: vec![Message::User {
                content: "hi".into(),
            }],
            ..ModelRequest::default()
        }
    }

    fn header_value<'a>(request: &'a str, name: &str) -> Option<&'a str> {
        request.lines().find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// Captures every log line, down to TRACE, on this thread.
    #[derive(Clone, Default)]
    struct Logs(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Logs {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
        type Writer = Logs;
        fn make_writer(&'a self) -> Logs {
            self.clone()
        }
    }

    #[tokio::test]
    async fn openai_stream_sends_the_bearer_key_but_never_logs_it() {
        let logs = Logs::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(logs.clone())
            .with_max_level(tracing::Level::TRACE)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);

        let (addr, server) = serve(vec![
            Step::Write(head("200 OK", SSE_CHUNKED)),
            Step::Write(chunk("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n")),
            Step::Write(chunk("data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\n")),
            Step::Write(chunk("data: [DONE]\n\n")),
            Step::Write(b"0\r\n\r\n".to_vec()),
        ])
        .await;
        let client = client_for(ProviderKind::OpenAi, addr, Some(KEY), |_| {});
        let mut events = Vec::new();
        let response = client
            .stream(&hello(), &CancellationToken::new(), |e| events.push(e))
            .await
            .unwrap();
        assert_eq!(response.text, "Hi");
        assert_eq!(response.stop, StopReason::EndTurn);
        assert_eq!(response.usage.input_tokens, 5);
        assert_eq!(events.len(), 2);

        let seen = server.await.unwrap();
        let request = seen.request;
        assert!(
            request.starts_with("POST /v1/chat/completions HTTP/1.1\r\n"),
            "{request}"
        );
        assert_eq!(
            header_value(&request, "authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
        assert_eq!(header_value(&request, "accept"), Some("text/event-stream"));
        assert_eq!(
            header_value(&request, "content-type"),
            Some("application/json")
        );
        assert_eq!(header_value(&request, "x-api-key"), None);
        let body = &request[request.find("\r\n\r\n").unwrap() + 4..];
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["model"], "test-model");
        assert_eq!(body["stream"], true);

        let logs = String::from_utf8(logs.0.lock().clone()).unwrap();
        assert!(logs.contains("model request"), "logging is on: {logs}");
        assert!(!logs.contains(KEY), "the key was logged: {logs}");
        assert!(!format!("{client:?}").contains(KEY), "Debug shows the key");
    }

    #[test]
    fn the_stream_future_can_be_spawned() {
        fn spawnable<T: Send + 'static>(_: &T) {}
        let cfg = LlmConfig {
            model: Some("m".into()),
            ..LlmConfig::default()
        };
        let client = Client::new(cfg.resolve(&|_: &str| None).unwrap()).unwrap();
        let call = async move {
            let mut text = String::new();
            let result = client
                .stream(&hello(), &CancellationToken::new(), |e| {
                    if let StreamEvent::TextDelta(t) = e {
                        text.push_str(&t);
                    }
                })
                .await;
            (text, result)
        };
        spawnable(&call);
    }

    #[tokio::test]
    async fn a_local_server_without_a_key_gets_no_authorization_header() {
        let (addr, server) = serve(vec![
            Step::Write(head("200 OK", &["Content-Type: text/event-stream", "Connection: close"])),
            Step::Write(b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}\n\ndata: [DONE]\n\n".to_vec()),
        ])
        .await;
        let client = client_for(ProviderKind::OpenAi, addr, None, |_| {});
        let response = client
            .stream(&hello(), &CancellationToken::new(), |_| {})
            .await
            .unwrap();
        assert_eq!(response.text, "ok");
        let request = server.await.unwrap().request;
        assert_eq!(header_value(&request, "authorization"), None, "{request}");
    }

    #[tokio::test]
    async fn anthropic_sends_its_key_and_version_headers() {
        let (addr, server) = serve(vec![
            Step::Write(head("200 OK", SSE_CHUNKED)),
            Step::Write(chunk("event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\n")),
            Step::Write(chunk("event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n")),
            Step::Write(chunk("event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":2}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")),
            Step::Write(b"0\r\n\r\n".to_vec()),
        ])
        .await;
        let client = client_for(ProviderKind::Anthropic, addr, Some(KEY), |_| {});
        let response = client
            .stream(&hello(), &CancellationToken::new(), |_| {})
            .await
            .unwrap();
        assert_eq!(response.text, "Hello");
        assert_eq!(response.usage.output_tokens, 2);
        let request = server.await.unwrap().request;
        assert!(
            request.starts_with("POST /v1/messages HTTP/1.1\r\n"),
            "{request}"
        );
        assert_eq!(header_value(&request, "x-api-key"), Some(KEY));
        assert_eq!(
            header_value(&request, "anthropic-version"),
            Some("2023-06-01")
        );
        assert_eq!(header_value(&request, "authorization"), None);
    }

    #[tokio::test]
    async fn a_429_carries_status_and_retry_after() {
        let body = r#"{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        let (addr, _server) = serve(vec![Step::Write(
            [
                head(
                    "429 Too Many Requests",
                    &[
                        "Content-Type: application/json",
                        "Retry-After: 3",
                        &format!("Content-Length: {}", body.len()),
                    ],
                ),
                body.as_bytes().to_vec(),
            ]
            .concat(),
        )])
        .await;
        let client = client_for(ProviderKind::OpenAi, addr, Some(KEY), |_| {});
        let err = client
            .stream(&hello(), &CancellationToken::new(), |_| {})
            .await
            .unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::RateLimited);
        assert_eq!(err.status, Some(429));
        assert!(err.retryable);
        assert_eq!(err.retry_after, Some(Duration::from_secs(3)));
        assert_eq!(
            err.message,
            format!(
                "rate limited (429) by http://{addr}/v1/chat/completions; the server said: Rate limit reached for requests"
            )
        );
    }

    #[tokio::test]
    async fn cancelling_mid_stream_drops_the_connection() {
        let (addr, server) = serve(vec![
            Step::Write(head("200 OK", SSE_CHUNKED)),
            Step::Write(chunk(
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            )),
            Step::AwaitClose,
        ])
        .await;
        let client = client_for(ProviderKind::OpenAi, addr, None, |_| {});
        let cancel = CancellationToken::new();
        let started = Instant::now();
        let err = client
            .stream(&hello(), &cancel, |_| cancel.cancel())
            .await
            .unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::Cancelled);
        assert!(!err.retryable);
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(
            server.await.unwrap().client_closed,
            "the HTTP connection was left open"
        );
    }

    #[tokio::test]
    async fn cancelling_before_the_answer_returns_promptly() {
        let (addr, server) = serve(vec![Step::AwaitClose]).await;
        let client = client_for(ProviderKind::OpenAi, addr, None, |_| {});
        let cancel = CancellationToken::new();
        let trigger = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            trigger.cancel();
        });
        let started = Instant::now();
        let err = client.stream(&hello(), &cancel, |_| {}).await.unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::Cancelled);
        assert!(started.elapsed() < Duration::from_secs(3));
        assert!(server.await.unwrap().client_closed);

        let err = client.stream(&hello(), &cancel, |_| {}).await.unwrap_err();
        assert_eq!(
            err.kind,
            LlmErrorKind::Cancelled,
            "an already cancelled token sends nothing"
        );
    }

    #[tokio::test]
    async fn a_silent_stream_times_out() {
        let (addr, _server) = serve(vec![
            Step::Write(head("200 OK", SSE_CHUNKED)),
            Step::Write(chunk(
                "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n",
            )),
            Step::AwaitClose,
        ])
        .await;
        let client = client_for(ProviderKind::OpenAi, addr, None, |c| {
            c.idle_stream_timeout = Duration::from_millis(300);
        });
        let mut text = String::new();
        let started = Instant::now();
        let err = client
            .stream(&hello(), &CancellationToken::new(), |e| {
                if let StreamEvent::TextDelta(t) = e {
                    text.push_str(&t);
                }
            })
            .await
            .unwrap_err();
        assert_eq!(text, "Hi");
        assert_eq!(err.kind, LlmErrorKind::Timeout);
        assert!(err.retryable);
        assert_eq!(
            err.message,
            format!(
                "the model API at http://{addr}/v1/chat/completions sent nothing for 0.3s mid-stream (llm.idle_stream_timeout)"
            )
        );
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn no_headers_within_the_first_byte_timeout_is_said_and_announced() {
        let (addr, _server) = serve(vec![Step::AwaitClose]).await;
        let client = client_for(ProviderKind::Anthropic, addr, None, |c| {
            c.first_byte_timeout = Duration::from_millis(200);
        });
        let mut events = Vec::new();
        let err = client
            .stream(&hello(), &CancellationToken::new(), |e| events.push(e))
            .await
            .unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::Timeout);
        assert!(err.retryable);
        assert!(
            err.message
                .ends_with("sent no response headers within 0.2 s (llm.first_byte_timeout)"),
            "{}",
            err.message
        );
        assert_eq!(
            events,
            [StreamEvent::Waiting {
                what: format!("the first byte of the answer from http://{addr}/v1/messages"),
                up_to: Duration::from_millis(200),
            }]
        );
    }

    #[tokio::test]
    async fn a_spent_budget_is_final() {
        let (addr, _server) = serve(vec![Step::AwaitClose]).await;
        let client = client_for(ProviderKind::OpenAi, addr, None, |c| {
            c.request_budget = Duration::from_millis(300);
        });
        let err = client
            .stream(&hello(), &CancellationToken::new(), |_| {})
            .await
            .unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::Timeout);
        assert!(!err.retryable, "no time is left for another attempt");
        assert_eq!(
            err.message,
            format!(
                "the model API at http://{addr}/v1/chat/completions did not finish answering within 0.3 s (llm.request_budget), retries included"
            )
        );
        let err = client
            .stream_until(&hello(), Instant::now(), &CancellationToken::new(), |_| {})
            .await
            .unwrap_err();
        assert!(!err.retryable);
        assert!(
            err.message.contains("llm.request_budget"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn a_retry_after_beyond_the_cap_is_final() {
        let (addr, _server) = serve(vec![Step::Write(head(
            "429 Too Many Requests",
            &["Retry-After: 3600", "Content-Length: 0"],
        ))])
        .await;
        let client = client_for(ProviderKind::OpenAi, addr, None, |_| {});
        let err = client
            .stream(&hello(), &CancellationToken::new(), |_| {})
            .await
            .unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::RateLimited);
        assert!(!err.retryable);
        assert!(
            err.message.ends_with(
                "; the provider asked to wait 3600 s, more than the 60 s allowed by llm.max_retry_after"
            ),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn connection_refused_names_the_url() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = client_for(ProviderKind::OpenAi, addr, Some(KEY), |_| {});
        let err = client
            .stream(&hello(), &CancellationToken::new(), |_| {})
            .await
            .unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::Connect);
        assert!(!err.retryable);
        assert_eq!(err.status, None);
        assert_eq!(
            err.message,
            format!(
                "cannot reach the model API at http://{addr}/v1/chat/completions (connection refused): check the base URL and that the server is running"
            )
        );
    }

    #[tokio::test]
    async fn an_unknown_host_is_a_dns_failure() {
        let cfg = LlmConfig {
            model: Some("m".into()),
            base_url: Some("http://no-such-host.invalid/v1".into()),
            connect_timeout: Duration::from_secs(5),
            ..LlmConfig::default()
        };
        let client = Client::new(cfg.resolve(&|_: &str| None).unwrap()).unwrap();
        let err = client
            .stream(&hello(), &CancellationToken::new(), |_| {})
            .await
            .unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::Connect);
        assert!(!err.retryable);
        assert!(
            err.message.starts_with(
                "cannot reach the model API at http://no-such-host.invalid/v1/chat/completions (cannot resolve the host: "
            ),
            "{}",
            err.message
        );
        assert!(
            err.message.ends_with("): check the base URL"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn https_to_a_plain_http_server_is_a_tls_failure() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = socket.read(&mut buf).await;
            let _ = socket
                .write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .await;
        });
        let cfg = LlmConfig {
            model: Some("m".into()),
            base_url: Some(format!("https://{addr}/v1")),
            ..LlmConfig::default()
        };
        let client = Client::new(cfg.resolve(&|_: &str| None).unwrap()).unwrap();
        let err = client
            .stream(&hello(), &CancellationToken::new(), |_| {})
            .await
            .unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::Connect);
        assert!(!err.retryable);
        assert!(
            err.message.starts_with(&format!(
                "cannot reach the model API at https://{addr}/v1/chat/completions (TLS failed: "
            )),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn a_connection_closed_mid_stream_is_a_retryable_cut() {
        // Close-delimited body that ends early.
        let (addr, _server) = serve(vec![
            Step::Write(head(
                "200 OK",
                &["Content-Type: text/event-stream", "Connection: close"],
            )),
            Step::Write(
                b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n".to_vec(),
            ),
        ])
        .await;
        let client = client_for(ProviderKind::OpenAi, addr, None, |_| {});
        let err = client
            .stream(&hello(), &CancellationToken::new(), |_| {})
            .await
            .unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::StreamCut);
        assert!(err.retryable);
        assert!(
            err.message.starts_with("stream cut before completion: "),
            "{}",
            err.message
        );

        // Chunked body whose connection drops before the last chunk.
        let (addr, _server) = serve(vec![
            Step::Write(head("200 OK", SSE_CHUNKED)),
            Step::Write(chunk(
                "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\n",
            )),
        ])
        .await;
        let client = client_for(ProviderKind::Anthropic, addr, None, |_| {});
        let err = client
            .stream(&hello(), &CancellationToken::new(), |_| {})
            .await
            .unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::StreamCut);
        assert!(err.retryable);
        assert!(
            err.message.starts_with(&format!(
                "stream cut before completion: reading from http://{addr}/v1/messages failed (error decoding response body: "
            )),
            "{}",
            err.message
        );
        assert!(
            err.message.contains("EOF"),
            "the cause is kept: {}",
            err.message
        );
    }

    #[tokio::test]
    async fn a_json_answer_to_a_stream_request_is_a_protocol_error() {
        let body = r#"{"choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}]}"#;
        let (addr, _server) = serve(vec![Step::Write(
            [
                head(
                    "200 OK",
                    &[
                        "Content-Type: application/json",
                        &format!("Content-Length: {}", body.len()),
                    ],
                ),
                body.as_bytes().to_vec(),
            ]
            .concat(),
        )])
        .await;
        let client = client_for(ProviderKind::OpenAi, addr, None, |_| {});
        let err = client
            .stream(&hello(), &CancellationToken::new(), |_| {})
            .await
            .unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::Protocol);
        assert!(!err.retryable);
    }
}
