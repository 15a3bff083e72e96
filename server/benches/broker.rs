//! External lanes on a real NATS JetStream broker against the in-process lane, over the
//! real binaries (`switchyard lsp` as the submitter, `switchyard worker` processes):
//! 1. per-task overhead: a `switchyard.runTool ls` round trip with the Query lane on the
//!    broker vs in this server (target: ≤ 2 ms more at p50 on loopback);
//! 2. throughput: 1,000 small tasks in flight at once, with 1 vs 2 workers;
//! 3. recovery: a task whose worker is SIGKILLed mid-run, from the kill to its answer by
//!    the other (already waiting) worker, against the lease (`ack_wait`) it has to wait out.
//!    The task is a model call on the external Generate lane that the mock model holds (it
//!    answers the first request with headers and then silence), so it cannot finish before
//!    the kill however fast the build; the redelivery is answered at once.
//!
//! Prints a table of ratios measured in the same run. Needs `nats-server` on PATH
//! (tests/provision installs it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;
use switchyard::lsp::ext::{Ask, AskParams, RunTool, RunToolParams};
use switchyard_tests::lsp_client::{ClientOptions, Ext, LspClient};
use switchyard_tests::mock_model::{MockModel, Response, Rule, Script};
use switchyard_tests::nats::NatsServer;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");
const ROUND_TRIPS: usize = 300;
const BURST: usize = 1_000;
const LEASE_MS: u64 = 1_000;

/// A `switchyard worker`; its stderr lines arrive on `lines`.
struct Worker {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Worker {
    /// A worker of the Query lane over `root`.
    fn start(url: &str, root: &Path, home: &Path) -> Worker {
        let root = root.to_str().unwrap();
        let args = ["--lanes", "query", "--concurrency", "4", "--root", root];
        Worker::spawn(url, &args, &[], home)
    }

    /// A worker of the Generate lane, calling `model` with its own key.
    fn model(url: &str, model: &MockModel, home: &Path) -> Worker {
        let env = [
            ("OPENAI_BASE_URL", model.openai_base_url()),
            ("OPENAI_API_KEY", "sk-bench-worker".to_string()),
        ];
        Worker::spawn(url, &["--lanes", "generate"], &env, home)
    }

