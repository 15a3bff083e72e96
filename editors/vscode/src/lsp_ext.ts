/**
 * Switchyard's extensions to LSP: custom methods and the `workspace/executeCommand`
 * commands with their payloads.
 *
 * This file mirrors `server/src/lsp/ext.rs` name for name (and docs/protocol.md). Change
 * both together.
 */

import * as lc from "vscode-languageclient";

// ---- commands (`workspace/executeCommand`) -----------------------------------------------

/**
 * The server's command ids. The language client registers each of them as a VS Code command
 * when the server announces them, so the extension's own palette commands use other ids
 * (see `package.json`).
 */
export const Command = {
    analyzeWorkspace: "switchyard.analyzeWorkspace",
    ask: "switchyard.ask",
    cancel: "switchyard.cancel",
    queueStats: "switchyard.queueStats",
    deadLetters: "switchyard.deadLetters",
    retryDeadLetter: "switchyard.retryDeadLetter",
} as const;

/** The result of `switchyard.analyzeWorkspace`. */
export interface AnalyzeResult {
    /** The report, written to `<root>/.switchyard/analysis.md`, when it could be written. */
    uri?: lc.URI;
    /** The report as Markdown. */
    markdown?: string;
}

/** Arguments of `switchyard.cancel`: a session, or every running task when absent. */
export interface CancelParams {
    sessionId?: string;
}

/** Latency percentiles in milliseconds. */
export interface Percentiles {
    p50?: number;
    p90?: number;
    p99?: number;
}

/** One lane's counters, as in `switchyard/laneStatus` and `switchyard.queueStats`. */
export interface LaneCounters {
    /** `control`, `query`, `execute` or `generate`. */
    lane: string;
    queued: number;
    running: number;
    done: number;
    failed: number;
    deadLettered: number;
    /** Retries so far (queue stats only). */
    retried?: number;
    /** Configured maximum concurrency; absent or null is unbounded. */
    maxConcurrency?: number | null;
    /** Time spent waiting in the queue (queue stats only). */
    queueWaitMs?: Percentiles;
    /** Time spent running (queue stats only). */
    runMs?: Percentiles;
}

/** The result of `switchyard.queueStats`. */
export interface QueueStats {
    lanes: LaneCounters[];
    deadLetters?: number;
}

/** One entry of the dead-letter queue. */
export interface DeadLetter {
    id: string | number;
    lane: string;
    /** What the task was (`grep`, `model call`, ...). */
    task?: string;
    /** Why it failed for good. */
    error: string;
    attempts?: number;
    sessionId?: string;
    /** RFC 3339 time of the last failure. */
    failedAt?: string;
}

/** The result of `switchyard.deadLetters`. */
export interface DeadLetters {
    deadLetters: DeadLetter[];
}

/** Arguments of `switchyard.retryDeadLetter`. */
export interface RetryDeadLetterParams {
    id: string | number;
}

// ---- custom methods ----------------------------------------------------------------------

/** What the user is looking at when they ask. */
export interface AskContext {
    /** The active editor's document. */
    textDocument?: lc.TextDocumentIdentifier;
    /** Its selection (the cursor when empty). */
    selection?: lc.Range;
}

/** `switchyard/ask` parameters: a prompt, in a new session or an existing one. */
export interface AskParams extends lc.WorkDoneProgressParams {
    sessionId?: string;
    prompt: string;
    context?: AskContext;
}

/** `switchyard/ask` result, sent when the turn loop ends. */
export interface AskResult {
    sessionId: string;
    /** `end_turn`, `cancelled`, `max_turns`, `refusal`, ... */
    stopReason?: string;
}

/** Runs one prompt through the agent; progress streams as `switchyard/sessionUpdate`. */
export const ask = new lc.RequestType<AskParams, AskResult, void>("switchyard/ask");

/** A tool call's state, as in the Agent Client Protocol. */
export type ToolCallStatus = "pending" | "in_progress" | "completed" | "failed" | "cancelled";

/** Text (the only content the extension renders; others are shown by their type). */
export interface ContentBlock {
    type: string;
    text?: string;
}

/** The kinds of `switchyard/sessionUpdate`, after ACP's `session/update`. */
export type SessionUpdate =
    | { sessionUpdate: "agent_message_chunk"; content: ContentBlock }
    | { sessionUpdate: "agent_thought_chunk"; content: ContentBlock }
    | {
          sessionUpdate: "tool_call";
          toolCallId: string;
          title: string;
          kind?: string;
          status?: ToolCallStatus;
          lane?: string;
          rawInput?: unknown;
      }
    | {
          sessionUpdate: "tool_call_update";
          toolCallId: string;
          title?: string;
          status?: ToolCallStatus;
          lane?: string;
          durationMs?: number;
          content?: unknown;
          error?: string;
      };

/** `switchyard/sessionUpdate` parameters. */
export interface SessionUpdateParams {
    sessionId: string;
    update: SessionUpdate;
}

/** What an agent session is doing: message chunks and tool calls. */
export const sessionUpdate = new lc.NotificationType<SessionUpdateParams>(
    "switchyard/sessionUpdate",
);

/** `switchyard/laneStatus` parameters: every lane's counters. */
export interface LaneStatusParams {
    lanes: LaneCounters[];
}

/** Per-lane counters, sent when they change (coalesced by the server). */
export const laneStatus = new lc.NotificationType<LaneStatusParams>("switchyard/laneStatus");

/** `switchyard/pendingTasks` parameters: claim tasks of an external lane. */
export interface PendingTasksParams {
    lane: string;
    /** Most tasks to claim. */
    limit?: number;
    /** How long the claim holds before the task is handed to someone else. */
    leaseMs?: number;
}

/** One task claimed by an external worker. */
export interface PendingTask {
    id: string | number;
    lane: string;
    kind: string;
    payload: unknown;
    leaseId: string;
    leaseExpiresAt?: string;
}

/** `switchyard/pendingTasks` result. */
export interface PendingTasksResult {
    tasks: PendingTask[];
}

/** Claims pending tasks of an external lane (the extension does not run tasks itself). */
export const pendingTasks = new lc.RequestType<PendingTasksParams, PendingTasksResult, void>(
    "switchyard/pendingTasks",
);

/** `switchyard/completeTask` parameters: the outcome of a claimed task. */
export interface CompleteTaskParams {
    id: string | number;
    leaseId: string;
    result?: unknown;
    error?: { message: string; retryable?: boolean; retryAfterMs?: number };
}

/** Completes a task claimed with `switchyard/pendingTasks`. */
export const completeTask = new lc.RequestType<CompleteTaskParams, null, void>(
    "switchyard/completeTask",
);
