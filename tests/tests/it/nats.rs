//! External lanes on a real NATS JetStream broker, served by `switchyard worker` processes.
//! The Query lane: `switchyard tool` calls — tasks spread over two workers, a worker killed
//! mid-task (its task is redelivered after the lease and answered once), a poison task
//! dead-lettered after `max_deliver`, a worker that drains on SIGTERM, a worker that never
//! runs another repository's tasks, an unreachable broker failing the call at once, Execute
//! refused on a broker, the broker itself killed and restarted mid-run (nothing lost, each
//! result once), a cancelled session whose remote task the worker stops, a worker one
//! commit behind that never runs the task, an unsaved buffer that travels with its task,
//! and the external lane with its workers in `switchyard.queueStats` and
//! `switchyard/laneStatus`. The Generate lane: `switchyard ask` answered by a worker that
//! holds the key the caller lacks, a 429 retried after its `Retry-After`, a worker without
//! a key. Batch analysis: two repositories analysed at once, locally and through two
//! workers, with the same findings.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use switchyard::lanes::Lane;
use switchyard::lsp::ext::{
    Ask, AskParams, Cancel, CancelParams, CancelTarget, NoParams, QueueStats, RunTool,
    RunToolParams,
};
use switchyard_tests::cli::{self, Output};
use switchyard_tests::lsp_client::lsp_types::notification::DidOpenTextDocument;
use switchyard_tests::lsp_client::lsp_types::{DidOpenTextDocumentParams, TextDocumentItem};
use switchyard_tests::lsp_client::{ClientOptions, Ext, LspClient, ServerEvent, file_url, within};
use switchyard_tests::mock_model::{MockModel, Response, Rule, Script, ToolCall};
use switchyard_tests::nats::NatsServer;

const DEADLINE: Duration = Duration::from_secs(60);
const NEEDLE: &str = "f7.txt:1:needle";

/// A broker, a repository big enough that one grep over it takes a while, and the caller's
/// home whose user configuration puts the Query lane on the broker.
struct Fleet {
    nats: NatsServer,
    repo: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Fleet {
    fn new(lease_ms: u64, max_deliver: u32) -> Fleet {
        let nats = NatsServer::start();
        let repo = tempfile::tempdir().unwrap();
        let line = "abcdefghij".repeat(7) + "\n";
        let body = line.repeat(400);
        for i in 0..1500 {
            std::fs::write(repo.path().join(format!("f{i}.txt")), &body).unwrap();
        }
        std::fs::write(repo.path().join("f7.txt"), "needle\n").unwrap();
        let home = tempfile::tempdir().unwrap();
        write_config(
            home.path(),
            &format!(
                "[broker]\nurl = \"{}\"\nlease_ms = {lease_ms}\nmax_deliver = {max_deliver}\n\n\
                 [lanes.query]\nmode = \"external\"\n",
                nats.url()
            ),
        );
        Fleet { nats, repo, home }
    }

    /// A worker serving the repository, `concurrency` tasks at once, configured by `config`.
    fn worker(&self, concurrency: usize, config: &str) -> Worker {
        Worker::start(&self.nats.url(), self.repo.path(), concurrency, config)
    }

    /// `switchyard tool grep` for the needle, through the broker.
    fn grep(&self) -> Output {
        let args = [
            "tool",
            "grep",
            r#"{"pattern": "need[l]e"}"#,
            "--cwd",
            self.repo.path().to_str().unwrap(),
        ];
        cli::run(cli::switchyard(self.home.path(), &args), DEADLINE)
    }
}

fn write_config(home: &Path, text: &str) {
    let dir = home.join("config/switchyard");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), text).unwrap();
}

/// A `switchyard worker` process; its stderr lines are collected as they come.
struct Worker {
    child: Child,
    lines: Arc<(Mutex<Vec<String>>, Condvar)>,
    _home: tempfile::TempDir,
}

impl Worker {
    fn start(url: &str, root: &Path, concurrency: usize, config: &str) -> Worker {
        let args = [
            "--lanes",
            "query",
            "--root",
            root.to_str().unwrap(),
            "--concurrency",
            &concurrency.to_string(),
        ];
        Worker::spawn(url, &args, config, &[])
    }

