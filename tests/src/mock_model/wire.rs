//! The two wire formats: turns a scripted [`Response`] into status, headers and body bytes
//! exactly as OpenAI Chat Completions or Anthropic Messages would send them.
//!
//! Shapes follow the providers' API references and published stream transcripts:
//! OpenAI streams `data: {chat.completion.chunk}` events ending in `data: [DONE]`, with a
//! usage-only chunk (empty `choices`) first when `stream_options.include_usage` is set and
//! `"usage":null` on every other chunk; Anthropic streams named events (`message_start`,
//! `content_block_start`, `ping`, `content_block_delta`, `content_block_stop`,
//! `message_delta`, `message_stop`). Field order follows the documented examples, which is
//! why these are typed structs rather than `json!` maps (whose keys serde sorts).

use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::Value;

use super::script::{ErrorReply, Provider, Reasoning, ReasoningField, Response, Usage};

/// The `system_fingerprint` OpenAI chunks carry.
const FINGERPRINT: &str = "fp_mock";
/// Characters per streamed fragment when the script does not say.
const DEFAULT_CHUNK_SIZE: usize = 4;

/// What is known about the request being answered.
pub(crate) struct Exchange<'a> {
    pub provider: Provider,
    /// 1-based request number, used in ids.
    pub seq: u64,
    /// The request's `model`, echoed back unless the response overrides it.
    pub model: &'a str,
    /// Unix seconds for OpenAI `created`.
    pub created: u64,
    /// The request asked for `"stream": true`.
    pub stream: bool,
    /// The request set `stream_options.include_usage` (OpenAI).
    pub include_usage: bool,
    /// Characters in the request body, for the default input token count.
    pub request_chars: usize,
}

/// A response ready to send.
pub(crate) struct Plan {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: PlanBody,
}

/// How the body goes out.
pub(crate) enum PlanBody {
    /// All of it, with a `content-length`.
    Full(Vec<u8>),
    /// A `content-length` for all of it, the first half of the bytes, then a closed socket.
    CutFull(Vec<u8>),
    /// SSE events, one write each; `abort` closes the socket instead of ending the body.
    Events { events: Vec<Vec<u8>>, abort: bool },
    /// Nothing, until the client disconnects.
    Hang,
}

/// Renders a scripted response for this exchange.
pub(crate) fn respond(x: &Exchange<'_>, response: &Response) -> Plan {
    let mut plan = if let Some(error) = &response.error {
        if error.in_stream && x.stream {
            stream_error(x, response, error)
        } else {
            http_error(x, response, error)
        }
    } else if response.hang {
        Plan {
            status: 200,
            headers: base_headers(x.provider, x.seq, x.stream),
            body: PlanBody::Hang,
        }
    } else {
        answer(x, response)
    };
    for (name, value) in &response.headers {
        set_header(&mut plan.headers, name, value);
    }
    plan
}

/// An error the mock itself raises (no rule matched, malformed request, unknown path), in
/// the provider's error shape.
pub(crate) fn reject(provider: Provider, seq: u64, status: u16, message: &str) -> Plan {
    let (kind, _, _) = default_error(provider, status, "", None);
    let body = error_body(provider, seq, kind, message, None, None);
    Plan {
        status,
        headers: json_headers(provider, seq),
        body: PlanBody::Full(body),
    }
}

/// The text, tool calls and bookkeeping of an answer, with every default resolved.
struct Answer {
    id: String,
    model: String,
    text: Option<String>,
    reasoning: Option<Reasoning>,
    calls: Vec<Call>,
    usage: Usage,
    stop_reason: String,
    chunk_size: usize,
}

struct Call {
    id: String,
    name: String,
    arguments: String,
}

