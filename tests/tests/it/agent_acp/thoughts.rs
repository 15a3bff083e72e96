//! The model's reasoning and plan over ACP: `agent_thought_chunk` from both wire formats,
//! `plan` from `update_plan` (bad arguments fail the call precisely and the turn goes on),
//! Anthropic's signed thinking sent back in the tool loop, and `session/load` in a new
//! process replaying the thoughts and the plan from the session file.

use serde_json::{Value, json};
use switchyard_tests::mock_model::{MockModel, Response, Rule, Script, ToolCall};

use super::{Agent, Env, initialize, new_session};

/// Runs one prompt and returns the updates it streamed and its stop reason.
fn prompt(agent: &mut Agent, id: i64, session: &str, text: &str) -> (Vec<Value>, Value) {
    agent.request(
        id,
        "session/prompt",
        json!({"sessionId": session, "prompt": [{"type": "text", "text": text}]}),
    );
    let mut messages = agent.until_answer(id);
    let answer = messages.pop().unwrap();
    let updates = messages
        .into_iter()
        .filter(|m| m["method"] == "session/update")
        .map(|m| m["params"]["update"].clone())
        .collect();
    (updates, answer["result"]["stopReason"].clone())
}

/// The text of every update of kind `kind`, joined.
fn joined(updates: &[Value], kind: &str) -> String {
    updates
        .iter()
        .filter(|u| u["sessionUpdate"] == kind)
        .map(|u| u["content"]["text"].as_str().unwrap_or_default())
        .collect()
}

fn plans(updates: &[Value]) -> Vec<Value> {
    updates
        .iter()
        .filter(|u| u["sessionUpdate"] == "plan")
        .map(|u| u["entries"].clone())
        .collect()
}

/// `switchyard acp` of `env` talking to `model` in `provider`'s format.
fn start(env: &Env, model: &MockModel, provider: &str) -> Agent {
    let mut command = env.switchyard(model, &["acp"]);
    if provider == "anthropic" {
        command
            .env("SWITCHYARD_PROVIDER", "anthropic")
            .env("ANTHROPIC_BASE_URL", model.anthropic_base_url())
            .env("ANTHROPIC_API_KEY", "sk-ant-acp")
            .env("SWITCHYARD_LLM__THINKING_BUDGET", "1024");
    }
    Agent::spawn(command)
}

fn script(rule: fn(Response) -> Rule) -> Script {
    let plan = json!({"plan": [
        {"step": "Look at main.rs", "status": "in_progress"},
        {"step": "Answer", "status": "pending"},
    ]});
    let bad = json!({"plan": [{"step": "Answer", "status": "done"}]});
    Script::new(vec![
        rule(
            Response::tool_calls(vec![
                ToolCall::new("update_plan", plan).with_id("call_plan"),
                ToolCall::new("update_plan", bad).with_id("call_bad"),
            ])
            .with_reasoning("A two-step task: plan it.")
            .chunk_size(6),
        )
        .turn(0),
        rule(Response::text("Planned.").with_reasoning("The plan is set.")).turn(1),
    ])
}

#[tokio::test]
async fn thoughts_and_the_plan_stream_in_both_formats_and_load_replays_them() {
    for provider in ["openai", "anthropic"] {
        let env = Env::new();
        let model = MockModel::start(script(match provider {
            "anthropic" => Rule::anthropic,
            _ => Rule::openai,
        }))
        .await;
        let mut agent = start(&env, &model, provider);
        initialize(&mut agent, json!({}));
        let session = new_session(&mut agent, 1, &env.root());
        let (updates, stop) = prompt(&mut agent, 2, &session, "Plan it");
        assert_eq!(stop, "end_turn", "{provider}");
        assert_eq!(
            joined(&updates, "agent_thought_chunk"),
            "A two-step task: plan it.The plan is set.",
            "{provider}"
        );
        assert_eq!(joined(&updates, "agent_message_chunk"), "Planned.");
        let entries = json!([
            {"content": "Look at main.rs", "priority": "medium", "status": "in_progress"},
            {"content": "Answer", "priority": "medium", "status": "pending"},
        ]);
        assert_eq!(
            plans(&updates),
            std::slice::from_ref(&entries),
            "{provider}"
        );
        let failed = updates
            .iter()
            .find(|u| u["toolCallId"] == "call_bad" && u["status"] == "failed")
            .unwrap_or_else(|| panic!("{provider}: the bad plan did not fail: {updates:#?}"));
        let message = failed["content"][0]["content"]["text"].as_str().unwrap();
        assert!(
            message.starts_with("step 1 of `plan` must be {\"step\": text, \"status\": \"pending\" | \"in_progress\" | \"completed\"}: unknown variant `done`"),
            "{provider}: {message}"
        );

        let requests = model.requests();
        if provider == "anthropic" {
            assert_eq!(
                requests[1].thinking_blocks(),
                vec![vec![json!({
                    "type": "thinking",
                    "thinking": "A two-step task: plan it.",
                    "signature": "sig_mock_1",
                })]]
            );
        } else {
            assert!(!requests[1].raw_body.contains("two-step"));
        }
        drop(agent);

        // A new process loads the session from its file.
        let mut agent = start(&env, &model, provider);
        initialize(&mut agent, json!({}));
        agent.request(
            3,
            "session/load",
            json!({"sessionId": session, "cwd": env.root(), "mcpServers": []}),
        );
        let mut replayed = agent.until_answer(3);
        let answer = replayed.pop().unwrap();
        assert!(answer.get("error").is_none(), "{answer}");
        let replayed: Vec<Value> = replayed
            .into_iter()
            .filter(|m| m["method"] == "session/update")
            .map(|m| m["params"]["update"].clone())
            .collect();
        assert_eq!(
            joined(&replayed, "agent_thought_chunk"),
            "A two-step task: plan it.The plan is set.",
            "{provider}"
        );
        assert_eq!(plans(&replayed), [entries], "{provider}");
        let kinds: Vec<&str> = replayed
            .iter()
            .map(|u| u["sessionUpdate"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "user_message_chunk",
                "agent_thought_chunk",
                "tool_call",
                "tool_call",
                "tool_call_update",
                "plan",
                "tool_call_update",
                "agent_thought_chunk",
                "agent_message_chunk",
            ],
            "{provider}"
        );
    }
}
