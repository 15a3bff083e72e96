/**
 * Switchyard's extensions to LSP: the `workspace/executeCommand` commands (`switchyard.*`)
 * and the custom requests and notifications (`switchyard/*`), with their payloads.
 *
 * This file mirrors `server/src/lsp/ext.rs` name for name, and `docs/protocol.md` documents
 * both; change them together. Field names are camelCase as in LSP; lanes are named as in
 * configuration (`"query"`); lane settings inside results (`config`) keep the snake_case keys
 * of the configuration file.
 */

import * as lc from "vscode-languageclient";

/** A lane, as named in configuration. */
export type Lane = "control" | "query" | "execute" | "generate";

/** A lane task's number, unique within one server. */
export type TaskId = number;

/** A dead letter's number, unique within one server. */
export type DeadLetterId = number;

// ---- commands (`workspace/executeCommand`, one argument object) --------------------------

/**
 * The server's command names. The language client registers each of them as a VS Code
 * command when the server announces them, so the extension's own palette commands have
 * other ids (see `package.json`).
 */
export const Command = {
    analyzeWorkspace: "switchyard.analyzeWorkspace",
    queueStats: "switchyard.queueStats",
    mcpStatus: "switchyard.mcpStatus",
    compact: "switchyard.compact",
    deadLetters: "switchyard.deadLetters",
    retryDeadLetter: "switchyard.retryDeadLetter",
    cancel: "switchyard.cancel",
    runTool: "switchyard.runTool",
} as const;

/** No parameters: `{}` or no arguments at all. */
export type NoParams = Record<string, never>;

/** `switchyard.analyzeWorkspace` argument. */
export interface AnalyzeWorkspaceParams {
    /** The workspace folder to analyze; the first one when absent. */
    folder?: lc.DocumentUri;
    /** Ask the client to open the report (`window/showDocument`) when it can. */
    show?: boolean;
}

/** `switchyard.analyzeWorkspace` result. */
export interface AnalyzeWorkspaceResult {
    /** The lane session the analysis ran in (what `switchyard.cancel` takes). */
    session: string;
    /** The analysis as structured data. */
    analysis: unknown;
    /** The same analysis as a Markdown report. */
    markdown: string;
    /** Where the report was written: `<root>/.switchyard/analysis.md`. */
    reportUri: lc.DocumentUri;
}

/** Latency percentiles of one histogram, in microseconds. */
export interface Percentiles {
    count: number;
    p50Us: number;
    p90Us: number;
    p99Us: number;
    maxUs: number;
}

/** One lane's figures at one moment (`switchyard.queueStats`). */
export interface LaneMetrics {
    lane: Lane;
    submitted: number;
    completed: number;
    failed: number;
    retried: number;
    cancelled: number;
    timedOut: number;
    deadLettered: number;
    queued: number;
    running: number;
    queueWait: Percentiles;
    runTime: Percentiles;
    /** The settings in force, in the configuration file's snake_case shape. */
    config: { max_concurrency?: number | null; [key: string]: unknown };
}

/** `switchyard.queueStats` result: every lane's figures, taken at one moment. */
export interface MetricsSnapshot {
    lanes: LaneMetrics[];
    globalRunning: number;
    globalMaxConcurrency: number | null;
    deadLetters: number;
    deadLetterCapacity: number;
    deadLettersEvicted: number;
    /** Named counters of the pieces built on the lanes (`read_cache.hits`, ...). */
    counters: Record<string, number>;
}

/** A task that failed for good (`switchyard.deadLetters` returns `DeadLetter[]`). */
export interface DeadLetter {
    id: DeadLetterId;
    taskId: TaskId;
    lane: Lane;
    /** The task's name (a tool's name, `model call`). */
    name: string;
    session: string | null;
    payload: unknown;
    attempts: number;
    /** The last attempt's error. */
    error: string;
    submittedAtMs: number;
    failedAtMs: number;
}

/** `switchyard.retryDeadLetter` argument. */
export interface RetryDeadLetterParams {
    id: DeadLetterId;
}

/** `switchyard.retryDeadLetter` result, at once, without waiting for the task. */
export interface RetryDeadLetterResult {
    taskId: TaskId;
}

/** What `switchyard.cancel` cancels: a task (number) or a session (string). */
export type CancelTarget = TaskId | string;

/** `switchyard.cancel` argument: everything when `id` is absent. */
export interface CancelParams {
    id?: CancelTarget;
}

/** `switchyard.cancel` result. */
export interface CancelResult {
    /** Lane tasks that were live and are now cancelled. */
    tasks: number;
    /** Long-running commands (analyses) that were cancelled. */
    commands: number;
}

/** `switchyard.runTool` argument: one tool through the lanes, seeing unsaved buffers. */
export interface RunToolParams {
    name: string;
    arguments?: unknown;
}

/** `switchyard.runTool` result. */
export interface RunToolResult {
    output: unknown;
    text: string;
}

// ---- requests and notifications ----------------------------------------------------------

/** One lane in a `switchyard/laneStatus`; counts since the server started, except
 * `queued` and `running`, which are now. */
