//! `switchyard worker`: serves the broker's Query tasks of the repositories it has, and its
//! Generate tasks (model calls) with its own provider key.
//!
//! Per queue (a repository's, or the Generate lane's) it pulls one task at a time per free
//! slot, runs it — a Query task as a tool call through its own lanes (read-only tools
//! only), a model call straight to its provider (the broker's queue is that call's lane:
//! its slots, its nak as the retry, its `max_deliver`) — renews the lease while it runs,
//! publishes the result to the submitter and only then acks, so a worker that dies mid-task
//! leaves the task to be redelivered, and a result published twice is taken once. A model
//! call refused with `Retry-After` is handed back with a nak delayed that long. SIGTERM
//! drains: no new task is pulled, the ones held are finished.

use std::collections::{HashMap, VecDeque};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use parking_lot::Mutex;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{
    Buffer, HEARTBEAT, HEARTBEAT_PREFIX, ModelTask, Outcome, Queue, REPLY_HEADER, RepoId,
    ResultMessage, TaskMessage, WorkerStatus, cancel_subject, lane_stream, publish_stored,
};
use crate::analyze;
use crate::approvals::Prompter;
use crate::config::Config;
use crate::core::{Core, FrontEnd};
use crate::documents::Documents;
use crate::lanes::{Lane, LaneMode};
use crate::llm::{Client, LlmConfig, LlmErrorKind};
use crate::tools::{CallContext, Tool, Toolbox};

/// What a worker serves.
pub struct WorkerOptions {
    /// The broker's URL.
    pub broker: String,
    /// The lanes it serves: Query, Generate or both.
    pub lanes: Vec<Lane>,
    /// The repositories it has (its Query tasks).
    pub roots: Vec<PathBuf>,
    /// Tasks it runs at once.
    pub concurrency: usize,
}

/// What runs the tasks of one queue.
#[derive(Clone)]
enum Runner {
    /// Tool calls over one repository, through the worker's own lanes.
    Query(Core),
    /// Model calls, with this worker's `[llm]` (its provider, base URL and key).
    Generate(Arc<LlmConfig>),
}

/// What every queue's puller shares.
struct Shared {
    js: jetstream::Context,
    name: String,
    slots: Arc<Semaphore>,
    cancels: Cancels,
    tally: Tally,
    stop: CancellationToken,
}

/// Runs a worker until `stop` is cancelled, then drains.
pub async fn run(options: WorkerOptions, stop: CancellationToken) -> Result<(), String> {
    let client = super::connect(&options.broker).await?;
    let js = jetstream::new(client.clone());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name = format!("worker-{}@{}", std::process::id(), host.trim());
    let serves = |lane| options.lanes.contains(&lane);
    let mut queues = Vec::new();
    if serves(Lane::Query) {
        let stream = lane_stream(&js, Lane::Query).await?;
        for root in &options.roots {
            let core = open(root)?;
            let repo = RepoId::of(root);
            eprintln!("{name}: serving {} ({})", root.display(), repo.identity);
            queues.push((Queue::query(repo), stream.clone(), Runner::Query(core)));
        }
    }
    if serves(Lane::Generate) {
        let stream = lane_stream(&js, Lane::Generate).await?;
        let (config, _) = Config::load(None).map_err(|e| e.to_string())?;
        let llm = config.llm;
        match key_env(&llm) {
            None => eprintln!("{name}: serving model calls"),
            Some(env) => eprintln!(
                "{name}: serving model calls without an API key: they will fail until \
                 {env} or llm.api_key is set for this worker"
            ),
        }
        queues.push((Queue::generate(), stream, Runner::Generate(Arc::new(llm))));
    }
    let repos: Vec<String> = queues
        .iter()
        .filter_map(|(q, _, _)| q.repo.as_ref().map(|r| r.identity.clone()))
        .collect();
    let shared = Arc::new(Shared {
        js,
        name: name.clone(),
        slots: Arc::new(Semaphore::new(options.concurrency.max(1))),
        cancels: Cancels::default(),
        tally: Tally::default(),
        stop,
    });
    let lanes = options.lanes.clone();
    let beat = heartbeat(client.clone(), lanes, repos, Arc::clone(&shared));
    let beating = tokio::spawn(beat);
    let mut cancelled = client
        .subscribe(format!("{}>", super::CANCEL_PREFIX))
        .await
        .map_err(|e| format!("cannot subscribe to cancellations: {e}"))?;
    let heard = Arc::clone(&shared);
    tokio::spawn(async move {
        while let Some(message) = cancelled.next().await {
            heard.cancels.cancel(message.subject.as_str());
        }
    });
    let mut running = JoinSet::new();
    let mut pullers = JoinSet::new();
    for (queue, stream, runner) in queues {
        pullers.spawn(pull(Arc::clone(&shared), queue, stream, runner));
    }
    while let Some(tasks) = pullers.join_next().await {
        for task in tasks.unwrap_or_default() {
            running.spawn(task);
        }
    }
    // Draining: what was taken is finished.
    while running.join_next().await.is_some() {}
    beating.abort();
    let _ = client.flush().await;
    eprintln!("{name}: drained");
    Ok(())
}

