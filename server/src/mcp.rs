//! MCP: tools from any Model Context Protocol server, run through the lanes.
//!
//! Each `[mcp_servers.NAME]` (see [`config`]) is started on first use — every enabled server
//! at once, in parallel, when an agent run first needs its tools, never while a front end
//! starts — on the official SDK (`rmcp`), over stdio (`command`) or streamable HTTP (`url`,
//! its tokens read from the environment by name). Its tools are offered to the model as
//! `mcp__<server>__<tool>` ([`exposed_name`]), with the server's input schema as given. A
//! tool annotated `readOnlyHint: true` is [`Effect::ReadOnly`] (the Query lane, beside the
//! other read-only calls of its turn); every other one is [`Effect::Runs`] (the Execute
//! lane, alone, behind approval).
//!
//! A server that crashes or answers garbage fails the call with a message saying so; the
//! next call starts it again, after a backoff that grows with each failure in a row. A call
//! that outlives `tool_timeout_ms`, or whose lane task is cancelled, is abandoned with
//! `notifications/cancelled`. The server's stderr goes to the log. A call's progress
//! notifications go to its [`ProgressSink`] (the agent makes them tool-call updates).

pub mod config;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::future::join_all;
use parking_lot::Mutex;
use rmcp::model::{
    CallToolRequest, CallToolRequestParams, CancelledNotificationParam, ClientConfig,
    ClientRequest, Implementation, NumberOrString,
};
use rmcp::service::PeerRequestOptions;
use rmcp::service::{NotificationContext, RoleClient, RunningService};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ClientHandler, ServiceExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;
use tokio_util::sync::CancellationToken;

use crate::config::Current;
use crate::lanes::SessionId;
use crate::llm::ToolImage;
use crate::tools::{Effect, ToolKind, ToolSpec};

pub use config::{McpServerConfig, McpToolFilter};

/// The prefix of every MCP tool's name.
pub const PREFIX: &str = "mcp__";

/// The longest tool name the providers accept (`^[a-zA-Z0-9_-]{1,64}$`).
const MAX_NAME: usize = 64;

/// The name a model calls `tool` of `server` by: `mcp__<server>__<tool>`, every character
/// outside `[a-zA-Z0-9_-]` made `_`, cut to 64 characters (a cut name ends in a short hash of
/// the whole, so two long names stay apart).
pub fn exposed_name(server: &str, tool: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let full = format!("{PREFIX}{}__{}", clean(server), clean(tool));
    if full.len() <= MAX_NAME {
        return full;
    }
    let hash = full.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{}_{:08x}", &full[..MAX_NAME - 9], hash as u32)
}

/// Where a server is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServerState {
    /// Not started yet: nothing has needed it.
    Idle,
    /// Starting.
    Starting,
    /// Running; its tools are listed.
    Running,
    /// Its last start or call failed; the next use starts it again (after `retry_in_ms`).
    Failed,
    /// `enabled = false`.
    Disabled,
}

/// One of a server's tools, as offered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpTool {
    /// The name the model calls it by (`mcp__<server>__<tool>`).
    pub name: String,
    /// The server's own name for it.
    pub tool: String,
    /// Its description.
    pub description: String,
    /// JSON Schema of its arguments, as the server gave it.
    pub input_schema: Value,
    /// `readOnlyHint`: it runs in the Query lane, beside other read-only calls.
    pub read_only: bool,
    /// `destructiveHint` (default true for a tool that is not read-only).
    pub destructive: bool,
}

/// What `switchyard mcp` and `switchyard.mcpStatus` show of one server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServerStatus {
    /// Its name, from `[mcp_servers.NAME]`.
    pub name: String,
    /// Where it is.
    pub state: ServerState,
    /// The tools it offers (those `tools.allow` / `tools.deny` let through).
    pub tools: Vec<McpTool>,
    /// Why its last start or call failed.
    pub last_error: Option<String>,
    /// How many times it was started again after a failure.
    pub restarts: u32,
    /// Failures in a row; each doubles the wait before the next start.
    #[serde(skip)]
    failures: u32,
    /// No new start before this.
    #[serde(skip)]
    next_start: Option<Instant>,
}

