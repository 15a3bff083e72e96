//! The agent side of ACP: the handlers of the client's requests, mapped onto `Core`.
//!
//! One [`Core`] serves each working directory a session is opened in (its configuration
//! loaded with the trust rules, as the CLI does). Its front end is this module: changes go
//! through [`Applier::Client`] (written by the client's `fs/write_text_file` when it offers
//! it, else on disk) and approvals through [`Prompter::Editor`], both routed by session to
//! the prompt running in it. When the client offers `fs/read_text_file`, `read` asks it
//! (see [`Documents::set_editor`](crate::documents::Documents::set_editor)), and what it
//! served or wrote whole stays in the core's documents for the session, refreshed at each
//! prompt. While a prompt runs, one task per prompt forwards the run's
//! events as `session/update`s and answers the core's questions in the order they happen,
//! so a permission request always follows the `tool_call` it is about.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use acp::{Error, ErrorCode};
use agent_client_protocol_schema::v1 as acp;
use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::transport::Connection;
use super::{from_proto, to_proto};
use crate::agent::{AgentError, AgentEvent, Session};
use crate::approvals::{ApprovalRequest, Decision, Prompter, Subject};
use crate::core::{Core, FrontEnd};
use crate::documents::BufferRequest;
use crate::edits::{Applier, ApplyOutcome, Change, EditorRequest};
use crate::tools::{BashOutput, TerminalRequest};

/// The `mode` config option's values.
const MODE_ASK: &str = "ask";
const MODE_ACCEPT: &str = "accept";
const AUTH_METHOD: &str = "environment";

/// The agent: the client's capabilities, the cores by working directory, the sessions.
pub(crate) struct Agent {
    conn: Connection,
    state: Mutex<State>,
    sessions: Arc<Mutex<HashMap<String, Arc<Live>>>>,
}

#[derive(Default)]
struct State {
    client: acp::ClientCapabilities,
    cores: HashMap<PathBuf, Core>,
}

/// A session this process serves.
struct Live {
    id: String,
    cwd: PathBuf,
    core: Core,
    session: Session,
    /// Where the core's questions about this session go while a prompt runs.
    route: Mutex<Option<mpsc::UnboundedSender<FromCore>>>,
    /// Cancels what waits on the client for the running prompt.
    cancel: Mutex<CancellationToken>,
    /// `ask` or `accept` (changes without asking).
    mode: Mutex<&'static str>,
    /// Tools the user rejected for good in this session.
    rejected: Mutex<HashSet<Subject>>,
    /// How many compactions the client was told of (their ids).
    compactions: std::sync::atomic::AtomicU64,
}

/// A question of the core about a session's running prompt.
enum FromCore {
    Approval(ApprovalRequest),
    Apply(EditorRequest),
    Terminal(TerminalRequest),
}

fn error(code: ErrorCode, message: impl Into<String>) -> Error {
    Error::new(code.into(), message)
}

fn invalid_params(message: impl Into<String>) -> Error {
    error(ErrorCode::InvalidParams, message)
}

impl Agent {
    pub(crate) fn new(conn: Connection) -> Arc<Agent> {
        Arc::new(Agent {
            conn,
            state: Mutex::new(State::default()),
            sessions: Arc::default(),
        })
    }

