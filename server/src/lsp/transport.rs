//! The JSON-RPC transport under the server: `Content-Length` framing over any byte stream,
//! feeding tower-lsp-server's `LspService` and writing what it and the `Client` send.
//!
//! tower-lsp-server's own `Server` loop is not used because of three things it does (checked
//! against 0.23): it stops reading at the first malformed frame (tokio-util's `FramedRead`
//! ends the stream after a decode error), it polls every handler inside one task, four at a
//! time (so a long handler holds up the rest), and a handler's panic unwinds through it and
//! takes the server down. Here:
//! - a malformed frame is answered with a JSON-RPC error (`id: null`) and reading goes on at
//!   the next `Content-Length` header;
//! - each request runs on its own tokio task; notifications run inline, in arrival order, so
//!   `didChange`s apply in the order they were sent (a notification handler must therefore
//!   never wait on the client);
//! - a handler that panics is answered with an internal error naming the method;
//! - a `$/` request the server does not know is answered with `MethodNotFound` (the
//!   library drops that answer, which LSP allows for notifications only).

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures::{FutureExt, SinkExt, StreamExt};
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Id, Request, Response};
use tower_lsp_server::{ClientSocket, ExitedError};
use tower_service::Service;

/// The most header bytes accepted before their blank line.
const MAX_HEADER: usize = 8 * 1024;
/// The largest body accepted.
const MAX_BODY: usize = 256 << 20;
const CONTENT_LENGTH: &[u8] = b"Content-Length";

/// What one frame turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A well-framed body (not yet known to be JSON).
    Body(Vec<u8>),
    /// A header that could not be read; the reader skips to the next `Content-Length`.
    Malformed(String),
}

/// Reads `Content-Length`-framed bodies, recovering from malformed headers.
pub(crate) struct FrameReader<R> {
    input: R,
    buf: Vec<u8>,
    body_len: Option<usize>,
    resync: bool,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    pub(crate) fn new(input: R) -> FrameReader<R> {
        FrameReader {
            input,
            buf: Vec::with_capacity(8 * 1024),
            body_len: None,
            resync: false,
        }
    }

    /// The next frame; `None` at the end of the input.
    pub(crate) async fn next(&mut self) -> std::io::Result<Option<Frame>> {
        loop {
            if let Some(frame) = self.parse() {
                return Ok(Some(frame));
            }
            if self.input.read_buf(&mut self.buf).await? == 0 {
                return Ok(None);
            }
        }
    }

    fn parse(&mut self) -> Option<Frame> {
        loop {
            if self.resync {
                match find_header(&self.buf) {
                    Some(at) => {
                        self.buf.drain(..at);
                        self.resync = false;
                    }
                    None => {
                        // Keep a tail that may be the start of a split header name.
                        let keep = self.buf.len().min(CONTENT_LENGTH.len() - 1);
                        self.buf.drain(..self.buf.len() - keep);
                        return None;
                    }
                }
            }
            if let Some(len) = self.body_len {
                if self.buf.len() < len {
                    return None;
                }
                self.body_len = None;
                return Some(Frame::Body(self.buf.drain(..len).collect()));
            }
            let Some(end) = find(&self.buf, b"\r\n\r\n") else {
                if self.buf.len() > MAX_HEADER {
                    self.skip_to_next_header();
                    return Some(Frame::Malformed(format!(
                        "no end of header within {MAX_HEADER} bytes"
                    )));
                }
                return None;
            };
            match content_length(&self.buf[..end]) {
                Ok(len) => {
                    self.buf.drain(..end + 4);
                    self.body_len = Some(len);
                }
                Err(why) => {
                    self.skip_to_next_header();
                    return Some(Frame::Malformed(why));
                }
            }
        }
    }

