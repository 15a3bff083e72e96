//! The submitting side: takes the tasks of the external Query and Generate lanes
//! (`mode = "external"`) from the engine, publishes them to the broker — a Query task to the
//! queue of the workspace root it names, a model call to the one Generate queue — and
//! completes them with the first result a worker returns, or, when JetStream gives up after
//! `max_deliver`, with a dead letter.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::connection::State;
use parking_lot::Mutex;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, stream};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::{
    Buffer, ExternalLane, HEARTBEAT, HEARTBEAT_PREFIX, Outcome, Queue, REPLY_HEADER, RepoId,
    ResultMessage, TaskMessage, WorkerStatus, cancel_subject, lane_stream, publish_stored,
    results_consumer, results_stream,
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
/// The lanes a broker may carry.
const CARRIED: [Lane; 2] = [Lane::Query, Lane::Generate];

/// A running bridge; dropping it stops it.
pub struct Bridge {
    stop: CancellationToken,
    status: Arc<Mutex<Vec<ExternalLane>>>,
}

impl Drop for Bridge {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl Bridge {
    /// Starts the bridge of the workspace with `roots` (the first is the primary one) on
    /// the current runtime; `None` when no lane goes to a broker.
    pub fn start(
        lanes: Lanes,
        config: BrokerConfig,
        roots: Vec<PathBuf>,
        documents: Documents,
    ) -> Option<Bridge> {
        let url = config.url.clone()?;
        let served: Vec<Lane> = CARRIED
            .into_iter()
            .filter(|&lane| lanes.config().lane(lane).mode == LaneMode::External)
            .collect();
        if served.is_empty() || roots.is_empty() {
            return None;
        }
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let stop = CancellationToken::new();
        let token = stop.clone();
        let status = Arc::new(Mutex::new(
            served
                .iter()
                .map(|&lane| ExternalLane {
                    lane,
                    broker: url.clone(),
                    repo: String::new(),
                    connected: false,
                    workers: Vec::new(),
                })
                .collect(),
        ));
        let shared = Arc::clone(&status);
        runtime.spawn(async move {
            let at = Workspace { roots, documents };
            tokio::select! {
                () = token.cancelled() => {}
                result = run(lanes.clone(), config, url, &served, at, shared) => if let Err(e) = result {
                    tracing::error!("external lanes on the broker stopped: {e}");
                    refuse(&lanes, &served, &e, &token).await;
                },
            }
        });
        Some(Bridge { stop, status })
    }

    /// The external lanes as they stand: the broker, the repository of each Query queue,
    /// and the workers serving each now.
    pub fn status(&self) -> Vec<ExternalLane> {
        self.status.lock().clone()
    }
}

/// With no broker to hand them to, the lanes' tasks fail at once with `why` instead of
/// waiting forever.
async fn refuse(lanes: &Lanes, served: &[Lane], why: &str, stop: &CancellationToken) {
    let mut events = lanes.subscribe();
    let mut sweep = tokio::time::interval(SWEEP);
    loop {
        for &lane in served {
            for claimed in lanes.claim(lane, usize::MAX, ENGINE_LEASE) {
                let error = format!("the external {lane} lane has no broker: {why}");
                let _ = lanes.complete(claimed.lease_id, Err(TaskError::fatal(error)));
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            _ = events.recv() => {}
            _ = sweep.tick() => {}
        }
    }
}

/// The workspace whose tasks the bridge forwards: its roots and its editor buffers.
struct Workspace {
    roots: Vec<PathBuf>,
    documents: Documents,
}

/// One queue the bridge publishes to, with the stream it is on and, for Query, the root of
/// its repository here.
struct Route {
    queue: Queue,
    stream: stream::Stream,
    root: Option<PathBuf>,
}

impl Route {
    /// Whether a worker serves this queue.
    fn served_by(&self, worker: &WorkerStatus) -> bool {
        worker.lanes.contains(&self.queue.lane)
            && self
                .queue
                .repo
                .as_ref()
                .is_none_or(|repo| worker.repos.contains(&repo.identity))
    }
}

/// The route of a task of `lane`: a model call's one queue; a Query task's repository is
/// the root holding the `path` it names (the primary root when it names none).
fn route_of(routes: &[Route], lane: Lane, payload: &Value) -> Option<usize> {
    let path = payload.get("path").and_then(Value::as_str).map(Path::new);
    let candidates = || {
        routes
            .iter()
            .enumerate()
            .filter(move |(_, r)| r.queue.lane == lane)
    };
    let holding = candidates()
        .filter(
            |(_, r)| matches!((&r.root, path), (Some(root), Some(path)) if path.starts_with(root)),
        )
        .max_by_key(|(_, r)| r.root.as_ref().map(|root| root.as_os_str().len()));
    holding.or_else(|| candidates().next()).map(|(i, _)| i)
}

struct InFlight {
    lease_id: u64,
    route: usize,
    sequence: u64,
    last_error: Option<String>,
}

#[derive(Deserialize)]
struct MaxDeliveries {
    stream: String,
    stream_seq: u64,
    deliveries: u64,
}

async fn run(
    lanes: Lanes,
    config: BrokerConfig,
    url: String,
    served: &[Lane],
    at: Workspace,
    status: Arc<Mutex<Vec<ExternalLane>>>,
) -> Result<(), String> {
    let client = super::connect(&url).await?;
    let js = jetstream::new(client.clone());
    let mut routes = Vec::new();
    for &lane in served {
        let stream = lane_stream(&js, lane).await?;
        if lane == Lane::Generate {
            let queue = Queue::generate();
            routes.push(Route {
                queue,
                stream,
                root: None,
            });
            continue;
        }
        for root in &at.roots {
            let queue = Queue::query(RepoId::of(root));
            routes.push(Route {
                queue,
                stream: stream.clone(),
                root: Some(root.clone()),
            });
        }
    }
    for route in &routes {
        route.queue.open(&route.stream, &config).await?;
    }
    let instance = format!("{:016x}", fastrand::u64(..));
    let reply = format!("{}{instance}", super::RESULTS_PREFIX);
    let results_stream = results_stream(&js).await?;
    let mut results = results_consumer(&results_stream, &reply)
        .await?
        .messages()
        .await
        .map_err(|e| format!("cannot read results: {e}"))?;
    let mut dead = client
        .subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.>")
        .await
        .map_err(|e| format!("cannot subscribe to dead-letter advisories: {e}"))?;
    let mut heartbeats = client
        .subscribe(format!("{HEARTBEAT_PREFIX}>"))
        .await
        .map_err(|e| format!("cannot subscribe to worker heartbeats: {e}"))?;
    let mut workers: HashMap<String, (WorkerStatus, Instant)> = HashMap::new();
    let external = |route: &Route| ExternalLane {
        lane: route.queue.lane,
        broker: url.clone(),
        repo: route
            .queue
            .repo
            .as_ref()
            .map(|r| r.identity.clone())
            .unwrap_or_default(),
        connected: true,
        workers: Vec::new(),
    };
    *status.lock() = routes.iter().map(external).collect();
    for route in &routes {
        let repo = route.queue.repo.as_ref().map(|r| r.identity.as_str());
        tracing::info!(
            "external {} lane on {url}{}",
            route.queue.lane,
            repo.map(|r| format!(" for {r}")).unwrap_or_default()
        );
    }
    let mut events = lanes.subscribe();
    let mut in_flight: HashMap<TaskId, InFlight> = HashMap::new();
    let mut by_sequence: HashMap<(String, u64), TaskId> = HashMap::new();
    let stream_name = |route: usize| routes[route].stream.cached_info().config.name.clone();
    let mut sweep = tokio::time::interval(SWEEP);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(e) if !served.contains(&e.lane) => continue,
                // A task cancelled here stops where it runs, or never starts there.
                Ok(LaneEvent { task_id, kind: EventKind::Finished { status: FinishStatus::Cancelled, .. }, .. }) => {
                    if let Some(task) = in_flight.remove(&task_id) {
                        by_sequence.remove(&(stream_name(task.route), task.sequence));
                        let _ = client.publish(cancel_subject(&reply, task_id), Default::default()).await;
                        let _ = routes[task.route].stream.delete_message(task.sequence).await;
                    }
                    continue;
                }
                _ => {}
            },
            _ = sweep.tick() => {
                let now = Instant::now();
                workers.retain(|_, (_, seen)| now.duration_since(*seen) < 3 * HEARTBEAT);
                let connected = client.connection_state() == State::Connected;
                let mut status = status.lock();
                for (lane, route) in status.iter_mut().zip(&routes) {
                    lane.connected = connected;
                    lane.workers = workers
                        .values()
                        .map(|(w, _)| w)
                        .filter(|w| route.served_by(w))
                        .cloned()
                        .collect();
                    lane.workers.sort_by(|a, b| a.name.cmp(&b.name));
                }
            }
            Some(message) = heartbeats.next() => {
                if let Ok(worker) = serde_json::from_slice::<WorkerStatus>(&message.payload)
                    && routes.iter().any(|r| r.served_by(&worker))
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
                    Outcome::AttemptFailed { error, .. } => {
                        if let Some(task) = in_flight.get_mut(&result.task_id) {
                            task.last_error = Some(error);
                        }
                        continue;
                    }
                };
                // The first result of a task completes it; a redelivery's is dropped.
                if let Some(task) = in_flight.remove(&result.task_id) {
                    by_sequence.remove(&(stream_name(task.route), task.sequence));
                    let _ = lanes.complete(task.lease_id, done);
                }
                continue;
            }
            Some(message) = dead.next() => {
                let Ok(advisory) = serde_json::from_slice::<MaxDeliveries>(&message.payload) else {
                    continue;
                };
                let key = (advisory.stream, advisory.stream_seq);
                let Some(id) = by_sequence.remove(&key) else { continue };
                let Some(task) = in_flight.remove(&id) else { continue };
                let _ = routes[task.route].stream.delete_message(key.1).await;
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
        for &lane in served {
            for claimed in lanes.claim(lane, usize::MAX, ENGINE_LEASE) {
                let id = claimed.task.task_id;
                let lease_id = claimed.lease_id;
                let Some(route) = route_of(&routes, lane, &claimed.task.payload) else {
                    continue;
                };
                let retry = lanes.config().lane(lane).retry;
                let task = Outgoing {
                    route: &routes[route],
                    documents: &at.documents,
                    retry,
                };
                match publish(&js, &task, &reply, claimed).await {
                    Ok(sequence) => {
                        by_sequence.insert((stream_name(route), sequence), id);
                        let flight = InFlight {
                            lease_id,
                            route,
                            sequence,
                            last_error: None,
                        };
                        in_flight.insert(id, flight);
                    }
                    Err(e) => {
                        let _ = lanes.complete(lease_id, Err(TaskError::fatal(e)));
                    }
                }
            }
        }
    }
}

/// Where a task goes and what travels with it.
struct Outgoing<'a> {
    route: &'a Route,
    documents: &'a Documents,
    retry: crate::lanes::RetryPolicy,
}

async fn publish(
    js: &jetstream::Context,
    to: &Outgoing<'_>,
    reply: &str,
    claimed: ClaimedTask,
) -> Result<u64, String> {
    let task = claimed.task;
    let queue = &to.route.queue;
    let (payload, buffers) = match &to.route.root {
        Some(root) => (
            relative_paths(task.payload, root),
            unsaved(to.documents, root),
        ),
        None => (task.payload, Vec::new()),
    };
    let message = TaskMessage {
        task_id: task.task_id,
        name: task.name,
        payload,
        repo: queue
            .repo
            .as_ref()
            .map(|r| r.identity.clone())
            .unwrap_or_default(),
        retry: to.retry,
        buffers,
    };
    let body = serde_json::to_vec(&message).map_err(|e| format!("cannot encode the task: {e}"))?;
    let mut headers = HeaderMap::new();
    headers.insert(REPLY_HEADER, reply);
    // JetStream drops a second publish of the same id within its duplicate window.
    let id = format!("{reply}.{}", task.task_id);
    publish_stored(js, queue.subject(), headers, &id, body)
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