    /// Answers one request.
    pub(crate) async fn request(
        self: &Arc<Self>,
        method: &str,
        params: Value,
    ) -> Result<Value, Error> {
        // Requests without parameters may leave them out.
        let params = if params.is_null() {
            Value::Object(serde_json::Map::new())
        } else {
            params
        };
        let request =
            acp::ClientRequest::from_method_and_params(method, &params).map_err(|e| match e {
                agent_client_protocol_schema::MethodDispatchError::UnknownMethod { .. } => error(
                    ErrorCode::MethodNotFound,
                    format!("method not found: `{method}` is not an ACP method switchyard serves"),
                ),
                other => invalid_params(other.to_string()),
            })?;
        match request {
            acp::ClientRequest::InitializeRequest(r) => to_value(self.initialize(r)),
            acp::ClientRequest::AuthenticateRequest(r) => to_value(self.authenticate(r)),
            acp::ClientRequest::NewSessionRequest(r) => to_value(self.new_session(r).await?),
            acp::ClientRequest::LoadSessionRequest(r) => to_value(self.load_session(r).await?),
            acp::ClientRequest::ResumeSessionRequest(r) => to_value(self.resume_session(r).await?),
            acp::ClientRequest::ListSessionsRequest(r) => to_value(self.list_sessions(r).await?),
            acp::ClientRequest::CloseSessionRequest(r) => {
                let live = self.live(&r.session_id)?;
                live.session.close();
                live.core.documents().forget_session(&live.session_key());
                self.sessions.lock().remove(&live.id);
                to_value(acp::CloseSessionResponse::new())
            }
            acp::ClientRequest::SetSessionConfigOptionRequest(r) => {
                to_value(self.set_config_option(r)?)
            }
            acp::ClientRequest::PromptRequest(r) => to_value(self.prompt(r).await?),
            other => Err(error(
                ErrorCode::MethodNotFound,
                format!(
                    "method not found: switchyard does not serve `{}`",
                    other.method()
                ),
            )),
        }
    }

    /// Handles one notification (`session/cancel`); others are ignored, as JSON-RPC says.
    pub(crate) fn notification(&self, method: &str, params: Value) {
        match acp::ClientNotification::from_method_and_params(method, &params) {
            Ok(acp::ClientNotification::CancelNotification(cancel)) => {
                let live = self.sessions.lock().get(&*cancel.session_id.0).cloned();
                match live {
                    Some(live) => {
                        live.cancel.lock().cancel();
                        live.session.cancel();
                    }
                    None => {
                        tracing::warn!("session/cancel for unknown session {}", cancel.session_id)
                    }
                }
            }
            Ok(_) => tracing::debug!("notification {method} ignored"),
            Err(e) => tracing::warn!("notification {method} ignored: {e}"),
        }
    }

    fn initialize(&self, request: acp::InitializeRequest) -> acp::InitializeResponse {
        self.state.lock().client = request.client_capabilities;
        let mut sessions = acp::SessionCapabilities::default();
        sessions.list = Some(acp::SessionListCapabilities::new());
        sessions.resume = Some(acp::SessionResumeCapabilities::new());
        sessions.close = Some(acp::SessionCloseCapabilities::new());
        let mut prompts = acp::PromptCapabilities::default();
        prompts.embedded_context = true;
        let mut caps = acp::AgentCapabilities::default();
        caps.load_session = true;
        let mut mcp = acp::McpCapabilities::new();
        mcp.http = true;
        caps.mcp_capabilities = mcp;
        caps.prompt_capabilities = prompts;
        caps.session_capabilities = sessions;
        // Version 1 is the only one spoken; a client that asks for another decides
        // whether it can go on with 1.
        acp::InitializeResponse::new(agent_client_protocol_schema::ProtocolVersion::V1)
            .agent_capabilities(caps)
            .auth_methods(vec![acp::AuthMethod::Agent(
                acp::AuthMethodAgent::new(AUTH_METHOD, "API key from the environment").description(
                    "Set OPENAI_API_KEY (or ANTHROPIC_API_KEY with SWITCHYARD_PROVIDER=anthropic) \
                     in the environment the client starts `switchyard acp` with, or [llm] in \
                     ~/.config/switchyard/config.toml",
                ),
            )])
            .agent_info(
                acp::Implementation::new("switchyard", env!("CARGO_PKG_VERSION"))
                    .title("Switchyard"),
            )
    }

    fn authenticate(&self, _request: acp::AuthenticateRequest) -> acp::AuthenticateResponse {
        // The key is read from the environment when a prompt needs it; there is nothing to
        // do now, and a missing key is told with the prompt.
        acp::AuthenticateResponse::new()
    }

