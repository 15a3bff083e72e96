//! The composition root: one [`Core`] per front end, built once from the workspace roots,
//! the layered configuration and what only the front end knows ([`FrontEnd`]: how a
//! change is applied and how an approval is asked). It owns the lanes, the editor buffers,
//! the read cache (inside the toolbox), the approvals and the agent, and its methods are the
//! features — analyze, analyze-and-explain, ask, run a tool, queue stats, dead letters.
//!
//! A front end (the CLI, the language server, the ACP agent) converts its protocol's
//! arguments into these calls and the results back; it assembles nothing itself. The
//! configuration is one [`Current`] snapshot, replaced whole by [`Core::set_config`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::agent::ensemble::{self, EnsembleEvent, EnsembleInput, EnsembleReport};
use crate::agent::{Agent, AgentError, RewindReport, RewindRequest, SessionStore};
use crate::analyze::{self, Analysis, AnalyzeOptions};
use crate::approvals::{Approvals, Prompter};
use crate::broker::ExternalLane;
use crate::broker::bridge::Bridge;
use crate::config::{Config, ConfigError, Current};
use crate::documents::Documents;
use crate::edits::{Applier, ApplyOutcome, WriteError};
use crate::lanes::{
    DeadLetter, DeadLetterId, EngineError, LaneMode, Lanes, MetricsSnapshot, SessionId, TaskHandle,
    TaskId,
};
use crate::tools::{
    CallContext, Mutations, ToolError, ToolOutput, Toolbox, Workspace, WorkspaceError,
};
use crate::trust::Ignored;

/// What only the front end knows.
#[derive(Debug, Clone)]
pub struct FrontEnd {
    /// How the tools' changes reach the files: through the editor, or atomically on disk;
    /// `None` for a front end that changes nothing (only the read-only tools are offered).
    pub applier: Option<Applier>,
    /// Who is asked when a policy says `ask`.
    pub prompter: Prompter,
}

/// Why the core cannot do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// No workspace folder is open (an editor that has not sent one, or whose folders
    /// cannot be opened).
    #[error("no workspace folder is open")]
    NoWorkspace,
    /// A configuration that cannot be put in force; the previous one stays.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The lanes refuse the settings; the previous ones stay.
    #[error(transparent)]
    Lanes(#[from] EngineError),
    /// The analysis report could not be written.
    #[error("cannot write the report: {0}")]
    Report(WriteError),
    /// No dead letter has this id (it was replayed or evicted).
    #[error("no dead letter with id {0}")]
    NoDeadLetter(DeadLetterId),
    /// A workspace root that cannot be opened.
    #[error(transparent)]
    Workspace(#[from] WorkspaceError),
}

/// The core. Cheap to clone; clones are the same core.
#[derive(Clone)]
pub struct Core {
    inner: Arc<Inner>,
}

struct Inner {
    lanes: Lanes,
    documents: Documents,
    config: Current,
    front: FrontEnd,
    approvals: Arc<Approvals>,
    /// The tools and the agent over the current roots; `None` while there are none.
    parts: RwLock<Option<Parts>>,
    /// The bridge of the external lanes to `[broker]`, over every root.
    bridge: parking_lot::Mutex<Option<Bridge>>,
}

#[derive(Clone)]
struct Parts {
    toolbox: Toolbox,
    agent: Agent,
}

/// An analysis, and what the module agents made of it when they were asked.
#[derive(Debug, Clone)]
pub struct Analyzed {
    /// The deterministic analysis.
    pub analysis: Analysis,
    /// The ensemble's report, when `llm` was asked for and a provider is configured.
    pub ensemble: Option<EnsembleReport>,
    /// Why there is no model provider, when `llm` was asked for without one: the ensemble
    /// did not run and the analysis stands alone.
    pub no_provider: Option<String>,
}

impl Analyzed {
    /// The report as Markdown: the analysis, then the ensemble's summary when there is one.
    pub fn to_markdown(&self) -> String {
        let mut markdown = self.analysis.to_markdown();
        if let Some(report) = &self.ensemble {
            markdown.push('\n');
            markdown.push_str(&report.to_markdown());
        }
        markdown
    }
}

/// `switchyard.queueStats`: the engine's figures and, when a broker carries lanes, those
/// lanes and their workers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueStats {
    /// Every lane's figures.
    #[serde(flatten)]
    pub metrics: MetricsSnapshot,
    /// The lanes on `[broker]`; absent without one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external: Vec<ExternalLane>,
}

