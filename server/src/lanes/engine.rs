//! The scheduling state machine: admission, dispatch by priority, the finish path (retry,
//! dead letter, reply) and cancellation. The public face is [`Lanes`](super::Lanes) in
//! `api.rs`; leases for external workers are in `external.rs`, timeouts in `timeouts.rs`.
//!
//! All bookkeeping lives in one [`State`] behind one short-held mutex, so a metrics
//! snapshot is consistent and dispatch decisions see every lane at once. Work never runs
//! under the lock: whoever changes the state (a submitter, a finishing task, a timer)
//! collects the jobs that may start and launches them after unlocking.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use futures::FutureExt;
use parking_lot::{Mutex, RwLock};
use tokio::runtime::Handle;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::dead_letter::{DeadLetters, epoch_ms};
use super::external::Claim;
use super::metrics::{Counter, Metrics};
use super::task::{Output, Reply, TaskSpec, Work};
use super::timeouts::Watch;
use super::{
    DeadLetter, EngineError, EventKind, FinishStatus, Lane, LaneError, LaneEvent, LaneMode,
    LanesConfig, SessionId, TaskContext, TaskError, TaskId,
};

pub(super) const EVENT_CAPACITY: usize = 4096;

pub(super) const RUNNING: u8 = 0;
pub(super) const CANCELLED: u8 = 1;
pub(super) const TIMED_OUT: u8 = 2;
/// Finished by its own result; a late cancel or timeout no longer applies.
pub(super) const FINISHED: u8 = 3;

pub(super) struct Engine {
    pub(super) state: Mutex<State>,
    pub(super) runtime: Handle,
    /// The Query pool. It starts with a thread per core and grows to
    /// [`Engine::pool_wanted`] threads the first time more jobs than threads run on it
    /// ([`Engine::spawn_on_pool`]): sixteen threads started for a one-shot call took longer
    /// to start (and spun longer on two cores) than the call itself.
    pub(super) pool: RwLock<Arc<rayon::ThreadPool>>,
    /// The threads the pool needs when every Query task the limits allow runs at once.
    pub(super) pool_wanted: AtomicUsize,
    /// Jobs on the pool now (Query tasks and fused searches).
    pub(super) pool_busy: Arc<AtomicUsize>,
    pub(super) events: broadcast::Sender<LaneEvent>,
    pub(super) next_id: AtomicU64,
    pub(super) watchdog: mpsc::UnboundedSender<Watch>,
    pub(super) counters: Mutex<BTreeMap<String, Counter>>,
}

/// What every party that may end a task shares with it, across attempts.
pub(super) struct Shared {
    pub(super) id: TaskId,
    pub(super) session: Option<SessionId>,
    pub(super) token: CancellationToken,
    /// RUNNING until the task ends; then who ended it. Whoever moves it away from RUNNING
    /// owns the reply, so what the submitter hears always matches the books.
    pub(super) stop: AtomicU8,
    /// The attempt running now, 0 when none is.
    pub(super) running_attempt: AtomicU32,
    pub(super) reply: Mutex<Option<Reply>>,
    /// Replies carry the output as JSON (replays of dead letters).
    pub(super) reply_json: bool,
}

impl Shared {
    /// Stops the task from outside: the first reason wins, the token is cancelled and the
    /// submitter hears at once, even if blocking work takes a moment to notice.
    pub(super) fn stop(&self, reason: u8, error: LaneError) {
        if self
            .stop
            .compare_exchange(RUNNING, reason, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.token.cancel();
            self.reply_with(Err(error));
        }
    }

    pub(super) fn reply_with(&self, result: Result<Output, LaneError>) {
        if let Some(reply) = self.reply.lock().take() {
            let _ = reply.send(result);
        }
    }
}

/// A task in the engine's hands.
pub(super) struct Job {
    pub(super) shared: Arc<Shared>,
    pub(super) spec: TaskSpec,
    pub(super) attempt: u32,
    pub(super) submitted_at: SystemTime,
    pub(super) enqueued_at: Instant,
    /// Whether it holds a slot of the global cap while it runs.
    pub(super) holds_global: bool,
    /// The lane's per-attempt limit when the attempt started.
    pub(super) timeout: Option<Duration>,
}

pub(super) struct LaneState {
    pub(super) queue: VecDeque<Job>,
    pub(super) running: usize,
    /// Waiting out a retry delay.
    pub(super) backoff: usize,
    pub(super) per_session: HashMap<SessionId, usize>,
    pub(super) claims: HashMap<u64, Claim>,
    pub(super) metrics: Metrics,
}

pub(super) struct State {
    pub(super) config: LanesConfig,
    pub(super) lanes: [LaneState; 4],
    pub(super) global_running: usize,
    pub(super) live: HashMap<TaskId, Arc<Shared>>,
    pub(super) dead: DeadLetters,
    pub(super) next_lease: u64,
}

pub(super) enum Outcome {
    Done(Output),
    Retry(TaskError),
    Failed(TaskError),
    Cancelled,
    TimedOut,
}