    /// `switchyard worker --broker URL ARGS`, configured by `config`, with `env` besides a
    /// clean model environment.
    fn spawn(url: &str, args: &[&str], config: &str, env: &[(String, String)]) -> Worker {
        let home = tempfile::tempdir().unwrap();
        write_config(home.path(), config);
        let args: Vec<&str> = ["worker", "--broker", url]
            .into_iter()
            .chain(args.iter().copied())
            .collect();
        let mut child = cli::switchyard(home.path(), &args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("switchyard worker starts");
        let stderr = child.stderr.take().unwrap();
        let lines = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let (store, changed) = &*sink;
                store.lock().unwrap().push(line);
                changed.notify_all();
            }
        });
        Worker {
            child,
            lines,
            _home: home,
        }
    }

    /// Waits until a line contains `text`; fails naming `what` and what was said.
    fn wait_for(&self, text: &str, what: &str) {
        let (store, changed) = &*self.lines;
        let deadline = Instant::now() + DEADLINE;
        let mut lines = store.lock().unwrap();
        while !lines.iter().any(|l| l.contains(text)) {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "{what}: no `{text}` within {DEADLINE:?}; the worker said {lines:#?}"
            );
            lines = changed.wait_timeout(lines, left).unwrap().0;
        }
    }

    /// Waits until `workers` together said `text` at least `n` times: a worker says it
    /// finished a task only after the caller may already have its answer.
    fn wait_for_total(workers: &[&Worker], text: &str, n: usize) {
        let deadline = Instant::now() + DEADLINE;
        let total = || workers.iter().map(|w| w.count(text)).sum::<usize>();
        while total() < n {
            assert!(
                Instant::now() < deadline,
                "`{text}` said {} times, not {n}, within {DEADLINE:?}: {:#?}",
                total(),
                workers.iter().map(|w| w.said()).collect::<Vec<_>>()
            );
            // Woken by the first worker's next line, or soon for the others'.
            let (store, changed) = &*workers[0].lines;
            let lines = store.lock().unwrap();
            let _ = changed
                .wait_timeout(lines, Duration::from_millis(20))
                .unwrap();
        }
    }

    fn count(&self, text: &str) -> usize {
        let lines = self.lines.0.lock().unwrap();
        lines.iter().filter(|l| l.contains(text)).count()
    }

    fn said(&self) -> Vec<String> {
        self.lines.0.lock().unwrap().clone()
    }

    /// SIGKILL, by the child's PID.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_one_answer(output: &Output) {
    assert_eq!(output.code, Some(0), "the call failed: {}", output.stderr);
    assert_eq!(
        output.stdout.matches(NEEDLE).count(),
        1,
        "the caller sees the result exactly once: {}",
        output.stdout
    );
}

#[test]
fn tasks_spread_over_two_workers() {
    let fleet = Fleet::new(5_000, 3);
    let a = fleet.worker(1, "");
    let b = fleet.worker(1, "");
    let calls = 8;
    let outputs: Vec<Output> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..calls).map(|_| s.spawn(|| fleet.grep())).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for output in &outputs {
        assert_one_answer(output);
    }
    Worker::wait_for_total(&[&a, &b], "finished task", calls);
    let (ran_a, ran_b) = (a.count("finished task"), b.count("finished task"));
    assert!(
        ran_a >= 1 && ran_b >= 1,
        "both workers run tasks: a ran {ran_a}, b ran {ran_b}\na: {:#?}\nb: {:#?}",
        a.said(),
        b.said()
    );
    assert_eq!(ran_a + ran_b, calls, "each task ran once");
}

#[test]
fn a_task_of_a_killed_worker_is_redelivered_and_answered_once() {
    let fleet = Fleet::new(1_000, 3);
    let mut a = fleet.worker(1, "");
    std::thread::scope(|s| {
        let call = s.spawn(|| fleet.grep());
        a.wait_for("running task", "the first worker claims the task");
        a.kill();
        assert_eq!(
            a.count("finished task"),
            0,
            "the task was to be killed mid-run, but it finished first: {:#?}",
            a.said()
        );
        let b = fleet.worker(1, "");
        b.wait_for("(delivery 2)", "the task is redelivered after the lease");
        let output = call.join().unwrap();
        assert_one_answer(&output);
        b.wait_for("finished task", "the waiting worker says it answered");
        assert_eq!(b.count("finished task"), 1, "{:#?}", b.said());
    });
}

