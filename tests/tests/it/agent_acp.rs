//! `switchyard acp` end to end: the real binary on stdio against the mock model.
//!
//! - raw JSON lines: every kind of bad input gets its precise JSON-RPC error and the agent
//!   keeps serving; a prompt with parallel reads, an edit asked through
//!   `session/request_permission` and the streamed updates in order;
//! - the official TypeScript SDK (`@agentclientprotocol/sdk`, its `ClientSideConnection`)
//!   in `tests/acp/sdk_client.mjs`: unsaved buffers served by `fs/read_text_file`, the
//!   edit received by `fs/write_text_file` with the disk untouched, `session/cancel`
//!   mid-stream, `session/load` replaying the conversation, garbage on the wire;
//! - `acpx`, the headless ACP client: `acpx --agent 'switchyard acp' exec ...` with a
//!   prompt whose answer reads and greps in parallel and then edits.
//!
//! The node clients are installed by `tests/provision` (`$SWITCHYARD_ACP_MODULES`); node is
//! `$SWITCHYARD_NODE24`.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_tests::cli;
use switchyard_tests::mock_model::{MockModel, MockOptions, Response, Rule, Script, ToolCall};

/// The longest any one exchange may take before the test fails (a hang guard, not a
/// timing).
const DEADLINE: Duration = Duration::from_secs(60);

/// A workspace and a private state and config home.
pub(crate) struct Env {
    root: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Env {
    pub(crate) fn new() -> Env {
        let root = tempfile::tempdir().unwrap();
        switchyard_tests::hello_workspace(root.path());
        Env {
            root,
            home: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn root(&self) -> PathBuf {
        self.root.path().canonicalize().unwrap()
    }

    /// `switchyard ARGS` pointed at `model`.
    fn switchyard(&self, model: &MockModel, args: &[&str]) -> Command {
        let command = cli::switchyard(self.home.path(), args);
        self.configure(command, model)
    }

    /// `program ARGS` (a client that starts `switchyard acp`) with the environment
    /// `switchyard` needs to reach `model` and keep its state under the private home.
    fn client(&self, model: &MockModel, program: &Path, args: &[&str]) -> Command {
        let mut command = cli::switchyard(self.home.path(), args);
        let mut client = Command::new(program);
        client.args(args);
        for (key, value) in command.get_envs() {
            match value {
                Some(value) => client.env(key, value),
                None => client.env_remove(key),
            };
        }
        command = client;
        command
            .env("SWITCHYARD_BIN", switchyard_tests::switchyard_bin())
            .env("SWITCHYARD_ACP_MODULES", acp_modules());
        self.configure(command, model)
    }

    fn configure(&self, mut command: Command, model: &MockModel) -> Command {
        command
            .env("SWITCHYARD_PROVIDER", "openai")
            .env("SWITCHYARD_MODEL", "mock-model")
            .env("OPENAI_BASE_URL", model.openai_base_url())
            .env("OPENAI_API_KEY", "sk-acp-key")
            .env("SWITCHYARD_LANES__GENERATE__RETRY__BASE_DELAY_MS", "10")
            .current_dir(self.root.path());
        command
    }
}

/// Where `tests/provision` installed the ACP clients.
fn acp_modules() -> PathBuf {
    if let Some(dir) = std::env::var_os("SWITCHYARD_ACP_MODULES") {
        return dir.into();
    }
    let cache = std::env::var_os("SWITCHYARD_CACHE").map_or_else(
        || {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/switchyard-tests")
        },
        PathBuf::from,
    );
    cache.join("acp/node_modules")
}

fn node() -> PathBuf {
    std::env::var_os("SWITCHYARD_NODE24").map_or_else(|| "node".into(), PathBuf::from)
}

/// Runs one scenario of `tests/acp/sdk_client.mjs` and returns what the client observed.
fn sdk(env: &Env, model: &MockModel, scenario: &str, extra: &[&str]) -> Value {
    sdk_with(env, model, scenario, extra, &[])
}

/// [`sdk`] with more environment variables for the agent.
fn sdk_with(
    env: &Env,
    model: &MockModel,
    scenario: &str,
    extra: &[&str],
    vars: &[(&str, &str)],
) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("acp/sdk_client.mjs");
    let root = env.root();
    let mut args = vec![script.to_str().unwrap(), scenario, root.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut command = env.client(model, &node(), &args);
    command.envs(vars.iter().copied());
    let out = cli::run(command, DEADLINE);
    assert_eq!(
        out.code,
        Some(0),
        "sdk_client {scenario}: stdout {} stderr {}",
        out.stdout,
        out.stderr
    );
    serde_json::from_str(out.stdout.lines().last().unwrap_or_default()).unwrap_or_else(|e| {
        panic!(
            "sdk_client {scenario} printed no report ({e}): {}",
            out.stdout
        )
    })
}

/// What the model was told of the first tool result in its request number `i`.
fn tool_result(model: &MockModel, i: usize) -> String {
    let request = &model.requests()[i];
    let result = request
        .messages()
        .iter()
        .find(|m| m["role"] == "tool")
        .unwrap_or_else(|| panic!("no tool result in request {i}: {:?}", request.messages()));
    result["content"].as_str().unwrap().to_string()
}

/// What the model was told of every tool result in its request number `i`, in order.
fn tool_results(model: &MockModel, i: usize) -> Vec<String> {
    model.requests()[i]
        .messages()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap().to_string())
        .collect()
}

/// The kinds of a list of session updates, with the tool call and status where they have
/// them: `tool_call call_1 read pending`.
fn shapes(updates: &[Value]) -> Vec<String> {
    updates
        .iter()
        .map(|u| {
            let kind = u["sessionUpdate"].as_str().unwrap();
            let id = u["toolCallId"].as_str().unwrap_or_default();
            // `pending` is the default status, left out on the wire.
            let status = u["status"].as_str().unwrap_or("pending");
            match kind {
                "tool_call" => format!("tool_call {id} {} {status}", u["kind"].as_str().unwrap()),
                "tool_call_update" => format!("tool_call_update {id} {status}"),
                other => other.to_string(),
            }
        })
        .collect()
}

/// `switchyard acp` driven line by line.
pub(crate) struct Agent {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<Value>,
}

impl Agent {
    pub(crate) fn start(env: &Env, model: &MockModel) -> Agent {
        Agent::start_with(env, model, &[])
    }

    /// [`Agent::start`] with more environment variables.
    fn start_with(env: &Env, model: &MockModel, vars: &[(&str, &str)]) -> Agent {
        let mut command = env.switchyard(model, &["acp"]);
        command.envs(vars.iter().copied());
        Agent::spawn(command)
    }

    /// `command` (a `switchyard acp`) started and driven line by line.
    fn spawn(mut command: Command) -> Agent {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("switchyard acp starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let value: Value = serde_json::from_str(&line).unwrap_or_else(|e| {
                    panic!("the agent wrote a line that is not JSON ({e}): {line}")
                });
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
        Agent {
            child,
            stdin,
            lines,
        }
    }

    /// The process id of `switchyard acp`.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.stdin.write_all(bytes).unwrap();
        self.stdin.flush().unwrap();
    }

