//! What the mock model says: a script of rules, each a matcher and a scripted response.
//!
//! The types are serde so one JSON file drives both the in-process server and the
//! `mock-model` binary; every struct rejects unknown fields, so a typo in a script fails
//! loudly instead of silently matching everything.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Which wire format a request speaks, inferred from its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Provider {
    /// OpenAI Chat Completions: `POST /v1/chat/completions` (or `/chat/completions`).
    #[serde(rename = "openai")]
    OpenAi,
    /// Anthropic Messages: `POST /v1/messages`.
    #[serde(rename = "anthropic")]
    Anthropic,
}

impl Provider {
    /// The name used in scripts and messages: `openai` or `anthropic`.
    pub fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
        }
    }
}

/// A list of rules. Each request takes the first rule that matches it and has uses left.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    /// The rules, tried in order.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Unix time reported in OpenAI `created` fields. Defaults to the time of each request;
    /// set it to make byte transcripts reproducible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<u64>,
}

impl Script {
    /// A script of these rules.
    pub fn new(rules: Vec<Rule>) -> Script {
        Script {
            rules,
            created: None,
        }
    }

    /// Parses and validates a script written as JSON.
    pub fn from_json(text: &str) -> Result<Script, String> {
        let script: Script =
            serde_json::from_str(text).map_err(|err| format!("invalid mock script: {err}"))?;
        script.validate()?;
        Ok(script)
    }

    /// Checks what serde cannot: that every response is one coherent thing.
    pub fn validate(&self) -> Result<(), String> {
        for (index, rule) in self.rules.iter().enumerate() {
            rule.validate()
                .map_err(|err| format!("invalid mock script: rule {index}: {err}"))?;
        }
        Ok(())
    }
}

/// One matcher and the response it produces.
///
/// Every matcher that is set must fit. `times` is how often the rule may be used (default 1);
/// with `repeat: true` and no `times` it is unlimited.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Only requests in this wire format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    /// Only requests whose raw body contains this substring.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    /// Only requests with exactly this many assistant messages in `messages`, so `0` is the
    /// first turn and `1` the turn after one assistant reply (for example after tool calls).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<usize>,
    /// How many requests this rule answers. Default 1, or unlimited with `repeat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    /// Unlimited uses unless `times` says otherwise.
    #[serde(default, skip_serializing_if = "is_false")]
    pub repeat: bool,
    /// What to send back.
    pub respond: Response,
}

impl Rule {
    /// A rule that answers any request once with `respond`.
    pub fn new(respond: Response) -> Rule {
        Rule {
            provider: None,
            contains: None,
            turn: None,
            times: None,
            repeat: false,
            respond,
        }
    }

    /// A rule for OpenAI requests only.
    pub fn openai(respond: Response) -> Rule {
        Rule::new(respond).provider(Provider::OpenAi)
    }

    /// A rule for Anthropic requests only.
    pub fn anthropic(respond: Response) -> Rule {
        Rule::new(respond).provider(Provider::Anthropic)
    }

    /// Only requests in this wire format.
    pub fn provider(mut self, provider: Provider) -> Rule {
        self.provider = Some(provider);
        self
    }

    /// Only requests whose raw body contains `needle`.
    pub fn contains(mut self, needle: impl Into<String>) -> Rule {
        self.contains = Some(needle.into());
        self
    }

    /// Only requests with `turn` assistant messages in their history.
    pub fn turn(mut self, turn: usize) -> Rule {
        self.turn = Some(turn);
        self
    }

    /// Answer this many requests.
    pub fn times(mut self, times: u32) -> Rule {
        self.times = Some(times);
        self
    }

    /// Answer any number of requests.
    pub fn repeat(mut self) -> Rule {
        self.repeat = true;
        self.times = None;
        self
    }

    /// How many requests the rule may answer; `None` is unlimited.
    pub(crate) fn uses(&self) -> Option<u32> {
        match (self.times, self.repeat) {
            (Some(times), _) => Some(times),
            (None, true) => None,
            (None, false) => Some(1),
        }
    }

    fn validate(&self) -> Result<(), String> {
        if self.times == Some(0) {
            return Err("times must be at least 1".into());
        }
        self.respond.validate()
    }
}