impl Answer {
    fn new(x: &Exchange<'_>, response: &Response) -> Answer {
        let calls: Vec<Call> = response
            .tool_calls
            .iter()
            .enumerate()
            .map(|(n, call)| Call {
                id: call.id.clone().unwrap_or_else(|| match x.provider {
                    Provider::OpenAi => format!("call_mock_{}_{n}", x.seq),
                    Provider::Anthropic => format!("toolu_mock_{}_{n}", x.seq),
                }),
                name: call.name.clone(),
                arguments: call.arguments_text(),
            })
            .collect();
        let output_chars = response.text.as_deref().map_or(0, |t| t.chars().count())
            + response
                .reasoning
                .as_ref()
                .map_or(0, |r| r.text.chars().count())
            + calls
                .iter()
                .map(|c| c.name.chars().count() + c.arguments.chars().count())
                .sum::<usize>();
        let usage = response.usage.unwrap_or(Usage {
            input_tokens: (x.request_chars as u64 / 4).max(1),
            output_tokens: (output_chars as u64 / 4).max(1),
            ..Usage::default()
        });
        let stop_reason = response.stop_reason.clone().unwrap_or_else(|| {
            let tools = !calls.is_empty();
            match (x.provider, tools) {
                (Provider::OpenAi, true) => "tool_calls",
                (Provider::OpenAi, false) => "stop",
                (Provider::Anthropic, true) => "tool_use",
                (Provider::Anthropic, false) => "end_turn",
            }
            .to_string()
        });
        Answer {
            id: match x.provider {
                Provider::OpenAi => format!("chatcmpl-mock{}", x.seq),
                Provider::Anthropic => format!("msg_mock{}", x.seq),
            },
            model: response
                .model
                .clone()
                .unwrap_or_else(|| x.model.to_string()),
            text: response.text.clone(),
            reasoning: response.reasoning.clone().map(|r| Reasoning {
                signature: Some(
                    r.signature
                        .clone()
                        .unwrap_or_else(|| format!("sig_mock_{}", x.seq)),
                ),
                ..r
            }),
            calls,
            usage,
            stop_reason,
            chunk_size: response.chunk_size.unwrap_or(DEFAULT_CHUNK_SIZE),
        }
    }

    /// Whether the answer opens with a text part: it has text, or it has nothing at all.
    fn has_text_part(&self) -> bool {
        self.text.is_some() || self.calls.is_empty()
    }
}

fn answer(x: &Exchange<'_>, response: &Response) -> Plan {
    let a = Answer::new(x, response);
    if !x.stream {
        let body = match x.provider {
            Provider::OpenAi => to_json(&openai_completion(x, &a)),
            Provider::Anthropic => to_json(&anthropic_message(&a)),
        };
        return Plan {
            status: 200,
            headers: json_headers(x.provider, x.seq),
            body: if response.cut.is_some() {
                PlanBody::CutFull(body)
            } else {
                PlanBody::Full(body)
            },
        };
    }
    let mut events = match x.provider {
        Provider::OpenAi => openai_events(x, &a, false),
        Provider::Anthropic => anthropic_events(&a, false),
    };
    let abort = if let Some(cut) = &response.cut {
        // Never send the terminator, whatever `after_events` says.
        let keep = cut
            .after_events
            .unwrap_or(usize::MAX)
            .min(events.len().saturating_sub(1));
        events.truncate(keep);
        true
    } else {
        false
    };
    Plan {
        status: 200,
        headers: base_headers(x.provider, x.seq, true),
        body: PlanBody::Events { events, abort },
    }
}