/// A finished tool call: what the server answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct McpOutput {
    /// The server.
    pub server: String,
    /// The server's own name of the tool.
    pub tool: String,
    /// Its content blocks (text, image, audio, resource, resource_link), as sent.
    pub content: Vec<Value>,
    /// Its `structuredContent`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<Value>,
}

/// The largest image (its base64 text) kept for a model that takes images; a larger one is
/// only described. Anthropic takes images of up to 5 MB.
pub const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;

impl McpOutput {
    /// The text a model sees: text blocks as they are, embedded text resources with their
    /// URI, anything else described; the structured content when there is no text. At most
    /// about `max_bytes` (0: no cap).
    pub fn render(&self, max_bytes: usize) -> String {
        self.render_with_images(max_bytes).0
    }

    /// [`McpOutput::render`], and the images it describes (each at most
    /// [`MAX_IMAGE_BYTES`], within the cap), for a model that takes them in place of their
    /// description.
    pub fn render_with_images(&self, max_bytes: usize) -> (String, Vec<ToolImage>) {
        let (mut out, mut images) = render_blocks(&self.content);
        if out.trim().is_empty() {
            images.clear();
            out = match &self.structured_content {
                Some(value) => value.to_string(),
                None => "(no content)".to_string(),
            };
        }
        let out = cap(out, max_bytes);
        images.retain(|image| max_bytes == 0 || image.at.end <= max_bytes.min(out.len()));
        (out, images)
    }
}

fn cap(mut text: String, max_bytes: usize) -> String {
    if max_bytes != 0 && text.len() > max_bytes {
        let mut end = max_bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let total = text.len();
        text.truncate(end);
        text.push_str(&format!(
            "\n… cut at {max_bytes} of {total} bytes (tools.max_output_bytes)"
        ));
    }
    text
}

/// The blocks as text, and the images among them small enough and well-formed enough to
/// be sent, each with the range of its description in the text.
fn render_blocks(blocks: &[Value]) -> (String, Vec<ToolImage>) {
    let described = |kind: &str, block: &Value| {
        let mime = block["mimeType"].as_str().unwrap_or("unknown type");
        let bytes = block["data"].as_str().map_or(0, |d| d.len() / 4 * 3);
        format!("[{kind}: {mime}, about {bytes} bytes, not shown]")
    };
    let mut out = String::new();
    let mut images = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let start = out.len();
        let text = match block["type"].as_str() {
            Some("text") => block["text"].as_str().unwrap_or_default().to_string(),
            Some("image") => {
                let text = described("image", block);
                if let (Some(media_type), Some(data)) =
                    (block["mimeType"].as_str(), block["data"].as_str())
                    && data.len() <= MAX_IMAGE_BYTES
                    && is_base64(data)
                {
                    images.push(ToolImage {
                        media_type: media_type.to_string(),
                        data: data.to_string(),
                        at: start..start + text.len(),
                    });
                }
                text
            }
            Some("audio") => described("audio", block),
            Some("resource") => {
                let resource = &block["resource"];
                let uri = resource["uri"].as_str().unwrap_or("?");
                match resource["text"].as_str() {
                    Some(text) => format!("[resource {uri}]\n{text}"),
                    None => format!(
                        "[resource {uri}: {}, binary, not shown]",
                        resource["mimeType"].as_str().unwrap_or("unknown type")
                    ),
                }
            }
            Some("resource_link") => format!(
                "[resource link {}: {}]",
                block["uri"].as_str().unwrap_or("?"),
                block["name"].as_str().unwrap_or_default()
            ),
            _ => block.to_string(),
        };
        out.push_str(&text);
    }
    (out, images)
}

