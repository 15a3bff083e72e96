//! Switchyard's own protocol on top of LSP, defined once: the custom requests and
//! notifications (`switchyard/...`) and the `workspace/executeCommand` commands
//! (`switchyard.*`), with their parameter and result types.
//!
//! The editor clients mirror these names and shapes (`editors/vscode/src/lsp_ext.ts`,
//! `editors/neovim/lua/switchyard/lsp.lua`), and `docs/protocol.md` documents every one; a
//! test below reads that page and fails when it and this file disagree: a name missing on
//! either side, or an example that does not round-trip through the types here.
//!
//! Field names are camelCase, as in LSP. Lanes are named as in configuration (`"query"`).

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tower_lsp_server::ls_types::Uri;
use tower_lsp_server::ls_types::notification::Notification;
use tower_lsp_server::ls_types::request::Request;

use crate::lanes::{
    ClaimedTask, DeadLetter, DeadLetterId, Lane, MetricsSnapshot, PendingTask, TaskId,
};

/// A `workspace/executeCommand` command: its name, its one argument and its result.
///
/// The argument is the first element of `arguments`; a command whose parameters are all
/// optional may be sent with no arguments at all.
pub trait Command {
    /// The command's name, as advertised in `executeCommandProvider`.
    const NAME: &'static str;
    /// The object in `arguments[0]`.
    type Params: Serialize + DeserializeOwned + Send + 'static;
    /// What the command returns.
    type Result: Serialize + DeserializeOwned + Send + 'static;
}

/// No parameters: `{}` or no arguments at all.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

// ---------------------------------------------------------------------------------------
// Commands

/// `switchyard.analyzeWorkspace`: the deterministic workspace analysis, with work-done
/// progress; writes the Markdown report to `<root>/.switchyard/analysis.md`.
pub enum AnalyzeWorkspace {}

impl Command for AnalyzeWorkspace {
    const NAME: &'static str = "switchyard.analyzeWorkspace";
    type Params = AnalyzeWorkspaceParams;
    type Result = AnalyzeWorkspaceResult;
}

/// The argument of [`AnalyzeWorkspace`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalyzeWorkspaceParams {
    /// The workspace folder to analyze; the first one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub folder: Option<Uri>,
    /// Ask the client to open the report (`window/showDocument`) when it can.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub show: bool,
}

/// What [`AnalyzeWorkspace`] returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnalyzeWorkspaceResult {
    /// The lane session the analysis ran in (what `switchyard.cancel` takes).
    pub session: String,
    /// The analysis as structured data.
    pub analysis: Value,
    /// The same analysis as a Markdown report.
    pub markdown: String,
    /// Where the report was written: `<root>/.switchyard/analysis.md`.
    pub report_uri: Uri,
}

/// `switchyard.queueStats`: a snapshot of every lane's counters and latencies.
pub enum QueueStats {}

impl Command for QueueStats {
    const NAME: &'static str = "switchyard.queueStats";
    type Params = NoParams;
    type Result = MetricsSnapshot;
}

/// `switchyard.deadLetters`: the tasks that failed for good, oldest first.
pub enum DeadLetters {}

impl Command for DeadLetters {
    const NAME: &'static str = "switchyard.deadLetters";
    type Params = NoParams;
    type Result = Vec<DeadLetter>;
}

/// `switchyard.retryDeadLetter`: resubmits a dead letter to its lane as a new task.
pub enum RetryDeadLetter {}

impl Command for RetryDeadLetter {
    const NAME: &'static str = "switchyard.retryDeadLetter";
    type Params = RetryDeadLetterParams;
    type Result = RetryDeadLetterResult;
}

/// The argument of [`RetryDeadLetter`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryDeadLetterParams {
    /// The dead letter's id, from `switchyard.deadLetters`.
    pub id: DeadLetterId,
}

/// What [`RetryDeadLetter`] returns: at once, without waiting for the task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryDeadLetterResult {
    /// The new task's id.
    pub task_id: TaskId,
}

/// `switchyard.cancel`: cancels one lane task, one session (an analysis), or everything.
pub enum Cancel {}

impl Command for Cancel {
    const NAME: &'static str = "switchyard.cancel";
    type Params = CancelParams;
    type Result = CancelResult;
}

/// The argument of [`Cancel`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelParams {
    /// A task id (number) or a session (string); everything when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<CancelTarget>,
}

/// What [`Cancel`] cancels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CancelTarget {
    /// One lane task.
    Task(TaskId),
    /// Every task of a session, and the command running it.
    Session(String),
}

/// What [`Cancel`] returns.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CancelResult {
    /// Lane tasks that were live and are now cancelled.
    pub tasks: usize,
    /// Long-running commands (analyses) that were cancelled.
    pub commands: usize,
}

/// `switchyard.runTool`: runs one tool through the lanes, as the agent would, seeing the
/// editor's unsaved buffers.
pub enum RunTool {}

impl Command for RunTool {
    const NAME: &'static str = "switchyard.runTool";
    type Params = RunToolParams;
    type Result = RunToolResult;
}

/// The argument of [`RunTool`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunToolParams {
    /// The tool's name (`grep`, `read`, ...).
    pub name: String,
    /// The tool's arguments, as its spec describes them.
    #[serde(default)]
    pub arguments: Value,
}

/// What [`RunTool`] returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RunToolResult {
    /// The tool's structured output.
    pub output: Value,
    /// The same output rendered as text, as the model sees it.
    pub text: String,
}

// ---------------------------------------------------------------------------------------
// Requests and notifications