    /// The core of `cwd`, opened (with its configuration and trust rules) on first use.
    fn core(&self, cwd: &Path) -> Result<Core, Error> {
        if !cwd.is_absolute() {
            return Err(invalid_params(format!(
                "cwd must be an absolute path, got `{}`",
                cwd.display()
            )));
        }
        if let Some(core) = self.state.lock().cores.get(cwd) {
            return Ok(core.clone());
        }
        let (writes_files, terminals, reads) = {
            let client = &self.state.lock().client;
            (
                client.fs.write_text_file,
                client.terminal,
                client.fs.read_text_file,
            )
        };
        let (edits_tx, edits_rx) = mpsc::channel(8);
        let (approvals_tx, approvals_rx) = mpsc::channel(8);
        let (terminal_tx, terminal_rx) = mpsc::channel(8);
        let front = FrontEnd {
            applier: Some(Applier::Client {
                requests: edits_tx,
                writes_files,
                terminal: terminals.then_some(terminal_tx),
            }),
            prompter: Prompter::Editor(approvals_tx),
        };
        let (core, ignored) = Core::open(cwd, front).map_err(|e| invalid_params(e.to_string()))?;
        if let Some(ignored) = ignored {
            tracing::warn!("{}", ignored.notice());
        }
        let core = {
            let mut state = self.state.lock();
            state.cores.entry(cwd.to_path_buf()).or_insert(core).clone()
        };
        self.route(edits_rx, approvals_rx, terminal_rx);
        if reads {
            let (reads_tx, reads_rx) = mpsc::channel(64);
            core.documents().set_editor(reads_tx);
            self.serve_reads(reads_rx);
        }
        Ok(core)
    }

    /// Asks the client for the buffers `read` wants, each at once on a task of its own
    /// (reads run in parallel; none waits behind the prompt's updates).
    fn serve_reads(&self, mut reads: mpsc::Receiver<BufferRequest>) {
        let conn = self.conn.clone();
        tokio::spawn(async move {
            while let Some(request) = reads.recv().await {
                let conn = conn.clone();
                tokio::spawn(async move {
                    let answer = match &request.session {
                        Some(session) => {
                            read_text_file(
                                &conn,
                                session,
                                request.path.clone(),
                                request.line,
                                request.limit,
                            )
                            .await
                        }
                        // Not a call of an ACP session: no client to ask.
                        None => Ok(None),
                    };
                    let _ = request.reply.send(answer);
                });
            }
        });
    }

    /// Sends the core's questions to the prompt running in their session; with none
    /// running, a change is not applied and an approval is refused (by dropping it).
    fn route(
        &self,
        mut edits: mpsc::Receiver<EditorRequest>,
        mut approvals: mpsc::Receiver<ApprovalRequest>,
        mut terminals: mpsc::Receiver<TerminalRequest>,
    ) {
        let sessions = Arc::clone(&self.sessions);
        let route_of = move |session: Option<&crate::lanes::SessionId>| {
            let live = sessions.lock().get(&**session?).cloned()?;
            live.route.lock().clone()
        };
        tokio::spawn(async move {
            loop {
                let (session, question) = tokio::select! {
                    Some(request) = edits.recv() => (request.session.clone(), FromCore::Apply(request)),
                    Some(request) = approvals.recv() => (request.session.clone(), FromCore::Approval(request)),
                    Some(request) = terminals.recv() => (request.session.clone(), FromCore::Terminal(request)),
                    else => return,
                };
                match route_of(session.as_ref()) {
                    Some(route) => {
                        let _ = route.send(question);
                    }
                    None => match question {
                        FromCore::Apply(request) => {
                            let _ = request.reply.send(ApplyOutcome::NotApplied {
                                reason: "no prompt is running in the session".into(),
                            });
                        }
                        FromCore::Terminal(request) => {
                            let _ = request
                                .reply
                                .send(Err("no prompt is running in the session".into()));
                        }
                        // Dropped: a refusal.
                        FromCore::Approval(_) => {}
                    },
                }
            }
        });
    }

    fn live(&self, id: &acp::SessionId) -> Result<Arc<Live>, Error> {
        self.sessions.lock().get(&*id.0).cloned().ok_or_else(|| {
            let mut e = Error::session_not_found(id.clone());
            e.message =
                format!("unknown session `{id}`: start one with session/new or session/load");
            e
        })
    }