/// Whether `data` is standard padded base64 (what a provider will decode).
fn is_base64(data: &str) -> bool {
    !data.is_empty()
        && data.len().is_multiple_of(4)
        && data
            .trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// How far a long call has come, as its server says (`notifications/progress`).
#[derive(Debug, Clone, PartialEq)]
pub struct ToolProgress {
    /// The progress so far; it grows with each report.
    pub progress: f64,
    /// The total, when the server knows it.
    pub total: Option<f64>,
    /// What it is doing, in the server's words.
    pub message: Option<String>,
}

/// Where a call reports its [`ToolProgress`]. Cheap to clone.
#[derive(Clone)]
pub struct ProgressSink(Arc<dyn Fn(ToolProgress) + Send + Sync>);

impl ProgressSink {
    /// A sink calling `report` with each report.
    pub fn new(report: impl Fn(ToolProgress) + Send + Sync + 'static) -> ProgressSink {
        ProgressSink(Arc::new(report))
    }

    /// Reports `progress`.
    pub fn report(&self, progress: ToolProgress) {
        (self.0)(progress);
    }
}

impl std::fmt::Debug for ProgressSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ProgressSink")
    }
}

/// The calls of one server waiting for progress, by the progress token they were sent with.
type Listeners = Arc<Mutex<BTreeMap<String, ProgressSink>>>;

/// The client side of one connection: notes that the tool list changed, hands progress
/// notifications to the call they belong to.
struct Handler {
    stale: Arc<AtomicBool>,
    listeners: Listeners,
}

impl ClientHandler for Handler {
    async fn on_tool_list_changed(&self, _context: NotificationContext<RoleClient>) {
        self.stale.store(true, Ordering::Relaxed);
    }

    async fn on_progress(
        &self,
        params: rmcp::model::ProgressNotificationParam,
        _context: NotificationContext<RoleClient>,
    ) {
        let token = token_key(&params.progress_token.0);
        let sink = self.listeners.lock().get(&token).cloned();
        if let Some(sink) = sink {
            sink.report(ToolProgress {
                progress: params.progress,
                total: params.total,
                message: params.message,
            });
        }
    }

    fn get_info(&self) -> ClientConfig {
        let mut info = ClientConfig::default();
        info.client_info = Implementation::new("switchyard", env!("CARGO_PKG_VERSION"));
        info
    }
}

type Connection = RunningService<RoleClient, Handler>;

/// One configured server: its settings, its connection, its status.
struct Server {
    name: String,
    config: McpServerConfig,
    status: Mutex<ServerStatus>,
    /// Held while starting, so concurrent first uses wait for one start.
    connection: tokio::sync::Mutex<Option<Arc<Connection>>>,
    stale: Arc<AtomicBool>,
    listeners: Listeners,
    permits: tokio::sync::Semaphore,
}

/// Takes a call's progress token out of the listeners when the call is over, however.
struct Listening<'a>(&'a Listeners, String);

impl Drop for Listening<'_> {
    fn drop(&mut self) {
        self.0.lock().remove(&self.1);
    }
}

/// The MCP servers of one workspace. Cheap to clone.
#[derive(Clone)]
pub struct Mcp {
    inner: Arc<Hub>,
}

struct Hub {
    config: Current,
    root: PathBuf,
    servers: Mutex<BTreeMap<String, Arc<Server>>>,
    /// The servers a front end added for one session only (ACP's `mcpServers`), by session:
    /// that session sees them beside the configured ones (one of the same name hides the
    /// configured one), no other session does, and they stop when it ends.
    sessions: Mutex<HashMap<SessionId, BTreeMap<String, Arc<Server>>>>,
}

