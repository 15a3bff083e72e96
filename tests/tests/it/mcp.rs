//! MCP servers nobody here wrote, through the agent and the lanes, against the mock model:
//! `@modelcontextprotocol/server-everything` (echo, progress, structured content, an error
//! result), `@modelcontextprotocol/server-filesystem` (two read-only calls of one turn
//! proven in flight at once with FIFOs, a true barrier), and a small server on the official
//! Python SDK that crashes, hangs and writes garbage (tests/fixtures/mcp/misbehaving.py).
//! `switchyard mcp` lists servers, and ignores those an untrusted workspace declares.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard::agent::{Agent, AgentEvent, AskContext, Session, StopReason};
use switchyard::approvals::{Approvals, Prompter};
use switchyard::config::Config;
use switchyard::documents::Documents;
use switchyard::edits::Applier;
use switchyard::lanes::{Lane, Lanes, LanesConfig};
use switchyard::llm::{Client, LlmConfig, ProviderKind, Secret};
use switchyard::mcp::{McpServerConfig, ServerState};
use switchyard::tools::{Mutations, Toolbox, Workspace};
use switchyard_tests::cli;
use switchyard_tests::mock_model::{MockModel, Response, Rule, Script, ToolCall};
use tokio::sync::mpsc;

/// No test waits longer than this for anything (Node servers take a second to start).
const DEADLINE: Duration = Duration::from_secs(60);

fn provisioned(var: &str) -> PathBuf {
    std::env::var_os(var)
        .unwrap_or_else(|| panic!("{var} is not set: source the file tests/provision prints"))
        .into()
}

/// A server of the npm package `@modelcontextprotocol/<package>`, run by Node 24.
fn node_server(package: &str, args: &[&str]) -> McpServerConfig {
    let script = provisioned("SWITCHYARD_MCP_MODULES")
        .join("@modelcontextprotocol")
        .join(package)
        .join("dist/index.js");
    let mut all = vec![script.display().to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    McpServerConfig {
        command: Some(provisioned("SWITCHYARD_NODE24").display().to_string()),
        args: all,
        startup_timeout_ms: DEADLINE.as_millis() as u64,
        ..McpServerConfig::default()
    }
}

/// server-everything over stdio, as the server `everything`.
fn everything() -> BTreeMap<String, McpServerConfig> {
    [(
        "everything".to_string(),
        node_server("server-everything", &["stdio"]),
    )]
    .into()
}

/// The misbehaving Python server, noting what happens to it in `notes`.
fn python_server(notes: &Path) -> McpServerConfig {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/mcp/misbehaving.py");
    McpServerConfig {
        command: Some(provisioned("SWITCHYARD_MCP_PYTHON").display().to_string()),
        args: vec![script.display().to_string()],
        env: [("MISBEHAVE_DIR".to_string(), notes.display().to_string())].into(),
        startup_timeout_ms: DEADLINE.as_millis() as u64,
        ..McpServerConfig::default()
    }
}

struct Setup {
    agent: Agent,
    lanes: Lanes,
    toolbox: Toolbox,
    root: tempfile::TempDir,
}

/// An agent over a fresh workspace with `servers`, answered by `model`; approvals allow what
/// the policy does not deny (`--yes`).
fn setup(model: &MockModel, servers: BTreeMap<String, McpServerConfig>) -> Setup {
    setup_for(model, servers, ProviderKind::OpenAi)
}

/// [`setup`] with the model spoken to in `provider`'s wire format.
fn setup_for(
    model: &MockModel,
    servers: BTreeMap<String, McpServerConfig>,
    provider: ProviderKind,
) -> Setup {
    let root = tempfile::tempdir().unwrap();
    let lanes = Lanes::new(LanesConfig::default()).unwrap();
    let config = Config {
        mcp_servers: servers,
        ..Config::default()
    };
    let workspace = Workspace::new([root.path().to_path_buf()]).unwrap();
    let toolbox = Toolbox::new(workspace, lanes.clone(), Documents::new(), config.clone());
    toolbox.set_mutations(Mutations {
        applier: Applier::Disk { dry_run: false },
        approvals: std::sync::Arc::new(Approvals::new(config, Prompter::AllowAll)),
    });
    let llm = LlmConfig {
        provider: Some(provider),
        base_url: Some(match provider {
            ProviderKind::Anthropic => model.anthropic_base_url(),
            _ => model.openai_base_url(),
        }),
        model: Some("mock-model".into()),
        api_key: Some(Secret::new("sk-test-key")),
        ..LlmConfig::default()
    };
    let client = Client::new(llm.resolve(&|_: &str| None).unwrap()).unwrap();
    let agent = Agent::with_client(toolbox.clone(), Ok(client), None);
    Setup {
        agent,
        lanes,
        toolbox,
        root,
    }
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

/// The OpenAI `tool` messages of a recorded request, by call id.
fn tool_results(body: &Value) -> BTreeMap<String, String> {
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

/// The tool names offered in a recorded request.
fn offered(body: &Value) -> Vec<String> {
    body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap().to_string())
        .collect()
}

/// The lane each call started in, by call id.
fn lanes_of(events: &[AgentEvent]) -> BTreeMap<String, Option<Lane>> {
    events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolCallStarted { call_id, lane, .. } => Some((call_id.clone(), *lane)),
            _ => None,
        })
        .collect()
}

