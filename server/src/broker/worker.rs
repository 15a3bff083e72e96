//! `switchyard worker`: serves the broker's Query tasks of the repositories it has.
//!
//! Per repository it pulls one task at a time per free slot, runs it as a tool call through
//! its own lanes (read-only tools only), renews the lease while it runs, publishes the result
//! to the submitter and only then acks — so a worker that dies mid-task leaves the task to be
//! redelivered, and a result published twice is taken once. SIGTERM drains: no new task is
//! pulled, the ones held are finished.

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
    Buffer, HEARTBEAT, HEARTBEAT_PREFIX, Outcome, REPLY_HEADER, RepoId, ResultMessage, TaskMessage,
    WorkerStatus, cancel_subject, publish_stored,
};
use crate::approvals::Prompter;
use crate::config::Config;
use crate::core::{Core, FrontEnd};
use crate::documents::Documents;
use crate::lanes::{Lane, LaneMode};
use crate::tools::{CallContext, Tool, Toolbox};

/// What a worker serves.
pub struct WorkerOptions {
    /// The broker's URL.
    pub broker: String,
    /// The repositories it has.
    pub roots: Vec<PathBuf>,
    /// Tasks it runs at once.
    pub concurrency: usize,
}

/// Runs a worker until `stop` is cancelled, then drains.
pub async fn run(options: WorkerOptions, stop: CancellationToken) -> Result<(), String> {
    let client = super::connect(&options.broker).await?;
    let js = jetstream::new(client.clone());
    let stream = super::query_stream(&js).await?;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name = format!("worker-{}@{}", std::process::id(), host.trim());
    let slots = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let cancels = Arc::new(Cancels::default());
    let tally = Arc::new(Tally::default());
    let repos: Vec<String> = options
        .roots
        .iter()
        .map(|r| RepoId::of(r).identity)
        .collect();
    let beat = heartbeat(client.clone(), name.clone(), repos, Arc::clone(&tally));
    let beating = tokio::spawn(beat);
    let mut cancelled = client
        .subscribe(format!("{}>", super::CANCEL_PREFIX))
        .await
        .map_err(|e| format!("cannot subscribe to cancellations: {e}"))?;
    let heard = Arc::clone(&cancels);
    tokio::spawn(async move {
        while let Some(message) = cancelled.next().await {
            heard.cancel(message.subject.as_str());
        }
    });
    let mut running = JoinSet::new();
    let mut pullers = JoinSet::new();
    for root in &options.roots {
        let core = open(root)?;
        let repo = RepoId::of(root);
        eprintln!("{name}: serving {} ({})", root.display(), repo.identity);
        let tally = Arc::clone(&tally);
        let (stream, stop, slots, js, name, cancels) = (
            stream.clone(),
            stop.clone(),
            Arc::clone(&slots),
            js.clone(),
            name.clone(),
            Arc::clone(&cancels),
        );
        pullers.spawn(async move {
            // The submitting server creates the consumer with its lease and deliveries.
            let mut consumer = loop {
                match stream
                    .get_consumer::<jetstream::consumer::pull::Config>(&repo.consumer())
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
                    permit = Arc::clone(&slots).acquire_owned() => match permit {
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
                let (core, js, name) = (core.clone(), js.clone(), name.clone());
                let (cancels, tally) = (Arc::clone(&cancels), Arc::clone(&tally));
                tasks.push(tokio::spawn(async move {
                    let held = Held {
                        message,
                        lease,
                        max_deliver,
                    };
                    tally.running.fetch_add(1, Ordering::Relaxed);
                    serve(core, &js, &name, (&cancels, &tally), held).await;
                    tally.running.fetch_sub(1, Ordering::Relaxed);
                    drop(permit);
                }));
            }
            tasks
        });
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
    name: String,
    repos: Vec<String>,
    tally: Arc<Tally>,
) {
    let subject = format!(
        "{HEARTBEAT_PREFIX}{}",
        name.replace(['.', '*', '>', ' '], "_")
    );
    let mut every = tokio::time::interval(HEARTBEAT);
    loop {
        every.tick().await;
        let status = WorkerStatus {
            name: name.clone(),
            lanes: vec![Lane::Query],
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

async fn serve(
    core: Core,
    js: &jetstream::Context,
    name: &str,
    (cancels, tally): (&Cancels, &Tally),
    held: Held,
) {
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
        outcome = run_task(&core, &task, &token) => outcome,
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
        Outcome::AttemptFailed { .. } => Some(
            task.retry
                .delay(u32::try_from(delivery).unwrap_or(u32::MAX), None),
        ),
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
    Outcome::AttemptFailed {
        error: "the lease renewal stopped".to_string(),
    }
}

/// Runs `task` here; `None` when `token` cancelled it first.
async fn run_task(core: &Core, task: &TaskMessage, token: &CancellationToken) -> Option<Outcome> {
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
        Err(e) => {
            return Some(Outcome::AttemptFailed {
                error: e.to_string(),
            });
        }
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
        Err(e) => Outcome::AttemptFailed {
            error: e.to_string(),
        },
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
