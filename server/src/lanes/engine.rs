//! The scheduler: admission, dispatch by priority, the finish path (retry, dead letter,
//! reply), cancellation, timeouts, external workers and inline batches.
//!
//! All bookkeeping lives in one [`State`] behind one short-held mutex, so a metrics
//! snapshot is consistent and dispatch decisions see every lane at once. Work never runs
//! under the lock: whoever changes the state (a submitter, a finishing task, a timer)
//! collects the jobs that may start and launches them after unlocking.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use futures::FutureExt;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::runtime::Handle;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::dead_letter::{DeadLetters, epoch_ms};
use super::metrics::Metrics;
use super::task::{Output, Reply, TaskSpec, Work};
use super::{
    BatchHandle, DeadLetter, DeadLetterId, EventKind, FinishStatus, Lane, LaneError, LaneEvent,
    LaneMode, LanesConfig, MetricsSnapshot, SessionId, Task, TaskContext, TaskError, TaskHandle,
    TaskId, TaskOutput,
};

const EVENT_CAPACITY: usize = 4096;

const RUNNING: u8 = 0;
const CANCELLED: u8 = 1;
const TIMED_OUT: u8 = 2;
/// Finished by its own result; a late cancel or timeout no longer applies.
const FINISHED: u8 = 3;

/// The lane engine. Cheap to clone; every clone is the same engine.
#[derive(Clone)]
pub struct Lanes {
    engine: Arc<Engine>,
}

struct Engine {
    state: Mutex<State>,
    runtime: Handle,
    pool: RwLock<Arc<rayon::ThreadPool>>,
    events: broadcast::Sender<LaneEvent>,
    next_id: AtomicU64,
    watchdog: mpsc::UnboundedSender<Watch>,
    counters: Mutex<BTreeMap<String, Counter>>,
}

/// What every party that may end a task shares with it, across attempts.
struct Shared {
    id: TaskId,
    session: Option<SessionId>,
    token: CancellationToken,
    /// RUNNING until the task ends; then who ended it. Whoever moves it away from RUNNING
    /// owns the reply, so what the submitter hears always matches the books.
    stop: AtomicU8,
    /// The attempt running now, 0 when none is.
    running_attempt: AtomicU32,
    reply: Mutex<Option<Reply>>,
    /// Replies carry the output as JSON (replays of dead letters).
    reply_json: bool,
}

impl Shared {
    /// Stops the task from outside: the first reason wins, the token is cancelled and the
    /// submitter hears at once, even if blocking work takes a moment to notice.
    fn stop(&self, reason: u8, error: LaneError) {
        if self
            .stop
            .compare_exchange(RUNNING, reason, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.token.cancel();
            self.reply_with(Err(error));
        }
    }

    fn reply_with(&self, result: Result<Output, LaneError>) {
        if let Some(reply) = self.reply.lock().take() {
            let _ = reply.send(result);
        }
    }
}

/// A task in the engine's hands.
struct Job {
    shared: Arc<Shared>,
    spec: TaskSpec,
    attempt: u32,
    submitted_at: SystemTime,
    enqueued_at: Instant,
    /// Whether it holds a slot of the global cap while it runs.
    holds_global: bool,
    /// The lane's per-attempt limit when the attempt started.
    timeout: Option<Duration>,
}

struct Claim {
    job: Job,
    lease_expires: Instant,
    claimed_at: Instant,
}

struct LaneState {
    queue: VecDeque<Job>,
    running: usize,
    /// Waiting out a retry delay.
    backoff: usize,
    per_session: HashMap<SessionId, usize>,
    claims: HashMap<u64, Claim>,
    metrics: Metrics,
}

struct State {
    config: LanesConfig,
    lanes: [LaneState; 4],
    global_running: usize,
    live: HashMap<TaskId, Arc<Shared>>,
    dead: DeadLetters,
    next_lease: u64,
}

/// A task waiting for an external worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingTask {
    /// The task.
    pub task_id: TaskId,
    /// Its lane.
    pub lane: Lane,
    /// Its name (a tool's name).
    pub name: String,
    /// Its session, if any.
    pub session: Option<String>,
    /// What to do (a tool's arguments).
    pub payload: Value,
    /// 1 for the first attempt.
    pub attempt: u32,
}

/// A task an external worker holds until its lease expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimedTask {
    /// Name this lease when completing the task.
    pub lease_id: u64,
    /// The task.
    pub task: PendingTask,
    /// How long the lease lasts from the claim.
    pub lease_ms: u64,
}

