//! Reading a model's SSE stream: bytes to events ([`Parser`], linear in the bytes received
//! and bounded per event), events to [`StreamEvent`]s and a [`ModelResponse`] (the
//! per-provider decoders), with the idle timeout, cancellation and the "stream cut" check in
//! one loop.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::error::{LlmError, LlmErrorKind, Target, error_chain};
use super::{
    ModelResponse, ProviderKind, StopReason, StreamEvent, Thinking, ToolCall, Usage, anthropic,
    openai,
};

/// Whether the stream goes on after an event.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    More,
    Done,
}

/// One decoder per wire format.
pub(crate) enum Decoder {
    OpenAi(openai::Decoder),
    Anthropic(anthropic::Decoder),
}

impl Decoder {
    pub(crate) fn new(provider: ProviderKind) -> Self {
        match provider {
            ProviderKind::OpenAi => Self::OpenAi(openai::Decoder::default()),
            ProviderKind::Anthropic => Self::Anthropic(anthropic::Decoder::default()),
        }
    }

    fn on_event(
        &mut self,
        target: &Target<'_>,
        event: &Event,
        emit: &mut dyn FnMut(StreamEvent),
    ) -> Result<Flow, LlmError> {
        match self {
            Self::OpenAi(d) => d.on_event(target, event, emit),
            Self::Anthropic(d) => d.on_event(target, event, emit),
        }
    }

    fn finish(self) -> ModelResponse {
        match self {
            Self::OpenAi(d) => d.finish(),
            Self::Anthropic(d) => d.finish(),
        }
    }

    fn terminator(&self) -> &'static str {
        match self {
            Self::OpenAi(_) => "`data: [DONE]`",
            Self::Anthropic(_) => "`message_stop`",
        }
    }
}

/// The response being assembled, shared by both decoders.
#[derive(Debug, Default)]
pub(crate) struct Draft {
    pub text: String,
    pub thinking: Vec<Thinking>,
    pub calls: Vec<DraftCall>,
    pub usage: Usage,
    pub stop: Option<StopReason>,
}

/// A tool call being assembled. `started` records whether `ToolCallStarted` went out: it
/// waits for the name, and fragments that arrive before it are replayed after it.
#[derive(Debug, Default)]
pub(crate) struct DraftCall {
    pub id: String,
    pub name: String,
    pub arguments: String,
    pub started: bool,
}

impl Draft {
    pub(crate) fn text(&mut self, text: &str, emit: &mut dyn FnMut(StreamEvent)) {
        if !text.is_empty() {
            self.text.push_str(text);
            emit(StreamEvent::TextDelta(text.to_owned()));
        }
    }

    /// Starts a new block of reasoning (Anthropic sends several, each signed).
    pub(crate) fn open_thinking(&mut self) {
        self.thinking.push(Thinking::Text {
            text: String::new(),
            signature: String::new(),
        });
    }

    /// Adds reasoning to the block being written (a new one when there is none).
    pub(crate) fn thinking(&mut self, delta: &str, emit: &mut dyn FnMut(StreamEvent)) {
        if delta.is_empty() {
            return;
        }
        match self.thinking.last_mut() {
            Some(Thinking::Text { text, .. }) => text.push_str(delta),
            _ => self.thinking.push(Thinking::Text {
                text: delta.to_owned(),
                signature: String::new(),
            }),
        }
        emit(StreamEvent::ThinkingDelta(delta.to_owned()));
    }

    /// Adds to the signature of the reasoning block being written.
    pub(crate) fn signature(&mut self, delta: &str) {
        if let Some(Thinking::Text { signature, .. }) = self.thinking.last_mut() {
            signature.push_str(delta);
        }
    }

    /// Opens a tool call and returns its index.
    pub(crate) fn open_call(&mut self, id: Option<&str>) -> usize {
        let index = self.calls.len();
        let id = id
            .filter(|id| !id.is_empty())
            .map_or_else(|| format!("call_{index}"), str::to_owned);
        self.calls.push(DraftCall {
            id,
            ..DraftCall::default()
        });
        index
    }

