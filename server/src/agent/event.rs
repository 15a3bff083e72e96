//! What a run reports while it works, and how it ended: plain values the CLI prints and the
//! language server turns into `switchyard/sessionUpdate` notifications.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::lanes::Lane;
use crate::llm::Usage;
use crate::tools::{Plan, ToolKind};

/// Where a run sends its [`AgentEvent`]s. Unbounded so the loop never waits on a slow front
/// end; a dropped receiver is fine (events are then discarded).
pub type EventSender = mpsc::UnboundedSender<AgentEvent>;

/// One thing that happened during a run, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum AgentEvent {
    /// More of the model's answer, as it streams.
    MessageChunk {
        /// The next piece of text.
        text: String,
    },
    /// More of the model's reasoning, as it streams (shown apart from the answer, folded).
    ThoughtChunk {
        /// The next piece of reasoning.
        text: String,
    },
    /// The model set its plan (`update_plan`): the whole plan, replacing the last one.
    Plan(Plan),
    /// A model call failed in a way another attempt may fix, and the Generate lane will try
    /// again. Text already streamed by the failed attempt is void: the answer starts over.
    ModelRetry {
        /// The attempt that failed (1 for the first).
        attempt: u32,
        /// How many attempts the lane makes at most.
        max_attempts: u32,
        /// Why it failed.
        error: String,
        /// Whether the failed attempt had already streamed text that is now void.
        discarded_text: bool,
    },
    /// A model call waits longer than usual: for the first byte of an answer, or before a
    /// retry for the time the provider asked for. Says what for and the longest it waits.
    ModelWaiting {
        /// What is awaited, in words.
        what: String,
        /// The longest the wait lasts before the call goes on or gives up.
        up_to: Duration,
    },
    /// A tool call was handed to its lane (or answered at once, when its arguments were
    /// unusable: a [`ToolCallFinished`](AgentEvent::ToolCallFinished) follows immediately).
    ToolCallStarted {
        /// The model's id for the call.
        call_id: String,
        /// The tool's name.
        name: String,
        /// The lane it runs in; `None` for a tool that does not exist.
        lane: Option<Lane>,
        /// What it is, for the protocols ([`ToolKind::Other`] for a tool that does not exist).
        kind: ToolKind,
        /// A short, one-line summary of the arguments (`path=src/lib.rs offset=10`).
        summary: String,
        /// The arguments as the model sent them (`null` when they were not JSON).
        arguments: Value,
    },
    /// A running tool call says how far it has come (an MCP server's progress
    /// notification); any number of these come between its start and its end.
    ToolCallProgress {
        /// The model's id for the call.
        call_id: String,
        /// The tool's name.
        name: String,
        /// The progress so far; it grows with each report.
        progress: f64,
        /// The total, when the tool knows it.
        total: Option<f64>,
        /// What it is doing, in the tool's words.
        message: Option<String>,
        /// Since the call was handed to its lane.
        elapsed: Duration,
    },
    /// A tool call is over.
    ToolCallFinished {
        /// The model's id for the call.
        call_id: String,
        /// The tool's name.
        name: String,
        /// The lane it ran in; `None` for a tool that does not exist.
        lane: Option<Lane>,
        /// How it ended.
        status: ToolStatus,
        /// From handing it to the lane to its result.
        duration: Duration,
        /// A short summary of the result (`120 lines`) or the error's message.
        summary: String,
    },
    /// Tokens after a model call: that call's, the turn's (this request's) so far and the
    /// session's so far, and what they cost when the model has a price.
    Usage {
        /// The call that just finished.
        call: Usage,
        /// Every call of this turn so far.
        turn: Usage,
        /// Every turn of the session so far, this one included.
        session: Usage,
        /// What those cost.
        cost: Cost,
    },
    /// The older part of the conversation was summarized by the model (a `compact` task in
    /// the Generate lane) to stay within the context window.
    Compacted {
        /// Messages replaced by the summary.
        replaced: usize,
        /// Recent messages kept as they were.
        kept: usize,
    },
    /// The run is over; the same stop reason is in its [`RunOutcome`].
    Done {
        /// Why it stopped.
        stop: StopReason,
    },
}

/// What tokens cost in US dollars, when `[llm.pricing]` prices the model; `None` otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Cost {
    /// The call that just finished.
    pub call_usd: Option<f64>,
    /// The turn so far.
    pub turn_usd: Option<f64>,
    /// The session so far.
    pub session_usd: Option<f64>,
}

