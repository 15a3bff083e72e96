//! The lane engine: a priority task queue every tool call and model call runs through.
//!
//! Four lanes with fixed priorities — Control (P0), Query (P1), Execute (P2), Generate (P3) —
//! each with reserved and maximum concurrency, a per-attempt timeout, a retry policy and a
//! mode (run here, or hand out to an external worker). A global cap is shared by Query,
//! Execute and Generate; Control is never held back by it. When a slot frees, the
//! highest-priority lane with pending work and spare capacity goes first, FIFO within a lane.
//!
//! Work is one of two shapes: blocking work (file and CPU work; Query runs it on the one
//! shared rayon pool, other lanes on tokio's blocking pool) or an async future (model calls,
//! editor round trips). Either way a task carries a cancellation token, is retried when *it*
//! says its failure is retryable, ends up in the bounded dead-letter queue when it cannot
//! succeed, and is counted in the per-lane metrics and reported to event subscribers.
//!
//! There is no dispatcher thread: submitting and finishing a task each take one short lock
//! and start whatever may start, so an idle engine costs nothing and a busy one adds a few
//! microseconds per task (`benches/lanes.rs`).

mod api;
mod config;
mod dead_letter;
mod engine;
mod events;
mod external;
mod metrics;
mod task;
mod timeouts;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use api::Lanes;
pub use config::{LaneConfig, LaneMode, LanesConfig, RetryPolicy};
pub use dead_letter::{DeadLetter, DeadLetterId};
pub use events::{EventKind, FinishStatus, LaneEvent};
pub use external::{ClaimedTask, PendingTask};
pub use metrics::Counter;
pub use metrics::{LaneMetrics, MetricsSnapshot, Percentiles};
pub use task::{
    BatchHandle, EngineError, LaneError, SessionId, Task, TaskContext, TaskError, TaskHandle,
    TaskId, TaskOutput,
};

/// The cores this process may use, asked of the system once: the answer reads cgroup
/// files each time it is asked, and a one-shot `switchyard tool` asked it a dozen times.
pub fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(2, usize::from))
}

/// A lane: a class of work with its own priority and limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lane {
    /// P0: work that must never wait behind other lanes; it is not held by the global cap.
    /// Cancel, status and stats need no lane at all: they are answered straight from the
    /// engine's state under one short lock, so they stay instant however busy the lanes are.
    Control,
    /// P1: read, glob, grep, ls, analysis tasks — blocking work on the shared rayon pool.
    Query,
    /// P2: write, edit, delete, move, copy, bash.
    Execute,
    /// P3: model calls.
    Generate,
}

impl Lane {
    /// Every lane, highest priority first.
    pub const ALL: [Lane; 4] = [Lane::Control, Lane::Query, Lane::Execute, Lane::Generate];

    /// The lane's name as used in configuration keys and reports.
    pub fn name(self) -> &'static str {
        match self {
            Lane::Control => "control",
            Lane::Query => "query",
            Lane::Execute => "execute",
            Lane::Generate => "generate",
        }
    }

    /// 0 for Control (highest) to 3 for Generate.
    pub fn priority(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Lane {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests;
