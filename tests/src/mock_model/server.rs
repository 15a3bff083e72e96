//! The HTTP/1.1 side: accepts connections on its own thread and runtime, routes requests,
//! picks a rule, records the request and streams the planned bytes out.
//!
//! The server runs on a dedicated current-thread runtime so that a test which blocks its
//! own thread (waiting on a child process, say) cannot starve it.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fs::File;
use std::io::{self, Write};
use std::net::TcpListener as StdListener;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::FutureExt;
use futures::stream::{self, BoxStream, StreamExt};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response as HttpResponse, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::RecordedRequest;
use super::script::{ErrorReply, Provider, Response, Rule, Script};
use super::wire::{self, Exchange, Plan, PlanBody};

/// How long an `await_in_flight` barrier waits before letting the response go anyway.
const BARRIER_TIMEOUT: Duration = Duration::from_secs(10);

/// The body type every response uses: frames pulled from a planned sequence of steps.
type Body = StreamBody<BoxStream<'static, Result<Frame<Bytes>, io::Error>>>;

/// State shared by the server thread and the [`super::MockModel`] handle.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// Bumped on every change a waiter might care about (a request, in-flight counts).
    changed: watch::Sender<u64>,
}

pub(crate) struct State {
    pub(crate) rules: Vec<Slot>,
    pub(crate) created: Option<u64>,
    pub(crate) requests: Vec<RecordedRequest>,
    pub(crate) in_flight: usize,
    pub(crate) max_in_flight: usize,
    /// Requests that have entered so far.
    entered: u64,
    /// `peaks[n]`: the latest entry at which `n` or more requests were in flight. A
    /// barrier needs this because the moment itself can pass before its waiters wake.
    peaks: Vec<u64>,
    record: Option<File>,
    /// See [`super::MockOptions::context_window`].
    context_window: Option<u64>,
    /// See [`super::MockOptions::reports_window`].
    reports: Option<super::WindowReport>,
    /// The `GET /props` and `GET /v1/models` asked, as `GET /props 200`.
    pub(crate) probes: Vec<String>,
}

/// A rule and how many more requests it may answer (`None`: unlimited).
pub(crate) struct Slot {
    pub(crate) rule: Rule,
    pub(crate) left: Option<u32>,
}

impl Slot {
    pub(crate) fn new(rule: Rule) -> Slot {
        let left = rule.uses();
        Slot { rule, left }
    }
}

impl Shared {
    pub(crate) fn new(
        script: Script,
        record: Option<File>,
        context_window: Option<u64>,
        reports: Option<super::WindowReport>,
    ) -> Shared {
        Shared {
            state: Mutex::new(State {
                rules: script.rules.into_iter().map(Slot::new).collect(),
                created: script.created,
                requests: Vec::new(),
                in_flight: 0,
                max_in_flight: 0,
                entered: 0,
                peaks: Vec::new(),
                record,
                context_window,
                reports,
                probes: Vec::new(),
            }),
            changed: watch::Sender::new(0),
        }
    }

