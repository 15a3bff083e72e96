//! Reading a model's SSE stream: bytes to events (`eventsource-stream`), events to
//! [`StreamEvent`]s and a [`ModelResponse`] (the per-provider decoders), with the idle
//! timeout, cancellation and the "stream cut" check in one loop.

use std::time::Duration;

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::error::{LlmError, LlmErrorKind, Target, error_chain};
use super::{
    ModelResponse, ProviderKind, StopReason, StreamEvent, ToolCall, Usage, anthropic, openai,
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
        if let Some(name) = name.filter(|n| !n.is_empty()) {
            if call.name.is_empty() {
                call.name = name.to_owned();
            }
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
    let mut events = std::pin::pin!(timed.eventsource());
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
            Some(Err(EventStreamError::Transport(BodyError::Idle))) => {
                return Err(LlmError::new(
                    LlmErrorKind::Timeout,
                    true,
                    format!(
                        "the model API at {url} sent nothing for {} mid-stream (llm.idle_stream_timeout)",
                        seconds(idle)
                    ),
                ));
            }
            Some(Err(EventStreamError::Transport(BodyError::Transport(e)))) => {
                return Err(LlmError::new(
                    LlmErrorKind::StreamCut,
                    true,
                    target.scrub(&format!(
                        "stream cut before completion: reading from {url} failed ({})",
                        error_chain(&e)
                    )),
                ));
            }
            Some(Err(EventStreamError::Utf8(e))) => {
                return Err(LlmError::new(
                    LlmErrorKind::Protocol,
                    false,
                    format!("the stream from {url} is not valid UTF-8 ({e})"),
                ));
            }
            Some(Err(EventStreamError::Parser(e))) => {
                return Err(LlmError::new(
                    LlmErrorKind::Protocol,
                    false,
                    format!("the stream from {url} is not a valid event stream ({e})"),
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
