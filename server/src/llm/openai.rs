//! The OpenAI Chat Completions wire format (OpenAI, Ollama, llama.cpp server, vLLM,
//! LM Studio, OpenRouter): the streaming request body and the chunk decoder.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::config::ResolvedLlmConfig;
use super::error::{self, LlmError, Target};
use super::stream::{Draft, Event, Flow, malformed};
use super::{Message, ModelRequest, ModelResponse, StopReason, StreamEvent, Usage};

/// The JSON body of a streaming Chat Completions request.
///
/// The system prompt is the first message; assistant tool calls are `type: function`
/// entries with their raw arguments text; tool results are `role: tool` messages. Usage is
/// requested with `stream_options.include_usage`. The token limit is sent only when set,
/// as `max_completion_tokens` to api.openai.com (which rejects `max_tokens` for reasoning
/// models) and as `max_tokens` elsewhere (what compatible servers understand).
pub fn request_body(cfg: &ResolvedLlmConfig, req: &ModelRequest) -> Value {
    let mut messages = Vec::with_capacity(req.messages.len() + 1);
    if !req.system.is_empty() {
        messages.push(json!({"role": "system", "content": req.system}));
    }
    for message in &req.messages {
        match message {
            Message::User { content } => {
                messages.push(json!({"role": "user", "content": content}));
            }
            // Reasoning is never sent back: DeepSeek refuses `reasoning_content` in a request,
            // and the others ignore it.
            Message::Assistant {
                text, tool_calls, ..
            } if text.is_empty() && tool_calls.is_empty() => {}
            Message::Assistant {
                text, tool_calls, ..
            } => {
                let mut m = json!({"role": "assistant", "content": text});
                if !tool_calls.is_empty() {
                    if text.is_empty() {
                        m["content"] = Value::Null;
                    }
                    m["tool_calls"] = tool_calls
                        .iter()
                        .map(|c| {
                            let arguments = if c.arguments.trim().is_empty() {
                                "{}"
                            } else {
                                &c.arguments
                            };
                            json!({
                                "id": c.id,
                                "type": "function",
                                "function": {"name": c.name, "arguments": arguments},
                            })
                        })
                        .collect();
                }
                messages.push(m);
            }
            Message::ToolResult {
                call_id, content, ..
            } => {
                messages.push(json!({"role": "tool", "tool_call_id": call_id, "content": content}));
            }
        }
    }

    let mut body = json!({
        "model": cfg.model,
        "messages": messages,
        "stream": true,
        "stream_options": {"include_usage": true},
    });
    if !req.tools.is_empty() {
        body["tools"] = req
            .tools
            .iter()
            .map(|t| {
                json!({
                    "type": "function",
                    "function": {"name": t.name, "description": t.description, "parameters": t.parameters},
                })
            })
            .collect();
        body["parallel_tool_calls"] = json!(req.parallel_tool_calls);
    }
    if let Some(max) = req.max_tokens.or(cfg.max_tokens) {
        let field = if cfg.endpoint.host_str() == Some("api.openai.com") {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        body[field] = json!(max);
    }
    if let Some(t) = req.temperature.or(cfg.temperature) {
        body["temperature"] = json!(t);
    }
    body
}

/// Decodes `chat.completion.chunk` events.
///
/// Tool-call fragments are assembled by their `index`; the id and name arrive in the first
/// fragment of a call. Ollama reuses index 0 for every call of a parallel batch, telling
/// them apart only by id, so a fragment with a new id and a name, at an index whose
/// arguments already form complete JSON, opens a new call (LM Studio repeats fresh ids on
/// every fragment of one call, which this rule leaves alone).
#[derive(Debug, Default)]
pub(crate) struct Decoder {
    draft: Draft,
    /// The wire `index` to the call it currently feeds.
    calls_by_index: HashMap<u64, usize>,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Option<Vec<Choice>>,
    #[serde(default)]
    usage: Option<ChunkUsage>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: u64,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    content: Option<String>,
    /// Reasoning as llama.cpp, DeepSeek and vLLM name it.
    #[serde(default)]
    reasoning_content: Option<String>,
    /// Reasoning as OpenRouter and newer vLLM name it.
    #[serde(default)]
    reasoning: Option<String>,
    #[serde(default)]
    tool_calls: Option<Vec<ToolCallFragment>>,
}

#[derive(Deserialize)]
struct ToolCallFragment {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    function: Option<FunctionFragment>,
}

#[derive(Deserialize)]
struct FunctionFragment {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    arguments: Option<String>,
}

#[derive(Deserialize)]
struct ChunkUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Deserialize)]
struct PromptTokensDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl Decoder {
    pub(crate) fn on_event(
        &mut self,
        target: &Target<'_>,
        event: &Event,
        emit: &mut dyn FnMut(StreamEvent),
    ) -> Result<Flow, LlmError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            return Ok(Flow::Done);
        }
        if data.is_empty() {
            return Ok(Flow::More);
        }
        let chunk: Chunk = serde_json::from_str(data).map_err(|e| malformed(target, data, &e))?;
        if chunk.error.as_ref().is_some_and(|e| !e.is_null()) {
            return Err(error::from_stream_error(target, data));
        }
        for choice in chunk.choices.unwrap_or_default() {
            // Only one completion is ever requested (`n` is left at 1).
            if choice.index != 0 {
                continue;
            }
            if let Some(delta) = choice.delta {
                // A server that sends both sends the same text twice.
                if let Some(reasoning) = delta.reasoning_content.or(delta.reasoning) {
                    self.draft.thinking(&reasoning, emit);
                }
                if let Some(text) = delta.content {
                    self.draft.text(&text, emit);
                }
                for fragment in delta.tool_calls.unwrap_or_default() {
                    self.tool_call_fragment(fragment, emit);
                }
            }
            if let Some(reason) = choice.finish_reason {
                self.draft.stop = Some(stop_reason(&reason));
            }
        }
        if let Some(usage) = chunk.usage {
            let usage = Usage {
                input_tokens: usage.prompt_tokens.unwrap_or(0),
                output_tokens: usage.completion_tokens.unwrap_or(0),
                cached_tokens: usage
                    .prompt_tokens_details
                    .and_then(|d| d.cached_tokens)
                    .unwrap_or(0),
            };
            self.draft.usage(usage, emit);
        }
        Ok(Flow::More)
    }

    fn tool_call_fragment(
        &mut self,
        fragment: ToolCallFragment,
        emit: &mut dyn FnMut(StreamEvent),
    ) {
        let (name, arguments) = match fragment.function {
            Some(f) => (f.name, f.arguments.unwrap_or_default()),
            None => (None, String::new()),
        };
        let id = fragment.id.filter(|id| !id.is_empty());
        // Servers that omit `index` send one call at a time.
        let wire = fragment.index.unwrap_or_else(|| {
            if id.is_some() {
                self.calls_by_index.len() as u64
            } else {
                self.calls_by_index.keys().max().copied().unwrap_or(0)
            }
        });
        let current = self.calls_by_index.get(&wire).copied();
        let index = match current {
            Some(index) if !self.starts_new_call(index, id.as_deref(), name.as_deref()) => index,
            _ => {
                let index = self.draft.open_call(id.as_deref());
                self.calls_by_index.insert(wire, index);
                index
            }
        };
        self.draft
            .call_fragment(index, name.as_deref(), &arguments, emit);
    }

    fn starts_new_call(&self, index: usize, id: Option<&str>, name: Option<&str>) -> bool {
        let Some(call) = self.draft.calls.get(index) else {
            return true;
        };
        match (id, name) {
            // LM Studio sends a fresh id with every fragment: look at the end first, so a
            // long argument is not parsed again for each of its fragments.
            (Some(id), Some(name)) if !name.is_empty() && id != call.id => {
                call.arguments.trim_end().ends_with('}')
                    && serde_json::from_str::<serde::de::IgnoredAny>(&call.arguments).is_ok()
            }
            _ => false,
        }
    }

    pub(crate) fn finish(self) -> ModelResponse {
        self.draft.into_response()
    }
}

