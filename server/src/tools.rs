//! The tools a model (and the CLI, and the editor) can call: their specs, argument parsing,
//! results, and the [`Toolbox`] that runs every call through the lanes.
//!
//! A tool's failure that the caller can act on (a bad argument, a missing file, a path
//! outside the workspace) is a [`ToolError`] — an ordinary result, shown to the model. Only
//! a broken tool (a panic) is a lane failure and lands in the dead-letter queue.

mod args;
mod bash;
mod fuse;
mod glob;
mod grep;
mod ls;
mod mutate;
pub mod names;
mod plan;
mod read;
mod sandbox;
mod table;
mod walk;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::approvals::{Approvals, Policy, Subject};
use crate::config::Current;
use crate::documents::Documents;
use crate::edits::Applier;
use crate::lanes::{Lane, LaneError, Lanes, SessionId, Task, TaskContext};
use crate::llm::ToolImage;
use crate::mcp::{Mcp, McpOutput, McpTool};
use crate::read_cache::{LineIndexCache, ReadCache};

pub use args::Args;
pub(crate) use args::kind as json_kind;
pub use bash::{BashArgs, BashOutput, TerminalRequest, protect_process};
pub use fuse::{SealOnDrop, SearchGroup};
pub use glob::{GlobArgs, GlobOutput};
pub use grep::{GrepArgs, GrepFile, GrepLine, GrepMode, GrepOutput};
pub use ls::{EntryKind, LsArgs, LsEntry, LsOutput};
pub use mutate::{ChangeOutput, Ledger, Mutation, Replacement};
pub use plan::{Plan, PlanStep, StepStatus};
pub use read::{ReadArgs, ReadOutput};
pub use sandbox::{Workspace, WorkspaceError, is_escape};
pub use table::{Effect, Tool, ToolKind, ToolSpec};
pub use walk::WalkOptions;

/// A failure the caller can act on; the message says what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ToolError {
    /// What went wrong, naming the argument or path, and what to try instead.
    pub message: String,
}

impl ToolError {
    /// A tool error with this message.
    pub fn new(message: impl Into<String>) -> ToolError {
        ToolError {
            message: message.into(),
        }
    }
}

/// The structured result of a tool call, for the LSP and JSON front ends; [`render`]
/// (ToolOutput::render) gives the compact text a model sees.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "tool", rename_all = "snake_case")]
pub enum ToolOutput {
    /// Numbered lines of a file.
    Read(ReadOutput),
    /// Paths matching a glob.
    Glob(GlobOutput),
    /// Matching lines, files or counts.
    Grep(GrepOutput),
    /// A directory listing.
    Ls(LsOutput),
    /// A change to the workspace (write, edit, multi_edit, delete, move, copy).
    Change(ChangeOutput),
    /// A shell command's outcome.
    Bash(BashOutput),
    /// What an MCP server's tool answered.
    Mcp(McpOutput),
    /// The plan `update_plan` was given, checked.
    Plan(Plan),
}

impl ToolOutput {
    /// The compact text rendering a model sees, at most about `max_bytes` long (0: no cap);
    /// what the cap leaves out is said in the text.
    pub fn render(&self, max_bytes: usize) -> String {
        match self {
            ToolOutput::Read(out) => out.render(),
            ToolOutput::Glob(out) => out.render_capped(max_bytes),
            ToolOutput::Grep(out) => out.render_capped(max_bytes),
            ToolOutput::Ls(out) => out.render_capped(max_bytes),
            ToolOutput::Change(out) => out.render(),
            ToolOutput::Bash(out) => out.render(),
            ToolOutput::Mcp(out) => out.render(max_bytes),
            ToolOutput::Plan(plan) => plan.render(),
        }
    }
}