impl QueueStats {
    /// One lane's figures.
    pub fn lane(&self, lane: crate::lanes::Lane) -> &crate::lanes::LaneMetrics {
        self.metrics.lane(lane)
    }
}

impl Core {
    /// A core on the current tokio runtime, with `config` in force and no workspace yet.
    pub fn new(config: Config, front: FrontEnd) -> Result<Core, CoreError> {
        let lanes = Lanes::new(config.lanes.clone())?;
        Ok(Core::with_lanes(lanes, config, front))
    }

    /// A core over lanes the front end started itself (the language server starts them
    /// before `initialize`), putting the lanes' part of `config` in force.
    pub fn with_lanes(lanes: Lanes, config: Config, front: FrontEnd) -> Core {
        if lanes.config() != config.lanes
            && let Err(e) = lanes.reconfigure(config.lanes.clone())
        {
            tracing::warn!("the lanes keep their settings: {e}");
        }
        let config = Current::new(config);
        let approvals = Arc::new(Approvals::new(config.clone(), front.prompter.clone()));
        Core {
            inner: Arc::new(Inner {
                lanes,
                documents: Documents::new(),
                config,
                front,
                approvals,
                parts: RwLock::new(None),
                bridge: parking_lot::Mutex::new(None),
            }),
        }
    }

    /// A core over the workspace rooted at `root`, configured as its files and the
    /// environment say (the CLI's way in), and what an untrusted workspace file set that
    /// was ignored (the front end says so).
    pub fn open(root: &Path, front: FrontEnd) -> Result<(Core, Option<Ignored>), CoreError> {
        let workspace = Workspace::new([root.to_path_buf()])?;
        let (config, ignored) = Config::load(Some(workspace.primary()))?;
        let core = Core::new(config, front)?;
        core.put_workspace(Some(workspace));
        Ok((core, ignored))
    }

    /// Opens the tools and the agent over `roots` (the first is the primary one); with no
    /// root, or roots that cannot be opened, the core has no workspace until the next call.
    pub fn set_roots(&self, roots: Vec<PathBuf>) -> Result<(), CoreError> {
        let workspace = match Workspace::new(roots) {
            Ok(workspace) => Some(workspace),
            Err(e) => {
                self.put_workspace(None);
                return Err(CoreError::Workspace(e));
            }
        };
        self.put_workspace(workspace);
        Ok(())
    }

    fn put_workspace(&self, workspace: Option<Workspace>) {
        let inner = &self.inner;
        let broker = inner.config.get().broker.clone();
        *inner.bridge.lock() = workspace.as_ref().and_then(|w| {
            let roots = w.roots().to_vec();
            Bridge::start(inner.lanes.clone(), broker, roots, inner.documents.clone())
        });
        let parts = workspace.map(|workspace| {
            let toolbox = Toolbox::new(
                workspace,
                inner.lanes.clone(),
                inner.documents.clone(),
                inner.config.clone(),
            );
            if let Some(applier) = &inner.front.applier {
                toolbox.set_mutations(Mutations {
                    applier: applier.clone(),
                    approvals: Arc::clone(&inner.approvals),
                });
            }
            let store = SessionStore::for_workspace(toolbox.workspace().primary())
                .map_err(|e| tracing::warn!("sessions will not be kept: {e}"))
                .ok();
            let agent = Agent::new(toolbox.clone(), store);
            Parts { toolbox, agent }
        });
        *inner.parts.write() = parts;
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.inner.config.get()
    }