/// The environment variable this worker's provider key would come from, when it has none.
fn key_env(llm: &LlmConfig) -> Option<&'static str> {
    let env = |name: &str| std::env::var(name).ok();
    let mut probe = llm.clone();
    probe.model = Some("any".to_string());
    match probe.resolve(&env) {
        Ok(resolved) if resolved.api_key.is_some() => None,
        Ok(resolved) => Some(resolved.provider.api_key_env()),
        Err(_) => Some("a provider's API key variable"),
    }
}

/// Pulls `queue`'s tasks while the worker is not stopping, one per free slot; returns the
/// tasks still running.
async fn pull(
    shared: Arc<Shared>,
    queue: Queue,
    stream: jetstream::stream::Stream,
    runner: Runner,
) -> Vec<tokio::task::JoinHandle<()>> {
    let stop = shared.stop.clone();
    // The submitting server creates the consumer with its lease and deliveries.
    let mut consumer = loop {
        match stream
            .get_consumer::<jetstream::consumer::pull::Config>(&queue.consumer())
            .await
        {
            Ok(consumer) => break consumer,
            Err(_) => tokio::select! {
                () = stop.cancelled() => return Vec::new(),
                () = tokio::time::sleep(Duration::from_millis(200)) => {}
            },
        }
    };
    let lease = consumer
        .info()
        .await
        .map(|i| i.config.ack_wait)
        .unwrap_or(Duration::from_secs(30));
    let max_deliver = consumer.cached_info().config.max_deliver;
    let mut tasks = Vec::new();
    loop {
        let permit = tokio::select! {
            () = stop.cancelled() => break,
            permit = Arc::clone(&shared.slots).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let batch = consumer
            .batch()
            .max_messages(1)
            .expires(Duration::from_millis(500))
            .messages()
            .await;
        let message = match batch {
            Ok(mut batch) => tokio::select! {
                () = stop.cancelled() => break,
                message = batch.next() => message,
            },
            Err(e) => Some(Err(e.into())),
        };
        let message = match message {
            Some(Ok(message)) => message,
            None => continue,
            // The broker is away: ask again in a moment, not in a busy loop.
            Some(Err(e)) => {
                tracing::debug!("pulling a task: {e}");
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(Duration::from_millis(200)) => continue,
                }
            }
        };
        let (runner, shared) = (runner.clone(), Arc::clone(&shared));
        tasks.push(tokio::spawn(async move {
            let held = Held {
                message,
                lease,
                max_deliver,
            };
            shared.tally.running.fetch_add(1, Ordering::Relaxed);
            serve(&runner, &shared, held).await;
            shared.tally.running.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        }));
    }
    tasks
}

/// The core over `root` with every lane run here and no broker: a worker never forwards.
fn open(root: &std::path::Path) -> Result<Core, String> {
    let front = FrontEnd {
        applier: None,
        prompter: Prompter::Nobody,
    };
    let (core, _) = Core::open(root, front).map_err(|e| format!("{}: {e}", root.display()))?;
    let mut config: Config = (*core.config()).clone();
    config.broker.url = None;
    for lane in Lane::ALL {
        config.lanes.lane_mut(lane).mode = LaneMode::Internal;
    }
    core.set_config(config).map_err(|e| e.to_string())?;
    Ok(core)
}