/// A scripted response.
///
/// Exactly one kind: `text` and/or `tool_calls` (the text leads), `error`, or `hang`. The
/// other fields tune how it is delivered.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    /// Assistant text. With `tool_calls` it is the text before the calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Reasoning streamed before the text and the tool calls (see [`Reasoning`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<Reasoning>,
    /// Tool calls, in order; several make a parallel tool call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// An error instead of an answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReply>,
    /// Send the response headers, then nothing, until the client disconnects.
    #[serde(default, skip_serializing_if = "is_false")]
    pub hang: bool,
    /// Close the connection part-way through (see [`Cut`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cut: Option<Cut>,
    /// Token counts to report. Defaults: a quarter of the request body's characters in,
    /// a quarter of the answer's characters out (at least 1 each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Overrides the finish/stop reason, verbatim (`length`, `max_tokens`, ...). Defaults:
    /// OpenAI `tool_calls` or `stop`, Anthropic `tool_use` or `end_turn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
    /// The model name to report; defaults to the request's `model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Characters per streamed text delta and per tool-argument fragment (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_size: Option<usize>,
    /// Milliseconds to wait before sending the response headers.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub delay_ms: u64,
    /// Milliseconds to wait between SSE events.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub chunk_delay_ms: u64,
    /// Write each SSE event in pieces of at most this many bytes (best effort: the pieces
    /// are separate writes, which usually arrive as separate reads on loopback). Tests that
    /// a client reassembles events split across reads, even inside a UTF-8 character.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fragment_bytes: Option<usize>,
    /// Hold the response (before `delay_ms`) until at least this many requests are in
    /// flight at once, or 10 s pass. A barrier: with `max_in_flight` it proves concurrency
    /// without sleeping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub await_in_flight: Option<usize>,
    /// Extra response headers.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl Response {
    /// An assistant message.
    pub fn text(text: impl Into<String>) -> Response {
        Response {
            text: Some(text.into()),
            ..Response::default()
        }
    }

    /// Tool calls without leading text.
    pub fn tool_calls(calls: Vec<ToolCall>) -> Response {
        Response {
            tool_calls: calls,
            ..Response::default()
        }
    }

    /// An error response.
    pub fn error(error: ErrorReply) -> Response {
        Response {
            error: Some(error),
            ..Response::default()
        }
    }

    /// Headers, then silence until the client hangs up.
    pub fn hang() -> Response {
        Response {
            hang: true,
            ..Response::default()
        }
    }

    /// Adds reasoning before the answer, in the wire format's usual place: OpenAI
    /// `delta.reasoning_content`, Anthropic a signed `thinking` block.
    pub fn with_reasoning(mut self, text: impl Into<String>) -> Response {
        self.reasoning = Some(Reasoning {
            text: text.into(),
            ..Reasoning::default()
        });
        self
    }

    /// Adds text (before any tool calls).
    pub fn with_text(mut self, text: impl Into<String>) -> Response {
        self.text = Some(text.into());
        self
    }

    /// Closes the connection after `events` SSE events instead of finishing the stream.
    pub fn cut_after(mut self, events: usize) -> Response {
        self.cut = Some(Cut {
            after_events: Some(events),
        });
        self
    }

    /// Closes the connection just before the stream's terminator.
    pub fn cut(mut self) -> Response {
        self.cut = Some(Cut { after_events: None });
        self
    }

    /// Reports these token counts.
    pub fn usage(mut self, input_tokens: u64, output_tokens: u64) -> Response {
        self.usage = Some(Usage {
            input_tokens,
            output_tokens,
            ..Usage::default()
        });
        self
    }

    /// Characters per streamed fragment.
    pub fn chunk_size(mut self, chars: usize) -> Response {
        self.chunk_size = Some(chars);
        self
    }

    /// Waits before the headers.
    pub fn delay_ms(mut self, ms: u64) -> Response {
        self.delay_ms = ms;
        self
    }

    /// Waits between SSE events.
    pub fn chunk_delay_ms(mut self, ms: u64) -> Response {
        self.chunk_delay_ms = ms;
        self
    }

    /// Holds the response until `requests` are in flight at once (see the field).
    pub fn await_in_flight(mut self, requests: usize) -> Response {
        self.await_in_flight = Some(requests);
        self
    }

    fn validate(&self) -> Result<(), String> {
        let answers = self.text.is_some() || !self.tool_calls.is_empty();
        if let Some(error) = &self.error {
            if !(400..=599).contains(&error.status) {
                return Err(format!("error status {} is not 4xx or 5xx", error.status));
            }
            if !self.tool_calls.is_empty() || self.hang || self.cut.is_some() {
                return Err("error excludes tool_calls, hang and cut".into());
            }
            if self.text.is_some() && !error.in_stream {
                return Err("text with an error needs error.in_stream".into());
            }
        } else if self.hang {
            if answers || self.cut.is_some() {
                return Err("hang excludes text, tool_calls and cut".into());
            }
        } else if !answers {
            return Err("respond needs one of text, tool_calls, error or hang".into());
        }
        if self.chunk_size == Some(0) {
            return Err("chunk_size must be at least 1".into());
        }
        if self.fragment_bytes == Some(0) {
            return Err("fragment_bytes must be at least 1".into());
        }
        for call in &self.tool_calls {
            if call.name.is_empty() {
                return Err("a tool call needs a name".into());
            }
        }
        for (name, value) in &self.headers {
            if hyper::header::HeaderName::from_bytes(name.as_bytes()).is_err()
                || hyper::header::HeaderValue::from_str(value).is_err()
            {
                return Err(format!("invalid header {name:?}: {value:?}"));
            }
        }
        Ok(())
    }
}