/// A 200 stream that starts (with any text) and then carries the error as an event.
fn stream_error(x: &Exchange<'_>, response: &Response, error: &ErrorReply) -> Plan {
    let a = Answer::new(x, response);
    let (default_kind, default_message, _) =
        default_error(x.provider, error.status, &a.model, error.retry_after);
    let kind = error.kind.as_deref().unwrap_or(default_kind);
    let message = error.message.as_deref().unwrap_or(&default_message);
    let mut events = match x.provider {
        Provider::OpenAi => openai_events(x, &a, true),
        Provider::Anthropic => anthropic_events(&a, true),
    };
    events.push(match x.provider {
        Provider::OpenAi => {
            let body = error_body(
                x.provider,
                x.seq,
                kind,
                message,
                error.param.as_deref(),
                error.code.as_deref(),
            );
            let mut event = b"data: ".to_vec();
            event.extend_from_slice(&body);
            event.extend_from_slice(b"\n\n");
            event
        }
        Provider::Anthropic => sse(
            "error",
            &AnthropicEvent::Error {
                error: AnthropicError { kind, message },
            },
        ),
    });
    Plan {
        status: 200,
        headers: base_headers(x.provider, x.seq, true),
        body: PlanBody::Events {
            events,
            abort: false,
        },
    }
}

fn http_error(x: &Exchange<'_>, response: &Response, error: &ErrorReply) -> Plan {
    let model = response.model.as_deref().unwrap_or(x.model);
    let (default_kind, default_message, default_code) =
        default_error(x.provider, error.status, model, error.retry_after);
    let mut headers = json_headers(x.provider, x.seq);
    let body = match &error.body {
        Some(Value::String(raw)) => {
            set_header(&mut headers, "content-type", "text/plain; charset=utf-8");
            raw.clone().into_bytes()
        }
        Some(other) => to_json(other),
        None => error_body(
            x.provider,
            x.seq,
            error.kind.as_deref().unwrap_or(default_kind),
            error.message.as_deref().unwrap_or(&default_message),
            error.param.as_deref(),
            error.code.as_deref().or(default_code),
        ),
    };
    if let Some(seconds) = error.retry_after {
        headers.push(("retry-after".into(), seconds.to_string()));
    }
    if error.status == 429 {
        headers.extend(rate_limit_headers(
            x.provider,
            error.retry_after.unwrap_or(1),
        ));
    }
    Plan {
        status: error.status,
        headers,
        body: PlanBody::Full(body),
    }
}

/// The provider's usual `error.type`, message and (OpenAI) `error.code` for a status.
fn default_error(
    provider: Provider,
    status: u16,
    model: &str,
    retry_after: Option<u64>,
) -> (&'static str, String, Option<&'static str>) {
    let wait = retry_after.unwrap_or(1);
    match provider {
        Provider::OpenAi => match status {
            401 => (
                "invalid_request_error",
                "Incorrect API key provided: sk-mock. You can find your API key at \
                 https://platform.openai.com/account/api-keys."
                    .into(),
                Some("invalid_api_key"),
            ),
            404 => (
                "invalid_request_error",
                format!("The model `{model}` does not exist or you do not have access to it."),
                Some("model_not_found"),
            ),
            429 => (
                "requests",
                format!(
                    "Rate limit reached for {model} on requests per min (RPM): Limit 60, \
                     Used 60, Requested 1. Please try again in {wait}s."
                ),
                Some("rate_limit_exceeded"),
            ),
            500 => (
                "server_error",
                "The server had an error while processing your request. Sorry about that!".into(),
                None,
            ),
            503 => (
                "server_error",
                "The engine is currently overloaded, please try again later.".into(),
                None,
            ),
            400..=499 => ("invalid_request_error", "Invalid request.".into(), None),
            _ => ("server_error", "The server had an error.".into(), None),
        },
        Provider::Anthropic => match status {
            401 => ("authentication_error", "invalid x-api-key".into(), None),
            403 => (
                "permission_error",
                "Your API key does not have permission to use the specified resource.".into(),
                None,
            ),
            404 => ("not_found_error", format!("model: {model}"), None),
            413 => (
                "request_too_large",
                "Request exceeds the maximum allowed number of bytes.".into(),
                None,
            ),
            429 => (
                "rate_limit_error",
                "This request would exceed the rate limit for your organization of 50 \
                 requests per minute."
                    .into(),
                None,
            ),
            504 => ("timeout_error", "Request timed out.".into(), None),
            529 => ("overloaded_error", "Overloaded".into(), None),
            400..=499 => ("invalid_request_error", "Invalid request.".into(), None),
            _ => ("api_error", "Internal server error".into(), None),
        },
    }
}