    /// Puts a whole new configuration in force: the lanes take their part now (queued work
    /// starts if the new limits allow it), everything else reads it from its next use. A
    /// configuration the lanes refuse changes nothing.
    pub fn set_config(&self, config: Config) -> Result<(), CoreError> {
        if self.inner.lanes.config() != config.lanes {
            self.inner.lanes.reconfigure(config.lanes.clone())?;
        }
        self.inner.config.replace(config);
        if let Ok(toolbox) = self.toolbox() {
            toolbox.mcp().reconfigure();
        }
        Ok(())
    }

    /// The lane engine everything runs on.
    pub fn lanes(&self) -> &Lanes {
        &self.inner.lanes
    }

    /// The editor buffers the tools read before the disk.
    pub fn documents(&self) -> &Documents {
        &self.inner.documents
    }

    /// The MCP servers of the workspace: their state, tools and last error. With `start`,
    /// the servers not running yet are started first (in parallel, each within its startup
    /// timeout), so the answer lists their tools.
    pub async fn mcp_status(
        &self,
        start: bool,
    ) -> Result<Vec<crate::mcp::ServerStatus>, CoreError> {
        let toolbox = self.toolbox()?;
        if start {
            toolbox.start_mcp(None).await;
        }
        Ok(toolbox.mcp().status())
    }

    /// Adds MCP servers for session `session` only, in place of those it added before (an
    /// ACP client's `mcpServers`): its model is offered their tools beside the configured
    /// ones, no other session sees them, and they stop when the session is closed.
    pub fn add_session_mcp(
        &self,
        session: &str,
        servers: std::collections::BTreeMap<String, crate::mcp::McpServerConfig>,
    ) -> Result<(), CoreError> {
        self.toolbox()?
            .mcp()
            .add_session(&session.into(), servers)
            .map_err(|e| CoreError::Config(ConfigError::Invalid(e)))
    }

    /// The approval policies in force and who is asked.
    pub fn approvals(&self) -> &Arc<Approvals> {
        &self.inner.approvals
    }

    /// The tools over the workspace.
    pub fn toolbox(&self) -> Result<Toolbox, CoreError> {
        self.parts().map(|p| p.toolbox)
    }

    /// The agent over those tools; its sessions are kept on disk, so an agent rebuilt over
    /// new roots resumes them by id.
    pub fn agent(&self) -> Result<Agent, CoreError> {
        self.parts().map(|p| p.agent)
    }

    fn parts(&self) -> Result<Parts, CoreError> {
        self.inner
            .parts
            .read()
            .clone()
            .ok_or(CoreError::NoWorkspace)
    }

    /// Takes session `id` back to the start of a turn: its files (restored through this
    /// front end's applier, so in the editor as one `workspace/applyEdit` the user can
    /// undo), its conversation, or both. Refuses, naming them, files someone changed since
    /// the agent left them, unless forced.
    pub async fn rewind(
        &self,
        id: &str,
        request: RewindRequest,
    ) -> Result<RewindReport, AgentError> {
        let parts = self
            .parts()
            .map_err(|e| AgentError::Rewind(e.to_string()))?;
        let plan = parts.agent.plan_rewind(id, request).await?;
        if !plan.changes.changes.is_empty() {
            let Some(applier) = &self.inner.front.applier else {
                return Err(AgentError::Rewind(
                    "this front end cannot change files; rewind with --only conversation".into(),
                ));
            };
            let session: crate::lanes::SessionId = id.into();
            match applier
                .apply(plan.changes, parts.toolbox.workspace(), Some(&session))
                .await
            {
                ApplyOutcome::Applied => {}
                ApplyOutcome::DryRun => return Ok(plan.report),
                ApplyOutcome::NotApplied { reason } => {
                    return Err(AgentError::Rewind(format!(
                        "not rewound: the files could not be restored: {reason}"
                    )));
                }
            }
        }
        parts.agent.finish_rewind(id, request).await?;
        Ok(plan.report)
    }