    fn register(&self, cwd: &Path, core: Core, session: Session) -> Arc<Live> {
        // A session served again (loaded twice) starts from the client's buffers anew.
        core.documents()
            .forget_session(&crate::lanes::SessionId::from(session.id()));
        let cancel = CancellationToken::new();
        let live = Arc::new(Live {
            id: session.id().to_string(),
            cwd: cwd.to_path_buf(),
            core,
            session,
            route: Mutex::new(None),
            cancel: Mutex::new(cancel),
            mode: Mutex::new(MODE_ASK),
            rejected: Mutex::new(HashSet::new()),
            compactions: std::sync::atomic::AtomicU64::new(0),
        });
        self.sessions
            .lock()
            .insert(live.id.clone(), Arc::clone(&live));
        live
    }

    /// Adds the session's `mcpServers` (for it only) in its core.
    fn add_mcp(live: &Live, servers: &[acp::McpServer]) -> Result<(), Error> {
        let servers = from_proto::mcp_servers(servers).map_err(invalid_params)?;
        live.core
            .add_session_mcp(&live.id, servers)
            .map_err(|e| invalid_params(format!("mcpServers: {e}")))
    }

    async fn new_session(
        &self,
        request: acp::NewSessionRequest,
    ) -> Result<acp::NewSessionResponse, Error> {
        let servers = from_proto::mcp_servers(&request.mcp_servers).map_err(invalid_params)?;
        let core = self.core(&request.cwd)?;
        let agent = core.agent().map_err(|e| invalid_params(e.to_string()))?;
        let session = agent
            .new_session()
            .await
            .map_err(|e| invalid_params(e.to_string()))?;
        if let Err(e) = core.add_session_mcp(session.id(), servers) {
            session.close();
            return Err(invalid_params(format!("mcpServers: {e}")));
        }
        let live = self.register(&request.cwd, core, session);
        Ok(
            acp::NewSessionResponse::new(live.id.clone())
                .config_options(self.config_options(&live)),
        )
    }

    /// The session `id` of `cwd`: the one served now, else the stored one, resumed.
    async fn open_session(&self, id: &acp::SessionId, cwd: &Path) -> Result<Arc<Live>, Error> {
        if let Ok(live) = self.live(id) {
            return Ok(live);
        }
        let core = self.core(cwd)?;
        let agent = core.agent().map_err(|e| invalid_params(e.to_string()))?;
        let session = agent.session(&id.0).await.map_err(|e| {
            let mut not_found = Error::session_not_found(id.clone());
            not_found.message = e.to_string();
            not_found
        })?;
        Ok(self.register(cwd, core, session))
    }

    async fn load_session(
        &self,
        request: acp::LoadSessionRequest,
    ) -> Result<acp::LoadSessionResponse, Error> {
        let live = self.open_session(&request.session_id, &request.cwd).await?;
        Agent::add_mcp(&live, &request.mcp_servers)?;
        for update in to_proto::replay(&live.session.history().await, &live.cwd) {
            self.conn.notify(
                "session/update",
                acp::SessionNotification::new(live.id.clone(), update),
            );
        }
        Ok(acp::LoadSessionResponse::new().config_options(self.config_options(&live)))
    }

    async fn resume_session(
        &self,
        request: acp::ResumeSessionRequest,
    ) -> Result<acp::ResumeSessionResponse, Error> {
        let live = self.open_session(&request.session_id, &request.cwd).await?;
        Agent::add_mcp(&live, &request.mcp_servers)?;
        Ok(acp::ResumeSessionResponse::new().config_options(self.config_options(&live)))
    }

    async fn list_sessions(
        &self,
        request: acp::ListSessionsRequest,
    ) -> Result<acp::ListSessionsResponse, Error> {
        let cwd = match request.cwd {
            Some(cwd) => cwd,
            None => std::env::current_dir()
                .map_err(|e| error(ErrorCode::InternalError, e.to_string()))?,
        };
        let core = self.core(&cwd)?;
        let agent = core.agent().map_err(|e| invalid_params(e.to_string()))?;
        let stored = agent
            .list_sessions()
            .await
            .map_err(|e| error(ErrorCode::InternalError, e.to_string()))?;
        let sessions = stored
            .into_iter()
            .map(|info| {
                let mut session = acp::SessionInfo::new(info.id, cwd.clone());
                session.title = Some(info.title).filter(|t| !t.is_empty());
                session.updated_at = Some(to_proto::iso8601(info.updated_ms));
                session
            })
            .collect();
        Ok(acp::ListSessionsResponse::new(sessions))
    }