export interface LaneCounts {
    lane: Lane;
    queued: number;
    running: number;
    done: number;
    /** Failed for good or timed out. */
    failed: number;
    cancelled: number;
    deadLettered: number;
}

/** `switchyard/laneStatus` parameters. */
export interface LaneStatusParams {
    /** One entry per lane, highest priority first. */
    lanes: LaneCounts[];
    /** Dead letters kept now, over every lane. */
    deadLetters: number;
}

/** Server → client: a compact per-lane snapshot, sent when it changes (≤ ~10/s). */
export const laneStatus = new lc.NotificationType<LaneStatusParams>("switchyard/laneStatus");

/** `switchyard/pendingTasks` parameters. */
export interface PendingTasksParams {
    /** Only this lane; every external lane when absent. Required to claim. */
    lane?: Lane;
    /** Claim up to this many tasks, oldest first. */
    claim?: number;
    /** How long a claim lasts; 60000 when absent. */
    leaseMs?: number;
}

/** A task waiting for an external worker. */
export interface PendingTask {
    taskId: TaskId;
    lane: Lane;
    name: string;
    session: string | null;
    payload: unknown;
    /** 1 for the first attempt. */
    attempt: number;
}

/** A task an external worker holds until its lease expires. */
export interface ClaimedTask {
    leaseId: number;
    task: PendingTask;
    leaseMs: number;
}

/** `switchyard/pendingTasks` result. */
export interface PendingTasksResult {
    claimed: ClaimedTask[];
    pending: PendingTask[];
}

/** Client → server: lists, and optionally claims, the tasks of external lanes. */
export const pendingTasks = new lc.RequestType<PendingTasksParams, PendingTasksResult, void>(
    "switchyard/pendingTasks",
);

/** A failure reported by an external worker. */
export interface TaskFailure {
    message: string;
    retryable?: boolean;
    retryAfterMs?: number;
}

/** `switchyard/completeTask` parameters: exactly one of `result` and `error`. */
export interface CompleteTaskParams {
    leaseId: number;
    result?: unknown;
    error?: TaskFailure;
}

/** Client → server: completes a claimed task, as if its lane had run it. */
export const completeTask = new lc.RequestType<CompleteTaskParams, null, void>(
    "switchyard/completeTask",
);

// ---- the agent ---------------------------------------------------------------------------
// Mirrors `Ask`, `AskCommand` and `SessionUpdate` of server/src/lsp/ext.rs; the updates are
// shaped after the Agent Client Protocol's `session/update`.

/** What the editor shows: the active document and its selection. */
export interface AskContext {
    /** The document in the active editor (a URI). */
    file?: string;
    /** The selection in it, in the negotiated position encoding. */
    selection?: lc.Range;
    /** The selected text; the server takes it from the open buffer when absent. */
    selectedText?: string;
}

/** `switchyard/ask` (and `switchyard.ask`) parameters. */
export interface AskParams {
    /** Continue this session; a new one when absent. */
    sessionId?: string;
    prompt: string;
    context?: AskContext;
    /** Switch the session to this model from this turn on. */
    model?: string;
    /** With `model`: its wire format. */
    provider?: "openai" | "anthropic";
    /** Report work-done progress under this token. */
    workDoneToken?: lc.ProgressToken;
}

/** Token counts, and their cost when `[llm.pricing]` prices the model. */
export interface TokenUsage {
    inputTokens: number;
    outputTokens: number;
    /** Prompt tokens read from the provider's cache. */
    cachedTokens: number;
    costUsd?: number;
}

/** `switchyard/ask` result, once the run is over. */
export interface AskResult {
    /** Send it again to continue the conversation. */
    sessionId: string;
    /** The final answer. */
    text: string;
    /** `end_turn`, `max_turns`, `token_budget`, `max_tokens`, `refusal`, `cancelled`. */
    stopReason: string;
    /** A sentence for the user when the run did not simply finish. */
    stopMessage?: string;
    usage: TokenUsage;
    turns: number;
    toolCalls: number;
    /** The run's place in the session, from 1. */
    turn: number;
    sessionUsage: TokenUsage;
}

/** Client → server: runs one prompt through the agent; it streams `switchyard/sessionUpdate`. */
export const ask = new lc.RequestType<AskParams, AskResult, void>("switchyard/ask");

/** `switchyard.ask`: the same as a `workspace/executeCommand`. */
export const askCommand = "switchyard.ask";

/** A tool call's state (ACP `ToolCallStatus`). */
export type ToolCallStatus = "pending" | "in_progress" | "completed" | "failed";

/** What kind of work a tool call is (ACP `ToolKind`). */
export type ToolKind = "read" | "edit" | "delete" | "move" | "search" | "execute" | "other";

/** A piece of content (ACP `ContentBlock`; only text). */
export interface ContentBlock {
    type: "text";
    text: string;
}

/** Content of a tool call (ACP `ToolCallContent`). */
export interface ToolCallContent {
    type: "content";
    content: ContentBlock;
}