/// Output limits and cache sizes; the defaults keep a model's context safe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsConfig {
    /// Most bytes of text rendering one call returns; `0` is no cap (the CLI's use).
    pub max_output_bytes: usize,
    /// `read`: lines returned when no `limit` is given.
    pub read_default_lines: usize,
    /// `read`: characters of one line shown before it is cut with a marker.
    pub read_max_line_chars: usize,
    /// `read`: files above this many bytes are streamed, never loaded whole nor cached.
    pub streaming_threshold_bytes: u64,
    /// `read`: total bytes the read cache may hold.
    pub cache_max_bytes: u64,
    /// `read`: a streamed file's line index keeps the offset of every this-many lines.
    pub line_index_every: u64,
    /// `grep`: matches returned when no `max_results` is given.
    pub grep_default_max_results: usize,
    /// `grep`: characters of a matching line shown before it is cut.
    pub grep_max_line_chars: usize,
    /// `glob`: paths returned when no `limit` is given.
    pub glob_default_limit: usize,
    /// `ls`: entries returned when no `limit` is given.
    pub ls_default_limit: usize,
    /// `bash`: time limit when the call gives none, in milliseconds.
    pub bash_timeout_ms: u64,
}

impl Default for ToolsConfig {
    fn default() -> Self {
        ToolsConfig {
            max_output_bytes: 40_000,
            read_default_lines: 2_000,
            read_max_line_chars: 2_000,
            streaming_threshold_bytes: 8 * 1024 * 1024,
            cache_max_bytes: 64 * 1024 * 1024,
            line_index_every: 1_024,
            grep_default_max_results: 200,
            grep_max_line_chars: 500,
            glob_default_limit: 500,
            ls_default_limit: 500,
            bash_timeout_ms: 120_000,
        }
    }
}

/// Who is calling, for cancellation and metrics.
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The session the call belongs to (an agent conversation).
    pub session: Option<SessionId>,
    /// Cancels the call (and its lane task) when cancelled.
    pub token: CancellationToken,
    /// The model's id of the call, when a model made it (shown when a change is reviewed).
    pub call: Option<String>,
    /// Where the call reports how far it has come (an MCP tool's progress notifications).
    pub progress: Option<crate::mcp::ProgressSink>,
}

/// The tools over one workspace, every call run through the lanes. Cheap to clone.
#[derive(Clone)]
pub struct Toolbox {
    inner: Arc<Inner>,
}

struct Inner {
    workspace: Workspace,
    lanes: Lanes,
    documents: Documents,
    /// The configuration in force; its `tools` table is read at each call.
    config: Current,
    cache: ReadCache,
    line_index: LineIndexCache,
    ledger: Ledger,
    mutations: RwLock<Option<Mutations>>,
    /// The MCP servers whose tools join the built-in ones.
    mcp: Mcp,
}

/// What lets a toolbox change files: how changes are applied and who approves them.
/// Without it, a toolbox offers the read-only tools only.
#[derive(Debug, Clone)]
pub struct Mutations {
    /// Through the editor (LSP) or to disk (CLI).
    pub applier: Applier,
    /// The policies in force and who is asked.
    pub approvals: Arc<Approvals>,
}

/// Everything one call needs while it runs on a pool thread.
pub(crate) struct Env<'a> {
    pub workspace: &'a Workspace,
    pub documents: &'a Documents,
    pub config: &'a ToolsConfig,
    pub cache: &'a ReadCache,
    pub line_index: &'a LineIndexCache,
    pub ledger: &'a Ledger,
    pub task: &'a TaskContext,
}

impl Toolbox {
    /// The tools over `workspace`, running on `lanes`, seeing `documents` before the disk.
    pub fn new(
        workspace: Workspace,
        lanes: Lanes,
        documents: Documents,
        config: impl Into<Current>,
    ) -> Toolbox {
        let config = config.into();
        let cache = ReadCache::new(config.get().tools.cache_max_bytes, &lanes);
        let mcp = Mcp::new(config.clone(), workspace.primary());
        let inner = Inner {
            mcp,
            workspace,
            documents,
            cache,
            line_index: LineIndexCache::new(32),
            config,
            ledger: Ledger::default(),
            mutations: RwLock::new(None),
            lanes,
        };
        Toolbox {
            inner: Arc::new(inner),
        }
    }