    pub(crate) fn bump(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Returns once `done` holds for the state (checked after every change).
    pub(crate) async fn wait_until(&self, done: impl Fn(&State) -> bool) {
        let mut changes = self.changed.subscribe();
        loop {
            let finished = done(&self.state.lock());
            if finished || changes.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Counts a request as in flight from its arrival until its response body is finished or
/// dropped (the client hung up).
struct InFlight {
    shared: Arc<Shared>,
    /// This request's entry number.
    entry: u64,
}

impl InFlight {
    fn enter(shared: &Arc<Shared>) -> InFlight {
        let entry = {
            let mut state = shared.state.lock();
            state.entered += 1;
            state.in_flight += 1;
            state.max_in_flight = state.max_in_flight.max(state.in_flight);
            let (entry, level) = (state.entered, state.in_flight);
            if state.peaks.len() <= level {
                state.peaks.resize(level + 1, 0);
            }
            state.peaks[..=level].fill(entry);
            entry
        };
        shared.bump();
        InFlight {
            shared: Arc::clone(shared),
            entry,
        }
    }

    /// Waits until `wanted` requests have been in flight at once since this one arrived.
    async fn barrier(&self, wanted: usize) {
        self.shared
            .wait_until(|state| state.peaks.get(wanted).is_some_and(|&at| at >= self.entry))
            .await;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.shared.state.lock().in_flight -= 1;
        self.shared.bump();
    }
}

/// Starts accepting on `listener` on a new thread until `cancel` fires.
pub(crate) fn spawn(
    listener: StdListener,
    shared: Arc<Shared>,
    cancel: CancellationToken,
) -> io::Result<JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    std::thread::Builder::new()
        .name("mock-model".into())
        .spawn(move || {
            runtime.block_on(accept_loop(listener, shared, cancel));
            // Dropping the runtime here drops every connection, hanging ones included.
        })
}

async fn accept_loop(listener: StdListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    loop {
        let accepted = tokio::select! {
            () = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => {
                // Each SSE event is its own small write: without this, Nagle's algorithm
                // holds one back until the client's delayed ACK, about 40 ms per response.
                let _ = stream.set_nodelay(true);
                stream
            }
            Err(_) => {
                // Out of descriptors or similar: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(handle_safely(shared, request).await) }
            });
            // Errors here are clients hanging up or deliberate cuts; nothing to report.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// A request body's size in tokens as the mock counts them: a quarter of its characters.
pub(crate) fn tokens(raw: &str) -> u64 {
    raw.chars().count() as u64 / 4
}

/// The provider's error for a prompt longer than the context window, as each documents it.
fn context_exceeded(provider: Provider, window: u64, raw: &str) -> ErrorReply {
    let used = tokens(raw);
    let mut error = ErrorReply::new(400);
    error.kind = Some("invalid_request_error".into());
    match provider {
        Provider::OpenAi => {
            error.message = Some(format!(
                "This model's maximum context length is {window} tokens. However, your messages resulted in {used} tokens. Please reduce the length of the messages."
            ));
            error.code = Some("context_length_exceeded".into());
            error.param = Some("messages".into());
        }
        Provider::Anthropic => {
            error.message = Some(format!(
                "prompt is too long: {used} tokens > {window} maximum"
            ));
        }
    }
    error
}

/// [`handle`], with a panic turned into a 500 instead of a dropped connection.
async fn handle_safely(shared: Arc<Shared>, request: Request<Incoming>) -> HttpResponse<Body> {
    match AssertUnwindSafe(handle(shared, request))
        .catch_unwind()
        .await
    {
        Ok(response) => response,
        Err(_) => {
            let plan = wire::reject(
                Provider::OpenAi,
                0,
                500,
                "mock: the mock model panicked while answering this request",
            );
            into_http(plan, 0, None, None)
        }
    }
}

/// Everything the decision needs to know about one request.
struct Arrival {
    method: Method,
    path: String,
    provider: Option<Provider>,
    headers: BTreeMap<String, String>,
    raw: String,
    json: Result<Value, String>,
}

/// What the request gets.
enum Verdict {
    Reply { response: Box<Response> },
    Reject { status: u16, message: String },
}

/// The answer to `GET /props` (llama.cpp) or `GET /v1/models` (vLLM and others), as those
/// servers shape them, when the mock reports its window that way; else a 404. Kept apart
/// from the model requests, in [`super::MockModel::probes`].
fn probe(shared: &Shared, path: &str) -> HttpResponse<Body> {
    use super::WindowReport;
    let mut state = shared.state.lock();
    let window = state.context_window.unwrap_or(4_096);
    let body = match (state.reports, path) {
        (Some(WindowReport::LlamaCpp), "/props") => Some(serde_json::json!({
            "default_generation_settings": {"n_ctx": window, "params": {"n_predict": -1}},
            "total_slots": 1,
            "model_path": "/models/mock-model.gguf",
            "chat_template": "",
        })),
        (Some(WindowReport::LlamaCpp), "/v1/models" | "/models") => Some(serde_json::json!({
            "object": "list",
            "data": [{"id": "mock-model", "object": "model", "owned_by": "llamacpp",
                      "meta": {"n_ctx_train": window * 8}}],
        })),
        (Some(WindowReport::Vllm), "/v1/models" | "/models") => Some(serde_json::json!({
            "object": "list",
            "data": [{"id": "mock-model", "object": "model", "created": 1, "owned_by": "vllm",
                      "root": "mock-model", "parent": null, "max_model_len": window}],
        })),
        _ => None,
    };
    let status = if body.is_some() { 200 } else { 404 };
    state.probes.push(format!("GET {path} {status}"));
    drop(state);
    shared.bump();
    let body = body.map_or_else(
        || format!("{{\"error\":\"mock: no {path} here\"}}"),
        |b| b.to_string(),
    );
    let plan = Plan {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: PlanBody::Full(body.into_bytes()),
    };
    into_http(plan, 0, None, None)
}

async fn handle(shared: Arc<Shared>, request: Request<Incoming>) -> HttpResponse<Body> {
    if request.method() == Method::GET
        && matches!(request.uri().path(), "/props" | "/v1/models" | "/models")
    {
        return probe(&shared, request.uri().path());
    }
    let in_flight = InFlight::enter(&shared);
    let (parts, body) = request.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        // The client went away mid-upload; whatever we answer goes nowhere.
        Err(_) => Bytes::new(),
    };
    let received_at = SystemTime::now();
    let path = parts.uri.path().to_string();
    let raw = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice::<Value>(&bytes).map_err(|err| err.to_string());
    let mut headers = BTreeMap::new();
    for (name, value) in &parts.headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_string())
            .and_modify(|existing: &mut String| {
                existing.push_str(", ");
                existing.push_str(&value);
            })
            .or_insert(value);
    }
    let arrival = Arrival {
        method: parts.method.clone(),
        provider: route(&path),
        path,
        headers,
        raw,
        json,
    };

    let json = arrival.json.as_ref().ok();
    let stream = json.and_then(|b| b.get("stream")).and_then(Value::as_bool) == Some(true);
    let include_usage = json
        .and_then(|b| b.pointer("/stream_options/include_usage"))
        .and_then(Value::as_bool)
        == Some(true);
    let turn = json.map_or(0, assistant_turns);
    let model = json
        .and_then(|b| b.get("model"))
        .and_then(Value::as_str)
        .unwrap_or("mock-model")
        .to_string();

    // Decide, record and consume the rule in one critical section, so concurrent requests
    // never share a `times: 1` rule.
    let (seq, verdict, created) = {
        let mut state = shared.state.lock();
        let seq = state.requests.len() as u64 + 1;
        let too_long = state
            .context_window
            .filter(|window| tokens(&arrival.raw) > *window);
        let (verdict, rule) = match (check(&arrival), too_long) {
            (Err((status, message)), _) => (Verdict::Reject { status, message }, None),
            (Ok(provider), Some(window)) => {
                let response = Response::error(context_exceeded(provider, window, &arrival.raw));
                (
                    Verdict::Reply {
                        response: Box::new(response),
                    },
                    None,
                )
            }
            (Ok(provider), None) => pick(&mut state, provider, &arrival.raw, turn, stream, seq),
        };
        let status = match &verdict {
            Verdict::Reject { status, .. } => *status,
            Verdict::Reply { response } => match &response.error {
                Some(error) if !(error.in_stream && stream) => error.status,
                _ => 200,
            },
        };
        let record = RecordedRequest {
            seq,
            method: arrival.method.to_string(),
            path: arrival.path.clone(),
            query: parts.uri.query().map(str::to_string),
            headers: arrival.headers.clone(),
            body: arrival.json.clone().unwrap_or(Value::Null),
            raw_body: arrival.raw.clone(),
            received_at,
            provider: arrival.provider,
            stream,
            turn,
            rule,
            status,
        };
        if let Some(file) = &mut state.record {
            // A failing record file must not fail the request; the test will notice.
            if let Ok(line) = serde_json::to_string(&record) {
                let _ = writeln!(file, "{line}").and_then(|()| file.flush());
            }
        }
        state.requests.push(record);
        (seq, verdict, state.created)
    };
    shared.bump();

    let provider = arrival.provider.unwrap_or(Provider::OpenAi);
    let response = match verdict {
        Verdict::Reject { status, message } => {
            return into_http(
                wire::reject(provider, seq, status, &message),
                0,
                None,
                Some(in_flight),
            );
        }
        Verdict::Reply { response } => response,
    };

    if let Some(wanted) = response.await_in_flight {
        let _ = tokio::time::timeout(BARRIER_TIMEOUT, in_flight.barrier(wanted)).await;
    }
    if response.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(response.delay_ms)).await;
    }
    let exchange = Exchange {
        provider,
        seq,
        model: &model,
        created: created.unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        }),
        stream,
        include_usage,
        request_chars: arrival.raw.chars().count(),
    };
    let plan = wire::respond(&exchange, &response);
    into_http(
        plan,
        response.chunk_delay_ms,
        response.fragment_bytes,
        Some(in_flight),
    )
}

