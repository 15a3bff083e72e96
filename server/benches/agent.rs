//! The agent loop against one-after-another baselines measured in the same run, with the
//! mock model answering every call in a fixed 200 ms:
//! 1. one request whose first answer asks for 16 read/grep calls: its time against model
//!    time + slowest tool (the target is at most 5 ms more);
//! 2. a turn's tool calls, 3, 8 and 16 of them, through the lanes vs awaited one by one;
//! 3. 3 model calls from 3 sessions at once vs one after another (Generate concurrency 2,
//!    the default, and 3);
//! 4. the loop's own time per turn, model and tools excluded (the target is at most 1 ms).
//!
//! Each figure is the median of a few runs; the tools read and grep this repository.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard::agent::{Agent, AgentConfig, AgentEvent, AskContext, RunOutcome, SessionStore};
use switchyard::config::Config;
use switchyard::documents::Documents;
use switchyard::lanes::{Lanes, LanesConfig};
use switchyard::llm::{Client, LlmConfig, ProviderKind};
use switchyard::tools::{CallContext, Toolbox, ToolsConfig, Workspace};
use switchyard_tests::mock_model::{MockModel, Response, Rule, Script, ToolCall};
use tokio::sync::mpsc;

const MODEL_MS: u64 = 200;
const RUNS: usize = 9;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `n` calls alternating read and grep over this repository's sources.
fn tool_calls(n: usize) -> Vec<(String, Value)> {
    let files = [
        "server/src/lanes/engine.rs",
        "server/src/llm/error.rs",
        "server/src/tools.rs",
        "server/src/agent.rs",
        "server/src/llm/client.rs",
        "server/src/lanes/task.rs",
        "tests/src/mock_model/wire.rs",
        "server/src/config.rs",
    ];
    // ASCII classes only: a Unicode `\w` takes about 5 ms to compile (in the grep's lane
    // task), which would measure the regex compiler rather than the lanes.
    let patterns = [
        "fn [a-z_]+\\(",
        "TaskError",
        "pub struct",
        "async fn",
        "impl ",
        "Duration",
        "tokio::",
        "serde",
    ];
    (0..n)
        .map(|i| {
            if i % 2 == 0 {
                (
                    "read".to_string(),
                    json!({"path": files[(i / 2) % files.len()]}),
                )
            } else {
                (
                    "grep".to_string(),
                    json!({"pattern": patterns[(i / 2) % patterns.len()], "path": "server/src"}),
                )
            }
        })
        .collect()
}

fn agent(model: &MockModel, lanes: &Lanes, store: Option<SessionStore>) -> Agent {
    let workspace = Workspace::new([repo()]).unwrap();
    let toolbox = Toolbox::new(
        workspace,
        lanes.clone(),
        Documents::new(),
        ToolsConfig::default(),
    );
    let llm = LlmConfig {
        provider: Some(ProviderKind::OpenAi),
        base_url: Some(model.openai_base_url()),
        model: Some("mock-model".into()),
        ..LlmConfig::default()
    };
    let client = Client::new(llm.resolve(&|_: &str| None).unwrap()).unwrap();
    Agent::with_client(toolbox, Ok(client), store)
}

fn lanes(patch: Value) -> Lanes {
    Lanes::new(LanesConfig::from_value(patch).unwrap()).unwrap()
}

async fn ask(agent: &Agent, prompt: &str) -> (RunOutcome, Vec<AgentEvent>) {
    let session = agent.new_session().await.unwrap();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let outcome = session
        .send(prompt, &AskContext::default(), &tx)
        .await
        .unwrap();
    drop(tx);
    let mut events = Vec::new();
    while let Some(e) = rx.recv().await {
        events.push(e);
    }
    (outcome, events)
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A request with 16 parallel read/grep calls, against model time + slowest tool: the
/// medians of the request's time, of its model time, of its slowest tool, and of the excess
/// (request less model time less slowest tool, per run).
async fn sixteen_call_turn() -> [Duration; 4] {
    let calls = tool_calls(16)
        .into_iter()
        .map(|(name, args)| ToolCall::new(name, args))
        .collect();
    let model = MockModel::start(Script::new(vec![
        Rule::openai(Response::tool_calls(calls).delay_ms(MODEL_MS))
            .turn(0)
            .repeat(),
        Rule::openai(Response::text("Done.").delay_ms(MODEL_MS))
            .turn(1)
            .repeat(),
    ]))
    .await;
    let lanes = lanes(json!({}));
    let agent = agent(&model, &lanes, None);
    ask(&agent, "warm up").await;
    let (mut totals, mut models, mut slowest_tools, mut excess) = (vec![], vec![], vec![], vec![]);
    for _ in 0..RUNS {
        let (outcome, events) = ask(&agent, "read and grep").await;
        let slowest = events
            .iter()
            .filter_map(|e| match e {
                AgentEvent::ToolCallFinished { duration, .. } => Some(*duration),
                _ => None,
            })
            .max()
            .unwrap();
        let timings = outcome.timings;
        totals.push(timings.total);
        models.push(timings.model);
        slowest_tools.push(slowest);
        excess.push(timings.total.saturating_sub(timings.model + slowest));
    }
    [
        median(totals),
        median(models),
        median(slowest_tools),
        median(excess),
    ]
}

/// A turn's tool calls through the lanes vs awaited one by one, same calls, same run.
async fn tools_sequential_vs_lanes(n: usize) -> (Duration, Duration) {
    let calls: Vec<ToolCall> = tool_calls(n)
        .into_iter()
        .map(|(name, args)| ToolCall::new(name, args))
        .collect();
    let model = MockModel::start(Script::new(vec![
        Rule::openai(Response::tool_calls(calls)).turn(0).repeat(),
        Rule::openai(Response::text("Done.")).turn(1).repeat(),
    ]))
    .await;
    let lanes = lanes(json!({}));
    let agent = agent(&model, &lanes, None);
    let toolbox = agent.toolbox().clone();
    ask(&agent, "warm up").await;
    let mut sequential = Vec::new();
    let mut parallel = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        for (name, args) in tool_calls(n) {
            let output = toolbox
                .run(&name, args, &CallContext::default())
                .await
                .unwrap();
            std::hint::black_box(toolbox.render(&output));
        }
        sequential.push(started.elapsed());
        let (outcome, _) = ask(&agent, "run the calls").await;
        parallel.push(outcome.timings.tools);
    }
    (median(sequential), median(parallel))
}