/// How a tool call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolStatus {
    /// It produced a result.
    Completed,
    /// It failed; the model was told why.
    Failed,
    /// It was cancelled before it finished.
    Cancelled,
}

/// Why a run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model answered without asking for more tools.
    EndTurn,
    /// The run made `agent.max_turns` model calls and the model still wanted tools.
    MaxTurns,
    /// The request used up `agent.token_budget`.
    TokenBudget,
    /// The model's answer hit its output token limit and is incomplete.
    MaxTokens,
    /// The provider withheld or cut the answer.
    Refusal,
    /// The run was cancelled.
    Cancelled,
}

impl AgentEvent {
    /// A line for a [`ToolCallProgress`](AgentEvent::ToolCallProgress): `2/5 (40%): message`,
    /// or `2: message` without a total.
    pub fn progress_line(progress: f64, total: Option<f64>, message: Option<&str>) -> String {
        let mut line = match total {
            Some(total) if total > 0.0 => format!(
                "{progress}/{total} ({:.0}%)",
                (progress / total * 100.0).clamp(0.0, 100.0)
            ),
            _ => format!("{progress}"),
        };
        if let Some(message) = message.filter(|m| !m.is_empty()) {
            line.push_str(": ");
            line.push_str(message);
        }
        line
    }
}

impl StopReason {
    /// A sentence for the user when the run did not simply finish; `None` for
    /// [`StopReason::EndTurn`].
    pub fn explain(self, config: &super::AgentConfig) -> Option<String> {
        Some(match self {
            StopReason::EndTurn => return None,
            StopReason::MaxTurns => format!(
                "stopped after {} model calls (agent.max_turns) while the model still wanted tools; send another prompt to continue or raise agent.max_turns",
                config.max_turns
            ),
            StopReason::TokenBudget => format!(
                "stopped after using the token budget of {} tokens for one request (agent.token_budget); send another prompt to continue or raise agent.token_budget",
                config.token_budget
            ),
            StopReason::MaxTokens => {
                "the answer hit the model's output token limit and is incomplete (llm.max_tokens)"
                    .to_string()
            }
            StopReason::Refusal => "the provider withheld or cut the answer".to_string(),
            StopReason::Cancelled => "cancelled".to_string(),
        })
    }

    /// The name used on the wire (`end_turn`, `max_turns`, ...), as in ACP stop reasons.
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::EndTurn => "end_turn",
            StopReason::MaxTurns => "max_turns",
            StopReason::TokenBudget => "token_budget",
            StopReason::MaxTokens => "max_tokens",
            StopReason::Refusal => "refusal",
            StopReason::Cancelled => "cancelled",
        }
    }
}

/// How one request went.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOutcome {
    /// The session it ran in.
    pub session: String,
    /// The final answer: the text of the model's last answer in this run.
    pub text: String,
    /// Why the run stopped.
    pub stop: StopReason,
    /// The turn it was in the session, from 1.
    pub turn: u32,
    /// Tokens over every model call of the run (the turn).
    pub usage: Usage,
    /// What they cost in US dollars, when the model has a price.
    pub cost_usd: Option<f64>,
    /// Tokens over every turn of the session, this one included.
    pub session_usage: Usage,
    /// What those cost, when a model used had a price.
    pub session_cost_usd: Option<f64>,
    /// Model calls made.
    pub turns: u32,
    /// Tool calls answered (run, or refused for bad arguments).
    pub tool_calls: usize,
    /// Where the time went.
    pub timings: Timings,
}

/// Where a run's time went. What is neither model nor tools is the loop's own overhead.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timings {
    /// The whole run.
    pub total: Duration,
    /// Waiting for model calls (queueing and retries included).
    pub model: Duration,
    /// Waiting for tool batches (queueing included).
    pub tools: Duration,
    /// Context management's own time: sizing each request and building compactions (the
    /// summarizer's model time is in `model`). Part of the loop's overhead.
    pub context: Duration,
    /// Keeping checkpoints before mutating calls and fingerprints after them. Part of
    /// `tools`.
    pub checkpoints: Duration,
}

impl Timings {
    /// The loop's own time: the total less model and tool time.
    pub fn overhead(&self) -> Duration {
        self.total.saturating_sub(self.model + self.tools)
    }
}