/// Tasks running now in the Query lane.
fn query_running(lanes: &Lanes) -> u64 {
    lanes
        .metrics()
        .lanes
        .iter()
        .find(|m| m.lane == Lane::Query)
        .map_or(0, |m| m.running)
}

/// Polls `check` until it holds; panics after the deadline.
async fn until(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn everything_server_echo_progress_structured_content_and_an_error_reach_the_model() {
    let model = MockModel::start(Script::new(vec![
        Rule::openai(Response::tool_calls(vec![
            ToolCall::new("mcp__everything__echo", json!({"message": "hello"})).with_id("echo"),
            ToolCall::new(
                "mcp__everything__trigger-long-running-operation",
                json!({"duration": 0.2, "steps": 2}),
            )
            .with_id("long"),
            ToolCall::new(
                "mcp__everything__get-structured-content",
                json!({"location": "Chicago"}),
            )
            .with_id("weather"),
            ToolCall::new("mcp__everything__echo", json!({"wrong": 1})).with_id("bad"),
        ]))
        .turn(0),
        Rule::openai(Response::text("done")).turn(1),
    ]))
    .await;
    let s = setup(&model, everything());
    let session = s.agent.new_session().await.unwrap();
    let (outcome, events) = ask(&session, "Use the everything server.").await;
    assert_eq!(outcome.stop, StopReason::EndTurn);
    let requests = model.wait_for_requests(2, DEADLINE).await;
    let tools = offered(&requests[0].body);
    for name in [
        "read",
        "mcp__everything__echo",
        "mcp__everything__get-structured-content",
        "mcp__everything__trigger-long-running-operation",
    ] {
        assert!(tools.iter().any(|t| t == name), "{name} not in {tools:?}");
    }
    // The server's own schema is what the model sees.
    let echo = requests[0].body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["function"]["name"] == "mcp__everything__echo")
        .unwrap();
    assert_eq!(
        echo["function"]["parameters"]["properties"]["message"]["type"],
        "string"
    );
    let results = tool_results(&requests[1].body);
    assert_eq!(results["echo"], "Echo: hello");
    assert!(
        results["long"].contains("Long running operation completed"),
        "{}",
        results["long"]
    );
    let weather: Value = serde_json::from_str(
        results["weather"]
            .lines()
            .find(|l| l.starts_with('{'))
            .unwrap_or(&results["weather"]),
    )
    .unwrap_or(Value::Null);
    assert!(
        weather["temperature"].is_number() || results["weather"].contains("temperature"),
        "{}",
        results["weather"]
    );
    assert!(results["bad"].starts_with("error: "), "{}", results["bad"]);
    // Read-only tools ran in the Query lane.
    let lanes = lanes_of(&events);
    assert_eq!(lanes["echo"], Some(Lane::Query));
    assert_eq!(lanes["weather"], Some(Lane::Query));
}

