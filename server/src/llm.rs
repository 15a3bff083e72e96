//! Model provider clients: the OpenAI-compatible Chat Completions and Anthropic Messages
//! wire formats behind one [`Client`], streamed over SSE.
//!
//! The two formats are one enum, [`ProviderKind`], matched where they differ (request
//! bodies in [`openai`] and [`anthropic`], stream decoding in `stream`); everything else
//! — configuration, HTTP, timeouts, cancellation and error classification — is shared.
//!
//! The rest of Switchyard speaks the plain types defined here ([`ModelRequest`],
//! [`Message`], [`ModelResponse`], [`StreamEvent`], [`LlmError`]) and never sees JSON.
//!
//! # Base URLs
//!
//! How a configured base URL becomes the URL that is posted to (see
//! [`LlmConfig::resolve`]); a trailing slash never matters and a query string is kept:
//!
//! | provider | base URL | posts to |
//! |---|---|---|
//! | OpenAI-compatible | `https://api.openai.com/v1` (the default; the base includes `/v1`) | `…/v1/chat/completions` |
//! | OpenAI-compatible | `http://localhost:11434` (no path at all) | `…/v1/chat/completions` |
//! | OpenAI-compatible | `http://host/custom/prefix` | `…/custom/prefix/chat/completions` |
//! | OpenAI-compatible | anything already ending in `/chat/completions` | as given |
//! | Anthropic | `https://api.anthropic.com` (the default; the base excludes `/v1`) | `…/v1/messages` |
//! | Anthropic | `https://proxy/v1` | `…/v1/messages` |
//! | Anthropic | anything already ending in `/v1/messages` | as given |
//!
//! # Timeouts
//!
//! `connect_timeout` bounds the TCP and TLS handshake, `first_byte_timeout` the wait for the
//! response status and headers, and `idle_stream_timeout` every silence between body bytes
//! afterwards, so a long answer that keeps streaming is not cut for being long. Over them,
//! `request_budget` bounds a whole request, every attempt and every wait between them
//! included, and `max_retry_after` the longest `Retry-After` waited: a provider asking for
//! more, or for more than the budget has left, gets a final error at once saying so.
//!
//! # Retries
//!
//! There is no retry loop here. Every failure is classified into an [`LlmError`] that says
//! whether a retry can help ([`LlmError::retryable`]) and how long the server asked to wait
//! ([`LlmError::retry_after`]); the lane engine owns the policy. See [`error`] for the table.

pub mod anthropic;
mod client;
pub mod config;
pub mod error;
pub mod openai;
mod stream;

use serde::{Deserialize, Serialize};

pub use client::Client;
pub use config::{LlmConfig, Price, ProviderKind, ResolvedLlmConfig, Secret};
pub use error::{LlmError, LlmErrorKind};

/// One entry of the conversation sent to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "snake_case")]
pub enum Message {
    /// What the user said.
    User {
        /// The user's text.
        content: String,
    },
    /// What the model answered: text, tool calls, or both.
    Assistant {
        /// The answer's text; empty when the model only called tools.
        text: String,
        /// The tools the model asked to run, in the model's order.
        tool_calls: Vec<ToolCall>,
        /// The reasoning the model showed before answering, in its order. Kept so the
        /// session can show it again, and sent back in the Anthropic format (which requires
        /// signed thinking before tool calls); the OpenAI format never sends it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        thinking: Vec<Thinking>,
    },
    /// The outcome of one tool call, sent back to the model.
    ToolResult {
        /// The [`ToolCall::id`] this answers.
        call_id: String,
        /// What the tool produced, or what went wrong.
        content: String,
        /// Whether `content` describes a failure. The Anthropic format carries this flag;
        /// the OpenAI format has no field for it, so the content itself should say so.
        is_error: bool,
        /// Images of the result (an MCP tool's), each standing for the description of it in
        /// `content`: a format that takes images in a tool result sends the image there,
        /// another sends the description. Absent in sessions kept before images were.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        images: Vec<ToolImage>,
    },
}

