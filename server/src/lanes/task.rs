//! Tasks as submitters see them: the work, its context while it runs, its errors, and the
//! handles that deliver its result.

use std::any::Any;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use super::{DeadLetterId, Lane};

/// A task's number, unique within one engine.
pub type TaskId = u64;

/// The session a task belongs to (an agent conversation, an analysis run); cancelling a
/// session cancels every task of it.
pub type SessionId = Arc<str>;

/// What a task may return: plain data that can cross to an external worker and back.
pub trait TaskOutput: Serialize + DeserializeOwned + Send + 'static {}
impl<T: Serialize + DeserializeOwned + Send + 'static> TaskOutput for T {}

/// A task's result with its type erased, as the engine carries it.
pub(crate) type Output = Box<dyn Any + Send>;
type BlockingFn = dyn Fn(&TaskContext) -> Result<Output, TaskError> + Send + Sync;
type AsyncFn = dyn Fn(TaskContext) -> BoxFuture<'static, Result<Output, TaskError>> + Send + Sync;

/// The work itself; `Fn`, not `FnOnce`, so it can be retried and replayed.
#[derive(Clone)]
pub(crate) enum Work {
    /// File or CPU work that blocks its thread.
    Blocking(Arc<BlockingFn>),
    /// A future, polled on the tokio runtime.
    Async(Arc<AsyncFn>),
}

/// Converts a task's erased output from and to JSON, for external workers and replays.
#[derive(Clone, Copy)]
pub(crate) struct Codec {
    pub decode: fn(Value) -> Result<Output, String>,
    pub encode: fn(&Output) -> Value,
}

impl Codec {
    fn of<T: TaskOutput>() -> Codec {
        fn decode<T: TaskOutput>(value: Value) -> Result<Output, String> {
            serde_json::from_value::<T>(value)
                .map(|v| Box::new(v) as Output)
                .map_err(|e| format!("the result does not fit the task: {e}"))
        }
        fn encode<T: TaskOutput>(output: &Output) -> Value {
            output
                .downcast_ref::<T>()
                .and_then(|v| serde_json::to_value(v).ok())
                .unwrap_or(Value::Null)
        }
        Codec {
            decode: decode::<T>,
            encode: encode::<T>,
        }
    }
}

/// Everything the engine keeps of a task, its type erased; cloned for retries and replays.
#[derive(Clone)]
pub(crate) struct TaskSpec {
    pub lane: Lane,
    pub name: Arc<str>,
    pub session: Option<SessionId>,
    pub payload: Value,
    pub work: Work,
    pub codec: Codec,
    pub cheap: bool,
    pub parent: Option<CancellationToken>,
}

/// A unit of work for one lane, built with [`Task::blocking`] or [`Task::future`].
pub struct Task<T> {
    pub(crate) spec: TaskSpec,
    _output: PhantomData<fn() -> T>,
}

impl<T: TaskOutput> Task<T> {
    /// Blocking work: file and CPU work. Query runs it on the shared rayon pool, the other
    /// lanes on tokio's blocking pool. Long work should call [`TaskContext::checkpoint`]
    /// between files or chunks so cancellation and timeouts stop it promptly.
    pub fn blocking<F>(lane: Lane, name: impl Into<Arc<str>>, work: F) -> Task<T>
    where
        F: Fn(&TaskContext) -> Result<T, TaskError> + Send + Sync + 'static,
    {
        let work = move |ctx: &TaskContext| work(ctx).map(|v| Box::new(v) as Output);
        Task::new(lane, name.into(), Work::Blocking(Arc::new(work)))
    }

    /// Async work, polled on the tokio runtime; dropped at once when cancelled or timed out.
    pub fn future<F, Fut>(lane: Lane, name: impl Into<Arc<str>>, work: F) -> Task<T>
    where
        F: Fn(TaskContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, TaskError>> + Send + 'static,
    {
        let work = move |ctx: TaskContext| -> BoxFuture<'static, Result<Output, TaskError>> {
            let fut = work(ctx);
            Box::pin(async move { fut.await.map(|v| Box::new(v) as Output) })
        };
        Task::new(lane, name.into(), Work::Async(Arc::new(work)))
    }

