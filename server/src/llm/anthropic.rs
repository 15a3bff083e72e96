//! The Anthropic Messages wire format: the streaming request body and the event decoder.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::config::{DEFAULT_ANTHROPIC_MAX_TOKENS, ResolvedLlmConfig};
use super::error::{self, LlmError, Target};
use super::stream::{Draft, Event, Flow, malformed};
use super::{Message, ModelRequest, ModelResponse, StopReason, StreamEvent, Thinking, Usage};

/// The `anthropic-version` header sent with every request.
pub const API_VERSION: &str = "2023-06-01";

/// The JSON body of a streaming Messages request.
///
/// The system prompt is the top-level `system`. Messages alternate between user and
/// assistant: consecutive entries of one role are merged into one message, so the results
/// of one batch of tool calls travel together in a single user message, with
/// `tool_result` blocks first (the API requires them before any text). Assistant tool
/// calls become `tool_use` blocks whose `input` is the parsed arguments (`{}` when the
/// model's JSON was malformed: the agent already answered that call with an error).
/// Empty messages are dropped; the API rejects empty text blocks. `max_tokens` is
/// required and defaults to [`DEFAULT_ANTHROPIC_MAX_TOKENS`].
///
/// An assistant message's signed `thinking` and its `redacted_thinking` go back first and
/// unchanged (the API requires them before the tool calls they led to); reasoning without a
/// signature (from an OpenAI-compatible server, before a switch) cannot be, and is left out.
/// `llm.thinking_budget` turns thinking on (`thinking: {type: enabled, budget_tokens}`),
/// without `temperature`, which the API refuses beside it.
pub fn request_body(cfg: &ResolvedLlmConfig, req: &ModelRequest) -> Value {
    let mut turns: Vec<(&str, Vec<Value>)> = Vec::new();
    for message in &req.messages {
        let (role, blocks) = match message {
            Message::User { content } if content.is_empty() => continue,
            Message::User { content } => ("user", vec![json!({"type": "text", "text": content})]),
            Message::Assistant {
                text,
                tool_calls,
                thinking,
            } => {
                let mut blocks = Vec::with_capacity(thinking.len() + tool_calls.len() + 1);
                if !text.is_empty() || !tool_calls.is_empty() {
                    blocks.extend(thinking.iter().filter_map(|t| match t {
                        Thinking::Text { signature, .. } if signature.is_empty() => None,
                        Thinking::Text { text, signature } => Some(
                            json!({"type": "thinking", "thinking": text, "signature": signature}),
                        ),
                        Thinking::Redacted { data } => {
                            Some(json!({"type": "redacted_thinking", "data": data}))
                        }
                    }));
                }
                if !text.is_empty() {
                    blocks.push(json!({"type": "text", "text": text}));
                }
                for call in tool_calls {
                    let input = serde_json::from_str::<Value>(&call.arguments)
                        .ok()
                        .filter(Value::is_object)
                        .unwrap_or_else(|| json!({}));
                    blocks.push(json!({"type": "tool_use", "id": call.id, "name": call.name, "input": input}));
                }
                if blocks.is_empty() {
                    continue;
                }
                ("assistant", blocks)
            }
            Message::ToolResult {
                call_id,
                content,
                is_error,
                images,
            } => (
                "user",
                vec![json!({
                    "type": "tool_result",
                    "tool_use_id": call_id,
                    "content": tool_result_content(content, images),
                    "is_error": is_error,
                })],
            ),
        };
        match turns.last_mut() {
            Some((last, existing)) if *last == role => existing.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let messages: Vec<Value> = turns
        .into_iter()
        .map(|(role, mut blocks)| {
            // Stable: tool results keep their order, then everything else keeps its own.
            blocks.sort_by_key(|b| b["type"] != "tool_result");
            json!({"role": role, "content": blocks})
        })
        .collect();

    let budget = cfg.thinking_budget;
    // The budget counts within `max_tokens`: an unset limit leaves the default for the answer.
    let max_tokens = req
        .max_tokens
        .or(cfg.max_tokens)
        .unwrap_or_else(|| DEFAULT_ANTHROPIC_MAX_TOKENS + budget.unwrap_or(0));
    let mut body = json!({
        "model": cfg.model,
        "max_tokens": max_tokens,
        "messages": messages,
        "stream": true,
    });
    if let Some(budget) = budget {
        body["thinking"] = json!({"type": "enabled", "budget_tokens": budget});
    }
    if !req.system.is_empty() {
        body["system"] = json!(req.system);
    }
    if !req.tools.is_empty() {
        body["tools"] = req
            .tools
            .iter()
            .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
            .collect();
        if !req.parallel_tool_calls {
            body["tool_choice"] = json!({"type": "auto", "disable_parallel_tool_use": true});
        }
    }
    if let Some(t) = req.temperature.or(cfg.temperature)
        && budget.is_none()
    {
        body["temperature"] = json!(t);
    }
    body
}

/// The image types a tool result may hold.
const IMAGE_TYPES: [&str; 4] = ["image/jpeg", "image/png", "image/gif", "image/webp"];

/// A tool result's `content`: its text, or, when it has images of a type Anthropic takes,
/// text and image blocks in the text's order, each image in place of its description.
fn tool_result_content(text: &str, images: &[crate::llm::ToolImage]) -> Value {
    let mut blocks = Vec::new();
    let mut from = 0;
    for image in images {
        let at = &image.at;
        if !IMAGE_TYPES.contains(&image.media_type.as_str())
            || at.start < from
            || at.end > text.len()
            || !text.is_char_boundary(at.start)
            || !text.is_char_boundary(at.end)
        {
            continue;
        }
        let before = text[from..at.start].trim_end_matches('\n');
        if !before.is_empty() {
            blocks.push(json!({"type": "text", "text": before}));
        }
        blocks.push(json!({
            "type": "image",
            "source": {"type": "base64", "media_type": image.media_type, "data": image.data},
        }));
        from = at.end;
    }
    if blocks.is_empty() {
        return json!(text);
    }
    let rest = text[from..].trim_start_matches('\n');
    if !rest.is_empty() {
        blocks.push(json!({"type": "text", "text": rest}));
    }
    Value::Array(blocks)
}

/// Decodes Messages stream events: `message_start`, `content_block_start` / `_delta` /
/// `_stop` (text, tool use, thinking with its signature and redacted thinking; other block
/// kinds are skipped),
/// `message_delta`, `message_stop`, `ping` and `error`. Unknown event types are ignored,
/// as Anthropic's versioning policy asks.
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    draft: Draft,
    /// Content block index to tool call index, for `tool_use` blocks.
    tool_blocks: HashMap<u64, usize>,
    /// The `input` of each `tool_use` block start, used when no JSON deltas follow.
    initial_inputs: HashMap<usize, String>,
    input_tokens: u64,
    output_tokens: u64,
    cached_tokens: u64,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Payload {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u64,
        content_block: Block,
    },
    ContentBlockDelta {
        index: u64,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: u64,
    },
    MessageDelta {
        #[serde(default)]
        delta: Option<MessageDeltaBody>,
        #[serde(default)]
        usage: Option<ApiUsage>,
    },
    MessageStop,
    Ping,
    Error,
    #[serde(other)]
    Unknown,
}

#[derive(Deserialize)]
struct StartMessage {
    #[serde(default)]
    usage: Option<ApiUsage>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Block {
    Text {
        #[serde(default)]
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Option<Value>,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default)]
        signature: String,
    },
    RedactedThinking {
        data: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    SignatureDelta {
        signature: String,
    },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct MessageDeltaBody {
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Deserialize)]
struct ApiUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

impl Decoder {
    pub(crate) fn on_event(
        &mut self,
        target: &Target<'_>,
        event: &Event,
        emit: &mut dyn FnMut(StreamEvent),
    ) -> Result<Flow, LlmError> {
        let data = event.data.trim();
        if data.is_empty() {
            return Ok(Flow::More);
        }
        let payload: Payload =
            serde_json::from_str(data).map_err(|e| malformed(target, data, &e))?;
        match payload {
            Payload::MessageStart { message } => {
                if let Some(usage) = message.usage {
                    self.usage(&usage, emit);
                }
            }
            Payload::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                Block::Text { text } => self.draft.text(&text, emit),
                Block::ToolUse { id, name, input } => {
                    let call = self.draft.open_call(Some(&id));
                    self.tool_blocks.insert(index, call);
                    let input = input
                        .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                        .map_or_else(|| "{}".to_owned(), |i| i.to_string());
                    self.initial_inputs.insert(call, input);
                    self.draft.call_fragment(call, Some(&name), "", emit);
                }
                Block::Thinking {
                    thinking,
                    signature,
                } => {
                    self.draft.open_thinking();
                    self.draft.thinking(&thinking, emit);
                    self.draft.signature(&signature);
                }
                Block::RedactedThinking { data } => {
                    self.draft.thinking.push(Thinking::Redacted { data });
                }
                Block::Other => {}
            },
            Payload::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } => self.draft.text(&text, emit),
                BlockDelta::InputJsonDelta { partial_json } => {
                    if let Some(&call) = self.tool_blocks.get(&index) {
                        self.draft.call_fragment(call, None, &partial_json, emit);
                    }
                }
                BlockDelta::ThinkingDelta { thinking } => self.draft.thinking(&thinking, emit),
                BlockDelta::SignatureDelta { signature } => self.draft.signature(&signature),
                BlockDelta::Other => {}
            },
            Payload::ContentBlockStop { index } => {
                // A tool without parameters streams no JSON at all; its input is `{}`.
                if let Some(&call) = self.tool_blocks.get(&index) {
                    let input = self.initial_inputs.remove(&call);
                    if let (Some(c), Some(input)) = (self.draft.calls.get_mut(call), input)
                        && c.arguments.trim().is_empty()
                    {
                        c.arguments = input;
                    }
                }
            }
            Payload::MessageDelta { delta, usage } => {
                if let Some(reason) = delta.and_then(|d| d.stop_reason) {
                    self.draft.stop = Some(stop_reason(&reason));
                }
                if let Some(usage) = usage {
                    self.usage(&usage, emit);
                }
            }
            Payload::MessageStop => return Ok(Flow::Done),
            Payload::Error => return Err(error::from_stream_error(target, data)),
            Payload::Ping | Payload::Unknown => {}
        }
        Ok(Flow::More)
    }

    /// `message_start` carries the input count; `message_delta` carries the cumulative
    /// output count (and, in newer versions, input counts too). Keep the latest of each.
    fn usage(&mut self, usage: &ApiUsage, emit: &mut dyn FnMut(StreamEvent)) {
        if usage.input_tokens.is_some()
            || usage.cache_creation_input_tokens.is_some()
            || usage.cache_read_input_tokens.is_some()
        {
            self.input_tokens = usage.input_tokens.unwrap_or(0)
                + usage.cache_creation_input_tokens.unwrap_or(0)
                + usage.cache_read_input_tokens.unwrap_or(0);
            self.cached_tokens = usage.cache_read_input_tokens.unwrap_or(0);
        }
        if let Some(output) = usage.output_tokens {
            self.output_tokens = output;
        }
        let usage = Usage {
            input_tokens: self.input_tokens,
            output_tokens: self.output_tokens,
            cached_tokens: self.cached_tokens,
        };
        self.draft.usage(usage, emit);
    }

    pub(crate) fn finish(self) -> ModelResponse {
        self.draft.into_response()
    }
}

