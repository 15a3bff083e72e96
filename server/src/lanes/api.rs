//! [`Lanes`], the engine's public face: submit, cancel, observe, reconfigure, dead letters.
//! The state machine behind it is in `engine.rs`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use tokio::runtime::Handle;
use tokio::sync::{broadcast, mpsc};

use super::dead_letter::DeadLetters;
use super::engine::{
    EVENT_CAPACITY, Engine, LaneState, State, build_pool, first_pool_threads, query_threads,
    run_blocking,
};
use super::metrics::{Counter, Metrics};
use super::task::Work;
use super::timeouts::watch_timeouts;
use super::{
    BatchHandle, DeadLetter, DeadLetterId, EngineError, Lane, LaneEvent, LaneMode, LanesConfig,
    MetricsSnapshot, Task, TaskHandle, TaskId, TaskOutput,
};

/// The lane engine. Cheap to clone; every clone is the same engine.
#[derive(Clone)]
pub struct Lanes {
    pub(super) engine: Arc<Engine>,
}

impl Lanes {
    /// Starts an engine on the current tokio runtime.
    pub fn new(config: LanesConfig) -> Result<Lanes, EngineError> {
        let runtime = Handle::try_current().map_err(|_| EngineError::NoRuntime)?;
        Lanes::with_runtime(config, runtime)
    }

    /// Starts an engine whose async work, timers and blocking work run on `runtime`.
    pub fn with_runtime(config: LanesConfig, runtime: Handle) -> Result<Lanes, EngineError> {
        config.validate()?;
        let pool = build_pool(first_pool_threads(&config))?;
        let pool_wanted = AtomicUsize::new(query_threads(&config));
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
            pool_wanted,
            pool_busy: Arc::new(AtomicUsize::new(0)),
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
    pub fn reconfigure(&self, config: LanesConfig) -> Result<(), EngineError> {
        config.validate()?;
        // The pool grows to this the next time every thread of it is taken.
        self.engine
            .pool_wanted
            .store(query_threads(&config), Ordering::Release);
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

    /// Runs `job` on the Query pool as a Query task runs (work shared by Query tasks, such
    /// as one walk serving a batch of searches), growing the pool first when every thread
    /// of it is taken.
    pub fn spawn_on_pool(&self, job: impl FnOnce() + Send + 'static) {
        self.engine.spawn_on_pool(job);
    }

    /// The dead letters kept now, oldest first.
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.engine.state.lock().dead.list()
    }

    /// Resubmits a dead letter to its lane as a new task (it leaves the queue; if it fails
    /// again it comes back under a new id). The result arrives as JSON; `None` when no dead
    /// letter has this id.
    pub fn replay(&self, id: DeadLetterId) -> Option<TaskHandle<Value>> {
        let spec = {
            let mut st = self.engine.state.lock();
            st.dead.take(id).map(|(_, spec)| spec)?
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
        Some(TaskHandle::new(task_id, rx))
    }

    /// Empties the dead-letter queue; returns how many were dropped.
    pub fn clear_dead_letters(&self) -> usize {
        self.engine.state.lock().dead.clear()
    }
}