    /// Lets the toolbox change files: the mutating tools (and `bash`, when its policy is
    /// not deny) are offered from now on.
    pub fn set_mutations(&self, mutations: Mutations) {
        *self.inner.mutations.write() = Some(mutations);
    }

    /// The specs of the tools this toolbox offers now, as a model is shown them: the
    /// read-only tools, and the others when it can change files — none the approval
    /// policy denies.
    ///
    /// The tools of the MCP servers running now follow, by the same rule: read-only ones
    /// always, the others when this front end can ask for approval; none their server's
    /// settings deny: the configured servers and those `session` added.
    /// [`Toolbox::start_mcp`] starts the servers.
    pub fn specs(&self, session: Option<&SessionId>) -> Vec<ToolSpec> {
        let mutations = self.inner.mutations.read();
        let mut specs: Vec<ToolSpec> = Tool::all()
            .filter(|tool| match &*mutations {
                Some(m) => m.approvals.policy(*tool) != Policy::Deny,
                None => tool.effect() == Effect::ReadOnly,
            })
            .map(Tool::spec)
            .collect();
        specs.extend(
            self.inner
                .mcp
                .specs(session)
                .into_iter()
                .filter(|(spec, policy)| {
                    *policy != Policy::Deny
                        && (mutations.is_some() || spec.effect == Effect::ReadOnly)
                })
                .map(|(spec, _)| spec),
        );
        specs
    }

    /// The spec of the tool a model in `session` calls `name`, offered here or not: a
    /// built-in tool, or an MCP tool of a running server.
    pub fn spec(&self, name: &str, session: Option<&SessionId>) -> Option<ToolSpec> {
        Tool::from_name(name)
            .map(Tool::spec)
            .or_else(|| self.inner.mcp.spec(name, session))
    }

    /// What the tool a model calls `name` is and how its calls run, without building its
    /// schema: what the agent asks of every call it schedules (in `session`, whose own MCP
    /// servers it sees).
    pub fn class(&self, name: &str, session: Option<&SessionId>) -> Option<(ToolKind, Effect)> {
        match Tool::from_name(name) {
            Some(tool) => Some((tool.kind(), tool.effect())),
            None => self
                .inner
                .mcp
                .spec(name, session)
                .map(|s| (s.kind, s.effect)),
        }
    }

    /// Starts the MCP servers not running yet, in parallel, and waits until each is running
    /// or has failed (within its startup timeout); their tools are offered from then on.
    /// With `session`, those it added too.
    pub async fn start_mcp(&self, session: Option<&SessionId>) {
        self.inner.mcp.start_all(session).await;
    }

    /// The MCP servers, for their status.
    pub fn mcp(&self) -> &Mcp {
        &self.inner.mcp
    }

