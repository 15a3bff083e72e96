//! The agent loop against one-after-another baselines measured in the same run, with the
//! mock model answering every call in a fixed 200 ms:
//! 1. one request whose first answer asks for 16 read/grep calls: its time against model
//!    time + slowest tool (the target is at most 5 ms more);
//! 2. a turn's tool calls, 3, 8 and 16 of them, through the lanes vs awaited one by one;
//! 3. 3 model calls from 3 sessions at once vs one after another (Generate concurrency 2,
//!    the default, and 3);
//! 4. the loop's own time per turn, model and tools excluded (the target is at most 1 ms);
//! 5. context management's own time per turn (sizing each request, building compactions;
//!    the summarizer's model time excluded), as a ratio of the turn with it to the same turn
//!    without it, with a window that never compacts and one that compacts often;
//! 6. the checkpoint cost per mutating call (a `write` of a 16 KiB file), as a ratio of the
//!    call with it to the same call without it.
//!
//! 7. 8 greps and 8 reads over the registry corpus asked in one turn (the greps share one
//!    walk) vs asked one call per turn, through the agent and the mock model, with the model
//!    answering at once and at 200 ms.
//!
//! `cargo bench --bench agent -- context checkpoint turn` runs only sections 5, 6 and 7.
//!
//! Each figure is the median of a few runs; the tools read and grep this repository.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

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
    agent_in(&repo(), model, lanes, store)
}