/// The provider's error JSON: OpenAI `{"error":{message,type,param,code}}`, Anthropic
/// `{"type":"error","error":{type,message},"request_id"}`.
fn error_body(
    provider: Provider,
    seq: u64,
    kind: &str,
    message: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Vec<u8> {
    match provider {
        Provider::OpenAi => to_json(&OpenAiErrorBody {
            error: OpenAiError {
                message,
                kind,
                param,
                code,
            },
        }),
        Provider::Anthropic => to_json(&AnthropicErrorBody {
            kind: "error",
            error: AnthropicError { kind, message },
            request_id: request_id(seq),
        }),
    }
}

/// Rate-limit headers as each provider documents them, exhausted on requests.
fn rate_limit_headers(provider: Provider, wait: u64) -> Vec<(String, String)> {
    let pairs: Vec<(&str, String)> = match provider {
        Provider::OpenAi => vec![
            ("x-ratelimit-limit-requests", "60".into()),
            ("x-ratelimit-limit-tokens", "150000".into()),
            ("x-ratelimit-remaining-requests", "0".into()),
            ("x-ratelimit-remaining-tokens", "150000".into()),
            ("x-ratelimit-reset-requests", format!("{wait}s")),
            ("x-ratelimit-reset-tokens", "0s".into()),
        ],
        Provider::Anthropic => {
            let reset = rfc3339(SystemTime::now() + Duration::from_secs(wait));
            let now = rfc3339(SystemTime::now());
            vec![
                ("anthropic-ratelimit-requests-limit", "50".into()),
                ("anthropic-ratelimit-requests-remaining", "0".into()),
                ("anthropic-ratelimit-requests-reset", reset),
                ("anthropic-ratelimit-tokens-limit", "90000".into()),
                ("anthropic-ratelimit-tokens-remaining", "90000".into()),
                ("anthropic-ratelimit-tokens-reset", now.clone()),
                ("anthropic-ratelimit-input-tokens-limit", "80000".into()),
                ("anthropic-ratelimit-input-tokens-remaining", "80000".into()),
                ("anthropic-ratelimit-input-tokens-reset", now.clone()),
                ("anthropic-ratelimit-output-tokens-limit", "10000".into()),
                (
                    "anthropic-ratelimit-output-tokens-remaining",
                    "10000".into(),
                ),
                ("anthropic-ratelimit-output-tokens-reset", now),
            ]
        }
    };
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

// ---------------------------------------------------------------------------------------
// OpenAI Chat Completions

#[derive(Serialize)]
struct ChatChunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: Vec<ChunkChoice<'a>>,
    /// Absent without `include_usage`; `null` on every chunk but the last with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<OpenAiUsage>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'a str>,
}

#[derive(Default, Serialize)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    /// `Some(None)` is `"content": null`, as in the opening chunk of a tool-call stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<ToolCallDelta<'a>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning: Option<&'a str>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: Vec<CompletionChoice<'a>>,
    usage: OpenAiUsage,
}

#[derive(Serialize)]
struct CompletionChoice<'a> {
    index: u32,
    message: CompletionMessage<'a>,
    logprobs: Option<()>,
    finish_reason: &'a str,
}

#[derive(Serialize)]
struct CompletionMessage<'a> {
    role: &'static str,
    content: Option<&'a str>,
    refusal: Option<()>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tool_calls: Vec<CompletionToolCall<'a>>,
}

#[derive(Serialize)]
struct CompletionToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: CompletionFunction<'a>,
}

#[derive(Serialize)]
struct CompletionFunction<'a> {
    name: &'a str,
    arguments: &'a str,
}

