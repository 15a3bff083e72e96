//! The turn loop in process, against the mock model over real HTTP: parallel tool calls
//! proven concurrent with a true barrier, results in call order with matching ids, bad
//! arguments answered as error results, limits, cancellation mid-stream and mid-tool,
//! concurrent sessions, and an ensemble with one module agent timing out.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard::agent::ensemble::{EnsembleEvent, EnsembleInput, Module, ModuleOutcome};
use switchyard::agent::{
    Agent, AgentEvent, AskContext, Session, SessionStore, StopReason, ToolStatus,
};
use switchyard::approvals::{Approvals, ApprovalsConfig, Prompter};
use switchyard::config::Config;
use switchyard::documents::Documents;
use switchyard::edits::Applier;
use switchyard::lanes::{Lane, LaneMode, Lanes, LanesConfig};
use switchyard::llm::{Client, LlmConfig, Message, ProviderKind, Secret};
use switchyard::tools::{CallContext, Mutations, ToolResult, Toolbox, ToolsConfig, Workspace};
use switchyard_tests::mock_model::{MockModel, Response, Rule, Script, ToolCall};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// No test waits longer than this for anything.
const DEADLINE: Duration = Duration::from_secs(30);

/// Generate-lane retries fast enough for tests; `Retry-After` still wins.
fn lanes_config(patch: Value) -> LanesConfig {
    let mut base = json!({
        "generate": {"retry": {"policy": "exponential", "max_attempts": 3, "base_delay_ms": 10, "max_delay_ms": 50}}
    });
    switchyard::config::merge_json(&mut base, patch);
    LanesConfig::from_value(base).unwrap()
}

struct Setup {
    agent: Agent,
    lanes: Lanes,
    root: tempfile::TempDir,
}

fn setup(model: &MockModel, provider: ProviderKind, lanes: Value, agent: Value) -> Setup {
    let root = tempfile::tempdir().unwrap();
    for i in 0..16 {
        std::fs::write(
            root.path().join(format!("f{i}.txt")),
            format!("contents of file {i}\n"),
        )
        .unwrap();
    }
    let lanes = Lanes::new(lanes_config(lanes)).unwrap();
    let agent = agent_over(model, provider, root.path(), &lanes, agent, None);
    Setup { agent, lanes, root }
}

fn agent_over(
    model: &MockModel,
    provider: ProviderKind,
    root: &Path,
    lanes: &Lanes,
    agent: Value,
    store: Option<SessionStore>,
) -> Agent {
    let workspace = Workspace::new([root.to_path_buf()]).unwrap();
    let config = Config {
        agent: serde_json::from_value(agent).unwrap(),
        ..Config::default()
    };
    let toolbox = Toolbox::new(workspace, lanes.clone(), Documents::new(), config);
    let base_url = match provider {
        ProviderKind::OpenAi => model.openai_base_url(),
        ProviderKind::Anthropic => model.anthropic_base_url(),
    };
    let llm = LlmConfig {
        provider: Some(provider),
        base_url: Some(base_url),
        model: Some("mock-model".into()),
        api_key: Some(Secret::new("sk-test-key")),
        ..LlmConfig::default()
    };
    let client = Client::new(llm.resolve(&|_: &str| None).unwrap()).unwrap();
    Agent::with_client(toolbox, Ok(client), store)
}

/// Sends `prompt` and collects every event of the run.
async fn ask(session: &Session, prompt: &str) -> (switchyard::agent::RunOutcome, Vec<AgentEvent>) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let outcome = tokio::time::timeout(DEADLINE, session.send(prompt, &AskContext::default(), &tx))
        .await
        .expect("the run finished in time")
        .expect("the run succeeded");
    drop(tx);
    let mut events = Vec::new();
    while let Some(event) = rx.recv().await {
        events.push(event);
    }
    (outcome, events)
}

