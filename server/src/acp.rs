//! `switchyard acp`: the Agent Client Protocol (protocol version 1, the schema of the
//! `agent-client-protocol-schema` crate pinned in Cargo.toml) over stdio, one JSON-RPC
//! message per line. The only module that knows ACP; it converts between the protocol and
//! [`Core`](crate::core::Core) as `lsp/` does for LSP.
//!
//! - `transport.rs`: line framing, message classification, the agent's own requests;
//! - `server.rs`: the handlers, one `Core` per working directory, the prompt forwarder;
//! - `to_proto.rs` / `from_proto.rs`: the conversions.
//!
//! Every request runs on its own task, so a long `session/prompt` never holds up
//! `session/cancel`, another session's prompt or the answers to the agent's requests;
//! notifications are handled in the order they arrive. A handler that panics is answered
//! with an internal error naming the method.

mod from_proto;
mod server;
mod to_proto;
mod transport;

use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use tokio::io::{AsyncRead, AsyncWrite, BufReader};
use tokio::sync::mpsc;

use agent_client_protocol_schema::v1::{Error, ErrorCode, RequestId};
use transport::{Connection, Incoming};

/// Serves ACP on `input` and `output` until the input ends.
pub async fn serve<I, O>(input: I, output: O)
where
    I: AsyncRead + Unpin,
    O: AsyncWrite + Unpin + Send + 'static,
{
    let (lines, written) = mpsc::unbounded_channel();
    let writer = tokio::spawn(transport::write_loop(output, written));
    let conn = Connection::new(lines);
    let agent = server::Agent::new(conn.clone());
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let mut line = Vec::new();
    loop {
        let read = match transport::read_line(&mut input, &mut line).await {
            Ok(Some(read)) => read,
            Ok(None) => break,
            Err(e) => {
                tracing::warn!("cannot read from the client: {e}");
                break;
            }
        };
        if let Err(limit) = read {
            conn.respond(
                RequestId::Null,
                Err(Error::new(
                    ErrorCode::ParseError.into(),
                    format!("parse error: a message longer than {limit} bytes was skipped"),
                )),
            );
            continue;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match transport::classify(&line) {
            Incoming::Request { id, method, params } => {
                let agent = agent.clone();
                let conn = conn.clone();
                tokio::spawn(async move {
                    let answer = AssertUnwindSafe(agent.request(&method, params))
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|_| {
                            Err(Error::new(
                                ErrorCode::InternalError.into(),
                                format!("internal error: the handler of {method} panicked"),
                            ))
                        });
                    conn.respond(id, answer);
                });
            }
            Incoming::Notification { method, params } => agent.notification(&method, params),
            Incoming::Response { id, result } => conn.answered(id, result),
            Incoming::Invalid { id, error } => conn.respond(id, Err(error)),
        }
    }
    conn.close();
    drop(agent);
    drop(conn);
    // Answers still being computed finish on their tasks; the writer ends with the last
    // sender.
    let _ = writer.await;
}
