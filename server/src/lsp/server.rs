//! The language server proper: lifecycle, documents, configuration, and the custom
//! requests of [`ext`](super::ext); commands are in [`commands`](super::commands).
//!
//! Handlers never block: requests run on their own tasks (see [`transport`](super::transport)),
//! notifications run inline and only touch memory, and anything that waits on the client or
//! the disk (pulling configuration, reading `.switchyard.toml`) is spawned.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower_lsp_server::jsonrpc::{Error, Result};
use tower_lsp_server::ls_types::{
    ClientCapabilities, ConfigurationItem, DidChangeConfigurationParams,
    DidChangeTextDocumentParams, DidChangeWorkspaceFoldersParams, DidCloseTextDocumentParams,
    DidOpenTextDocumentParams, ExecuteCommandOptions, ExecuteCommandParams, InitializeParams,
    InitializeResult, InitializedParams, MessageType, OneOf, Registration, ResourceOperationKind,
    ServerCapabilities, ServerInfo, TextDocumentSyncCapability, TextDocumentSyncKind,
    TextDocumentSyncOptions, Uri, WorkDoneProgressCancelParams, WorkDoneProgressOptions,
    WorkspaceFoldersServerCapabilities, WorkspaceServerCapabilities,
};
use tower_lsp_server::{Client, LanguageServer, LspService};

use super::ext::{
    self, AskParams, AskResult, CompleteTaskParams, PendingTasksParams, PendingTasksResult,
};
use super::log::{LogForwarder, LogLine};
use super::progress::{self, Jobs};
use super::{ask, commands, edits, from_proto, sessions, settings, to_proto};
use crate::agent::Agent;
use crate::approvals::{ApprovalRequest, Prompter};
use crate::config::{Config, Layer};
use crate::core::{Core, FrontEnd};
use crate::documents::{Documents, PositionEncoding};
use crate::edits::{Applier, EditorRequest};
use crate::lanes::{LaneMode, Lanes, TaskError};
use crate::tools::Toolbox;

/// How long a claim of `switchyard/pendingTasks` lasts when the worker does not say.
const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// The server; cheap to clone, every clone is the same server.
#[derive(Clone)]
pub(crate) struct Server {
    pub(crate) inner: Arc<Inner>,
}

/// Everything the handlers share.
pub(crate) struct Inner {
    pub(crate) client: Client,
    /// The composition root: lanes, buffers, tools, approvals, agent, configuration.
    pub(crate) core: Core,
    /// The core's lanes and buffers, at hand for the handlers.
    pub(crate) lanes: Lanes,
    pub(crate) documents: Documents,
    pub(crate) jobs: Arc<Jobs>,
    pub(crate) log: LogForwarder,
    /// Log lines for the editor, queued from the start, sent once it is initialized.
    log_lines: parking_lot::Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<LogLine>>>,
    pub(crate) state: RwLock<State>,
    /// Serializes configuration updates.
    config_update: tokio::sync::Mutex<()>,
    /// Cancelled at `shutdown`: background tasks stop.
    stopping: CancellationToken,
    /// Numbers the sessions of commands.
    sessions: AtomicU64,
    /// The other ends of the applier's and the approvals' channels, served from `initialized`.
    editor_requests: parking_lot::Mutex<Option<EditorChannels>>,
}

type EditorChannels = (
    tokio::sync::mpsc::Receiver<EditorRequest>,
    tokio::sync::mpsc::Receiver<ApprovalRequest>,
    tokio::sync::mpsc::Receiver<crate::edits::review::ReviewRequest>,
);

/// What `initialize` negotiated and what changed since.
#[derive(Debug, Default)]
pub(crate) struct State {
    /// The position encoding in use.
    pub(crate) encoding: PositionEncoding,
    /// The workspace folders, first the primary one.
    pub(crate) roots: Vec<Root>,
    /// What the client can do.
    pub(crate) caps: Caps,
    /// `initializationOptions`, as a layer.
    init_options: Option<Layer>,
    /// The latest settings pulled or pushed, as a layer.
    settings: Option<Layer>,
    /// Configuration errors found before the client could be told.
    startup_errors: Vec<String>,
    /// What the untrusted workspace file was not allowed to set, before the client could be
    /// told (and asked whether to trust the folder).
    startup_ignored: Option<crate::trust::Ignored>,
}