    /// The session's options: the model (the configured one) and the approval mode.
    fn config_options(&self, live: &Live) -> Vec<acp::SessionConfigOption> {
        let model = live
            .core
            .agent()
            .ok()
            .and_then(|agent| agent.llm().ok())
            .map(|client| client.config().model.clone());
        let mut options = Vec::new();
        if let Some(model) = model {
            options.push(
                acp::SessionConfigOption::select(
                    "model",
                    "Model",
                    model.clone(),
                    vec![acp::SessionConfigSelectOption::new(model.clone(), model)],
                )
                .category(acp::SessionConfigOptionCategory::Model)
                .description("The model of the working directory's sessions (llm.model)"),
            );
        }
        options.push(
            acp::SessionConfigOption::select(
                "mode",
                "Changes",
                *live.mode.lock(),
                vec![
                    acp::SessionConfigSelectOption::new(MODE_ASK, "Ask before changes")
                        .description("Changes and commands ask first, as the approval policy says"),
                    acp::SessionConfigSelectOption::new(MODE_ACCEPT, "Accept changes")
                        .description("Changes to files are made without asking; what the policy denies stays denied"),
                ],
            )
            .category(acp::SessionConfigOptionCategory::Mode),
        );
        options
    }

    fn set_config_option(
        &self,
        request: acp::SetSessionConfigOptionRequest,
    ) -> Result<acp::SetSessionConfigOptionResponse, Error> {
        let live = self.live(&request.session_id)?;
        let value = request
            .value
            .as_value_id()
            .map(|v| v.0.to_string())
            .ok_or_else(|| {
                invalid_params(format!(
                    "`{}` takes one of its listed values",
                    request.config_id
                ))
            })?;
        match &*request.config_id.0 {
            "mode" => {
                *live.mode.lock() = match value.as_str() {
                    MODE_ASK => MODE_ASK,
                    MODE_ACCEPT => MODE_ACCEPT,
                    other => {
                        return Err(invalid_params(format!(
                            "mode `{other}` is not one of `{MODE_ASK}`, `{MODE_ACCEPT}`"
                        )));
                    }
                };
            }
            "model" => {
                let mut config = (*live.core.config()).clone();
                config.llm.model = Some(value);
                live.core
                    .set_config(config)
                    .map_err(|e| invalid_params(e.to_string()))?;
            }
            other => {
                return Err(invalid_params(format!(
                    "unknown config option `{other}`; the options are `model` and `mode`"
                )));
            }
        }
        Ok(acp::SetSessionConfigOptionResponse::new(
            self.config_options(&live),
        ))
    }

    async fn prompt(&self, request: acp::PromptRequest) -> Result<acp::PromptResponse, Error> {
        let live = self.live(&request.session_id)?;
        let prompt = from_proto::prompt(&request.prompt, &live.cwd).map_err(invalid_params)?;
        let agent = live
            .core
            .agent()
            .map_err(|e| invalid_params(e.to_string()))?;
        if let Err(why) = agent.llm() {
            return Err(error(ErrorCode::AuthRequired, why));
        }
        let (route, questions) = mpsc::unbounded_channel();
        {
            let mut running = live.route.lock();
            if running.is_some() {
                return Err(error(
                    ErrorCode::InvalidRequest,
                    format!(
                        "session `{}` is already answering a prompt; wait for its answer or send session/cancel",
                        live.id
                    ),
                ));
            }
            *running = Some(route);
        }
        let cancel = CancellationToken::new();
        *live.cancel.lock() = cancel.clone();
        let result = self.run(&live, prompt, questions, cancel).await;
        *live.route.lock() = None;
        result
    }

