//! ACP's transport: JSON-RPC 2.0 over a byte stream, one message per line (newline
//! delimited, no embedded newlines), both ways at once.
//!
//! As in `lsp/transport.rs`, bad input never stops the reader: a line that is not JSON is
//! answered with a parse error (`id: null`), JSON that is not a JSON-RPC message with an
//! invalid-request error (carrying its id when it had a usable one), and reading goes on at
//! the next line. A line longer than [`MAX_LINE`] is skipped to its end and answered the
//! same way. The agent's own requests to the client (`session/request_permission`,
//! `fs/*`, ...) get numeric ids of their own and are matched to their answers here.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use agent_client_protocol_schema::v1::{Error, ErrorCode, RequestId};
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

/// The longest line read (a prompt with embedded files can be large).
pub(crate) const MAX_LINE: usize = 64 << 20;

/// One message from the client.
#[derive(Debug, PartialEq)]
pub(crate) enum Incoming {
    /// A request: it gets exactly one answer.
    Request {
        id: RequestId,
        method: String,
        params: Value,
    },
    /// A notification: never answered.
    Notification { method: String, params: Value },
    /// The answer to one of the agent's requests.
    Response {
        id: RequestId,
        result: Result<Value, Error>,
    },
    /// Not a usable message: answered with this error (and this id, `null` when unknown).
    Invalid { id: RequestId, error: Error },
}

/// Classifies one line of input.
pub(crate) fn classify(line: &[u8]) -> Incoming {
    let value: Value = match serde_json::from_slice(line) {
        Ok(value) => value,
        Err(e) => {
            return Incoming::Invalid {
                id: RequestId::Null,
                error: Error::new(ErrorCode::ParseError.into(), format!("parse error: {e}")),
            };
        }
    };
    let invalid = |id: RequestId, why: &str| Incoming::Invalid {
        id,
        error: Error::new(
            ErrorCode::InvalidRequest.into(),
            format!("invalid request: {why}"),
        ),
    };
    let Value::Object(mut object) = value else {
        return invalid(
            RequestId::Null,
            "a message is a JSON object (batches are not supported)",
        );
    };
    let id = match object.remove("id") {
        None => None,
        Some(Value::Null) => Some(RequestId::Null),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(n) => Some(RequestId::Number(n)),
            None => return invalid(RequestId::Null, "`id` must be an integer or a string"),
        },
        Some(Value::String(s)) => Some(RequestId::Str(s)),
        Some(_) => return invalid(RequestId::Null, "`id` must be an integer or a string"),
    };
    if object.get("jsonrpc") != Some(&Value::String("2.0".into())) {
        return invalid(id.unwrap_or(RequestId::Null), "`jsonrpc` must be \"2.0\"");
    }
    let params = object.remove("params").unwrap_or(Value::Null);
    match (object.remove("method"), id) {
        (Some(Value::String(method)), Some(id)) => Incoming::Request { id, method, params },
        (Some(Value::String(method)), None) => Incoming::Notification { method, params },
        (Some(_), id) => invalid(id.unwrap_or(RequestId::Null), "`method` must be a string"),
        (None, Some(id)) => {
            let result = match (object.remove("result"), object.remove("error")) {
                (Some(result), None) => Ok(result),
                (None, Some(error)) => Err(serde_json::from_value(error).unwrap_or_else(|e| {
                    Error::new(
                        ErrorCode::InternalError.into(),
                        format!("the client's error answer is malformed: {e}"),
                    )
                })),
                _ => return invalid(id, "a response has exactly one of `result` and `error`"),
            };
            Incoming::Response { id, result }
        }
        (None, None) => invalid(RequestId::Null, "no `method` (nor an `id` of a response)"),
    }
}

/// Reads lines of at most [`MAX_LINE`] bytes; a longer one is read to its end and reported
/// as `Err` with its length so far.
pub(crate) async fn read_line<R: AsyncBufRead + Unpin>(
    input: &mut R,
    line: &mut Vec<u8>,
) -> std::io::Result<Option<Result<(), usize>>> {
    line.clear();
    let mut too_long = false;
    loop {
        let buf = input.fill_buf().await?;
        if buf.is_empty() {
            return Ok(if line.is_empty() && !too_long {
                None
            } else if too_long {
                Some(Err(line.len()))
            } else {
                Some(Ok(()))
            });
        }
        let (chunk, done) = match memchr::memchr(b'\n', buf) {
            Some(at) => (&buf[..at], Some(at + 1)),
            None => (buf, None),
        };
        if !too_long {
            if line.len() + chunk.len() > MAX_LINE {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(chunk);
            }
        }
        let used = done.unwrap_or(buf.len());
        input.consume(used);
        if done.is_some() {
            return Ok(Some(if too_long { Err(MAX_LINE) } else { Ok(()) }));
        }
    }
}

/// The sending half of the connection: answers, notifications and the agent's requests.
/// Cheap to clone.
#[derive(Clone)]
pub(crate) struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    out: mpsc::UnboundedSender<String>,
    pending: Mutex<HashMap<i64, oneshot::Sender<Result<Value, Error>>>>,
    next_id: AtomicI64,
}

impl Connection {
    /// A connection whose lines go to `out` (written by [`write_loop`]).
    pub(crate) fn new(out: mpsc::UnboundedSender<String>) -> Connection {
        Connection {
            inner: Arc::new(Inner {
                out,
                pending: Mutex::new(HashMap::new()),
                next_id: AtomicI64::new(0),
            }),
        }
    }