fn stop_reason(reason: &str) -> StopReason {
    match reason {
        "end_turn" => StopReason::EndTurn,
        "tool_use" => StopReason::ToolUse,
        "max_tokens" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence,
        "refusal" => StopReason::ContentFilter,
        other => StopReason::Other(other.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::llm::stream::testing::{URL, run, run_split};
    use crate::llm::{LlmErrorKind, ProviderKind, ToolCall, ToolSpec};

    fn cfg() -> ResolvedLlmConfig {
        ResolvedLlmConfig {
            provider: ProviderKind::Anthropic,
            endpoint: "https://api.anthropic.com/v1/messages".parse().unwrap(),
            model: "claude-sonnet-4-5".into(),
            api_key: None,
            max_tokens: None,
            temperature: None,
            thinking_budget: None,
            first_byte_timeout: Duration::from_secs(1),
            request_budget: Duration::from_secs(1),
            max_retry_after: Duration::from_secs(1),
            idle_stream_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
        }
    }

    fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
        ToolCall {
            id: id.into(),
            name: name.into(),
            arguments: arguments.into(),
        }
    }

    #[test]
    fn request_body_alternates_roles_and_merges_tool_results() {
        let req = ModelRequest {
            system: "You are a careful coding agent.".into(),
            messages: vec![
                Message::User {
                    content: "What is in src/?".into(),
                },
                Message::Assistant {
                    text: "Let me look.".into(),
                    thinking: vec![],
                    tool_calls: vec![
                        call("toolu_1", "ls", r#"{"path":"src"}"#),
                        call("toolu_2", "read", r#"{"path":"src/lib.rs""#),
                        call("toolu_3", "status", ""),
                    ],
                },
                Message::ToolResult {
                    call_id: "toolu_1".into(),
                    content: "lib.rs\nmain.rs".into(),
                    is_error: false,
                    images: Vec::new(),
                },
                Message::ToolResult {
                    call_id: "toolu_2".into(),
                    content: "error: the arguments are not valid JSON".into(),
                    is_error: true,
                    images: Vec::new(),
                },
                Message::ToolResult {
                    call_id: "toolu_3".into(),
                    content: "clean".into(),
                    is_error: false,
                    images: Vec::new(),
                },
                Message::User {
                    content: "Also check tests/".into(),
                },
                Message::Assistant {
                    text: String::new(),
                    thinking: vec![],
                    tool_calls: vec![],
                },
                Message::User {
                    content: "Please".into(),
                },
            ],
            tools: vec![ToolSpec {
                name: "ls".into(),
                description: "List a directory".into(),
                parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
            }],
            max_tokens: None,
            temperature: Some(0.5),
            parallel_tool_calls: false,
        };
        assert_eq!(
            request_body(&cfg(), &req),
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 8192,
                "system": "You are a careful coding agent.",
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "What is in src/?"}]},
                    {"role": "assistant", "content": [
                        {"type": "text", "text": "Let me look."},
                        {"type": "tool_use", "id": "toolu_1", "name": "ls", "input": {"path": "src"}},
                        {"type": "tool_use", "id": "toolu_2", "name": "read", "input": {}},
                        {"type": "tool_use", "id": "toolu_3", "name": "status", "input": {}},
                    ]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "lib.rs\nmain.rs", "is_error": false},
                        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "error: the arguments are not valid JSON", "is_error": true},
                        {"type": "tool_result", "tool_use_id": "toolu_3", "content": "clean", "is_error": false},
                        {"type": "text", "text": "Also check tests/"},
                        {"type": "text", "text": "Please"},
                    ]},
                ],
                "tools": [{
                    "name": "ls",
                    "description": "List a directory",
                    "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
                }],
                "tool_choice": {"type": "auto", "disable_parallel_tool_use": true},
                "temperature": 0.5,
                "stream": true,
            })
        );
    }

    #[test]
    fn images_of_a_tool_result_stand_where_described_and_old_results_still_load() {
        let text = "look:\n[image: image/png, about 9 bytes, not shown]\n[image: audio]\ndone";
        let png = 6..50;
        assert_eq!(
            &text[png.clone()],
            "[image: image/png, about 9 bytes, not shown]"
        );
        let images = vec![
            crate::llm::ToolImage {
                media_type: "image/png".into(),
                data: "iVBORw0KGgo=".into(),
                at: png,
            },
            // Not a type Anthropic takes: its description stays.
            crate::llm::ToolImage {
                media_type: "image/tiff".into(),
                data: "AAAA".into(),
                at: 51..65,
            },
        ];
        assert_eq!(
            tool_result_content(text, &images),
            json!([
                {"type": "text", "text": "look:"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "text", "text": "[image: audio]\ndone"},
            ])
        );
        assert_eq!(tool_result_content("plain", &[]), json!("plain"));
        // A session line written before results had images.
        let old: Message = serde_json::from_value(
            json!({"role": "tool_result", "call_id": "c", "content": "x", "is_error": false}),
        )
        .unwrap();
        assert!(matches!(old, Message::ToolResult { ref images, .. } if images.is_empty()));
        let line = serde_json::to_value(&old).unwrap();
        assert!(line.get("images").is_none(), "{line}");
    }

    #[test]
    fn tool_results_go_before_text_in_a_merged_user_turn() {
        let req = ModelRequest {
            messages: vec![
                Message::Assistant {
                    text: String::new(),
                    thinking: vec![],
                    tool_calls: vec![call("toolu_1", "ls", "{}")],
                },
                Message::User {
                    content: "(interrupting)".into(),
                },
                Message::ToolResult {
                    call_id: "toolu_1".into(),
                    content: "a".into(),
                    is_error: false,
                    images: Vec::new(),
                },
            ],
            max_tokens: Some(100),
            parallel_tool_calls: true,
            ..ModelRequest::default()
        };
        let body = request_body(&cfg(), &req);
        assert_eq!(
            body["messages"][1],
            json!({"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a", "is_error": false},
                {"type": "text", "text": "(interrupting)"},
            ]})
        );
        assert_eq!(body["max_tokens"], json!(100));
        assert_eq!(body.get("system"), None);
        assert_eq!(body.get("tools"), None);
        assert_eq!(body.get("tool_choice"), None);
    }

    /// Shaped like Anthropic's documented streaming example with tool use: text, a ping,
    /// a tool_use block whose input arrives as `input_json_delta` fragments, a tool
    /// without parameters, `message_delta` with the stop reason and cumulative usage.
    const TOOL_USE: &str = concat!(
        "event: message_start\n",
        "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p7gG3wDgGV9EUtLvnow3U\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":100,\"output_tokens\":2},\"content\":[],\"stop_reason\":null}}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\n",
        "data: {\"type\": \"ping\"}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Okay, let\u{2019}s check \u{1F440}\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"location\\\":\"}}\n\n",
        "event: content_block_delta\n",
        "data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\" \\\"Z\u{fc}rich\\\"}\"}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
        "event: content_block_start\n",
        "data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_02\",\"name\":\"now\",\"input\":{}}}\n\n",
        "event: content_block_stop\n",
        "data: {\"type\":\"content_block_stop\",\"index\":2}\n\n",
        "event: message_delta\n",
        "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\n",
        "event: message_stop\n",
        "data: {\"type\":\"message_stop\"}\n\n",
    );

    #[tokio::test]
    async fn tool_use_stream_assembles_calls_and_usage() {
        let (events, result) = run_split(ProviderKind::Anthropic, TOOL_USE).await;
        assert_eq!(
            result.unwrap(),
            ModelResponse {
                text: "Okay, let\u{2019}s check \u{1F440}".into(),
                thinking: vec![],
                tool_calls: vec![
                    call(
                        "toolu_01T1x1fJ34qAmk2tNTrN7Up6",
                        "get_weather",
                        "{\"location\": \"Z\u{fc}rich\"}"
                    ),
                    call("toolu_02", "now", "{}"),
                ],
                usage: Usage {
                    input_tokens: 572,
                    output_tokens: 89,
                    cached_tokens: 100
                },
                stop: StopReason::ToolUse,
            }
        );
        assert_eq!(
            events,
            vec![
                StreamEvent::Usage(Usage {
                    input_tokens: 572,
                    output_tokens: 2,
                    cached_tokens: 100
                }),
                StreamEvent::TextDelta("Okay, let\u{2019}s check \u{1F440}".into()),
                StreamEvent::ToolCallStarted {
                    index: 0,
                    id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6".into(),
                    name: "get_weather".into()
                },
                StreamEvent::ToolCallDelta {
                    index: 0,
                    fragment: "{\"location\":".into()
                },
                StreamEvent::ToolCallDelta {
                    index: 0,
                    fragment: " \"Z\u{fc}rich\"}".into()
                },
                StreamEvent::ToolCallStarted {
                    index: 1,
                    id: "toolu_02".into(),
                    name: "now".into()
                },
                StreamEvent::Usage(Usage {
                    input_tokens: 572,
                    output_tokens: 89,
                    cached_tokens: 100
                }),
            ]
        );
    }

    #[tokio::test]
    async fn thinking_is_kept_with_its_signature_and_unknown_events_are_skipped() {
        let transcript = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\n",
            "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQB\"}}\n\n",
            "event: content_block_stop\n",
            "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: brand_new_event\n",
            "data: {\"type\":\"brand_new_event\",\"whatever\":[1,2]}\n\n",
            "event: content_block_start\n",
            "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"Hi\"}}\n\n",
            "event: message_delta\n",
            "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":5}}\n\n",
            "event: message_stop\n",
            "data: {\"type\":\"message_stop\"}\n\n",
        );
        let (events, result) = run_split(ProviderKind::Anthropic, transcript).await;
        let response = result.unwrap();
        assert_eq!(response.text, "Hi");
        assert!(events.contains(&StreamEvent::ThinkingDelta("hmm".into())));
        assert_eq!(
            response.thinking,
            vec![Thinking::Text {
                text: "hmm".into(),
                signature: "EqQB".into()
            }]
        );
        assert_eq!(response.stop, StopReason::MaxTokens);
        assert_eq!(
            response.usage,
            Usage {
                input_tokens: 10,
                output_tokens: 5,
                ..Usage::default()
            }
        );
    }

    #[tokio::test]
    async fn redacted_thinking_is_kept_and_streams_nothing() {
        let transcript = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\n",
            "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"redacted_thinking\",\"data\":\"EmwKAhgBEgy3\"}}\n\n",
            "event: content_block_stop\n",
            "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: content_block_start\n",
            "data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"Hi\"}}\n\n",
            "event: message_stop\n",
            "data: {\"type\":\"message_stop\"}\n\n",
        );
        let (events, result) = run_split(ProviderKind::Anthropic, transcript).await;
        let response = result.unwrap();
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, StreamEvent::ThinkingDelta(_)))
        );
        assert_eq!(
            response.thinking,
            vec![Thinking::Redacted {
                data: "EmwKAhgBEgy3".into()
            }]
        );
    }

    #[test]
    fn signed_thinking_goes_back_first_and_unsigned_reasoning_does_not() {
        let mut cfg = cfg();
        cfg.thinking_budget = Some(2048);
        cfg.temperature = Some(0.3);
        let req = ModelRequest {
            messages: vec![
                Message::User {
                    content: "Fix it".into(),
                },
                Message::Assistant {
                    text: "Looking.".into(),
                    tool_calls: vec![call("toolu_1", "read", r#"{"path":"a"}"#)],
                    thinking: vec![
                        Thinking::Redacted { data: "Em".into() },
                        Thinking::Text {
                            text: "Read a first.".into(),
                            signature: "sig_1".into(),
                        },
                        Thinking::Text {
                            text: "from another provider".into(),
                            signature: String::new(),
                        },
                    ],
                },
                Message::ToolResult {
                    call_id: "toolu_1".into(),
                    content: "x".into(),
                    is_error: false,
                    images: Vec::new(),
                },
            ],
            ..ModelRequest::default()
        };
        let body = request_body(&cfg, &req);
        assert_eq!(
            body["messages"][1]["content"],
            json!([
                {"type": "redacted_thinking", "data": "Em"},
                {"type": "thinking", "thinking": "Read a first.", "signature": "sig_1"},
                {"type": "text", "text": "Looking."},
                {"type": "tool_use", "id": "toolu_1", "name": "read", "input": {"path": "a"}},
            ])
        );
        assert_eq!(
            body["thinking"],
            json!({"type": "enabled", "budget_tokens": 2048})
        );
        assert_eq!(body["max_tokens"], json!(8192 + 2048));
        assert_eq!(body.get("temperature"), None, "refused beside thinking");
    }

    #[tokio::test]
    async fn an_error_event_mid_stream_is_retryable_when_overloaded() {
        let transcript = concat!(
            "event: message_start\n",
            "data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n",
            "event: content_block_start\n",
            "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\n",
            "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n",
            "event: error\n",
            "data: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n",
        );
        let (events, result) = run_split(ProviderKind::Anthropic, transcript).await;
        let err = result.unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::Overloaded);
        assert!(err.retryable);
        assert_eq!(
            err.message,
            format!("the model API at {URL} reported an error mid-stream: Overloaded")
        );
        assert!(events.contains(&StreamEvent::TextDelta("Hel".into())));
    }

    #[tokio::test]
    async fn a_stream_without_message_stop_is_cut() {
        let cut = TOOL_USE.replace(
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
            "",
        );
        let (_, result) = run_split(ProviderKind::Anthropic, &cut).await;
        let err = result.unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::StreamCut);
        assert!(err.retryable);
        assert!(
            err.message
                .ends_with("closed the stream before `message_stop`"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn a_garbage_data_line_is_a_protocol_error() {
        let transcript = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{}}\n\nevent: content_block_delta\ndata: <html>oops</html>\n\n";
        let (_, result) = run(
            ProviderKind::Anthropic,
            vec![transcript.as_bytes().to_vec()],
        )
        .await;
        let err = result.unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::Protocol);
        assert!(!err.retryable);
        assert!(
            err.message.ends_with(": <html>oops</html>"),
            "{}",
            err.message
        );
    }
}
