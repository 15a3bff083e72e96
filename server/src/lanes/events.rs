//! What subscribers hear from the engine. Sent on a broadcast channel: a slow subscriber
//! lags and is told how many events it missed; it never holds up dispatch.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use super::{DeadLetterId, Lane, SessionId, TaskId};

/// One thing that happened to one task.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LaneEvent {
    /// The task.
    pub task_id: TaskId,
    /// Its lane.
    pub lane: Lane,
    /// Its session, if any.
    pub session: Option<SessionId>,
    /// Its name (a tool's name, say).
    pub name: Arc<str>,
    /// What happened.
    pub kind: EventKind,
}

/// What happened to a task.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum EventKind {
    /// It was submitted and waits for a slot (or, in an external lane, for a worker).
    Queued,
    /// An attempt started (or was claimed by an external worker).
    Started {
        /// 1 for the first attempt.
        attempt: u32,
        /// How long it waited for its slot.
        #[serde(with = "micros")]
        queue_wait: Duration,
    },
    /// An attempt failed with a retryable error; the next starts after `delay`.
    Retrying {
        /// The attempt that failed.
        attempt: u32,
        /// The wait before the next attempt.
        #[serde(with = "micros")]
        delay: Duration,
        /// Why it failed.
        error: String,
    },
    /// The task is over.
    Finished {
        /// How it ended.
        status: FinishStatus,
        /// How long its last attempt ran.
        #[serde(with = "micros")]
        run_time: Duration,
    },
    /// It failed for good and was kept in the dead-letter queue.
    DeadLettered {
        /// Where it was kept.
        id: DeadLetterId,
    },
}

/// How a task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FinishStatus {
    /// It produced a result.
    Completed,
    /// It failed and will not be retried.
    Failed,
    /// It was cancelled.
    Cancelled,
    /// An attempt ran past its lane's timeout.
    TimedOut,
}

mod micros {
    use std::time::Duration;

    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
    }
}