/// A named counter of a piece built on the lanes, reported in [`MetricsSnapshot::counters`].
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one.
    pub fn incr(&self) {
        self.add(1);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A timeout to enforce.
struct Watch {
    deadline: Instant,
    after: Duration,
    attempt: u32,
    shared: Weak<Shared>,
}

impl PartialEq for Watch {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline
    }
}
impl Eq for Watch {}
impl PartialOrd for Watch {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Watch {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.deadline.cmp(&other.deadline)
    }
}

enum Outcome {
    Done(Output),
    Retry(TaskError),
    Failed(TaskError),
    Cancelled,
    TimedOut,
}

impl Lanes {
    /// Starts an engine on the current tokio runtime.
    pub fn new(config: LanesConfig) -> Result<Lanes, String> {
        let runtime = Handle::try_current()
            .map_err(|_| "the lane engine needs a tokio runtime".to_string())?;
        Lanes::with_runtime(config, runtime)
    }

    /// Starts an engine whose async work, timers and blocking work run on `runtime`.
    pub fn with_runtime(config: LanesConfig, runtime: Handle) -> Result<Lanes, String> {
        config.validate()?;
        let pool = build_pool(query_threads(&config))?;
        let (watchdog, watch_rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(EVENT_CAPACITY);
        let lane_state = || LaneState {
            queue: VecDeque::new(),
            running: 0,
            backoff: 0,
            per_session: HashMap::new(),
            claims: HashMap::new(),
            metrics: Metrics::new(),
        };
        let state = State {
            dead: DeadLetters::new(config.dead_letter_capacity),
            config,
            lanes: [lane_state(), lane_state(), lane_state(), lane_state()],
            global_running: 0,
            live: HashMap::new(),
            next_lease: 1,
        };
        runtime.spawn(watch_timeouts(watch_rx));
        let engine = Engine {
            state: Mutex::new(state),
            runtime,
            pool: RwLock::new(Arc::new(pool)),
            events,
            next_id: AtomicU64::new(1),
            watchdog,
            counters: Mutex::new(BTreeMap::new()),
        };
        Ok(Lanes {
            engine: Arc::new(engine),
        })
    }

    /// Submits one task. It starts now if its lane has a free slot, else waits its turn.
    pub fn submit<T: TaskOutput>(&self, task: Task<T>) -> TaskHandle<T> {
        let (job, rx) = self.engine.new_job(task.spec, false);
        let id = job.shared.id;
        let mut launches = Vec::new();
        {
            let mut st = self.engine.state.lock();
            st.enqueue(&self.engine, job);
            st.pump(&self.engine, &mut launches);
        }
        self.engine.launch_all(launches);
        TaskHandle::new(id, rx)
    }

    /// Submits many tasks at once; join the results in submission order.
    ///
    /// A batch of at most `inline_threshold` tasks that are all marked
    /// [`cheap`](Task::cheap) runs inline, on this thread, when their lanes have free
    /// slots: no queue hop, no thread hop. Their metrics and events are kept as for any task.
    pub fn submit_batch<T: TaskOutput>(&self, tasks: Vec<Task<T>>) -> BatchHandle<T> {
        let mut handles = Vec::with_capacity(tasks.len());
        let mut launches = Vec::new();
        let mut inline = Vec::new();
        {
            let mut st = self.engine.state.lock();
            let run_inline = tasks.len() <= st.config.inline_threshold
                && tasks.iter().all(|t| {
                    t.spec.cheap && st.config.lane(t.spec.lane).mode == LaneMode::Internal
                });
            for task in tasks {
                let (job, rx) = self.engine.new_job(task.spec, false);
                handles.push(TaskHandle::new(job.shared.id, rx));
                let lane = job.spec.lane;
                if run_inline && st.lanes[lane.priority()].queue.is_empty() && st.has_slot(lane) {
                    st.admit_submitted(&self.engine, &job);
                    st.mark_running(&self.engine, job, &mut inline);
                } else {
                    st.enqueue(&self.engine, job);
                }
            }
            st.pump(&self.engine, &mut launches);
        }
        self.engine.launch_all(launches);
        for job in inline {
            let started = Instant::now();
            let ctx = job.context();
            let result = match &job.spec.work {
                Work::Blocking(work) => run_blocking(work.as_ref(), &ctx),
                // An async task is never cheap enough to block on; start it properly.
                Work::Async(_) => {
                    self.engine.launch(job);
                    continue;
                }
            };
            self.engine.finish(job, result, started.elapsed());
        }
        BatchHandle { handles }
    }

    /// Cancels one task, queued or running. Returns whether the task was still live.
    pub fn cancel(&self, id: TaskId) -> bool {
        self.engine.cancel(id)
    }

    /// Cancels every live task of `session`; returns how many.
    pub fn cancel_session(&self, session: &str) -> usize {
        let ids: Vec<TaskId> = {
            let st = self.engine.state.lock();
            st.live
                .values()
                .filter(|s| s.session.as_deref() == Some(session))
                .map(|s| s.id)
                .collect()
        };
        ids.into_iter().filter(|id| self.engine.cancel(*id)).count()
    }

    /// How many tasks of `session` are live now (queued, running, waiting to retry or claimed).
    pub fn live_in_session(&self, session: &str) -> usize {
        let st = self.engine.state.lock();
        st.live
            .values()
            .filter(|s| s.session.as_deref() == Some(session))
            .count()
    }

    /// Cancels every live task; returns how many.
    pub fn cancel_all(&self) -> usize {
        let ids: Vec<TaskId> = self.engine.state.lock().live.keys().copied().collect();
        ids.into_iter().filter(|id| self.engine.cancel(*id)).count()
    }

    /// A consistent snapshot of every lane's figures.
    pub fn metrics(&self) -> MetricsSnapshot {
        let counters = self
            .engine
            .counters
            .lock()
            .iter()
            .map(|(k, c)| (k.clone(), c.get()))
            .collect();
        let mut st = self.engine.state.lock();
        st.expire_leases(&self.engine);
        let lanes = Lane::ALL
            .iter()
            .map(|&lane| {
                let ls = &st.lanes[lane.priority()];
                let queued = (ls.queue.len() + ls.backoff) as u64;
                let running = ls.running as u64;
                ls.metrics
                    .snapshot(lane, queued, running, st.config.lane(lane).clone())
            })
            .collect();
        MetricsSnapshot {
            lanes,
            global_running: st.global_running as u64,
            global_max_concurrency: st.config.global_max_concurrency,
            dead_letters: st.dead.len() as u64,
            dead_letter_capacity: st.dead.capacity() as u64,
            dead_letters_evicted: st.dead.evicted(),
            counters,
        }
    }

    /// The counter registered under `name`, created at zero the first time.
    pub fn counter(&self, name: &str) -> Counter {
        self.engine
            .counters
            .lock()
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    /// Events from now on. A receiver that falls behind by more than a few thousand events
    /// gets `RecvError::Lagged(n)` and continues with the newest.
    pub fn subscribe(&self) -> broadcast::Receiver<LaneEvent> {
        self.engine.events.subscribe()
    }

    /// The settings in force.
    pub fn config(&self) -> LanesConfig {
        self.engine.state.lock().config.clone()
    }

    /// Puts new settings in force now, exactly as given. Queued work starts at once if the
    /// new limits allow it; running work is not disturbed.
    pub fn reconfigure(&self, config: LanesConfig) -> Result<(), String> {
        config.validate()?;
        let threads = query_threads(&config);
        if self.engine.pool.read().current_num_threads() < threads {
            // Running tasks finish on the old pool; new work goes to the larger one.
            *self.engine.pool.write() = Arc::new(build_pool(threads)?);
        }
        let mut launches = Vec::new();
        {
            let mut st = self.engine.state.lock();
            st.dead.set_capacity(config.dead_letter_capacity);
            st.config = config;
            st.pump(&self.engine, &mut launches);
        }
        self.engine.launch_all(launches);
        Ok(())
    }

    /// The shared rayon pool Query work runs on. Work already on it parallelizes with
    /// `rayon::scope`/`join`, which stay on this pool.
    pub fn pool(&self) -> Arc<rayon::ThreadPool> {
        self.engine.pool.read().clone()
    }

    /// The dead letters kept now, oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.engine.state.lock().dead.list()
    }

    /// Resubmits a dead letter to its lane as a new task (it leaves the queue; if it fails
    /// again it comes back under a new id). The result arrives as JSON.
    pub fn replay(&self, id: DeadLetterId) -> Result<TaskHandle<Value>, String> {
        let spec = {
            let mut st = self.engine.state.lock();
            st.dead
                .take(id)
                .map(|(_, spec)| spec)
                .ok_or_else(|| format!("no dead letter with id {id}"))?
        };
        let (job, rx) = self.engine.new_job(spec, true);
        let task_id = job.shared.id;
        let mut launches = Vec::new();
        {
            let mut st = self.engine.state.lock();
            st.enqueue(&self.engine, job);
            st.pump(&self.engine, &mut launches);
        }
        self.engine.launch_all(launches);
        Ok(TaskHandle::new(task_id, rx))
    }

    /// Empties the dead-letter queue; returns how many were dropped.
    pub fn clear_dead_letters(&self) -> usize {
        self.engine.state.lock().dead.clear()
    }

    /// Tasks waiting for an external worker, in `lane` or in every external lane.
    pub fn pending_tasks(&self, lane: Option<Lane>) -> Vec<PendingTask> {
        let mut st = self.engine.state.lock();
        st.expire_leases(&self.engine);
        Lane::ALL
            .iter()
            .filter(|&&l| {
                lane.is_none_or(|want| want == l) && st.config.lane(l).mode == LaneMode::External
            })
            .flat_map(|&l| st.lanes[l.priority()].queue.iter().map(Job::pending))
            .collect()
    }

    /// Claims up to `max` pending tasks of an external lane, oldest first, within the lane's
    /// `max_concurrency`. A claim not completed within `lease` returns to pending.
    pub fn claim(&self, lane: Lane, max: usize, lease: Duration) -> Vec<ClaimedTask> {
        let now = Instant::now();
        let mut st = self.engine.state.lock();
        st.expire_leases(&self.engine);
        if st.config.lane(lane).mode != LaneMode::External {
            return Vec::new();
        }
        let mut claimed = Vec::new();
        while claimed.len() < max && st.has_slot_external(lane) {
            let Some(job) = st.lanes[lane.priority()].queue.pop_front() else {
                break;
            };
            if job.shared.token.is_cancelled() {
                st.end_unstarted(&self.engine, job, FinishStatus::Cancelled);
                continue;
            }
            // A claim holds a slot of its lane (not of the global cap: the work runs elsewhere).
            st.hold(&self.engine, &job);
            let lease_id = st.next_lease;
            st.next_lease += 1;
            claimed.push(ClaimedTask {
                lease_id,
                task: job.pending(),
                lease_ms: u64::try_from(lease.as_millis()).unwrap_or(u64::MAX),
            });
            let claim = Claim {
                job,
                lease_expires: now + lease,
                claimed_at: now,
            };
            st.lanes[lane.priority()].claims.insert(lease_id, claim);
        }
        claimed
    }

    /// Completes a claimed task with the worker's result, as if the lane had run it: the
    /// submitter receives it, a retryable error is retried, a final one is dead-lettered.
    pub fn complete(&self, lease_id: u64, result: Result<Value, TaskError>) -> Result<(), String> {
        let claim = {
            let mut st = self.engine.state.lock();
            st.expire_leases(&self.engine);
            let found = Lane::ALL
                .iter()
                .find_map(|l| st.lanes[l.priority()].claims.remove(&lease_id));
            // Its slot is released by `finish`, like any running task's.
            found.ok_or_else(|| {
                format!("no live claim with lease {lease_id}: it expired or was completed")
            })?
        };
        let run_time = claim.claimed_at.elapsed();
        let job = claim.job;
        let result =
            result.and_then(|value| (job.spec.codec.decode)(value).map_err(TaskError::fatal));
        self.engine.finish(job, Ok(result), run_time);
        Ok(())
    }
}

impl Engine {
    fn new_job(
        self: &Arc<Self>,
        spec: TaskSpec,
        reply_json: bool,
    ) -> (Job, oneshot::Receiver<Result<Output, LaneError>>) {
        let (tx, rx) = oneshot::channel();
        let token = match &spec.parent {
            Some(parent) => parent.child_token(),
            None => CancellationToken::new(),
        };
        let shared = Shared {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            session: spec.session.clone(),
            token,
            stop: AtomicU8::new(RUNNING),
            running_attempt: AtomicU32::new(0),
            reply: Mutex::new(Some(tx)),
            reply_json,
        };
        let shared = Arc::new(shared);
        if let Some(parent) = &spec.parent {
            // A queued task must leave its queue the moment its parent is cancelled, not when
            // a slot frees; a running one must be reported cancelled at once. The watcher ends
            // with the task, which cancels its own token when it is over.
            let (parent, own, id) = (parent.clone(), shared.token.clone(), shared.id);
            let engine = Arc::downgrade(self);
            self.runtime.spawn(async move {
                tokio::select! {
                    biased;
                    () = parent.cancelled() => {
                        if let Some(engine) = engine.upgrade() {
                            engine.cancel(id);
                        }
                    }
                    () = own.cancelled() => {}
                }
            });
        }
        let job = Job {
            shared,
            spec,
            attempt: 1,
            submitted_at: SystemTime::now(),
            enqueued_at: Instant::now(),
            holds_global: false,
            timeout: None,
        };
        (job, rx)
    }