    /// The files a call of `name` with `args` would change, resolved in the workspace
    /// (before it runs: what a checkpoint keeps). Nothing for a call that changes no file
    /// it can name, or whose arguments are wrong (it will fail), or for a path outside the
    /// workspace (refused).
    pub fn changed_paths(&self, name: &str, args: &Value) -> Vec<PathBuf> {
        let Some(tool) = Tool::from_name(name) else {
            return Vec::new();
        };
        match Call::parse(tool, args) {
            Ok(Call::Change(mutation)) => mutation
                .targets()
                .into_iter()
                .filter_map(|path| self.inner.workspace.resolve_new(path).ok())
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The configuration the tools read (and the agent and approvals over them).
    pub fn config(&self) -> &Current {
        &self.inner.config
    }

    /// The workspace the tools see.
    pub fn workspace(&self) -> &Workspace {
        &self.inner.workspace
    }

    /// The lanes the tools run on.
    pub fn lanes(&self) -> &Lanes {
        &self.inner.lanes
    }

    /// The editor buffers the tools see before the disk.
    pub fn documents(&self) -> &Documents {
        &self.inner.documents
    }

    /// The text a model is shown for `output`, within the configured output cap.
    pub fn render(&self, output: &ToolOutput) -> String {
        output.render(self.inner.config.get().tools.max_output_bytes)
    }

    /// [`Toolbox::render`], with the images of the text (an MCP tool's) for a model that
    /// takes them.
    pub fn render_with_images(&self, output: &ToolOutput) -> (String, Vec<ToolImage>) {
        let max_bytes = self.inner.config.get().tools.max_output_bytes;
        match output {
            ToolOutput::Mcp(out) => out.render_with_images(max_bytes),
            other => (other.render(max_bytes), Vec::new()),
        }
    }

    /// The lane task that runs one call; submit it alone or in a batch. Arguments are
    /// checked here, so a bad call fails before it takes a slot.
    pub fn task(
        &self,
        name: &str,
        args: Value,
        ctx: &CallContext,
    ) -> Result<Task<ToolResult>, ToolError> {
        if let Some((tool, server, policy)) = self.inner.mcp.find(name, ctx.session.as_ref()) {
            return self.mcp_task(tool, server, policy, args, ctx);
        }
        let Some(tool) = Tool::from_name(name) else {
            return Err(ToolError::new(format!(
                "unknown tool `{name}`; the tools are {}",
                Tool::names()
            )));
        };
        let call = Call::parse(tool, &args)?;
        if let Some(m) = &*self.inner.mutations.read()
            && m.approvals.policy(tool) == Policy::Deny
        {
            return Err(ToolError::new(format!(
                "`{tool}` is turned off by the user's policy (approvals.{tool} = \"deny\")"
            )));
        }
        let lane = tool.lane();
        let inner = Arc::clone(&self.inner);
        let editor = inner.documents.editor();
        let task = match (call, editor) {
            // An editor that serves its buffers is asked what `read` shows.
            (Call::Query(Query::Read(args)), Some(editor)) => {
                Task::future(lane, tool.name(), move |task| {
                    let (inner, args, editor) = (Arc::clone(&inner), args.clone(), editor.clone());
                    async move {
                        Ok(read::through_editor(inner, args, editor, task)
                            .await
                            .map(ToolOutput::Read)
                            .map_err(|e| e.message))
                    }
                })
            }
            (Call::Query(query), _) => self.read_only_task(lane, tool, query),
            (Call::Change(mutation), _) => {
                let call = ctx.call.clone();
                Task::future(lane, tool.name(), move |task| {
                    let (inner, mutation, call) =
                        (Arc::clone(&inner), mutation.clone(), call.clone());
                    async move {
                        Ok(inner
                            .change(mutation, call, task)
                            .await
                            .map_err(|e| e.message))
                    }
                })
            }
            (Call::Run(bash), _) => Task::future(lane, tool.name(), move |task| {
                let (inner, bash) = (Arc::clone(&inner), bash.clone());
                async move { Ok(inner.run_bash(bash, task).await.map_err(|e| e.message)) }
            }),
        };
        let task = task.payload(args).cancelled_by(&ctx.token);
        Ok(match &ctx.session {
            Some(session) => task.session(session.clone()),
            None => task,
        })
    }

    /// Like [`Toolbox::task`], for a call of a parallel batch: a `grep` or `glob` joins
    /// `group` and shares one walk with the group's other searches (see `tools/fuse.rs`);
    /// seal the group once the batch is complete.
    pub fn task_in(
        &self,
        name: &str,
        args: Value,
        ctx: &CallContext,
        group: &SearchGroup,
    ) -> Result<Task<ToolResult>, ToolError> {
        let Some(tool) = Tool::from_name(name) else {
            return self.task(name, args, ctx);
        };
        let query = match Call::parse(tool, &args) {
            Ok(Call::Query(Query::Grep(args))) => fuse::Query::Grep(args),
            Ok(Call::Query(Query::Glob(args))) => fuse::Query::Glob(args),
            _ => return self.task(name, args, ctx),
        };
        let task = fuse::task(
            Arc::clone(&self.inner),
            tool.lane(),
            tool.name(),
            query,
            group,
            ctx,
        );
        let task = task.payload(args).cancelled_by(&ctx.token);
        Ok(match &ctx.session {
            Some(session) => task.session(session.clone()),
            None => task,
        })
    }

    /// The lane task of one MCP call: the Query lane for a read-only tool, else the Execute
    /// lane behind its policy.
    fn mcp_task(
        &self,
        tool: McpTool,
        server: String,
        policy: Policy,
        args: Value,
        ctx: &CallContext,
    ) -> Result<Task<ToolResult>, ToolError> {
        if policy == Policy::Deny {
            return Err(ToolError::new(format!(
                "`{}` is turned off by the user's policy (mcp_servers.{server}.approvals.{} = \"deny\")",
                tool.name, tool.tool
            )));
        }
        if !(args.is_object() || args.is_null()) {
            return Err(ToolError::new(format!(
                "the arguments of `{}` must be a JSON object",
                tool.name
            )));
        }
        let effect = if tool.read_only {
            Effect::ReadOnly
        } else {
            Effect::Runs
        };
        let inner = Arc::clone(&self.inner);
        let call_args = args.clone();
        let progress = ctx.progress.clone();
        let task = Task::future(effect.lane(), tool.name.clone(), move |task| {
            let inner = Arc::clone(&inner);
            let (tool, server, args) = (tool.clone(), server.clone(), call_args.clone());
            let progress = progress.clone();
            async move {
                Ok(inner
                    .run_mcp(tool, server, policy, args, progress, task)
                    .await)
            }
        });
        let task = task.payload(args).cancelled_by(&ctx.token);
        Ok(match &ctx.session {
            Some(session) => task.session(session.clone()),
            None => task,
        })
    }

    fn read_only_task(&self, lane: Lane, tool: Tool, query: Query) -> Task<ToolResult> {
        let inner = Arc::clone(&self.inner);
        Task::blocking(lane, tool.name(), move |task| {
            let config = inner.tools_config();
            let result = query.run(&inner.env(&config, task));
            // Work that stopped because it was cancelled reports that, not a half result.
            task.checkpoint()?;
            Ok(result.map_err(|e| e.message))
        })
    }

    /// Runs one call through its lane and waits for it.
    pub async fn run(
        &self,
        name: &str,
        args: Value,
        ctx: &CallContext,
    ) -> Result<ToolOutput, ToolError> {
        let task = self.task(name, args, ctx)?;
        lane_result(self.inner.lanes.submit(task).await)
    }
}

/// What a tool task returns through the lanes: the output, or the tool error's message.
pub type ToolResult = Result<ToolOutput, String>;

/// Turns a lane's answer into the caller's.
pub fn lane_result(result: Result<ToolResult, LaneError>) -> Result<ToolOutput, ToolError> {
    match result {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(message)) => Err(ToolError::new(message)),
        Err(LaneError::Cancelled) => Err(ToolError::new("cancelled")),
        Err(e) => Err(ToolError::new(e.to_string())),
    }
}

impl Inner {
    /// What a read-only call needs while it runs.
    fn env<'a>(&'a self, config: &'a ToolsConfig, task: &'a TaskContext) -> Env<'a> {
        Env {
            workspace: &self.workspace,
            documents: &self.documents,
            config,
            cache: &self.cache,
            line_index: &self.line_index,
            ledger: &self.ledger,
            task,
        }
    }

    /// What a change is prepared and checked against, for `session`'s calls.
    fn scope<'a>(&'a self, session: Option<&'a crate::lanes::SessionId>) -> mutate::Scope<'a> {
        mutate::Scope {
            workspace: &self.workspace,
            documents: &self.documents,
            ledger: &self.ledger,
            session,
            max_bytes: self.tools_config().streaming_threshold_bytes,
        }
    }

    /// The tool settings in force now; the read cache follows its bound.
    fn tools_config(&self) -> ToolsConfig {
        let tools = self.config.get().tools.clone();
        self.cache.set_max_bytes(tools.cache_max_bytes);
        tools
    }

    /// What lets this toolbox change things, or why it cannot.
    fn mutations(&self) -> Result<Mutations, ToolError> {
        self.mutations.read().clone().ok_or_else(|| {
            ToolError::new(
                "this front end cannot change files; only the read-only tools are available",
            )
        })
    }

    /// Runs `bash`, once approved; a dry run says what would have run.
    async fn run_bash(
        self: Arc<Self>,
        args: BashArgs,
        task: TaskContext,
    ) -> Result<ToolOutput, ToolError> {
        let m = self.mutations()?;
        let summary = format!("run `{}`", args.command);
        m.approvals
            .check(Tool::Bash, &summary, task.session())
            .await
            .map_err(ToolError::new)?;
        if matches!(m.applier, Applier::Disk { dry_run: true }) {
            return Ok(ToolOutput::Bash(BashOutput::not_run(&args)));
        }
        let (timeout, cap) = {
            let config = self.tools_config();
            (
                Duration::from_millis(config.bash_timeout_ms),
                config.max_output_bytes,
            )
        };
        let root = self.workspace.primary();
        let out = match &m.applier {
            // An ACP client that offers terminals runs the command in one the user sees.
            Applier::Client {
                terminal: Some(terminal),
                ..
            } => {
                bash::in_terminal(
                    terminal,
                    &args,
                    root,
                    timeout,
                    cap,
                    task.session().cloned(),
                    task.token(),
                )
                .await?
            }
            _ => bash::run(&args, root, timeout, cap, task.token()).await?,
        };
        Ok(ToolOutput::Bash(out))
    }

    /// Runs an MCP call, once approved when its policy says ask; a dry run says what would
    /// have been called.
    async fn run_mcp(
        self: Arc<Self>,
        tool: McpTool,
        server: String,
        policy: Policy,
        args: Value,
        progress: Option<crate::mcp::ProgressSink>,
        task: TaskContext,
    ) -> ToolResult {
        if policy != Policy::Allow {
            let m = self.mutations().map_err(|e| e.message)?;
            let mut shown = args.to_string();
            if shown.len() > 200 {
                let mut end = 200;
                while !shown.is_char_boundary(end) {
                    end -= 1;
                }
                shown.truncate(end);
                shown.push('…');
            }
            let warning = if tool.destructive {
                " (the server says it may change or delete things)"
            } else {
                ""
            };
            let summary = format!(
                "call `{}` of the MCP server `{server}`{warning} with {shown}",
                tool.tool
            );
            let subject = Subject::Mcp {
                name: tool.name.as_str().into(),
                setting: format!("mcp_servers.{server}.approvals.{}", tool.tool).into(),
            };
            m.approvals
                .check_runtime(subject, policy, &summary, task.session())
                .await?;
            if !tool.read_only && matches!(m.applier, Applier::Disk { dry_run: true }) {
                return Err(format!("dry run: `{}` was not called", tool.name));
            }
        }
        self.mcp
            .call(
                task.session(),
                &server,
                &tool.tool,
                args,
                progress,
                task.token(),
            )
            .await
            .map(ToolOutput::Mcp)
    }

    /// Runs a mutating call: compute the change off the runtime, ask (or, in review mode,
    /// have the user review it hunk by hunk), apply.
    async fn change(
        self: Arc<Self>,
        mutation: Mutation,
        call: Option<String>,
        task: TaskContext,
    ) -> Result<ToolOutput, ToolError> {
        let m = self.mutations()?;
        let session = task.session().cloned();
        let tool = mutation.tool();
        let inner = Arc::clone(&self);
        let scoped = session.clone();
        let (prepared, diff) = tokio::task::spawn_blocking(move || {
            let scope = inner.scope(scoped.as_ref());
            mutate::prepare(&mutation, &scope).map(|p| {
                let diff = p.diff(&inner.workspace);
                (p, diff)
            })
        })
        .await
        .map_err(|e| ToolError::new(format!("`{tool}` failed: {e}")))??;
        crate::trust::refuse_config_change(&prepared.set).map_err(ToolError::new)?;
        task.checkpoint().map_err(|e| ToolError::new(e.message))?;
        let mut prepared = prepared;
        let mut reviewed = None;
        if self.config.get().review == crate::config::Review::Changes && m.applier.reviews() {
            // Review replaces the approval: accepting a hunk is approving it.
            let scope = self.scope(session.as_ref());
            let reviews = mutate::reviews(&prepared, tool, call, &scope);
            let mut answers = Vec::with_capacity(reviews.len());
            for review in reviews {
                let answer = m.applier.review(review.clone()).await;
                answers.push((review, answer));
            }
            let (kept, report) = mutate::reviewed(prepared, answers, &self.workspace)?;
            prepared = kept;
            reviewed = report;
        } else {
            m.approvals
                .check(tool, &prepared.intent(tool), session.as_ref())
                .await
                .map_err(ToolError::new)?;
        }
        let outcome = m
            .applier
            .apply(prepared.set.clone(), &self.workspace, session.as_ref())
            .await;
        mutate::finish(
            tool,
            prepared,
            outcome,
            diff,
            &self.ledger,
            session.as_ref(),
        )
        .map(|mut out| {
            out.review = reviewed;
            ToolOutput::Change(out)
        })
    }
}