    /// Runs one tool call through its lane and waits for it.
    pub async fn run_tool(
        &self,
        name: &str,
        args: Value,
        ctx: &CallContext,
    ) -> Result<ToolOutput, ToolError> {
        let toolbox = self.toolbox().map_err(|e| ToolError::new(e.to_string()))?;
        toolbox.run(name, args, ctx).await
    }

    /// The deterministic analysis of `root` (a workspace root), fanned out as Query tasks
    /// of `session`; `token` stops them.
    pub async fn analyze(
        &self,
        root: &Path,
        session: SessionId,
        token: CancellationToken,
    ) -> Result<Analysis, String> {
        let toolbox = self.toolbox().map_err(|e| e.to_string())?;
        let options = AnalyzeOptions {
            root: root.to_path_buf(),
            ..AnalyzeOptions::default()
        };
        analyze::run(&toolbox, &options, session, token).await
    }

    /// The analysis of `root`, then — when `llm` — the module agents' explanation of it
    /// (their progress on `events`). Without a model provider the analysis stands alone and
    /// [`Analyzed::notice`] says why.
    pub async fn analyze_and_explain(
        &self,
        root: &Path,
        llm: bool,
        session: SessionId,
        events: &mpsc::UnboundedSender<EnsembleEvent>,
        token: CancellationToken,
    ) -> Result<Analyzed, String> {
        let analysis = self.analyze(root, session, token.clone()).await?;
        self.explained(analysis, llm, events, &token).await
    }

    /// The analyses of several repositories, roots of the workspace, at once within the
    /// Query lane's limits: each fans out here, or — with an external Query lane — runs
    /// whole as one task on a worker that has the repository ([`analyze::task`]). With
    /// `llm` each is then explained in turn. One result per root, in their order.
    pub async fn analyze_each(
        &self,
        roots: &[PathBuf],
        llm: bool,
        session: SessionId,
        events: &mpsc::UnboundedSender<EnsembleEvent>,
        token: CancellationToken,
    ) -> Vec<Result<Analyzed, String>> {
        let analyses = roots
            .iter()
            .map(|root| self.analyze_anywhere(root, session.clone(), token.clone()));
        let analyses = futures::future::join_all(analyses).await;
        let mut each = Vec::with_capacity(analyses.len());
        for analysis in analyses {
            each.push(match analysis {
                Ok(analysis) => self.explained(analysis, llm, events, &token).await,
                Err(e) => Err(e),
            });
        }
        each
    }

    /// The analysis of `root`, here or on the external Query lane's workers.
    async fn analyze_anywhere(
        &self,
        root: &Path,
        session: SessionId,
        token: CancellationToken,
    ) -> Result<Analysis, String> {
        let lanes = &self.inner.lanes;
        if lanes.config().query.mode != LaneMode::External {
            return self.analyze(root, session, token).await;
        }
        let toolbox = self.toolbox().map_err(|e| e.to_string())?;
        let root = toolbox
            .workspace()
            .resolve(&root.to_string_lossy())
            .map_err(|e| e.message)?;
        let options = AnalyzeOptions {
            root: root.clone(),
            ..AnalyzeOptions::default()
        };
        let task = analyze::task(&toolbox, &options, session).cancelled_by(&token);
        let mut analysis = lanes
            .submit(task)
            .await
            .map_err(|e| format!("the analysis of {} failed: {e}", root.display()))?;
        // The worker's checkout may live elsewhere: the report names this one.
        analysis.root = root.display().to_string();
        Ok(analysis)
    }