    fn emit(&self, job: &Job, kind: EventKind) {
        if self.events.receiver_count() > 0 {
            let _ = self.events.send(LaneEvent {
                task_id: job.shared.id,
                lane: job.spec.lane,
                session: job.spec.session.clone(),
                name: job.spec.name.clone(),
                kind,
            });
        }
    }

    fn cancel(self: &Arc<Self>, id: TaskId) -> bool {
        let mut launches = Vec::new();
        let shared = {
            let mut st = self.state.lock();
            let Some(shared) = st.live.get(&id).cloned() else {
                return false;
            };
            let queued = Lane::ALL.iter().find_map(|l| {
                let queue = &mut st.lanes[l.priority()].queue;
                queue
                    .iter()
                    .position(|j| j.shared.id == id)
                    .and_then(|at| queue.remove(at))
            });
            if let Some(job) = queued {
                shared.stop.store(CANCELLED, Ordering::Release);
                shared.token.cancel();
                st.end_unstarted(self, job, FinishStatus::Cancelled);
                st.pump(self, &mut launches);
                drop(st);
                self.launch_all(launches);
                return true;
            }
            let claim = Lane::ALL.iter().find_map(|l| {
                let claims = &mut st.lanes[l.priority()].claims;
                let lease = claims
                    .iter()
                    .find(|(_, c)| c.job.shared.id == id)
                    .map(|(k, _)| *k)?;
                claims.remove(&lease)
            });
            if let Some(claim) = claim {
                shared.stop.store(CANCELLED, Ordering::Release);
                shared.token.cancel();
                st.release(&claim.job);
                st.end_unstarted(self, claim.job, FinishStatus::Cancelled);
                return true;
            }
            shared
        };
        // Running, or waiting out a retry delay: whoever holds the job finishes the books.
        shared.stop(CANCELLED, LaneError::Cancelled);
        true
    }