impl Mcp {
    /// The servers configured in `config`, started in `root` unless they say otherwise.
    pub fn new(config: Current, root: &Path) -> Mcp {
        Mcp {
            inner: Arc::new(Hub {
                config,
                root: root.to_path_buf(),
                servers: Mutex::new(BTreeMap::new()),
                sessions: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The servers of the configuration in force, kept while their settings are the same
    /// (a changed server is stopped and starts anew on next use), then those `session`
    /// added (see [`Mcp::add_session`]).
    fn servers(&self, session: Option<&SessionId>) -> Vec<Arc<Server>> {
        let config = self.inner.config.get();
        let mut all: Vec<Arc<Server>> = {
            let mut servers = self.inner.servers.lock();
            servers.retain(|name, server| config.mcp_servers.get(name) == Some(&server.config));
            for (name, settings) in &config.mcp_servers {
                servers
                    .entry(name.clone())
                    .or_insert_with(|| Server::new(name, settings));
            }
            servers.values().cloned().collect()
        };
        if let Some(own) = session.and_then(|id| self.inner.sessions.lock().get(id).cloned()) {
            all.retain(|server| !own.contains_key(&server.name));
            all.extend(own.into_values());
        }
        all
    }

    /// Puts the configuration in force now: a server that is gone or whose settings changed
    /// is stopped, and a changed one that was running starts again at once (in the
    /// background), so an edited setting applies without waiting for the next call.
    pub fn reconfigure(&self) {
        let running: Vec<String> = self
            .inner
            .servers
            .lock()
            .values()
            .filter(|s| s.status.lock().state == ServerState::Running)
            .map(|s| s.name.clone())
            .collect();
        let restart: Vec<Arc<Server>> = self
            .servers(None)
            .into_iter()
            .filter(|s| running.contains(&s.name) && s.status.lock().state == ServerState::Idle)
            .collect();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        for server in restart {
            let root = self.inner.root.clone();
            runtime.spawn(async move {
                tracing::info!(server = %server.name, "MCP server settings changed; starting it again");
                if let Err(e) = server.connect(&root).await {
                    tracing::warn!(server = %server.name, "MCP server not available: {e}");
                }
            });
        }
    }

    fn server(&self, name: &str, session: Option<&SessionId>) -> Option<Arc<Server>> {
        self.servers(session).into_iter().find(|s| s.name == name)
    }

    /// Adds `servers` for `session` only, in place of those it added before (a server whose
    /// settings did not change keeps running). They are the user's (their editor sent them),
    /// yet start as the configured ones do: filtered environment, timeouts, limits, lanes.
    /// `Err` names what is wrong with one of them; then nothing changes.
    pub fn add_session(
        &self,
        session: &SessionId,
        servers: BTreeMap<String, McpServerConfig>,
    ) -> Result<(), String> {
        config::validate_session(&servers)?;
        let mut sessions = self.inner.sessions.lock();
        if servers.is_empty() {
            sessions.remove(session);
            return Ok(());
        }
        let before = sessions.remove(session).unwrap_or_default();
        let own = servers
            .into_iter()
            .map(|(name, settings)| {
                let server = match before.get(&name) {
                    Some(running) if running.config == settings => Arc::clone(running),
                    _ => Server::new(&name, &settings),
                };
                (name, server)
            })
            .collect();
        sessions.insert(Arc::clone(session), own);
        Ok(())
    }

    /// Forgets the servers `session` added; each stops (its process is killed) once no call
    /// holds it.
    pub fn end_session(&self, session: &str) {
        self.inner.sessions.lock().remove(session);
    }

    /// Starts every enabled server not running yet, all at once, and waits for them (each
    /// within its `startup_timeout_ms`). A server that fails is reported in its status and
    /// the log; the others go on.
    pub async fn start_all(&self, session: Option<&SessionId>) {
        let starting = self
            .servers(session)
            .into_iter()
            .filter(|s| s.config.enabled)
            .map(|server| {
                let root = self.inner.root.clone();
                async move {
                    if let Err(e) = server.connect(&root).await {
                        tracing::warn!(server = %server.name, "MCP server not available: {e}");
                    }
                }
            });
        join_all(starting).await;
    }

    /// Every configured server's status, by name.
    pub fn status(&self) -> Vec<ServerStatus> {
        self.servers(None)
            .iter()
            .map(|s| s.status.lock().clone())
            .collect()
    }

    /// The tools of the running servers `session` sees, as the model is offered them, each
    /// with the policy the user set for it.
    pub fn specs(&self, session: Option<&SessionId>) -> Vec<(ToolSpec, crate::approvals::Policy)> {
        self.servers(session)
            .iter()
            .flat_map(|server| {
                let tools = server.status.lock().tools.clone();
                tools.into_iter().map(|tool| {
                    let policy = server.config.policy(&tool.tool, tool.read_only);
                    (spec_of(&tool), policy)
                })
            })
            .collect()
    }

    /// The tool a model in `session` calls `name`, its server, and the policy the user set
    /// for it.
    pub fn find(
        &self,
        name: &str,
        session: Option<&SessionId>,
    ) -> Option<(McpTool, String, crate::approvals::Policy)> {
        if !name.starts_with(PREFIX) {
            return None;
        }
        self.servers(session).iter().find_map(|server| {
            let status = server.status.lock();
            status.tools.iter().find(|t| t.name == name).map(|tool| {
                let policy = server.config.policy(&tool.tool, tool.read_only);
                (tool.clone(), server.name.clone(), policy)
            })
        })
    }

    /// The spec of the tool a model in `session` calls `name`.
    pub fn spec(&self, name: &str, session: Option<&SessionId>) -> Option<ToolSpec> {
        self.find(name, session).map(|(tool, _, _)| spec_of(&tool))
    }

    /// Calls `tool` of `server` (as `session` sees it) with `arguments`, within the server's concurrency limit and
    /// tool timeout; cancelling `token` abandons the call with `notifications/cancelled`.
    /// With `progress`, the call asks for progress notifications (a `progressToken`) and
    /// hands each to it.
    /// `Err` is what the model is told: the server's own error result (`isError`), or what
    /// went wrong with the server.
    pub async fn call(
        &self,
        session: Option<&SessionId>,
        server: &str,
        tool: &str,
        arguments: Value,
        progress: Option<ProgressSink>,
        token: &CancellationToken,
    ) -> Result<McpOutput, String> {
        let Some(server) = self.server(server, session) else {
            return Err(format!("the MCP server `{server}` is no longer configured"));
        };
        let _permit = tokio::select! {
            permit = server.permits.acquire() => permit.map_err(|e| e.to_string())?,
            () = token.cancelled() => return Err("cancelled".into()),
        };
        let connection = tokio::select! {
            connection = server.connect(&self.inner.root) => connection?,
            () = token.cancelled() => return Err("cancelled".into()),
        };
        let mut params = CallToolRequestParams::new(tool.to_string());
        match arguments {
            Value::Object(map) => params = params.with_arguments(map),
            Value::Null => {}
            other => {
                return Err(format!(
                    "the arguments of `{tool}` must be a JSON object, got {other}"
                ));
            }
        }
        let timeout = Duration::from_millis(server.config.tool_timeout_ms);
        // Dropping the call (cancelled, or timed out) sends `notifications/cancelled`.
        let answer = tokio::select! {
            answer = tokio::time::timeout(
                timeout,
                call_tool(connection.peer(), params, progress.map(|p| (&server.listeners, p))),
            ) => answer,
            () = token.cancelled() => return Err("cancelled".into()),
        };
        let name = &server.name;
        let result = match answer {
            Err(_) => {
                let message = format!(
                    "the MCP server `{name}` did not answer `{tool}` within {} ms (mcp_servers.{name}.tool_timeout_ms); \
                     the call was cancelled",
                    timeout.as_millis()
                );
                server.note_error(&message);
                return Err(message);
            }
            Ok(Err(rmcp::ServiceError::McpError(e))) => {
                return Err(format!(
                    "the MCP server `{name}` refused `{tool}`: {}",
                    e.message
                ));
            }
            Ok(Err(e)) => {
                let stopped = matches!(
                    e,
                    rmcp::ServiceError::TransportClosed | rmcp::ServiceError::TransportSend(_)
                ) || connection.is_closed();
                let message = if stopped {
                    format!(
                        "the MCP server `{name}` stopped during `{tool}` ({e}); it will be started again on the next call"
                    )
                } else {
                    format!("the MCP server `{name}` failed `{tool}`: {e}")
                };
                server.failed(&message);
                let mut slot = server.connection.lock().await;
                if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, &connection)) {
                    *slot = None;
                }
                return Err(message);
            }
            Ok(Ok(result)) => result,
        };
        server.succeeded();
        let value = serde_json::to_value(&result).map_err(|e| e.to_string())?;
        let output = McpOutput {
            server: name.clone(),
            tool: tool.to_string(),
            content: value["content"].as_array().cloned().unwrap_or_default(),
            structured_content: value.get("structuredContent").cloned(),
        };
        if result.is_error == Some(true) {
            return Err(output.render(0));
        }
        Ok(output)
    }
}

/// Sends one `tools/call` and waits for its result; `progress` hears the progress
/// notifications sent with the request's progress token. Dropped before the answer, it
/// tells the server with `notifications/cancelled`.
async fn call_tool(
    peer: &rmcp::Peer<RoleClient>,
    params: CallToolRequestParams,
    progress: Option<(&Listeners, ProgressSink)>,
) -> Result<rmcp::model::CallToolResult, rmcp::ServiceError> {
    let request = ClientRequest::CallToolRequest(CallToolRequest::new(params));
    let handle = peer
        .send_cancellable_request(request, PeerRequestOptions::no_options())
        .await?;
    let mut abandoned = Abandoned(Some((peer.clone(), handle.id.clone())));
    // rmcp gives every request its own progress token; the sink listens to this one.
    let _listening = progress.map(|(listeners, sink)| {
        let key = token_key(&handle.progress_token.0);
        listeners.lock().insert(key.clone(), sink);
        Listening(listeners, key)
    });
    let answer = handle.await_response().await;
    abandoned.0 = None;
    match answer? {
        rmcp::model::ServerResult::CallToolResult(result) => Ok(result),
        _ => Err(rmcp::ServiceError::UnexpectedResponse),
    }
}

/// A call's progress token as the listeners key it.
fn token_key(token: &NumberOrString) -> String {
    match token {
        NumberOrString::String(s) => format!("s:{s}"),
        NumberOrString::Number(n) => format!("n:{n}"),
    }
}

/// Armed while a call's answer is awaited: dropped armed, it sends `notifications/cancelled`.
struct Abandoned(Option<(rmcp::Peer<RoleClient>, rmcp::model::RequestId)>);

impl Drop for Abandoned {
    fn drop(&mut self) {
        if let Some((peer, id)) = self.0.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let cancelled = CancelledNotificationParam::new(
                    Some(id),
                    Some("the call was cancelled or timed out".into()),
                );
                let _ = peer.notify_cancelled(cancelled).await;
            });
        }
    }
}

