//! `mock-model`: the mock model server as a process, for the suites that are not Rust
//! (Neovim, VS Code).
//!
//! Prints `listening http://127.0.0.1:PORT` as its first stdout line, optionally writes
//! the port to a file, appends each request to a JSON-lines record, and exits when stdin
//! reaches EOF or its lifetime ends, so it never outlives the test that started it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use switchyard_tests::mock_model::{MockModel, MockOptions, Script};

/// A mock OpenAI / Anthropic model server on 127.0.0.1 that serves a scripted conversation.
#[derive(Parser)]
#[command(name = "mock-model")]
struct Args {
    /// The script: JSON with a `rules` list (see switchyard_tests::mock_model).
    #[arg(long, value_name = "FILE.json")]
    script: PathBuf,
    /// Append every request to this file as one JSON object per line.
    #[arg(long, value_name = "FILE.jsonl")]
    record: Option<PathBuf>,
    /// Write the bound port (and a newline) to this file once listening.
    #[arg(long, value_name = "FILE")]
    port_file: Option<PathBuf>,
    /// The model's context window in tokens (a quarter of the body's characters): longer
    /// requests get the provider's context-length error.
    #[arg(long, value_name = "TOKENS")]
    context_window: Option<u64>,
    /// Exit after this many seconds even if stdin stays open.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    max_lifetime_secs: u64,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mock-model: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.script)
        .with_context(|| format!("cannot read script {}", args.script.display()))?;
    let script = Script::from_json(&text).map_err(anyhow::Error::msg)?;
    let model = MockModel::start_with(
        script,
        MockOptions {
            record_file: args.record,
            port: 0,
            context_window: args.context_window,
            ..MockOptions::default()
        },
    )?;

    // The port file first: whoever sees the `listening` line can rely on it.
    if let Some(path) = &args.port_file {
        write_atomically(path, &format!("{}\n", model.addr().port()))?;
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening {}", model.base_url())?;
    stdout.flush()?;
    drop(stdout);

    // A plain thread reads stdin, so a blocked read never holds up the exit.
    let (closed_tx, closed_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buffer = [0u8; 4096];
        while matches!(stdin.read(&mut buffer), Ok(n) if n > 0) {}
        let _ = closed_tx.send(());
    });
    let lifetime = Duration::from_secs(args.max_lifetime_secs);
    if let Err(mpsc::RecvTimeoutError::Timeout) = closed_rx.recv_timeout(lifetime) {
        eprintln!(
            "mock-model: lifetime of {}s reached, exiting",
            args.max_lifetime_secs
        );
    }
    drop(model);
    Ok(())
}

/// Writes `contents` to a temporary sibling and renames it into place, so a reader polling
/// for `path` never sees it half written.
fn write_atomically(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, contents)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("cannot rename {} into place", temporary.display()))?;
    Ok(())
}