    async fn run(
        &self,
        live: &Arc<Live>,
        prompt: from_proto::Prompt,
        questions: mpsc::UnboundedReceiver<FromCore>,
        cancel: CancellationToken,
    ) -> Result<acp::PromptResponse, Error> {
        let reads = self.state.lock().client.fs.read_text_file;
        let documents = live.core.documents();
        let key = live.session_key();
        // The files the prompt names, and those the client served or wrote earlier in the
        // session, as the client has them now (the user may have typed in them since):
        // what the tools see before the disk. Asked all at once.
        let mut wanted: Vec<(PathBuf, Option<String>)> = prompt.files;
        for path in documents.served(&key) {
            if !wanted.iter().any(|(p, _)| *p == path) {
                wanted.push((path, None));
            }
        }
        let fetched = futures::future::join_all(wanted.into_iter().map(|(path, text)| async {
            let text = match text {
                Some(text) => Ok(Some(text)),
                None if reads => read_text_file(&self.conn, &key, path.clone(), None, None).await,
                None => Ok(None),
            };
            (path, text)
        }))
        .await;
        for (path, text) in fetched {
            match text {
                Ok(Some(text)) => documents.serve(path, &key, text),
                // Gone from the client, or it cannot say: the disk decides.
                Ok(None) | Err(_) => {
                    documents.close(&path);
                }
            }
        }
        // A cancel that came while the files were fetched (before the run has a token of
        // its own to cancel) ends the prompt here.
        if cancel.is_cancelled() {
            return Ok(acp::PromptResponse::new(acp::StopReason::Cancelled));
        }
        let (events, received) = mpsc::unbounded_channel::<AgentEvent>();
        let turn = Turn {
            client: self.state.lock().client.clone(),
            conn: self.conn.clone(),
            live: Arc::clone(live),
            cancel,
            started: HashMap::new(),
            changing: None,
            changes: HashMap::new(),
        };
        let forward = tokio::spawn(turn.forward(received, questions));
        let result = live
            .session
            .send(&prompt.text, &prompt.context, &events)
            .await;
        drop(events);
        let _ = forward.await;
        match result {
            Ok(outcome) => Ok(acp::PromptResponse::new(to_proto::stop_reason(
                outcome.stop,
            ))),
            Err(AgentError::NotConfigured(why)) => Err(error(ErrorCode::AuthRequired, why)),
            Err(e) => Err(error(ErrorCode::InternalError, e.to_string())),
        }
    }
}

/// One running prompt's forwarder: its events in order, and the core's questions about it.
struct Turn {
    /// What the client said it can do and show.
    client: acp::ClientCapabilities,
    conn: Connection,
    live: Arc<Live>,
    cancel: CancellationToken,
    /// The calls started and not finished: their title and kind, for permission requests.
    started: HashMap<String, (String, acp::ToolKind)>,
    /// The call that changes files now (such calls run alone).
    changing: Option<String>,
    /// Diff content of the changes each call made.
    changes: HashMap<String, Vec<acp::ToolCallContent>>,
}

impl Turn {
    /// Forwards until the run's events end.
    async fn forward(
        mut self,
        mut events: mpsc::UnboundedReceiver<AgentEvent>,
        mut questions: mpsc::UnboundedReceiver<FromCore>,
    ) {
        loop {
            // Events first: a question is asked after the event of its call was sent.
            tokio::select! {
                biased;
                event = events.recv() => match event {
                    Some(event) => self.event(event),
                    None => break,
                },
                Some(question) = questions.recv() => match question {
                    FromCore::Approval(request) => self.approval(request).await,
                    FromCore::Apply(request) => self.apply(request).await,
                    FromCore::Terminal(request) => self.terminal(request).await,
                },
            }
        }
    }

    fn notify(&self, update: acp::SessionUpdate) {
        self.conn.notify(
            "session/update",
            acp::SessionNotification::new(self.live.id.clone(), update),
        );
    }

    fn event(&mut self, event: AgentEvent) {
        let mut changes = Vec::new();
        match &event {
            AgentEvent::ToolCallStarted {
                call_id,
                name,
                kind,
                summary,
                ..
            } => {
                let kind = to_proto::tool_kind(*kind);
                if to_proto::changes_files(kind) {
                    self.changing = Some(call_id.clone());
                }
                self.started
                    .insert(call_id.clone(), (to_proto::title(name, summary), kind));
            }
            AgentEvent::ToolCallFinished { call_id, .. } => {
                self.started.remove(call_id);
                if self.changing.as_ref() == Some(call_id) {
                    self.changing = None;
                }
                changes = self.changes.remove(call_id).unwrap_or_default();
            }
            AgentEvent::Compacted { replaced, kept } => {
                let n = self.live.compactions.fetch_add(1, Ordering::Relaxed) + 1;
                let id = format!("compaction-{n}");
                if let Some(update) = to_proto::compaction(id, *replaced, *kept, &self.client) {
                    self.notify(update);
                }
            }
            _ => {}
        }
        for update in to_proto::session_updates(&event, &self.live.cwd, changes) {
            self.notify(update);
        }
    }

