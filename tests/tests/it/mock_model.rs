//! The mock model server, checked byte for byte with a plain HTTP client: SSE framing for
//! both providers, bodies, errors, cuts, hangs, rule matching, recording, concurrency and
//! the `mock-model` binary.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use switchyard_tests::mock_model::{
    ErrorReply, MockModel, Provider, Response, Rule, Script, ToolCall, Usage,
};

const WAIT: Duration = Duration::from_secs(10);

/// A script whose OpenAI `created` is fixed, so transcripts are reproducible.
fn script(rules: Vec<Rule>) -> Script {
    Script {
        rules,
        created: Some(1_700_000_000),
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

async fn post_openai(model: &MockModel, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}/chat/completions", model.openai_base_url()))
        .header("authorization", "Bearer sk-test-openai")
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn post_anthropic(model: &MockModel, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}/v1/messages", model.anthropic_base_url()))
        .header("x-api-key", "sk-ant-test")
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn openai_request(stream: bool) -> Value {
    json!({
        "model": "gpt-4o",
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
    })
}

fn anthropic_request(stream: bool) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "stream": stream,
        "messages": [{"role": "user", "content": "hi"}],
    })
}

/// SSE events, each followed by the blank line that ends it.
fn events(events: &[&str]) -> String {
    events.iter().map(|e| format!("{e}\n\n")).collect()
}

/// The JSON payloads of the `data:` lines of a stream (skipping `[DONE]`).
fn data_payloads(transcript: &str) -> Vec<Value> {
    transcript
        .split("\n\n")
        .filter_map(|event| event.lines().find_map(|l| l.strip_prefix("data: ")))
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).unwrap())
        .collect()
}

/// Reads a body until it ends or fails; returns the bytes and whether it failed.
async fn read_until_error(response: reqwest::Response) -> (String, bool) {
    let mut bytes = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(_) => return (String::from_utf8(bytes).unwrap(), true),
        }
    }
    (String::from_utf8(bytes).unwrap(), false)
}

