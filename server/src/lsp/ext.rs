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
use tower_lsp_server::ls_types::notification::Notification;
use tower_lsp_server::ls_types::request::Request;
use tower_lsp_server::ls_types::{ProgressToken, Range, Uri};

use crate::lanes::{ClaimedTask, DeadLetter, DeadLetterId, Lane, PendingTask, TaskId};

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
/// progress, then with `llm` the ensemble of module agents and a summary; writes the
/// Markdown report to `<root>/.switchyard/analysis.md`.
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
    /// Then have the model explain it: module agents in parallel, then a summary (needs a
    /// model provider; without one, `notice` says how to configure one).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub llm: bool,
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
    /// With `llm`: every module agent's outcome, the summary and the tokens used (the
    /// Markdown has them too, after the analysis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ensemble: Option<Value>,
    /// With `llm` but no model provider: why, and how to configure one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notice: Option<String>,
}

/// `switchyard.queueStats`: a snapshot of every lane's counters and latencies.
pub enum QueueStats {}

impl Command for QueueStats {
    const NAME: &'static str = "switchyard.queueStats";
    type Params = NoParams;
    type Result = crate::core::QueueStats;
}

/// `switchyard.mcpStatus`: the MCP servers, their state, tools and last error.
pub enum McpStatus {}

impl Command for McpStatus {
    const NAME: &'static str = "switchyard.mcpStatus";
    type Params = McpStatusParams;
    type Result = McpStatusResult;
}

/// The argument of [`McpStatus`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpStatusParams {
    /// Start the servers not running yet first, and answer once each runs or has failed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub start: bool,
}

/// What [`McpStatus`] returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct McpStatusResult {
    /// Every configured server, by name.
    pub servers: Vec<crate::mcp::ServerStatus>,
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

/// `switchyard.ask`: [`Ask`] for editors that prefer commands; the same parameters and
/// result, with progress under the command's `workDoneToken`.
pub enum AskCommand {}

impl Command for AskCommand {
    const NAME: &'static str = "switchyard.ask";
    type Params = AskParams;
    type Result = AskResult;
}

/// `switchyard.compact`: compacts a session now — everything but its last exchange
/// summarized by the model, as when a request would pass `agent.compact_at` of the window.
pub enum Compact {}

impl Command for Compact {
    const NAME: &'static str = "switchyard.compact";
    type Params = CompactParams;
    type Result = CompactResult;
}

/// The argument of [`Compact`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompactParams {
    /// The session, live or kept on disk.
    pub session_id: String,
}

/// What [`Compact`] returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CompactResult {
    /// Whether anything was compacted (not when the session has only one exchange).
    pub compacted: bool,
    /// Messages replaced by the summary.
    pub replaced: usize,
    /// Recent messages kept as they were.
    pub kept: usize,
    /// The summarizer's tokens.
    pub usage: TokenUsage,
    /// The session's tokens over every turn, the summary's included.
    pub session_usage: TokenUsage,
}

// ---------------------------------------------------------------------------------------
// Requests and notifications

/// `switchyard/ask` (client → server request): a prompt to the agent, in a new session or
/// a given one (live, or resumed from disk); answers with the final answer once the run is
/// over, streaming [`SessionUpdate`]s meanwhile and reporting work-done progress.
pub enum Ask {}

impl Request for Ask {
    const METHOD: &'static str = "switchyard/ask";
    type Params = AskParams;
    type Result = AskResult;
}

/// The parameters of [`Ask`] and [`AskCommand`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AskParams {
    /// Continue this session; a new one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// What the user asks.
    pub prompt: String,
    /// Where the user is in the editor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<AskContext>,
    /// Switch the session to this model, for this turn and the next ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// With `model`: its provider (`openai` or `anthropic`); the history is converted to
    /// that wire format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<crate::llm::ProviderKind>,
    /// Report work-done progress under this token (the request form; a command uses its
    /// own `workDoneToken`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_done_token: Option<ProgressToken>,
}