#[derive(Serialize)]
struct OpenAiUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptTokensDetails,
    completion_tokens_details: CompletionTokensDetails,
}

#[derive(Serialize)]
struct PromptTokensDetails {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct CompletionTokensDetails {
    reasoning_tokens: u64,
}

impl OpenAiUsage {
    fn new(usage: Usage) -> OpenAiUsage {
        let prompt =
            usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens;
        OpenAiUsage {
            prompt_tokens: prompt,
            completion_tokens: usage.output_tokens,
            total_tokens: prompt + usage.output_tokens,
            prompt_tokens_details: PromptTokensDetails {
                cached_tokens: usage.cache_read_input_tokens,
            },
            completion_tokens_details: CompletionTokensDetails {
                reasoning_tokens: 0,
            },
        }
    }
}

#[derive(Serialize)]
struct OpenAiErrorBody<'a> {
    error: OpenAiError<'a>,
}

#[derive(Serialize)]
struct OpenAiError<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: Option<&'a str>,
}

fn openai_completion<'a>(x: &Exchange<'_>, a: &'a Answer) -> Completion<'a> {
    Completion {
        id: &a.id,
        object: "chat.completion",
        created: x.created,
        model: &a.model,
        system_fingerprint: FINGERPRINT,
        choices: vec![CompletionChoice {
            index: 0,
            message: CompletionMessage {
                role: "assistant",
                content: a.text.as_deref(),
                refusal: None,
                reasoning_content: a.reasoning.as_ref().map(|r| r.text.as_str()),
                tool_calls: a
                    .calls
                    .iter()
                    .map(|call| CompletionToolCall {
                        id: &call.id,
                        kind: "function",
                        function: CompletionFunction {
                            name: &call.name,
                            arguments: &call.arguments,
                        },
                    })
                    .collect(),
            },
            logprobs: None,
            finish_reason: &a.stop_reason,
        }],
        usage: OpenAiUsage::new(a.usage),
    }
}

/// The chunks of a streamed completion. `unfinished` stops after the text, for a stream
/// that will end in an error event.
fn openai_events(x: &Exchange<'_>, a: &Answer, unfinished: bool) -> Vec<Vec<u8>> {
    let chunk = |delta: Delta<'_>, finish_reason: Option<&str>| {
        data(&ChatChunk {
            id: &a.id,
            object: "chat.completion.chunk",
            created: x.created,
            model: &a.model,
            system_fingerprint: FINGERPRINT,
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                logprobs: None,
                finish_reason,
            }],
            usage: x.include_usage.then_some(None),
        })
    };
    let mut events = Vec::new();
    if let Some(reasoning) = &a.reasoning {
        for piece in pieces(&reasoning.text, a.chunk_size) {
            let mut delta = Delta {
                role: events.is_empty().then_some("assistant"),
                ..Delta::default()
            };
            match reasoning.field {
                ReasoningField::ReasoningContent => delta.reasoning_content = Some(piece),
                ReasoningField::Reasoning => delta.reasoning = Some(piece),
            }
            events.push(chunk(delta, None));
        }
    }
    if a.has_text_part() {
        events.push(chunk(
            Delta {
                role: events.is_empty().then_some("assistant"),
                content: Some(Some("")),
                ..Delta::default()
            },
            None,
        ));
        for piece in pieces(a.text.as_deref().unwrap_or(""), a.chunk_size) {
            events.push(chunk(
                Delta {
                    content: Some(Some(piece)),
                    ..Delta::default()
                },
                None,
            ));
        }
    }
    if unfinished {
        return events;
    }
    for (index, call) in a.calls.iter().enumerate() {
        // The first fragment of each call carries its id, type and name; later ones only
        // carry more of the arguments.
        let opening = vec![ToolCallDelta {
            index,
            id: Some(&call.id),
            kind: Some("function"),
            function: FunctionDelta {
                name: Some(&call.name),
                arguments: "",
            },
        }];
        let delta = if events.is_empty() {
            Delta {
                role: Some("assistant"),
                content: Some(None),
                tool_calls: Some(opening),
                ..Delta::default()
            }
        } else {
            Delta {
                tool_calls: Some(opening),
                ..Delta::default()
            }
        };
        events.push(chunk(delta, None));
        for piece in pieces(&call.arguments, a.chunk_size) {
            events.push(chunk(
                Delta {
                    tool_calls: Some(vec![ToolCallDelta {
                        index,
                        id: None,
                        kind: None,
                        function: FunctionDelta {
                            name: None,
                            arguments: piece,
                        },
                    }]),
                    ..Delta::default()
                },
                None,
            ));
        }
    }
    events.push(chunk(Delta::default(), Some(&a.stop_reason)));
    if x.include_usage {
        events.push(data(&ChatChunk {
            id: &a.id,
            object: "chat.completion.chunk",
            created: x.created,
            model: &a.model,
            system_fingerprint: FINGERPRINT,
            choices: Vec::new(),
            usage: Some(Some(OpenAiUsage::new(a.usage))),
        }));
    }
    events.push(b"data: [DONE]\n\n".to_vec());
    events
}