/// A workspace folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Root {
    /// The path as the editor names it.
    pub(crate) given: PathBuf,
    /// The same with symlinks resolved, as the tools see it.
    pub(crate) real: PathBuf,
}

/// The client capabilities the server acts on.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Caps {
    /// `window.workDoneProgress`: the server may create progress tokens.
    pub(crate) work_done_progress: bool,
    /// `workspace.configuration`: the server may pull settings.
    pub(crate) configuration: bool,
    /// `workspace.didChangeConfiguration.dynamicRegistration`.
    pub(crate) register_configuration: bool,
    /// `window.showDocument.support`.
    pub(crate) show_document: bool,
    /// `workspace.applyEdit`: the server may change files through the editor.
    pub(crate) apply_edit: bool,
    /// `workspace.workspaceEdit.documentChanges`: versioned edits, resource operations.
    pub(crate) document_changes: bool,
    /// `workspace.workspaceEdit.resourceOperations` includes `create`.
    pub(crate) resource_create: bool,
    /// ... includes `rename`.
    pub(crate) resource_rename: bool,
    /// ... includes `delete`.
    pub(crate) resource_delete: bool,
}

impl Caps {
    fn of(caps: &ClientCapabilities) -> Caps {
        let workspace = caps.workspace.as_ref();
        let window = caps.window.as_ref();
        let workspace_edit = workspace.and_then(|w| w.workspace_edit.as_ref());
        let resource = |kind: ResourceOperationKind| {
            workspace_edit
                .and_then(|e| e.resource_operations.as_ref())
                .is_some_and(|ops| ops.contains(&kind))
        };
        Caps {
            work_done_progress: window.and_then(|w| w.work_done_progress).unwrap_or(false),
            configuration: workspace.and_then(|w| w.configuration).unwrap_or(false),
            register_configuration: workspace
                .and_then(|w| w.did_change_configuration.as_ref())
                .and_then(|d| d.dynamic_registration)
                .unwrap_or(false),
            show_document: window
                .and_then(|w| w.show_document.as_ref())
                .is_some_and(|s| s.support),
            apply_edit: workspace.and_then(|w| w.apply_edit).unwrap_or(false),
            document_changes: workspace_edit
                .and_then(|e| e.document_changes)
                .unwrap_or(false),
            resource_create: resource(ResourceOperationKind::Create),
            resource_rename: resource(ResourceOperationKind::Rename),
            resource_delete: resource(ResourceOperationKind::Delete),
        }
    }
}

impl Server {
    /// The service to serve, with the custom methods of [`ext`] registered.
    pub(crate) fn service(
        lanes: Lanes,
        log: LogForwarder,
    ) -> (LspService<Server>, tower_lsp_server::ClientSocket) {
        Server::builder(lanes, log).finish()
    }

    /// The service builder, for tests that add methods of their own.
    pub(crate) fn builder(
        lanes: Lanes,
        log: LogForwarder,
    ) -> tower_lsp_server::LspServiceBuilder<Server> {
        use tower_lsp_server::ls_types::request::Request as _;
        let log_lines = parking_lot::Mutex::new(Some(log.attach()));
        let (edits_tx, edits_rx) = tokio::sync::mpsc::channel(16);
        let (approvals_tx, approvals_rx) = tokio::sync::mpsc::channel(16);
        let (reviews_tx, reviews_rx) = tokio::sync::mpsc::channel(16);
        // Changes go through the editor as `workspace/applyEdit`, approvals are asked through
        // `window/showMessageRequest`; the workspace comes with `initialize`.
        let front = FrontEnd {
            applier: Some(Applier::Editor {
                edits: edits_tx,
                reviews: Some(reviews_tx),
            }),
            prompter: Prompter::Editor(approvals_tx),
        };
        let core = Core::with_lanes(lanes.clone(), Config::default(), front);
        let editor_requests = parking_lot::Mutex::new(Some((edits_rx, approvals_rx, reviews_rx)));
        LspService::build(move |client| Server {
            inner: Arc::new(Inner {
                client,
                lanes,
                documents: core.documents().clone(),
                core: core.clone(),
                jobs: Arc::new(Jobs::default()),
                log,
                log_lines,
                state: RwLock::new(State::default()),
                config_update: tokio::sync::Mutex::new(()),
                stopping: CancellationToken::new(),
                sessions: AtomicU64::new(0),
                editor_requests,
            }),
        })
        .custom_method(
            "window/workDoneProgress/cancel",
            Server::work_done_progress_cancel,
        )
        .custom_method(ext::PendingTasks::METHOD, Server::pending_tasks)
        .custom_method(ext::CompleteTask::METHOD, Server::complete_task)
        .custom_method(ext::Ask::METHOD, Server::ask)
        .custom_method(ext::ListSessions::METHOD, Server::list_sessions)
        .custom_method(ext::DeleteSession::METHOD, Server::delete_session)
        .custom_method(ext::Rewind::METHOD, Server::rewind)
    }