/// What the editor shows: the active document and its selection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AskContext {
    /// The document in the active editor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<Uri>,
    /// The selection in it, in the negotiated position encoding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Range>,
    /// The selected text; taken from the open buffer when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected_text: Option<String>,
}

/// What [`Ask`] returns, like ACP's prompt response with the answer added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AskResult {
    /// The session the run was in: send it again to continue the conversation.
    pub session_id: String,
    /// The final answer: the text of the model's last answer.
    pub text: String,
    /// Why the run stopped: `end_turn`, `max_turns`, `token_budget`, `max_tokens`,
    /// `refusal`, `cancelled`.
    pub stop_reason: String,
    /// A sentence for the user when the run did not simply finish.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_message: Option<String>,
    /// Tokens over every model call of the run, and their cost when priced.
    pub usage: TokenUsage,
    /// Model calls made.
    pub turns: u32,
    /// Tool calls answered.
    pub tool_calls: usize,
    /// The turn this run was in the session, from 1 (what `switchyard/rewind` takes).
    pub turn: u32,
    /// Tokens over every turn of the session, this one included.
    pub session_usage: TokenUsage,
}

/// Token counts, and their cost when `[llm.pricing]` prices the model.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TokenUsage {
    /// Prompt tokens, cached or not.
    pub input_tokens: u64,
    /// Generated tokens.
    pub output_tokens: u64,
    /// Of the prompt tokens, those read from the provider's cache.
    #[serde(default)]
    pub cached_tokens: u64,
    /// What they cost in US dollars; absent when the model has no price.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

/// `switchyard/sessionUpdate` (server → client notification): what a running [`Ask`] does,
/// shaped after the Agent Client Protocol's `session/update`.
pub enum SessionUpdate {}

impl Notification for SessionUpdate {
    const METHOD: &'static str = "switchyard/sessionUpdate";
    type Params = SessionUpdateParams;
}

/// The parameters of [`SessionUpdate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionUpdateParams {
    /// The session the update belongs to.
    pub session_id: String,
    /// What happened.
    pub update: Update,
}

/// One update, tagged by `sessionUpdate` as in ACP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "sessionUpdate",
    rename_all = "snake_case",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Update {
    /// More of the answer's text (ACP `agent_message_chunk`).
    AgentMessageChunk {
        /// The text.
        content: ContentBlock,
    },
    /// More of the model's reasoning, apart from the answer (ACP `agent_thought_chunk`).
    AgentThoughtChunk {
        /// The reasoning.
        content: ContentBlock,
    },
    /// The model's plan, whole, replacing the last one (ACP `plan`).
    Plan {
        /// The steps, in order.
        entries: Vec<PlanEntry>,
        /// Why the plan changed, when the model said (not in ACP).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        explanation: Option<String>,
    },
    /// A tool call started (ACP `tool_call`).
    ToolCall {
        /// The model's id for the call.
        tool_call_id: String,
        /// The tool and a short summary of its arguments (`read path=src/lib.rs`).
        title: String,
        /// What kind of work it is.
        kind: ToolKind,
        /// `in_progress`, or `failed` for a call refused before it ran (an update with the
        /// reason follows).
        status: ToolCallStatus,
        /// The arguments as the model sent them (`null` when they were not JSON).
        raw_input: Value,
        /// The lane it runs in; absent for a tool that does not exist.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lane: Option<Lane>,
    },
    /// A tool call is over, or says how far it has come (ACP `tool_call_update`).
    ToolCallUpdate {
        /// The call.
        tool_call_id: String,
        /// `completed` or `failed` (a cancelled call is `failed`, its content says so);
        /// `in_progress` for a progress report.
        status: ToolCallStatus,
        /// A short summary of the result, or the error; for a progress report, its line
        /// (`2/5 (40%): message`).
        content: Vec<ToolCallContent>,
        /// From handing it to its lane to its result (to the report, for progress).
        duration_ms: u64,
        /// The lane it ran in; absent for a tool that does not exist.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        lane: Option<Lane>,
        /// How far a running call has come (an MCP tool's `notifications/progress`); only
        /// on an `in_progress` update.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        progress: Option<ToolCallProgress>,
    },
    /// Tokens after a model call (not in ACP): that call's, the turn's so far and the
    /// session's so far, each with its cost when the model has a price.
    Usage {
        /// The call that just finished.
        call: TokenUsage,
        /// Every call of this turn (this request) so far.
        turn: TokenUsage,
        /// Every turn of the session so far.
        session: TokenUsage,
    },
    /// A model call failed and the Generate lane retries it; text already streamed by the
    /// failed attempt is void when `discardedText` is true (not in ACP).
    ModelRetry {
        /// The attempt that failed.
        attempt: u32,
        /// The most attempts the lane makes.
        max_attempts: u32,
        /// Why it failed.
        error: String,
        /// Whether the failed attempt had streamed text that is now void.
        discarded_text: bool,
    },
    /// The older part of the conversation was summarized by the model to stay within the
    /// context window (not in ACP): a `compact` task in the Generate lane.
    Compaction {
        /// Messages replaced by the summary.
        replaced_messages: usize,
        /// Recent messages kept as they were.
        kept_messages: usize,
    },
    /// A model call waits longer than usual (not in ACP): for the first byte of an answer,
    /// or before a retry for the time the provider asked for.
    ModelWaiting {
        /// What is awaited, in words.
        what: String,
        /// The longest the wait lasts, in milliseconds.
        up_to_ms: u64,
    },
}