    fn launch_all(self: &Arc<Self>, launches: Vec<Job>) {
        for job in launches {
            self.launch(job);
        }
    }

    fn launch(self: &Arc<Self>, job: Job) {
        if let Some(after) = job.timeout {
            let _ = self.watchdog.send(Watch {
                deadline: Instant::now() + after,
                after,
                attempt: job.attempt,
                shared: Arc::downgrade(&job.shared),
            });
        }
        let engine = Arc::clone(self);
        let lane = job.spec.lane;
        match job.spec.work.clone() {
            Work::Blocking(work) => {
                let run = move || {
                    let started = Instant::now();
                    let result = run_blocking(work.as_ref(), &job.context());
                    engine.finish(job, result, started.elapsed());
                };
                if lane == Lane::Query {
                    self.pool.read().spawn(run);
                } else {
                    self.runtime.spawn_blocking(run);
                }
            }
            Work::Async(work) => {
                self.runtime.spawn(async move {
                    let started = Instant::now();
                    let ctx = job.context();
                    let token = ctx.token.clone();
                    let fut = AssertUnwindSafe(work(ctx)).catch_unwind();
                    let result = tokio::select! {
                        result = fut => result.map_err(panic_message),
                        () = token.cancelled() => Ok(Err(TaskError::cancelled())),
                    };
                    engine.finish(job, result, started.elapsed());
                });
            }
        }
    }

