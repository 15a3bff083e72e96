//! The model's reasoning and plan over LSP: `agent_thought_chunk` streamed from both
//! OpenAI-compatible fields and from Anthropic `thinking` (whose signed blocks go back to
//! the model unchanged), and `plan` from `update_plan`, whose bad arguments fail the call
//! with a precise message while the turn goes on.

use serde_json::json;
use switchyard::lsp::ext::{Ask, ContentBlock, PlanEntry, Update};
use switchyard_tests::lsp_client::{LspClient, within};
use switchyard_tests::mock_model::{
    MockModel, Reasoning, ReasoningField, Response, Rule, Script, ToolCall,
};

use super::{LIMIT, ask_params, options, setup, text_of, updates};

/// The reasoning streamed, in order, as one string.
fn thoughts(updates: &[switchyard::lsp::ext::SessionUpdateParams]) -> String {
    updates
        .iter()
        .filter_map(|u| match &u.update {
            Update::AgentThoughtChunk {
                content: ContentBlock::Text { text },
            } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn reasoning(text: &str, field: ReasoningField) -> Reasoning {
    Reasoning {
        text: text.into(),
        field,
        ..Reasoning::default()
    }
}

#[tokio::test]
async fn reasoning_from_both_openai_fields_and_the_plan_stream_and_a_bad_plan_fails_precisely() {
    within(LIMIT, async {
        let setup = setup();
        let plan = json!({"plan": [
            {"step": "Read main.rs", "status": "completed"},
            {"step": "Explain it", "status": "in_progress"},
        ], "explanation": "read it already"});
        let bad = json!({"plan": [
            {"step": "a", "status": "in_progress"},
            {"step": "b", "status": "in_progress"},
        ]});
        let mut first = Response::tool_calls(vec![
            ToolCall::new("update_plan", plan).with_id("call_plan"),
        ]);
        first.reasoning = Some(reasoning(
            "The user wants a summary; plan first.",
            ReasoningField::ReasoningContent,
        ));
        let mut second =
            Response::tool_calls(vec![ToolCall::new("update_plan", bad).with_id("call_bad")]);
        second.reasoning = Some(reasoning(" Now mark both.", ReasoningField::Reasoning));
        let model = MockModel::start(Script::new(vec![
            Rule::openai(first.chunk_size(7)).turn(0),
            Rule::openai(second).turn(1),
            Rule::openai(Response::text("It prints hello.")).turn(2),
        ]))
        .await;
        let (mut client, _) = LspClient::initialized(options(&setup, &model, "openai")).await;
        let result = client
            .ext_request::<Ask>(ask_params("What does main do?"))
            .await
            .unwrap();
        assert_eq!(result.text, "It prints hello.", "the turn went on");

        let updates = updates(&mut client);
        assert_eq!(
            thoughts(&updates),
            "The user wants a summary; plan first. Now mark both."
        );
        assert_eq!(text_of(&updates), "It prints hello.", "reasoning is not the answer");
        let kinds: Vec<&str> = updates
            .iter()
            .map(|u| match &u.update {
                Update::AgentThoughtChunk { .. } => "thought",
                Update::ToolCall { .. } => "tool_call",
                Update::ToolCallUpdate { .. } => "tool_call_update",
                Update::Plan { .. } => "plan",
                Update::AgentMessageChunk { .. } => "message",
                _ => "other",
            })
            .filter(|k| *k != "other")
            .fold(Vec::new(), |mut kinds, k| {
                if kinds.last() != Some(&k) {
                    kinds.push(k);
                }
                kinds
            });
        assert_eq!(
            kinds,
            [
                "thought",
                "tool_call",
                "tool_call_update",
                "plan",
                "thought",
                "tool_call",
                "tool_call_update",
                "message"
            ]
        );
        let plans: Vec<&Update> = updates
            .iter()
            .map(|u| &u.update)
            .filter(|u| matches!(u, Update::Plan { .. }))
            .collect();
        assert_eq!(
            plans,
            [&Update::Plan {
                entries: vec![
                    PlanEntry {
                        content: "Read main.rs".into(),
                        priority: "medium".into(),
                        status: "completed".into(),
                    },
                    PlanEntry {
                        content: "Explain it".into(),
                        priority: "medium".into(),
                        status: "in_progress".into(),
                    },
                ],
                explanation: Some("read it already".into()),
            }],
            "one plan: the bad one was refused"
        );

        let requests = model.requests();
        let result_of = |i: usize, id: &str| {
            requests[i]
                .messages()
                .iter()
                .find(|m| m["role"] == "tool" && m["tool_call_id"] == id)
                .map(|m| m["content"].as_str().unwrap().to_string())
                .unwrap_or_else(|| panic!("no result for {id} in request {i}"))
        };
        assert_eq!(result_of(1, "call_plan"), "Plan updated");
        assert_eq!(
            result_of(2, "call_bad"),
            "error: steps 1, 2 of `plan` are all in_progress; at most one step may be in_progress at a time"
        );
        // Reasoning is never sent back in this format.
        assert!(
            !requests[2].raw_body.contains("plan first"),
            "{}",
            requests[2].raw_body
        );
        client.shutdown_and_exit().await;
    })
    .await;
}

#[tokio::test]
async fn anthropic_thinking_streams_and_goes_back_signed_in_the_tool_loop() {
    within(LIMIT, async {
        let setup = setup();
        let mut first = Response::tool_calls(vec![
            ToolCall::new("read", json!({"path": "src/main.rs"})).with_id("toolu_read"),
        ])
        .with_text("Reading.");
        first.reasoning = Some(Reasoning {
            text: "Read main.rs before answering.".into(),
            signature: Some("EqQBCkYIARgCIkB".into()),
            redacted: Some("EmwKAhgBEgy3va".into()),
            ..Reasoning::default()
        });
        let model = MockModel::start(Script::new(vec![
            Rule::anthropic(first.chunk_size(5)).turn(0),
            Rule::anthropic(Response::text("It prints hello.").with_reasoning("It prints."))
                .turn(1),
        ]))
        .await;
        let mut options = options(&setup, &model, "anthropic");
        options.env.push((
            "SWITCHYARD_LLM__THINKING_BUDGET".into(),
            "2048".into(),
        ));
        let (mut client, _) = LspClient::initialized(options).await;
        let result = client
            .ext_request::<Ask>(ask_params("What does main do?"))
            .await
            .unwrap();
        assert_eq!(result.text, "It prints hello.");
        let updates = updates(&mut client);
        assert_eq!(
            thoughts(&updates),
            "Read main.rs before answering.It prints."
        );
        assert_eq!(text_of(&updates), "Reading.It prints hello.");

        let requests = model.requests();
        assert_eq!(
            requests[0].body["thinking"],
            json!({"type": "enabled", "budget_tokens": 2048})
        );
        // The mock refuses, as the API does, a tool loop whose thinking was not sent back;
        // here it was, first, signature and redacted data unchanged.
        assert_eq!(
            requests[1].thinking_blocks(),
            vec![vec![
                json!({"type": "redacted_thinking", "data": "EmwKAhgBEgy3va"}),
                json!({"type": "thinking", "thinking": "Read main.rs before answering.", "signature": "EqQBCkYIARgCIkB"}),
            ]]
        );
        assert_eq!(
            requests[1].messages()[0]["content"][0]["type"],
            "text",
            "the user turn is untouched"
        );
        assert_eq!(
            requests[1].messages()[1]["content"][0]["type"],
            "redacted_thinking"
        );
        client.shutdown_and_exit().await;
    })
    .await;
}
