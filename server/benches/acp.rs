//! The ACP front end against the LSP front end on the same script, the real binary over
//! stdio for both, the mock model answering at once: a prompt whose first answer asks for
//! a read and a grep, then a text answer. Per run, in a fresh session of a warm server:
//! 1. from sending the prompt (`session/prompt`, `switchyard/ask`) to the first update
//!    (`session/update`, `switchyard/sessionUpdate`) — the goal is ACP within 1.1x of LSP;
//! 2. per tool call, from its `tool_call` update to its completed update, as the client
//!    sees it — a figure that rewards a front end for showing the call late: the sooner
//!    its `tool_call` reaches the client, the longer the call seems (the LSP front end
//!    writes header, body and flush per message, so its `tool_call`s queue behind the
//!    text before them and arrive just before they complete);
//! 3. the agent's own time per tool call, which no delivery lag skews: the whole prompt
//!    with the two calls (and the model turn after them) less the same prompt answered
//!    with text at once, halved — both end at the answer, which follows every update;
//! 4. the whole prompt to its answer.
//!
//! Medians of interleaved runs; the ratios compare figures measured in the same run. The
//! clients write JSON-RPC by hand and answer the server's requests with `null`: they
//! measure, they do not test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard_tests::mock_model::{MockModel, Response, Rule, Script, ToolCall};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
const RUNS: usize = 21;
/// The prompt answered with text at once (no tool call).
const PLAIN: &str = "Just say hello.";

/// How a front end frames a message.
#[derive(Clone, Copy, PartialEq)]
enum Wire {
    Lines,
    ContentLength,
}

struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    wire: Wire,
    next_id: u64,
}

/// What one prompt showed the client.
struct Run {
    first_update: Duration,
    per_tool: Duration,
    total: Duration,
    /// The agent's own time per tool call (see the module's doc), set by the caller.
    own: Duration,
}

impl Server {
    fn start(args: &[&str], wire: Wire, root: &Path, state: &Path, model: &MockModel) -> Server {
        let mut child = Command::new(BIN)
            .args(args)
            .current_dir(root)
            .env("XDG_CONFIG_HOME", state.join("config"))
            .env("XDG_STATE_HOME", state.join("state"))
            .env("SWITCHYARD_LOG", "error")
            .env("SWITCHYARD_PROVIDER", "openai")
            .env("SWITCHYARD_MODEL", "mock-model")
            .env("OPENAI_BASE_URL", model.openai_base_url())
            .env("OPENAI_API_KEY", "sk-bench")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Server {
            child,
            stdin,
            stdout,
            wire,
            next_id: 0,
        }
    }

    fn send(&mut self, message: &Value) {
        let body = message.to_string();
        match self.wire {
            Wire::Lines => writeln!(self.stdin, "{body}").unwrap(),
            Wire::ContentLength => {
                write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
            }
        }
        self.stdin.flush().unwrap();
    }

    /// The next message; a request of the server's is answered with `null` first.
    fn receive(&mut self) -> Value {
        let message: Value = match self.wire {
            Wire::Lines => {
                let mut line = String::new();
                self.stdout.read_line(&mut line).unwrap();
                serde_json::from_str(&line).unwrap()
            }
            Wire::ContentLength => common::read_frame(&mut self.stdout),
        };
        if message.get("id").is_some() && message.get("method").is_some() {
            self.send(&json!({"jsonrpc": "2.0", "id": message["id"], "result": null}));
        }
        message
    }