/// Three one-call requests in three sessions: one after another vs at once.
async fn model_calls(concurrency: usize) -> (Duration, Duration) {
    let model = MockModel::start(Script::new(vec![
        Rule::openai(Response::text("Hello.").delay_ms(MODEL_MS)).repeat(),
    ]))
    .await;
    let lanes = lanes(json!({"generate": {"max_concurrency": concurrency}}));
    let agent = agent(&model, &lanes, None);
    let mut sequential = Vec::new();
    let mut parallel = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        for _ in 0..3 {
            ask(&agent, "hi").await;
        }
        sequential.push(started.elapsed());
        let started = Instant::now();
        futures::future::join3(ask(&agent, "hi"), ask(&agent, "hi"), ask(&agent, "hi")).await;
        parallel.push(started.elapsed());
    }
    (median(sequential), median(parallel))
}

/// The loop's own time per turn: a 10-turn request (one `ls` call per turn, sessions
/// written to disk), less model and tool time.
async fn loop_overhead() -> Duration {
    let model = MockModel::start(Script::new(vec![
        Rule::openai(Response::tool_calls(vec![ToolCall::new(
            "ls",
            json!({"path": "server"}),
        )]))
        .repeat(),
    ]))
    .await;
    let state = tempfile::tempdir().unwrap();
    let lanes = lanes(json!({}));
    let agent = agent(
        &model,
        &lanes,
        Some(SessionStore::in_dir(state.path().to_path_buf(), &repo())),
    );
    agent.toolbox().config().replace(Config {
        agent: AgentConfig {
            max_turns: 10,
            ..AgentConfig::default()
        },
        ..Config::default()
    });
    ask(&agent, "warm up").await;
    let mut per_turn = Vec::new();
    for _ in 0..RUNS {
        let (outcome, _) = ask(&agent, "list server ten times").await;
        per_turn.push(outcome.timings.overhead() / outcome.turns);
    }
    median(per_turn)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        println!("agent loop vs one-after-another, mock model at {MODEL_MS} ms per call, medians of {RUNS} runs:\n");

        let [total, model, slowest, excess] = sixteen_call_turn().await;
        let verdict = if excess <= Duration::from_millis(5) { "within" } else { "OVER" };
        println!("1. a request whose first answer asks for 16 read/grep calls (2 model calls):");
        println!(
            "   {:.1} ms = model {:.1} ms + slowest tool {:.1} ms + {:.2} ms: {verdict} the 5 ms target\n",
            ms(total),
            ms(model),
            ms(slowest),
            ms(excess)
        );

        println!("2. one turn's tool calls (read/grep over this repository):");
        println!("   | calls | one by one | lanes | speed-up |");
        println!("   |---:|---:|---:|---:|");
        for n in [3, 8, 16] {
            let (sequential, parallel) = tools_sequential_vs_lanes(n).await;
            println!(
                "   | {n} | {:.1} ms | {:.1} ms | {:.2}x |",
                ms(sequential),
                ms(parallel),
                sequential.as_secs_f64() / parallel.as_secs_f64()
            );
        }

        println!("\n3. three one-call requests, one after another vs at once:");
        println!("   | generate max_concurrency | one by one | at once | speed-up |");
        println!("   |---:|---:|---:|---:|");
        for concurrency in [2, 3] {
            let (sequential, parallel) = model_calls(concurrency).await;
            println!(
                "   | {concurrency} | {:.1} ms | {:.1} ms | {:.2}x |",
                ms(sequential),
                ms(parallel),
                sequential.as_secs_f64() / parallel.as_secs_f64()
            );
        }

        let overhead = loop_overhead().await;
        let verdict = if overhead <= Duration::from_millis(1) { "within" } else { "OVER" };
        println!(
            "\n4. the loop's own time per turn (model and tools excluded, session written to disk): {:.0} µs: {verdict} the 1 ms target",
            overhead.as_secs_f64() * 1e6
        );
    });
}