/// One block of a model's reasoning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Thinking {
    /// Reasoning in words: OpenAI-compatible `reasoning_content` / `reasoning`, or an
    /// Anthropic `thinking` block with the signature that must go back unchanged.
    Text {
        /// The reasoning.
        text: String,
        /// Anthropic's signature of the block; empty for the OpenAI format, whose
        /// reasoning is never sent back.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        signature: String,
    },
    /// An Anthropic `redacted_thinking` block: encrypted, shown to no one, sent back as is.
    Redacted {
        /// The encrypted reasoning.
        data: String,
    },
}

/// An image in a tool's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolImage {
    /// Its type (`image/png`).
    pub media_type: String,
    /// The image, base64-encoded.
    pub data: String,
    /// The byte range of its description in the result's text.
    pub at: std::ops::Range<usize>,
}

/// A tool the model asked to run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for this call; a [`Message::ToolResult`] answers it by this id.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments as the raw JSON text the model sent. It is not parsed here: the agent
    /// parses it and turns malformed JSON into an error result the model can see.
    pub arguments: String,
}

/// A tool offered to the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// The tool's name, as the model will call it.
    pub name: String,
    /// What the tool does, for the model.
    pub description: String,
    /// The JSON Schema of the tool's arguments (an object schema).
    pub parameters: serde_json::Value,
}

/// One call to the model: the whole conversation so far and the tools on offer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelRequest {
    /// The system prompt; empty for none.
    pub system: String,
    /// The conversation, oldest first.
    pub messages: Vec<Message>,
    /// The tools the model may call.
    pub tools: Vec<ToolSpec>,
    /// Overrides `llm.max_tokens` for this call.
    pub max_tokens: Option<u32>,
    /// Overrides `llm.temperature` for this call.
    pub temperature: Option<f32>,
    /// Whether the model may ask for several tools in one answer. Only sent when `tools`
    /// is not empty.
    pub parallel_tool_calls: bool,
}

/// The model's complete answer to one [`ModelRequest`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelResponse {
    /// All the text the model produced, concatenated.
    pub text: String,
    /// The tools the model asked to run, in the model's order.
    pub tool_calls: Vec<ToolCall>,
    /// The reasoning the model showed, in its order.
    #[serde(default)]
    pub thinking: Vec<Thinking>,
    /// Tokens used by this call.
    pub usage: Usage,
    /// Why the model stopped.
    pub stop: StopReason,
}

/// Token counts of one model call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Prompt tokens, cached or not (Anthropic's cache reads and writes are included).
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Of the prompt tokens, those read from the provider's prompt cache (OpenAI
    /// `prompt_tokens_details.cached_tokens`, Anthropic `cache_read_input_tokens`).
    #[serde(default)]
    pub cached_tokens: u64,
}

impl Usage {
    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cached_tokens += other.cached_tokens;
    }
}

/// Why the model stopped generating.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model finished its answer.
    #[default]
    EndTurn,
    /// The model is waiting for the results of its tool calls.
    ToolUse,
    /// The answer hit the token limit and is incomplete.
    MaxTokens,
    /// A stop sequence was generated.
    StopSequence,
    /// The provider withheld or cut the answer (OpenAI `content_filter`, Anthropic `refusal`).
    ContentFilter,
    /// A reason this client does not know, as the provider spelled it.
    Other(String),
}

/// Something that arrived on the stream, delivered as soon as it is decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// More of the answer's text.
    TextDelta(String),
    /// More of the model's reasoning (OpenAI-compatible `reasoning_content` /
    /// `reasoning`, Anthropic `thinking_delta`); redacted reasoning sends nothing.
    ThinkingDelta(String),
    /// The model began a tool call. `index` is the call's position in
    /// [`ModelResponse::tool_calls`].
    ToolCallStarted {
        /// Position of the call in the final `tool_calls`.
        index: usize,
        /// The provider's id for the call.
        id: String,
        /// The tool's name.
        name: String,
    },
    /// More of a tool call's raw JSON arguments.
    ToolCallDelta {
        /// Position of the call in the final `tool_calls`.
        index: usize,
        /// The next piece of the arguments text.
        fragment: String,
    },
    /// Token counts so far (cumulative, not an increment).
    Usage(Usage),
    /// The call is waiting longer than usual: for what, and the longest it will wait.
    Waiting {
        /// What is awaited, in words ("the first byte of the answer from URL").
        what: String,
        /// The longest this wait lasts before the call gives up.
        up_to: std::time::Duration,
    },
}