impl Engine {
    pub(super) fn new_job(
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

    pub(super) fn emit(&self, job: &Job, kind: EventKind) {
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

    pub(super) fn cancel(self: &Arc<Self>, id: TaskId) -> bool {
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

    pub(super) fn launch_all(self: &Arc<Self>, launches: Vec<Job>) {
        for job in launches {
            self.launch(job);
        }
    }

    pub(super) fn launch(self: &Arc<Self>, job: Job) {
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
                    self.spawn_on_pool(run);
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
    pub(super) fn finish(
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

    pub(super) async fn retry_after(self: Arc<Self>, mut job: Job, delay: Duration) {
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
    pub(super) fn admit_submitted(&mut self, engine: &Engine, job: &Job) {
        self.lanes[job.spec.lane.priority()].metrics.submitted += 1;
        self.live.insert(job.shared.id, Arc::clone(&job.shared));
        engine.emit(job, EventKind::Queued);
    }

    pub(super) fn enqueue(&mut self, engine: &Engine, job: Job) {
        self.admit_submitted(engine, &job);
        self.lanes[job.spec.lane.priority()].queue.push_back(job);
    }

    /// Whether `lane` may start one more task now.
    pub(super) fn has_slot(&self, lane: Lane) -> bool {
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

    pub(super) fn session_has_room(&self, job: &Job) -> bool {
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
    pub(super) fn pump(&mut self, engine: &Engine, launches: &mut Vec<Job>) {
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

    pub(super) fn mark_running(&mut self, engine: &Engine, mut job: Job, launches: &mut Vec<Job>) {
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
    pub(super) fn hold(&mut self, engine: &Engine, job: &Job) {
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
    pub(super) fn release(&mut self, job: &Job) {
        let ls = &mut self.lanes[job.spec.lane.priority()];
        ls.running -= 1;
        if let Some(session) = &job.spec.session
            && let Some(n) = ls.per_session.get_mut(session)
        {
            *n -= 1;
            if *n == 0 {
                ls.per_session.remove(session);
            }
        }
        if job.holds_global {
            self.global_running -= 1;
        }
    }

    /// Ends a task that holds no slot (queued, waiting to retry, or claimed): cancelled.
    pub(super) fn end_unstarted(&mut self, engine: &Engine, job: Job, status: FinishStatus) {
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
}

impl Job {
    pub(super) fn context(&self) -> TaskContext {
        TaskContext {
            id: self.shared.id,
            lane: self.spec.lane,
            attempt: self.attempt,
            session: self.spec.session.clone(),
            token: self.shared.token.clone(),
        }
    }
}

pub(super) fn run_blocking(
    work: &(dyn Fn(&TaskContext) -> Result<Output, TaskError> + Send + Sync),
    ctx: &TaskContext,
) -> Result<Result<Output, TaskError>, String> {
    std::panic::catch_unwind(AssertUnwindSafe(|| work(ctx))).map_err(panic_message)
}

pub(super) fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".to_string()
    }
}

/// The pool needs a thread for every Query task that may run at once.
pub(super) fn query_threads(config: &LanesConfig) -> usize {
    let cores = super::cores();
    config.query.max_concurrency.unwrap_or(cores).max(cores)
}

/// The threads the pool starts with: one per core, or fewer when the limits allow fewer
/// Query tasks than that.
pub(super) fn first_pool_threads(config: &LanesConfig) -> usize {
    super::cores().min(query_threads(config))
}

impl Engine {
    /// Runs `job` on the Query pool, first growing the pool to the threads the limits may
    /// need when every thread already has a job (a Query task holds its thread until it
    /// ends, so a task beyond the threads would wait for one although its lane let it run).
    /// Jobs already on a smaller pool finish there.
    pub(super) fn spawn_on_pool(&self, job: impl FnOnce() + Send + 'static) {
        struct Busy(Arc<AtomicUsize>);
        impl Drop for Busy {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::AcqRel);
            }
        }
        let busy = self.pool_busy.fetch_add(1, Ordering::AcqRel) + 1;
        let guard = Busy(Arc::clone(&self.pool_busy));
        let mut pool = self.pool.read().clone();
        let wanted = self.pool_wanted.load(Ordering::Acquire);
        if busy > pool.current_num_threads() && pool.current_num_threads() < wanted {
            let mut slot = self.pool.write();
            if slot.current_num_threads() < wanted {
                match build_pool(wanted) {
                    Ok(bigger) => *slot = Arc::new(bigger),
                    // The smaller pool still runs it, later.
                    Err(e) => tracing::warn!("cannot grow the query pool: {e}"),
                }
            }
            pool = Arc::clone(&slot);
        }
        pool.spawn(move || {
            let _busy = guard;
            job();
        });
    }
}

pub(super) fn build_pool(threads: usize) -> Result<rayon::ThreadPool, EngineError> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("switchyard-query-{i}"))
        .build()
        .map_err(|e| EngineError::Pool {
            threads,
            message: e.to_string(),
        })
}