fn spec_of(tool: &McpTool) -> ToolSpec {
    ToolSpec {
        name: Cow::Owned(tool.name.clone()),
        description: Cow::Owned(tool.description.clone()),
        parameters: tool.input_schema.clone(),
        kind: ToolKind::Other,
        effect: if tool.read_only {
            Effect::ReadOnly
        } else {
            Effect::Runs
        },
    }
}

/// The wait before the next start after `failures` failures in a row: none after the
/// first, then 1 s, doubling, at most a minute.
fn backoff(failures: u32) -> Duration {
    match failures {
        0 | 1 => Duration::ZERO,
        n => Duration::from_secs(1 << (n - 2).min(6)).min(Duration::from_secs(60)),
    }
}

impl Server {
    fn new(name: &str, settings: &McpServerConfig) -> Arc<Server> {
        let state = if settings.enabled {
            ServerState::Idle
        } else {
            ServerState::Disabled
        };
        Arc::new(Server {
            name: name.to_string(),
            config: settings.clone(),
            status: Mutex::new(ServerStatus {
                name: name.to_string(),
                state,
                tools: Vec::new(),
                last_error: None,
                restarts: 0,
                failures: 0,
                next_start: None,
            }),
            connection: tokio::sync::Mutex::new(None),
            stale: Arc::new(AtomicBool::new(false)),
            listeners: Listeners::default(),
            permits: tokio::sync::Semaphore::new(settings.max_concurrency.max(1)),
        })
    }