    fn send_request(&mut self, method: &str, params: Value) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        id
    }

    fn is_answer(message: &Value, id: u64) -> bool {
        message["id"] == json!(id) && message.get("method").is_none()
    }

    fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.send_request(method, params);
        loop {
            let message = self.receive();
            if Server::is_answer(&message, id) {
                assert!(message.get("error").is_none(), "{method}: {message}");
                return message;
            }
        }
    }

    /// Sends a prompt and times what comes back until its answer; `update` names the
    /// notification carrying the session's updates.
    fn prompt(&mut self, method: &str, params: Value, update: &str) -> Run {
        let started = Instant::now();
        let id = self.send_request(method, params);
        let mut first_update = None;
        let mut tool_started = Vec::new();
        let mut per_tool = Duration::ZERO;
        let mut tools = 0;
        loop {
            let message = self.receive();
            if Server::is_answer(&message, id) {
                assert!(message.get("error").is_none(), "{method}: {message}");
                return Run {
                    first_update: first_update.unwrap(),
                    per_tool: per_tool / tools.max(1),
                    total: started.elapsed(),
                    own: Duration::ZERO,
                };
            }
            if message["method"] != update {
                continue;
            }
            first_update.get_or_insert_with(|| started.elapsed());
            let u = &message["params"]["update"];
            match u["sessionUpdate"].as_str() {
                Some("tool_call") => tool_started.push((u["toolCallId"].clone(), Instant::now())),
                Some("tool_call_update")
                    if matches!(u["status"].as_str(), Some("completed" | "failed")) =>
                {
                    if let Some((_, at)) =
                        tool_started.iter().find(|(id, _)| *id == u["toolCallId"])
                    {
                        per_tool += at.elapsed();
                        tools += 1;
                    }
                }
                _ => {}
            }
        }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let model = runtime.block_on(MockModel::start(Script::new(vec![
        Rule::openai(Response::text("Hello."))
            .contains(PLAIN)
            .repeat(),
        Rule::openai(
            Response::tool_calls(vec![
                ToolCall::new("read", json!({"path": "src/main.rs"})),
                ToolCall::new("grep", json!({"pattern": "hello"})),
            ])
            .with_text("Let me look."),
        )
        .turn(0)
        .repeat(),
        Rule::openai(Response::text("It prints hello."))
            .turn(1)
            .repeat(),
    ])));
    let root = tempfile::tempdir().unwrap();
    switchyard_tests::hello_workspace(root.path());
    let root = root.path().canonicalize().unwrap();
    let state = tempfile::tempdir().unwrap();

    let mut acp = Server::start(&["acp"], Wire::Lines, &root, state.path(), &model);
    acp.request(
        "initialize",
        json!({"protocolVersion": 1, "clientCapabilities": {}}),
    );
    let mut lsp = Server::start(&["lsp"], Wire::ContentLength, &root, state.path(), &model);
    let uri = format!("file://{}", root.display());
    lsp.request(
        "initialize",
        json!({
            "processId": std::process::id(),
            "rootUri": uri,
            "workspaceFolders": [{"uri": uri, "name": "bench"}],
            "capabilities": {},
        }),
    );
    lsp.send(&json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}));

    let prompt = "What does main print?";
    let acp_prompt = |server: &mut Server, text: &str| {
        let session = server.request("session/new", json!({"cwd": root, "mcpServers": []}));
        let session = session["result"]["sessionId"].clone();
        server.prompt(
            "session/prompt",
            json!({"sessionId": session, "prompt": [{"type": "text", "text": text}]}),
            "session/update",
        )
    };
    let lsp_prompt = |server: &mut Server, text: &str| {
        server.prompt(
            "switchyard/ask",
            json!({"prompt": text}),
            "switchyard/sessionUpdate",
        )
    };
    // A run: the prompt with tool calls, then the plain one; `own` is their difference.
    let run_acp = |server: &mut Server| {
        let mut run = acp_prompt(server, prompt);
        let plain = acp_prompt(server, PLAIN);
        run.own = run.total.saturating_sub(plain.total) / 2;
        run
    };
    let run_lsp = |server: &mut Server| {
        let mut run = lsp_prompt(server, prompt);
        let plain = lsp_prompt(server, PLAIN);
        run.own = run.total.saturating_sub(plain.total) / 2;
        run
    };
    // Warm both up, then interleave so drift in the machine's load hits both alike.
    run_acp(&mut acp);
    run_lsp(&mut lsp);
    let (mut a, mut l) = (Vec::new(), Vec::new());
    for i in 0..RUNS {
        if i % 2 == 0 {
            a.push(run_acp(&mut acp));
            l.push(run_lsp(&mut lsp));
        } else {
            l.push(run_lsp(&mut lsp));
            a.push(run_acp(&mut acp));
        }
    }
    acp.stop();
    lsp.stop();

    println!("\nACP vs LSP, same script, medians of {RUNS} runs:");
    println!("{:<34} {:>10} {:>10} {:>7}", "", "ACP", "LSP", "ratio");
    type Pick = fn(&Run) -> Duration;
    let rows: [(&str, Pick); 4] = [
        ("prompt → first update", |r| r.first_update),
        ("per tool call (shown → done)", |r| r.per_tool),
        ("per tool call (agent's own time)", |r| r.own),
        ("prompt → answer", |r| r.total),
    ];
    for (name, pick) in rows {
        let acp = median(a.iter().map(pick).collect());
        let lsp = median(l.iter().map(pick).collect());
        println!(
            "{name:<34} {:>10} {:>10} {:>6.2}x",
            ms(acp),
            ms(lsp),
            acp.as_secs_f64() / lsp.as_secs_f64()
        );
    }
}