    fn new(lane: Lane, name: Arc<str>, work: Work) -> Task<T> {
        let spec = TaskSpec {
            lane,
            name,
            session: None,
            payload: Value::Null,
            work,
            codec: Codec::of::<T>(),
            cheap: false,
            parent: None,
        };
        Task {
            spec,
            _output: PhantomData,
        }
    }

    /// Puts the task in a session.
    pub fn session(mut self, session: impl Into<SessionId>) -> Task<T> {
        self.spec.session = Some(session.into());
        self
    }

    /// What the task is about (a tool's arguments): shown in dead letters and handed to
    /// external workers.
    pub fn payload(mut self, payload: Value) -> Task<T> {
        self.spec.payload = payload;
        self
    }

    /// Marks the task as small CPU-only work that may run inline in a small batch.
    pub fn cheap(mut self) -> Task<T> {
        self.spec.cheap = true;
        self
    }

    /// Cancels the task when `token` is cancelled (a request's token, say), besides the
    /// engine's own ways of cancelling it.
    pub fn cancelled_by(mut self, token: &CancellationToken) -> Task<T> {
        self.spec.parent = Some(token.clone());
        self
    }

    /// The lane the task runs in.
    pub fn lane(&self) -> Lane {
        self.spec.lane
    }
}

/// What a running task knows about itself.
#[derive(Clone, Debug)]
pub struct TaskContext {
    pub(crate) id: TaskId,
    pub(crate) lane: Lane,
    pub(crate) attempt: u32,
    pub(crate) session: Option<SessionId>,
    pub(crate) token: CancellationToken,
}

impl TaskContext {
    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// The lane it runs in.
    pub fn lane(&self) -> Lane {
        self.lane
    }

    /// 1 for the first attempt, 2 for the first retry, and so on.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Its session, if any.
    pub fn session(&self) -> Option<&SessionId> {
        self.session.as_ref()
    }

    /// Cancelled when the task is cancelled or times out.
    pub fn token(&self) -> &CancellationToken {
        &self.token
    }

    /// Whether the task should stop now.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// `Err` once the task should stop; call it between files or chunks of blocking work.
    pub fn checkpoint(&self) -> Result<(), TaskError> {
        if self.token.is_cancelled() {
            Err(TaskError::cancelled())
        } else {
            Ok(())
        }
    }
}

/// A task's own failure. The task, not the engine, decides whether it is worth retrying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskError {
    /// What went wrong, lowercase, naming the input.
    pub message: String,
    /// Whether another attempt may succeed (a 429, a cut stream); a bad argument is not.
    pub retryable: bool,
    /// The least time to wait before retrying (an HTTP `Retry-After`).
    pub retry_after: Option<Duration>,
}

