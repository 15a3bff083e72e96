//! The language server against its budgets, on the real binary over stdio:
//! 1. `initialize` round trip (target ≤ 20 ms), against a `switchyard.queueStats` round trip
//!    on a warm server measured in the same run;
//! 2. spawn to `initialize` answered, against running `switchyard --version`;
//! 3. idle RSS after `initialize` (target ≤ 30 MiB), against the same process before it.
//!
//! Criterion measures the times; the closing table prints ratios from its medians, and the
//! RSS from `/proc`. The client here writes JSON-RPC by hand: it measures, it does not test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::median_ns;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use criterion::Criterion;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    next_id: u64,
}

impl Server {
    fn start(root: &Path) -> Server {
        let mut child = Command::new(BIN)
            .arg("lsp")
            .current_dir(root)
            .env("XDG_CONFIG_HOME", root.join(".config"))
            .env("SWITCHYARD_LOG", "warn")
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
            next_id: 0,
        }
    }

    fn send(&mut self, message: &Value) {
        let body = message.to_string();
        write!(self.stdin, "Content-Length: {}\r\n\r\n{body}", body.len()).unwrap();
        self.stdin.flush().unwrap();
    }

    fn receive(&mut self) -> Value {
        common::read_frame(&mut self.stdout)
    }

    /// Sends a request and waits for its response, skipping what else arrives.
    fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let message = self.receive();
            if message["id"] == json!(id) && message.get("method").is_none() {
                return message;
            }
        }
    }

    fn notify(&mut self, method: &str, params: Value) {
        self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
    }

    fn initialize(&mut self, root: &Path) -> Value {
        let uri = format!("file://{}", root.display());
        let reply = self.request(
            "initialize",
            json!({
                "processId": std::process::id(),
                "rootUri": uri,
                "workspaceFolders": [{"uri": uri, "name": "bench"}],
                "capabilities": {"window": {"workDoneProgress": true}},
            }),
        );
        assert!(reply.get("result").is_some(), "{reply}");
        reply
    }

    fn stop(mut self) {
        self.request("shutdown", Value::Null);
        self.notify("exit", Value::Null);
        self.child.wait().unwrap();
    }

    /// Resident set size now, in bytes.
    fn rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap();
        kib * 1024
    }
}

/// A small workspace: a few source files.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    for i in 0..20 {
        let text = format!("//! Module {i}.\n\npub fn f{i}() -> u32 {{\n    {i}\n}}\n");
        std::fs::write(dir.path().join(format!("src/m{i}.rs")), text).unwrap();
    }
    dir
}

fn initialize(c: &mut Criterion, root: &Path) {
    let mut group = c.benchmark_group("initialize");
    group.sample_size(20);
    group.bench_function("round_trip", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut server = Server::start(root);
                let started = Instant::now();
                server.initialize(root);
                total += started.elapsed();
                server.stop();
            }
            total
        });
    });
    group.bench_function("spawn_to_initialized", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let started = Instant::now();
                let mut server = Server::start(root);
                server.initialize(root);
                total += started.elapsed();
                server.stop();
            }
            total
        });
    });
    group.finish();
}

fn baselines(c: &mut Criterion, root: &Path) {
    let mut group = c.benchmark_group("baseline");
    group.sample_size(20);
    let mut server = Server::start(root);
    server.initialize(root);
    server.notify("initialized", json!({}));
    group.bench_function("queue_stats_round_trip", |b| {
        b.iter(|| {
            server.request(
                "workspace/executeCommand",
                json!({"command": "switchyard.queueStats"}),
            )
        });
    });
    server.stop();
    group.bench_function("version_process", |b| {
        b.iter(|| {
            let status = Command::new(BIN)
                .arg("--version")
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
        });
    });
    group.finish();
}

/// RSS before `initialize` and after it, once idle with a document open.
fn idle_rss(root: &Path) -> (u64, u64) {
    let mut server = Server::start(root);
    // Before initialize: the process is up and waiting on stdin.
    std::thread::sleep(Duration::from_millis(300));
    let before = server.rss();
    server.initialize(root);
    server.notify("initialized", json!({}));
    let uri = format!("file://{}/src/m0.rs", root.display());
    server.notify(
        "textDocument/didOpen",
        json!({"textDocument": {"uri": uri, "languageId": "rust", "version": 1, "text": "fn main() {}\n"}}),
    );
    server.request(
        "workspace/executeCommand",
        json!({"command": "switchyard.runTool", "arguments": [{"name": "grep", "arguments": {"pattern": "pub fn"}}]}),
    );
    std::thread::sleep(Duration::from_secs(1));
    let after = server.rss();
    server.stop();
    (before, after)
}

fn main() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("criterion-lsp");
    let mut c = Criterion::default()
        .output_directory(&out)
        .configure_from_args();
    let root = workspace();
    initialize(&mut c, root.path());
    baselines(&mut c, root.path());
    c.final_summary();
    let (before, after) = idle_rss(root.path());

    let m = |g: &str, f: &str| median_ns(&out, g, f);
    let ms = |ns: f64| ns / 1e6;
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!("\nswitchyard lsp (criterion medians, this run):");
    if let (Some(init), Some(stats)) = (
        m("initialize", "round_trip"),
        m("baseline", "queue_stats_round_trip"),
    ) {
        println!(
            "  initialize round trip   {:8.2} ms (target ≤ 20 ms) = {:6.1}x a queueStats round trip ({:.3} ms)",
            ms(init),
            init / stats,
            ms(stats)
        );
    }
    if let (Some(cold), Some(version)) = (
        m("initialize", "spawn_to_initialized"),
        m("baseline", "version_process"),
    ) {
        println!(
            "  spawn to initialized    {:8.2} ms               = {:6.1}x running `switchyard --version` ({:.2} ms)",
            ms(cold),
            cold / version,
            ms(version)
        );
    }
    println!(
        "  idle RSS after initialize {:6.1} MiB (target ≤ 30 MiB) = {:.2}x the process before initialize ({:.1} MiB)",
        mib(after),
        after as f64 / before as f64,
        mib(before)
    );
}