/// A parsed call, ready to run, by what it does.
#[derive(Clone)]
enum Call {
    /// Reads only, on the pool.
    Query(Query),
    /// Changes files, once approved.
    Change(Mutation),
    /// Runs `bash`, once approved.
    Run(BashArgs),
}

/// A read-only call.
#[derive(Clone)]
enum Query {
    Read(ReadArgs),
    Glob(GlobArgs),
    Grep(GrepArgs),
    Ls(LsArgs),
    Plan(Plan),
}

impl Call {
    fn parse(tool: Tool, args: &Value) -> Result<Call, ToolError> {
        let args = Args::new(tool.name(), args)?;
        Ok(match tool {
            Tool::Read => Call::Query(Query::Read(ReadArgs::parse(&args)?)),
            Tool::Glob => Call::Query(Query::Glob(GlobArgs::parse(&args)?)),
            Tool::Grep => Call::Query(Query::Grep(GrepArgs::parse(&args)?)),
            Tool::Ls => Call::Query(Query::Ls(LsArgs::parse(&args)?)),
            Tool::UpdatePlan => Call::Query(Query::Plan(Plan::parse(&args)?)),
            Tool::Write => Call::Change(Mutation::write(&args)?),
            Tool::Edit => Call::Change(Mutation::edit(&args)?),
            Tool::MultiEdit => Call::Change(Mutation::multi_edit(&args)?),
            Tool::Delete => Call::Change(Mutation::delete(&args)?),
            Tool::Move => Call::Change(Mutation::move_or_copy(&args, false)?),
            Tool::Copy => Call::Change(Mutation::move_or_copy(&args, true)?),
            Tool::Bash => Call::Run(BashArgs::parse(&args)?),
        })
    }