    /// Adds what a fragment carries to call `index`, emitting `ToolCallStarted` once the
    /// name is known and every arguments fragment after it.
    pub(crate) fn call_fragment(
        &mut self,
        index: usize,
        name: Option<&str>,
        arguments: &str,
        emit: &mut dyn FnMut(StreamEvent),
    ) {
        let Some(call) = self.calls.get_mut(index) else {
            return;
        };
        if let Some(name) = name.filter(|n| !n.is_empty())
            && call.name.is_empty()
        {
            call.name = name.to_owned();
        }
        call.arguments.push_str(arguments);
        if !call.started && !call.name.is_empty() {
            call.started = true;
            emit(StreamEvent::ToolCallStarted {
                index,
                id: call.id.clone(),
                name: call.name.clone(),
            });
            if !call.arguments.is_empty() {
                emit(StreamEvent::ToolCallDelta {
                    index,
                    fragment: call.arguments.clone(),
                });
            }
        } else if call.started && !arguments.is_empty() {
            emit(StreamEvent::ToolCallDelta {
                index,
                fragment: arguments.to_owned(),
            });
        }
    }

    pub(crate) fn usage(&mut self, usage: Usage, emit: &mut dyn FnMut(StreamEvent)) {
        self.usage = usage;
        emit(StreamEvent::Usage(usage));
    }

    pub(crate) fn into_response(self) -> ModelResponse {
        let has_calls = !self.calls.is_empty();
        // Some compatible servers say `stop` even when they return tool calls; what the
        // agent must do next is run them, so that is the stop reason.
        let stop = match self.stop {
            None | Some(StopReason::EndTurn) if has_calls => StopReason::ToolUse,
            None => StopReason::EndTurn,
            Some(stop) => stop,
        };
        ModelResponse {
            text: self.text,
            // A block Anthropic opened and never filled says nothing.
            thinking: self
                .thinking
                .into_iter()
                .filter(|t| !matches!(t, Thinking::Text { text, signature } if text.is_empty() && signature.is_empty()))
                .collect(),
            tool_calls: self
                .calls
                .into_iter()
                .map(|c| ToolCall {
                    id: c.id,
                    name: c.name,
                    arguments: c.arguments,
                })
                .collect(),
            usage: self.usage,
            stop,
        }
    }
}

/// The largest single SSE event accepted: 64 MiB of `data`, more than any model writes in
/// one tool call. A bigger event is refused with a clear error rather than buffered without
/// end.
pub(crate) const MAX_EVENT_BYTES: usize = 64 << 20;

/// One server-sent event: its type (`message` when the stream names none) and its data, the
/// `data:` lines joined by `\n`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub event: String,
    pub data: String,
}

/// Why the event stream failed.
#[derive(Debug)]
enum SseError<E> {
    /// The body below failed.
    Transport(E),
    /// A line is not valid UTF-8.
    Utf8,
    /// One event grew past `limit` bytes.
    TooLarge { limit: usize },
}

/// The SSE line protocol (WHATWG HTML, "Server-sent events"), fed bytes as they arrive.
///
/// Every byte is scanned for a line end once: `scanned` remembers how far the unfinished
/// line at the front of `buf` has been searched, so a 20 MiB `data:` line arriving in
/// thousands of chunks costs one pass, not one pass per chunk. Consumed lines are dropped
/// from `buf` once per [`Parser::feed`], so no byte is moved more than once either.
#[derive(Debug)]
pub(crate) struct Parser {
    /// Bytes not yet consumed: the start of an unfinished line.
    buf: Vec<u8>,
    /// How many bytes of `buf` are known to hold no line end.
    scanned: usize,
    /// The last line ended with CR: an LF right after it belongs to that line end.
    after_cr: bool,
    /// The first line has been seen (a byte order mark may only open the stream).
    started: bool,
    /// The event being built: its type and its data lines.
    event: String,
    data: String,
    /// Events complete and not yet taken.
    ready: VecDeque<Event>,
    /// [`MAX_EVENT_BYTES`] unless a test says otherwise.
    limit: usize,
}