/// One step of a plan (ACP `PlanEntry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanEntry {
    /// What the step is.
    pub content: String,
    /// `high`, `medium` or `low`; the model gives none, so `medium`.
    pub priority: String,
    /// `pending`, `in_progress` or `completed`.
    pub status: String,
}

/// A piece of content (ACP `ContentBlock`; only text here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ContentBlock {
    /// Text.
    Text {
        /// The text.
        text: String,
    },
}

/// Content of a tool call (ACP `ToolCallContent`; only plain content here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ToolCallContent {
    /// A content block.
    Content {
        /// The block.
        content: ContentBlock,
    },
}

/// What kind of work a tool call is (ACP `ToolKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    /// Reading files or directories.
    Read,
    /// Changing files.
    Edit,
    /// Deleting files.
    Delete,
    /// Moving or renaming files.
    Move,
    /// Searching.
    Search,
    /// Running a command.
    Execute,
    /// Fetching from the network.
    Fetch,
    /// Anything else.
    Other,
}

/// A tool call's status (ACP `ToolCallStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolCallStatus {
    /// Not started yet.
    Pending,
    /// Running.
    InProgress,
    /// Finished with a result.
    Completed,
    /// Failed, was refused, or was cancelled.
    Failed,
}

/// How far a running tool call has come.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ToolCallProgress {
    /// The progress so far; it grows with each report.
    pub progress: f64,
    /// The total, when the tool knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<f64>,
    /// What it is doing, in the tool's words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `switchyard/listSessions` (client → server request): the workspace's stored sessions,
/// most recently changed first.
pub enum ListSessions {}

impl Request for ListSessions {
    const METHOD: &'static str = "switchyard/listSessions";
    type Params = ListSessionsParams;
    type Result = ListSessionsResult;
}

/// The parameters of [`ListSessions`]: none yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListSessionsParams {}

/// What [`ListSessions`] returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListSessionsResult {
    /// Most recently changed first.
    pub sessions: Vec<SessionSummary>,
}

/// One stored session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SessionSummary {
    /// Its id: `sessionId` of `switchyard/ask` resumes it.
    pub session_id: String,
    /// The start of its first prompt.
    pub title: String,
    /// When it was created, Unix milliseconds.
    pub created_ms: u64,
    /// When it last changed, Unix milliseconds.
    pub updated_ms: u64,
    /// Prompts sent in it.
    pub turns: u32,
    /// Tokens over every turn, and their cost when priced.
    pub usage: TokenUsage,
}

/// `switchyard/deleteSession` (client → server request): cancels what runs in a session,
/// forgets it and deletes its file.
pub enum DeleteSession {}