/// `switchyard/laneStatus` (server → client notification): a compact per-lane snapshot,
/// sent when it changes, at most about ten times a second — what a status bar shows.
pub enum LaneStatus {}

impl Notification for LaneStatus {
    const METHOD: &'static str = "switchyard/laneStatus";
    type Params = LaneStatusParams;
}

/// The parameters of [`LaneStatus`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LaneStatusParams {
    /// One entry per lane, highest priority first.
    pub lanes: Vec<LaneCounts>,
    /// Dead letters kept now, over every lane.
    pub dead_letters: u64,
}

/// One lane in a [`LaneStatusParams`]; the counts are since the server started, except
/// `queued` and `running`, which are now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LaneCounts {
    /// The lane.
    pub lane: Lane,
    /// Waiting now: for a slot, a retry, or an external worker.
    pub queued: u64,
    /// Running now.
    pub running: u64,
    /// Completed with a result.
    pub done: u64,
    /// Failed for good or timed out.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
    /// Put in the dead-letter queue.
    pub dead_lettered: u64,
}

/// `switchyard/pendingTasks` (client → server request): lists, and optionally claims, the
/// tasks waiting for an external worker in lanes configured with `mode = "external"`.
pub enum PendingTasks {}

impl Request for PendingTasks {
    const METHOD: &'static str = "switchyard/pendingTasks";
    type Params = PendingTasksParams;
    type Result = PendingTasksResult;
}

/// The parameters of [`PendingTasks`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PendingTasksParams {
    /// Only this lane; every external lane when absent. Required to claim.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<Lane>,
    /// Claim up to this many tasks, oldest first, within the lane's `max_concurrency`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<usize>,
    /// How long a claim lasts before its task returns to pending; 60000 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ms: Option<u64>,
}

/// What [`PendingTasks`] returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PendingTasksResult {
    /// The tasks claimed by this request; complete them by `leaseId`.
    pub claimed: Vec<ClaimedTask>,
    /// The tasks still waiting, after the claim.
    pub pending: Vec<PendingTask>,
}

/// `switchyard/completeTask` (client → server request): completes a claimed task with a
/// result or an error, as if its lane had run it.
pub enum CompleteTask {}

impl Request for CompleteTask {
    const METHOD: &'static str = "switchyard/completeTask";
    type Params = CompleteTaskParams;
    type Result = ();
}

/// The parameters of [`CompleteTask`]: exactly one of `result` and `error`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompleteTaskParams {
    /// The claim's lease, from `switchyard/pendingTasks`.
    pub lease_id: u64,
    /// The task's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// Why the task failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<TaskFailure>,
}

/// A failure reported by an external worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaskFailure {
    /// What went wrong.
    pub message: String,
    /// Whether another attempt may succeed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retryable: bool,
    /// The least wait before retrying, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

// ---------------------------------------------------------------------------------------
// The catalog

/// What a catalog entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A `workspace/executeCommand` command.
    Command,
    /// A request, client to server.
    Request,
    /// A notification, server to client.
    Notification,
}

/// Converts an example through a type and back; `Err` when it does not fit.
pub type RoundTrip = fn(Value) -> Result<Value, String>;

/// One custom method or command, with its types as round trips for checking examples.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Its name.
    pub name: &'static str,
    /// What it is.
    pub kind: Kind,
    /// The params (for a command, `arguments[0]`) through their type.
    pub params: RoundTrip,
    /// The result through its type; `None` for a notification.
    pub result: Option<RoundTrip>,
}

fn round_trip<T: Serialize + DeserializeOwned>(value: Value) -> Result<Value, String> {
    let typed: T = serde_json::from_value(value).map_err(|e| e.to_string())?;
    serde_json::to_value(typed).map_err(|e| e.to_string())
}

fn command<C: Command>() -> Entry {
    Entry {
        name: C::NAME,
        kind: Kind::Command,
        params: round_trip::<C::Params>,
        result: Some(round_trip::<C::Result>),
    }
}

fn request<R: Request>() -> Entry {
    Entry {
        name: R::METHOD,
        kind: Kind::Request,
        params: round_trip::<R::Params>,
        result: Some(round_trip::<R::Result>),
    }
}

fn notification<N: Notification>() -> Entry {
    Entry {
        name: N::METHOD,
        kind: Kind::Notification,
        params: round_trip::<N::Params>,
        result: None,
    }
}

/// Every custom method and command this server speaks.
pub fn catalog() -> Vec<Entry> {
    vec![
        command::<AnalyzeWorkspace>(),
        command::<QueueStats>(),
        command::<DeadLetters>(),
        command::<RetryDeadLetter>(),
        command::<Cancel>(),
        command::<RunTool>(),
        request::<PendingTasks>(),
        request::<CompleteTask>(),
        notification::<LaneStatus>(),
    ]
}

/// The parameter object of a command from its `arguments`: the first element, or `{}` when
/// there is none.
pub fn command_argument(arguments: Vec<Value>) -> Result<Value, String> {
    let count = arguments.len();
    let mut arguments = arguments.into_iter();
    match (arguments.next(), count) {
        (None, _) => Ok(Value::Object(Default::default())),
        (Some(argument), 1) => Ok(argument),
        (Some(_), n) => Err(format!("expected one argument object, got {n} arguments")),
    }
}

/// The names of every command, as advertised in `executeCommandProvider`.
pub fn command_names() -> Vec<String> {
    catalog()
        .into_iter()
        .filter(|e| e.kind == Kind::Command)
        .map(|e| e.name.to_string())
        .collect()
}

#[cfg(test)]
mod tests;