// ---------------------------------------------------------------------------------------
// Anthropic Messages

#[derive(Serialize)]
struct AnthropicMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    content: Vec<Block<'a>>,
    model: &'a str,
    stop_reason: Option<&'a str>,
    stop_sequence: Option<()>,
    usage: AnthropicUsage,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block<'a> {
    Text {
        text: &'a str,
    },
    ToolUse {
        id: &'a str,
        name: &'a str,
        input: Value,
    },
    Thinking {
        thinking: &'a str,
        /// In a whole message; a streamed block gets it in a `signature_delta`.
        #[serde(skip_serializing_if = "Option::is_none")]
        signature: Option<&'a str>,
    },
    RedactedThinking {
        data: &'a str,
    },
}

// The variants are the API's `type` names, which all end in `_delta`.
#[allow(clippy::enum_variant_names)]
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta<'a> {
    TextDelta { text: &'a str },
    InputJsonDelta { partial_json: &'a str },
    ThinkingDelta { thinking: &'a str },
    SignatureDelta { signature: &'a str },
}

#[derive(Clone, Copy, Serialize)]
struct AnthropicUsage {
    input_tokens: u64,
    cache_creation_input_tokens: u64,
    cache_read_input_tokens: u64,
    output_tokens: u64,
}

impl AnthropicUsage {
    fn new(usage: Usage) -> AnthropicUsage {
        AnthropicUsage {
            input_tokens: usage.input_tokens,
            cache_creation_input_tokens: usage.cache_creation_input_tokens,
            cache_read_input_tokens: usage.cache_read_input_tokens,
            output_tokens: usage.output_tokens,
        }
    }
}

#[derive(Serialize)]
struct MessageDeltaBody<'a> {
    stop_reason: &'a str,
    stop_sequence: Option<()>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum AnthropicEvent<'a> {
    MessageStart {
        message: AnthropicMessage<'a>,
    },
    ContentBlockStart {
        index: usize,
        content_block: Block<'a>,
    },
    Ping,
    ContentBlockDelta {
        index: usize,
        delta: BlockDelta<'a>,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: MessageDeltaBody<'a>,
        usage: AnthropicUsage,
    },
    MessageStop,
    Error {
        error: AnthropicError<'a>,
    },
}

#[derive(Serialize)]
struct AnthropicErrorBody<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    error: AnthropicError<'a>,
    request_id: String,
}

#[derive(Serialize)]
struct AnthropicError<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    message: &'a str,
}