    /// Books the end of an attempt and sends the result, schedules the retry or keeps the
    /// dead letter; then starts whatever the freed slot allows.
    fn finish(
        self: &Arc<Self>,
        job: Job,
        result: Result<Result<Output, TaskError>, String>,
        run_time: Duration,
    ) {
        job.shared.running_attempt.store(0, Ordering::Release);
        let mut launches = Vec::new();
        let mut retry = None;
        let mut reply = None;
        {
            let mut st = self.state.lock();
            let max_attempts = st.config.lane(job.spec.lane).retry.max_attempts();
            let outcome = match result {
                Ok(Ok(output)) => Outcome::Done(output),
                Ok(Err(_)) if job.shared.token.is_cancelled() => Outcome::Cancelled,
                Ok(Err(e)) if e.retryable && job.attempt < max_attempts => Outcome::Retry(e),
                Ok(Err(e)) => Outcome::Failed(e),
                Err(panic) => Outcome::Failed(TaskError::fatal(format!("task panicked: {panic}"))),
            };
            let claim = |to: u8| {
                job.shared
                    .stop
                    .compare_exchange(RUNNING, to, Ordering::AcqRel, Ordering::Acquire)
            };
            let outcome = match (outcome, job.shared.stop.load(Ordering::Acquire)) {
                (Outcome::Retry(e), RUNNING) => Outcome::Retry(e),
                (Outcome::Cancelled, _) if claim(CANCELLED).is_ok() => Outcome::Cancelled,
                (Outcome::Done(v), _) if claim(FINISHED).is_ok() => Outcome::Done(v),
                (Outcome::Failed(e), _) if claim(FINISHED).is_ok() => Outcome::Failed(e),
                // Stopped from outside first: the submitter has heard that already.
                _ if job.shared.stop.load(Ordering::Acquire) == TIMED_OUT => Outcome::TimedOut,
                _ => Outcome::Cancelled,
            };
            st.release(&job);
            let lane = job.spec.lane;
            st.lanes[lane.priority()].metrics.record_run_time(run_time);
            let finished = |status| EventKind::Finished { status, run_time };
            match outcome {
                Outcome::Done(output) => {
                    st.lanes[lane.priority()].metrics.completed += 1;
                    st.live.remove(&job.shared.id);
                    self.emit(&job, finished(FinishStatus::Completed));
                    let output = if job.shared.reply_json {
                        Box::new((job.spec.codec.encode)(&output)) as Output
                    } else {
                        output
                    };
                    reply = Some(Ok(output));
                }
                Outcome::Cancelled | Outcome::TimedOut => {
                    let m = &mut st.lanes[lane.priority()].metrics;
                    let status = if let Outcome::Cancelled = outcome {
                        m.cancelled += 1;
                        reply = Some(Err(LaneError::Cancelled));
                        FinishStatus::Cancelled
                    } else {
                        m.timed_out += 1;
                        FinishStatus::TimedOut
                    };
                    st.live.remove(&job.shared.id);
                    self.emit(&job, finished(status));
                }
                Outcome::Failed(error) => {
                    let m = &mut st.lanes[lane.priority()].metrics;
                    m.failed += 1;
                    m.dead_lettered += 1;
                    st.live.remove(&job.shared.id);
                    let letter = DeadLetter {
                        id: 0,
                        task_id: job.shared.id,
                        lane,
                        name: job.spec.name.to_string(),
                        session: job.spec.session.as_deref().map(str::to_string),
                        payload: job.spec.payload.clone(),
                        attempts: job.attempt,
                        error: error.message.clone(),
                        submitted_at_ms: epoch_ms(job.submitted_at),
                        failed_at_ms: epoch_ms(SystemTime::now()),
                    };
                    let id = st.dead.push(letter, job.spec.clone());
                    self.emit(&job, finished(FinishStatus::Failed));
                    self.emit(&job, EventKind::DeadLettered { id });
                    reply = Some(Err(LaneError::Failed {
                        error,
                        attempts: job.attempt,
                        dead_letter: Some(id),
                    }));
                }
                Outcome::Retry(error) => {
                    let ls = &mut st.lanes[lane.priority()];
                    ls.metrics.retried += 1;
                    ls.backoff += 1;
                    let delay = st
                        .config
                        .lane(lane)
                        .retry
                        .delay(job.attempt, error.retry_after);
                    self.emit(
                        &job,
                        EventKind::Retrying {
                            attempt: job.attempt,
                            delay,
                            error: error.message,
                        },
                    );
                    retry = Some(delay);
                }
            }
            st.pump(self, &mut launches);
        }
        if let Some(result) = reply {
            job.shared.reply_with(result);
        }
        if retry.is_none() && job.spec.parent.is_some() {
            job.shared.token.cancel();
        }
        if let Some(delay) = retry {
            let engine = Arc::clone(self);
            self.runtime
                .spawn(async move { engine.retry_after(job, delay).await });
        }
        self.launch_all(launches);
    }