    fn spawn(url: &str, args: &[&str], env: &[(&str, String)], home: &Path) -> Worker {
        let mut child = Command::new(BIN)
            .args(["worker", "--broker", url])
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("XDG_CONFIG_HOME", home.join("worker-config"))
            .env("XDG_STATE_HOME", home.join("worker-state"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let worker = Worker { child, lines };
        worker.wait_for("serving");
        worker
    }

    fn wait_for(&self, text: &str) {
        loop {
            let line = self.lines.recv_timeout(Duration::from_secs(60)).unwrap();
            if line.contains(text) {
                return;
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn options(root: &Path, home: &Path, broker: Option<&str>) -> ClientOptions {
    let text = match broker {
        Some(url) => format!(
            "[broker]\nurl = \"{url}\"\nlease_ms = {LEASE_MS}\nmax_deliver = 5\n\n\
             [lanes.query]\nmode = \"external\"\n"
        ),
        None => String::new(),
    };
    configured(
        root,
        &home.join(if broker.is_some() {
            "on-broker"
        } else {
            "here"
        }),
        &text,
    )
}

/// A server whose model calls go to the broker's Generate lane: it names the model, it has
/// no key.
fn generate_options(root: &Path, home: &Path, url: &str) -> ClientOptions {
    let text = format!(
        "[broker]\nurl = \"{url}\"\nlease_ms = {LEASE_MS}\nmax_deliver = 5\n\n\
         [lanes.generate]\nmode = \"external\"\n\n\
         [llm]\nprovider = \"openai\"\nmodel = \"mock-model\"\ncontext_window = 100000\n"
    );
    configured(root, &home.join("generate"), &text)
}

fn configured(root: &Path, config: &Path, text: &str) -> ClientOptions {
    std::fs::create_dir_all(config.join("switchyard")).unwrap();
    std::fs::write(config.join("switchyard/config.toml"), text).unwrap();
    let mut options = ClientOptions::new(root);
    options.env = vec![
        ("XDG_CONFIG_HOME".to_string(), config.display().to_string()),
        ("SWITCHYARD_LOG".to_string(), "warn".to_string()),
    ];
    options
}

fn ls() -> RunToolParams {
    RunToolParams {
        name: "ls".into(),
        arguments: json!({}),
    }
}

/// The p50 of `n` sequential `ls` round trips, after a warm-up.
async fn p50(client: &LspClient, n: usize) -> Duration {
    for _ in 0..20 {
        client.command::<RunTool>(ls()).await.unwrap();
    }
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        client.command::<RunTool>(ls()).await.unwrap();
        times.push(started.elapsed());
    }
    times.sort();
    times[n / 2]
}

/// The wall time of `BURST` `ls` calls sent at once.
async fn burst(client: &LspClient) -> Duration {
    let started = Instant::now();
    let calls = (0..BURST).map(|_| client.command::<RunTool>(ls()));
    for result in futures::future::join_all(calls).await {
        result.unwrap();
    }
    started.elapsed()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let nats = NatsServer::start();
    let url = nats.url();
    let home = tempfile::tempdir().unwrap();
    let small = tempfile::tempdir().unwrap();
    for i in 0..20 {
        std::fs::write(small.path().join(format!("m{i}.rs")), "fn f() {}\n").unwrap();
    }
    let (here, on_broker, one, two, recovered) = runtime.block_on(async {
        let (local, _) = LspClient::initialized(options(small.path(), home.path(), None)).await;
        let here = p50(&local, ROUND_TRIPS).await;
        let burst_here = burst(&local).await;
        local.shutdown_and_exit().await;

        let a = Worker::start(&url, small.path(), home.path());
        let (remote, _) =
            LspClient::initialized(options(small.path(), home.path(), Some(&url))).await;
        let on_broker = p50(&remote, ROUND_TRIPS).await;
        let one = burst(&remote).await;
        let b = Worker::start(&url, small.path(), home.path());
        let two = burst(&remote).await;
        remote.shutdown_and_exit().await;
        drop((a, b));

        // Recovery: worker A takes a model call the mock holds and is killed; B, already
        // waiting, answers its redelivery after the lease.
        let model = MockModel::start(Script::new(vec![
            Rule::openai(Response::hang()),
            Rule::openai(Response::text("Recovered.")),
        ]))
        .await;
        let mut a = Worker::model(&url, &model, home.path());
        let (remote, _) =
            LspClient::initialized(generate_options(small.path(), home.path(), &url)).await;
        let ask = remote.server.request::<Ext<Ask>>(AskParams {
            session_id: None,
            prompt: "Still there?".into(),
            context: None,
            model: None,
            provider: None,
            work_done_token: None,
        });
        let killer = async {
            model.wait_for_in_flight(1, Duration::from_secs(60)).await;
            let b = Worker::model(&url, &model, home.path());
            a.child.kill().unwrap();
            a.child.wait().unwrap();
            (b, Instant::now())
        };
        let (answer, (_b, killed)) = tokio::join!(ask, killer);
        let recovered = killed.elapsed();
        let answer = answer.unwrap();
        assert!(
            format!("{answer:?}").contains("Recovered."),
            "the redelivered call was answered: {answer:?}"
        );
        assert_eq!(model.requests().len(), 2, "one call, then its redelivery");
        remote.shutdown_and_exit().await;
        (here, on_broker, (one, burst_here), two, recovered)
    });
    let (one, burst_here) = one;
    let lease = Duration::from_millis(LEASE_MS);
    println!();
    println!("| what | figure | target |");
    println!("|---|---|---|");
    println!(
        "| `ls` round trip p50, Query lane on the broker vs in the server ({ROUND_TRIPS} calls) | {:.2} ms vs {:.2} ms = +{:.2} ms ({:.2}x) | ≤ +2 ms |",
        ms(on_broker),
        ms(here),
        ms(on_broker.saturating_sub(here)),
        on_broker.as_secs_f64() / here.as_secs_f64()
    );
    println!(
        "| {BURST} `ls` at once through the broker: 1 worker / 2 workers (in the server: {:.0} ms) | {:.0} ms / {:.0} ms = {:.2}x faster with 2 | — |",
        ms(burst_here),
        ms(one),
        ms(two),
        one.as_secs_f64() / two.as_secs_f64()
    );
    println!(
        "| a model call whose worker is SIGKILLed mid-call: kill to answer vs the lease | {:.0} ms vs {:.0} ms = {:.2}x | ≈ 1x |",
        ms(recovered),
        ms(lease),
        recovered.as_secs_f64() / lease.as_secs_f64()
    );
}