impl Parser {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            buf: Vec::new(),
            scanned: 0,
            after_cr: false,
            started: false,
            event: String::new(),
            data: String::new(),
            ready: VecDeque::new(),
            limit,
        }
    }

    /// Takes the next bytes of the body; the events they complete wait in [`Parser::next`].
    fn feed<E>(&mut self, bytes: &[u8]) -> Result<(), SseError<E>> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.extend_from_slice(bytes);
        let mut start = 0;
        let outcome = loop {
            if self.after_cr && start < buf.len() {
                self.after_cr = false;
                if buf[start] == b'\n' {
                    start += 1;
                }
            }
            let from = start.max(self.scanned);
            let Some(at) = memchr::memchr2(b'\n', b'\r', &buf[from..]) else {
                self.scanned = buf.len();
                break Ok(());
            };
            let end = from + at;
            self.after_cr = buf[end] == b'\r';
            let line = self.line(&buf[start..end]);
            start = end + 1;
            self.scanned = start;
            if line.is_err() {
                break line;
            }
        };
        buf.drain(..start);
        self.scanned -= start;
        self.buf = buf;
        outcome?;
        if self.data.len() + self.buf.len() > self.limit {
            return Err(SseError::TooLarge { limit: self.limit });
        }
        Ok(())
    }

    /// The next complete event, if any.
    fn next(&mut self) -> Option<Event> {
        self.ready.pop_front()
    }

    fn line<E>(&mut self, line: &[u8]) -> Result<(), SseError<E>> {
        let mut line = std::str::from_utf8(line).map_err(|_| SseError::Utf8)?;
        if !self.started {
            self.started = true;
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        if line.is_empty() {
            let event = std::mem::take(&mut self.event);
            let mut data = std::mem::take(&mut self.data);
            if !data.is_empty() {
                data.pop();
                self.ready.push_back(Event {
                    event: if event.is_empty() {
                        "message".to_owned()
                    } else {
                        event
                    },
                    data,
                });
            }
            return Ok(());
        }
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "event" => value.clone_into(&mut self.event),
            // `id` and `retry` matter to a reconnecting EventSource; a model call never
            // reconnects.
            _ => {}
        }
        Ok(())
    }
}

/// The events of an SSE body, stopping at the body's first error.
fn sse_events<S, B, E>(body: S, limit: usize) -> impl Stream<Item = Result<Event, SseError<E>>>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
{
    struct State<S, E> {
        body: Pin<Box<S>>,
        parser: Parser,
        failed: Option<SseError<E>>,
        over: bool,
    }
    let state = State {
        body: Box::pin(body),
        parser: Parser::new(limit),
        failed: None,
        over: false,
    };
    futures::stream::unfold(state, |mut state| async move {
        loop {
            // Events completed before a failure still go out first.
            if let Some(event) = state.parser.next() {
                return Some((Ok(event), state));
            }
            if state.over {
                return None;
            }
            if let Some(e) = state.failed.take() {
                state.over = true;
                return Some((Err(e), state));
            }
            match state.body.next().await {
                Some(Ok(bytes)) => {
                    if let Err(e) = state.parser.feed(bytes.as_ref()) {
                        state.failed = Some(e);
                    }
                }
                Some(Err(e)) => state.failed = Some(SseError::Transport(e)),
                None => state.over = true,
            }
        }
    })
}

/// Why reading the body failed below the SSE layer.
#[derive(Debug)]
enum BodyError<E> {
    Idle,
    Transport(E),
}