    async fn retry_after(self: Arc<Self>, mut job: Job, delay: Duration) {
        let token = job.shared.token.clone();
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = token.cancelled() => {}
        }
        let mut launches = Vec::new();
        {
            let mut st = self.state.lock();
            st.lanes[job.spec.lane.priority()].backoff -= 1;
            if job.shared.token.is_cancelled() {
                st.end_unstarted(&self, job, FinishStatus::Cancelled);
            } else {
                job.attempt += 1;
                job.enqueued_at = Instant::now();
                st.lanes[job.spec.lane.priority()].queue.push_back(job);
                st.pump(&self, &mut launches);
            }
        }
        self.launch_all(launches);
    }
}

impl State {
    /// Counts a new submission and makes it cancellable by id.
    fn admit_submitted(&mut self, engine: &Engine, job: &Job) {
        self.lanes[job.spec.lane.priority()].metrics.submitted += 1;
        self.live.insert(job.shared.id, Arc::clone(&job.shared));
        engine.emit(job, EventKind::Queued);
    }

    fn enqueue(&mut self, engine: &Engine, job: Job) {
        self.admit_submitted(engine, &job);
        self.lanes[job.spec.lane.priority()].queue.push_back(job);
    }

    /// Whether `lane` may start one more task now.
    fn has_slot(&self, lane: Lane) -> bool {
        let config = self.config.lane(lane);
        let ls = &self.lanes[lane.priority()];
        if config.max_concurrency.is_some_and(|max| ls.running >= max) {
            return false;
        }
        if lane == Lane::Control || ls.running < config.min_concurrency {
            return true;
        }
        let Some(global) = self.config.global_max_concurrency else {
            return true;
        };
        let reserved_by_others: usize = Lane::ALL
            .iter()
            .filter(|&&l| l != lane && l != Lane::Control)
            .map(|&l| {
                self.config
                    .lane(l)
                    .min_concurrency
                    .saturating_sub(self.lanes[l.priority()].running)
            })
            .sum();
        self.global_running + reserved_by_others < global
    }