    fn note_error(&self, message: &str) {
        self.status.lock().last_error = Some(message.to_string());
    }

    fn failed(&self, message: &str) {
        let mut status = self.status.lock();
        status.state = ServerState::Failed;
        status.last_error = Some(message.to_string());
        status.failures += 1;
        status.next_start = Some(Instant::now() + backoff(status.failures));
    }

    fn succeeded(&self) {
        self.status.lock().failures = 0;
    }

    /// The live connection, started (or started again) if need be.
    async fn connect(&self, root: &Path) -> Result<Arc<Connection>, String> {
        let mut slot = self.connection.lock().await;
        if let Some(connection) = &*slot {
            if !connection.is_closed() {
                if self.stale.swap(false, Ordering::Relaxed) {
                    let tools = connection.peer().list_all_tools().await;
                    if let Ok(tools) = tools {
                        self.status.lock().tools = self.offered(tools);
                    }
                }
                return Ok(Arc::clone(connection));
            }
            let message = format!("the MCP server `{}` stopped", self.name);
            tracing::warn!(server = %self.name, "{message}; starting it again");
            self.failed(&message);
            *slot = None;
        }
        if !self.config.enabled {
            return Err(format!(
                "the MCP server `{}` is disabled (mcp_servers.{}.enabled = false)",
                self.name, self.name
            ));
        }
        let (wait, was_started) = {
            let status = self.status.lock();
            let wait = status
                .next_start
                .and_then(|at| at.checked_duration_since(Instant::now()));
            (wait, status.state == ServerState::Failed)
        };
        if let Some(wait) = wait.filter(|w| !w.is_zero()) {
            let last = self.status.lock().last_error.clone().unwrap_or_default();
            return Err(format!(
                "the MCP server `{}` is failing ({last}); it will be started again in {} s",
                self.name,
                wait.as_secs_f64().ceil()
            ));
        }
        {
            let mut status = self.status.lock();
            status.state = ServerState::Starting;
            if was_started {
                status.restarts += 1;
            }
        }
        let timeout = Duration::from_millis(self.config.startup_timeout_ms);
        let started = tokio::time::timeout(timeout, self.start(root)).await;
        let started = match started {
            Ok(started) => started,
            Err(_) => Err(format!(
                "did not start within {} ms (mcp_servers.{}.startup_timeout_ms)",
                timeout.as_millis(),
                self.name
            )),
        };
        match started {
            Ok((connection, tools)) => {
                let connection = Arc::new(connection);
                let mut status = self.status.lock();
                status.state = ServerState::Running;
                status.tools = tools;
                status.next_start = None;
                *slot = Some(Arc::clone(&connection));
                tracing::info!(server = %self.name, tools = status.tools.len(), "MCP server running");
                Ok(connection)
            }
            Err(e) => {
                let message = format!("the MCP server `{}` {e}", self.name);
                self.failed(&message);
                Err(message)
            }
        }
    }

