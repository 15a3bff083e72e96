//! External lanes on a NATS JetStream broker (`[broker]`) and the worker that serves them.
//!
//! Each broker lane is a work-queue stream. The Query lane's (`SWITCHYARD_QUERY`, subjects
//! `switchyard.query.<repo>`) has one durable pull consumer per repository: a worker binds
//! only the consumers of the repositories it has. The Generate lane's (`SWITCHYARD_GENERATE`,
//! subject `switchyard.generate.all`, consumer `generate`) carries model calls: the request
//! in the task ([`ModelTask`]), the provider key and base URL only on the worker that makes
//! the call. The consumer's `ack_wait` is the
//! lease (a worker renews it with in-progress acks), a nak with the lane's retry delay is the
//! retry, and `max_deliver` exhausted is reported by JetStream's advisory and lands in the
//! engine's dead-letter queue. Results come back through a second stream
//! (`SWITCHYARD_RESULTS`, subjects `switchyard.results.<instance>`) with one durable
//! consumer per submitting server, so a result published while the submitter (or the broker)
//! was away waits for it; a final result carries a message id JetStream de-duplicates, and
//! the submitter takes the first one per task id. A task cancelled by its submitter is
//! deleted from the stream and announced on `switchyard.cancel.<instance>.<task>` (core
//! NATS), which the worker running it obeys. Workers publish a heartbeat with their figures
//! on `switchyard.workers.<name>`. The bridge ([`bridge`]) drives the engine's external API
//! (`claim`, `complete`); the engine knows nothing of the broker.

pub mod bridge;
pub mod worker;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::BrokerConfig;
use crate::lanes::{Lane, RetryPolicy, TaskId};
use crate::llm::{ModelRequest, ResolvedLlmConfig};

/// The stream of the Query lane.
pub const QUERY_STREAM: &str = "SWITCHYARD_QUERY";
/// The stream of the Generate lane.
pub const GENERATE_STREAM: &str = "SWITCHYARD_GENERATE";
/// The subject model calls are published on, and their one durable consumer.
const GENERATE_SUBJECT: &str = "switchyard.generate.all";
const GENERATE_CONSUMER: &str = "generate";
/// The stream results travel back on.
pub const RESULTS_STREAM: &str = "SWITCHYARD_RESULTS";
/// How long a result nobody took stays in the results stream, and how long a submitter's
/// results consumer outlives the submitter.
const RESULTS_KEPT: Duration = Duration::from_secs(3600);
/// How long publishing keeps trying while the broker is away (restarting, a leader moving).
pub const PUBLISH_PATIENCE: Duration = Duration::from_secs(60);
/// The header naming the subject a task's result goes to.
pub const REPLY_HEADER: &str = "Switchyard-Reply";

/// A task as it travels to a worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskMessage {
    /// The submitting server's task id.
    pub task_id: TaskId,
    /// The tool's name.
    pub name: String,
    /// The tool's arguments, paths relative to the repository's root.
    pub payload: Value,
    /// The repository: its identity (see [`RepoId`]).
    pub repo: String,
    /// The submitting lane's retry policy: the delay of a nak.
    pub retry: RetryPolicy,
    /// The editor's unsaved buffers in the repository: the worker's tools see them before
    /// its disk, as the submitter's would.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub buffers: Vec<Buffer>,
}

/// The payload of a Generate task when the lane is external: the whole model call, neutral
/// of the provider. The API key and the base URL are not in it: the worker that makes the
/// call uses its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelTask {
    /// The model to ask, as the submitter named it.
    pub model: String,
    /// The request, with the submitter's `llm.max_tokens` and `llm.temperature` filled in
    /// where the request leaves them unset.
    pub request: ModelRequest,
}

impl ModelTask {
    /// The call of `request` as the client configured by `llm` would make it.
    pub fn new(llm: &ResolvedLlmConfig, request: &ModelRequest) -> ModelTask {
        let mut request = request.clone();
        request.max_tokens = request.max_tokens.or(llm.max_tokens);
        request.temperature = request.temperature.or(llm.temperature);
        ModelTask {
            model: llm.model.clone(),
            request,
        }
    }
}

/// An unsaved editor buffer travelling with a task.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Buffer {
    /// Its path, relative to the repository's root.
    pub path: String,
    /// Its text.
    pub text: String,
}