impl Request for DeleteSession {
    const METHOD: &'static str = "switchyard/deleteSession";
    type Params = DeleteSessionParams;
    type Result = ();
}

/// The parameters of [`DeleteSession`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeleteSessionParams {
    /// The session.
    pub session_id: String,
}

/// `switchyard/rewind` (client → server request): takes a session back to the start of a
/// turn — its files, restored as one `workspace/applyEdit`, its conversation, or both.
pub enum Rewind {}

impl Request for Rewind {
    const METHOD: &'static str = "switchyard/rewind";
    type Params = RewindParams;
    type Result = RewindResult;
}

/// The parameters of [`Rewind`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RewindParams {
    /// The session.
    pub session_id: String,
    /// The turn to go back to the start of, from 1.
    pub turn: u32,
    /// `code` or `conversation` to restore only that; both when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only: Option<crate::agent::Only>,
    /// Restore files even when they changed since the agent left them.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// What [`Rewind`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RewindResult {
    /// The turn the session is back at the start of.
    pub turn: u32,
    /// The files restored, relative to the workspace root.
    pub restored: Vec<String>,
    /// Whether the conversation was rewound.
    pub conversation: bool,
    /// What could not be restored, in sentences (turns that ran `bash`, files too large).
    pub not_restorable: Vec<String>,
}

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
    /// For a lane on a broker, the workers serving it now; absent for a lane run here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<u64>,
}

/// `switchyard/reviewChange` (server → client request): in review mode (`review =
/// "changes"`), a change the agent proposes to one file, hunk by hunk, before it lands; the
/// client answers with the hunks the user accepted, and only those are applied (one
/// `workspace/applyEdit`). Replaces the approval prompt for the change.
pub enum ReviewChange {}

impl Request for ReviewChange {
    const METHOD: &'static str = "switchyard/reviewChange";
    type Params = ReviewChangeParams;
    type Result = ReviewChangeResult;
}

/// The parameters of [`ReviewChange`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReviewChangeParams {
    /// The session whose call proposes the change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The model's id of the call (as in `switchyard/sessionUpdate`'s `toolCallId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    /// The tool: `write`, `edit`, `multi_edit`, `delete`, `move` or `copy`.
    pub tool: String,
    /// The file; for `move` and `copy`, the destination.
    pub uri: Uri,
    /// What the file reads now (the open buffer, else the disk); empty for a new file.
    pub old_text: String,
    /// What it would read with every hunk; empty for a deletion.
    pub new_text: String,
    /// The runs of changed lines, at least one.
    pub hunks: Vec<ReviewHunk>,
}

/// One hunk of a [`ReviewChangeParams`]; lines are 0-based.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReviewHunk {
    /// What the answer names it by.
    pub index: usize,
    /// First line replaced in `oldText` (for an insertion, the line it goes before).
    pub old_start: usize,
    /// Lines replaced.
    pub old_lines: usize,
    /// First line of the replacement in `newText`.
    pub new_start: usize,
    /// Lines of the replacement.
    pub new_lines: usize,
    /// The lines replaced, line endings included.
    pub old_text: String,
    /// The replacement, line endings included.
    pub new_text: String,
}

/// What [`ReviewChange`] returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReviewChangeResult {
    /// The indices of the hunks the user accepted; none rejects the change.
    pub accepted: Vec<usize>,
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
    /// A request, server to client.
    ClientRequest,
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

fn client_request<R: Request>() -> Entry {
    Entry {
        kind: Kind::ClientRequest,
        ..request::<R>()
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
        command::<McpStatus>(),
        command::<DeadLetters>(),
        command::<RetryDeadLetter>(),
        command::<Cancel>(),
        command::<RunTool>(),
        command::<AskCommand>(),
        command::<Compact>(),
        request::<PendingTasks>(),
        request::<CompleteTask>(),
        request::<Ask>(),
        request::<ListSessions>(),
        request::<DeleteSession>(),
        request::<Rewind>(),
        notification::<LaneStatus>(),
        notification::<SessionUpdate>(),
        client_request::<ReviewChange>(),
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