/// The cancellations heard: tokens of the tasks running here by their cancel subject, and
/// the latest subjects of tasks not running here (a delivery may come after its cancel).
#[derive(Default)]
struct Cancels {
    running: Mutex<HashMap<String, CancellationToken>>,
    heard: Mutex<VecDeque<String>>,
}

impl Cancels {
    const REMEMBERED: usize = 4096;

    fn cancel(&self, subject: &str) {
        if let Some(token) = self.running.lock().get(subject) {
            token.cancel();
            return;
        }
        let mut heard = self.heard.lock();
        if heard.len() == Self::REMEMBERED {
            heard.pop_front();
        }
        heard.push_back(subject.to_string());
    }

    /// The token of a task starting now; already cancelled if its cancel came first.
    fn start(&self, subject: &str) -> CancellationToken {
        let token = CancellationToken::new();
        if self.heard.lock().iter().any(|s| s == subject) {
            token.cancel();
        }
        self.running
            .lock()
            .insert(subject.to_string(), token.clone());
        token
    }

    fn end(&self, subject: &str) {
        self.running.lock().remove(subject);
    }
}

/// What a worker has done since it started: its own metrics, sent with every heartbeat.
#[derive(Default)]
struct Tally {
    running: AtomicU64,
    finished: AtomicU64,
    attempts_failed: AtomicU64,
    cancelled: AtomicU64,
}

/// Publishes the worker's status every [`HEARTBEAT`] on its own subject: submitting servers
/// show the workers of their repository with it.
async fn heartbeat(
    client: async_nats::Client,
    lanes: Vec<Lane>,
    repos: Vec<String>,
    shared: Arc<Shared>,
) {
    let (name, tally) = (&shared.name, &shared.tally);
    let subject = format!(
        "{HEARTBEAT_PREFIX}{}",
        name.replace(['.', '*', '>', ' '], "_")
    );
    let mut every = tokio::time::interval(HEARTBEAT);
    loop {
        every.tick().await;
        let status = WorkerStatus {
            name: name.clone(),
            lanes: lanes.clone(),
            repos: repos.clone(),
            running: tally.running.load(Ordering::Relaxed),
            finished: tally.finished.load(Ordering::Relaxed),
            attempts_failed: tally.attempts_failed.load(Ordering::Relaxed),
            cancelled: tally.cancelled.load(Ordering::Relaxed),
        };
        if let Ok(body) = serde_json::to_vec(&status) {
            let _ = client.publish(subject.clone(), body.into()).await;
        }
    }
}

/// A delivery a worker holds, and the consumer's terms for it.
struct Held {
    message: jetstream::Message,
    lease: Duration,
    max_deliver: i64,
}