#[tokio::test]
async fn openai_streams_text_in_documented_framing() {
    let model = MockModel::start(script(vec![Rule::openai(
        Response::text("Hello!").chunk_size(3),
    )]))
    .await;
    let response = post_openai(&model, openai_request(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    assert!(response.headers().get("content-length").is_none());
    assert_eq!(response.headers()["transfer-encoding"], "chunked");
    let prefix = r#"data: {"id":"chatcmpl-mock1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","system_fingerprint":"fp_mock","choices":"#;
    let expected = events(&[
        &format!(
            r#"{prefix}[{{"index":0,"delta":{{"role":"assistant","content":""}},"logprobs":null,"finish_reason":null}}]}}"#
        ),
        &format!(
            r#"{prefix}[{{"index":0,"delta":{{"content":"Hel"}},"logprobs":null,"finish_reason":null}}]}}"#
        ),
        &format!(
            r#"{prefix}[{{"index":0,"delta":{{"content":"lo!"}},"logprobs":null,"finish_reason":null}}]}}"#
        ),
        &format!(
            r#"{prefix}[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"stop"}}]}}"#
        ),
        "data: [DONE]",
    ]);
    assert_eq!(response.text().await.unwrap(), expected);
}

#[tokio::test]
async fn openai_streams_a_tool_call_with_split_arguments_and_usage() {
    let model = MockModel::start(script(vec![Rule::openai(
        Response::tool_calls(vec![
            ToolCall::new("get_weather", json!({"city": "Paris"})).with_id("call_1"),
        ])
        .chunk_size(8)
        .usage(10, 5),
    )]))
    .await;
    let mut request = openai_request(true);
    request["stream_options"] = json!({"include_usage": true});
    let transcript = post_openai(&model, request).await.text().await.unwrap();
    let head = r#"data: {"id":"chatcmpl-mock1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","system_fingerprint":"fp_mock","choices":"#;
    let expected = events(&[
        &format!(
            r#"{head}[{{"index":0,"delta":{{"role":"assistant","content":null,"tool_calls":[{{"index":0,"id":"call_1","type":"function","function":{{"name":"get_weather","arguments":""}}}}]}},"logprobs":null,"finish_reason":null}}],"usage":null}}"#
        ),
        &format!(
            r#"{head}[{{"index":0,"delta":{{"tool_calls":[{{"index":0,"function":{{"arguments":"{{\"city\":"}}}}]}},"logprobs":null,"finish_reason":null}}],"usage":null}}"#
        ),
        &format!(
            r#"{head}[{{"index":0,"delta":{{"tool_calls":[{{"index":0,"function":{{"arguments":"\"Paris\"}}"}}}}]}},"logprobs":null,"finish_reason":null}}],"usage":null}}"#
        ),
        &format!(
            r#"{head}[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"tool_calls"}}],"usage":null}}"#
        ),
        &format!(
            r#"{head}[],"usage":{{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{{"cached_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":0}}}}}}"#
        ),
        "data: [DONE]",
    ]);
    assert_eq!(transcript, expected);
}

#[tokio::test]
async fn anthropic_streams_text_in_documented_framing() {
    let model = MockModel::start(script(vec![Rule::anthropic(
        Response::text("Hello!").chunk_size(3).usage(25, 15),
    )]))
    .await;
    let response = post_anthropic(&model, anthropic_request(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    assert_eq!(response.headers()["request-id"], "req_mock1");
    let expected = events(&[
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_mock1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
        "event: ping\ndata: {\"type\":\"ping\"}",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo!\"}}",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":15}}",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}",
    ]);
    assert_eq!(response.text().await.unwrap(), expected);
}

#[tokio::test]
async fn anthropic_streams_text_then_a_tool_use_block() {
    let model = MockModel::start(script(vec![Rule::anthropic(
        Response::tool_calls(vec![
            ToolCall::new("read", json!({"path": "a.rs"})).with_id("toolu_1"),
        ])
        .with_text("Checking.")
        .chunk_size(6)
        .usage(30, 12),
    )]))
    .await;
    let transcript = post_anthropic(&model, anthropic_request(true))
        .await
        .text()
        .await
        .unwrap();
    let expected = events(&[
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_mock1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":30,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}",
        "event: ping\ndata: {\"type\":\"ping\"}",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Checki\"}}",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"ng.\"}}",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"read\",\"input\":{}}}",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"path\"}}",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\":\\\"a.r\"}}",
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"s\\\"}\"}}",
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":30,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":12}}",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}",
    ]);
    assert_eq!(transcript, expected);
}

#[tokio::test]
async fn openai_parallel_tool_calls_carry_id_and_name_only_in_their_first_fragment() {
    let model = MockModel::start(script(vec![Rule::openai(
        Response::tool_calls(vec![
            ToolCall::new("read", json!({"path": "src/lib.rs"})),
            ToolCall::raw("grep", r#"{"pattern": "fn main"#),
        ])
        .with_text("Looking."),
    )]))
    .await;
    let transcript = post_openai(&model, openai_request(true))
        .await
        .text()
        .await
        .unwrap();
    assert!(transcript.ends_with("data: [DONE]\n\n"));
    let mut text = String::new();
    let mut calls: Vec<(String, String, String)> = Vec::new();
    let mut finish = None;
    for chunk in data_payloads(&transcript) {
        let choice = &chunk["choices"][0];
        if let Some(content) = choice["delta"]["content"].as_str() {
            text.push_str(content);
        }
        for call in choice["delta"]["tool_calls"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let index = call["index"].as_u64().unwrap() as usize;
            if index == calls.len() {
                // The first fragment of a call: id, type and name, empty arguments.
                assert_eq!(call["type"], "function");
                assert_eq!(call["function"]["arguments"], "");
                calls.push((
                    call["id"].as_str().unwrap().into(),
                    call["function"]["name"].as_str().unwrap().into(),
                    String::new(),
                ));
            } else {
                assert!(call.get("id").is_none() && call.get("type").is_none());
                assert!(call["function"].get("name").is_none());
                calls[index]
                    .2
                    .push_str(call["function"]["arguments"].as_str().unwrap());
            }
        }
        if let Some(reason) = choice["finish_reason"].as_str() {
            finish = Some(reason.to_string());
        }
    }
    assert_eq!(text, "Looking.");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].0, "call_mock_1_0");
    assert_eq!(calls[0].1, "read");
    assert_eq!(
        serde_json::from_str::<Value>(&calls[0].2).unwrap(),
        json!({"path": "src/lib.rs"})
    );
    assert_eq!(calls[1].1, "grep");
    assert_eq!(
        calls[1].2, r#"{"pattern": "fn main"#,
        "raw arguments verbatim"
    );
    assert_eq!(finish.as_deref(), Some("tool_calls"));
}