    /// Spawns the server (or reaches it at its `url`), initializes it and lists its tools.
    async fn start(&self, root: &Path) -> Result<(Connection, Vec<McpTool>), String> {
        self.stale.store(false, Ordering::Relaxed);
        let handler = Handler {
            stale: Arc::clone(&self.stale),
            listeners: Arc::clone(&self.listeners),
        };
        let connection = match (&self.config.command, &self.config.url) {
            (Some(program), _) => {
                let transport = self.spawn(program, root)?;
                handler.serve(transport).await
            }
            (None, Some(url)) => {
                let transport = self.http(url)?;
                handler.serve(transport).await
            }
            (None, None) => return Err("has neither `command` nor `url`".into()),
        }
        .map_err(|e| format!("failed to initialize: {e}"))?;
        let tools = connection
            .peer()
            .list_all_tools()
            .await
            .map_err(|e| format!("failed to list its tools: {e}"))?;
        let tools = self.offered(tools);
        Ok((connection, tools))
    }

    /// Starts `program` (stdio), its stderr going to the log.
    fn spawn(&self, program: &str, root: &Path) -> Result<TokioChildProcess, String> {
        let mut command = tokio::process::Command::new(program);
        command
            .args(&self.config.args)
            .env_clear()
            .envs(self.config.child_env(std::env::vars_os()))
            .current_dir(match &self.config.cwd {
                Some(cwd) => root.join(cwd),
                None => root.to_path_buf(),
            });
        let (transport, stderr) = TokioChildProcess::builder(command)
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot be started (`{program}`): {e}"))?;
        if let Some(stderr) = stderr {
            let name = self.name.clone();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let line: String = line.chars().take(2_000).collect();
                    tracing::info!(server = %name, "stderr: {line}");
                }
            });
        }
        Ok(transport)
    }

    /// The streamable HTTP transport to `url`, with the configured headers (tokens read from
    /// the environment now, by name).
    fn http(
        &self,
        url: &str,
    ) -> Result<impl rmcp::transport::Transport<RoleClient> + 'static, String> {
        use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
        // reqwest 0.13 is built without a crypto provider: use ring, as the rest does.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let headers = self
            .config
            .http_headers(&self.name, |name| std::env::var(name).ok())?;
        let mut config = StreamableHttpClientTransportConfig::with_uri(url);
        let mut custom = std::collections::HashMap::new();
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("authorization") {
                let token = value.strip_prefix("Bearer ").unwrap_or(&value).to_string();
                config = config.auth_header(token);
                continue;
            }
            let header = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| format!("has a bad header name `{name}`: {e}"))?;
            let mut value = http::HeaderValue::from_str(&value)
                .map_err(|_| format!("has a value of header `{name}` that is not valid in HTTP"))?;
            value.set_sensitive(true);
            custom.insert(header, value);
        }
        Ok(StreamableHttpClientTransport::from_config(
            config.custom_headers(custom),
        ))
    }

    /// The tools `tools.allow` / `tools.deny` let through, as offered.
    fn offered(&self, tools: Vec<rmcp::model::Tool>) -> Vec<McpTool> {
        tools
            .into_iter()
            .filter(|tool| self.config.tools.offers(&tool.name))
            .map(|tool| {
                let hints = tool.annotations.as_ref();
                let read_only = hints.and_then(|a| a.read_only_hint).unwrap_or(false);
                McpTool {
                    name: exposed_name(&self.name, &tool.name),
                    description: tool.description.as_deref().unwrap_or_default().to_string(),
                    input_schema: Value::Object((*tool.input_schema).clone()),
                    read_only,
                    destructive: !read_only
                        && hints.and_then(|a| a.destructive_hint).unwrap_or(true),
                    tool: tool.name.into_owned(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_follow_the_providers_rules() {
        let ok = |name: &str| {
            name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        };
        assert_eq!(exposed_name("fs", "read_file"), "mcp__fs__read_file");
        assert_eq!(
            exposed_name("fs", "read.file/x y"),
            "mcp__fs__read_file_x_y"
        );
        let long_a = exposed_name("server", &"a".repeat(80));
        let long_b = exposed_name("server", &format!("{}b", "a".repeat(79)));
        assert!(ok(&long_a) && ok(&long_b), "{long_a} {long_b}");
        assert_ne!(long_a, long_b);
    }

    #[test]
    fn results_render_text_resources_and_describe_images() {
        let output = McpOutput {
            server: "s".into(),
            tool: "t".into(),
            content: vec![
                json!({"type": "text", "text": "hello"}),
                json!({"type": "image", "mimeType": "image/png", "data": "AAAA"}),
                json!({"type": "resource", "resource": {"uri": "file:///a", "text": "body"}}),
            ],
            structured_content: Some(json!({"n": 1})),
        };
        assert_eq!(
            output.render(0),
            "hello\n[image: image/png, about 3 bytes, not shown]\n[resource file:///a]\nbody"
        );
        let structured = McpOutput {
            content: vec![],
            ..output
        };
        assert_eq!(structured.render(0), r#"{"n":1}"#);
        assert!(structured.render(3).starts_with("{\"n"));
    }

    #[test]
    fn images_stand_in_the_text_where_they_are_described_and_are_bounded() {
        let output = McpOutput {
            server: "s".into(),
            tool: "t".into(),
            content: vec![
                json!({"type": "text", "text": "look:"}),
                json!({"type": "image", "mimeType": "image/png", "data": "iVBORw0KGgo="}),
                json!({"type": "image", "mimeType": "image/png", "data": "not base64!"}),
                json!({"type": "text", "text": "done"}),
            ],
            structured_content: None,
        };
        let (text, images) = output.render_with_images(0);
        assert_eq!(images.len(), 1, "the malformed one is only described");
        assert_eq!(
            &text[images[0].at.clone()],
            "[image: image/png, about 9 bytes, not shown]"
        );
        assert_eq!(images[0].data, "iVBORw0KGgo=");
        let (_, images) = output.render_with_images(10);
        assert!(images.is_empty(), "an image the cap cuts is not sent");
        let big = McpOutput {
            content: vec![json!({"type": "image", "mimeType": "image/png",
                "data": "A".repeat(MAX_IMAGE_BYTES + 4)})],
            ..output
        };
        assert!(big.render_with_images(0).1.is_empty());
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert_eq!(backoff(1), Duration::ZERO);
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(40), Duration::from_secs(60));
    }
}