/// Whether a reader has the FIFO at `path` open (opening it to write without blocking
/// fails with ENXIO until one has).
fn has_reader(path: &Path) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .is_ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_read_only_filesystem_calls_of_one_turn_are_in_flight_at_once() {
    let model = MockModel::start(Script::new(vec![
        Rule::openai(Response::tool_calls(vec![
            ToolCall::new("mcp__fs__read_text_file", json!({"path": "a.fifo"})).with_id("a"),
            ToolCall::new("mcp__fs__read_text_file", json!({"path": "b.fifo"})).with_id("b"),
        ]))
        .turn(0),
        Rule::openai(Response::text("both read")).turn(1),
    ]))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    for name in ["a.fifo", "b.fifo"] {
        let status = std::process::Command::new("mkfifo")
            .arg(root.join(name))
            .status()
            .unwrap();
        assert!(status.success());
    }
    let mut fs = node_server("server-filesystem", &[&root.display().to_string()]);
    fs.cwd = Some(root.clone());
    let s = setup(&model, [("fs".to_string(), fs)].into());
    let session = s.agent.new_session().await.unwrap();
    let run = tokio::spawn({
        let session = session.clone();
        async move { ask(&session, "Read both.").await }
    });
    // A read of a FIFO blocks until a writer comes: both readers open at once means both
    // calls are in the server at the same time — a barrier neither can pass alone.
    until("both FIFOs have a reader", || {
        has_reader(&root.join("a.fifo")) && has_reader(&root.join("b.fifo"))
    })
    .await;
    assert_eq!(query_running(&s.lanes), 2);
    for (name, text) in [("a.fifo", "alpha"), ("b.fifo", "beta")] {
        std::fs::write(root.join(name), text).unwrap();
    }
    let (outcome, events) = run.await.unwrap();
    assert_eq!(outcome.stop, StopReason::EndTurn);
    let requests = model.wait_for_requests(2, DEADLINE).await;
    let results = tool_results(&requests[1].body);
    assert_eq!(results["a"], "alpha");
    assert_eq!(results["b"], "beta");
    let lanes = lanes_of(&events);
    assert_eq!(lanes["a"], Some(Lane::Query));
    let _ = &s.root;
}