#[tokio::test]
async fn anthropic_parallel_tool_calls_are_separate_blocks() {
    let model = MockModel::start(script(vec![Rule::anthropic(Response::tool_calls(vec![
        ToolCall::new("read", json!({"path": "a"})),
        ToolCall::new("read", json!({"path": "b"})),
    ]))]))
    .await;
    let transcript = post_anthropic(&model, anthropic_request(true))
        .await
        .text()
        .await
        .unwrap();
    let mut inputs = vec![String::new(), String::new()];
    let mut starts = Vec::new();
    for event in data_payloads(&transcript) {
        match event["type"].as_str().unwrap() {
            "content_block_start" => {
                assert_eq!(event["content_block"]["type"], "tool_use");
                starts.push(event["content_block"]["id"].as_str().unwrap().to_string());
            }
            "content_block_delta" => {
                let index = event["index"].as_u64().unwrap() as usize;
                inputs[index].push_str(event["delta"]["partial_json"].as_str().unwrap());
            }
            "message_delta" => assert_eq!(event["delta"]["stop_reason"], "tool_use"),
            _ => {}
        }
    }
    assert_eq!(starts, ["toolu_mock_1_0", "toolu_mock_1_1"]);
    assert_eq!(inputs, [r#"{"path":"a"}"#, r#"{"path":"b"}"#]);
}

#[tokio::test]
async fn non_streaming_bodies_follow_each_provider() {
    let call = ToolCall::new("read", json!({"path": "a.rs"})).with_id("call_9");
    let model = MockModel::start(script(vec![
        Rule::openai(Response::tool_calls(vec![call.clone()]).usage(7, 3)),
        Rule::anthropic(
            Response::tool_calls(vec![call.with_id("toolu_9")])
                .with_text("Reading.")
                .usage(7, 3),
        ),
    ]))
    .await;

    let response = post_openai(&model, openai_request(false)).await;
    assert_eq!(response.headers()["content-type"], "application/json");
    assert!(response.headers().get("content-length").is_some());
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({
            "id": "chatcmpl-mock1",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "gpt-4o",
            "system_fingerprint": "fp_mock",
            "choices": [{
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": null,
                    "refusal": null,
                    "tool_calls": [{
                        "id": "call_9",
                        "type": "function",
                        "function": {"name": "read", "arguments": "{\"path\":\"a.rs\"}"},
                    }],
                },
                "logprobs": null,
                "finish_reason": "tool_calls",
            }],
            "usage": {
                "prompt_tokens": 7,
                "completion_tokens": 3,
                "total_tokens": 10,
                "prompt_tokens_details": {"cached_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0},
            },
        })
    );

    let response = post_anthropic(&model, anthropic_request(false)).await;
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({
            "id": "msg_mock2",
            "type": "message",
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Reading."},
                {"type": "tool_use", "id": "toolu_9", "name": "read", "input": {"path": "a.rs"}},
            ],
            "model": "claude-sonnet-4-5",
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {
                "input_tokens": 7,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "output_tokens": 3,
            },
        })
    );
}