fn anthropic_message(a: &Answer) -> AnthropicMessage<'_> {
    let mut content = Vec::new();
    if let Some(reasoning) = &a.reasoning {
        if let Some(data) = &reasoning.redacted {
            content.push(Block::RedactedThinking { data });
        }
        content.push(Block::Thinking {
            thinking: &reasoning.text,
            signature: reasoning.signature.as_deref(),
        });
    }
    if a.has_text_part() {
        content.push(Block::Text {
            text: a.text.as_deref().unwrap_or(""),
        });
    }
    for call in &a.calls {
        // `input` is an object on this wire; raw arguments that are not JSON go as a string.
        let input = serde_json::from_str(&call.arguments)
            .unwrap_or_else(|_| Value::String(call.arguments.clone()));
        content.push(Block::ToolUse {
            id: &call.id,
            name: &call.name,
            input,
        });
    }
    AnthropicMessage {
        id: &a.id,
        kind: "message",
        role: "assistant",
        content,
        model: &a.model,
        stop_reason: Some(&a.stop_reason),
        stop_sequence: None,
        usage: AnthropicUsage::new(a.usage),
    }
}

/// The events of a streamed message. `unfinished` stops inside the text block, for a
/// stream that will end in an error event.
fn anthropic_events(a: &Answer, unfinished: bool) -> Vec<Vec<u8>> {
    let usage = AnthropicUsage::new(a.usage);
    let mut events = vec![sse(
        "message_start",
        &AnthropicEvent::MessageStart {
            message: AnthropicMessage {
                id: &a.id,
                kind: "message",
                role: "assistant",
                content: Vec::new(),
                model: &a.model,
                stop_reason: None,
                stop_sequence: None,
                usage: AnthropicUsage {
                    output_tokens: usage.output_tokens.min(1),
                    ..usage
                },
            },
        },
    )];
    let ping = || sse("ping", &AnthropicEvent::Ping);
    if unfinished && a.text.is_none() {
        events.push(ping());
        return events;
    }
    let mut index = 0;
    if let Some(reasoning) = &a.reasoning {
        if let Some(data) = &reasoning.redacted {
            events.push(sse(
                "content_block_start",
                &AnthropicEvent::ContentBlockStart {
                    index,
                    content_block: Block::RedactedThinking { data },
                },
            ));
            events.push(sse(
                "content_block_stop",
                &AnthropicEvent::ContentBlockStop { index },
            ));
            index += 1;
        }
        events.push(sse(
            "content_block_start",
            &AnthropicEvent::ContentBlockStart {
                index,
                content_block: Block::Thinking {
                    thinking: "",
                    signature: None,
                },
            },
        ));
        for piece in pieces(&reasoning.text, a.chunk_size) {
            events.push(sse(
                "content_block_delta",
                &AnthropicEvent::ContentBlockDelta {
                    index,
                    delta: BlockDelta::ThinkingDelta { thinking: piece },
                },
            ));
        }
        events.push(sse(
            "content_block_delta",
            &AnthropicEvent::ContentBlockDelta {
                index,
                delta: BlockDelta::SignatureDelta {
                    signature: reasoning.signature.as_deref().unwrap_or(""),
                },
            },
        ));
        events.push(sse(
            "content_block_stop",
            &AnthropicEvent::ContentBlockStop { index },
        ));
        index += 1;
    }
    if a.has_text_part() {
        events.push(sse(
            "content_block_start",
            &AnthropicEvent::ContentBlockStart {
                index,
                content_block: Block::Text { text: "" },
            },
        ));
        events.push(ping());
        for piece in pieces(a.text.as_deref().unwrap_or(""), a.chunk_size) {
            events.push(sse(
                "content_block_delta",
                &AnthropicEvent::ContentBlockDelta {
                    index,
                    delta: BlockDelta::TextDelta { text: piece },
                },
            ));
        }
        if unfinished {
            return events;
        }
        events.push(sse(
            "content_block_stop",
            &AnthropicEvent::ContentBlockStop { index },
        ));
        index += 1;
    }
    for call in &a.calls {
        events.push(sse(
            "content_block_start",
            &AnthropicEvent::ContentBlockStart {
                index,
                content_block: Block::ToolUse {
                    id: &call.id,
                    name: &call.name,
                    input: Value::Object(serde_json::Map::new()),
                },
            },
        ));
        if index == 0 {
            events.push(ping());
        }
        // The first input_json_delta is empty, as the API sends it.
        for piece in std::iter::once("").chain(pieces(&call.arguments, a.chunk_size)) {
            events.push(sse(
                "content_block_delta",
                &AnthropicEvent::ContentBlockDelta {
                    index,
                    delta: BlockDelta::InputJsonDelta {
                        partial_json: piece,
                    },
                },
            ));
        }
        events.push(sse(
            "content_block_stop",
            &AnthropicEvent::ContentBlockStop { index },
        ));
        index += 1;
    }
    events.push(sse(
        "message_delta",
        &AnthropicEvent::MessageDelta {
            delta: MessageDeltaBody {
                stop_reason: &a.stop_reason,
                stop_sequence: None,
            },
            usage,
        },
    ));
    events.push(sse("message_stop", &AnthropicEvent::MessageStop));
    events
}