    fn send(&self, message: &Value) {
        // A value serializes to one line: serde_json escapes newlines inside strings.
        match serde_json::to_string(message) {
            Ok(line) => {
                let _ = self.inner.out.send(line);
            }
            Err(e) => tracing::error!("cannot serialize a message: {e}"),
        }
    }

    /// Answers request `id`.
    pub(crate) fn respond(&self, id: RequestId, result: Result<Value, Error>) {
        let message = match result {
            Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
            Err(error) => json!({"jsonrpc": "2.0", "id": id, "error": error}),
        };
        self.send(&message);
    }

    /// Sends a notification.
    pub(crate) fn notify(&self, method: &str, params: impl Serialize) {
        match serde_json::to_value(params) {
            Ok(params) => {
                self.send(&json!({"jsonrpc": "2.0", "method": method, "params": params}));
            }
            Err(e) => tracing::error!("cannot serialize {method}: {e}"),
        }
    }

    /// Sends a request to the client and waits for its answer.
    pub(crate) async fn request(
        &self,
        method: &str,
        params: impl Serialize,
    ) -> Result<Value, Error> {
        let params = serde_json::to_value(params).map_err(|e| {
            Error::new(
                ErrorCode::InternalError.into(),
                format!("cannot serialize {method}: {e}"),
            )
        })?;
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        self.inner.pending.lock().insert(id, reply);
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        answer.await.unwrap_or_else(|_| {
            Err(Error::new(
                ErrorCode::InternalError.into(),
                format!("the client closed the connection before answering {method}"),
            ))
        })
    }

    /// Hands the client's answer to the request waiting for it; an answer nobody waits
    /// for is logged.
    pub(crate) fn answered(&self, id: RequestId, result: Result<Value, Error>) {
        let waiting = match id {
            RequestId::Number(n) => self.inner.pending.lock().remove(&n),
            _ => None,
        };
        match waiting {
            Some(reply) => {
                let _ = reply.send(result);
            }
            None => tracing::warn!("the client answered request {id}, which the agent never sent"),
        }
    }

    /// Fails every request still waiting (the client is gone).
    pub(crate) fn close(&self) {
        self.inner.pending.lock().clear();
    }
}

/// Writes each line and a newline until every sender is gone: the lines waiting at once
/// go out in one write and one flush (tokio's stdout hands each write to a blocking thread;
/// a burst of tool updates should not pay that per line).
pub(crate) async fn write_loop<O: AsyncWrite + Unpin>(
    mut output: O,
    mut lines: mpsc::UnboundedReceiver<String>,
) {
    let mut bytes = Vec::with_capacity(64 * 1024);
    while let Some(line) = lines.recv().await {
        bytes.clear();
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        while let Ok(line) = lines.try_recv() {
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
        }
        if let Err(e) = output.write_all(&bytes).await {
            tracing::warn!("cannot write to the client: {e}");
            return;
        }
        if output.flush().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(incoming: &Incoming) -> Option<i32> {
        match incoming {
            Incoming::Invalid { error, .. } => Some(error.code.into()),
            _ => None,
        }
    }

    #[test]
    fn classifies_messages_and_names_what_is_wrong() {
        assert_eq!(
            classify(br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#),
            Incoming::Request {
                id: RequestId::Number(1),
                method: "initialize".into(),
                params: json!({})
            }
        );
        assert_eq!(
            classify(br#"{"jsonrpc":"2.0","method":"session/cancel","params":{"sessionId":"s"}}"#),
            Incoming::Notification {
                method: "session/cancel".into(),
                params: json!({"sessionId": "s"})
            }
        );
        assert_eq!(
            classify(br#"{"jsonrpc":"2.0","id":"x","result":{"outcome":1}}"#),
            Incoming::Response {
                id: RequestId::Str("x".into()),
                result: Ok(json!({"outcome": 1}))
            }
        );
        assert_eq!(code(&classify(b"{not json")), Some(-32700));
        assert_eq!(code(&classify(b"[1,2]")), Some(-32600));
        let Incoming::Invalid { id, error } = classify(br#"{"id":7,"method":"initialize"}"#) else {
            panic!("no jsonrpc member is invalid")
        };
        assert_eq!(
            (id, error.message.as_str()),
            (
                RequestId::Number(7),
                "invalid request: `jsonrpc` must be \"2.0\""
            )
        );
        assert_eq!(
            code(&classify(br#"{"jsonrpc":"2.0","id":1,"method":3}"#)),
            Some(-32600)
        );
    }

    #[tokio::test]
    async fn reads_lines_and_skips_one_that_is_too_long() {
        let mut input = Vec::new();
        input.extend_from_slice(b"first\n");
        input.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        input.extend_from_slice(b"\nlast");
        let mut reader = tokio::io::BufReader::new(&input[..]);
        let mut line = Vec::new();
        assert_eq!(
            read_line(&mut reader, &mut line).await.unwrap(),
            Some(Ok(()))
        );
        assert_eq!(line, b"first");
        assert_eq!(
            read_line(&mut reader, &mut line).await.unwrap(),
            Some(Err(MAX_LINE))
        );
        assert_eq!(
            read_line(&mut reader, &mut line).await.unwrap(),
            Some(Ok(()))
        );
        assert_eq!(line, b"last");
        assert_eq!(read_line(&mut reader, &mut line).await.unwrap(), None);
    }
}
