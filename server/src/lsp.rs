//! The language server: what `switchyard lsp` serves over stdio, and the only module that
//! knows LSP. It translates between the protocol and the core — [`Lanes`](crate::lanes),
//! [`Documents`](crate::documents), [`Config`](crate::config::Config) — which speak plain
//! Rust types; `to_proto`/`from_proto` convert, [`ext`] defines Switchyard's own methods and
//! commands (documented in `docs/protocol.md`).
//!
//! - `transport`: framing, dispatch, panic isolation (why not tower-lsp-server's loop: there).
//! - `server`: lifecycle, documents, configuration, the custom requests.
//! - `commands`: `workspace/executeCommand`.
//! - `ask`: `switchyard/ask` and `switchyard.ask`: the agent, its `switchyard/sessionUpdate`s.
//! - `progress`: work-done progress of long commands, `switchyard/laneStatus`.
//! - `settings`: the editor's settings as configuration layers.
//! - `log`: stderr and `window/logMessage`, never stdout.

mod ask;
mod commands;
mod edits;
pub mod ext;
mod from_proto;
mod log;
mod progress;
mod server;
mod sessions;
mod settings;
mod to_proto;
mod transport;

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

pub use log::LogForwarder;
/// The LSP types Switchyard's protocol is written in, for clients of [`ext`].
pub use tower_lsp_server::ls_types;

use crate::lanes::{EngineError, Lanes, LanesConfig};

/// Serves LSP on stdin/stdout until the client exits, and returns the process's exit code:
/// 0 after `shutdown` then `exit`, 1 otherwise, as LSP asks.
pub fn run_stdio() -> i32 {
    let log = LogForwarder::new();
    log.install();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("switchyard-lsp")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            return 1;
        }
    };
    let served = runtime.block_on(serve(tokio::io::stdin(), tokio::io::stdout(), log));
    // Stdin's reader thread may still be blocked in a read: do not wait for it.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match served {
        Ok(true) => 0,
        Ok(false) => {
            tracing::info!("the client left without shutdown and exit");
            1
        }
        Err(e) => {
            tracing::error!("{e}");
            1
        }
    }
}

/// Serves one client over `input`/`output` until it exits or the input ends; returns
/// whether it ended properly (`shutdown`, then `exit`).
pub async fn serve<I, O>(input: I, output: O, log: LogForwarder) -> Result<bool, EngineError>
where
    I: AsyncRead + Unpin,
    O: AsyncWrite + Unpin + Send + 'static,
{
    let lanes = Lanes::new(LanesConfig::default())?;
    let (service, socket) = server::Server::service(lanes, log);
    let ended = transport::serve(input, output, service, socket).await;
    Ok(ended.shutdown && ended.exit)
}

#[cfg(test)]
mod tests;