/// What a worker reports for one delivery of a task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultMessage {
    /// The task.
    pub task_id: TaskId,
    /// Which delivery this was (1 for the first).
    pub delivery: u64,
    /// The worker that ran it.
    pub worker: String,
    /// The outcome.
    pub outcome: Outcome,
}

/// The outcome of one delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum Outcome {
    /// The task's result, as the lane's codec encodes it.
    Done {
        /// The value.
        value: Value,
    },
    /// The task cannot succeed (bad arguments, a tool this worker does not run).
    Failed {
        /// Why.
        error: String,
    },
    /// This attempt failed; the task is redelivered unless its deliveries are used up.
    AttemptFailed {
        /// Why.
        error: String,
        /// How long the failing service asked to wait (`Retry-After`), in milliseconds:
        /// the redelivery waits at least this long.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

/// A repository's identity across machines: its `origin` remote and `HEAD` commit when it
/// is a git checkout with a remote, else its canonical path (then only this machine has it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoId {
    /// The identity.
    pub identity: String,
    /// A subject-safe key derived from it (16 hex digits of its SHA-256).
    pub key: String,
}

impl RepoId {
    /// The identity of the repository rooted at `root`.
    pub fn of(root: &Path) -> RepoId {
        let git = |args: &[&str]| {
            let out = Command::new("git")
                .arg("-C")
                .arg(root)
                .args(args)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .output()
                .ok()?;
            let text = String::from_utf8(out.stdout).ok()?;
            (out.status.success() && !text.trim().is_empty()).then(|| text.trim().to_string())
        };
        let identity = match (
            git(&["config", "--get", "remote.origin.url"]),
            git(&["rev-parse", "HEAD"]),
        ) {
            (Some(remote), Some(commit)) => format!("{remote}@{commit}"),
            _ => {
                let path = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
                format!("path:{}", path.display())
            }
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, identity.as_bytes());
        let key = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        RepoId { identity, key }
    }

    /// The subject Query tasks of this repository are published on.
    pub fn subject(&self) -> String {
        format!("switchyard.query.{}", self.key)
    }

    /// The durable consumer workers with this repository pull from.
    pub fn consumer(&self) -> String {
        format!("query-{}", self.key)
    }
}

/// Connects to the broker at `url`, with a token or credentials file from the environment.
pub async fn connect(url: &str) -> Result<async_nats::Client, String> {
    let mut options = async_nats::ConnectOptions::new().name("switchyard");
    if let Ok(token) = std::env::var(BrokerConfig::TOKEN_ENV) {
        options = options.token(token);
    }
    if let Some(creds) = std::env::var_os(BrokerConfig::CREDS_ENV) {
        options = options
            .credentials_file(&creds)
            .await
            .map_err(|e| format!("cannot read the broker credentials file: {e}"))?;
    }
    options
        .connect(url)
        .await
        .map_err(|e| format!("cannot connect to the broker at {url}: {e}"))
}