async fn serve(runner: &Runner, shared: &Shared, held: Held) {
    let (js, name) = (&shared.js, shared.name.as_str());
    let (cancels, tally) = (&shared.cancels, &shared.tally);
    let Held {
        message,
        lease,
        max_deliver,
    } = held;
    let delivery = message.info().map(|i| i.delivered).unwrap_or(1);
    let delivery = u64::try_from(delivery).unwrap_or(1);
    let Some(reply) = message
        .headers
        .as_ref()
        .and_then(|h| h.get(REPLY_HEADER))
        .map(|v| v.as_str().to_string())
    else {
        let _ = message.ack_with(AckKind::Term).await;
        return;
    };
    let task: TaskMessage = match serde_json::from_slice(&message.payload) {
        Ok(task) => task,
        Err(e) => {
            let _ = message.ack_with(AckKind::Term).await;
            eprintln!("{name}: dropped a task it cannot read: {e}");
            return;
        }
    };
    eprintln!(
        "{name}: running task {} (delivery {delivery})",
        task.task_id
    );
    let renew = async {
        let mut every = tokio::time::interval(lease / 3);
        every.tick().await;
        loop {
            every.tick().await;
            let _ = message.ack_with(AckKind::Progress).await;
        }
    };
    let cancel = cancel_subject(&reply, task.task_id);
    let token = cancels.start(&cancel);
    let outcome = tokio::select! {
        outcome = run_task(runner, &task, &token) => outcome,
        () = renew => Some(unreachable_renew()),
    };
    cancels.end(&cancel);
    let Some(outcome) = outcome else {
        // The submitter has finished with it: never again, to anyone.
        let _ = message.ack_with(AckKind::Term).await;
        tally.cancelled.fetch_add(1, Ordering::Relaxed);
        eprintln!(
            "{name}: cancelled task {} (delivery {delivery})",
            task.task_id
        );
        return;
    };
    let nak = match &outcome {
        Outcome::AttemptFailed { retry_after_ms, .. } => Some(task.retry.delay(
            u32::try_from(delivery).unwrap_or(u32::MAX),
            retry_after_ms.map(Duration::from_millis),
        )),
        _ => None,
    };
    let result = ResultMessage {
        task_id: task.task_id,
        delivery,
        worker: name.to_string(),
        outcome,
    };
    let id = match &result.outcome {
        // One final result per task reaches the results stream, whichever delivery sent it.
        Outcome::Done { .. } | Outcome::Failed { .. } => format!("{reply}.{}", task.task_id),
        Outcome::AttemptFailed { .. } => format!("{reply}.{}.{delivery}", task.task_id),
    };
    let stored = match serde_json::to_vec(&result) {
        Ok(body) => publish_stored(js, reply, HeaderMap::new(), &id, body).await,
        Err(e) => Err(format!("cannot encode the result: {e}")),
    };
    if let Err(e) = stored {
        // Not acked: the task is delivered again after its lease, to whoever can answer.
        eprintln!("{name}: could not return task {}: {e}", task.task_id);
        return;
    }
    let counter = match nak {
        Some(_) => &tally.attempts_failed,
        None => &tally.finished,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    match nak {
        // The last delivery's failure: JetStream's advisory tells the submitter.
        Some(delay) if i64::try_from(delivery).unwrap_or(i64::MAX) < max_deliver => {
            let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
        }
        Some(_) => {
            let _ = message.ack_with(AckKind::Nak(None)).await;
        }
        None => {
            let _ = message.double_ack().await;
        }
    }
    eprintln!(
        "{name}: finished task {} (delivery {delivery})",
        task.task_id
    );
}

fn unreachable_renew() -> Outcome {
    attempt_failed("the lease renewal stopped".to_string())
}

fn attempt_failed(error: String) -> Outcome {
    Outcome::AttemptFailed {
        error,
        retry_after_ms: None,
    }
}

/// Runs `task` here; `None` when `token` cancelled it first.
async fn run_task(
    runner: &Runner,
    task: &TaskMessage,
    token: &CancellationToken,
) -> Option<Outcome> {
    match runner {
        Runner::Query(core) => run_tool(core, task, token).await,
        Runner::Generate(llm) => run_model(llm, task, token).await,
    }
}

/// Makes the model call of `task` with this worker's provider, base URL and key; `None`
/// when `token` cancelled it first.
async fn run_model(
    llm: &LlmConfig,
    task: &TaskMessage,
    token: &CancellationToken,
) -> Option<Outcome> {
    let call: ModelTask = match serde_json::from_value(task.payload.clone()) {
        Ok(call) => call,
        Err(e) => {
            return Some(Outcome::Failed {
                error: format!("a model call this worker cannot read: {e}"),
            });
        }
    };
    let mut llm = llm.clone();
    llm.model = Some(call.model);
    let env = |name: &str| std::env::var(name).ok();
    let resolved = match llm.resolve(&env) {
        Ok(resolved) => resolved,
        Err(e) => return Some(Outcome::Failed { error: e.message }),
    };
    if resolved.api_key.is_none() {
        let error = format!(
            "the worker has no API key for {}: set {} or llm.api_key where the worker runs \
             (the requesting server sends none)",
            resolved.provider.as_str(),
            resolved.provider.api_key_env()
        );
        return Some(Outcome::Failed { error });
    }
    let deadline = std::time::Instant::now() + resolved.request_budget;
    let client = match Client::new(resolved) {
        Ok(client) => client,
        Err(e) => return Some(Outcome::Failed { error: e.message }),
    };
    let answer = client
        .stream_until(&call.request, deadline, token, |_| {})
        .await;
    Some(match answer {
        Ok(answer) => match serde_json::to_value(answer) {
            Ok(value) => Outcome::Done { value },
            Err(e) => Outcome::Failed {
                error: format!("cannot encode the answer: {e}"),
            },
        },
        Err(e) if e.kind == LlmErrorKind::Cancelled => return None,
        Err(e) if e.retryable => Outcome::AttemptFailed {
            error: e.message,
            retry_after_ms: e
                .retry_after
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        },
        Err(e) => Outcome::Failed { error: e.message },
    })
}

/// Runs the tool call of `task` over `core`'s repository; `None` when `token` cancelled it
/// first.
async fn run_tool(core: &Core, task: &TaskMessage, token: &CancellationToken) -> Option<Outcome> {
    if task.name == analyze::TASK {
        return run_analysis(core, task, token).await;
    }
    match Tool::from_name(&task.name) {
        Some(tool) if tool.lane() == Lane::Query => {}
        _ => {
            return Some(Outcome::Failed {
                error: format!("a worker runs read-only tools only, not `{}`", task.name),
            });
        }
    }
    let toolbox = match core.toolbox() {
        Ok(toolbox) if task.buffers.is_empty() => toolbox,
        Ok(toolbox) => match with_buffers(core, &toolbox, &task.buffers) {
            Ok(toolbox) => toolbox,
            Err(error) => return Some(Outcome::Failed { error }),
        },
        Err(e) => return Some(attempt_failed(e.to_string())),
    };
    let call = match toolbox.task(&task.name, task.payload.clone(), &CallContext::default()) {
        Ok(call) => call,
        Err(e) => return Some(Outcome::Failed { error: e.message }),
    };
    let handle = core.lanes().submit(call);
    let id = handle.id();
    let result = tokio::select! {
        result = handle => result,
        () = token.cancelled() => {
            core.lanes().cancel(id);
            return None;
        }
    };
    Some(match result {
        Ok(result) => match serde_json::to_value(result) {
            Ok(value) => Outcome::Done { value },
            Err(e) => Outcome::Failed {
                error: format!("cannot encode the result: {e}"),
            },
        },
        Err(e) => attempt_failed(e.to_string()),
    })
}

/// Runs the whole analysis of `task` over `core`'s repository, fanned out on this worker's
/// own lanes; `None` when `token` cancelled it first.
async fn run_analysis(
    core: &Core,
    task: &TaskMessage,
    token: &CancellationToken,
) -> Option<Outcome> {
    let options = match analyze::task_options(&task.payload) {
        Ok(options) => options,
        Err(error) => return Some(Outcome::Failed { error }),
    };
    let toolbox = match core.toolbox() {
        Ok(toolbox) => toolbox,
        Err(e) => return Some(attempt_failed(e.to_string())),
    };
    let session = format!("analyze-{}", task.task_id);
    let analysis = analyze::run(&toolbox, &options, session.into(), token.clone()).await;
    if token.is_cancelled() {
        return None;
    }
    Some(match analysis.map(serde_json::to_value) {
        Ok(Ok(value)) => Outcome::Done { value },
        Ok(Err(e)) => Outcome::Failed {
            error: format!("cannot encode the analysis: {e}"),
        },
        Err(error) => Outcome::Failed { error },
    })
}

/// A toolbox over the same repository that sees the task's unsaved buffers before the disk.
fn with_buffers(core: &Core, toolbox: &Toolbox, buffers: &[Buffer]) -> Result<Toolbox, String> {
    let workspace = toolbox.workspace().clone();
    let documents = Documents::new();
    for buffer in buffers {
        let path = Path::new(&buffer.path);
        if !path.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(format!(
                "a buffer outside the repository cannot travel with a task: {}",
                buffer.path
            ));
        }
        documents.open(workspace.primary().join(path), 0, buffer.text.as_str());
    }
    let config = (*core.config()).clone();
    Ok(Toolbox::new(
        workspace,
        core.lanes().clone(),
        documents,
        config,
    ))
}
