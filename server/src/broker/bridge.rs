//! The submitting side: takes the tasks of the Query lane (`mode = "external"`) from the
//! engine, publishes them to the broker, and completes them with the first result a worker
//! returns — or, when JetStream gives up after `max_deliver`, with a dead letter.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::connection::State;
use parking_lot::Mutex;

use async_nats::HeaderMap;
use async_nats::jetstream;
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{
    Buffer, ExternalLane, HEARTBEAT, HEARTBEAT_PREFIX, Outcome, REPLY_HEADER, RepoId,
    ResultMessage, TaskMessage, WorkerStatus, cancel_subject, publish_stored, query_consumer,
    query_stream, results_consumer, results_stream,
};
use crate::config::BrokerConfig;
use crate::documents::Documents;
use crate::lanes::{
    ClaimedTask, EventKind, FinishStatus, Lane, LaneEvent, LaneMode, Lanes, TaskError, TaskId,
};

/// How long the engine's own lease of a task handed to the broker lasts: the broker's lease
/// is the one that counts, so the engine's never runs out first.
const ENGINE_LEASE: Duration = Duration::from_secs(365 * 24 * 3600);
/// How often the bridge looks for pending tasks when no event said so.
const SWEEP: Duration = Duration::from_millis(200);

/// A running bridge; dropping it stops it.
pub struct Bridge {
    stop: CancellationToken,
    status: Arc<Mutex<ExternalLane>>,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Bridge {
    /// Starts the bridge of the workspace rooted at `root` on the current runtime.
    pub fn start(
        lanes: Lanes,
        config: BrokerConfig,
        root: PathBuf,
        documents: Documents,
    ) -> Option<Bridge> {
        let url = config.url.clone()?;
        if lanes.config().query.mode != LaneMode::External {
            return None;
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let stop = CancellationToken::new();
        let token = stop.clone();
        let status = Arc::new(Mutex::new(ExternalLane {
            lane: Lane::Query,
            broker: url.clone(),
            repo: String::new(),
            connected: false,
            workers: Vec::new(),
        }));
        let shared = Arc::clone(&status);
        runtime.spawn(async move {
            tokio::select! {
                () = token.cancelled() => {}
                result = run(lanes.clone(), config, url, root, documents, shared) => if let Err(e) = result {
                    tracing::error!("external lanes on the broker stopped: {e}");
                    refuse(&lanes, &e, &token).await;
                },
            }
        });
        Some(Bridge { stop, status })
    }

    /// The external lane as it stands: the broker, the repository, and the workers serving
    /// it now.
    pub fn status(&self) -> ExternalLane {
        self.status.lock().clone()
    }
}

/// With no broker to hand them to, the lane's tasks fail at once with `why` instead of
/// waiting forever.
async fn refuse(lanes: &Lanes, why: &str, stop: &CancellationToken) {
    let mut events = lanes.subscribe();
    let mut sweep = tokio::time::interval(SWEEP);
    loop {
        for claimed in lanes.claim(Lane::Query, usize::MAX, ENGINE_LEASE) {
            let error = format!("the external query lane has no broker: {why}");
            let _ = lanes.complete(claimed.lease_id, Err(TaskError::fatal(error)));
        }
        tokio::select! {
            () = stop.cancelled() => return,
            _ = events.recv() => {}
            _ = sweep.tick() => {}
        }
    }
}

struct InFlight {
    lease_id: u64,
    sequence: u64,
    last_error: Option<String>,
}

#[derive(Deserialize)]
struct MaxDeliveries {
    stream_seq: u64,
    deliveries: u64,
}

async fn run(
    lanes: Lanes,
    config: BrokerConfig,
    url: String,
    root: PathBuf,
    documents: Documents,
    status: Arc<Mutex<ExternalLane>>,
) -> Result<(), String> {
    let client = super::connect(&url).await?;
    let js = jetstream::new(client.clone());
    let stream = query_stream(&js).await?;
    let repo = RepoId::of(&root);
    query_consumer(&stream, &repo, &config).await?;
    let instance = format!("{:016x}", fastrand::u64(..));
    let reply = format!("{}{instance}", super::RESULTS_PREFIX);
    let results_stream = results_stream(&js).await?;
    let mut results = results_consumer(&results_stream, &reply)
        .await?
        .messages()
        .await
        .map_err(|e| format!("cannot read results: {e}"))?;
    let advisory = format!(
        "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}",
        super::QUERY_STREAM,
        repo.consumer()
    );
    let mut dead = client
        .subscribe(advisory)
        .await
        .map_err(|e| format!("cannot subscribe to dead-letter advisories: {e}"))?;
    let mut heartbeats = client
        .subscribe(format!("{HEARTBEAT_PREFIX}>"))
        .await
        .map_err(|e| format!("cannot subscribe to worker heartbeats: {e}"))?;
    let mut workers: HashMap<String, (WorkerStatus, Instant)> = HashMap::new();
    status.lock().repo = repo.identity.clone();
    tracing::info!("external query lane on {url} for {}", repo.identity);
    let mut events = lanes.subscribe();
    let mut in_flight: HashMap<TaskId, InFlight> = HashMap::new();
    let mut by_sequence: HashMap<u64, TaskId> = HashMap::new();
    let mut sweep = tokio::time::interval(SWEEP);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(e) if e.lane != Lane::Query => continue,
                // A task cancelled here stops where it runs, or never starts there.
                Ok(LaneEvent { task_id, kind: EventKind::Finished { status: FinishStatus::Cancelled, .. }, .. }) => {
                    if let Some(task) = in_flight.remove(&task_id) {
                        by_sequence.remove(&task.sequence);
                        let _ = client.publish(cancel_subject(&reply, task_id), Default::default()).await;
                        let _ = stream.delete_message(task.sequence).await;
                    }
                    continue;
                }
                _ => {}
            },
            _ = sweep.tick() => {
                let now = Instant::now();
                workers.retain(|_, (_, seen)| now.duration_since(*seen) < 3 * HEARTBEAT);
                let mut status = status.lock();
                status.connected = client.connection_state() == State::Connected;
                status.workers = workers.values().map(|(w, _)| w.clone()).collect();
                status.workers.sort_by(|a, b| a.name.cmp(&b.name));
            }
            Some(message) = heartbeats.next() => {
                if let Ok(worker) = serde_json::from_slice::<WorkerStatus>(&message.payload)
                    && worker.repos.contains(&repo.identity)
                {
                    workers.insert(worker.name.clone(), (worker, Instant::now()));
                }
                continue;
            }
            message = results.next() => {
                let message = match message {
                    Some(Ok(message)) => message,
                    // The broker is away: the consumer asks again when it is back.
                    Some(Err(e)) => {
                        tracing::debug!("reading results: {e}");
                        continue;
                    }
                    None => return Err("the broker closed the results stream".to_string()),
                };
                // Taken: a result is stored until acked, and acked once read.
                let _ = message.ack().await;
                let Ok(result) = serde_json::from_slice::<ResultMessage>(&message.payload) else {
                    tracing::warn!("a result the bridge cannot read was dropped");
                    continue;
                };
                let done = match result.outcome {
                    Outcome::Done { value } => Ok(value),
                    Outcome::Failed { error } => Err(TaskError::fatal(error)),
                    Outcome::AttemptFailed { error } => {
                        if let Some(task) = in_flight.get_mut(&result.task_id) {
                            task.last_error = Some(error);
                        }
                        continue;
                    }
                };
                // The first result of a task completes it; a redelivery's is dropped.
                if let Some(task) = in_flight.remove(&result.task_id) {
                    by_sequence.remove(&task.sequence);
                    let _ = lanes.complete(task.lease_id, done);
                }
                continue;
            }
            Some(message) = dead.next() => {
                let Ok(advisory) = serde_json::from_slice::<MaxDeliveries>(&message.payload) else {
                    continue;
                };
                let Some(id) = by_sequence.remove(&advisory.stream_seq) else { continue };
                let Some(task) = in_flight.remove(&id) else { continue };
                let _ = stream.delete_message(advisory.stream_seq).await;
                let last = task
                    .last_error
                    .unwrap_or_else(|| "no worker finished it within its lease".to_string());
                let error = format!(
                    "no worker could finish it in {} deliveries (moved to the dead-letter \
                     queue); last error: {last}",
                    advisory.deliveries
                );
                let _ = lanes.complete(task.lease_id, Err(TaskError::fatal(error)));
                continue;
            }
        }
        for claimed in lanes.claim(Lane::Query, usize::MAX, ENGINE_LEASE) {
            let id = claimed.task.task_id;
            let lease_id = claimed.lease_id;
            let at = Target {
                repo: &repo,
                root: &root,
                documents: &documents,
            };
            match publish(&js, &at, &reply, &lanes, claimed).await {
                Ok(sequence) => {
                    by_sequence.insert(sequence, id);
                    in_flight.insert(
                        id,
                        InFlight {
                            lease_id,
                            sequence,
                            last_error: None,
                        },
                    );
                }
                Err(e) => {
                    let _ = lanes.complete(lease_id, Err(TaskError::fatal(e)));
                }
            }
        }
    }
}