    /// `analysis`, explained by the module agents when `llm`.
    async fn explained(
        &self,
        analysis: Analysis,
        llm: bool,
        events: &mpsc::UnboundedSender<EnsembleEvent>,
        token: &CancellationToken,
    ) -> Result<Analyzed, String> {
        let (ensemble, no_provider) = if llm {
            match self.explain(&analysis, events, token).await? {
                Ok(report) => (Some(report), None),
                Err(reason) => (None, Some(reason)),
            }
        } else {
            (None, None)
        };
        Ok(Analyzed {
            analysis,
            ensemble,
            no_provider,
        })
    }

    /// The ensemble over `analysis`: `Ok(Err(reason))` when no model provider is
    /// configured, the reason saying how to configure one; `Err` when the ensemble fails.
    async fn explain(
        &self,
        analysis: &Analysis,
        events: &mpsc::UnboundedSender<EnsembleEvent>,
        token: &CancellationToken,
    ) -> Result<Result<EnsembleReport, String>, String> {
        let agent = self.agent().map_err(|e| e.to_string())?;
        if let Err(e) = agent.llm() {
            return Ok(Err(e));
        }
        let modules = ensemble::modules(agent.toolbox(), analysis).await?;
        let input = EnsembleInput {
            report: analysis.to_markdown(),
            modules,
        };
        agent
            .ensemble(input, events, token)
            .await
            .map(Ok)
            .map_err(|e| e.to_string())
    }

    /// Writes the report of `root`'s analysis to `<root>/.switchyard/analysis.md`, atomically
    /// and beneath the workspace's handle: a `.switchyard` that is a link out of the
    /// workspace makes this fail, never write outside. Returns the report's path.
    pub async fn write_report(&self, root: &Path, markdown: String) -> Result<PathBuf, CoreError> {
        let workspace = self.toolbox()?.workspace().clone();
        let path = root.join(".switchyard").join("analysis.md");
        let written = path.clone();
        tokio::task::spawn_blocking(move || {
            let dir = written.parent().unwrap_or(&written);
            workspace.create_dir_all(dir).map_err(|e| {
                // A link out is found by the handle refusing to follow it; say that, not
                // "exists".
                let e = match workspace.metadata(dir) {
                    Err(escape) if crate::tools::is_escape(&escape) => escape,
                    _ => e,
                };
                let shown = dir.display().to_string();
                WriteError::Io(workspace.io_error(dir, &shown, "create", e).message)
            })?;
            crate::edits::write_atomically(&workspace, &written, markdown.as_bytes())
        })
        .await
        .map_err(|e| CoreError::Report(WriteError::Io(e.to_string())))?
        .map_err(CoreError::Report)?;
        Ok(path)
    }

    /// A consistent snapshot of every lane's figures, and the external lanes on a broker
    /// with the workers serving them now.
    pub fn queue_stats(&self) -> QueueStats {
        QueueStats {
            metrics: self.inner.lanes.metrics(),
            external: self.external_lanes(),
        }
    }

    /// The lanes carried by `[broker]`, with their workers; empty without a broker.
    pub fn external_lanes(&self) -> Vec<ExternalLane> {
        self.inner
            .bridge
            .lock()
            .iter()
            .flat_map(Bridge::status)
            .collect()
    }

    /// The dead letters kept now, oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.inner.lanes.dead_letters()
    }

    /// Resubmits a dead letter; its outcome is logged. Returns the new task's id.
    pub fn retry_dead_letter(&self, id: DeadLetterId) -> Result<TaskId, CoreError> {
        let handle: TaskHandle<Value> = self
            .inner
            .lanes
            .replay(id)
            .ok_or(CoreError::NoDeadLetter(id))?;
        let task_id = handle.id();
        tokio::spawn(async move {
            match handle.await {
                Ok(_) => tracing::info!("dead letter {id} succeeded on retry"),
                Err(e) => tracing::warn!("dead letter {id} failed again: {e}"),
            }
        });
        Ok(task_id)
    }

    /// Empties the dead-letter queue; returns how many were dropped.
    pub fn clear_dead_letters(&self) -> usize {
        self.inner.lanes.clear_dead_letters()
    }
}