/// The misbehaving server's `tool`, then its `echo` in the next turn of the same run: what
/// the model was told of each, and the setup (for the server's status and notes).
async fn misbehave_then_echo(
    tool: &str,
    tool_timeout_ms: u64,
) -> (BTreeMap<String, String>, Setup, tempfile::TempDir) {
    let model = MockModel::start(Script::new(vec![
        Rule::openai(Response::tool_calls(vec![
            ToolCall::new(format!("mcp__py__{tool}"), json!({})).with_id(tool),
        ]))
        .turn(0),
        Rule::openai(Response::tool_calls(vec![
            ToolCall::new("mcp__py__echo", json!({"text": "still here"})).with_id("echo"),
        ]))
        .turn(1),
        Rule::openai(Response::text("went on")).turn(2),
    ]))
    .await;
    let notes = tempfile::tempdir().unwrap();
    let mut py = python_server(notes.path());
    py.tool_timeout_ms = tool_timeout_ms;
    let s = setup(&model, [("py".to_string(), py)].into());
    let session = s.agent.new_session().await.unwrap();
    let (outcome, _) = ask(&session, "Misbehave.").await;
    assert_eq!(outcome.text, "went on", "the session went on");
    let requests = model.wait_for_requests(3, DEADLINE).await;
    let results = tool_results(&requests[2].body);
    assert_eq!(results["echo"], "echo: still here");
    (results, s, notes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_server_fails_the_call_clearly_and_is_started_again() {
    let (results, s, notes) = misbehave_then_echo("crash", 60_000).await;
    assert!(
        results["crash"].starts_with("error: the MCP server `py` stopped during `crash`"),
        "{}",
        results["crash"]
    );
    assert!(notes.path().join("started-2").exists(), "started again");
    let status = s.toolbox.mcp().status();
    assert_eq!(status[0].state, ServerState::Running);
    assert_eq!(status[0].restarts, 1);
    assert!(
        status[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("stopped during `crash`")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_call_times_out_is_cancelled_at_the_server_and_the_session_goes_on() {
    let (results, _s, notes) = misbehave_then_echo("hang", 300).await;
    assert_eq!(
        results["hang"],
        "error: the MCP server `py` did not answer `hang` within 300 ms (mcp_servers.py.tool_timeout_ms); \
         the call was cancelled"
    );
    // notifications/cancelled reached the server: its handler was cancelled.
    let cancelled = notes.path().join("cancelled");
    until("the server saw the cancellation", || cancelled.exists()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_stdout_fails_the_call_clearly_and_the_session_goes_on() {
    let (results, _s, _notes) = misbehave_then_echo("garbage", 1_000).await;
    assert!(
        results["garbage"].starts_with("error: the MCP server `py` "),
        "{}",
        results["garbage"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_run_sends_cancelled_to_the_server() {
    let model = MockModel::start(Script::new(vec![
        Rule::openai(Response::tool_calls(vec![
            ToolCall::new("mcp__py__hang", json!({})).with_id("hang"),
        ]))
        .turn(0),
    ]))
    .await;
    let notes = tempfile::tempdir().unwrap();
    let s = setup(
        &model,
        [("py".to_string(), python_server(notes.path()))].into(),
    );
    let session = s.agent.new_session().await.unwrap();
    let run = tokio::spawn({
        let session = session.clone();
        async move { ask(&session, "Hang.").await }
    });
    until("the call runs", || query_running(&s.lanes) == 1).await;
    assert!(session.cancel());
    let (outcome, _) = run.await.unwrap();
    assert_eq!(outcome.stop, StopReason::Cancelled);
    let cancelled = notes.path().join("cancelled");
    until("the server saw the cancellation", || cancelled.exists()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_that_is_not_read_only_runs_alone_after_approval_with_only_the_configured_env() {
    let model = MockModel::start(Script::new(vec![
        Rule::openai(Response::tool_calls(vec![
            ToolCall::new("mcp__py__env", json!({})).with_id("env"),
        ]))
        .turn(0),
        Rule::openai(Response::text("seen")).turn(1),
    ]))
    .await;
    let notes = tempfile::tempdir().unwrap();
    let s = setup(
        &model,
        [("py".to_string(), python_server(notes.path()))].into(),
    );
    let session = s.agent.new_session().await.unwrap();
    let (_, events) = ask(&session, "Env.").await;
    assert_eq!(lanes_of(&events)["env"], Some(Lane::Execute));
    let requests = model.wait_for_requests(2, DEADLINE).await;
    let results = tool_results(&requests[1].body);
    let names: Vec<&str> = results["env"].split(' ').collect();
    assert!(names.contains(&"MISBEHAVE_DIR"), "{names:?}");
    // Only the safe basics besides what was configured: nothing of the test's environment
    // (SWITCHYARD_*, keys, tokens) reaches the server.
    for name in &names {
        assert!(
            [
                "PATH",
                "HOME",
                "USER",
                "LOGNAME",
                "SHELL",
                "LANG",
                "TERM",
                "TMPDIR",
                "TZ",
                "MISBEHAVE_DIR"
            ]
            .contains(name)
                || name.starts_with("LC_"),
            "{name} reached the server: {names:?}"
        );
    }
}

#[test]
fn switchyard_mcp_lists_servers_and_ignores_those_an_untrusted_workspace_declares() {
    let home = tempfile::tempdir().unwrap();
    let notes = tempfile::tempdir().unwrap();
    let workspace = tempfile::tempdir().unwrap();
    let py = python_server(notes.path());
    let user = toml::to_string(&json!({
        "mcp_servers": {
            "py": {"command": py.command, "args": py.args, "env": py.env},
            "broken": {"command": py.command, "args": py.args, "env": {"MISBEHAVE_ON_START": "crash", "MISBEHAVE_DIR": notes.path()}},
        }
    }))
    .unwrap();
    std::fs::create_dir_all(home.path().join("config/switchyard")).unwrap();
    std::fs::write(home.path().join("config/switchyard/config.toml"), user).unwrap();
    let marker = workspace.path().join("pwned");
    std::fs::write(
        workspace.path().join(".switchyard.toml"),
        format!(
            "[mcp_servers.evil]\ncommand = \"touch\"\nargs = [\"{}\"]\n",
            marker.display()
        ),
    )
    .unwrap();
    let mut command = cli::switchyard(
        home.path(),
        &["mcp", "--path", &workspace.path().display().to_string()],
    );
    command.current_dir(workspace.path());
    let out = cli::run(command, DEADLINE);
    assert_eq!(out.code, Some(1), "a server failed: {out:?}");
    assert!(
        out.stderr.contains("ignored mcp_servers.evil from"),
        "{}",
        out.stderr
    );
    assert!(
        !marker.exists(),
        "the untrusted workspace started a process"
    );
    assert!(
        out.stdout.contains("py: running, 5 tools"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("  mcp__py__echo (read-only)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("  mcp__py__env (runs, destructive)"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("broken: failed, 0 tools"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("last error: the MCP server `broken` failed to initialize"),
        "{}",
        out.stdout
    );
}

/// server-everything in streamable HTTP mode on a free loopback port (see
/// tests/fixtures/mcp/loopback.mjs: it listens on 127.0.0.1 only and exits when its stdin
/// closes), killed by PID when dropped.
struct HttpEverything {
    child: std::process::Child,
    url: String,
}

impl HttpEverything {
    fn start() -> HttpEverything {
        use std::io::BufRead;
        let script = provisioned("SWITCHYARD_MCP_MODULES")
            .join("@modelcontextprotocol/server-everything/dist/index.js");
        let preload = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/mcp/loopback.mjs");
        let mut child = std::process::Command::new(provisioned("SWITCHYARD_NODE24"))
            .arg("--import")
            .arg(format!("file://{}", preload.display()))
            .arg(script)
            .arg("streamableHttp")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(port) = line.strip_prefix("LISTENING ") {
                    let _ = tx.send(port.trim().to_string());
                }
            }
        });
        let port = rx
            .recv_timeout(DEADLINE)
            .expect("server-everything listens");
        HttpEverything {
            child,
            url: format!("http://127.0.0.1:{port}/mcp"),
        }
    }
}

impl Drop for HttpEverything {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The progress reports of call `id`, as `(progress, total)`.
fn progress_of(events: &[AgentEvent], id: &str) -> Vec<(f64, Option<f64>)> {
    events
        .iter()
        .filter_map(|e| match e {
            AgentEvent::ToolCallProgress {
                call_id,
                progress,
                total,
                ..
            } if call_id == id => Some((*progress, *total)),
            _ => None,
        })
        .collect()
}

/// Progress reports of a call of `total` steps: at least the first steps, in order.
fn assert_steps(reports: &[(f64, Option<f64>)], total: f64) {
    assert!(reports.len() >= 2, "{reports:?}");
    for (i, (progress, of)) in reports.iter().enumerate() {
        assert_eq!(
            (*progress, *of),
            ((i + 1) as f64, Some(total)),
            "{reports:?}"
        );
    }
}

/// One turn calling echo and the long-running tool of the server `name`, then its answer.
fn echo_and_long_running(server: &str) -> Script {
    Script::new(vec![
        Rule::openai(Response::tool_calls(vec![
            ToolCall::new(
                format!("mcp__{server}__echo"),
                json!({"message": "over the wire"}),
            )
            .with_id("echo"),
            ToolCall::new(
                format!("mcp__{server}__trigger-long-running-operation"),
                json!({"duration": 0.3, "steps": 3}),
            )
            .with_id("long"),
        ]))
        .turn(0),
        Rule::openai(Response::text("done")).turn(1),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamable_http_server_answers_and_reports_progress() {
    let everything = HttpEverything::start();
    let model = MockModel::start(echo_and_long_running("remote")).await;
    let remote = McpServerConfig {
        url: Some(everything.url.clone()),
        headers: [("X-Switchyard-Test".to_string(), "1".to_string())].into(),
        startup_timeout_ms: DEADLINE.as_millis() as u64,
        ..McpServerConfig::default()
    };
    let s = setup(&model, [("remote".to_string(), remote)].into());
    let session = s.agent.new_session().await.unwrap();
    let (outcome, events) = ask(&session, "Use the remote server.").await;
    assert_eq!(outcome.stop, StopReason::EndTurn);
    let requests = model.wait_for_requests(2, DEADLINE).await;
    let results = tool_results(&requests[1].body);
    assert_eq!(results["echo"], "Echo: over the wire");
    assert!(
        results["long"].contains("Long running operation completed"),
        "{}",
        results["long"]
    );
    // The steps' notifications/progress became progress events of that call, in order (a
    // report racing the answer itself is of no use and may be dropped).
    assert_steps(&progress_of(&events, "long"), 3.0);
    assert!(progress_of(&events, "echo").is_empty());
    let status = s.toolbox.mcp().status();
    assert_eq!(status[0].state, ServerState::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdio_server_reports_progress_of_a_long_running_call() {
    let model = MockModel::start(echo_and_long_running("everything")).await;
    let s = setup(&model, everything());
    let session = s.agent.new_session().await.unwrap();
    let (_, events) = ask(&session, "Go.").await;
    assert_steps(&progress_of(&events, "long"), 3.0);
    // Between the call's start and its end.
    let at = |wanted: &dyn Fn(&AgentEvent) -> bool| events.iter().position(wanted).unwrap();
    let started =
        at(&|e| matches!(e, AgentEvent::ToolCallStarted { call_id, .. } if call_id == "long"));
    let first =
        at(&|e| matches!(e, AgentEvent::ToolCallProgress { call_id, .. } if call_id == "long"));
    let finished =
        at(&|e| matches!(e, AgentEvent::ToolCallFinished { call_id, .. } if call_id == "long"));
    assert!(started < first && first < finished, "{events:?}");
}

/// Reads one HTTP request head from a connection to `listener`.
async fn request_head(listener: &tokio::net::TcpListener) -> String {
    use tokio::io::AsyncReadExt;
    let (mut stream, _) = listener.accept().await.unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(n > 0, "the connection closed before the request head ended");
        head.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&head).to_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_headers_carry_tokens_read_from_the_environment_by_name() {
    // A listener that only records what is sent: the token is the value of the variable
    // named (PATH: set in every test's environment, and never written in a config).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/mcp", listener.local_addr().unwrap());
    let path = std::env::var("PATH").unwrap();
    let server = McpServerConfig {
        url: Some(url),
        headers: [("X-Team".to_string(), "core".to_string())].into(),
        env_headers: [("X-Api-Key".to_string(), "PATH".to_string())].into(),
        bearer_token_env_var: Some("PATH".into()),
        startup_timeout_ms: 5_000,
        ..McpServerConfig::default()
    };
    let model = MockModel::start(Script::new(vec![])).await;
    let s = setup(&model, [("remote".to_string(), server)].into());
    let mcp = s.toolbox.mcp().clone();
    let start = tokio::spawn(async move { mcp.start_all(None).await });
    let head = tokio::time::timeout(DEADLINE, request_head(&listener))
        .await
        .expect("the server was reached");
    assert!(head.starts_with("post /mcp "), "{head}");
    let path = path.to_lowercase();
    assert!(
        head.contains(&format!("authorization: bearer {path}\r\n")),
        "{head}"
    );
    assert!(head.contains(&format!("x-api-key: {path}\r\n")), "{head}");
    assert!(head.contains("x-team: core\r\n"), "{head}");
    drop(listener);
    let _ = start.await;

    // A variable that is not set: the server fails to start, saying which.
    let missing = McpServerConfig {
        url: Some("http://127.0.0.1:9/mcp".into()),
        bearer_token_env_var: Some("SWITCHYARD_TEST_UNSET_TOKEN".into()),
        ..McpServerConfig::default()
    };
    let s = setup(&model, [("remote".to_string(), missing)].into());
    s.toolbox.mcp().start_all(None).await;
    let status = s.toolbox.mcp().status();
    assert_eq!(status[0].state, ServerState::Failed);
    assert_eq!(
        status[0].last_error.as_deref(),
        Some(
            "the MCP server `remote` needs the environment variable `SWITCHYARD_TEST_UNSET_TOKEN` \
             (mcp_servers.remote.bearer_token_env_var), which is not set"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_described_and_embedded_resources_quoted_for_a_text_only_provider() {
    let model = MockModel::start(Script::new(vec![
        Rule::openai(Response::tool_calls(vec![
            ToolCall::new("mcp__everything__get-tiny-image", json!({})).with_id("image"),
            ToolCall::new(
                "mcp__everything__get-resource-reference",
                json!({"resourceType": "Text", "resourceId": 1}),
            )
            .with_id("resource"),
        ]))
        .turn(0),
        Rule::openai(Response::text("seen")).turn(1),
    ]))
    .await;
    let s = setup(&model, everything());
    let session = s.agent.new_session().await.unwrap();
    ask(&session, "Show me.").await;
    let requests = model.wait_for_requests(2, DEADLINE).await;
    let results = tool_results(&requests[1].body);
    // OpenAI's tool messages take text only: the image is said, not sent.
    let image = &results["image"];
    assert!(
        image.starts_with("Here's the image you requested:\n[image: image/png, about "),
        "{image}"
    );
    assert!(
        image.ends_with("bytes, not shown]\nThe image above is the MCP logo."),
        "{image}"
    );
    let resource = &results["resource"];
    assert!(
        resource.contains("[resource demo://resource/"),
        "{resource}"
    );
    assert!(
        resource.contains("You can access this resource using the URI"),
        "{resource}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_reach_an_anthropic_model_as_image_blocks_where_they_stand_in_the_result() {
    let model = MockModel::start(Script::new(vec![
        Rule::anthropic(Response::tool_calls(vec![
            ToolCall::new("mcp__everything__get-tiny-image", json!({})).with_id("image"),
        ]))
        .turn(0),
        Rule::anthropic(Response::text("seen")).turn(1),
    ]))
    .await;
    let s = setup_for(&model, everything(), ProviderKind::Anthropic);
    let session = s.agent.new_session().await.unwrap();
    ask(&session, "Show me.").await;
    let requests = model.wait_for_requests(2, DEADLINE).await;
    let result = requests[1]
        .messages()
        .iter()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .find(|b| b["type"] == "tool_result" && b["tool_use_id"] == "image")
        .unwrap_or_else(|| panic!("no tool result: {}", requests[1].body))
        .clone();
    let blocks = result["content"].as_array().unwrap();
    assert_eq!(blocks.len(), 3, "{result}");
    assert_eq!(
        blocks[0],
        json!({"type": "text", "text": "Here's the image you requested:"})
    );
    assert_eq!(blocks[1]["type"], "image");
    assert_eq!(blocks[1]["source"]["type"], "base64");
    assert_eq!(blocks[1]["source"]["media_type"], "image/png");
    // PNG's signature, base64-encoded: the server's bytes, as sent.
    assert!(
        blocks[1]["source"]["data"]
            .as_str()
            .unwrap()
            .starts_with("iVBORw0KGgo"),
        "{}",
        blocks[1]
    );
    assert_eq!(
        blocks[2],
        json!({"type": "text", "text": "The image above is the MCP logo."})
    );
    // The session keeps the image; the history read back is what was sent.
    let history = session.history().await;
    let kept = history.iter().find_map(|m| match m {
        switchyard::llm::Message::ToolResult { images, .. } if !images.is_empty() => {
            Some(images.clone())
        }
        _ => None,
    });
    assert_eq!(
        kept.map(|i| i[0].media_type.clone()).as_deref(),
        Some("image/png")
    );
}

/// The processes below `pid` whose command line contains `needle`.
fn descendants_running(pid: u32, needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    let mut queue = vec![pid];
    while let Some(parent) = queue.pop() {
        let tasks = std::fs::read_dir(format!("/proc/{parent}/task"))
            .into_iter()
            .flatten();
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
                let cmdline = std::fs::read(format!("/proc/{child}/cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(needle) {
                    found.push(child);
                }
                queue.push(child);
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acp_session_s_own_server_is_offered_to_it_alone_and_stops_when_it_closes() {
    use crate::agent_acp::{Agent, Env, initialize, new_session};
    let model = MockModel::start(Script::new(vec![
        Rule::openai(Response::tool_calls(vec![
            ToolCall::new(
                "mcp__everything__echo",
                json!({"message": "from the editor"}),
            )
            .with_id("echo"),
        ]))
        .contains("Echo it")
        .turn(0),
        Rule::openai(Response::text("echoed")).turn(1),
        Rule::openai(Response::text("nothing to echo with"))
            .contains("Anything?")
            .turn(0),
    ]))
    .await;
    let env = Env::new();
    let mut agent = Agent::start(&env, &model);
    initialize(&mut agent, json!({}));
    let everything = node_server("server-everything", &["stdio"]);
    agent.request(
        1,
        "session/new",
        json!({"cwd": env.root(), "mcpServers": [{
            "name": "everything",
            "command": everything.command.unwrap(),
            "args": everything.args,
            "env": [{"name": "EVERYTHING_FROM_ACP", "value": "1"}],
        }]}),
    );
    let answer = agent.answer(1);
    let own = answer["result"]["sessionId"].as_str().unwrap().to_string();
    let other = new_session(&mut agent, 2, &env.root());

    let prompt = |session: &str, text: &str| json!({"sessionId": session, "prompt": [{"type": "text", "text": text}]});
    agent.request(3, "session/prompt", prompt(&own, "Echo it"));
    let seen = agent.until_answer(3);
    let done = seen.last().unwrap();
    assert_eq!(done["result"]["stopReason"], "end_turn", "{done}");
    let requests = model.wait_for_requests(2, DEADLINE).await;
    assert!(
        offered(&requests[0].body).contains(&"mcp__everything__echo".to_string()),
        "{:?}",
        offered(&requests[0].body)
    );
    assert_eq!(
        tool_results(&requests[1].body)["echo"],
        "Echo: from the editor"
    );
    // The call went through the lanes, shown as any tool call is.
    assert!(
        seen.iter()
            .any(|m| m["params"]["update"]["sessionUpdate"] == "tool_call"
                && m["params"]["update"]["toolCallId"] == "echo"),
        "{seen:?}"
    );

    agent.request(4, "session/prompt", prompt(&other, "Anything?"));
    let done = agent.answer(4);
    assert_eq!(done["result"]["stopReason"], "end_turn", "{done}");
    let requests = model.wait_for_requests(3, DEADLINE).await;
    let tools = offered(&requests[2].body);
    assert!(tools.iter().any(|t| t == "read"), "{tools:?}");
    assert!(
        !tools.iter().any(|t| t.starts_with("mcp__")),
        "another session's server leaked: {tools:?}"
    );

    // Closing the session stops its server.
    let script = "server-everything";
    assert!(!descendants_running(agent.pid(), script).is_empty());
    agent.request(5, "session/close", json!({"sessionId": own}));
    assert!(agent.answer(5).get("result").is_some());
    until("the session's server has stopped", || {
        descendants_running(agent.pid(), script).is_empty()
    })
    .await;
}

/// `switchyard.mcpStatus` over LSP, once `ok` holds of it.
async fn lsp_status_until(
    client: &switchyard_tests::lsp_client::LspClient,
    start: bool,
    what: &str,
    ok: impl Fn(&[switchyard::mcp::ServerStatus]) -> bool,
) -> Vec<switchyard::mcp::ServerStatus> {
    use switchyard::lsp::ext::{McpStatus, McpStatusParams};
    let begun = Instant::now();
    loop {
        let status = client
            .command::<McpStatus>(McpStatusParams { start })
            .await
            .unwrap()
            .servers;
        if ok(&status) {
            return status;
        }
        assert!(begun.elapsed() < DEADLINE, "never saw {what}: {status:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The pid each start of the misbehaving server noted, in order.
fn started(notes: &Path) -> Vec<u32> {
    (1..)
        .map_while(|n| std::fs::read_to_string(notes.join(format!("started-{n}"))).ok())
        .map(|pid| pid.trim().parse().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editor_settings_add_servers_and_a_changed_one_is_started_again() {
    use switchyard_tests::lsp_client::lsp_types::DidChangeConfigurationParams;
    use switchyard_tests::lsp_client::lsp_types::notification::DidChangeConfiguration;
    use switchyard_tests::lsp_client::{ClientOptions, LspClient};
    let dir = tempfile::tempdir().unwrap();
    let notes = tempfile::tempdir().unwrap();
    let py = python_server(notes.path());
    let settings = |mark: &str| {
        json!({"mcp_servers": {"py": {
            "command": py.command,
            "args": py.args,
            "env": {"MISBEHAVE_DIR": notes.path(), "MARK": mark},
            "startup_timeout_ms": DEADLINE.as_millis() as u64,
        }}})
    };
    let mut options = ClientOptions::new(dir.path());
    options.initialization_options = Some(settings("first"));
    let (client, _) = LspClient::initialized(options).await;
    // The editor's settings are the user's: no trust asked, the server starts on first use.
    let status = lsp_status_until(&client, true, "the editor's server running", |s| {
        s.len() == 1 && s[0].state == ServerState::Running
    })
    .await;
    assert_eq!(status[0].name, "py");
    assert!(
        status[0].tools.iter().any(|t| t.name == "mcp__py__echo"),
        "{status:?}"
    );
    let first = started(notes.path());
    assert_eq!(first.len(), 1);

    let push = |settings: Value| {
        client
            .server
            .notify::<DidChangeConfiguration>(DidChangeConfigurationParams {
                settings: json!({ "switchyard": settings }),
            })
            .unwrap();
    };
    // A changed server is stopped and started again, without waiting for a call.
    push(settings("second"));
    until("the changed server started again", || {
        started(notes.path()).len() == 2
    })
    .await;
    until("the old process gone", || {
        !Path::new(&format!("/proc/{}", first[0])).exists()
    })
    .await;
    lsp_status_until(&client, false, "the new server running", |s| {
        s.len() == 1 && s[0].state == ServerState::Running
    })
    .await;

    // Turned off, it stops.
    let second = started(notes.path())[1];
    push(json!({"mcp_servers": {"py": {"enabled": false}}}));
    lsp_status_until(&client, false, "the server disabled", |s| {
        s.len() == 1 && s[0].state == ServerState::Disabled
    })
    .await;
    until("the disabled server's process gone", || {
        !Path::new(&format!("/proc/{second}")).exists()
    })
    .await;
    client.shutdown_and_exit().await;
}