#[tokio::test]
async fn openai_plain_text_completion_and_cached_usage() {
    let model = MockModel::start(script(vec![Rule::openai(Response {
        usage: Some(Usage {
            input_tokens: 4,
            output_tokens: 2,
            cache_read_input_tokens: 6,
            cache_creation_input_tokens: 0,
        }),
        ..Response::text("Hi there.")
    })]))
    .await;
    let body: Value = post_openai(&model, openai_request(false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "Hi there.");
    assert!(body["choices"][0]["message"].get("tool_calls").is_none());
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], 10);
    assert_eq!(body["usage"]["prompt_tokens_details"]["cached_tokens"], 6);
    assert_eq!(body["usage"]["total_tokens"], 12);
}

#[tokio::test]
async fn openai_rate_limit_error_has_status_headers_and_body() {
    let model = MockModel::start(script(vec![Rule::openai(Response::error(
        ErrorReply::new(429).retry_after(3),
    ))]))
    .await;
    let response = post_openai(&model, openai_request(true)).await;
    assert_eq!(response.status(), 429);
    let headers = response.headers();
    assert_eq!(headers["retry-after"], "3");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(headers["x-ratelimit-remaining-requests"], "0");
    assert_eq!(headers["x-ratelimit-reset-requests"], "3s");
    assert_eq!(headers["x-request-id"], "req_mock1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": {
            "message": "Rate limit reached for gpt-4o on requests per min (RPM): Limit 60, Used 60, Requested 1. Please try again in 3s.",
            "type": "requests",
            "param": null,
            "code": "rate_limit_exceeded",
        }})
    );
}

#[tokio::test]
async fn anthropic_overloaded_and_rate_limit_errors() {
    let model = MockModel::start(script(vec![
        Rule::anthropic(Response::error(ErrorReply::new(529))),
        Rule::anthropic(Response::error(ErrorReply::new(429).retry_after(7))),
    ]))
    .await;
    let response = post_anthropic(&model, anthropic_request(true)).await;
    assert_eq!(response.status().as_u16(), 529);
    assert!(response.headers().get("retry-after").is_none());
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"},
            "request_id": "req_mock1",
        })
    );

    let response = post_anthropic(&model, anthropic_request(false)).await;
    assert_eq!(response.status(), 429);
    let headers = response.headers();
    assert_eq!(headers["retry-after"], "7");
    assert_eq!(headers["anthropic-ratelimit-requests-remaining"], "0");
    let reset = headers["anthropic-ratelimit-requests-reset"]
        .to_str()
        .unwrap();
    assert!(
        reset.len() == 20 && reset.ends_with('Z'),
        "RFC 3339: {reset}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
}

#[tokio::test]
async fn every_documented_error_status_has_the_provider_shape() {
    let statuses = [400, 401, 404, 429, 500, 503, 529];
    let rules = statuses
        .iter()
        .map(|&s| Rule::new(Response::error(ErrorReply::new(s))).times(2))
        .collect();
    let model = MockModel::start(script(rules)).await;
    for status in statuses {
        let response = post_openai(&model, openai_request(false)).await;
        assert_eq!(response.status().as_u16(), status);
        let body: Value = response.json().await.unwrap();
        let error = &body["error"];
        assert!(error["message"].is_string(), "{status}: {body}");
        assert!(error["type"].is_string(), "{status}: {body}");
        assert!(error.get("param").is_some() && error.get("code").is_some());

        let response = post_anthropic(&model, anthropic_request(false)).await;
        assert_eq!(response.status().as_u16(), status);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "error");
        let expected = match status {
            400 => "invalid_request_error",
            401 => "authentication_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            529 => "overloaded_error",
            _ => "api_error",
        };
        assert_eq!(body["error"]["type"], expected, "{status}");
        assert!(body["error"]["message"].is_string());
    }
}