    fn skip_to_next_header(&mut self) {
        // Past the first byte, so a bad `Content-Length` header is not found again.
        self.buf.drain(..1.min(self.buf.len()));
        self.resync = true;
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(haystack, needle)
}

/// Where the next header name `Content-Length` starts, in any case.
fn find_header(haystack: &[u8]) -> Option<usize> {
    haystack
        .windows(CONTENT_LENGTH.len())
        .position(|window| window.eq_ignore_ascii_case(CONTENT_LENGTH))
}

/// The body length a header block announces.
fn content_length(header: &[u8]) -> Result<usize, String> {
    let header = String::from_utf8_lossy(header);
    let mut length = None;
    for line in header.split("\r\n") {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("header line without a colon: {line:?}"))?;
        if name.trim().eq_ignore_ascii_case("content-length") {
            let value = value.trim();
            let n: usize = value
                .parse()
                .map_err(|_| format!("invalid Content-Length {value:?}"))?;
            if n > MAX_BODY {
                return Err(format!(
                    "Content-Length {n} is above the limit of {MAX_BODY}"
                ));
            }
            length = Some(n);
        }
    }
    length.ok_or_else(|| "missing Content-Length header".to_string())
}

/// A decoded body.
#[derive(Debug)]
enum Incoming {
    Request(Request),
    Response(Response),
    /// Not a message: answered with this error.
    Invalid(Response),
}

fn classify(body: &[u8]) -> Incoming {
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(e) => {
            return Incoming::Invalid(Response::from_error(
                Id::Null,
                error(ErrorCode::ParseError, format!("parse error: {e}")),
            ));
        }
    };
    let id = value
        .get("id")
        .and_then(|id| serde_json::from_value::<Id>(id.clone()).ok())
        .unwrap_or(Id::Null);
    let invalid = |why: String| {
        Incoming::Invalid(Response::from_error(
            id.clone(),
            error(ErrorCode::InvalidRequest, why),
        ))
    };
    let Some(object) = value.as_object() else {
        return invalid("invalid request: a message must be a JSON object".into());
    };
    if object.contains_key("method") {
        match serde_json::from_value::<Request>(value) {
            Ok(request) => Incoming::Request(request),
            Err(e) => invalid(format!("invalid request: {e}")),
        }
    } else if object.contains_key("result") || object.contains_key("error") {
        match serde_json::from_value::<Response>(value) {
            Ok(response) => Incoming::Response(response),
            Err(e) => invalid(format!("invalid response: {e}")),
        }
    } else {
        invalid("invalid request: neither a request, a notification nor a response".into())
    }
}

fn error(code: ErrorCode, message: String) -> Error {
    Error {
        code,
        message: message.into(),
        data: None,
    }
}