/// What a model streams of its reasoning before it answers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reasoning {
    /// The reasoning, streamed in `chunk_size` pieces.
    pub text: String,
    /// OpenAI: the delta's key for it.
    #[serde(default)]
    pub field: ReasoningField,
    /// Anthropic: the `thinking` block's signature, sent in one `signature_delta` before
    /// the block stops. Default `sig_mock_<request>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Anthropic: a `redacted_thinking` block with this (encrypted) data before the
    /// `thinking` block, as Claude 3.7 sends when its reasoning was flagged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redacted: Option<String>,
}

/// Where an OpenAI-compatible server puts reasoning in a stream's `delta`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasoningField {
    /// `reasoning_content`: llama.cpp, DeepSeek, vLLM.
    #[default]
    ReasoningContent,
    /// `reasoning`: OpenRouter and newer vLLM.
    Reasoning,
}

/// One tool call the model makes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolCall {
    /// The call id; defaults to `call_mock_<request>_<n>` (OpenAI) or
    /// `toolu_mock_<request>_<n>` (Anthropic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The tool's name.
    pub name: String,
    /// The arguments. A JSON string is sent verbatim as the raw arguments text (so a test
    /// can send malformed JSON); any other value is sent as compact JSON. Default `{}`.
    #[serde(default = "empty_object")]
    pub arguments: Value,
}

impl ToolCall {
    /// A call of `name` with JSON `arguments`.
    pub fn new(name: impl Into<String>, arguments: Value) -> ToolCall {
        ToolCall {
            id: None,
            name: name.into(),
            arguments,
        }
    }

    /// A call whose arguments text is `raw`, verbatim, valid JSON or not.
    pub fn raw(name: impl Into<String>, raw: impl Into<String>) -> ToolCall {
        ToolCall::new(name, Value::String(raw.into()))
    }

    /// Uses this call id.
    pub fn with_id(mut self, id: impl Into<String>) -> ToolCall {
        self.id = Some(id.into());
        self
    }

    /// The arguments as the text the wire carries.
    pub(crate) fn arguments_text(&self) -> String {
        match &self.arguments {
            Value::String(raw) => raw.clone(),
            other => other.to_string(),
        }
    }
}

/// An error response in the provider's documented shape.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorReply {
    /// The HTTP status, 400 to 599 (529 is Anthropic's `overloaded_error`).
    pub status: u16,
    /// Seconds, sent as `Retry-After` (and in the provider's rate-limit headers on a 429).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
    /// `error.message`; defaults to the provider's usual text for the status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// `error.type`; defaults by status (OpenAI `invalid_request_error`, `requests`,
    /// `server_error`; Anthropic `invalid_request_error`, `authentication_error`,
    /// `not_found_error`, `rate_limit_error`, `api_error`, `overloaded_error`, ...).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// OpenAI `error.code` (defaults by status, e.g. `rate_limit_exceeded`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// OpenAI `error.param` (default null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub param: Option<String>,
    /// The whole body, verbatim, instead of the provider's shape: a JSON string is sent as
    /// raw text (for example an HTML page from a proxy), anything else as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
    /// For a streaming request: answer 200, start the stream (with any `text`), then send
    /// the error as an SSE event (Anthropic `event: error`, OpenAI `data: {"error":...}`)
    /// and end the stream without its terminator. Non-streaming requests get the plain
    /// HTTP error.
    #[serde(default, skip_serializing_if = "is_false")]
    pub in_stream: bool,
}

impl ErrorReply {
    /// An error with this status and the provider's default body.
    pub fn new(status: u16) -> ErrorReply {
        ErrorReply {
            status,
            retry_after: None,
            message: None,
            kind: None,
            code: None,
            param: None,
            body: None,
            in_stream: false,
        }
    }

    /// Sends `Retry-After: seconds`.
    pub fn retry_after(mut self, seconds: u64) -> ErrorReply {
        self.retry_after = Some(seconds);
        self
    }

    /// Uses this `error.message`.
    pub fn message(mut self, message: impl Into<String>) -> ErrorReply {
        self.message = Some(message.into());
        self
    }

    /// Delivers the error inside a started stream.
    pub fn in_stream(mut self) -> ErrorReply {
        self.in_stream = true;
        self
    }
}

/// Where a `cut` response closes the connection.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cut {
    /// SSE events to send before closing. Default: every event but the terminator
    /// (`data: [DONE]` / `message_stop`). A non-streaming body is cut at half its bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_events: Option<usize>,
}

/// Token counts, reported in each provider's shape.
///
/// Anthropic gets them verbatim. OpenAI gets `prompt_tokens` = input + cache read + cache
/// creation, `prompt_tokens_details.cached_tokens` = cache read, `completion_tokens` =
/// output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Usage {
    /// Uncached input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_read_input_tokens: u64,
    /// Input tokens written to the prompt cache.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_creation_input_tokens: u64,
}

fn empty_object() -> Value {
    Value::Object(serde_json::Map::new())
}

fn is_false(value: &bool) -> bool {
    !*value
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}