    async fn approval(&mut self, request: ApprovalRequest) {
        let live = &self.live;
        if live.rejected.lock().contains(&request.tool) {
            let _ = request.reply.send(Decision::Reject);
            return;
        }
        let kind = to_proto::tool_kind(request.tool.kind());
        if *live.mode.lock() == MODE_ACCEPT && kind != acp::ToolKind::Execute {
            let _ = request.reply.send(Decision::Allow);
            return;
        }
        let call_id = self
            .changing
            .clone()
            .unwrap_or_else(|| format!("approval-{}", request.tool));
        let title = self
            .started
            .get(&call_id)
            .map_or_else(|| request.summary.clone(), |(title, _)| title.clone());
        let fields = acp::ToolCallUpdateFields::new()
            .title(title)
            .kind(kind)
            .status(acp::ToolCallStatus::Pending)
            .content(vec![to_proto::text(request.summary.clone())]);
        let options = vec![
            acp::PermissionOption::new("allow-once", "Allow", acp::PermissionOptionKind::AllowOnce),
            acp::PermissionOption::new(
                "allow-always",
                format!("Allow `{}` for this session", request.tool),
                acp::PermissionOptionKind::AllowAlways,
            ),
            acp::PermissionOption::new(
                "reject-once",
                "Reject",
                acp::PermissionOptionKind::RejectOnce,
            ),
            acp::PermissionOption::new(
                "reject-always",
                format!("Reject `{}` for this session", request.tool),
                acp::PermissionOptionKind::RejectAlways,
            ),
        ];
        let ask = acp::RequestPermissionRequest::new(
            live.id.clone(),
            acp::ToolCallUpdate::new(call_id, fields),
            options,
        );
        let answer = tokio::select! {
            answer = self.conn.request("session/request_permission", ask) => answer,
            () = self.cancel.cancelled() => {
                let _ = request.reply.send(Decision::Reject);
                return;
            }
        };
        let chosen = answer
            .ok()
            .and_then(|v| serde_json::from_value::<acp::RequestPermissionResponse>(v).ok())
            .and_then(|r| match r.outcome {
                acp::RequestPermissionOutcome::Selected(selected) => {
                    Some(selected.option_id.0.to_string())
                }
                _ => None,
            });
        let decision = match chosen.as_deref() {
            Some("allow-once") => Decision::Allow,
            Some("allow-always") => Decision::AllowForSession,
            Some("reject-always") => {
                live.rejected.lock().insert(request.tool.clone());
                Decision::Reject
            }
            _ => Decision::Reject,
        };
        let _ = request.reply.send(decision);
    }

    /// Shows a change set as diff content of its call, and writes it through the client
    /// when the core asks that.
    async fn apply(&mut self, request: EditorRequest) {
        if let Some(call) = &self.changing {
            self.changes
                .entry(call.clone())
                .or_default()
                .extend(to_proto::change_content(&request.changes));
        }
        if !request.write {
            let _ = request.reply.send(ApplyOutcome::Applied);
            return;
        }
        for change in &request.changes.changes {
            let (path, content) = match change {
                Change::Edit { path, .. } => (path, change.after().unwrap_or_default()),
                Change::Create { path, content, .. } => (path, content.clone()),
                _ => continue,
            };
            let write =
                acp::WriteTextFileRequest::new(self.live.id.clone(), path.clone(), content.clone());
            if let Err(e) = self.conn.request("fs/write_text_file", write).await {
                let _ = request.reply.send(ApplyOutcome::NotApplied {
                    reason: format!("the client did not write {}: {}", path.display(), e.message),
                });
                return;
            }
            // The client holds the new text now (maybe unsaved): later reads see it.
            self.live
                .core
                .documents()
                .serve(path.clone(), &self.live.session_key(), content);
        }
        let _ = request.reply.send(ApplyOutcome::Applied);
    }
}

