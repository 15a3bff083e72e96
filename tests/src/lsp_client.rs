//! The LSP client of the end-to-end suites: starts the real `switchyard lsp` binary and talks
//! to it over its stdin/stdout with a real LSP client library.
//!
//! The library is `async-lsp` (with `lsp-types` for the standard messages): it has a client
//! main loop that correlates requests and responses, routes the server's requests
//! (`window/workDoneProgress/create`, `workspace/configuration`, ...) and notifications to
//! typed handlers, and answers them — what an editor's client does. rust-analyzer's
//! `lsp-server` only frames messages; we would have had to write that loop ourselves, and a
//! harness that hand-builds the protocol tests itself, not the server. The custom methods
//! and command payloads are the server's own types from `switchyard::lsp::ext`.
//!
//! Two taps sit between the library and the process, both at frame boundaries:
//! - towards the server, [`LspClient::send_raw`] writes arbitrary bytes between the
//!   library's frames (malformed frames are the point of one test);
//! - from the server, responses the library cannot route (`id: null`, the answers to
//!   malformed frames) are taken out and delivered as [`ServerEvent::Orphan`].
//!
//! Everything the server sends to the client arrives, in order, as a [`ServerEvent`]. Every
//! wait has a deadline; dropping the client kills the server by its PID.

mod editor;

use std::marker::PhantomData;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_lsp::router::Router;
use async_lsp::{MainLoop, ServerSocket};
use lsp_types::notification::{
    DidChangeConfiguration, Exit, Initialized, LogMessage, Progress, PublishDiagnostics,
    ShowMessage,
};
use lsp_types::request::{
    ApplyWorkspaceEdit, ExecuteCommand, Initialize, RegisterCapability, ShowDocument,
    ShowMessageRequest, Shutdown, WorkDoneProgressCreate, WorkspaceConfiguration,
};
use lsp_types::{
    ApplyWorkspaceEditParams, ApplyWorkspaceEditResponse, PositionEncodingKind,
    ShowMessageRequestParams,
};
use lsp_types::{
    ClientCapabilities, ConfigurationParams, DidChangeConfigurationParams, ExecuteCommandParams,
    InitializeParams, InitializeResult, InitializedParams, LogMessageParams, ProgressParams,
    ProgressToken, RegistrationParams, ShowDocumentParams, ShowDocumentResult, ShowMessageParams,
    WorkDoneProgressCreateParams, WorkDoneProgressParams, WorkspaceFolder,
};
use parking_lot::Mutex;
use serde_json::Value;
use switchyard::lsp::ext::{self, Command, LaneStatusParams, SessionUpdateParams};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::compat::{TokioAsyncReadCompatExt, TokioAsyncWriteCompatExt};

pub use async_lsp::{Error as ClientError, ResponseError};
pub use editor::{Buffer, EditAnswer, Editor};
pub use lsp_types;

/// How long a single wait may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Runs a test body with a deadline: a hung server fails the test instead of hanging it.
pub async fn within<F: Future>(limit: Duration, body: F) -> F::Output {
    match tokio::time::timeout(limit, body).await {
        Ok(output) => output,
        Err(_) => panic!("the test did not finish within {limit:?}"),
    }
}

/// Something the server sent the client, in arrival order.
#[derive(Debug, Clone)]
pub enum ServerEvent {
    /// `$/progress`.
    Progress(ProgressParams),
    /// `switchyard/laneStatus`.
    LaneStatus(LaneStatusParams),
    /// `switchyard/sessionUpdate`.
    SessionUpdate(SessionUpdateParams),
    /// `window/logMessage`.
    LogMessage(LogMessageParams),
    /// `window/showMessage`.
    ShowMessage(ShowMessageParams),
    /// `window/workDoneProgress/create` (answered with success).
    CreateProgress(WorkDoneProgressCreateParams),
    /// `window/showDocument` (answered with success).
    ShowDocument(ShowDocumentParams),
    /// `workspace/configuration` (answered with the client's settings).
    Configuration(ConfigurationParams),
    /// `client/registerCapability` (answered with success).
    RegisterCapability(RegistrationParams),
    /// A message the client library could not route: the answer to a malformed frame.
    Orphan(Value),
    /// `workspace/applyEdit` (answered by the [`Editor`] model).
    ApplyEdit(ApplyWorkspaceEditParams),
    /// `window/showMessageRequest` (answered by the [`Editor`]'s scripted choices).
    ShowMessageRequest(ShowMessageRequestParams),
    /// `switchyard/reviewChange` (answered by the [`Editor`]'s scripted reviews).
    ReviewChange(ext::ReviewChangeParams),
}

