//! What the benches share: criterion's median of a benchmark, read back from its output
//! folder, so each bench can print ratios against a baseline measured in the same run;
//! and the CPU time child processes used, which a shared machine's load disturbs far less
//! than their wall time.
// Each bench compiles its own copy of this module and uses part of it.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use switchyard::documents::Documents;
use switchyard::lanes::{Lanes, LanesConfig};
use switchyard::tools::{Toolbox, ToolsConfig, Workspace};

/// Eight patterns for the multi-grep benches: common and rare, literal and regex.
pub const EIGHT_PATTERNS: [&str; 8] = [
    "TODO",
    "unsafe fn",
    r"impl\s+Drop",
    "#\\[inline\\]",
    "panic!",
    "Box<dyn",
    "async fn",
    "SAFETY",
];

/// The registry corpus: the crate sources `cargo fetch` leaves under
/// `$CARGO_HOME/registry/src`.
pub fn registry_corpus() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    home.join("registry").join("src")
}

/// A runtime with two workers, as the server runs on this machine.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A toolbox over `root` on fresh lanes, with no cap on rendered output.
pub fn toolbox(runtime: &tokio::runtime::Runtime, root: &Path) -> Toolbox {
    let lanes = Lanes::with_runtime(LanesConfig::default(), runtime.handle().clone()).unwrap();
    let config = ToolsConfig {
        max_output_bytes: 0,
        ..ToolsConfig::default()
    };
    Toolbox::new(
        Workspace::new([root.to_path_buf()]).unwrap(),
        lanes,
        Documents::new(),
        config,
    )
}

/// The median time of `group/function` in nanoseconds, from the estimates criterion wrote
/// under `dir`; `None` when that benchmark did not run.
pub fn median_ns(dir: &Path, group: &str, function: &str) -> Option<f64> {
    let path = dir
        .join(group)
        .join(function)
        .join("new")
        .join("estimates.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}

/// CPU time (user + system) used by this process's waited-for children so far, from
/// `/proc/self/stat` (in clock ticks, 100 per second on Linux).
fn children_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // cutime and cstime are fields 16 and 17 of the whole line: 13 and 14 after the name.
    let ticks: u64 = fields.get(13)?.parse::<u64>().ok()? + fields.get(14)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// The mean CPU time per run of a child process that `run_once` starts and waits for.
pub fn cpu_per_run(runs: u32, mut run_once: impl FnMut()) -> Option<Duration> {
    let before = children_cpu()?;
    for _ in 0..runs {
        run_once();
    }
    Some((children_cpu()? - before) / runs)
}

/// Reads one `Content-Length`-framed JSON-RPC message (a language server's output).
pub fn read_frame(input: &mut impl std::io::BufRead) -> serde_json::Value {
    let mut length = 0;
    loop {
        let mut line = String::new();
        input
            .read_line(&mut line)
            .expect("the server's output can be read");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(value) = line.strip_prefix("Content-Length:") {
            length = value.trim().parse().expect("Content-Length is a number");
        }
    }
    let mut body = vec![0; length];
    std::io::Read::read_exact(input, &mut body).expect("the server's output can be read");
    serde_json::from_slice(&body).expect("the server sends JSON")
}