    /// Whether an external worker may claim one more task of `lane` now.
    fn has_slot_external(&self, lane: Lane) -> bool {
        let running = self.lanes[lane.priority()].running;
        self.config
            .lane(lane)
            .max_concurrency
            .is_none_or(|max| running < max)
    }

    fn session_has_room(&self, job: &Job) -> bool {
        match (
            self.config.lane(job.spec.lane).max_per_session,
            &job.spec.session,
        ) {
            (Some(max), Some(session)) => {
                self.lanes[job.spec.lane.priority()]
                    .per_session
                    .get(session)
                    .copied()
                    .unwrap_or(0)
                    < max
            }
            _ => true,
        }
    }

    /// Moves every task that may start now out of the queues, highest priority first.
    fn pump(&mut self, engine: &Engine, launches: &mut Vec<Job>) {
        for lane in Lane::ALL {
            if self.config.lane(lane).mode == LaneMode::External {
                continue;
            }
            let mut at = 0;
            while at < self.lanes[lane.priority()].queue.len() && self.has_slot(lane) {
                let job = &self.lanes[lane.priority()].queue[at];
                if job.shared.token.is_cancelled() {
                    if let Some(job) = self.lanes[lane.priority()].queue.remove(at) {
                        self.end_unstarted(engine, job, FinishStatus::Cancelled);
                    }
                    continue;
                }
                if !self.session_has_room(job) {
                    at += 1;
                    continue;
                }
                if let Some(job) = self.lanes[lane.priority()].queue.remove(at) {
                    self.mark_running(engine, job, launches);
                }
            }
        }
    }

    fn mark_running(&mut self, engine: &Engine, mut job: Job, launches: &mut Vec<Job>) {
        let lane = job.spec.lane;
        if lane != Lane::Control {
            self.global_running += 1;
            job.holds_global = true;
        }
        job.timeout = self.config.lane(lane).timeout();
        self.hold(engine, &job);
        launches.push(job);
    }

    /// Books the start of an attempt: the lane's slot (and the session's), the queue wait.
    fn hold(&mut self, engine: &Engine, job: &Job) {
        let ls = &mut self.lanes[job.spec.lane.priority()];
        ls.running += 1;
        if let Some(session) = &job.spec.session {
            *ls.per_session.entry(session.clone()).or_insert(0) += 1;
        }
        let queue_wait = job.enqueued_at.elapsed();
        ls.metrics.record_queue_wait(queue_wait);
        job.shared
            .running_attempt
            .store(job.attempt, Ordering::Release);
        engine.emit(
            job,
            EventKind::Started {
                attempt: job.attempt,
                queue_wait,
            },
        );
    }