/// How to start the server and what the client says about itself.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// The workspace folder.
    pub root: PathBuf,
    /// The client's capabilities.
    pub capabilities: ClientCapabilities,
    /// `initializationOptions`.
    pub initialization_options: Option<Value>,
    /// What `workspace/configuration` answers for the `switchyard` section.
    pub settings: Value,
    /// Extra environment of the server process.
    pub env: Vec<(String, String)>,
}

impl ClientOptions {
    /// A plain client on `root`: no capabilities, no settings.
    pub fn new(root: &Path) -> ClientOptions {
        ClientOptions {
            root: root.to_path_buf(),
            capabilities: ClientCapabilities::default(),
            initialization_options: None,
            settings: Value::Null,
            env: Vec::new(),
        }
    }
}

/// A custom request of `switchyard::lsp::ext` as `lsp-types` sees requests.
pub enum Ext<R> {
    #[doc(hidden)]
    Never(std::convert::Infallible, PhantomData<R>),
}

impl<R: switchyard::lsp::ls_types::request::Request> lsp_types::request::Request for Ext<R> {
    type Params = R::Params;
    type Result = R::Result;
    const METHOD: &'static str = R::METHOD;
}

impl<N: switchyard::lsp::ls_types::notification::Notification> lsp_types::notification::Notification
    for Ext<N>
{
    type Params = N::Params;
    const METHOD: &'static str = N::METHOD;
}

struct ClientState {
    events: mpsc::UnboundedSender<ServerEvent>,
    settings: Arc<Mutex<Value>>,
    editor: Arc<Mutex<Editor>>,
}

impl ClientState {
    fn record(&self, event: ServerEvent) -> ControlFlow<async_lsp::Result<()>> {
        let _ = self.events.send(event);
        ControlFlow::Continue(())
    }
}

/// A client connected to a running `switchyard lsp`.
pub struct LspClient {
    /// The server, for typed requests and notifications.
    pub server: ServerSocket,
    events: mpsc::UnboundedReceiver<ServerEvent>,
    /// Events received but not taken yet, in order.
    backlog: Vec<ServerEvent>,
    /// Every event received so far, in order.
    pub history: Vec<ServerEvent>,
    raw: mpsc::UnboundedSender<Vec<u8>>,
    /// Every request the client sent: method and id, in order.
    sent: Arc<Mutex<Vec<(String, Value)>>>,
    settings: Arc<Mutex<Value>>,
    child: Child,
    stderr: Arc<Mutex<String>>,
    tasks: Vec<JoinHandle<()>>,
    options: ClientOptions,
    /// The editor's buffers, what it answers to `workspace/applyEdit` and approval prompts.
    pub editor: Arc<Mutex<Editor>>,
}

impl LspClient {
    /// Starts `switchyard lsp` with `options` and connects (without initializing).
    pub fn start(options: ClientOptions) -> LspClient {
        let config_home = options.root.join(".test-config-home");
        let mut command = tokio::process::Command::new(crate::switchyard_bin());
        command
            .arg("lsp")
            .current_dir(&options.root)
            // The developer's own settings must not leak into the test.
            .env("XDG_CONFIG_HOME", &config_home)
            .env("SWITCHYARD_LOG", "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (key, value) in &options.env {
            command.env(key, value);
        }
        let mut child = command.spawn().expect("cannot start switchyard lsp");
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");

        let (events_tx, events) = mpsc::unbounded_channel();
        let settings = Arc::new(Mutex::new(options.settings.clone()));
        let editor = Arc::new(Mutex::new(Editor::default()));
        let state = ClientState {
            events: events_tx.clone(),
            settings: Arc::clone(&settings),
            editor: Arc::clone(&editor),
        };
        let (mainloop, server) = MainLoop::new_client(|server| {
            editor.lock().server = Some(server);
            router(state)
        });

        // Library → server, with raw bytes slipped in between frames.
        let (to_server_lib, from_lib) = tokio::io::duplex(1 << 20);
        let (raw, raw_rx) = mpsc::unbounded_channel();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = vec![tokio::spawn(pump_to_server(
            from_lib,
            raw_rx,
            stdin,
            Arc::clone(&sent),
        ))];
        // Server → library, with unroutable responses taken out.
        let (to_lib, from_server_tap) = tokio::io::duplex(1 << 20);
        tasks.push(tokio::spawn(pump_from_server(stdout, to_lib, events_tx)));
        let stderr_text = Arc::new(Mutex::new(String::new()));
        tasks.push(tokio::spawn(collect(stderr, Arc::clone(&stderr_text))));
        tasks.push(tokio::spawn(async move {
            let input = from_server_tap.compat();
            let output = to_server_lib.compat_write();
            if let Err(e) = mainloop.run_buffered(input, output).await {
                eprintln!("the client main loop ended: {e}");
            }
        }));
        LspClient {
            server,
            events,
            backlog: Vec::new(),
            history: Vec::new(),
            raw,
            sent,
            settings,
            child,
            stderr: stderr_text,
            tasks,
            options,
            editor,
        }
    }