enum Outgoing {
    Message(String),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
struct Outbox(mpsc::UnboundedSender<Outgoing>);

impl Outbox {
    fn send(&self, message: &impl Serialize) {
        match serde_json::to_string(message) {
            Ok(body) => {
                let _ = self.0.send(Outgoing::Message(body));
            }
            Err(e) => tracing::error!("cannot serialize an outgoing message: {e}"),
        }
    }
}

async fn write_loop<O: AsyncWrite + Unpin>(
    mut output: O,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    while let Some(item) = rx.recv().await {
        match item {
            Outgoing::Message(body) => {
                let header = format!("Content-Length: {}\r\n\r\n", body.len());
                let written = async {
                    output.write_all(header.as_bytes()).await?;
                    output.write_all(body.as_bytes()).await?;
                    output.flush().await
                };
                if let Err(e) = written.await {
                    tracing::error!("cannot write to the client: {e}");
                    return;
                }
            }
            Outgoing::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ended {
    /// `shutdown` was requested and accepted before `exit` (or the end of the input); a
    /// `shutdown` refused (before `initialize`) does not count.
    pub shutdown: bool,
    /// `exit` was received (else the input ended).
    pub exit: bool,
}

/// Serves `service` over `input`/`output` until `exit` or the end of the input.
pub(crate) async fn serve<I, O, S, F>(
    input: I,
    output: O,
    mut service: S,
    socket: ClientSocket,
) -> Ended
where
    I: AsyncRead + Unpin,
    O: AsyncWrite + Unpin + Send + 'static,
    S: Service<Request, Response = Option<Response>, Error = ExitedError, Future = F>,
    F: Future<Output = Result<Option<Response>, ExitedError>> + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let outbox = Outbox(tx);
    let writer = tokio::spawn(write_loop(output, rx));
    let (mut to_client, mut from_client) = socket.split();
    // Replies of requests handled on their own tasks go out through the same task as what
    // the server sends the client, after whatever the socket already holds: a handler's
    // notifications (awaited before it returns) precede its reply.
    let (replies, mut replies_rx) = mpsc::unbounded_channel::<Response>();
    let forward = {
        let outbox = outbox.clone();
        tokio::spawn(async move {
            let (mut socket_open, mut replies_open) = (true, true);
            while socket_open || replies_open {
                tokio::select! {
                    biased;
                    request = to_client.next(), if socket_open => match request {
                        Some(request) => outbox.send(&request),
                        None => socket_open = false,
                    },
                    reply = replies_rx.recv(), if replies_open => match reply {
                        Some(reply) => outbox.send(&reply),
                        None => replies_open = false,
                    },
                }
            }
        })
    };
    let mut reader = FrameReader::new(input);
    let mut ended = Ended {
        shutdown: false,
        exit: false,
    };
    loop {
        let body = match reader.next().await {
            Ok(Some(Frame::Body(body))) => body,
            Ok(Some(Frame::Malformed(why))) => {
                tracing::warn!("malformed frame from the client: {why}");
                let reply = error(ErrorCode::ParseError, format!("malformed frame: {why}"));
                outbox.send(&Response::from_error(Id::Null, reply));
                continue;
            }
            Ok(None) => break,
            Err(e) => {
                tracing::error!("cannot read from the client: {e}");
                break;
            }
        };
        let request = match classify(&body) {
            Incoming::Request(request) => request,
            Incoming::Response(response) => {
                if from_client.send(response).await.is_err() {
                    tracing::debug!("a response arrived after the server exited");
                }
                continue;
            }
            Incoming::Invalid(reply) => {
                tracing::warn!("invalid message from the client: {:?}", reply.error());
                outbox.send(&reply);
                continue;
            }
        };
        let method = request.method().to_string();
        let id = request.id().cloned();
        if futures::future::poll_fn(|cx| service.poll_ready(cx))
            .await
            .is_err()
        {
            break;
        }
        let exit = method == "exit";
        let handled = match std::panic::catch_unwind(AssertUnwindSafe(|| service.call(request))) {
            Ok(future) => guarded(method.clone(), id.clone(), future).boxed(),
            Err(panic) => futures::future::ready(panicked(&method, id.clone(), &*panic)).boxed(),
        };
        // Notifications in order; `initialize` before anything else, `shutdown` before what
        // follows it (`exit`); other requests concurrently.
        if id.is_none() || method == "initialize" || method == "shutdown" {
            let reply = handled.await.or_else(|| unanswered(&method, id));
            if let Some(reply) = reply {
                // Only a `shutdown` the server accepted makes the `exit` after it a clean one.
                ended.shutdown |= method == "shutdown" && reply.is_ok();
                outbox.send(&reply);
            }
        } else {
            let replies = replies.clone();
            tokio::spawn(async move {
                if let Some(reply) = handled.await.or_else(|| unanswered(&method, id)) {
                    let _ = replies.send(reply);
                }
            });
        }
        if exit {
            ended.exit = true;
            break;
        }
    }
    // Let what is already queued reach the client, briefly.
    let (done, flushed) = oneshot::channel();
    let _ = outbox.0.send(Outgoing::Flush(done));
    let _ = tokio::time::timeout(Duration::from_secs(2), flushed).await;
    forward.abort();
    writer.abort();
    ended
}

/// The answer to a request the service left unanswered. tower-lsp-server drops its own
/// `MethodNotFound` for every method starting with `$/`, but LSP only lets a server ignore
/// `$/` *notifications*: a request with an id always gets a response.
fn unanswered(method: &str, id: Option<Id>) -> Option<Response> {
    let id = id?;
    method.starts_with("$/").then(|| {
        Response::from_error(
            id,
            error(
                ErrorCode::MethodNotFound,
                format!("method not found: {method} (Switchyard does not implement it)"),
            ),
        )
    })
}

/// Runs a handler, turning a panic into an internal error.
async fn guarded<F>(method: String, id: Option<Id>, future: F) -> Option<Response>
where
    F: Future<Output = Result<Option<Response>, ExitedError>>,
{
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(Ok(reply)) => reply,
        Ok(Err(_exited)) => None,
        Err(panic) => panicked(&method, id, &*panic),
    }
}

fn panicked(method: &str, id: Option<Id>, panic: &(dyn std::any::Any + Send)) -> Option<Response> {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    tracing::error!("the handler of {method} panicked: {message}");
    let reply = error(
        ErrorCode::InternalError,
        format!("internal error: the handler of {method} panicked: {message}"),
    );
    id.map(|id| Response::from_error(id, reply))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn frames(input: &[u8]) -> Vec<Frame> {
        // Feed the input a few bytes at a time: frames must not depend on read boundaries.
        let (mut tx, rx) = tokio::io::duplex(7);
        let input = input.to_vec();
        tokio::spawn(async move {
            for chunk in input.chunks(5) {
                tx.write_all(chunk).await.unwrap();
            }
        });
        let mut reader = FrameReader::new(rx);
        let mut frames = Vec::new();
        while let Some(frame) = reader.next().await.unwrap() {
            frames.push(frame);
        }
        frames
    }

    fn body(s: &str) -> Frame {
        Frame::Body(s.as_bytes().to_vec())
    }

    #[tokio::test]
    async fn reads_frames_and_recovers_from_bad_headers() {
        let input = concat!(
            "Content-Length: 2\r\n\r\n{}",
            "Content-Length: 2\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n[]",
            "Content-Type: text/plain\r\n\r\n",
            "garbage Content-Length: x\r\n\r\n",
            "Content-Length: 4\r\n\r\nnull",
            "no colon here\r\n\r\n{\"body\": 1}",
            "content-length:  1 \r\n\r\n1",
        );
        let got = frames(input.as_bytes()).await;
        assert_eq!(got.len(), 7, "{got:?}");
        assert_eq!(got[0], body("{}"));
        assert_eq!(got[1], body("[]"));
        assert!(
            matches!(&got[2], Frame::Malformed(why) if why.contains("colon") || why.contains("missing")),
            "{:?}",
            got[2]
        );
        assert!(
            matches!(&got[3], Frame::Malformed(why) if why.contains("invalid Content-Length")),
            "{:?}",
            got[3]
        );
        assert_eq!(got[4], body("null"));
        assert!(matches!(&got[5], Frame::Malformed(_)));
        assert_eq!(got[6], body("1"));
    }

    #[test]
    fn classifies_messages() {
        assert!(matches!(
            classify(br#"{"jsonrpc":"2.0","id":1,"method":"m"}"#),
            Incoming::Request(_)
        ));
        assert!(matches!(
            classify(br#"{"jsonrpc":"2.0","method":"n"}"#),
            Incoming::Request(_)
        ));
        assert!(matches!(
            classify(br#"{"jsonrpc":"2.0","id":1,"result":null}"#),
            Incoming::Response(_)
        ));
        let Incoming::Invalid(reply) = classify(b"{oops") else {
            panic!()
        };
        assert_eq!(reply.error().unwrap().code, ErrorCode::ParseError);
        assert_eq!(reply.id(), &Id::Null);
        let Incoming::Invalid(reply) = classify(br#"{"jsonrpc":"2.0","id":7}"#) else {
            panic!()
        };
        assert_eq!(reply.error().unwrap().code, ErrorCode::InvalidRequest);
        assert_eq!(reply.id(), &Id::Number(7));
        let Incoming::Invalid(reply) = classify(b"[1, 2]") else {
            panic!()
        };
        assert_eq!(reply.error().unwrap().code, ErrorCode::InvalidRequest);
    }
}