#[test]
fn a_poison_task_is_dead_lettered_after_max_deliver() {
    let fleet = Fleet::new(5_000, 2);
    // No grep over the repository finishes within this worker's 1 ms time limit.
    let worker = fleet.worker(1, "[lanes.query]\ntimeout_ms = 1\n");
    let output = fleet.grep();
    assert_eq!(output.code, Some(1), "the call fails: {output:?}");
    for said in ["2 deliveries", "dead-letter queue", "timed out"] {
        assert!(
            output.stderr.contains(said),
            "`{said}` in {}",
            output.stderr
        );
    }
    assert_eq!(worker.count("running task"), 2, "{:#?}", worker.said());
}

#[test]
fn execute_is_refused_on_a_broker() {
    let fleet = Fleet::new(1_000, 2);
    write_config(
        fleet.home.path(),
        &format!(
            "[broker]\nurl = \"{}\"\n\n[lanes.execute]\nmode = \"external\"\n",
            fleet.nats.url()
        ),
    );
    let output = fleet.grep();
    assert_eq!(output.code, Some(2), "{output:?}");
    assert!(
        output.stderr.contains("lanes.execute.mode") && output.stderr.contains("never leaves"),
        "{}",
        output.stderr
    );
}

#[test]
fn a_worker_drains_on_sigterm() {
    let fleet = Fleet::new(5_000, 3);
    let mut a = fleet.worker(1, "");
    std::thread::scope(|s| {
        let call = s.spawn(|| fleet.grep());
        a.wait_for("running task", "the worker claims the task");
        let pid = a.child.id().to_string();
        let term = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(term.success());
        let status = a.child.wait().unwrap();
        assert_eq!(
            status.code(),
            Some(0),
            "a drained worker exits 0: {:#?}",
            a.said()
        );
        assert_eq!(
            a.count("finished task"),
            1,
            "it finishes what it holds: {:#?}",
            a.said()
        );
        a.wait_for("drained", "the worker says it drained");
        assert_one_answer(&call.join().unwrap());
    });
}

#[test]
fn an_unreachable_broker_fails_the_call_at_once() {
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(repo.path().join("f7.txt"), "needle\n").unwrap();
    let home = tempfile::tempdir().unwrap();
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("nats://127.0.0.1:{port}");
    write_config(
        home.path(),
        &format!("[broker]\nurl = \"{url}\"\n\n[lanes.query]\nmode = \"external\"\n"),
    );
    let args = ["tool", "ls", "{}", "--cwd", repo.path().to_str().unwrap()];
    let output = cli::run(cli::switchyard(home.path(), &args), DEADLINE);
    assert_eq!(output.code, Some(1), "{output:?}");
    assert!(
        output.stderr.contains("has no broker") && output.stderr.contains(&url),
        "{}",
        output.stderr
    );
}

#[test]
fn a_worker_runs_only_tasks_of_the_repositories_it_has() {
    let fleet = Fleet::new(5_000, 3);
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("f7.txt"), "needle\n").unwrap();
    let stranger = Worker::start(&fleet.nats.url(), elsewhere.path(), 1, "");
    stranger.wait_for("serving", "the other repository's worker starts");
    std::thread::scope(|s| {
        let call = s.spawn(|| fleet.grep());
        let owner = fleet.worker(1, "");
        assert_one_answer(&call.join().unwrap());
        owner.wait_for("finished task", "the owner says it answered");
        assert_eq!(owner.count("finished task"), 1, "{:#?}", owner.said());
    });
    assert_eq!(
        stranger.count("running task"),
        0,
        "a worker without the repository ran its task: {:#?}",
        stranger.said()
    );
}