    async fn rewind(&self, params: ext::RewindParams) -> Result<ext::RewindResult> {
        sessions::rewind(&self.inner.core, params).await
    }

    async fn list_sessions(&self, _: ext::ListSessionsParams) -> Result<ext::ListSessionsResult> {
        sessions::list(&self.inner.agent()?).await
    }

    async fn delete_session(&self, params: ext::DeleteSessionParams) -> Result<()> {
        sessions::delete(&self.inner.agent()?, params).await
    }

    async fn ask(&self, params: AskParams) -> Result<AskResult> {
        let token = params.work_done_token.clone();
        ask::ask(&self.inner, params, token).await
    }

    async fn work_done_progress_cancel(&self, params: WorkDoneProgressCancelParams) {
        if !self
            .inner
            .jobs
            .cancel_token(&self.inner.lanes, &params.token)
        {
            tracing::debug!("no running command reports under {:?}", params.token);
        }
    }

    async fn pending_tasks(&self, params: PendingTasksParams) -> Result<PendingTasksResult> {
        let lanes = &self.inner.lanes;
        let claimed = match (params.claim.unwrap_or(0), params.lane) {
            (0, _) => Vec::new(),
            (_, None) => {
                return Err(Error::invalid_params(
                    "switchyard/pendingTasks: `claim` needs a `lane`",
                ));
            }
            (max, Some(lane)) => {
                if lanes.config().lane(lane).mode != LaneMode::External {
                    return Err(Error::invalid_params(format!(
                        "switchyard/pendingTasks: the {lane} lane is not external (lanes.{lane}.mode)"
                    )));
                }
                let lease = params.lease_ms.map_or(DEFAULT_LEASE, Duration::from_millis);
                lanes.claim(lane, max, lease)
            }
        };
        Ok(PendingTasksResult {
            claimed,
            pending: lanes.pending_tasks(params.lane),
        })
    }

    async fn complete_task(&self, params: CompleteTaskParams) -> Result<()> {
        let result = match (params.result, params.error) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid_params(
                    "switchyard/completeTask: give either `result` or `error`, not both",
                ));
            }
            (None, Some(failure)) => Err(TaskError {
                message: failure.message,
                retryable: failure.retryable,
                retry_after: failure.retry_after_ms.map(Duration::from_millis),
            }),
            (result, None) => Ok(result.unwrap_or(Value::Null)),
        };
        self.inner
            .lanes
            .complete(params.lease_id, result)
            .map_err(|e| Error::invalid_params(format!("switchyard/completeTask: {e}")))
    }
}