impl Turn {
    /// Runs a command in a terminal of the client: created here (the call shows it as
    /// terminal content), then waited for on a task of its own, killed on cancellation or
    /// at its time limit, its output read and the terminal released.
    async fn terminal(&mut self, request: TerminalRequest) {
        let session = self.live.id.clone();
        let mut create = acp::CreateTerminalRequest::new(session.clone(), "bash");
        create.args = vec!["-c".into(), request.command.clone()];
        create.cwd = Some(request.cwd.clone());
        create.output_byte_limit = u64::try_from(request.max_bytes).ok().filter(|n| *n > 0);
        let created = self
            .conn
            .request("terminal/create", create)
            .await
            .and_then(|v| {
                serde_json::from_value::<acp::CreateTerminalResponse>(v)
                    .map_err(|e| invalid_params(e.to_string()))
            });
        let terminal = match created {
            Ok(created) => created.terminal_id,
            Err(e) => {
                let _ = request.reply.send(Err(format!(
                    "the editor could not start a terminal: {}",
                    e.message
                )));
                return;
            }
        };
        if let Some(call) = &self.changing {
            let shown = acp::ToolCallContent::Terminal(acp::Terminal::new(terminal.clone()));
            self.changes
                .entry(call.clone())
                .or_default()
                .push(shown.clone());
            self.notify(acp::SessionUpdate::ToolCallUpdate(
                acp::ToolCallUpdate::new(
                    call.clone(),
                    acp::ToolCallUpdateFields::new().content(vec![shown]),
                ),
            ));
        }
        let conn = self.conn.clone();
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let ids = || (session.clone(), terminal.clone());
            let wait = conn.request(
                "terminal/wait_for_exit",
                acp::WaitForTerminalExitRequest::new(ids().0, ids().1),
            );
            let (exit, timed_out) = tokio::select! {
                exit = wait => (exit.ok(), false),
                () = request.token.cancelled() => (None, false),
                () = tokio::time::sleep(request.timeout) => (None, true),
            };
            if exit.is_none() {
                let _ = conn
                    .request(
                        "terminal/kill",
                        acp::KillTerminalRequest::new(ids().0, ids().1),
                    )
                    .await;
            }
            let output = conn
                .request(
                    "terminal/output",
                    acp::TerminalOutputRequest::new(ids().0, ids().1),
                )
                .await
                .and_then(|v| {
                    serde_json::from_value::<acp::TerminalOutputResponse>(v)
                        .map_err(|e| invalid_params(e.to_string()))
                });
            let _ = conn
                .request(
                    "terminal/release",
                    acp::ReleaseTerminalRequest::new(ids().0, ids().1),
                )
                .await;
            let result = output
                .map(|output| BashOutput {
                    command: request.command.clone(),
                    exit_code: output
                        .exit_status
                        .and_then(|s| s.exit_code)
                        .and_then(|c| i32::try_from(c).ok()),
                    timed_out,
                    stdout: output.output,
                    stderr: String::new(),
                    duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    dry_run: false,
                })
                .map_err(|e| format!("the editor's terminal failed: {}", e.message));
            let _ = request.reply.send(result);
        });
    }
}

impl Live {
    /// The session's id as the core's lanes and documents know it.
    fn session_key(&self) -> crate::lanes::SessionId {
        crate::lanes::SessionId::from(self.id.as_str())
    }
}

/// The client's text of `path` (`fs/read_text_file`), `None` when it says there is no
/// such file (`-32002`, resource not found); any other error is the client's message.
async fn read_text_file(
    conn: &Connection,
    session: &str,
    path: PathBuf,
    line: Option<u32>,
    limit: Option<u32>,
) -> Result<Option<String>, String> {
    let request = acp::ReadTextFileRequest::new(session.to_string(), path)
        .line(line)
        .limit(limit);
    match conn.request("fs/read_text_file", request).await {
        Ok(value) => serde_json::from_value::<acp::ReadTextFileResponse>(value)
            .map(|r| Some(r.content))
            .map_err(|e| format!("malformed answer: {e}")),
        Err(e) if e.code == ErrorCode::ResourceNotFound => Ok(None),
        Err(e) => Err(e.message),
    }
}

fn to_value(value: impl serde::Serialize) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(|e| error(ErrorCode::InternalError, e.to_string()))
}