    /// Starts the server and initializes it: `initialize`, then `initialized`.
    pub async fn initialized(options: ClientOptions) -> (LspClient, InitializeResult) {
        let mut client = LspClient::start(options);
        let result = client.initialize().await;
        (client, result)
    }

    /// `initialize` with the options' folder, capabilities and initialization options, then
    /// `initialized`.
    pub async fn initialize(&mut self) -> InitializeResult {
        let uri = file_url(&self.options.root);
        #[allow(deprecated)]
        let params = InitializeParams {
            process_id: Some(std::process::id()),
            root_uri: Some(uri.clone()),
            workspace_folders: Some(vec![WorkspaceFolder {
                uri,
                name: "workspace".into(),
            }]),
            capabilities: self.options.capabilities.clone(),
            initialization_options: self.options.initialization_options.clone(),
            ..InitializeParams::default()
        };
        let result = self
            .deadline(self.server.request::<Initialize>(params))
            .await
            .expect("initialize failed");
        self.server
            .notify::<Initialized>(InitializedParams {})
            .expect("the client stopped");
        let encoding = result.capabilities.position_encoding.clone();
        self.editor.lock().encoding = encoding
            .unwrap_or(PositionEncodingKind::UTF16)
            .as_str()
            .to_string();
        result
    }

    /// Runs `future` with the [`PATIENCE`] deadline, naming the server's stderr on failure.
    pub async fn deadline<F: Future>(&self, future: F) -> F::Output {
        match tokio::time::timeout(PATIENCE, future).await {
            Ok(output) => output,
            Err(_) => panic!(
                "the server did not answer within {PATIENCE:?}; its stderr:\n{}",
                self.stderr()
            ),
        }
    }

    /// Runs command `C` and returns its typed result or the error response.
    pub async fn command<C: Command>(&self, params: C::Params) -> Result<C::Result, ResponseError> {
        self.command_with_token::<C>(params, None).await
    }

    /// Runs command `C` reporting progress under the client's `token`.
    pub async fn command_with_token<C: Command>(
        &self,
        params: C::Params,
        token: Option<ProgressToken>,
    ) -> Result<C::Result, ResponseError> {
        let arguments = vec![serde_json::to_value(params).expect("serializable params")];
        let value = self.execute(C::NAME, arguments, token).await?;
        Ok(serde_json::from_value(value.unwrap_or(Value::Null))
            .unwrap_or_else(|e| panic!("{} returned an unexpected shape: {e}", C::NAME)))
    }

    /// `workspace/executeCommand` with raw arguments.
    pub async fn execute(
        &self,
        command: &str,
        arguments: Vec<Value>,
        token: Option<ProgressToken>,
    ) -> Result<Option<Value>, ResponseError> {
        let params = ExecuteCommandParams {
            command: command.into(),
            arguments,
            work_done_progress_params: WorkDoneProgressParams {
                work_done_token: token,
            },
        };
        response(
            self.deadline(self.server.request::<ExecuteCommand>(params))
                .await,
        )
    }

    /// A custom request of `ext`.
    pub async fn ext_request<R>(&self, params: R::Params) -> Result<R::Result, ResponseError>
    where
        R: switchyard::lsp::ls_types::request::Request,
    {
        response(self.deadline(self.server.request::<Ext<R>>(params)).await)
    }

    /// Changes what `workspace/configuration` answers and tells the server.
    pub fn change_settings(&self, settings: Value) {
        *self.settings.lock() = settings;
        self.server
            .notify::<DidChangeConfiguration>(DidChangeConfigurationParams {
                settings: Value::Null,
            })
            .expect("the client stopped");
    }