impl Inner {
    /// A number for a new session, unique in this server.
    pub(crate) fn next_session(&self) -> u64 {
        self.sessions.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The path of a document URI, in the workspace's real (symlink-free) terms.
    pub(crate) fn document_path(&self, uri: &Uri) -> Option<PathBuf> {
        let path = from_proto::path(uri)?;
        let state = self.state.read();
        let real = state.roots.iter().find_map(|root| {
            let rest = path.strip_prefix(&root.given).ok()?;
            (root.given != root.real).then(|| root.real.join(rest))
        });
        Some(real.unwrap_or(path))
    }

    /// The workspace folder `uri` names, or the first one.
    pub(crate) fn root(&self, uri: Option<&Uri>) -> Result<PathBuf> {
        let state = self.state.read();
        match uri {
            None => state
                .roots
                .first()
                .map(|root| root.real.clone())
                .ok_or_else(|| Error::invalid_params("no workspace folder is open")),
            Some(uri) => {
                let path = from_proto::path(uri).ok_or_else(|| {
                    Error::invalid_params(format!("not a file URI: {}", uri.as_str()))
                })?;
                state
                    .roots
                    .iter()
                    .find(|root| root.given == path || root.real == path)
                    .map(|root| root.real.clone())
                    .ok_or_else(|| {
                        Error::invalid_params(format!(
                            "{} is not a workspace folder",
                            path.display()
                        ))
                    })
            }
        }
    }
    /// The URI the editor knows `path` by: under the workspace folder's name as the editor
    /// gave it, when that differs from its real (symlink-free) path.
    pub(crate) fn editor_uri(&self, path: &Path) -> std::result::Result<Uri, String> {
        let state = self.state.read();
        let given = state.roots.iter().find_map(|root| {
            let rest = path.strip_prefix(&root.real).ok()?;
            (root.given != root.real).then(|| root.given.join(rest))
        });
        to_proto::uri(given.as_deref().unwrap_or(path))
    }

    /// The tools, or why there are none.
    pub(crate) fn toolbox(&self) -> Result<Toolbox> {
        self.core
            .toolbox()
            .map_err(|_| Error::invalid_params("no workspace folder is open for the tools"))
    }

    /// Opens the tools and the agent over the current workspace folders (canonicalizing
    /// them: blocking).
    fn rebuild_toolbox(&self) {
        let roots: Vec<PathBuf> = self
            .state
            .read()
            .roots
            .iter()
            .map(|root| root.real.clone())
            .collect();
        if let Err(e) = self.core.set_roots(roots) {
            tracing::warn!("the tools have no workspace: {e}");
        }
    }

    /// The agent, or why there is none.
    pub(crate) fn agent(&self) -> Result<Agent> {
        self.core
            .agent()
            .map_err(|_| Error::invalid_params("no workspace folder is open for the agent"))
    }

    async fn show_error(&self, message: String) {
        tracing::warn!("{message}");
        self.client.show_message(MessageType::ERROR, message).await;
    }

    /// Pulls the `switchyard` section with `workspace/configuration` and applies it.
    async fn pull_configuration(self: &Arc<Self>) {
        let item = ConfigurationItem {
            scope_uri: None,
            section: Some(settings::SECTION.to_string()),
        };
        match self.client.configuration(vec![item]).await {
            Ok(values) => {
                let layer = settings::editor_layer("workspace/configuration", values.first());
                self.apply_settings(layer).await;
            }
            Err(e) => tracing::warn!("the client did not answer workspace/configuration: {e}"),
        }
    }

    /// Rebuilds the configuration with new editor settings (re-reading the files below
    /// them) and puts it in force; a bad setting is shown and the previous configuration
    /// stays.
    async fn apply_settings(self: &Arc<Self>, settings: Option<Layer>) {
        let _serial = self.config_update.lock().await;
        let (root, init) = {
            let state = self.state.read();
            let root = state.roots.first().map(|root| root.real.clone());
            (root, state.init_options.clone())
        };
        let layers =
            match tokio::task::spawn_blocking(move || Config::discover(root.as_deref())).await {
                Ok(Ok(discovered)) => {
                    if let Some(ignored) = &discovered.ignored {
                        tracing::warn!("{}", ignored.notice());
                    }
                    discovered.layers
                }
                Ok(Err(e)) => {
                    self.show_error(format!(
                        "switchyard: {e}; keeping the previous configuration"
                    ))
                    .await;
                    return;
                }
                Err(e) => {
                    tracing::error!("reading the configuration files failed: {e}");
                    return;
                }
            };
        let layers: Vec<Layer> = layers
            .into_iter()
            .chain(init)
            .chain(settings.clone())
            .collect();
        match settings::build(&layers) {
            Ok(config) => {
                if let Err(e) = self.put_in_force(&config) {
                    self.show_error(format!(
                        "switchyard: {e}; keeping the previous configuration"
                    ))
                    .await;
                    return;
                }
                self.state.write().settings = settings;
            }
            Err(e) => {
                self.show_error(format!(
                    "switchyard: {e}; keeping the previous configuration"
                ))
                .await;
            }
        }
    }

    /// Puts `config` in force, whole: the log level here, everything else in the core.
    fn put_in_force(&self, config: &Config) -> std::result::Result<(), String> {
        if *self.core.config() == *config {
            return Ok(());
        }
        self.core
            .set_config(config.clone())
            .map_err(|e| e.to_string())?;
        self.log.set_level(config.log.level);
        tracing::info!("configuration updated");
        Ok(())
    }
}

/// The workspace folders of `initialize`: its folders, else its root URI, else the
/// process's working directory.
fn initial_roots(params: &InitializeParams) -> Vec<PathBuf> {
    if let Some(folders) = &params.workspace_folders {
        return folders
            .iter()
            .filter_map(|f| from_proto::path(&f.uri))
            .collect();
    }
    #[allow(deprecated)]
    let root_uri = params.root_uri.as_ref();
    if let Some(path) = root_uri.and_then(from_proto::path) {
        return vec![path];
    }
    std::env::current_dir().into_iter().collect()
}

fn resolve_roots(given: Vec<PathBuf>) -> Vec<Root> {
    given
        .into_iter()
        .map(|given| Root {
            real: std::fs::canonicalize(&given).unwrap_or_else(|_| given.clone()),
            given,
        })
        .collect()
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        tracing::error!("blocking work failed: {e}");
        Error::internal_error()
    })
}