/// Reads an SSE body to its terminator, feeding every event to `decoder` and every decoded
/// piece to `emit`. Fails when the body goes silent for longer than `idle`, when `cancel`
/// fires (dropping `body`, which closes the connection), or when the body ends early.
///
/// Generic over `F` rather than taking `dyn FnMut`: `emit` lives across awaits, and the
/// future must be `Send` whenever the caller's callback is.
pub(crate) async fn read_events<S, B, E, F>(
    mut decoder: Decoder,
    body: S,
    idle: Duration,
    cancel: &CancellationToken,
    target: &Target<'_>,
    emit: &mut F,
) -> Result<ModelResponse, LlmError>
where
    F: FnMut(StreamEvent),
    S: Stream<Item = Result<B, E>> + Unpin,
    B: AsRef<[u8]>,
    E: std::error::Error + 'static,
{
    // The idle timeout is measured between body chunks, not between events, so a slow
    // but live stream of partial lines is not cut.
    let timed = futures::stream::unfold((body, false), move |(mut body, failed)| async move {
        if failed {
            return None;
        }
        match tokio::time::timeout(idle, body.next()).await {
            Ok(Some(Ok(bytes))) => Some((Ok(bytes), (body, false))),
            Ok(Some(Err(e))) => Some((Err(BodyError::Transport(e)), (body, true))),
            Ok(None) => None,
            Err(_) => Some((Err(BodyError::Idle), (body, true))),
        }
    });
    let mut events = std::pin::pin!(sse_events(timed, MAX_EVENT_BYTES));
    let url = target.url;

    loop {
        let next = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(LlmError::cancelled()),
            next = events.next() => next,
        };
        let event = match next {
            Some(Ok(event)) => event,
            None => {
                return Err(LlmError::new(
                    LlmErrorKind::StreamCut,
                    true,
                    format!(
                        "stream cut before completion: {url} closed the stream before {}",
                        decoder.terminator()
                    ),
                ));
            }
            Some(Err(SseError::Transport(BodyError::Idle))) => {
                return Err(LlmError::new(
                    LlmErrorKind::Timeout,
                    true,
                    format!(
                        "the model API at {url} sent nothing for {} mid-stream (llm.idle_stream_timeout)",
                        seconds(idle)
                    ),
                ));
            }
            Some(Err(SseError::Transport(BodyError::Transport(e)))) => {
                return Err(LlmError::new(
                    LlmErrorKind::StreamCut,
                    true,
                    target.scrub(&format!(
                        "stream cut before completion: reading from {url} failed ({})",
                        error_chain(&e)
                    )),
                ));
            }
            Some(Err(SseError::Utf8)) => {
                return Err(LlmError::new(
                    LlmErrorKind::Protocol,
                    false,
                    format!("the stream from {url} is not valid UTF-8"),
                ));
            }
            Some(Err(SseError::TooLarge { limit })) => {
                return Err(LlmError::new(
                    LlmErrorKind::Protocol,
                    false,
                    format!(
                        "one event of the stream from {url} is larger than {} MiB, the most \
                         Switchyard accepts in a single event; ask the model for the change in \
                         smaller pieces",
                        limit >> 20
                    ),
                ));
            }
        };
        tracing::trace!(event = %event.event, data = %event.data, "model stream event");
        if decoder.on_event(target, &event, emit)? == Flow::Done {
            return Ok(decoder.finish());
        }
    }
}

/// `"1.5s"`, for messages.
pub(crate) fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}

/// A malformed JSON payload in a stream event: a clear, non-retryable protocol error that
/// quotes the start of the offending data.
pub(crate) fn malformed(target: &Target<'_>, data: &str, err: &serde_json::Error) -> LlmError {
    let mut excerpt: String = data.chars().take(200).collect();
    if excerpt.len() < data.len() {
        excerpt.push('…');
    }
    LlmError::new(
        LlmErrorKind::Protocol,
        false,
        target.scrub(&format!(
            "malformed JSON in a stream event from {} ({err}): {excerpt}",
            target.url
        )),
    )
}

#[cfg(test)]
pub(crate) mod testing {
    //! Feeding recorded transcripts through [`read_events`] in awkward pieces.

    use super::*;
    use crate::llm::Secret;

    pub(crate) const URL: &str = "http://127.0.0.1:1/v1/chat/completions";

    /// Splits `transcript` into chunks of `size` bytes, regardless of lines or UTF-8.
    pub(crate) fn chunks(transcript: &str, size: usize) -> Vec<Vec<u8>> {
        transcript
            .as_bytes()
            .chunks(size)
            .map(<[u8]>::to_vec)
            .collect()
    }