fn agent_in(root: &Path, model: &MockModel, lanes: &Lanes, store: Option<SessionStore>) -> Agent {
    let workspace = Workspace::new([root.to_path_buf()]).unwrap();
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

/// Per turn: the whole turn, and context management's own part of it, with `window`
/// tokens (the mock summarizes when asked); 12 turns each reading a 20 KiB file.
async fn context_per_turn(window: u64) -> (Duration, Duration, u32) {
    let model = MockModel::start(Script::new(vec![
        Rule::openai(Response::text("Summary."))
            .contains("You compact the conversation")
            .repeat(),
        Rule::openai(Response::tool_calls(vec![ToolCall::new(
            "read",
            json!({"path": "server/src/agent.rs", "limit": 400}),
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
    let mut config = Config::default();
    config.agent.max_turns = 12;
    config.llm.context_window = Some(window);
    agent.toolbox().config().replace(config);
    ask(&agent, "warm up").await;
    let (mut whole, mut own, mut compactions) = (Vec::new(), Vec::new(), 0);
    for _ in 0..RUNS {
        let (outcome, events) = ask(&agent, "read agent.rs twelve times").await;
        let t = outcome.timings;
        whole.push(t.total.saturating_sub(t.model) / outcome.turns);
        own.push(t.context / outcome.turns);
        compactions = events
            .iter()
            .filter(|e| matches!(e, AgentEvent::Compacted { .. }))
            .count() as u32;
    }
    (median(whole), median(own), compactions)
}

/// Per mutating call: the call's tool time, and the checkpoint's part of it; 12 turns each
/// writing a 16 KiB file in a fresh workspace, sessions kept on disk.
async fn checkpoint_per_call() -> (Duration, Duration) {
    use switchyard::approvals::{Approvals, Prompter};
    use switchyard::edits::Applier;
    use switchyard::tools::Mutations;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let content: String = "0123456789abcdef".repeat(1024);
    let model = MockModel::start(Script::new(vec![
        Rule::openai(Response::tool_calls(vec![ToolCall::new(
            "write",
            json!({"path": "out.txt", "content": content}),
        )]))
        .repeat(),
    ]))
    .await;
    let state = tempfile::tempdir().unwrap();
    let lanes = lanes(json!({}));
    let config = switchyard::config::Current::new(Config {
        agent: AgentConfig {
            max_turns: 12,
            ..AgentConfig::default()
        },
        ..Config::default()
    });
    let toolbox = Toolbox::new(
        Workspace::new([root.clone()]).unwrap(),
        lanes.clone(),
        Documents::new(),
        config.clone(),
    );
    toolbox.set_mutations(Mutations {
        applier: Applier::Disk { dry_run: false },
        approvals: std::sync::Arc::new(Approvals::new(config, Prompter::AllowAll)),
    });
    let llm = LlmConfig {
        provider: Some(ProviderKind::OpenAi),
        base_url: Some(model.openai_base_url()),
        model: Some("mock-model".into()),
        ..LlmConfig::default()
    };
    let client = Client::new(llm.resolve(&|_: &str| None).unwrap()).unwrap();
    let agent = Agent::with_client(
        toolbox,
        Ok(client),
        Some(SessionStore::in_dir(state.path().to_path_buf(), &root)),
    );
    ask(&agent, "warm up").await;
    let (mut tools, mut kept) = (Vec::new(), Vec::new());
    for _ in 0..RUNS {
        let (outcome, _) = ask(&agent, "write out.txt twelve times").await;
        let calls = outcome.tool_calls as u32;
        tools.push(outcome.timings.tools / calls);
        kept.push(outcome.timings.checkpoints / calls);
    }
    (median(tools), median(kept))
}

/// 8 greps (the shared patterns, whole corpus) and 8 reads (manifests of the corpus's
/// first crates) over the registry corpus, as `ToolCall`s.
fn corpus_calls(corpus: &Path) -> Vec<ToolCall> {
    let mut manifests: Vec<String> = std::fs::read_dir(corpus)
        .unwrap()
        .flatten()
        .flat_map(|index| {
            std::fs::read_dir(index.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|krate| krate.path().join("Cargo.toml"))
        .filter(|m| m.is_file())
        .map(|m| {
            m.strip_prefix(corpus)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    manifests.sort();
    assert!(manifests.len() >= 8, "the registry corpus needs 8 crates");
    let mut calls = Vec::new();
    for (pattern, manifest) in common::EIGHT_PATTERNS.iter().zip(&manifests) {
        calls.push(ToolCall::new(
            "grep",
            json!({"pattern": pattern, "output": "count"}),
        ));
        calls.push(ToolCall::new("read", json!({"path": manifest})));
    }
    calls
}

/// The same 16 calls asked in one turn and one call per turn (17 model requests), with the
/// model answering in `model_ms`: the medians of both requests' times.
async fn one_turn_vs_one_call_per_turn(model_ms: u64, runs: usize) -> (Duration, Duration) {
    let corpus = common::registry_corpus();
    let calls = corpus_calls(&corpus);
    let n = calls.len();
    let mut one_turn = vec![
        Rule::openai(Response::tool_calls(calls.clone()).delay_ms(model_ms))
            .contains("all at once")
            .turn(0)
            .repeat(),
        Rule::openai(Response::text("Done.").delay_ms(model_ms))
            .contains("all at once")
            .turn(1)
            .repeat(),
    ];
    for (turn, call) in calls.into_iter().enumerate() {
        one_turn.push(
            Rule::openai(Response::tool_calls(vec![call]).delay_ms(model_ms))
                .contains("one by one")
                .turn(turn)
                .repeat(),
        );
    }
    one_turn.push(
        Rule::openai(Response::text("Done.").delay_ms(model_ms))
            .contains("one by one")
            .turn(n)
            .repeat(),
    );
    let model = MockModel::start(Script::new(one_turn)).await;
    let lanes = lanes(json!({}));
    let agent = agent_in(&corpus, &model, &lanes, None);
    // 16 results of up to 40 KB in one conversation: a window that holds them, so neither
    // side compacts (section 5 measures that).
    let mut config = Config::default();
    config.agent.max_turns = u32::try_from(2 * n).unwrap();
    config.llm.context_window = Some(100_000_000);
    agent.toolbox().config().replace(config);
    ask(&agent, "all at once").await;
    let (mut batched, mut spread) = (vec![], vec![]);
    for _ in 0..runs {
        let (outcome, events) = ask(&agent, "all at once").await;
        assert_eq!(finished(&events), n);
        batched.push(outcome.timings.total);
        let (outcome, events) = ask(&agent, "one by one").await;
        assert_eq!(finished(&events), n);
        spread.push(outcome.timings.total);
    }
    (median(batched), median(spread))
}

fn finished(events: &[AgentEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, AgentEvent::ToolCallFinished { .. }))
        .count()
}

/// Section 7.
async fn sixteen_calls_one_turn() {
    println!(
        "7. 8 greps + 8 reads over the registry corpus, in one turn vs one call per turn (medians of 3):"
    );
    println!("   | model per call | one turn | one call per turn | ratio | target |");
    println!("   |---:|---:|---:|---:|---:|");
    for model_ms in [0, MODEL_MS] {
        let (batched, spread) = one_turn_vs_one_call_per_turn(model_ms, 3).await;
        let ratio = batched.as_secs_f64() / spread.as_secs_f64();
        let verdict = if ratio <= 0.4 {
            "within ≤ 0.4"
        } else {
            "OVER 0.4"
        };
        println!(
            "   | {model_ms} ms | {:.0} ms | {:.0} ms | {ratio:.2} | {verdict} |",
            ms(batched),
            ms(spread)
        );
    }
}

fn main() {
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    if !only.is_empty() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            context_and_checkpoints(&only).await;
            if only.iter().any(|o| "turn".contains(o.as_str())) {
                sixteen_calls_one_turn().await;
            }
        });
        return;
    }
    main_sections();
}

/// Sections 5 and 6, or those of them `only` names.
async fn context_and_checkpoints(only: &[String]) {
    let wants = |key: &str| only.is_empty() || only.iter().any(|o| key.contains(o.as_str()));
    if wants("context") {
        println!(
            "5. context management's own time per turn (12 turns reading a 20 KiB file; model time excluded):"
        );
        println!("   | window | compactions | turn | of which context | with / without |");
        println!("   |---:|---:|---:|---:|---:|");
        for window in [1_000_000, 24_000] {
            let (whole, own, compactions) = context_per_turn(window).await;
            let without = whole.saturating_sub(own);
            println!(
                "   | {window} | {compactions} | {:.0} µs | {:.0} µs | {:.3}x |",
                whole.as_secs_f64() * 1e6,
                own.as_secs_f64() * 1e6,
                whole.as_secs_f64() / without.as_secs_f64()
            );
        }
    }
    if wants("checkpoint") {
        let (tools, kept) = checkpoint_per_call().await;
        let without = tools.saturating_sub(kept);
        println!(
            "6. a mutating call (write, 16 KiB) with its checkpoint: {:.0} µs, of which the checkpoint {:.0} µs: {:.3}x the call without it",
            tools.as_secs_f64() * 1e6,
            kept.as_secs_f64() * 1e6,
            tools.as_secs_f64() / without.as_secs_f64()
        );
    }
}

fn main_sections() {
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
        println!();
        context_and_checkpoints(&[]).await;
        println!();
        sixteen_calls_one_turn().await;
    });
}