#[test]
fn a_broker_restarted_mid_run_loses_nothing() {
    let fleet = Fleet::new(2_000, 5);
    let a = fleet.worker(1, "");
    let calls = 6;
    let outputs: Vec<Output> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..calls).map(|_| s.spawn(|| fleet.grep())).collect();
        // One task is answered, the others wait in the broker or run: then it crashes.
        a.wait_for("finished task", "the worker answers a first task");
        fleet.nats.restart();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for output in &outputs {
        assert_one_answer(output);
    }
    Worker::wait_for_total(&[&a], "finished task", calls);
    assert!(
        a.count("finished task") >= calls,
        "every task ran to the end: {:#?}",
        a.said()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_session_stops_its_remote_tasks() {
    let fleet = Fleet::new(30_000, 3);
    let worker = Arc::new(fleet.worker(1, ""));
    let model = MockModel::start(Script::new(vec![
        Rule::openai(Response::tool_calls(vec![
            ToolCall::new("grep", json!({"pattern": "need[l]e"})).with_id("call_grep"),
        ]))
        .turn(0),
        Rule::openai(Response::text("Stopped.")).turn(1),
    ]))
    .await;
    let mut options = ClientOptions::new(fleet.repo.path());
    options.env = [
        ("XDG_CONFIG_HOME", fleet.home.path().join("config")),
        ("XDG_STATE_HOME", fleet.home.path().join("state")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.display().to_string()))
    .chain(model_env(&model))
    .collect();
    within(DEADLINE, async {
        let (mut client, _) = LspClient::initialized(options).await;
        let server = client.server.clone();
        let ask = tokio::spawn(async move {
            let params = AskParams {
                session_id: None,
                prompt: "find the needle".into(),
                context: None,
                model: None,
                provider: None,
                work_done_token: None,
            };
            server.request::<Ext<Ask>>(params).await
        });
        let running = Arc::clone(&worker);
        tokio::task::spawn_blocking(move || {
            running.wait_for("running task", "the worker takes the agent's grep")
        })
        .await
        .unwrap();
        let update = client
            .event("the session's first update", |e| {
                matches!(e, ServerEvent::SessionUpdate(_))
            })
            .await;
        let ServerEvent::SessionUpdate(update) = update else {
            unreachable!()
        };
        let cancelled = client
            .command::<Cancel>(CancelParams {
                id: Some(CancelTarget::Session(update.session_id.clone())),
            })
            .await
            .unwrap();
        assert!(cancelled.tasks >= 1, "{cancelled:?}");
        let stopped = Arc::clone(&worker);
        tokio::task::spawn_blocking(move || {
            stopped.wait_for("cancelled task", "the worker stops the cancelled task")
        })
        .await
        .unwrap();
        assert_eq!(
            worker.count("finished task"),
            0,
            "the cancelled task ran to its end: {:#?}",
            worker.said()
        );
        let _ = ask.await;
        client.shutdown_and_exit().await;
    })
    .await;
}

fn model_env(model: &MockModel) -> Vec<(String, String)> {
    [
        ("SWITCHYARD_PROVIDER", "openai".to_string()),
        ("SWITCHYARD_MODEL", "mock-model".to_string()),
        ("OPENAI_BASE_URL", model.openai_base_url()),
        ("OPENAI_API_KEY", "sk-nats-key".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn git(dir: &Path, args: &[&str]) {
    let status = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@example.invalid"])
        .args(args)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "git {args:?}");
}

#[test]
fn a_worker_without_the_repositorys_commit_never_runs_its_tasks() {
    let fleet = Fleet::new(5_000, 3);
    let repo = fleet.repo.path();
    git(repo, &["init", "-q"]);
    git(
        repo,
        &[
            "remote",
            "add",
            "origin",
            "https://example.invalid/team/repo.git",
        ],
    );
    git(repo, &["add", "."]);
    git(repo, &["commit", "-qm", "first"]);
    // The same repository one commit behind: same remote, another commit.
    let behind = tempfile::tempdir().unwrap();
    git(behind.path(), &["clone", "-q", repo.to_str().unwrap(), "."]);
    git(
        behind.path(),
        &[
            "remote",
            "set-url",
            "origin",
            "https://example.invalid/team/repo.git",
        ],
    );
    std::fs::write(repo.join("later.txt"), "later\n").unwrap();
    git(repo, &["add", "later.txt"]);
    git(repo, &["commit", "-qm", "second"]);
    let stale = Worker::start(&fleet.nats.url(), behind.path(), 1, "");
    stale.wait_for("serving", "the worker one commit behind starts");
    std::thread::scope(|s| {
        let call = s.spawn(|| fleet.grep());
        let current = fleet.worker(1, "");
        assert_one_answer(&call.join().unwrap());
        current.wait_for("finished task", "the current worker says it answered");
        assert_eq!(current.count("finished task"), 1, "{:#?}", current.said());
    });
    assert_eq!(
        stale.count("running task"),
        0,
        "a worker at another commit ran the task: {:#?}",
        stale.said()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsaved_buffer_travels_with_its_task() {
    let fleet = Fleet::new(5_000, 3);
    let _worker = fleet.worker(1, "");
    let mut options = ClientOptions::new(fleet.repo.path());
    options.env = vec![(
        "XDG_CONFIG_HOME".to_string(),
        fleet.home.path().join("config").display().to_string(),
    )];
    within(DEADLINE, async {
        let (client, _) = LspClient::initialized(options).await;
        let path = fleet.repo.path().join("f7.txt");
        client
            .server
            .notify::<DidOpenTextDocument>(DidOpenTextDocumentParams {
                text_document: TextDocumentItem {
                    uri: file_url(&path),
                    language_id: "plaintext".into(),
                    version: 1,
                    text: "needle typed but not saved\n".into(),
                },
            })
            .unwrap();
        let result = client
            .command::<RunTool>(RunToolParams {
                name: "grep".into(),
                arguments: json!({"pattern": "need[l]e typed"}),
            })
            .await
            .unwrap();
        assert!(
            result.text.contains("needle typed but not saved"),
            "the worker grepped the disk, not the buffer: {}",
            result.text
        );
        client.shutdown_and_exit().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_stats_and_lane_status_show_the_external_lane_and_its_workers() {
    let fleet = Fleet::new(5_000, 3);
    let (a, b) = (fleet.worker(1, ""), fleet.worker(1, ""));
    let mut options = ClientOptions::new(fleet.repo.path());
    options.env = vec![(
        "XDG_CONFIG_HOME".to_string(),
        fleet.home.path().join("config").display().to_string(),
    )];
    within(DEADLINE, async {
        let (mut client, _) = LspClient::initialized(options).await;
        client
            .event("a lane status with two workers on the query lane", |e| {
                matches!(e, ServerEvent::LaneStatus(s)
                    if s.lanes[Lane::Query.priority()].workers == Some(2)
                        && s.lanes[Lane::Generate.priority()].workers.is_none())
            })
            .await;
        client
            .command::<RunTool>(RunToolParams {
                name: "grep".into(),
                arguments: json!({"pattern": "need[l]e"}),
            })
            .await
            .unwrap();
        // The worker that ran it says so in its next heartbeat.
        let stats = loop {
            let stats = client.command::<QueueStats>(NoParams {}).await.unwrap();
            let finished: u64 = stats
                .external
                .iter()
                .flat_map(|e| &e.workers)
                .map(|w| w.finished)
                .sum();
            if finished == 1 {
                break stats;
            }
            tokio::task::yield_now().await;
        };
        let [lane] = stats.external.as_slice() else {
            panic!("one external lane: {stats:?}")
        };
        assert_eq!(lane.lane, Lane::Query);
        assert_eq!(lane.broker, fleet.nats.url());
        assert!(lane.connected);
        assert!(lane.repo.starts_with("path:"), "{}", lane.repo);
        let names: Vec<&str> = lane.workers.iter().map(|w| w.name.as_str()).collect();
        for worker in [&a, &b] {
            let pid = format!("worker-{}@", worker.child.id());
            assert!(
                names.iter().any(|n| n.starts_with(&pid)),
                "{pid} in {names:?}"
            );
        }
        client.shutdown_and_exit().await;
    })
    .await;
}

/// A broker, an empty repository and the caller's home whose configuration puts the
/// Generate lane on the broker. The caller names the model but has no key and no base URL:
/// the worker has them.
struct ModelFleet {
    nats: NatsServer,
    repo: tempfile::TempDir,
    home: tempfile::TempDir,
}

const WORKER_KEY: &str = "sk-worker-only-key";

impl ModelFleet {
    fn new() -> ModelFleet {
        let nats = NatsServer::start();
        let repo = tempfile::tempdir().unwrap();
        std::fs::write(repo.path().join("README.md"), "# A repository\n").unwrap();
        let home = tempfile::tempdir().unwrap();
        write_config(
            home.path(),
            &format!(
                "[broker]\nurl = \"{}\"\nlease_ms = 5000\nmax_deliver = 3\n\n\
                 [lanes.generate]\nmode = \"external\"\n\n\
                 [lanes.generate.retry]\nbase_delay_ms = 10\nmax_delay_ms = 50\n\n\
                 [llm]\nprovider = \"openai\"\nmodel = \"mock-model\"\n",
                nats.url()
            ),
        );
        ModelFleet { nats, repo, home }
    }

    /// A worker serving the Generate lane, pointed at `model`, with the key when `key`.
    fn worker(&self, model: &MockModel, key: bool) -> Worker {
        let mut env = vec![("OPENAI_BASE_URL".to_string(), model.openai_base_url())];
        if key {
            env.push(("OPENAI_API_KEY".to_string(), WORKER_KEY.to_string()));
        }
        let worker = Worker::spawn(&self.nats.url(), &["--lanes", "generate"], "", &env);
        worker.wait_for("serving model calls", "the model worker starts");
        worker
    }

    /// `switchyard ask PROMPT` in the repository, through the broker.
    fn ask(&self, prompt: &str) -> Output {
        let repo = self.repo.path().to_str().unwrap();
        let args = ["ask", "--cwd", repo, prompt];
        cli::run(cli::switchyard(self.home.path(), &args), DEADLINE)
    }
}

#[test]
fn ask_through_an_external_generate_lane_answers() {
    let fleet = ModelFleet::new();
    let model = MockModel::start_with(
        Script::new(vec![Rule::openai(
            Response::text("Answered by the fleet.").usage(12, 5),
        )]),
        Default::default(),
    )
    .unwrap();
    let worker = fleet.worker(&model, true);
    let output = fleet.ask("Who answers?");
    assert_eq!(output.code, Some(0), "the ask failed: {}", output.stderr);
    assert_eq!(output.stdout, "Answered by the fleet.\n");
    let requests = model.requests();
    assert_eq!(requests.len(), 1, "{requests:#?}");
    let sent = &requests[0];
    assert_eq!(
        sent.header("authorization"),
        Some(format!("Bearer {WORKER_KEY}").as_str()),
        "the worker's key goes to the provider"
    );
    assert_eq!(sent.body["model"], "mock-model", "the caller's model");
    assert!(
        sent.raw_body.contains("Who answers?"),
        "the caller's conversation travels in the task: {}",
        sent.raw_body
    );
    worker.wait_for("finished task", "the worker says it answered");
    assert_eq!(worker.count("finished task"), 1, "{:#?}", worker.said());
    // The usage came back with the answer: the session recorded the tokens.
    let status = cli::run(
        cli::switchyard(
            fleet.home.path(),
            &[
                "sessions",
                "list",
                "--cwd",
                fleet.repo.path().to_str().unwrap(),
            ],
        ),
        DEADLINE,
    );
    assert!(
        status.stdout.contains("12 in · 5 out"),
        "the session's usage: {status:?}"
    );
    for (who, said) in [
        ("worker", worker.said().join("\n")),
        ("caller", output.stderr),
    ] {
        assert!(
            !said.contains(WORKER_KEY),
            "the {who} printed the key: {said}"
        );
    }
}

#[test]
fn a_429_on_the_worker_is_retried_after_its_retry_after() {
    let fleet = ModelFleet::new();
    let model = MockModel::start_with(
        switchyard_tests::rate_limited_then(1, "Worth the wait."),
        Default::default(),
    )
    .unwrap();
    let worker = fleet.worker(&model, true);
    let output = fleet.ask("Anything?");
    assert_eq!(output.code, Some(0), "the ask failed: {}", output.stderr);
    assert_eq!(output.stdout, "Worth the wait.\n");
    let requests = model.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    let gap = requests[1]
        .received_at
        .duration_since(requests[0].received_at)
        .unwrap();
    // The backoff alone is at most 50 ms here: the second second is Retry-After's.
    assert!(
        gap >= Duration::from_millis(950),
        "redelivered after {gap:?}"
    );
    assert_eq!(worker.count("(delivery 2)"), 2, "{:#?}", worker.said());
}

#[test]
fn a_worker_without_a_key_fails_the_model_call_with_a_clear_error() {
    let fleet = ModelFleet::new();
    let model = MockModel::start_with(
        Script::new(vec![Rule::openai(Response::text("Never sent."))]),
        Default::default(),
    )
    .unwrap();
    let worker = fleet.worker(&model, false);
    assert_eq!(
        worker.count("without an API key"),
        1,
        "the worker warns when it starts: {:#?}",
        worker.said()
    );
    let output = fleet.ask("Anything?");
    assert_eq!(output.code, Some(1), "{output:?}");
    for said in ["no API key", "OPENAI_API_KEY"] {
        assert!(
            output.stderr.contains(said),
            "`{said}` in {}",
            output.stderr
        );
    }
    assert!(model.requests().is_empty(), "{:#?}", model.requests());
}

/// Two repositories of the provisioned corpus (real projects, C and C++ with docs and
/// build files).
fn two_repositories() -> [std::path::PathBuf; 2] {
    let corpus = std::env::var_os("SWITCHYARD_MIXED_CORPUS")
        .expect("SWITCHYARD_MIXED_CORPUS is set (source the env file tests/provision prints)");
    let corpus = Path::new(&corpus);
    ["fmtlib-9.1.0+ds1", "libxkbcommon-1.5.0"].map(|name| corpus.join(name))
}

/// `switchyard analyze DIR… --json` with the configuration under `home`.
fn analyze_json(home: &Path, dirs: &[&Path]) -> serde_json::Value {
    let mut args = vec!["analyze".to_string(), "--json".to_string()];
    args.extend(dirs.iter().map(|d| d.display().to_string()));
    let output = cli::run(cli::switchyard(home, &args), DEADLINE);
    assert_eq!(
        output.code,
        Some(0),
        "the analysis failed: {}",
        output.stderr
    );
    serde_json::from_str(&output.stdout).expect("the analysis is JSON")
}

/// An analysis without what depends on where and how fast it ran.
fn findings(mut analysis: serde_json::Value) -> serde_json::Value {
    let object = analysis.as_object_mut().expect("an analysis is an object");
    object.remove("elapsedMs");
    object.remove("tasks");
    analysis
}

#[test]
fn two_repositories_are_analysed_at_once_with_a_report_each_and_a_summary() {
    let home = tempfile::tempdir().unwrap();
    let [a, b] = two_repositories();
    let both = analyze_json(home.path(), &[&a, &b]);
    let repositories = both["repositories"].as_array().expect("repositories");
    assert_eq!(repositories.len(), 2, "{both:#}");
    let mut files = 0;
    for (entry, dir) in repositories.iter().zip([&a, &b]) {
        let alone = analyze_json(home.path(), &[dir]);
        files += alone["total"]["files"].as_u64().unwrap();
        assert_eq!(
            findings(entry["analysis"].clone()),
            findings(alone),
            "{} analysed with another repository differs from alone",
            dir.display()
        );
    }
    assert_eq!(both["summary"]["repositories"], 2);
    assert_eq!(both["summary"]["failed"], 0);
    assert_eq!(both["summary"]["files"], files);
    let args = ["analyze", a.to_str().unwrap(), b.to_str().unwrap()];
    let markdown = cli::run(cli::switchyard(home.path(), &args), DEADLINE);
    assert_eq!(markdown.code, Some(0), "{}", markdown.stderr);
    assert_eq!(
        markdown.stdout.matches("# Workspace analysis").count(),
        2,
        "{}",
        markdown.stdout
    );
    let summary = &markdown.stdout[markdown.stdout.find("# Summary").expect("a summary")..];
    for dir in [&a, &b] {
        assert!(summary.contains(dir.to_str().unwrap()), "{summary}");
    }
}

#[test]
fn the_analysis_through_an_external_query_lane_equals_the_local_one() {
    let nats = NatsServer::start();
    let [a, b] = two_repositories();
    let local = analyze_json(tempfile::tempdir().unwrap().path(), &[&a, &b]);
    let home = tempfile::tempdir().unwrap();
    write_config(
        home.path(),
        &format!(
            "[broker]\nurl = \"{}\"\nlease_ms = 10000\nmax_deliver = 3\n\n\
             [lanes.query]\nmode = \"external\"\n",
            nats.url()
        ),
    );
    let args = ["--lanes", "query", "--root", a.to_str().unwrap()];
    let args = [&args[..], &["--root", b.to_str().unwrap()]].concat();
    let workers = [
        Worker::spawn(&nats.url(), &args, "", &[]),
        Worker::spawn(&nats.url(), &args, "", &[]),
    ];
    let remote = analyze_json(home.path(), &[&a, &b]);
    Worker::wait_for_total(&[&workers[0], &workers[1]], "finished task", 2);
    let ran: usize = workers.iter().map(|w| w.count("finished task")).sum();
    assert_eq!(
        ran,
        2,
        "the workers ran one analysis per repository: {:#?}",
        workers.iter().map(Worker::said).collect::<Vec<_>>()
    );
    let [local, remote] = [local, remote].map(|all| {
        let mut all = all;
        for entry in all["repositories"].as_array_mut().unwrap() {
            entry["analysis"] = findings(entry["analysis"].take());
        }
        all
    });
    assert_eq!(remote, local);
}