impl TaskError {
    /// A failure no retry can fix.
    pub fn fatal(message: impl Into<String>) -> TaskError {
        TaskError {
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }

    /// A failure another attempt may not meet.
    pub fn retryable(message: impl Into<String>) -> TaskError {
        TaskError {
            message: message.into(),
            retryable: true,
            retry_after: None,
        }
    }

    /// Asks the engine to wait at least `wait` before the next attempt.
    pub fn with_retry_after(mut self, wait: Duration) -> TaskError {
        self.retry_after = Some(wait);
        self
    }

    /// What blocking work returns when it notices it was cancelled.
    pub fn cancelled() -> TaskError {
        TaskError::fatal("cancelled")
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TaskError {}

/// Why a task did not produce a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LaneError {
    /// The task failed and will not be tried again; it is in the dead-letter queue.
    #[error("{error} (after {attempts} attempt{})", if *attempts == 1 { "" } else { "s" })]
    Failed {
        /// The last attempt's error.
        error: TaskError,
        /// How many attempts were made.
        attempts: u32,
        /// Where it was kept, for listing and replay.
        dead_letter: Option<DeadLetterId>,
    },
    /// The task was cancelled before it finished.
    #[error("cancelled")]
    Cancelled,
    /// An attempt ran longer than its lane's timeout.
    #[error("timed out after {}", humanize(*.0))]
    TimedOut(Duration),
    /// The engine could not take or finish the task.
    #[error("{0}")]
    Rejected(String),
}

/// Why the engine cannot start, take new settings, or take a worker's result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// Settings that cannot be put in force; the message names the key.
    #[error("{0}")]
    InvalidConfig(String),
    /// The engine was started outside a tokio runtime.
    #[error("the lane engine needs a tokio runtime")]
    NoRuntime,
    /// The query pool's threads could not be started.
    #[error("cannot start the query pool of {threads} threads: {message}")]
    Pool {
        /// How many were asked for.
        threads: usize,
        /// What the system said.
        message: String,
    },
    /// A worker completed a task whose lease is not live.
    #[error("no live claim with lease {0}: it expired or was completed")]
    UnknownLease(u64),
}

fn humanize(d: Duration) -> String {
    if d.as_millis() < 1_000 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// A reply on its way to the submitter.
pub(crate) type Reply = oneshot::Sender<Result<Output, LaneError>>;

/// Delivers one task's result; await it, or [`join_blocking`](TaskHandle::join_blocking)
/// outside the runtime. Dropping it does not cancel the task.
pub struct TaskHandle<T> {
    id: TaskId,
    rx: oneshot::Receiver<Result<Output, LaneError>>,
    _output: PhantomData<fn() -> T>,
}

impl<T: 'static> TaskHandle<T> {
    pub(crate) fn new(
        id: TaskId,
        rx: oneshot::Receiver<Result<Output, LaneError>>,
    ) -> TaskHandle<T> {
        TaskHandle {
            id,
            rx,
            _output: PhantomData,
        }
    }

    /// The task's id, for cancelling it.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Waits for the result on this thread. Must not be called from an async context.
    pub fn join_blocking(mut self) -> Result<T, LaneError> {
        let received = match self.rx.try_recv() {
            Ok(result) => Ok(result),
            Err(oneshot::error::TryRecvError::Empty) => self.rx.blocking_recv().map_err(|_| ()),
            Err(oneshot::error::TryRecvError::Closed) => Err(()),
        };
        typed(received.map_err(|()| lost()))
    }
}

impl<T: 'static> Future for TaskHandle<T> {
    type Output = Result<T, LaneError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|received| typed(received.map_err(|_| lost())))
    }
}

fn lost() -> LaneError {
    LaneError::Rejected("the lane engine dropped the task without a result".into())
}

fn typed<T: 'static>(
    received: Result<Result<Output, LaneError>, LaneError>,
) -> Result<T, LaneError> {
    let output = received??;
    output
        .downcast::<T>()
        .map(|v| *v)
        .map_err(|_| LaneError::Rejected("the task's result is not of the awaited type".into()))
}

/// The handles of a batch, joined in submission order.
pub struct BatchHandle<T> {
    pub(crate) handles: Vec<TaskHandle<T>>,
}

impl<T: 'static> BatchHandle<T> {
    /// The tasks' ids, in submission order.
    pub fn ids(&self) -> Vec<TaskId> {
        self.handles.iter().map(TaskHandle::id).collect()
    }

    /// Every result, in submission order, whatever order they finished in.
    pub async fn join(self) -> Vec<Result<T, LaneError>> {
        let mut results = Vec::with_capacity(self.handles.len());
        for handle in self.handles {
            results.push(handle.await);
        }
        results
    }

    /// [`join`](BatchHandle::join) on this thread; must not be called from an async context.
    pub fn join_blocking(self) -> Vec<Result<T, LaneError>> {
        self.handles
            .into_iter()
            .map(TaskHandle::join_blocking)
            .collect()
    }
}