/// Where a task goes and what travels with it.
struct Target<'a> {
    repo: &'a RepoId,
    root: &'a Path,
    documents: &'a Documents,
}

async fn publish(
    js: &jetstream::Context,
    at: &Target<'_>,
    reply: &str,
    lanes: &Lanes,
    claimed: ClaimedTask,
) -> Result<u64, String> {
    let task = claimed.task;
    let message = TaskMessage {
        task_id: task.task_id,
        name: task.name,
        payload: relative_paths(task.payload, at.root),
        repo: at.repo.identity.clone(),
        retry: lanes.config().query.retry,
        buffers: unsaved(at.documents, at.root),
    };
    let body = serde_json::to_vec(&message).map_err(|e| format!("cannot encode the task: {e}"))?;
    let mut headers = HeaderMap::new();
    headers.insert(REPLY_HEADER, reply);
    // JetStream drops a second publish of the same id within its duplicate window.
    let id = format!("{reply}.{}", task.task_id);
    publish_stored(js, at.repo.subject(), headers, &id, body)
        .await
        .map_err(|e| format!("the broker did not take the task: {e}"))
}

/// A tool's `path` as the worker resolves it: relative to the repository's root.
fn relative_paths(mut payload: Value, root: &Path) -> Value {
    if let Some(Value::String(path)) = payload.get_mut("path")
        && let Ok(rest) = Path::new(path.as_str()).strip_prefix(root)
    {
        let rest = rest.to_string_lossy();
        *path = if rest.is_empty() {
            ".".to_string()
        } else {
            rest.into_owned()
        };
    }
    payload
}

/// The open buffers under `root` whose text differs from the file's.
fn unsaved(documents: &Documents, root: &Path) -> Vec<Buffer> {
    documents
        .paths()
        .into_iter()
        .filter_map(|path| {
            let rest = path.strip_prefix(root).ok()?.to_str()?.to_string();
            let text = documents.get(&path)?.text();
            let on_disk = std::fs::read(&path).ok();
            (on_disk.as_deref() != Some(text.as_bytes())).then(|| Buffer {
                path: rest,
                text: text.to_string(),
            })
        })
        .collect()
}