    /// The id of the latest request of `method` the client sent, once it is on its way.
    pub async fn sent_request_id(&self, method: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let found = self
                .sent
                .lock()
                .iter()
                .rev()
                .find(|(m, _)| m == method)
                .map(|(_, id)| id.clone());
            if let Some(id) = found {
                return id;
            }
            assert!(Instant::now() < deadline, "no {method} request was sent");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// `$/cancelRequest` for the request with `id`.
    pub fn cancel_request(&self, id: Value) {
        let id = serde_json::from_value(id).expect("a request id");
        self.server
            .notify::<lsp_types::notification::Cancel>(lsp_types::CancelParams { id })
            .expect("the client stopped");
    }

    /// Writes `bytes` to the server's stdin between two frames of the client library.
    pub fn send_raw(&self, bytes: impl Into<Vec<u8>>) {
        self.raw.send(bytes.into()).expect("the stdin pump stopped");
    }

    /// The next event `pick` accepts, waiting at most [`PATIENCE`]; the events before it
    /// stay in the backlog for later calls.
    pub async fn event(&mut self, what: &str, pick: impl Fn(&ServerEvent) -> bool) -> ServerEvent {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(at) = self.backlog.iter().position(&pick) {
                return self.backlog.remove(at);
            }
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => {
                    self.history.push(event.clone());
                    self.backlog.push(event);
                }
                Ok(None) => panic!("the connection closed while waiting for {what}"),
                Err(_) => panic!(
                    "no {what} within {PATIENCE:?}; received {:#?}; the server's stderr:\n{}",
                    self.backlog,
                    self.stderr()
                ),
            }
        }
    }

    /// Takes every event received so far (without waiting).
    pub fn drain_events(&mut self) -> Vec<ServerEvent> {
        while let Ok(event) = self.events.try_recv() {
            self.history.push(event.clone());
            self.backlog.push(event);
        }
        std::mem::take(&mut self.backlog)
    }

    /// What the server wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().clone()
    }

    /// The server's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// `shutdown`, `exit`, and the server's exit status.
    pub async fn shutdown_and_exit(mut self) -> ExitStatus {
        self.deadline(self.server.request::<Shutdown>(()))
            .await
            .expect("shutdown failed");
        self.server.notify::<Exit>(()).expect("the client stopped");
        self.wait_exit().await
    }

    /// Waits for the server to exit by itself.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        match tokio::time::timeout(PATIENCE, self.child.wait()).await {
            Ok(status) => status.expect("cannot wait for the server"),
            Err(_) => panic!("the server did not exit; its stderr:\n{}", self.stderr()),
        }
    }
}

impl Drop for LspClient {
    fn drop(&mut self) {
        // By PID, whatever state the server is in; `kill_on_drop` is the second line.
        let _ = self.child.start_kill();
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn response<T>(result: Result<T, ClientError>) -> Result<T, ResponseError> {
    match result {
        Ok(value) => Ok(value),
        Err(ClientError::Response(error)) => Err(error),
        Err(other) => panic!("the request failed without a response: {other}"),
    }
}

/// The `file:` URL of a path.
pub fn file_url(path: &Path) -> lsp_types::Url {
    lsp_types::Url::from_file_path(path).expect("an absolute path")
}

fn router(state: ClientState) -> Router<ClientState> {
    let mut router = Router::new(state);
    router
        .notification::<Progress>(|st, params| st.record(ServerEvent::Progress(params)))
        .notification::<Ext<ext::LaneStatus>>(|st, params| {
            st.record(ServerEvent::LaneStatus(params))
        })
        .notification::<Ext<ext::SessionUpdate>>(|st, params| {
            st.record(ServerEvent::SessionUpdate(params))
        })
        .notification::<LogMessage>(|st, params| st.record(ServerEvent::LogMessage(params)))
        .notification::<ShowMessage>(|st, params| st.record(ServerEvent::ShowMessage(params)))
        .notification::<PublishDiagnostics>(|_, _| ControlFlow::Continue(()))
        .request::<WorkDoneProgressCreate, _>(|st, params| {
            let _ = st.events.send(ServerEvent::CreateProgress(params));
            std::future::ready(Ok(()))
        })
        .request::<ShowDocument, _>(|st, params| {
            let _ = st.events.send(ServerEvent::ShowDocument(params));
            std::future::ready(Ok(ShowDocumentResult { success: true }))
        })
        .request::<ApplyWorkspaceEdit, _>(|st, params| {
            let answer = st.editor.lock().answer(&params.edit);
            let _ = st.events.send(ServerEvent::ApplyEdit(params));
            std::future::ready(Ok(ApplyWorkspaceEditResponse {
                applied: answer.is_ok(),
                failure_reason: answer.err(),
                failed_change: None,
            }))
        })
        .request::<ShowMessageRequest, _>(|st, params| {
            let choice = st
                .editor
                .lock()
                .prompt_answers
                .pop_front()
                .unwrap_or(Some("Allow".into()));
            let item = choice.and_then(|title| {
                params
                    .actions
                    .iter()
                    .flatten()
                    .find(|a| a.title == title)
                    .cloned()
            });
            let _ = st.events.send(ServerEvent::ShowMessageRequest(params));
            std::future::ready(Ok(item))
        })
        .request::<Ext<ext::ReviewChange>, _>(|st, params| {
            let answer = match st.editor.lock().review_answers.pop_front() {
                Some(Ok(accepted)) => Ok(ext::ReviewChangeResult { accepted }),
                Some(Err(message)) => Err(ResponseError::new(
                    async_lsp::ErrorCode::REQUEST_FAILED,
                    message,
                )),
                None => Ok(ext::ReviewChangeResult {
                    accepted: params.hunks.iter().map(|h| h.index).collect(),
                }),
            };
            let _ = st.events.send(ServerEvent::ReviewChange(params));
            std::future::ready(answer)
        })
        .request::<RegisterCapability, _>(|st, params| {
            let _ = st.events.send(ServerEvent::RegisterCapability(params));
            std::future::ready(Ok(()))
        })
        .request::<WorkspaceConfiguration, _>(|st, params| {
            let answer = vec![st.settings.lock().clone(); params.items.len()];
            let _ = st.events.send(ServerEvent::Configuration(params));
            std::future::ready(Ok(answer))
        })
        .unhandled_notification(|_, notification| {
            eprintln!(
                "unexpected notification from the server: {}",
                notification.method
            );
            ControlFlow::Continue(())
        });
    router
}

/// Reads one `Content-Length` frame; `None` at the end of the stream.
async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut length = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or_else(|| {
            std::io::Error::other(format!(
                "the server wrote something that is not a header: {line:?}"
            ))
        })?;
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .trim()
                    .parse::<usize>()
                    .map_err(std::io::Error::other)?,
            );
        }
    }
    let length = length.ok_or_else(|| std::io::Error::other("a frame without Content-Length"))?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await?;
    Ok(Some(body))
}