#[tokio::test]
async fn errors_inside_a_started_stream() {
    let model = MockModel::start(script(vec![
        Rule::anthropic(
            Response::error(ErrorReply::new(529).in_stream())
                .with_text("Par")
                .chunk_size(8),
        ),
        Rule::openai(Response::error(
            ErrorReply::new(500).in_stream().message("stream broke"),
        )),
    ]))
    .await;
    let response = post_anthropic(&model, anthropic_request(true)).await;
    assert_eq!(response.status(), 200);
    let transcript = response.text().await.unwrap();
    assert!(transcript.contains("\"text_delta\",\"text\":\"Par\""));
    assert!(transcript.ends_with(&events(&[
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}"
    ])));
    assert!(!transcript.contains("message_stop"));

    let response = post_openai(&model, openai_request(true)).await;
    assert_eq!(response.status(), 200);
    let transcript = response.text().await.unwrap();
    assert!(transcript.ends_with(&events(&[
        r#"data: {"error":{"message":"stream broke","type":"server_error","param":null,"code":null}}"#
    ])));
    assert!(!transcript.contains("[DONE]"));
}

#[tokio::test]
async fn cut_closes_the_connection_before_the_terminator() {
    let model = MockModel::start(script(vec![
        Rule::openai(Response::text("Hello, world").chunk_size(4).cut_after(2)),
        Rule::anthropic(Response::text("Hello, world").cut()),
        Rule::openai(Response::text("Hello, world").cut()),
    ]))
    .await;

    let (received, failed) =
        read_until_error(post_openai(&model, openai_request(true)).await).await;
    assert!(failed, "the body must end in an error, not a clean end");
    let payloads = data_payloads(&received);
    assert_eq!(
        payloads.len(),
        2,
        "exactly the first two events: {received}"
    );
    assert!(received.ends_with("\n\n"));

    let (received, failed) =
        read_until_error(post_anthropic(&model, anthropic_request(true)).await).await;
    assert!(failed);
    assert!(received.contains("event: message_delta"));
    assert!(!received.contains("message_stop"));

    // Not streaming: the content-length promises more than arrives.
    let response = post_openai(&model, openai_request(false)).await;
    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err());
}