/** One step of the model's plan (ACP `PlanEntry`). */
export interface PlanEntry {
    content: string;
    priority: "high" | "medium" | "low";
    status: "pending" | "in_progress" | "completed";
}

/** The kinds of `switchyard/sessionUpdate`, tagged by `sessionUpdate`. */
export type SessionUpdate =
    | { sessionUpdate: "agent_message_chunk"; content: ContentBlock }
    | { sessionUpdate: "agent_thought_chunk"; content: ContentBlock }
    | { sessionUpdate: "plan"; entries: PlanEntry[]; explanation?: string }
    | {
          sessionUpdate: "tool_call";
          toolCallId: string;
          title: string;
          kind: ToolKind;
          status: ToolCallStatus;
          rawInput: unknown;
          lane?: Lane;
      }
    | {
          sessionUpdate: "tool_call_update";
          toolCallId: string;
          status: ToolCallStatus;
          content: ToolCallContent[];
          durationMs: number;
          lane?: Lane;
      }
    | { sessionUpdate: "usage"; call: TokenUsage; turn: TokenUsage; session: TokenUsage }
    | {
          sessionUpdate: "model_retry";
          attempt: number;
          maxAttempts: number;
          error: string;
          discardedText: boolean;
      }
    | { sessionUpdate: "model_waiting"; what: string; upToMs: number }
    | { sessionUpdate: "compaction"; replacedMessages: number; keptMessages: number };

/** `switchyard/sessionUpdate` parameters. */
export interface SessionUpdateParams {
    sessionId: string;
    update: SessionUpdate;
}

/** Server → client: what an agent session is doing. */
export const sessionUpdate = new lc.NotificationType<SessionUpdateParams>(
    "switchyard/sessionUpdate",
);

/** One stored session. */
export interface SessionSummary {
    sessionId: string;
    title: string;
    createdMs: number;
    updatedMs: number;
    turns: number;
    usage: TokenUsage;
}

/** `switchyard/listSessions` result. */
export interface ListSessionsResult {
    sessions: SessionSummary[];
}

/** Client → server: the workspace's stored sessions, most recently changed first. */
export const listSessions = new lc.RequestType<Record<string, never>, ListSessionsResult, void>(
    "switchyard/listSessions",
);

/** `switchyard/deleteSession` parameters. */
export interface DeleteSessionParams {
    sessionId: string;
}

/** Client → server: deletes a stored session. */
export const deleteSession = new lc.RequestType<DeleteSessionParams, null, void>(
    "switchyard/deleteSession",
);

/** `switchyard/rewind` parameters. */
export interface RewindParams {
    sessionId: string;
    /** Back to the start of this turn, from 1. */
    turn: number;
    /** Only the files or only the conversation; both when absent. */
    only?: "code" | "conversation";
    /** Overwrite files changed since the agent left them. */
    force?: boolean;
}

/** `switchyard/rewind` result. */
export interface RewindResult {
    turn: number;
    restored: string[];
    conversation: boolean;
    notRestorable: string[];
}

/** Client → server: takes a session back to the start of a turn. */
export const rewind = new lc.RequestType<RewindParams, RewindResult, void>("switchyard/rewind");

/** One hunk of a change under review; lines are 0-based. */
export interface ReviewHunk {
    index: number;
    /** First line replaced in `oldText` (for an insertion, the line it goes before). */
    oldStart: number;
    oldLines: number;
    /** First line of the replacement in `newText`. */
    newStart: number;
    newLines: number;
    oldText: string;
    newText: string;
}

/** `switchyard/reviewChange` parameters: one file's change, before it lands. */
export interface ReviewChangeParams {
    sessionId?: string;
    /** The model's tool call id (`toolCallId` of `switchyard/sessionUpdate`). */
    callId?: string;
    /** `write`, `edit`, `multi_edit`, `delete`, `move` or `copy`. */
    tool: string;
    /** The file; for `move` and `copy`, the destination. */
    uri: lc.DocumentUri;
    oldText: string;
    newText: string;
    hunks: ReviewHunk[];
}

/** `switchyard/reviewChange` result: the hunks the user accepted (none rejects the change). */
export interface ReviewChangeResult {
    accepted: number[];
}

/** Server → client, in review mode: a change to review hunk by hunk before it lands. */
export const reviewChange = new lc.RequestType<ReviewChangeParams, ReviewChangeResult, void>(
    "switchyard/reviewChange",
);

/** `switchyard.mcpStatus` argument. */
export interface McpStatusParams {
    /** Start the servers not running yet and wait for them. */
    start?: boolean;
}

/** One tool of an MCP server. */
export interface McpToolStatus {
    name: string;
    tool: string;
    description?: string;
    inputSchema: unknown;
    readOnly: boolean;
    destructive: boolean;
}

/** One configured MCP server. */
export interface McpServerStatus {
    name: string;
    state: "idle" | "starting" | "running" | "failed" | "disabled";
    tools: McpToolStatus[];
    lastError: string | null;
    restarts: number;
}

/** `switchyard.mcpStatus` result. */
export interface McpStatusResult {
    servers: McpServerStatus[];
}