// ---------------------------------------------------------------------------------------
// Framing and headers

/// `data: <json>\n\n`, an OpenAI event.
fn data(value: &impl Serialize) -> Vec<u8> {
    let mut event = b"data: ".to_vec();
    event.extend_from_slice(&to_json(value));
    event.extend_from_slice(b"\n\n");
    event
}

/// `event: <name>\ndata: <json>\n\n`, an Anthropic event.
fn sse(name: &str, value: &impl Serialize) -> Vec<u8> {
    let mut event = format!("event: {name}\n").into_bytes();
    event.extend_from_slice(&data(value));
    event
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // Serializing these plain structs cannot fail; an empty body would show if it did.
    serde_json::to_vec(value).unwrap_or_default()
}

/// `text` in pieces of at most `size` characters (never splitting a character).
fn pieces(text: &str, size: usize) -> Vec<&str> {
    let size = size.max(1);
    let mut out = Vec::new();
    let mut start = 0;
    for (count, (offset, _)) in text.char_indices().enumerate() {
        if count > 0 && count % size == 0 {
            out.push(&text[start..offset]);
            start = offset;
        }
    }
    if start < text.len() {
        out.push(&text[start..]);
    }
    out
}

fn request_id(seq: u64) -> String {
    format!("req_mock{seq}")
}

fn base_headers(provider: Provider, seq: u64, stream: bool) -> Vec<(String, String)> {
    let mut headers = json_headers(provider, seq);
    if stream {
        set_header(
            &mut headers,
            "content-type",
            "text/event-stream; charset=utf-8",
        );
        headers.push(("cache-control".into(), "no-cache".into()));
    }
    headers
}

fn json_headers(provider: Provider, seq: u64) -> Vec<(String, String)> {
    let id_header = match provider {
        Provider::OpenAi => "x-request-id",
        Provider::Anthropic => "request-id",
    };
    vec![
        ("content-type".into(), "application/json".into()),
        (id_header.into(), request_id(seq)),
    ]
}

/// Replaces every header called `name` (any case) with one `name: value`.
fn set_header(headers: &mut Vec<(String, String)>, name: &str, value: &str) {
    headers.retain(|(existing, _)| !existing.eq_ignore_ascii_case(name));
    headers.push((name.to_ascii_lowercase(), value.to_string()));
}

/// `2024-05-01T12:00:00Z`, the reset format of Anthropic's rate-limit headers.
fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    #[test]
    fn pieces_respect_characters() {
        assert_eq!(pieces("Hello, world", 4), ["Hell", "o, w", "orld"]);
        assert_eq!(pieces("héllo", 2), ["hé", "ll", "o"]);
        assert!(pieces("", 4).is_empty());
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + Duration::from_secs(1_709_251_199);
        assert_eq!(rfc3339(t), "2024-02-29T23:59:59Z");
    }
}