#[tokio::test]
async fn hang_sends_headers_then_waits_for_the_client_to_leave() {
    let model = MockModel::start(script(vec![Rule::openai(Response::hang())])).await;
    let response = post_openai(&model, openai_request(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream; charset=utf-8"
    );
    let mut body = response.bytes_stream();
    let next = tokio::time::timeout(Duration::from_millis(200), body.next()).await;
    assert!(next.is_err(), "nothing may arrive after the headers");
    model.wait_for_in_flight(1, WAIT).await;
    drop(body);
    // The server notices the disconnect and lets the request go.
    model.wait_for_in_flight(0, WAIT).await;
}

#[tokio::test]
async fn rules_match_by_turn_contains_and_times() {
    let model = MockModel::start(script(vec![
        Rule::openai(Response::text("weather"))
            .contains("weather")
            .turn(0),
        Rule::openai(Response::text("first turn")).turn(0).times(2),
        Rule::new(Response::text("anything")).repeat(),
    ]))
    .await;
    let turn = |assistant_messages: usize, text: &str| {
        let mut messages = vec![json!({"role": "user", "content": text})];
        for _ in 0..assistant_messages {
            messages.push(json!({"role": "assistant", "content": "ok"}));
            messages.push(json!({"role": "user", "content": "go on"}));
        }
        json!({"model": "gpt-4o", "messages": messages})
    };
    let answer = |body: Value| body["choices"][0]["message"]["content"].clone();
    let mut answers = Vec::new();
    for (assistant_messages, text) in [
        (0, "hello"),
        (0, "weather?"),
        (0, "weather?"),
        (0, "x"),
        (2, "x"),
    ] {
        let response = post_openai(&model, turn(assistant_messages, text)).await;
        answers.push(answer(response.json().await.unwrap()));
    }
    assert_eq!(
        answers,
        [
            "first turn",
            "weather",
            "first turn",
            "anything",
            "anything"
        ]
    );
    let requests = model.requests();
    let rules: Vec<_> = requests.iter().map(|r| r.rule).collect();
    assert_eq!(rules, [Some(1), Some(0), Some(1), Some(2), Some(2)]);
    assert_eq!(requests[4].turn, 2);
    assert!(model.unused_rules().is_empty());
}

#[tokio::test]
async fn a_two_turn_tool_script_drives_a_conversation() {
    let model = MockModel::start(script(vec![
        Rule::anthropic(Response::tool_calls(vec![
            ToolCall::new("read", json!({"path": "README.md"})).with_id("toolu_a"),
        ]))
        .turn(0),
        Rule::anthropic(Response::text("The README says hello.")).turn(1),
    ]))
    .await;
    let first: Value = post_anthropic(&model, anthropic_request(false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["stop_reason"], "tool_use");
    let mut second = anthropic_request(false);
    second["messages"] = json!([
        {"role": "user", "content": "What does the README say?"},
        {"role": "assistant", "content": first["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_a", "content": "hello"}]},
    ]);
    let answer: Value = post_anthropic(&model, second).await.json().await.unwrap();
    assert_eq!(answer["content"][0]["text"], "The README says hello.");
    assert_eq!(answer["stop_reason"], "end_turn");
    assert!(model.unused_rules().is_empty());
}

#[tokio::test]
async fn requests_are_recorded_with_headers_and_body() {
    let model = MockModel::start(script(vec![Rule::new(Response::text("ok")).repeat()])).await;
    post_openai(&model, openai_request(false)).await;
    client()
        .post(format!("{}/v1/chat/completions?trace=1", model.base_url()))
        .header("authorization", "Bearer sk-other")
        .json(&openai_request(true))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    post_anthropic(&model, anthropic_request(false)).await;

    let requests = model.wait_for_requests(3, WAIT).await;
    let [first, second, third] = &requests[..] else {
        panic!("three requests: {requests:?}");
    };
    assert_eq!(first.seq, 1);
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/v1/chat/completions");
    assert_eq!(first.provider, Some(Provider::OpenAi));
    assert_eq!(first.header("Authorization"), Some("Bearer sk-test-openai"));
    assert_eq!(first.body, openai_request(false));
    assert_eq!(first.raw_body, openai_request(false).to_string());
    assert_eq!(first.messages().len(), 1);
    assert_eq!(first.status, 200);
    assert!(!first.stream);
    assert_eq!(second.query.as_deref(), Some("trace=1"));
    assert!(second.stream);
    assert_eq!(third.provider, Some(Provider::Anthropic));
    assert_eq!(third.header("x-api-key"), Some("sk-ant-test"));
    assert_eq!(third.header("anthropic-version"), Some("2023-06-01"));
    assert!(first.received_at <= second.received_at && second.received_at <= third.received_at);

    // A record survives a JSON round trip, as the binary writes it.
    let line = serde_json::to_string(first).unwrap();
    let back: switchyard_tests::mock_model::RecordedRequest = serde_json::from_str(&line).unwrap();
    assert_eq!(back.body, first.body);
}

#[tokio::test]
async fn unmatched_requests_get_a_500_naming_the_problem() {
    let model = MockModel::start(script(vec![
        Rule::anthropic(Response::text("only anthropic")),
        Rule::openai(Response::text("later")).turn(3),
    ]))
    .await;
    let response = post_openai(&model, openai_request(true)).await;
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("mock: no scripted response for openai request #1"),
        "{message}"
    );
    assert!(message.contains("rule 0 wants anthropic"), "{message}");
    assert!(message.contains("rule 1 wants turn 3"), "{message}");

    post_anthropic(&model, anthropic_request(false)).await;
    let response = post_anthropic(&model, anthropic_request(false)).await;
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "api_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("rule 0 used up")
    );

    let statuses: Vec<_> = model
        .requests()
        .iter()
        .map(|r| (r.status, r.rule))
        .collect();
    assert_eq!(statuses, [(500, None), (200, Some(0)), (500, None)]);
}