/// The provider a path belongs to. OpenAI base URLs conventionally end in `/v1` and
/// Anthropic ones do not, so `/chat/completions` is accepted as well.
fn route(path: &str) -> Option<Provider> {
    match path {
        "/v1/chat/completions" | "/chat/completions" => Some(Provider::OpenAi),
        "/v1/messages" => Some(Provider::Anthropic),
        _ => None,
    }
}

/// The request-level checks the real APIs make before looking at content: endpoint,
/// method, JSON body, the required fields and (Anthropic) the version header.
fn check(arrival: &Arrival) -> Result<Provider, (u16, String)> {
    let Some(provider) = arrival.provider else {
        return Err((
            404,
            format!(
                "mock: no such endpoint {} {}; the mock serves POST /v1/chat/completions \
                 (also /chat/completions) and POST /v1/messages",
                arrival.method, arrival.path
            ),
        ));
    };
    if arrival.method != Method::POST {
        return Err((
            405,
            format!(
                "mock: {} {} is not supported; use POST",
                arrival.method, arrival.path
            ),
        ));
    }
    let body = match &arrival.json {
        Ok(body) => body,
        Err(err) => {
            return Err((400, format!("mock: request body is not valid JSON: {err}")));
        }
    };
    if !body.is_object() {
        return Err((400, "mock: request body must be a JSON object".into()));
    }
    let missing = |field: &str| (400, format!("mock: {field}: field required"));
    if provider == Provider::Anthropic && !arrival.headers.contains_key("anthropic-version") {
        return Err((400, "mock: anthropic-version: header is required".into()));
    }
    if !body.get("model").is_some_and(Value::is_string) {
        return Err(missing("model"));
    }
    if !body.get("messages").is_some_and(Value::is_array) {
        return Err(missing("messages"));
    }
    if provider == Provider::Anthropic && !body.get("max_tokens").is_some_and(Value::is_u64) {
        return Err(missing("max_tokens"));
    }
    if provider == Provider::Anthropic {
        thinking_kept(body)?;
    }
    Ok(provider)
}