/// The stream of `lane` (Query or Generate), created when missing.
pub async fn lane_stream(js: &jetstream::Context, lane: Lane) -> Result<stream::Stream, String> {
    let name = match lane {
        Lane::Generate => GENERATE_STREAM,
        _ => QUERY_STREAM,
    };
    js.get_or_create_stream(stream::Config {
        name: name.to_string(),
        subjects: vec![format!("switchyard.{lane}.>")],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("cannot open the broker stream {name}: {e}"))
}

/// The stream results come back on, created when missing.
pub async fn results_stream(js: &jetstream::Context) -> Result<stream::Stream, String> {
    js.get_or_create_stream(stream::Config {
        name: RESULTS_STREAM.to_string(),
        subjects: vec!["switchyard.results.>".to_string()],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        max_age: RESULTS_KEPT,
        ..Default::default()
    })
    .await
    .map_err(|e| format!("cannot open the broker stream {RESULTS_STREAM}: {e}"))
}

/// The durable consumer of the results sent to `subject`; the broker removes it when its
/// submitter has been gone for an hour.
pub async fn results_consumer(
    stream: &stream::Stream,
    subject: &str,
) -> Result<consumer::PullConsumer, String> {
    let name = subject.replace('.', "-");
    stream
        .get_or_create_consumer(
            &name,
            consumer::pull::Config {
                durable_name: Some(name.clone()),
                filter_subject: subject.to_string(),
                ack_policy: consumer::AckPolicy::Explicit,
                inactive_threshold: RESULTS_KEPT,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| format!("cannot open the broker consumer {name}: {e}"))
}

/// Publishes `body` to `subject` on JetStream and waits for the broker to store it, trying
/// again (under the same `id`, which JetStream de-duplicates) while the broker is away, for
/// up to [`PUBLISH_PATIENCE`]. Returns the stored message's sequence.
pub async fn publish_stored(
    js: &jetstream::Context,
    subject: String,
    mut headers: async_nats::HeaderMap,
    id: &str,
    body: Vec<u8>,
) -> Result<u64, String> {
    headers.insert("Nats-Msg-Id", id);
    let deadline = tokio::time::Instant::now() + PUBLISH_PATIENCE;
    loop {
        let error = match js
            .publish_with_headers(subject.clone(), headers.clone(), body.clone().into())
            .await
        {
            Ok(ack) => match ack.await {
                Ok(ack) => return Ok(ack.sequence),
                Err(e) => format!("the broker did not store it: {e}"),
            },
            Err(e) => format!("cannot hand it to the broker: {e}"),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(error);
        }
        tracing::debug!("publishing to {subject} again: {error}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The subject a task's cancellation is published on (core NATS: only a worker running it
/// now cares; one that has not taken it yet never will, its message is deleted).
pub fn cancel_subject(reply: &str, task: TaskId) -> String {
    let instance = reply.strip_prefix(RESULTS_PREFIX).unwrap_or(reply);
    format!("{CANCEL_PREFIX}{instance}.{task}")
}

/// Subjects of results, then the submitting server's instance.
pub const RESULTS_PREFIX: &str = "switchyard.results.";
/// Subjects of cancellations, then the instance and the task id.
pub const CANCEL_PREFIX: &str = "switchyard.cancel.";

/// Subjects of worker heartbeats, then the worker's name.
pub const HEARTBEAT_PREFIX: &str = "switchyard.workers.";
/// How often a worker says it is alive; one not heard for three of these is gone.
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// A worker's heartbeat and metrics: what it serves and what it has done since it started.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatus {
    /// Its name (`worker-<pid>@<host>`).
    pub name: String,
    /// The lanes it serves.
    pub lanes: Vec<Lane>,
    /// The identities of the repositories it has (see [`RepoId`]).
    pub repos: Vec<String>,
    /// Tasks it runs now.
    pub running: u64,
    /// Tasks it answered (with a result or a final failure).
    pub finished: u64,
    /// Attempts that failed and were handed back for a retry.
    pub attempts_failed: u64,
    /// Tasks it stopped because their submitter cancelled them.
    pub cancelled: u64,
}

/// An external lane on the broker as the submitting server sees it: where it goes and the
/// workers serving its repository now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalLane {
    /// The lane.
    pub lane: Lane,
    /// The broker's URL.
    pub broker: String,
    /// The repository its tasks name; empty for Generate (a model call names none).
    pub repo: String,
    /// Whether this server is connected to the broker now.
    pub connected: bool,
    /// The workers heard from in the last three heartbeats that serve this lane (and for
    /// Query this repository).
    pub workers: Vec<WorkerStatus>,
}

/// Where a lane's tasks go on the broker: its subject and its durable consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// The lane.
    pub lane: Lane,
    /// The repository the tasks need (Query); `None` for Generate.
    pub repo: Option<RepoId>,
}

impl Queue {
    /// The Generate lane's one queue.
    pub fn generate() -> Queue {
        Queue {
            lane: Lane::Generate,
            repo: None,
        }
    }

    /// The Query queue of `repo`.
    pub fn query(repo: RepoId) -> Queue {
        Queue {
            lane: Lane::Query,
            repo: Some(repo),
        }
    }

    /// The subject its tasks are published on.
    pub fn subject(&self) -> String {
        match &self.repo {
            Some(repo) => repo.subject(),
            None => GENERATE_SUBJECT.to_string(),
        }
    }

    /// Its durable consumer.
    pub fn consumer(&self) -> String {
        match &self.repo {
            Some(repo) => repo.consumer(),
            None => GENERATE_CONSUMER.to_string(),
        }
    }

    /// The durable consumer, created with the lease and deliveries of `config` when missing.
    pub async fn open(
        &self,
        stream: &stream::Stream,
        config: &BrokerConfig,
    ) -> Result<consumer::PullConsumer, String> {
        let name = self.consumer();
        stream
            .get_or_create_consumer(
                &name,
                consumer::pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: self.subject(),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: Duration::from_millis(config.lease_ms),
                    max_deliver: i64::from(config.max_deliver),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| format!("cannot open the broker consumer {name}: {e}"))
    }
}