    /// Runs `read_events` over `chunks`, returning the events emitted and the outcome.
    pub(crate) async fn run(
        provider: ProviderKind,
        chunks: Vec<Vec<u8>>,
    ) -> (Vec<StreamEvent>, Result<ModelResponse, LlmError>) {
        let key = Secret::new("sk-never-shown");
        let target = Target {
            provider,
            url: URL,
            model: "m",
            key: Some(&key),
        };
        let body = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
        let mut seen = Vec::new();
        let result = read_events(
            Decoder::new(provider),
            body,
            Duration::from_secs(5),
            &CancellationToken::new(),
            &target,
            &mut |e| seen.push(e),
        )
        .await;
        (seen, result)
    }

    /// Runs one transcript split at every chunk size from 1 to 17 bytes (so across every
    /// line, field and UTF-8 boundary) and checks that all runs agree; returns one run.
    pub(crate) async fn run_split(
        provider: ProviderKind,
        transcript: &str,
    ) -> (Vec<StreamEvent>, Result<ModelResponse, LlmError>) {
        let whole = run(provider, vec![transcript.as_bytes().to_vec()]).await;
        for size in 1..=17 {
            let (events, result) = run(provider, chunks(transcript, size)).await;
            assert_eq!(result, whole.1, "chunk size {size}");
            // SSE framing delivers whole events however the bytes were split, so even the
            // individual deltas must match.
            assert_eq!(events, whole.0, "chunk size {size}");
        }
        whole
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pieces: &[&[u8]], limit: usize) -> (Vec<Event>, Option<String>) {
        let body = futures::stream::iter(
            pieces
                .iter()
                .map(|p| Ok::<_, std::io::Error>(p.to_vec()))
                .collect::<Vec<_>>(),
        );
        let results: Vec<_> =
            futures::executor::block_on(sse_events(body, limit).collect::<Vec<_>>());
        let mut events = Vec::new();
        let mut error = None;
        for r in results {
            match r {
                Ok(e) => events.push(e),
                Err(SseError::TooLarge { limit }) => error = Some(format!("too large {limit}")),
                Err(SseError::Utf8) => error = Some("utf8".into()),
                Err(SseError::Transport(e)) => error = Some(e.to_string()),
            }
        }
        (events, error)
    }

    fn event(kind: &str, data: &str) -> Event {
        Event {
            event: kind.into(),
            data: data.into(),
        }
    }

    #[test]
    fn lines_end_at_lf_crlf_or_cr_however_the_bytes_are_split() {
        let stream = "\u{feff}: a comment\r\nevent: ping\r\ndata: one\r\ndata:two\r\rdata: é\n\nid: 7\nretry: 10\nfield\n\ndata: last\r\n\r\ndata: cut";
        let want = vec![
            event("ping", "one\ntwo"),
            event("message", "é"),
            event("message", "last"),
        ];
        for size in 1..=stream.len() {
            let pieces: Vec<&[u8]> = stream.as_bytes().chunks(size).collect();
            let (events, error) = parse(&pieces, MAX_EVENT_BYTES);
            assert_eq!((events, error), (want.clone(), None), "pieces of {size}");
        }
    }

    #[test]
    fn a_20_mib_event_in_small_pieces_arrives_whole() {
        let data = "0123456789abcdef".repeat(20 << 16);
        let stream = format!("data: {data}\n\n");
        let pieces: Vec<&[u8]> = stream.as_bytes().chunks(16 << 10).collect();
        let (events, error) = parse(&pieces, MAX_EVENT_BYTES);
        assert_eq!(error, None);
        assert_eq!(events.len(), 1);
        assert!(events[0].data == data, "the data differs");
    }

    #[test]
    fn an_event_past_the_limit_is_refused() {
        // The events before it still arrive; the unfinished one counts its partial line.
        let (events, error) = parse(&[b"data: ok\n\ndata: 0123456789", b"0123456789"], 16);
        assert_eq!(events, vec![event("message", "ok")]);
        assert_eq!(error.as_deref(), Some("too large 16"));
        // Data lines add up.
        let (_, error) = parse(&[b"data: 0123456789\ndata: 0123456789\n"], 16);
        assert_eq!(error.as_deref(), Some("too large 16"));
        let (_, error) = parse(&[b"data: \xff\n\n"], 16);
        assert_eq!(error.as_deref(), Some("utf8"));
    }
}