#[tokio::test]
async fn malformed_requests_get_a_400_in_the_provider_shape() {
    let model = MockModel::start(script(vec![Rule::new(Response::text("ok")).repeat()])).await;
    let response = client()
        .post(format!("{}/v1/messages", model.base_url()))
        .header("anthropic-version", "2023-06-01")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");

    let response = client()
        .post(format!("{}/v1/chat/completions", model.base_url()))
        .body("[1, 2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );

    // Missing what the real APIs require.
    let response = client()
        .post(format!("{}/v1/messages", model.base_url()))
        .json(&anthropic_request(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("anthropic-version")
    );
    let mut no_max_tokens = anthropic_request(false);
    no_max_tokens.as_object_mut().unwrap().remove("max_tokens");
    assert_eq!(post_anthropic(&model, no_max_tokens).await.status(), 400);

    let response = client()
        .post(format!("{}/v2/complete", model.base_url()))
        .json(&openai_request(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    let requests = model.requests();
    assert_eq!(requests.len(), 5);
    assert_eq!(requests[0].body, Value::Null);
    assert_eq!(requests[0].raw_body, "{not json");
    assert!(requests.iter().all(|r| r.rule.is_none()));
    assert_eq!(
        requests.iter().map(|r| r.status).collect::<Vec<_>>(),
        [400, 400, 400, 400, 404]
    );
}

#[tokio::test]
async fn concurrent_requests_raise_the_high_water_mark() {
    // The barrier holds each response until three are in flight: if the requests did not
    // overlap, they would wait out the barrier's 10 s timeout instead.
    let model = MockModel::start(script(vec![
        Rule::new(Response::text("ok").await_in_flight(3)).repeat(),
    ]))
    .await;
    let started = Instant::now();
    let replies = futures::future::join_all(
        (0..3).map(|_| async { post_openai(&model, openai_request(true)).await.text().await }),
    )
    .await;
    assert!(replies.iter().all(Result::is_ok));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "released by concurrency, not the timeout: {:?}, max {}",
        started.elapsed(),
        model.max_in_flight()
    );
    assert_eq!(model.max_in_flight(), 3);
    model.wait_for_in_flight(0, WAIT).await;

    // One at a time never overlaps.
    let sequential = MockModel::start(script(vec![Rule::new(Response::text("ok")).repeat()])).await;
    for _ in 0..3 {
        post_openai(&sequential, openai_request(false))
            .await
            .text()
            .await
            .unwrap();
    }
    assert_eq!(sequential.max_in_flight(), 1);
}

#[tokio::test]
async fn delays_hold_headers_and_space_events() {
    let model = MockModel::start(script(vec![Rule::new(
        Response::text("abcdefgh")
            .chunk_size(4)
            .delay_ms(150)
            .chunk_delay_ms(50),
    )]))
    .await;
    let started = Instant::now();
    let response = post_openai(&model, openai_request(true)).await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    response.text().await.unwrap();
    // Five events after the headers, four gaps between them.
    assert!(started.elapsed() >= Duration::from_millis(150 + 4 * 50));
}

#[tokio::test]
async fn fragmented_events_reassemble_to_the_same_bytes() {
    let text = "héllo wörld — ünïcode";
    let model = MockModel::start(script(vec![
        Rule::new(Response::text(text)),
        Rule::new(Response {
            fragment_bytes: Some(3),
            ..Response::text(text)
        }),
    ]))
    .await;
    let whole = post_anthropic(&model, anthropic_request(true))
        .await
        .bytes()
        .await
        .unwrap();
    let pieces = post_anthropic(&model, anthropic_request(true))
        .await
        .bytes()
        .await
        .unwrap();
    let normalize = |bytes: &[u8]| {
        String::from_utf8(bytes.to_vec())
            .unwrap()
            .replace("msg_mock2", "msg_mock1")
    };
    assert_eq!(normalize(&whole), normalize(&pieces));
}

#[tokio::test]
async fn rules_pushed_while_running_are_used() {
    let model = MockModel::start(Script::default()).await;
    assert_eq!(
        post_openai(&model, openai_request(false)).await.status(),
        500
    );
    model.push_rule(Rule::new(Response::text("now scripted")));
    assert_eq!(model.unused_rules(), [0]);
    let body: Value = post_openai(&model, openai_request(false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], "now scripted");
}

#[tokio::test]
async fn the_server_stops_when_dropped() {
    let model = MockModel::start(script(vec![Rule::new(Response::hang())])).await;
    let url = format!("{}/chat/completions", model.openai_base_url());
    let response = post_openai(&model, openai_request(true)).await;
    drop(model);
    // The hanging response is closed, and nothing listens any more.
    assert!(response.bytes().await.is_err());
    assert!(
        client()
            .post(url)
            .json(&openai_request(false))
            .send()
            .await
            .is_err()
    );
}

#[test]
fn scripts_parse_from_json_and_reject_nonsense() {
    let script = Script::from_json(
        r#"{"rules": [
            {"provider": "openai", "turn": 0, "respond": {"tool_calls": [{"name": "read", "arguments": {"path": "a"}}]}},
            {"repeat": true, "respond": {"error": {"status": 529, "retry_after": 2}}}
        ]}"#,
    )
    .unwrap();
    assert_eq!(script.rules.len(), 2);
    assert_eq!(script.rules[0].provider, Some(Provider::OpenAi));
    let round_trip = serde_json::to_string(&script).unwrap();
    assert_eq!(Script::from_json(&round_trip).unwrap(), script);

    for bad in [
        r#"{"rules": [{"respond": {}}]}"#,
        r#"{"rules": [{"respond": {"text": "a", "hang": true}}]}"#,
        r#"{"rules": [{"respond": {"error": {"status": 200}}}]}"#,
        r#"{"rules": [{"respond": {"txt": "typo"}}]}"#,
        r#"{"rules": [{"times": 0, "respond": {"text": "a"}}]}"#,
        r#"{"rules": [{"provider": "gemini", "respond": {"text": "a"}}]}"#,
    ] {
        assert!(Script::from_json(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn the_binary_listens_records_and_exits_on_stdin_eof() {
    use tokio::io::AsyncBufReadExt;

    let dir = tempfile::tempdir().unwrap();
    let script_path = dir.path().join("script.json");
    let record_path = dir.path().join("record.jsonl");
    let port_path = dir.path().join("port");
    std::fs::write(
        &script_path,
        r#"{"rules": [{"provider": "openai", "repeat": true, "respond": {"text": "from the binary"}}]}"#,
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mock-model"))
        .arg("--script")
        .arg(&script_path)
        .arg("--record")
        .arg(&record_path)
        .arg("--port-file")
        .arg(&port_path)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let first = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let base = first.strip_prefix("listening ").unwrap();
    let port: u16 = base
        .strip_prefix("http://127.0.0.1:")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(&port_path).unwrap(),
        format!("{port}\n")
    );

    for _ in 0..2 {
        let body: Value = client()
            .post(format!("{base}/v1/chat/completions"))
            .json(&openai_request(false))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], "from the binary");
    }
    let record = std::fs::read_to_string(&record_path).unwrap();
    let lines: Vec<Value> = record
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["seq"], 2);
    assert_eq!(lines[0]["body"], openai_request(false));
    assert!(lines[0]["received_at_ms"].is_u64());

    drop(child.stdin.take());
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
}

#[tokio::test]
async fn the_binary_exits_when_its_lifetime_ends_and_rejects_bad_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    std::fs::write(&good, r#"{"rules": []}"#).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mock-model"))
        .arg("--script")
        .arg(&good)
        .args(["--max-lifetime-secs", "1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Hold stdin open (tokio's `wait` would close it): only the lifetime may end it.
    let stdin = child.stdin.take();
    let started = Instant::now();
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    assert!(started.elapsed() >= Duration::from_millis(900));
    drop(stdin);

    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, r#"{"rules": [{"respond": {}}]}"#).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mock-model"))
        .arg("--script")
        .arg(&bad)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("rule 0"), "{stderr}");
}