impl LanguageServer for Server {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        let inner = &self.inner;
        let encoding = from_proto::position_encoding(&params.capabilities);
        let caps = Caps::of(&params.capabilities);
        let init_options = settings::editor_layer(
            "initializationOptions",
            params.initialization_options.as_ref(),
        );
        let given = initial_roots(&params);
        let (roots, discovered) = blocking(move || {
            let roots = resolve_roots(given);
            let discovered = Config::discover(roots.first().map(|root| root.real.as_path()));
            (roots, discovered)
        })
        .await?;
        let mut errors = Vec::new();
        let (layers, ignored) = match discovered {
            Ok(discovered) => (discovered.layers, discovered.ignored),
            Err(e) => {
                errors.push(e.to_string());
                (Vec::new(), None)
            }
        };
        let (config, mut bad) =
            settings::resolve(layers.into_iter().chain(init_options.clone()).collect());
        errors.append(&mut bad);
        if let Err(e) = inner.put_in_force(&config) {
            errors.push(e);
        }
        tracing::info!(
            "initialized for {} ({} folder(s), {encoding:?})",
            params
                .client_info
                .as_ref()
                .map_or("an unnamed client", |c| c.name.as_str()),
            roots.len()
        );
        *inner.state.write() = State {
            encoding,
            roots,
            caps,
            init_options,
            settings: None,
            startup_errors: errors
                .into_iter()
                .map(|e| format!("switchyard: {e}"))
                .collect(),
            startup_ignored: ignored,
        };
        let tools = Arc::clone(inner);
        blocking(move || tools.rebuild_toolbox()).await?;
        let methods: Vec<&str> = ext::catalog()
            .iter()
            .filter(|e| e.kind != ext::Kind::Command)
            .map(|e| e.name)
            .collect();
        Ok(InitializeResult {
            capabilities: ServerCapabilities {
                position_encoding: Some(to_proto::position_encoding(encoding)),
                text_document_sync: Some(TextDocumentSyncCapability::Options(
                    TextDocumentSyncOptions {
                        open_close: Some(true),
                        change: Some(TextDocumentSyncKind::INCREMENTAL),
                        ..TextDocumentSyncOptions::default()
                    },
                )),
                execute_command_provider: Some(ExecuteCommandOptions {
                    commands: ext::command_names(),
                    work_done_progress_options: WorkDoneProgressOptions {
                        work_done_progress: Some(true),
                    },
                }),
                workspace: Some(WorkspaceServerCapabilities {
                    workspace_folders: Some(WorkspaceFoldersServerCapabilities {
                        supported: Some(true),
                        change_notifications: Some(OneOf::Left(true)),
                    }),
                    file_operations: None,
                }),
                experimental: Some(json!({ "switchyard": { "methods": methods } })),
                ..ServerCapabilities::default()
            },
            server_info: Some(ServerInfo {
                name: "switchyard".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
            ..InitializeResult::default()
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        let inner = Arc::clone(&self.inner);
        let (errors, caps, ignored) = {
            let mut state = inner.state.write();
            (
                std::mem::take(&mut state.startup_errors),
                state.caps,
                state.startup_ignored.take(),
            )
        };
        // Log lines flow until the process exits, `shutdown` included.
        if let Some(mut log) = inner.log_lines.lock().take() {
            let client = inner.client.clone();
            tokio::spawn(async move {
                while let Some((level, text)) = log.recv().await {
                    client
                        .log_message(to_proto::message_type(level), text)
                        .await;
                }
            });
        }
        if let Some((edits, approvals, reviews)) = inner.editor_requests.lock().take() {
            let serving = edits::serve(Arc::clone(&inner), edits, approvals, reviews);
            let stopping = inner.stopping.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = serving => {}
                    () = stopping.cancelled() => {}
                }
            });
        }
        let status = progress::lane_status(inner.client.clone(), inner.core.clone());
        let stopping = inner.stopping.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = status => {}
                () = stopping.cancelled() => {}
            }
        });
        tokio::spawn(async move {
            for error in errors {
                inner.show_error(error).await;
            }
            if let Some(ignored) = ignored {
                // Asked aside: the settings must not wait for the user's answer.
                let inner = Arc::clone(&inner);
                tokio::spawn(async move {
                    if settings::ask_trust(&inner.client, &ignored).await {
                        let settings = inner.state.read().settings.clone();
                        inner.apply_settings(settings).await;
                        tracing::info!("the trusted folder's configuration is in force");
                    }
                });
            }
            if caps.register_configuration {
                let registration = Registration {
                    id: "switchyard/didChangeConfiguration".into(),
                    method: "workspace/didChangeConfiguration".into(),
                    register_options: None,
                };
                if let Err(e) = inner.client.register_capability(vec![registration]).await {
                    tracing::warn!("cannot register for configuration changes: {e}");
                }
            }
            if caps.configuration {
                inner.pull_configuration().await;
            }
        });
    }

    async fn shutdown(&self) -> Result<()> {
        let inner = &self.inner;
        let cancelled = inner.jobs.cancel_all(&inner.lanes);
        tracing::info!(
            "shutting down: cancelled {} command(s) and {} task(s)",
            cancelled.commands,
            cancelled.tasks
        );
        inner.stopping.cancel();
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        let doc = params.text_document;
        if let Some(path) = self.inner.document_path(&doc.uri) {
            self.inner.documents.open(path, doc.version, doc.text);
        }
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        let inner = &self.inner;
        let Some(path) = inner.document_path(&params.text_document.uri) else {
            return;
        };
        let encoding = inner.state.read().encoding;
        let changes: Vec<_> = params
            .content_changes
            .into_iter()
            .map(from_proto::text_change)
            .collect();
        if !inner
            .documents
            .change(&path, params.text_document.version, &changes, encoding)
        {
            tracing::warn!("didChange for {}, which is not open", path.display());
        }
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        if let Some(path) = self.inner.document_path(&params.text_document.uri) {
            self.inner.documents.close(&path);
        }
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        let inner = Arc::clone(&self.inner);
        let pull = inner.state.read().caps.configuration;
        tokio::spawn(async move {
            if pull {
                inner.pull_configuration().await;
            } else {
                let section = settings::section(&params.settings);
                let layer = settings::editor_layer("workspace/didChangeConfiguration", section);
                inner.apply_settings(layer).await;
            }
        });
    }

    async fn did_change_workspace_folders(&self, params: DidChangeWorkspaceFoldersParams) {
        let inner = Arc::clone(&self.inner);
        let removed: Vec<PathBuf> = params
            .event
            .removed
            .iter()
            .filter_map(|f| from_proto::path(&f.uri))
            .collect();
        let added: Vec<PathBuf> = params
            .event
            .added
            .iter()
            .filter_map(|f| from_proto::path(&f.uri))
            .collect();
        tokio::spawn(async move {
            let _ = blocking(move || {
                let added = resolve_roots(added);
                {
                    let mut state = inner.state.write();
                    state.roots.retain(|root| !removed.contains(&root.given));
                    state.roots.extend(added);
                    tracing::info!("workspace folders: {}", display_roots(&state.roots));
                }
                inner.rebuild_toolbox();
            })
            .await;
        });
    }

    async fn execute_command(&self, params: ExecuteCommandParams) -> Result<Option<Value>> {
        commands::execute(&self.inner, params).await
    }
}

fn display_roots(roots: &[Root]) -> String {
    roots
        .iter()
        .map(|root| root.real.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