    /// How it runs; the table's [`Tool::effect`] must agree (a test checks).
    #[cfg(test)]
    fn effect(&self) -> Effect {
        match self {
            Call::Query(_) => Effect::ReadOnly,
            Call::Change(_) => Effect::Changes,
            Call::Run(_) => Effect::Runs,
        }
    }
}

impl Query {
    fn run(&self, env: &Env<'_>) -> Result<ToolOutput, ToolError> {
        match self {
            Query::Read(args) => read::run(args, env).map(ToolOutput::Read),
            Query::Glob(args) => glob::run(args, env).map(ToolOutput::Glob),
            Query::Grep(args) => grep::run(args, env).map(ToolOutput::Grep),
            Query::Ls(args) => ls::run(args, env).map(ToolOutput::Ls),
            Query::Plan(plan) => Ok(ToolOutput::Plan(plan.clone())),
        }
    }
}

/// `1234567` → `1,234,567`, for counts a person or a model reads.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Appends `line` and a newline to `out` unless that would pass `cap` bytes (0 = no cap);
/// returns whether it fit.
pub(crate) fn push_capped(out: &mut String, line: &str, cap: usize) -> bool {
    if cap != 0 && out.len() + line.len() + 1 > cap {
        return false;
    }
    out.push_str(line);
    out.push('\n');
    true
}

#[cfg(test)]
mod tests;