fn stop_reason(reason: &str) -> StopReason {
    match reason {
        "stop" => StopReason::EndTurn,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "length" => StopReason::MaxTokens,
        "content_filter" => StopReason::ContentFilter,
        other => StopReason::Other(other.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::llm::stream::testing::{run, run_split};
    use crate::llm::{LlmErrorKind, ProviderKind, Thinking, ToolCall, ToolSpec};

    fn cfg(endpoint: &str) -> ResolvedLlmConfig {
        ResolvedLlmConfig {
            provider: ProviderKind::OpenAi,
            endpoint: endpoint.parse().unwrap(),
            model: "qwen3-coder".into(),
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

    fn conversation() -> ModelRequest {
        ModelRequest {
            system: "You are a careful coding agent.".into(),
            messages: vec![
                Message::User {
                    content: "What is in src/?".into(),
                },
                Message::Assistant {
                    text: String::new(),
                    thinking: vec![],
                    tool_calls: vec![
                        ToolCall {
                            id: "call_a".into(),
                            name: "ls".into(),
                            arguments: r#"{"path":"src"}"#.into(),
                        },
                        ToolCall {
                            id: "call_b".into(),
                            name: "read".into(),
                            arguments: r#"{"path":"src/lib.rs""#.into(),
                        },
                    ],
                },
                Message::ToolResult {
                    call_id: "call_a".into(),
                    content: "lib.rs\nmain.rs".into(),
                    is_error: false,
                    images: Vec::new(),
                },
                Message::ToolResult {
                    call_id: "call_b".into(),
                    content: "error: the arguments are not valid JSON".into(),
                    is_error: true,
                    images: Vec::new(),
                },
                Message::Assistant {
                    text: "Two files.".into(),
                    thinking: vec![],
                    tool_calls: vec![],
                },
                Message::User {
                    content: "Thanks".into(),
                },
            ],
            tools: vec![ToolSpec {
                name: "ls".into(),
                description: "List a directory".into(),
                parameters: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
            }],
            max_tokens: None,
            temperature: Some(0.0),
            parallel_tool_calls: true,
        }
    }

    #[test]
    fn request_body_follows_chat_completions() {
        let body = request_body(
            &cfg("http://localhost:11434/v1/chat/completions"),
            &conversation(),
        );
        assert_eq!(
            body,
            json!({
                "model": "qwen3-coder",
                "messages": [
                    {"role": "system", "content": "You are a careful coding agent."},
                    {"role": "user", "content": "What is in src/?"},
                    {"role": "assistant", "content": null, "tool_calls": [
                        {"id": "call_a", "type": "function", "function": {"name": "ls", "arguments": "{\"path\":\"src\"}"}},
                        {"id": "call_b", "type": "function", "function": {"name": "read", "arguments": "{\"path\":\"src/lib.rs\""}},
                    ]},
                    {"role": "tool", "tool_call_id": "call_a", "content": "lib.rs\nmain.rs"},
                    {"role": "tool", "tool_call_id": "call_b", "content": "error: the arguments are not valid JSON"},
                    {"role": "assistant", "content": "Two files."},
                    {"role": "user", "content": "Thanks"},
                ],
                "stream": true,
                "stream_options": {"include_usage": true},
                "tools": [{"type": "function", "function": {
                    "name": "ls",
                    "description": "List a directory",
                    "parameters": {"type": "object", "properties": {"path": {"type": "string"}}},
                }}],
                "parallel_tool_calls": true,
                "temperature": 0.0,
            })
        );
    }

    #[test]
    fn optional_fields_appear_only_when_set() {
        let req = ModelRequest {
            messages: vec![Message::User {
                content: "hi".into(),
            }],
            max_tokens: Some(512),
            ..ModelRequest::default()
        };
        let body = request_body(&cfg("http://localhost:8080/v1/chat/completions"), &req);
        assert_eq!(
            body,
            json!({
                "model": "qwen3-coder",
                "messages": [{"role": "user", "content": "hi"}],
                "stream": true,
                "stream_options": {"include_usage": true},
                "max_tokens": 512,
            })
        );
        let body = request_body(&cfg("https://api.openai.com/v1/chat/completions"), &req);
        assert_eq!(body["max_completion_tokens"], json!(512));
        assert_eq!(body.get("max_tokens"), None);
    }

    /// Shaped like OpenAI's documented stream: a role chunk, text, two parallel tool calls
    /// whose argument fragments interleave, the finish chunk, then the usage-only chunk
    /// with empty `choices` and `[DONE]`. Text includes multi-byte characters so that the
    /// split runs cut through them.
    const PARALLEL: &str = concat!(
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Checking \u{1F50D} caf\u{e9}\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_A\",\"type\":\"function\",\"function\":{\"name\":\"read\",\"arguments\":\"\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_B\",\"type\":\"function\",\"function\":{\"name\":\"grep\",\"arguments\":\"\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":null,\"type\":null,\"function\":{\"name\":null,\"arguments\":\"{\\\"path\\\": \"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"{\\\"pattern\\\": \\\"fn \"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"\u{e9}t\u{e9}.rs\\\"}\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"main\\\"}\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":82,\"completion_tokens\":41,\"total_tokens\":123}}\n\n",
        "data: [DONE]\n\n",
    );

    #[tokio::test]
    async fn parallel_tool_calls_assemble_by_index() {
        let (events, result) = run_split(ProviderKind::OpenAi, PARALLEL).await;
        let response = result.unwrap();
        assert_eq!(
            response,
            ModelResponse {
                text: "Checking \u{1F50D} caf\u{e9}".into(),
                thinking: vec![],
                tool_calls: vec![
                    ToolCall {
                        id: "call_A".into(),
                        name: "read".into(),
                        arguments: "{\"path\": \"\u{e9}t\u{e9}.rs\"}".into(),
                    },
                    ToolCall {
                        id: "call_B".into(),
                        name: "grep".into(),
                        arguments: "{\"pattern\": \"fn main\"}".into(),
                    },
                ],
                usage: Usage {
                    input_tokens: 82,
                    output_tokens: 41,
                    ..Usage::default()
                },
                stop: StopReason::ToolUse,
            }
        );
        let delta = |index: usize, fragment: &str| StreamEvent::ToolCallDelta {
            index,
            fragment: fragment.into(),
        };
        assert_eq!(
            events,
            vec![
                StreamEvent::TextDelta("Checking \u{1F50D} caf\u{e9}".into()),
                StreamEvent::ToolCallStarted {
                    index: 0,
                    id: "call_A".into(),
                    name: "read".into()
                },
                StreamEvent::ToolCallStarted {
                    index: 1,
                    id: "call_B".into(),
                    name: "grep".into()
                },
                delta(0, "{\"path\": "),
                delta(1, "{\"pattern\": \"fn "),
                delta(0, "\"\u{e9}t\u{e9}.rs\"}"),
                delta(1, "main\"}"),
                StreamEvent::Usage(Usage {
                    input_tokens: 82,
                    output_tokens: 41,
                    ..Usage::default()
                }),
            ]
        );
    }

    #[tokio::test]
    async fn plain_text_with_crlf_and_comments() {
        let transcript = ": OPENROUTER PROCESSING\r\n\r\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\r\n\r\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},\"finish_reason\":\"stop\"}]}\r\n\r\ndata: [DONE]\r\n\r\n";
        let (events, result) = run_split(ProviderKind::OpenAi, transcript).await;
        let response = result.unwrap();
        assert_eq!(response.text, "Hello");
        assert_eq!(response.stop, StopReason::EndTurn);
        assert_eq!(response.usage, Usage::default());
        assert_eq!(
            events,
            vec![
                StreamEvent::TextDelta("Hel".into()),
                StreamEvent::TextDelta("lo".into())
            ]
        );
    }

    #[tokio::test]
    async fn reasoning_streams_from_either_field_and_is_never_sent_back() {
        // llama.cpp / DeepSeek name it `reasoning_content`, OpenRouter `reasoning`.
        for field in ["reasoning_content", "reasoning"] {
            let transcript = format!(
                "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":null,\"{field}\":\"Look at \"}},\"finish_reason\":null}}]}}\n\n\
                 data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"{field}\":\"a.rs\"}},\"finish_reason\":null}}]}}\n\n\
                 data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"Done.\"}},\"finish_reason\":\"stop\"}}]}}\n\n\
                 data: [DONE]\n\n"
            );
            let (events, result) = run_split(ProviderKind::OpenAi, &transcript).await;
            let response = result.unwrap();
            assert_eq!(
                events,
                vec![
                    StreamEvent::ThinkingDelta("Look at ".into()),
                    StreamEvent::ThinkingDelta("a.rs".into()),
                    StreamEvent::TextDelta("Done.".into()),
                ],
                "{field}"
            );
            assert_eq!(
                response.thinking,
                vec![Thinking::Text {
                    text: "Look at a.rs".into(),
                    signature: String::new()
                }]
            );
            let req = ModelRequest {
                messages: vec![Message::Assistant {
                    text: response.text,
                    tool_calls: vec![],
                    thinking: response.thinking,
                }],
                ..ModelRequest::default()
            };
            assert_eq!(
                request_body(&cfg("http://localhost:8080/v1/chat/completions"), &req)["messages"],
                json!([{"role": "assistant", "content": "Done."}])
            );
        }
    }

    #[tokio::test]
    async fn ollama_parallel_calls_on_one_index_are_kept_apart() {
        let transcript = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"call_1\",\"index\":0,\"type\":\"function\",\"function\":{\"name\":\"read\",\"arguments\":\"{\\\"path\\\":\\\"a.rs\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"call_2\",\"index\":0,\"type\":\"function\",\"function\":{\"name\":\"read\",\"arguments\":\"{\\\"path\\\":\\\"b.rs\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let (_, result) = run_split(ProviderKind::OpenAi, transcript).await;
        let response = result.unwrap();
        let ids: Vec<_> = response
            .tool_calls
            .iter()
            .map(|c| (c.id.as_str(), c.arguments.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("call_1", "{\"path\":\"a.rs\"}"),
                ("call_2", "{\"path\":\"b.rs\"}")
            ]
        );
        assert_eq!(
            response.stop,
            StopReason::ToolUse,
            "`stop` with tool calls means run them"
        );
    }

    #[tokio::test]
    async fn fresh_ids_on_every_fragment_stay_one_call() {
        let transcript = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"x1\",\"index\":0,\"type\":\"function\",\"function\":{\"name\":\"ls\",\"arguments\":\"{\\\"pa\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"id\":\"x2\",\"index\":0,\"type\":\"function\",\"function\":{\"name\":\"ls\",\"arguments\":\"th\\\":\\\".\\\"}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
            "data: [DONE]\n\n",
        );
        let (_, result) = run(ProviderKind::OpenAi, vec![transcript.as_bytes().to_vec()]).await;
        let calls = result.unwrap().tool_calls;
        assert_eq!(
            calls,
            [ToolCall {
                id: "x1".into(),
                name: "ls".into(),
                arguments: "{\"path\":\".\"}".into()
            }]
        );
    }

    #[tokio::test]
    async fn a_stream_without_done_is_cut() {
        let cut = PARALLEL.replace("data: [DONE]\n\n", "");
        let (events, result) = run_split(ProviderKind::OpenAi, &cut).await;
        let err = result.unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::StreamCut);
        assert!(err.retryable);
        assert_eq!(
            err.message,
            "stream cut before completion: http://127.0.0.1:1/v1/chat/completions closed the stream before `data: [DONE]`"
        );
        assert!(
            !events.is_empty(),
            "what arrived before the cut was still delivered"
        );

        // Cut in the middle of an event: the partial event is never delivered.
        let (_, result) = run(
            ProviderKind::OpenAi,
            vec![PARALLEL.as_bytes()[..700].to_vec()],
        )
        .await;
        assert_eq!(result.unwrap_err().kind, LlmErrorKind::StreamCut);
    }

    #[tokio::test]
    async fn garbage_data_is_a_clear_error() {
        let transcript = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ok\"}}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"br\n\ndata: [DONE]\n\n";
        let (events, result) = run_split(ProviderKind::OpenAi, transcript).await;
        let err = result.unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::Protocol);
        assert!(!err.retryable);
        assert!(
            err.message.starts_with("malformed JSON in a stream event from http://127.0.0.1:1/v1/chat/completions (EOF while parsing a string"),
            "{}",
            err.message
        );
        assert!(
            err.message
                .ends_with(": {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"br"),
            "{}",
            err.message
        );
        assert_eq!(events, vec![StreamEvent::TextDelta("ok".into())]);
    }

    #[tokio::test]
    async fn an_error_chunk_mid_stream_is_classified() {
        let transcript = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"par\"}}]}\n\n",
            "data: {\"id\":\"gen-1\",\"object\":\"chat.completion.chunk\",\"error\":{\"code\":\"server_error\",\"message\":\"Provider disconnected\"},\"choices\":[{\"index\":0,\"delta\":{\"content\":\"\"},\"finish_reason\":\"error\"}]}\n\n",
        );
        let (_, result) = run_split(ProviderKind::OpenAi, transcript).await;
        let err = result.unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::Server);
        assert!(err.retryable);
        assert!(
            err.message
                .ends_with("reported an error mid-stream: Provider disconnected"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn finish_reasons_map_to_stop_reasons() {
        for (reason, stop) in [
            ("length", StopReason::MaxTokens),
            ("content_filter", StopReason::ContentFilter),
            ("weird", StopReason::Other("weird".into())),
        ] {
            let transcript = format!(
                "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"x\"}},\"finish_reason\":\"{reason}\"}}]}}\n\ndata: [DONE]\n\n"
            );
            let (_, result) = run(ProviderKind::OpenAi, vec![transcript.into_bytes()]).await;
            assert_eq!(result.unwrap().stop, stop, "{reason}");
        }
    }
}