/// With `thinking` enabled, Anthropic refuses a tool loop whose last assistant message does
/// not start with the model's thinking: it must come back, as it was sent.
fn thinking_kept(body: &Value) -> Result<(), (u16, String)> {
    if body.pointer("/thinking/type").and_then(Value::as_str) != Some("enabled") {
        return Ok(());
    }
    let messages = body["messages"].as_array().map_or(&[][..], Vec::as_slice);
    let Some((i, last)) = messages
        .iter()
        .enumerate()
        .rfind(|(_, m)| m.get("role").and_then(Value::as_str) == Some("assistant"))
    else {
        return Ok(());
    };
    let blocks = last["content"].as_array().map_or(&[][..], Vec::as_slice);
    let kind = |b: &Value| {
        b.get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    if !blocks.iter().any(|b| kind(b) == "tool_use") {
        return Ok(());
    }
    let first = blocks.first().map(kind).unwrap_or_default();
    if first == "thinking" || first == "redacted_thinking" {
        return Ok(());
    }
    Err((
        400,
        format!(
            "mock: messages.{i}.content.0.type: Expected `thinking` or `redacted_thinking`, but found `{first}`. \
             When `thinking` is enabled, a final `assistant` message must start with a thinking block"
        ),
    ))
}

/// Assistant messages already in the request's history.
fn assistant_turns(body: &Value) -> usize {
    body.get("messages")
        .and_then(Value::as_array)
        .map_or(0, |messages| {
            messages
                .iter()
                .filter(|m| m.get("role").and_then(Value::as_str) == Some("assistant"))
                .count()
        })
}

/// Takes the first rule that fits and has uses left, or explains why none did.
fn pick(
    state: &mut State,
    provider: Provider,
    raw: &str,
    turn: usize,
    stream: bool,
    seq: u64,
) -> (Verdict, Option<usize>) {
    let mut misses = Vec::new();
    for (index, slot) in state.rules.iter_mut().enumerate() {
        match miss(slot, provider, turn, raw) {
            Some(miss) => misses.push(format!("rule {index} {miss}")),
            None => {
                if let Some(left) = &mut slot.left {
                    *left -= 1;
                }
                let response = Box::new(slot.rule.respond.clone());
                return (Verdict::Reply { response }, Some(index));
            }
        }
    }
    let why = if misses.is_empty() {
        "the script has no rules".to_string()
    } else {
        misses.join("; ")
    };
    let message = format!(
        "mock: no scripted response for {} request #{seq} (turn {turn}, stream {stream}): {why}",
        provider.name()
    );
    (
        Verdict::Reject {
            status: 500,
            message,
        },
        None,
    )
}

/// Why a rule does not answer this request, or `None` if it does.
fn miss(slot: &Slot, provider: Provider, turn: usize, raw: &str) -> Option<String> {
    let rule = &slot.rule;
    if slot.left == Some(0) {
        return Some("used up".into());
    }
    if let Some(wanted) = rule.provider.filter(|&p| p != provider) {
        return Some(format!("wants {}", wanted.name()));
    }
    if let Some(wanted) = rule.turn.filter(|&t| t != turn) {
        return Some(format!("wants turn {wanted}"));
    }
    rule.contains
        .as_deref()
        .filter(|needle| !raw.contains(needle))
        .map(|needle| format!("body lacks {needle:?}"))
}

/// One step of writing a body.
enum Step {
    Send(Bytes),
    Pause(Duration),
    /// Let hyper flush what it has, so the next piece is a separate write.
    Yield,
    /// Close the connection without finishing the body.
    Abort,
    /// Send nothing more, ever.
    Hang,
}

/// Builds the HTTP response; `keep` (the in-flight guard) lives as long as the body.
fn into_http(
    plan: Plan,
    chunk_delay_ms: u64,
    fragment_bytes: Option<usize>,
    keep: Option<InFlight>,
) -> HttpResponse<Body> {
    let mut steps = Vec::new();
    let mut length = None;
    match plan.body {
        PlanBody::Full(bytes) => {
            length = Some(bytes.len());
            steps.push(Step::Send(Bytes::from(bytes)));
        }
        PlanBody::CutFull(bytes) => {
            length = Some(bytes.len());
            let half = bytes.len() / 2;
            let mut bytes = Bytes::from(bytes);
            steps.push(Step::Send(bytes.split_to(half)));
            steps.push(Step::Yield);
            steps.push(Step::Abort);
        }
        PlanBody::Events { events, abort } => {
            for (index, event) in events.into_iter().enumerate() {
                if index > 0 && chunk_delay_ms > 0 {
                    steps.push(Step::Pause(Duration::from_millis(chunk_delay_ms)));
                }
                let event = Bytes::from(event);
                match fragment_bytes {
                    Some(size) if size > 0 => {
                        for (n, piece) in event.chunks(size).enumerate() {
                            if n > 0 {
                                steps.push(Step::Yield);
                            }
                            steps.push(Step::Send(event.slice_ref(piece)));
                        }
                    }
                    _ => steps.push(Step::Send(event)),
                }
            }
            if abort {
                // Let what was sent reach the socket before it closes.
                steps.push(Step::Yield);
                steps.push(Step::Abort);
            }
        }
        PlanBody::Hang => steps.push(Step::Hang),
    }

    let frames = stream::unfold((steps.into_iter(), keep), |(mut steps, keep)| async move {
        loop {
            match steps.next()? {
                Step::Send(bytes) => return Some((Ok(Frame::data(bytes)), (steps, keep))),
                Step::Pause(duration) => tokio::time::sleep(duration).await,
                Step::Yield => tokio::task::yield_now().await,
                Step::Abort => {
                    let cut = io::Error::other("mock: connection cut by script");
                    return Some((Err(cut), (steps, keep)));
                }
                Step::Hang => std::future::pending::<()>().await,
            }
        }
    })
    .boxed();

    let mut response = HttpResponse::new(StreamBody::new(frames));
    *response.status_mut() =
        StatusCode::from_u16(plan.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    for (name, value) in plan.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.append(name, value);
        }
    }
    if let Some(length) = length {
        headers.insert(hyper::header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    response
}