    /// Gives back the slots a finished attempt held.
    fn release(&mut self, job: &Job) {
        let ls = &mut self.lanes[job.spec.lane.priority()];
        ls.running -= 1;
        if let Some(session) = &job.spec.session {
            if let Some(n) = ls.per_session.get_mut(session) {
                *n -= 1;
                if *n == 0 {
                    ls.per_session.remove(session);
                }
            }
        }
        if job.holds_global {
            self.global_running -= 1;
        }
    }

    /// Ends a task that holds no slot (queued, waiting to retry, or claimed): cancelled.
    fn end_unstarted(&mut self, engine: &Engine, job: Job, status: FinishStatus) {
        self.lanes[job.spec.lane.priority()].metrics.cancelled += 1;
        self.live.remove(&job.shared.id);
        engine.emit(
            &job,
            EventKind::Finished {
                status,
                run_time: Duration::ZERO,
            },
        );
        job.shared.reply_with(Err(LaneError::Cancelled));
    }

    /// Returns claims whose lease ran out to the front of their queue.
    fn expire_leases(&mut self, engine: &Engine) {
        let now = Instant::now();
        for lane in Lane::ALL {
            let claims = &mut self.lanes[lane.priority()].claims;
            if claims.is_empty() {
                continue;
            }
            let expired: Vec<u64> = claims
                .iter()
                .filter(|(_, c)| c.lease_expires <= now)
                .map(|(k, _)| *k)
                .collect();
            for lease in expired {
                let Some(claim) = self.lanes[lane.priority()].claims.remove(&lease) else {
                    continue;
                };
                let mut job = claim.job;
                self.release(&job);
                job.shared.running_attempt.store(0, Ordering::Release);
                job.enqueued_at = now;
                engine.emit(&job, EventKind::Queued);
                self.lanes[lane.priority()].queue.push_front(job);
            }
        }
    }
}

impl Job {
    fn context(&self) -> TaskContext {
        TaskContext {
            id: self.shared.id,
            lane: self.spec.lane,
            attempt: self.attempt,
            session: self.spec.session.clone(),
            token: self.shared.token.clone(),
        }
    }

    fn pending(&self) -> PendingTask {
        PendingTask {
            task_id: self.shared.id,
            lane: self.spec.lane,
            name: self.spec.name.to_string(),
            session: self.spec.session.as_deref().map(str::to_string),
            payload: self.spec.payload.clone(),
            attempt: self.attempt,
        }
    }
}

fn run_blocking(
    work: &(dyn Fn(&TaskContext) -> Result<Output, TaskError> + Send + Sync),
    ctx: &TaskContext,
) -> Result<Result<Output, TaskError>, String> {
    std::panic::catch_unwind(AssertUnwindSafe(|| work(ctx))).map_err(panic_message)
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// The pool needs a thread for every Query task that may run at once.
fn query_threads(config: &LanesConfig) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    config.query.max_concurrency.unwrap_or(cores).max(cores)
}

fn build_pool(threads: usize) -> Result<rayon::ThreadPool, String> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("switchyard-query-{i}"))
        .build()
        .map_err(|e| format!("cannot start the query pool of {threads} threads: {e}"))
}

/// Enforces per-attempt timeouts for every lane from one task and one heap.
async fn watch_timeouts(mut rx: mpsc::UnboundedReceiver<Watch>) {
    let mut heap: BinaryHeap<Reverse<Watch>> = BinaryHeap::new();
    let mut prune_at = 1024;
    loop {
        let next = heap.peek().map(|Reverse(w)| w.deadline);
        tokio::select! {
            received = rx.recv() => match received {
                Some(watch) => heap.push(Reverse(watch)),
                None => return,
            },
            () = sleep_until(next), if next.is_some() => {
                let now = Instant::now();
                while heap.peek().is_some_and(|Reverse(w)| w.deadline <= now) {
                    let Some(Reverse(watch)) = heap.pop() else { break };
                    if let Some(shared) = watch.shared.upgrade() {
                        if shared.running_attempt.load(Ordering::Acquire) == watch.attempt {
                            shared.stop(TIMED_OUT, LaneError::TimedOut(watch.after));
                        }
                    }
                }
            }
        }
        // Entries of attempts that finished long before their deadline pile up under a busy
        // lane with a long timeout; drop them now and then.
        if heap.len() >= prune_at {
            heap.retain(|Reverse(w)| {
                w.shared
                    .upgrade()
                    .is_some_and(|s| s.running_attempt.load(Ordering::Acquire) == w.attempt)
            });
            prune_at = (heap.len() * 2).max(1024);
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline.into()).await;
    }
}