async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, body: &[u8]) -> std::io::Result<()> {
    writer
        .write_all(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes())
        .await?;
    writer.write_all(body).await?;
    writer.flush().await
}

async fn pump_to_server(
    from_lib: tokio::io::DuplexStream,
    mut raw: mpsc::UnboundedReceiver<Vec<u8>>,
    mut stdin: ChildStdin,
    sent: Arc<Mutex<Vec<(String, Value)>>>,
) {
    let mut from_lib = BufReader::new(from_lib);
    loop {
        tokio::select! {
            frame = read_frame(&mut from_lib) => match frame {
                Ok(Some(body)) => {
                    if let Ok(message) = serde_json::from_slice::<Value>(&body)
                        && let (Some(method), Some(id)) = (message["method"].as_str(), message.get("id"))
                    {
                        sent.lock().push((method.to_string(), id.clone()));
                    }
                    if write_frame(&mut stdin, &body).await.is_err() {
                        return;
                    }
                }
                _ => return,
            },
            bytes = raw.recv() => match bytes {
                Some(bytes) => {
                    if stdin.write_all(&bytes).await.is_err() || stdin.flush().await.is_err() {
                        return;
                    }
                }
                None => return,
            },
        }
    }
}

async fn pump_from_server(
    stdout: tokio::process::ChildStdout,
    mut to_lib: tokio::io::DuplexStream,
    events: mpsc::UnboundedSender<ServerEvent>,
) {
    let mut stdout = BufReader::new(stdout);
    loop {
        let body = match read_frame(&mut stdout).await {
            Ok(Some(body)) => body,
            Ok(None) => return,
            Err(e) => {
                // Anything on stdout that is not a frame breaks every editor: fail loudly.
                let _ = events.send(ServerEvent::Orphan(Value::String(format!(
                    "broken stdout: {e}"
                ))));
                return;
            }
        };
        let message: Value = match serde_json::from_slice(&body) {
            Ok(message) => message,
            Err(e) => {
                let text = format!("not JSON on stdout: {e}");
                let _ = events.send(ServerEvent::Orphan(Value::String(text)));
                continue;
            }
        };
        if message.get("method").is_none() && message.get("id").is_none_or(Value::is_null) {
            let _ = events.send(ServerEvent::Orphan(message));
            continue;
        }
        if write_frame(&mut to_lib, &body).await.is_err() {
            return;
        }
    }
}

async fn collect(stderr: tokio::process::ChildStderr, into: Arc<Mutex<String>>) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut text = into.lock();
        text.push_str(&line);
        text.push('\n');
    }
}