    fn send(&mut self, message: Value) {
        let mut line = serde_json::to_vec(&message).unwrap();
        line.push(b'\n');
        self.raw(&line);
    }

    pub(crate) fn request(&mut self, id: i64, method: &str, params: Value) {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
    }

    fn next(&self) -> Value {
        self.lines
            .recv_timeout(DEADLINE)
            .expect("the agent answers within the deadline")
    }

    /// Messages up to and including the answer to request `id`.
    pub(crate) fn until_answer(&self, id: i64) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let message = self.next();
            let done = message.get("id") == Some(&json!(id)) && message.get("method").is_none();
            seen.push(message);
            if done {
                return seen;
            }
        }
    }

    pub(crate) fn answer(&self, id: i64) -> Value {
        self.until_answer(id).pop().unwrap()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn initialize(agent: &mut Agent, client_capabilities: Value) -> Value {
    agent.request(
        0,
        "initialize",
        json!({"protocolVersion": 1, "clientCapabilities": client_capabilities}),
    );
    agent.answer(0)
}

pub(crate) fn new_session(agent: &mut Agent, id: i64, cwd: &Path) -> String {
    agent.request(id, "session/new", json!({"cwd": cwd, "mcpServers": []}));
    let answer = agent.answer(id);
    answer["result"]["sessionId"]
        .as_str()
        .unwrap_or_else(|| panic!("session/new answered {answer}"))
        .to_string()
}

fn error_of(message: &Value) -> (i64, String) {
    (
        message["error"]["code"]
            .as_i64()
            .unwrap_or_else(|| panic!("not an error: {message}")),
        message["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test]
async fn bad_input_gets_precise_errors_and_the_agent_keeps_serving() {
    let env = Env::new();
    let model = MockModel::start(Script::new(vec![])).await;
    let mut agent = Agent::start(&env, &model);

    agent.raw(b"{this is not json\n");
    let (code, message) = error_of(&agent.next());
    assert_eq!(code, -32700, "{message}");
    assert!(message.starts_with("parse error"), "{message}");

    agent.raw(b"[1, 2]\n");
    assert_eq!(error_of(&agent.next()).0, -32600);

    agent.send(json!({"id": 5, "method": "initialize"}));
    let reply = agent.next();
    assert_eq!(
        reply["id"], 5,
        "the id of a usable request is kept: {reply}"
    );
    assert_eq!(
        error_of(&reply),
        (-32600, "invalid request: `jsonrpc` must be \"2.0\"".into())
    );

    let init = initialize(&mut agent, json!({}));
    let result = &init["result"];
    assert_eq!(result["protocolVersion"], 1, "{init}");
    assert_eq!(result["agentCapabilities"]["loadSession"], true);
    assert_eq!(
        result["agentCapabilities"]["promptCapabilities"]["embeddedContext"],
        true
    );
    assert_eq!(result["agentInfo"]["name"], "switchyard");
    assert!(
        result["authMethods"][0]["description"]
            .as_str()
            .unwrap()
            .contains("OPENAI_API_KEY"),
        "{init}"
    );

    agent.request(1, "session/frobnicate", json!({}));
    let (code, message) = error_of(&agent.answer(1));
    assert_eq!(code, -32601);
    assert!(message.contains("session/frobnicate"), "{message}");

    agent.request(
        2,
        "session/prompt",
        json!({"sessionId": "nope", "prompt": [{"type": "text", "text": "hi"}]}),
    );
    let (code, message) = error_of(&agent.answer(2));
    assert_eq!(code, -32002, "{message}");
    assert_eq!(
        message,
        "unknown session `nope`: start one with session/new or session/load"
    );

    // Stdio and streamable HTTP servers are taken; SSE is not offered, and refused by name.
    assert_eq!(
        result["agentCapabilities"]["mcpCapabilities"],
        json!({"http": true, "sse": false})
    );
    agent.request(
        3,
        "session/new",
        json!({"cwd": env.root(), "mcpServers": [
            {"type": "sse", "name": "old", "url": "http://127.0.0.1:9/sse", "headers": []}
        ]}),
    );
    let (code, message) = error_of(&agent.answer(3));
    assert_eq!(
        (code, message.as_str()),
        (
            -32602,
            "mcpServers: `old` is an SSE server (http://127.0.0.1:9/sse); switchyard connects to MCP \
             servers over stdio and streamable HTTP only (agentCapabilities.mcpCapabilities.sse is false)"
        )
    );

    agent.request(
        4,
        "session/new",
        json!({"cwd": "relative/dir", "mcpServers": []}),
    );
    let (code, message) = error_of(&agent.answer(4));
    assert_eq!(
        (code, message.as_str()),
        (-32602, "cwd must be an absolute path, got `relative/dir`")
    );

    agent.request(6, "session/prompt", json!({"sessionId": 7}));
    assert_eq!(
        error_of(&agent.answer(6)).0,
        -32602,
        "a payload of the wrong shape"
    );

    // Still serving.
    let session = new_session(&mut agent, 8, &env.root());
    assert!(!session.is_empty());
}

#[tokio::test]
async fn a_prompt_streams_tool_calls_asks_permission_and_edits() {
    let env = Env::new();
    let model = MockModel::start(Script::new(vec![
        Rule::openai(
            Response::tool_calls(vec![
                ToolCall::new("read", json!({"path": "src/main.rs"})).with_id("call_read"),
                ToolCall::new("grep", json!({"pattern": "hello"})).with_id("call_grep"),
            ])
            .with_text("Let me look."),
        )
        .turn(0),
        Rule::openai(Response::tool_calls(vec![
            ToolCall::new(
                "edit",
                json!({"path": "src/main.rs", "old_string": "hello", "new_string": "goodbye"}),
            )
            .with_id("call_edit"),
        ]))
        .turn(1),
        Rule::openai(Response::text("It says goodbye now.")).turn(2),
        Rule::openai(Response::text("Second answer.")).turn(3),
    ]))
    .await;
    let mut agent = Agent::start(&env, &model);
    initialize(&mut agent, json!({}));
    let session = new_session(&mut agent, 1, &env.root());
    agent.request(
        2,
        "session/prompt",
        json!({"sessionId": session, "prompt": [{"type": "text", "text": "Say goodbye"}]}),
    );
    let mut updates = Vec::new();
    let answer = loop {
        let message = agent.next();
        match message["method"].as_str() {
            Some("session/update") => {
                assert_eq!(message["params"]["sessionId"], session.as_str());
                updates.push(message["params"]["update"].clone());
            }
            Some("session/request_permission") => {
                let params = &message["params"];
                assert_eq!(params["toolCall"]["toolCallId"], "call_edit", "{message}");
                let kinds: Vec<&str> = params["options"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| o["kind"].as_str().unwrap())
                    .collect();
                assert_eq!(
                    kinds,
                    ["allow_once", "allow_always", "reject_once", "reject_always"]
                );
                // A second prompt while this one runs is refused, and the run goes on.
                agent.request(
                    3,
                    "session/prompt",
                    json!({"sessionId": session, "prompt": [{"type": "text", "text": "again"}]}),
                );
                let busy = agent.next();
                assert_eq!(busy["id"], 3, "{busy}");
                let (code, text) = error_of(&busy);
                assert_eq!(code, -32600);
                assert!(text.contains("is already answering a prompt"), "{text}");
                agent.send(json!({"jsonrpc": "2.0", "id": message["id"],
                    "result": {"outcome": {"outcome": "selected", "optionId": "allow-once"}}}));
            }
            _ if message["id"] == 2 => break message,
            _ => panic!("unexpected message {message}"),
        }
    };
    assert_eq!(answer["result"]["stopReason"], "end_turn", "{answer}");
    let shape: Vec<String> = updates
        .iter()
        .map(|u| {
            let kind = u["sessionUpdate"].as_str().unwrap();
            match kind {
                // `pending` is the default status, left out on the wire.
                "tool_call" => format!(
                    "tool_call {} {} {}",
                    u["toolCallId"].as_str().unwrap(),
                    u["kind"].as_str().unwrap(),
                    u["status"].as_str().unwrap_or("pending")
                ),
                "tool_call_update" => format!(
                    "tool_call_update {} {}",
                    u["toolCallId"].as_str().unwrap(),
                    u["status"].as_str().unwrap()
                ),
                other => other.to_string(),
            }
        })
        .collect();
    // Parallel calls interleave; each call's own updates are in order.
    for call in ["call_read", "call_grep", "call_edit"] {
        let mine: Vec<&String> = shape.iter().filter(|s| s.contains(call)).collect();
        assert_eq!(mine.len(), 3, "{shape:#?}");
        assert!(
            mine[0].starts_with("tool_call ") && mine[0].ends_with("pending"),
            "{shape:#?}"
        );
        assert!(mine[1].ends_with("in_progress"), "{shape:#?}");
        assert!(mine[2].ends_with("completed"), "{shape:#?}");
    }
    let text: String = updates
        .iter()
        .filter(|u| u["sessionUpdate"] == "agent_message_chunk")
        .map(|u| u["content"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Let me look.It says goodbye now.");
    let edit_done = updates
        .iter()
        .find(|u| u["toolCallId"] == "call_edit" && u["status"] == "completed")
        .unwrap();
    let diff = edit_done["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "diff")
        .unwrap_or_else(|| panic!("the edit shows its diff: {edit_done}"));
    assert_eq!(diff["path"], json!(env.root().join("src/main.rs")));
    assert_eq!(
        diff["oldText"],
        "fn main() {\n    println!(\"hello\");\n}\n"
    );
    assert_eq!(
        diff["newText"],
        "fn main() {\n    println!(\"goodbye\");\n}\n"
    );
    assert!(updates.iter().any(|u| u["sessionUpdate"] == "usage_update"));
    // Without fs/write_text_file the change is on disk.
    assert_eq!(
        std::fs::read_to_string(env.root().join("src/main.rs")).unwrap(),
        "fn main() {\n    println!(\"goodbye\");\n}\n"
    );
    // The session stays usable.
    agent.request(
        4,
        "session/prompt",
        json!({"sessionId": session, "prompt": [{"type": "text", "text": "And now?"}]}),
    );
    let answer = agent.answer(4);
    assert_eq!(answer["result"]["stopReason"], "end_turn", "{answer}");
}

#[tokio::test]
async fn sdk_client_buffers_cancel_and_load() {
    let env = Env::new();
    let model = MockModel::start(Script::new(vec![
        // buffers: read the file the prompt links, then edit what the buffer says.
        Rule::openai(Response::tool_calls(vec![
            ToolCall::new("read", json!({"path": "src/main.rs"})).with_id("call_read"),
        ]))
        .contains("Change the greeting")
        .turn(0),
        Rule::openai(Response::tool_calls(vec![
            ToolCall::new(
                "edit",
                json!({"path": "src/main.rs", "old_string": "from the unsaved buffer", "new_string": "from the agent"}),
            )
            .with_id("call_edit"),
        ]))
        .contains("Change the greeting")
        .turn(1),
        Rule::openai(Response::text("Done.")).contains("Change the greeting").turn(2),
        // buffers, the same session again: grep and read see the client's buffers; a file
        // the client does not have is read from disk; one it refuses fails the call; one
        // outside the workspace is refused before the client is asked.
        Rule::openai(Response::tool_calls(vec![
            ToolCall::new("grep", json!({"pattern": "from the agent"})).with_id("call_grep"),
            ToolCall::new("read", json!({"path": "src/main.rs", "offset": 2, "limit": 1}))
                .with_id("call_window"),
            ToolCall::new("read", json!({"path": "README.md"})).with_id("call_disk"),
            ToolCall::new("read", json!({"path": "src/locked.rs"})).with_id("call_locked"),
            ToolCall::new("read", json!({"path": "../outside.txt"})).with_id("call_outside"),
        ]))
        .contains("Where is the greeting now?")
        .turn(3),
        Rule::openai(Response::text("In main."))
            .contains("Where is the greeting now?")
            .turn(4),
        // cancel: a slow stream, cancelled after its first chunk; then a quick answer.
        Rule::openai(
            Response::text("one two three four five six seven eight nine ten eleven twelve")
                .chunk_size(4)
                .chunk_delay_ms(200),
        )
        .contains("first prompt"),
        Rule::openai(Response::text("Still here.")).contains("second prompt"),
    ]))
    .await;

    std::fs::write(env.root.path().join("src/locked.rs"), "on disk\n").unwrap();
    let seen = sdk(&env, &model, "buffers", &[]);
    let main_rs = env.root().join("src/main.rs");
    let file = |name: &str| env.root().join(name);
    assert_eq!(seen["protocolVersion"], 1);
    assert_eq!(seen["stops"], json!(["end_turn", "end_turn"]), "{seen}");
    let reads = seen["reads"].as_array().unwrap();
    let first = seen["readsInFirstPrompt"].as_u64().unwrap() as usize;
    assert_eq!(
        reads[..first],
        [
            json!({"path": main_rs, "line": null, "limit": null}),
            json!({"path": main_rs, "line": 1, "limit": 2001}),
        ],
        "the linked file is read from the client, then `read` asks it for its window \
         (and a line more)"
    );
    // The read tool saw the unsaved buffer, not the disk, numbered as a disk read is.
    let read = tool_result(&model, 1);
    assert_eq!(
        read,
        "     1\tfn main() {\n     2\t    println!(\"hello from the unsaved buffer\");\n     3\t}\n"
    );
    assert_eq!(
        seen["writes"],
        json!([{"path": main_rs, "content": "fn main() {\n    println!(\"hello from the agent\");\n}\n"}]),
        "the edit reaches the client as the whole new text"
    );
    assert_eq!(
        std::fs::read_to_string(&main_rs).unwrap(),
        "fn main() {\n    println!(\"hello\");\n}\n",
        "the disk is untouched: the client owns the file"
    );
    assert_eq!(seen["permissions"][0]["toolCallId"], "call_edit", "{seen}");
    let updates = seen["updates"].as_array().unwrap();
    assert_eq!(
        shapes(updates)
            .into_iter()
            .filter(|s| s.starts_with("tool_call"))
            .take(6)
            .collect::<Vec<_>>(),
        [
            "tool_call call_read read pending",
            "tool_call_update call_read in_progress",
            "tool_call_update call_read completed",
            "tool_call call_edit edit pending",
            "tool_call_update call_edit in_progress",
            "tool_call_update call_edit completed",
        ]
    );
    // The second prompt: the written buffer is asked for again (the user may have typed),
    // then the calls' own reads, in parallel; the outside path never reaches the client.
    let mut later: Vec<String> = reads[first..].iter().map(Value::to_string).collect();
    later.sort();
    let mut expected: Vec<String> = [
        json!({"path": main_rs, "line": null, "limit": null}),
        json!({"path": main_rs, "line": 2, "limit": 2}),
        json!({"path": file("README.md"), "line": 1, "limit": 2001}),
        json!({"path": file("src/locked.rs"), "line": 1, "limit": 2001}),
    ]
    .iter()
    .map(Value::to_string)
    .collect();
    expected.sort();
    assert_eq!(later, expected);
    // The last five results are the second prompt's (the first prompt's come before).
    let results = tool_results(&model, 4);
    let [grep, window, disk, locked, outside] = &results[results.len() - 5..] else {
        panic!("five results: {results:?}")
    };
    assert!(
        grep.contains("src/main.rs") && grep.contains("hello from the agent"),
        "grep sees the text the client holds, not the disk's: {grep}"
    );
    assert_eq!(
        window,
        "     2\t    println!(\"hello from the agent\");\n\
         (lines 2–2 of an unscanned total; continue with offset=3)\n"
    );
    assert_eq!(
        disk, "     1\t# Demo\n     2\tSays hello.\n",
        "not found: disk"
    );
    assert!(
        locked.contains("the editor could not read `src/locked.rs`")
            && locked.contains("locked by the user")
            && !locked.contains("on disk"),
        "{locked}"
    );
    assert!(outside.contains("outside"), "{outside}");
    assert_eq!(
        std::fs::read_to_string(&main_rs).unwrap(),
        "fn main() {\n    println!(\"hello\");\n}\n",
        "the disk is still untouched"
    );
    let session = seen["sessionId"].as_str().unwrap().to_string();

    let seen = sdk(&env, &model, "cancel", &[]);
    assert_eq!(seen["stops"], json!(["cancelled", "end_turn"]), "{seen}");
    let chunks: String = seen["updates"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["sessionUpdate"] == "agent_message_chunk")
        .map(|u| u["content"]["text"].as_str().unwrap())
        .collect();
    assert!(chunks.ends_with("Still here."), "{chunks}");
    assert!(
        !chunks.contains("twelve"),
        "the stream was cut mid-way: {chunks}"
    );

    // A new process replays the first session.
    let seen = sdk(&env, &model, "load", &[&session]);
    assert_eq!(seen["loaded"], true);
    assert_eq!(seen["errors"][0]["code"], -32002, "{seen}");
    let replayed = seen["updates"].as_array().unwrap();
    assert_eq!(replayed[0]["sessionUpdate"], "user_message_chunk");
    assert!(
        replayed[0]["content"]["text"]
            .as_str()
            .unwrap()
            .starts_with("Change the greeting in"),
        "{}",
        replayed[0]
    );
    let shape = shapes(replayed);
    assert!(
        shape.contains(&"tool_call call_edit edit in_progress".to_string()),
        "{shape:?}"
    );
    assert!(
        shape.contains(&"tool_call_update call_edit completed".to_string()),
        "{shape:?}"
    );
    // The edit is replayed with its diff, as it was shown live.
    let edit_done = replayed
        .iter()
        .find(|u| u["toolCallId"] == "call_edit" && u["status"] == "completed")
        .unwrap();
    assert_eq!(
        edit_done["content"][1],
        json!({"type": "diff", "path": main_rs, "oldText": "from the unsaved buffer", "newText": "from the agent"}),
        "{edit_done}"
    );
    assert_eq!(shape.last().unwrap(), "agent_message_chunk");
    assert_eq!(replayed.last().unwrap()["content"]["text"], "In main.");
}

fn acpx(env: &Env, model: &MockModel, args: &[&str]) -> cli::Output {
    let acpx = acp_modules().join("acpx/dist/cli.js");
    let agent = format!("{} acp", switchyard_tests::switchyard_bin().display());
    let root = env.root();
    let mut all = vec![
        acpx.to_str().unwrap(),
        "--agent",
        &agent,
        "--cwd",
        root.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let mut command = env.client(model, &node(), &all);
    // acpx keeps its own state under HOME.
    command.env("HOME", env.home.path());
    cli::run(command, DEADLINE)
}

#[tokio::test]
async fn acpx_exec_reads_greps_in_parallel_and_edits() {
    let env = Env::new();
    let model = MockModel::start(Script::new(vec![
        Rule::openai(
            Response::tool_calls(vec![
                ToolCall::new("read", json!({"path": "src/main.rs"})).with_id("call_read"),
                ToolCall::new("grep", json!({"pattern": "hello"})).with_id("call_grep"),
            ])
            .with_text("Let me look."),
        )
        .turn(0),
        Rule::openai(Response::tool_calls(vec![
            ToolCall::new(
                "edit",
                json!({"path": "src/main.rs", "old_string": "hello", "new_string": "goodbye"}),
            )
            .with_id("call_edit"),
        ]))
        .turn(1),
        Rule::openai(Response::text("It says goodbye now.")).turn(2),
    ]))
    .await;
    let out = acpx(
        &env,
        &model,
        &[
            "--approve-all",
            "--format",
            "json",
            "exec",
            "Say goodbye instead of hello",
        ],
    );
    assert_eq!(
        out.code,
        Some(0),
        "stdout {} stderr {}",
        out.stdout,
        out.stderr
    );
    // acpx prints the whole JSON-RPC exchange, one message a line.
    let messages: Vec<Value> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut steps = Vec::new();
    let mut text = String::new();
    let mut diff = None;
    let mut reads = Vec::new();
    for m in &messages {
        match (m["method"].as_str(), &m["params"]["update"]) {
            (Some("session/update"), u) if u["sessionUpdate"] == "agent_message_chunk" => {
                text.push_str(u["content"]["text"].as_str().unwrap());
            }
            (Some("session/update"), u) if u["sessionUpdate"] == "usage_update" => {}
            (Some("session/update"), u) => {
                if let Some(d) = u["content"]
                    .as_array()
                    .and_then(|c| c.iter().find(|c| c["type"] == "diff"))
                {
                    diff = Some(d.clone());
                }
                steps.extend(shapes(std::slice::from_ref(u)));
            }
            (Some(method @ ("session/request_permission" | "fs/write_text_file")), _) => {
                steps.push(method.to_string());
            }
            (Some("fs/read_text_file"), _) => reads.push(m["params"].clone()),
            (Some(_), _) => {}
            // acpx's answers to the agent's requests.
            (None, _) if m["result"]["outcome"].is_object() => {
                steps.push(format!(
                    "answered {}",
                    m["result"]["outcome"]["optionId"].as_str().unwrap()
                ));
            }
            (None, _) => {}
        }
    }
    // The two parallel calls finish in either order.
    steps[4..6].sort();
    assert_eq!(
        steps,
        [
            "tool_call call_read read pending",
            "tool_call_update call_read in_progress",
            "tool_call call_grep search pending",
            "tool_call_update call_grep in_progress",
            "tool_call_update call_grep completed",
            "tool_call_update call_read completed",
            "tool_call call_edit edit pending",
            "tool_call_update call_edit in_progress",
            "session/request_permission",
            "answered allow-once",
            "fs/write_text_file",
            "tool_call_update call_edit completed",
        ],
        "both reads run before either finishes; the edit asks, then the client writes"
    );
    assert_eq!(text, "Let me look.It says goodbye now.");
    // acpx offers fs/read_text_file: `read` asked it, for its window and a line more.
    assert_eq!(
        reads
            .iter()
            .map(|r| (&r["path"], &r["line"], &r["limit"]))
            .collect::<Vec<_>>(),
        [(
            &json!(env.root().join("src/main.rs")),
            &json!(1),
            &json!(2001)
        )],
        "{reads:?}"
    );
    let diff = diff.expect("the edit shows a diff");
    assert_eq!(
        diff["oldText"],
        "fn main() {\n    println!(\"hello\");\n}\n"
    );
    assert_eq!(
        diff["newText"],
        "fn main() {\n    println!(\"goodbye\");\n}\n"
    );
    let last = messages.last().unwrap();
    assert_eq!(last["result"]["stopReason"], "end_turn", "{last}");
    // acpx wrote the file it was sent.
    assert_eq!(
        std::fs::read_to_string(env.root().join("src/main.rs")).unwrap(),
        "fn main() {\n    println!(\"goodbye\");\n}\n"
    );
}

#[tokio::test]
async fn sdk_client_runs_bash_in_its_terminal() {
    let env = Env::new();
    let model = MockModel::start(Script::new(vec![
        Rule::openai(Response::tool_calls(vec![
            ToolCall::new("bash", json!({"command": "echo from-the-terminal; pwd"}))
                .with_id("call_bash"),
        ]))
        .turn(0),
        Rule::openai(Response::text("Ran it.")).turn(1),
    ]))
    .await;
    let root = env.root();
    // bash is off by default; the user's environment turns it on.
    let seen = sdk_with(
        &env,
        &model,
        "terminal",
        &[],
        &[("SWITCHYARD_APPROVALS__BASH", "allow")],
    );
    assert_eq!(seen["stops"], json!(["end_turn"]), "{seen}");
    assert_eq!(
        seen["terminals"],
        json!([
            {"command": "bash", "args": ["-c", "echo from-the-terminal; pwd"], "cwd": root},
            {"released": "term-1"},
        ])
    );
    let updates = seen["updates"].as_array().unwrap();
    assert!(
        updates.iter().any(|u| u["toolCallId"] == "call_bash"
            && u["content"].as_array().is_some_and(|c| c
                .iter()
                .any(|c| c["type"] == "terminal" && c["terminalId"] == "term-1"))),
        "the call shows the terminal: {updates:?}"
    );
    let kinds = shapes(updates);
    assert!(
        kinds.contains(&"tool_call call_bash execute pending".to_string()),
        "{kinds:?}"
    );
    assert!(
        kinds.contains(&"tool_call_update call_bash completed".to_string()),
        "{kinds:?}"
    );
    // What the terminal printed went back to the model.
    let content = tool_result(&model, 1);
    assert!(content.contains("from-the-terminal"), "{content}");
    assert!(content.contains(root.to_str().unwrap()), "{content}");
}

#[tokio::test]
async fn config_options_accept_mode_and_session_list() {
    let env = Env::new();
    let model = MockModel::start(Script::new(vec![
        Rule::openai(Response::tool_calls(vec![
            ToolCall::new(
                "edit",
                json!({"path": "src/main.rs", "old_string": "hello", "new_string": "bonjour"}),
            )
            .with_id("call_edit"),
        ]))
        .turn(0),
        Rule::openai(Response::text("Done.")).turn(1),
    ]))
    .await;
    let mut agent = Agent::start(&env, &model);
    let init = initialize(&mut agent, json!({}));
    assert_eq!(
        init["result"]["agentCapabilities"]["sessionCapabilities"],
        json!({"list": {}, "resume": {}, "close": {}})
    );
    agent.request(
        1,
        "session/new",
        json!({"cwd": env.root(), "mcpServers": []}),
    );
    let created = agent.answer(1);
    let session = created["result"]["sessionId"].as_str().unwrap().to_string();
    let options = &created["result"]["configOptions"];
    assert_eq!(options[0]["id"], "model");
    assert_eq!(options[0]["currentValue"], "mock-model");
    assert_eq!(options[1]["id"], "mode");
    assert_eq!(options[1]["currentValue"], "ask");

    agent.request(
        2,
        "session/set_config_option",
        json!({"sessionId": session, "configId": "mode", "value": "bogus"}),
    );
    let (code, message) = error_of(&agent.answer(2));
    assert_eq!(
        (code, message.as_str()),
        (-32602, "mode `bogus` is not one of `ask`, `accept`")
    );
    agent.request(
        3,
        "session/set_config_option",
        json!({"sessionId": session, "configId": "mode", "value": "accept"}),
    );
    let set = agent.answer(3);
    assert_eq!(
        set["result"]["configOptions"][1]["currentValue"], "accept",
        "{set}"
    );

    // Accepting changes: the edit is made without a permission request.
    agent.request(
        4,
        "session/prompt",
        json!({"sessionId": session, "prompt": [{"type": "text", "text": "Say bonjour"}]}),
    );
    let seen = agent.until_answer(4);
    assert!(
        seen.iter()
            .all(|m| m["method"] != "session/request_permission"),
        "{seen:#?}"
    );
    assert_eq!(seen.last().unwrap()["result"]["stopReason"], "end_turn");
    assert!(
        std::fs::read_to_string(env.root().join("src/main.rs"))
            .unwrap()
            .contains("bonjour")
    );

    agent.request(5, "session/list", json!({"cwd": env.root()}));
    let listed = agent.answer(5);
    let sessions = listed["result"]["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 1, "{listed}");
    assert_eq!(sessions[0]["sessionId"], session.as_str());
    assert_eq!(sessions[0]["cwd"], json!(env.root()));
    assert_eq!(sessions[0]["title"], "Say bonjour");
    assert!(sessions[0]["updatedAt"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn a_second_prompt_while_one_runs_is_refused_and_the_first_can_be_cancelled() {
    let env = Env::new();
    let model = MockModel::start(Script::new(vec![Rule::openai(Response::hang()).times(1)])).await;
    let mut agent = Agent::start(&env, &model);
    initialize(&mut agent, json!({}));
    let session = new_session(&mut agent, 1, &env.root());
    let prompt =
        |text: &str| json!({"sessionId": session, "prompt": [{"type": "text", "text": text}]});
    agent.request(2, "session/prompt", prompt("First"));
    model
        .wait_for_in_flight(1, std::time::Duration::from_secs(30))
        .await;
    agent.request(3, "session/prompt", prompt("Second"));
    let (code, message) = error_of(&agent.answer(3));
    assert_eq!(
        (code, message),
        (
            -32600,
            format!(
                "session `{session}` is already answering a prompt; wait for its answer or send session/cancel"
            )
        )
    );
    agent.send(
        json!({"jsonrpc": "2.0", "method": "session/cancel", "params": {"sessionId": session}}),
    );
    let first = agent.answer(2);
    assert_eq!(first["result"]["stopReason"], "cancelled", "{first}");
    assert_eq!(
        model.requests().len(),
        1,
        "the second prompt never reached the model"
    );
}

/// A long prompt in a small context window is compacted on the way: a client that shows
/// compactions gets a `compaction_update`, one that shows notices a `notice`, and neither
/// sees it as a message of the agent.
#[tokio::test]
async fn a_compaction_is_told_as_the_client_says_it_shows_them() {
    const WINDOW: u64 = 4_000;
    for (session_caps, shown) in [
        (json!({"compaction": {}}), "compaction_update"),
        (json!({"notices": {}}), "notice"),
    ] {
        let env = Env::new();
        switchyard_tests::write_big_file(env.root.path());
        let model = MockModel::start_with(
            switchyard_tests::rereading_script(8, "Read big.txt again.", "It is large."),
            MockOptions {
                context_window: Some(WINDOW),
                ..MockOptions::default()
            },
        )
        .unwrap();
        let window = WINDOW.to_string();
        let mut agent =
            Agent::start_with(&env, &model, &[("SWITCHYARD_LLM__CONTEXT_WINDOW", &window)]);
        initialize(&mut agent, json!({"session": session_caps}));
        let session = new_session(&mut agent, 1, &env.root());
        agent.request(
            2,
            "session/prompt",
            json!({"sessionId": session, "prompt": [{"type": "text", "text": "Read big.txt until told otherwise."}]}),
        );
        let messages = agent.until_answer(2);
        let answer = messages.last().unwrap();
        assert_eq!(answer["result"]["stopReason"], "end_turn", "{answer}");
        let updates: Vec<&Value> = messages
            .iter()
            .filter(|m| m["method"] == "session/update")
            .map(|m| &m["params"]["update"])
            .collect();
        let compactions = switchyard_tests::summaries_within(&model.requests(), WINDOW);
        assert!(compactions > 0, "the prompt was compacted");
        let told: Vec<&&Value> = updates
            .iter()
            .filter(|u| u["sessionUpdate"] == shown)
            .collect();
        assert_eq!(
            told.len(),
            compactions,
            "one {shown} a compaction: {told:?}"
        );
        match shown {
            "compaction_update" => {
                assert_eq!(told[0]["compactionId"], "compaction-1");
                assert_eq!(told[0]["status"], "completed");
                let kept = &told[0]["_meta"]["switchyard"];
                assert!(kept["replacedMessages"].as_u64().unwrap() > 0, "{kept}");
            }
            _ => {
                assert_eq!(told[0]["severity"], "info");
                assert_eq!(told[0]["title"], "Conversation compacted");
            }
        }
        let text: String = updates
            .iter()
            .filter(|u| u["sessionUpdate"] == "agent_message_chunk")
            .map(|u| u["content"]["text"].as_str().unwrap())
            .collect();
        assert_eq!(
            text, "It is large.",
            "nothing of the compaction in the text"
        );
    }
}

mod thoughts;