/// Polls `check` until it holds; panics after the deadline.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The OpenAI `tool` messages of a recorded request: (tool_call_id, content).
fn openai_tool_results(body: &Value) -> Vec<(String, String)> {
    body["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| {
            (
                m["tool_call_id"].as_str().unwrap().to_string(),
                m["content"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_parallel_reads_are_all_in_their_lane_at_once_and_answer_in_call_order() {
    let n = 16;
    let calls = (0..n)
        .map(|i| {
            ToolCall::new("read", json!({"path": format!("f{i}.txt")})).with_id(format!("c{i}"))
        })
        .collect();
    let model = MockModel::start(Script::new(vec![
        Rule::openai(Response::tool_calls(calls)).turn(0),
        Rule::openai(Response::text("All sixteen read.")).turn(1),
    ]))
    .await;
    // The Query lane hands its tasks to an outside worker (this test): nothing completes
    // until the test says so, so all 16 pending at once is a true barrier.
    let s = setup(
        &model,
        ProviderKind::OpenAi,
        json!({"query": {"mode": "external"}}),
        json!({}),
    );
    let session = s.agent.new_session().await.unwrap();
    let run = tokio::spawn({
        let session = session.clone();
        async move { ask(&session, "Read all sixteen files.").await }
    });
    until("16 reads are pending", || {
        s.lanes.pending_tasks(Some(Lane::Query)).len() == n
    })
    .await;
    let pending = s.lanes.pending_tasks(Some(Lane::Query));
    let paths: Vec<&str> = pending
        .iter()
        .map(|p| p.payload["path"].as_str().unwrap())
        .collect();
    let expected: Vec<String> = (0..n).map(|i| format!("f{i}.txt")).collect();
    assert_eq!(paths, expected);

    // Complete them in reverse order, with what the real tool produces.
    let worker_lanes = Lanes::new(LanesConfig::default()).unwrap();
    let worker = Toolbox::new(
        Workspace::new([s.root.path().to_path_buf()]).unwrap(),
        worker_lanes,
        Documents::new(),
        ToolsConfig::default(),
    );
    let mut claimed = s.lanes.claim(Lane::Query, n, DEADLINE);
    assert_eq!(claimed.len(), n);
    claimed.reverse();
    for claim in claimed {
        let output = worker
            .run(
                &claim.task.name,
                claim.task.payload.clone(),
                &CallContext::default(),
            )
            .await;
        let result: ToolResult = output.map_err(|e| e.message);
        s.lanes
            .complete(claim.lease_id, Ok(serde_json::to_value(result).unwrap()))
            .unwrap();
    }

    let (outcome, events) = run.await.unwrap();
    assert_eq!(outcome.text, "All sixteen read.");
    assert_eq!(outcome.stop, StopReason::EndTurn);
    assert_eq!((outcome.turns, outcome.tool_calls), (2, n));

    // The model got every result, in its own call order, under the id it gave.
    let requests = model.wait_for_requests(2, DEADLINE).await;
    let results = openai_tool_results(&requests[1].body);
    assert_eq!(results.len(), n);
    for (i, (id, content)) in results.iter().enumerate() {
        assert_eq!(id, &format!("c{i}"));
        assert!(
            content.contains(&format!("contents of file {i}")),
            "result {i}: {content}"
        );
    }

    // Every call was reported started before any finished, each with its lane.
    let started: Vec<usize> =
        positions(&events, |e| matches!(e, AgentEvent::ToolCallStarted { .. }));
    let finished: Vec<usize> = positions(&events, |e| {
        matches!(e, AgentEvent::ToolCallFinished { .. })
    });
    assert_eq!((started.len(), finished.len()), (n, n));
    assert!(started.iter().max() < finished.iter().min());
    for event in &events {
        if let AgentEvent::ToolCallFinished { lane, status, .. } = event {
            assert_eq!((*lane, *status), (Some(Lane::Query), ToolStatus::Completed));
        }
    }
    assert_eq!(
        events.last(),
        Some(&AgentEvent::Done {
            stop: StopReason::EndTurn
        })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_between_two_reads_runs_after_the_first_and_before_the_second() {
    let model = MockModel::start(Script::new(vec![
        Rule::openai(Response::tool_calls(vec![
            ToolCall::new("read", json!({"path": "f1.txt"})).with_id("before"),
            ToolCall::new("write", json!({"path": "f1.txt", "content": "rewritten\n"}))
                .with_id("write"),
            ToolCall::new("read", json!({"path": "f1.txt"})).with_id("after"),
        ]))
        .turn(0),
        Rule::openai(Response::text("Rewritten.")).turn(1),
    ]))
    .await;
    let s = setup(&model, ProviderKind::OpenAi, json!({}), json!({}));
    s.agent.toolbox().set_mutations(Mutations {
        applier: Applier::Disk { dry_run: false },
        approvals: Arc::new(Approvals::new(
            ApprovalsConfig::default(),
            Prompter::AllowAll,
        )),
    });
    let session = s.agent.new_session().await.unwrap();
    let (outcome, events) = ask(&session, "Rewrite f1 and show it before and after.").await;
    assert_eq!(outcome.text, "Rewritten.");

    let requests = model.wait_for_requests(2, DEADLINE).await;
    let results = openai_tool_results(&requests[1].body);
    let ids: Vec<&str> = results.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(ids, ["before", "write", "after"]);
    assert!(results[0].1.contains("contents of file 1"), "{results:?}");
    assert!(!results[1].1.starts_with("error"), "{results:?}");
    assert!(results[2].1.contains("rewritten"), "{results:?}");

    // The write started after the first read finished and finished before the second began.
    let at = |id: &str, started: bool| {
        events
            .iter()
            .position(|e| match e {
                AgentEvent::ToolCallStarted { call_id, .. } => started && call_id == id,
                AgentEvent::ToolCallFinished { call_id, .. } => !started && call_id == id,
                _ => false,
            })
            .unwrap()
    };
    assert!(at("before", false) < at("write", true));
    assert!(at("write", false) < at("after", true));
    assert!(events.iter().any(|e| matches!(
        e,
        AgentEvent::ToolCallStarted { call_id, lane: Some(Lane::Execute), .. } if call_id == "write"
    )));
}

fn positions(events: &[AgentEvent], pick: impl Fn(&AgentEvent) -> bool) -> Vec<usize> {
    events
        .iter()
        .enumerate()
        .filter(|(_, e)| pick(e))
        .map(|(i, _)| i)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_arguments_and_unknown_tools_come_back_as_error_results() {
    let model = MockModel::start(Script::new(vec![
        Rule::anthropic(Response::tool_calls(vec![
            ToolCall::raw("read", r#"{"path": "f1.txt""#).with_id("bad_json"),
            ToolCall::raw("read", r#"["f1.txt"]"#).with_id("not_object"),
            ToolCall::new("teleport", json!({})).with_id("unknown"),
            ToolCall::new("read", json!({"path": "f1.txt"})).with_id("good"),
            ToolCall::new("read", json!({"file": "f1.txt"})).with_id("bad_arg"),
            ToolCall::new("read", json!({"path": "missing.txt"})).with_id("missing"),
            ToolCall::new("write", json!({"path": "f1.txt", "content": "x"}))
                .with_id("not_offered"),
        ]))
        .turn(0),
        Rule::anthropic(Response::text("I see.")).turn(1),
    ]))
    .await;
    let s = setup(&model, ProviderKind::Anthropic, json!({}), json!({}));
    let session = s.agent.new_session().await.unwrap();
    let (outcome, events) = ask(&session, "Read f1.").await;
    assert_eq!(outcome.text, "I see.");

    let requests = model.wait_for_requests(2, DEADLINE).await;
    let last = requests[1].messages().last().unwrap().clone();
    assert_eq!(last["role"], "user");
    let blocks: Vec<(String, bool, String)> = last["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            assert_eq!(b["type"], "tool_result");
            let content = b["content"].as_str().unwrap().to_string();
            (
                b["tool_use_id"].as_str().unwrap().to_string(),
                b["is_error"].as_bool().unwrap(),
                content,
            )
        })
        .collect();
    let ids: Vec<&str> = blocks.iter().map(|b| b.0.as_str()).collect();
    assert_eq!(
        ids,
        [
            "bad_json",
            "not_object",
            "unknown",
            "good",
            "bad_arg",
            "missing",
            "not_offered"
        ]
    );
    let errors: Vec<bool> = blocks.iter().map(|b| b.1).collect();
    assert_eq!(errors, [true, true, true, false, true, true, true]);
    assert_eq!(
        blocks[6].2,
        "error: `write` is not available here; the tools are read, glob, grep, ls, update_plan"
    );
    assert_eq!(
        std::fs::read_to_string(s.root.path().join("f1.txt")).unwrap(),
        "contents of file 1\n"
    );
    assert!(
        blocks[0]
            .2
            .starts_with("error: the arguments of `read` are not valid JSON"),
        "{}",
        blocks[0].2
    );
    assert!(
        blocks[1].2.contains("must be a JSON object, got an array"),
        "{}",
        blocks[1].2
    );
    assert!(
        blocks[2].2.contains("unknown tool `teleport`"),
        "{}",
        blocks[2].2
    );
    assert!(
        blocks[3].2.contains("contents of file 1"),
        "{}",
        blocks[3].2
    );
    assert!(blocks[4].2.starts_with("error: "), "{}", blocks[4].2);
    assert!(
        blocks[5].2.starts_with("error: ") && blocks[5].2.contains("missing.txt"),
        "{}",
        blocks[5].2
    );

    let failed = events
        .iter()
        .filter(|e| {
            matches!(
                e,
                AgentEvent::ToolCallFinished {
                    status: ToolStatus::Failed,
                    ..
                }
            )
        })
        .count();
    assert_eq!(failed, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_turns_and_the_token_budget_end_the_run_with_their_reason() {
    let model = MockModel::start(Script::new(vec![
        Rule::openai(Response::tool_calls(vec![ToolCall::new("ls", json!({}))]).usage(1_000, 10))
            .repeat(),
    ]))
    .await;
    let s = setup(
        &model,
        ProviderKind::OpenAi,
        json!({}),
        json!({"max_turns": 3}),
    );
    let session = s.agent.new_session().await.unwrap();
    let (outcome, _) = ask(&session, "Loop forever.").await;
    assert_eq!((outcome.stop, outcome.turns), (StopReason::MaxTurns, 3));
    let reason = outcome.stop.explain(&s.agent.config()).unwrap();
    assert!(reason.contains("agent.max_turns"), "{reason}");
    // The history stays valid for the next request: every call has its result.
    let history = session.history().await;
    assert!(matches!(history.last(), Some(Message::ToolResult { .. })));

    s.agent.toolbox().config().replace(Config {
        agent: serde_json::from_value(json!({"max_turns": 50, "token_budget": 2_500})).unwrap(),
        ..Config::default()
    });
    let (outcome, _) = ask(&session, "Again.").await;
    assert_eq!((outcome.stop, outcome.turns), (StopReason::TokenBudget, 3));
    assert_eq!(outcome.usage.input_tokens, 3_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_mid_stream_drops_the_request_and_the_session_goes_on() {
    let model = MockModel::start(Script::new(vec![
        // About 30 s of stream: one 4-character piece every 300 ms.
        Rule::openai(
            Response::text("This answer streams slowly. ".repeat(36))
                .chunk_size(4)
                .chunk_delay_ms(300),
        )
        .contains("first question"),
        Rule::openai(Response::text("Second answer.")).contains("second question"),
    ]))
    .await;
    let s = setup(&model, ProviderKind::OpenAi, json!({}), json!({}));
    let session = s.agent.new_session().await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let run = tokio::spawn({
        let session = session.clone();
        async move {
            session
                .send("first question", &AskContext::default(), &tx)
                .await
        }
    });
    // The first piece of text has arrived: the stream is open.
    let first = tokio::time::timeout(DEADLINE, async {
        loop {
            if let Some(AgentEvent::MessageChunk { text }) = rx.recv().await {
                return text;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(first, "This");
    let cancelled_at = Instant::now();
    assert!(session.cancel(), "a request was running");
    let outcome = tokio::time::timeout(DEADLINE, run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(outcome.stop, StopReason::Cancelled);
    assert!(
        cancelled_at.elapsed() < Duration::from_secs(2),
        "took {:?}",
        cancelled_at.elapsed()
    );
    model.wait_for_in_flight(0, DEADLINE).await;
    assert_eq!(s.lanes.metrics().lane(Lane::Generate).cancelled, 1);

    // Only the prompt stays in the history; the session answers the next one.
    assert_eq!(
        session.history().await,
        [Message::User {
            content: "first question".into()
        }]
    );
    let (outcome, _) = ask(&session, "second question").await;
    assert_eq!(outcome.text, "Second answer.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_mid_tool_cancels_the_tools_and_the_session_goes_on() {
    let model = MockModel::start(Script::new(vec![
        Rule::openai(Response::tool_calls(vec![
            ToolCall::new("read", json!({"path": "f1.txt"})).with_id("a"),
            ToolCall::new("read", json!({"path": "f2.txt"})).with_id("b"),
        ]))
        .turn(0),
        Rule::openai(Response::text("Recovered.")).turn(1),
    ]))
    .await;
    let s = setup(
        &model,
        ProviderKind::OpenAi,
        json!({"query": {"mode": "external"}}),
        json!({}),
    );
    let session = s.agent.new_session().await.unwrap();
    let run = tokio::spawn({
        let session = session.clone();
        async move {
            let (tx, _rx) = mpsc::unbounded_channel();
            session
                .send("read two files", &AskContext::default(), &tx)
                .await
        }
    });
    until("both reads are pending", || {
        s.lanes.pending_tasks(Some(Lane::Query)).len() == 2
    })
    .await;
    assert!(session.cancel());
    let outcome = tokio::time::timeout(DEADLINE, run)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(outcome.stop, StopReason::Cancelled);
    assert!(
        s.lanes.pending_tasks(None).is_empty(),
        "the tool tasks were cancelled"
    );
    assert_eq!(s.lanes.metrics().lane(Lane::Query).cancelled, 2);
    let history = session.history().await;
    let results: Vec<(&str, bool)> = history
        .iter()
        .filter_map(|m| match m {
            Message::ToolResult {
                call_id, is_error, ..
            } => Some((call_id.as_str(), *is_error)),
            _ => None,
        })
        .collect();
    assert_eq!(
        results,
        [("a", true), ("b", true)],
        "every call has its (cancelled) result"
    );

    let mut config = s.lanes.config();
    config.query.mode = LaneMode::Internal;
    s.lanes.reconfigure(config).unwrap();
    let (outcome, _) = ask(&session, "try again").await;
    assert_eq!(outcome.text, "Recovered.");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_run_at_once_and_keep_their_own_history() {
    let model = MockModel::start(Script::new(vec![
        Rule::openai(Response::text("Answer A.").await_in_flight(2)).contains("question A"),
        Rule::openai(Response::text("Answer B.").await_in_flight(2)).contains("question B"),
        Rule::openai(Response::text("More A.")).contains("more for A"),
    ]))
    .await;
    let s = setup(&model, ProviderKind::OpenAi, json!({}), json!({}));
    let a = s.agent.new_session().await.unwrap();
    let b = s.agent.new_session().await.unwrap();
    assert_ne!(a.id(), b.id());
    let ((a1, _), (b1, _)) = tokio::join!(ask(&a, "question A"), ask(&b, "question B"));
    assert_eq!(
        (a1.text.as_str(), b1.text.as_str()),
        ("Answer A.", "Answer B.")
    );
    assert_eq!(
        model.max_in_flight(),
        2,
        "both model calls were in flight at once"
    );

    let (a2, _) = ask(&a, "more for A").await;
    assert_eq!(a2.text, "More A.");
    let requests = model.wait_for_requests(3, DEADLINE).await;
    let last = requests[2].raw_body.clone();
    assert!(
        last.contains("question A") && last.contains("Answer A."),
        "{last}"
    );
    assert!(
        !last.contains("question B"),
        "session B's history leaked into A: {last}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_resumed_from_disk_by_a_new_agent() {
    let model = MockModel::start(Script::new(vec![
        Rule::anthropic(Response::text("The first answer.")).turn(0),
        Rule::anthropic(Response::text("The second answer.")).turn(1),
    ]))
    .await;
    let state = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let store = || SessionStore::in_dir(state.path().to_path_buf(), root.path());
    let id = {
        let lanes = Lanes::new(lanes_config(json!({}))).unwrap();
        let agent = agent_over(
            &model,
            ProviderKind::Anthropic,
            root.path(),
            &lanes,
            json!({}),
            Some(store()),
        );
        let session = agent.new_session().await.unwrap();
        ask(&session, "The first question.").await;
        session.id().to_string()
    };
    let lanes = Lanes::new(lanes_config(json!({}))).unwrap();
    let agent = agent_over(
        &model,
        ProviderKind::Anthropic,
        root.path(),
        &lanes,
        json!({}),
        Some(store()),
    );
    let listed = agent.list_sessions().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].id.as_str(), listed[0].title.as_str()),
        (id.as_str(), "The first question.")
    );
    let session = agent.session(&id).await.unwrap();
    let (outcome, _) = ask(&session, "The second question.").await;
    assert_eq!(outcome.text, "The second answer.");
    let requests = model.wait_for_requests(2, DEADLINE).await;
    let messages = requests[1].messages();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert_eq!(messages[1]["content"][0]["text"], "The first answer.");
    // The key was sent, and never written with the session.
    assert_eq!(requests[1].header("x-api-key"), Some("sk-test-key"));
    let file = std::fs::read_to_string(store().path(&id)).unwrap();
    assert!(!file.contains("sk-test-key"));
    let kinds: Vec<&str> = file
        .lines()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            match value["type"].as_str().unwrap() {
                "session" => "session",
                "message" => "message",
                "usage" => "usage",
                other => panic!("an unexpected line {other}: {file}"),
            }
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "session", "message", "message", "usage", "message", "message", "usage"
        ],
        "a header, and each turn's two messages and its usage: {file}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ensemble_reports_a_module_agent_that_timed_out_and_still_synthesizes() {
    let model = MockModel::start(Script::new(vec![
        // All three module agents' first calls meet here: three model calls at once.
        Rule::openai(Response::text("Notes on alpha.").await_in_flight(3))
            .contains("module `alpha`"),
        Rule::openai(Response::hang()).contains("module `beta`"),
        Rule::openai(Response::text("Notes on gamma.").await_in_flight(3))
            .contains("module `gamma`"),
        Rule::openai(Response::text("# Summary\nAlpha and gamma.")).contains("Write the summary"),
    ]))
    .await;
    let s = setup(
        &model,
        ProviderKind::OpenAi,
        json!({"generate": {"max_concurrency": 3}}),
        json!({"ensemble": {"module_timeout_ms": 1_500}}),
    );
    let module = |name: &str| Module {
        name: name.into(),
        path: format!("{name}/"),
        bytes: 100,
        facts: format!("{name} has 100 lines of Rust"),
    };
    let input = EnsembleInput {
        report: "# Analysis\nThree modules.".into(),
        modules: vec![module("alpha"), module("beta"), module("gamma")],
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let report = tokio::time::timeout(
        DEADLINE,
        s.agent.ensemble(input, &tx, &CancellationToken::new()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(model.max_in_flight(), 3);
    let outcomes: Vec<(&str, &ModuleOutcome)> = report
        .modules
        .iter()
        .map(|m| (m.name.as_str(), &m.outcome))
        .collect();
    assert_eq!(
        outcomes,
        [
            (
                "alpha",
                &ModuleOutcome::Done {
                    notes: "Notes on alpha.".into()
                }
            ),
            ("beta", &ModuleOutcome::TimedOut { after_ms: 1_500 }),
            (
                "gamma",
                &ModuleOutcome::Done {
                    notes: "Notes on gamma.".into()
                }
            ),
        ]
    );
    assert_eq!(report.summary, "# Summary\nAlpha and gamma.");
    let requests = model.requests();
    let synthesis = requests
        .iter()
        .find(|r| r.raw_body.contains("Write the summary"))
        .unwrap();
    assert!(synthesis.raw_body.contains("Notes on alpha."));
    assert!(
        synthesis
            .raw_body
            .contains("its agent timed out after 1500 ms")
    );
    // The hung call was dropped when its agent timed out.
    model.wait_for_in_flight(0, DEADLINE).await;

    drop(tx);
    let mut events = Vec::new();
    while let Some(event) = rx.recv().await {
        events.push(event);
    }
    assert_eq!(
        events.first(),
        Some(&EnsembleEvent::ModulesStarted { total: 3 })
    );
    assert_eq!(events.last(), Some(&EnsembleEvent::SynthesisStarted));
    assert!(events.contains(&EnsembleEvent::ModuleFinished {
        name: "beta".into(),
        ok: false,
        done: 3,
        total: 3
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_provider_the_agent_says_how_to_configure_one() {
    let root = tempfile::tempdir().unwrap();
    let lanes = Lanes::new(LanesConfig::default()).unwrap();
    let toolbox = Toolbox::new(
        Workspace::new([root.path().to_path_buf()]).unwrap(),
        lanes,
        Documents::new(),
        ToolsConfig::default(),
    );
    let llm = LlmConfig::default()
        .resolve(&|_: &str| None)
        .map(|_| ())
        .map_err(|e| e.message);
    let agent = Agent::with_client(toolbox, Err(llm.unwrap_err()), None);
    let session = agent.new_session().await.unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let err = session
        .send("hello", &AskContext::default(), &tx)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no model configured: set llm.model in .switchyard.toml or SWITCHYARD_MODEL"
    );
    let input = EnsembleInput {
        report: String::new(),
        modules: vec![],
    };
    let err = agent
        .ensemble(
            input,
            &mpsc::unbounded_channel().0,
            &CancellationToken::new(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("no model configured"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_packages_the_modules_are_the_top_level_directories() {
    let root = tempfile::tempdir().unwrap();
    for (path, text) in [
        ("src/main.rs", "fn main() {} // TODO: say hello\n"),
        ("src/util.rs", "pub fn util() {}\n"),
        ("docs/guide.md", "# Guide\n"),
        ("README.md", "# Readme\n"),
    ] {
        let path = root.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let lanes = Lanes::new(LanesConfig::default()).unwrap();
    let toolbox = Toolbox::new(
        Workspace::new([root.path().to_path_buf()]).unwrap(),
        lanes,
        Documents::new(),
        ToolsConfig::default(),
    );
    let options = switchyard::analyze::AnalyzeOptions::default();
    let analysis = switchyard::analyze::run(
        &toolbox,
        &options,
        "analyze".into(),
        CancellationToken::new(),
    )
    .await
    .unwrap();
    let modules = switchyard::agent::ensemble::modules(&toolbox, &analysis)
        .await
        .unwrap();
    let names: Vec<(&str, &str, u64)> = modules
        .iter()
        .map(|m| (m.name.as_str(), m.path.as_str(), m.bytes))
        .collect();
    assert_eq!(names, [("docs", "docs", 8), ("src", "src", 49)]);
    assert!(
        modules[1]
            .facts
            .starts_with("2 files, 49 bytes in `src`.\n"),
        "{}",
        modules[1].facts
    );
    assert!(
        modules[1].facts.contains("- TODO at `src/main.rs:1`"),
        "{}",
        modules[1].facts
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_dropped_half_way_leaves_a_history_the_model_accepts() {
    let model = MockModel::start(Script::new(vec![
        Rule::openai(Response::tool_calls(vec![
            ToolCall::new("read", json!({"path": "f1.txt"})).with_id("a"),
        ]))
        .turn(0),
        Rule::openai(Response::text("Go on.")).turn(1),
    ]))
    .await;
    let s = setup(
        &model,
        ProviderKind::OpenAi,
        json!({"query": {"mode": "external"}}),
        json!({}),
    );
    let session = s.agent.new_session().await.unwrap();
    let run = tokio::spawn({
        let session = session.clone();
        async move {
            let (tx, _rx) = mpsc::unbounded_channel();
            session.send("read it", &AskContext::default(), &tx).await
        }
    });
    until("the read is pending", || {
        s.lanes.pending_tasks(Some(Lane::Query)).len() == 1
    })
    .await;
    // A front end gives up on the request: its future is dropped, not cancelled.
    run.abort();
    let _ = run.await;
    s.lanes.cancel_session(session.id());
    let mut config = s.lanes.config();
    config.query.mode = LaneMode::Internal;
    s.lanes.reconfigure(config).unwrap();

    let (outcome, _) = ask(&session, "and now?").await;
    assert_eq!(outcome.text, "Go on.");
    let requests = model.wait_for_requests(2, DEADLINE).await;
    let results = openai_tool_results(&requests[1].body);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0].0, "a");
    assert!(results[0].1.starts_with("error: "), "{results:?}");
}
