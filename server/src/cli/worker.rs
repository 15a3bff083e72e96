//! `switchyard worker --broker URL --lanes generate,query --root DIR…`: serves external lanes.

use std::path::PathBuf;
use std::process::ExitCode;

use switchyard::broker::worker::{self, WorkerOptions};
use switchyard::lanes::Lane;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use super::fail;

/// `switchyard worker`'s arguments.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// The broker, `nats://host:port` (a token in SWITCHYARD_BROKER_TOKEN or a credentials
    /// file named by SWITCHYARD_BROKER_CREDS).
    #[arg(long)]
    broker: String,
    /// The lanes served, comma-separated: `query` (tool calls over the repositories it has)
    /// and `generate` (model calls, with this worker's provider key and base URL).
    #[arg(long, value_delimiter = ',', default_value = "query")]
    lanes: Vec<String>,
    /// A repository this worker has (repeat for more); the current directory by default
    /// when it serves `query`.
    #[arg(long = "root")]
    roots: Vec<PathBuf>,
    /// Tasks run at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
}

pub async fn run(a: WorkerArgs) -> ExitCode {
    let mut lanes = Vec::new();
    for name in &a.lanes {
        match name.as_str() {
            "query" => lanes.push(Lane::Query),
            "generate" => lanes.push(Lane::Generate),
            other => {
                return fail(
                    2,
                    &format!(
                        "--lanes: `{other}` cannot be served from a broker; only `query` and \
                         `generate` can"
                    ),
                );
            }
        }
    }
    let roots = if a.roots.is_empty() && lanes.contains(&Lane::Query) {
        match std::env::current_dir() {
            Ok(dir) => vec![dir],
            Err(e) => return fail(2, &format!("cannot read the current directory: {e}")),
        }
    } else {
        a.roots
    };
    let stop = CancellationToken::new();
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => return fail(1, &format!("cannot watch SIGTERM: {e}")),
    };
    let on_term = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        on_term.cancel();
    });
    let options = WorkerOptions {
        broker: a.broker,
        lanes,
        roots,
        concurrency: a.concurrency,
    };
    match worker::run(options, stop).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(1, &e),
    }
}
