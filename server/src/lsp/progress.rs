//! Work-done progress for long commands, and the `switchyard/laneStatus` feed.
//!
//! A long command runs as a *job*: a tokio task that owns the progress from `begin` to
//! `end`, runs the work, and follows the lane events of the work's session to report how
//! far it got (`query 12/40 · execute 0 · generate 0`). The request handler only waits for
//! the job's result, holding a drop guard on the job's cancellation token, so
//! `$/cancelRequest` (which drops the handler) cancels the job; so do
//! `window/workDoneProgress/cancel` and `switchyard.cancel`. A cancelled or failed job
//! cancels its session's lane tasks and waits for them to drain before it sends `end`, so
//! an ended progress means the work has stopped.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::{broadcast, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower_lsp_server::Client;
use tower_lsp_server::jsonrpc::{Error, ErrorCode};
use tower_lsp_server::ls_types::notification::Progress as ProgressNotification;
use tower_lsp_server::ls_types::{
    NumberOrString, ProgressParams, ProgressParamsValue, ProgressToken, WorkDoneProgress,
    WorkDoneProgressBegin, WorkDoneProgressEnd, WorkDoneProgressReport,
};

use super::ext::{CancelResult, LaneStatus};
use super::to_proto;
use crate::core::Core;
use crate::lanes::{EventKind, Lane, LaneEvent, Lanes, SessionId, TaskId};

/// The least time between two progress reports, or two lane status notifications.
pub(crate) const THROTTLE: Duration = Duration::from_millis(100);
/// How long a stopped job waits for its session's tasks to drain before it ends anyway.
const DRAIN_PATIENCE: Duration = Duration::from_secs(10);

/// How far one session's tasks got, from its lane events.
#[derive(Debug)]
pub(crate) struct SessionTally {
    session: SessionId,
    /// Each task seen, and whether it finished.
    tasks: HashMap<TaskId, bool>,
    /// Per lane: tasks seen, tasks finished.
    lanes: [(u64, u64); 4],
    /// The highest percentage reported, so it never goes back.
    percentage: u32,
}

impl SessionTally {
    pub(crate) fn new(session: SessionId) -> SessionTally {
        SessionTally {
            session,
            tasks: HashMap::new(),
            lanes: [(0, 0); 4],
            percentage: 0,
        }
    }

    /// Counts `event` if it is of this session; returns whether the tally changed.
    pub(crate) fn apply(&mut self, event: &LaneEvent) -> bool {
        if event.session.as_deref() != Some(&*self.session) {
            return false;
        }
        let counts = &mut self.lanes[event.lane.priority()];
        let finished = matches!(event.kind, EventKind::Finished { .. });
        match self.tasks.get_mut(&event.task_id) {
            None => {
                // Usually `Queued`; a task whose first events were missed counts from here.
                counts.0 += 1;
                counts.1 += u64::from(finished);
                self.tasks.insert(event.task_id, finished);
                true
            }
            Some(done) if finished && !*done => {
                *done = true;
                counts.1 += 1;
                true
            }
            Some(_) => false,
        }
    }

    /// Tasks seen but not finished.
    pub(crate) fn outstanding(&self) -> u64 {
        self.lanes.iter().map(|(seen, done)| seen - done).sum()
    }

    /// Finished of seen, in percent; never less than what it said before.
    pub(crate) fn percentage(&mut self) -> u32 {
        let (seen, done) = self
            .lanes
            .iter()
            .fold((0, 0), |(s, d), (seen, done)| (s + seen, d + done));
        if let Some(now) = (done * 100).checked_div(seen) {
            let now = u32::try_from(now).unwrap_or(100);
            self.percentage = self.percentage.max(now);
        }
        self.percentage
    }

    /// `query 12/40 · execute 0 · generate 0`: finished of seen per working lane (Control
    /// only when it has tasks).
    pub(crate) fn summary(&self) -> String {
        Lane::ALL
            .iter()
            .filter_map(|&lane| {
                let (seen, done) = self.lanes[lane.priority()];
                match (lane, seen) {
                    (Lane::Control, 0) => None,
                    (_, 0) => Some(format!("{lane} 0")),
                    _ => Some(format!("{lane} {done}/{seen}")),
                }
            })
            .collect::<Vec<_>>()
            .join(" · ")
    }
}

/// A job in flight.
struct Job {
    session: SessionId,
    token: Option<ProgressToken>,
    cancel: CancellationToken,
}

/// The long commands in flight, to cancel them by progress token or session.
#[derive(Default)]
pub(crate) struct Jobs {
    running: Mutex<HashMap<u64, Job>>,
    next: AtomicU64,
}

impl Jobs {
    fn next_id(&self) -> u64 {
        self.next.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Cancels the job reporting under `token`; returns whether there was one.
    pub(crate) fn cancel_token(&self, lanes: &Lanes, token: &ProgressToken) -> bool {
        self.cancel_where(lanes, |job| job.token.as_ref() == Some(token))
            .commands
            > 0
    }

    /// Cancels the job running `session` and every lane task of the session.
    pub(crate) fn cancel_session(&self, lanes: &Lanes, session: &str) -> CancelResult {
        let mut cancelled = self.cancel_where(lanes, |job| &*job.session == session);
        // Tasks of the session that no job of ours runs.
        cancelled.tasks += lanes.cancel_session(session);
        cancelled
    }

    /// Cancels every job and every lane task.
    pub(crate) fn cancel_all(&self, lanes: &Lanes) -> CancelResult {
        let mut cancelled = self.cancel_where(lanes, |_| true);
        cancelled.tasks += lanes.cancel_all();
        cancelled
    }

    /// Cancels the picked jobs and their sessions' lane tasks, in that order: a job sees
    /// its own cancellation before any of its tasks ends cancelled, so it ends `cancelled`,
    /// not failed.
    fn cancel_where(&self, lanes: &Lanes, pick: impl Fn(&Job) -> bool) -> CancelResult {
        let picked: Vec<(CancellationToken, SessionId)> = self
            .running
            .lock()
            .values()
            .filter(|job| pick(job))
            .map(|job| (job.cancel.clone(), job.session.clone()))
            .collect();
        let mut cancelled = CancelResult::default();
        for (cancel, session) in picked {
            // Counted first: cancelling the job's token may end some of its tasks before
            // `cancel_session` gets to them (they are `cancelled_by` it).
            let live = lanes.live_in_session(&session);
            cancel.cancel();
            cancelled.commands += 1;
            cancelled.tasks += lanes.cancel_session(&session).max(live);
        }
        cancelled
    }
}

/// A long command about to run.
pub(crate) struct LongCommand {
    /// The progress title (`Analyzing workspace`).
    pub title: String,
    /// The first progress message (the folder, say).
    pub message: String,
    /// The lane session the work's tasks run in.
    pub session: SessionId,
    /// The client's `workDoneToken`, if it sent one.
    pub token: Option<ProgressToken>,
    /// Whether the client accepts server-created tokens (`window.workDoneProgress`).
    pub can_create_token: bool,
}

/// What the work returns: its result and a one-line outcome for the progress's `end`.
pub(crate) type WorkResult<T> = Result<(T, String), String>;

/// Runs `work` as a job with work-done progress and waits for its result. Dropping the
/// returned future (a `$/cancelRequest`) cancels the job.
pub(crate) async fn run_long<T, W, F>(
    client: &Client,
    lanes: &Lanes,
    jobs: &Arc<Jobs>,
    command: LongCommand,
    work: W,
) -> Result<T, Error>
where
    T: Send + 'static,
    W: FnOnce(CancellationToken) -> F + Send + 'static,
    F: Future<Output = WorkResult<T>> + Send + 'static,
{
    let cancel = CancellationToken::new();
    let guard = cancel.clone().drop_guard();
    // Subscribe before the work submits anything, so no event of its session is missed.
    let events = lanes.subscribe();
    let (tx, rx) = oneshot::channel();
    let job = run_job(
        client.clone(),
        lanes.clone(),
        Arc::clone(jobs),
        command,
        cancel,
        events,
        work,
    );
    tokio::spawn(async move {
        let _ = tx.send(job.await);
    });
    let result = rx.await.unwrap_or_else(|_| Err(Error::internal_error()));
    guard.disarm();
    result
}

async fn run_job<T, W, F>(
    client: Client,
    lanes: Lanes,
    jobs: Arc<Jobs>,
    command: LongCommand,
    cancel: CancellationToken,
    mut events: broadcast::Receiver<LaneEvent>,
    work: W,
) -> Result<T, Error>
where
    W: FnOnce(CancellationToken) -> F,
    F: Future<Output = WorkResult<T>>,
{
    let id = jobs.next_id();
    let token = match command.token {
        Some(token) => Some(token),
        None if command.can_create_token => {
            let token = NumberOrString::String(format!("switchyard/{id}"));
            match client.create_work_done_progress(token.clone()).await {
                Ok(()) => Some(token),
                Err(e) => {
                    tracing::warn!("the client refused a progress token: {e}");
                    None
                }
            }
        }
        None => None,
    };
    jobs.running.lock().insert(
        id,
        Job {
            session: command.session.clone(),
            token: token.clone(),
            cancel: cancel.clone(),
        },
    );
    let mut progress = Reporter {
        client,
        token,
        last: None,
    };
    progress
        .send(WorkDoneProgress::Begin(WorkDoneProgressBegin {
            title: command.title.clone(),
            cancellable: Some(true),
            message: Some(command.message.clone()),
            percentage: Some(0),
        }))
        .await;

    let mut tally = SessionTally::new(command.session.clone());
    let work = work(cancel.clone());
    tokio::pin!(work);
    let mut last_report: Option<Instant> = None;
    let mut dirty = false;
    let outcome = loop {
        let next_report = last_report.map_or_else(Instant::now, |at| at + THROTTLE);
        tokio::select! {
            biased;
            () = cancel.cancelled() => break None,
            result = &mut work => break Some(result),
            event = events.recv() => match event {
                Ok(event) => dirty |= tally.apply(&event),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::debug!("progress of {} missed {missed} lane events", command.session);
                }
                Err(broadcast::error::RecvError::Closed) => {}
            },
            () = tokio::time::sleep_until(next_report), if dirty => {
                progress.report(&mut tally).await;
                last_report = Some(Instant::now());
                dirty = false;
            }
        }
    };
    // Work that failed because it was being cancelled was cancelled.
    let outcome = match outcome {
        Some(Err(_)) if cancel.is_cancelled() => None,
        outcome => outcome,
    };
    if !matches!(outcome, Some(Ok(_))) {
        let cancelled = lanes.cancel_session(&command.session);
        tracing::debug!(
            "stopped {}: cancelled {cancelled} lane tasks",
            command.session
        );
    }
    drain(&mut events, &mut tally).await;
    // The last word on how far it got (unless the last report said it already).
    progress.report(&mut tally).await;
    let (result, end) = match outcome {
        Some(Ok((value, outcome))) => (Ok(value), outcome),
        Some(Err(error)) => {
            let end = format!("failed: {error}");
            (Err(request_failed(error)), end)
        }
        None => (Err(cancelled()), "cancelled".to_string()),
    };
    progress
        .send(WorkDoneProgress::End(WorkDoneProgressEnd {
            message: Some(end),
        }))
        .await;
    jobs.running.lock().remove(&id);
    result
}

/// Follows the session's events until none of its tasks is live (or patience runs out).
async fn drain(events: &mut broadcast::Receiver<LaneEvent>, tally: &mut SessionTally) {
    let deadline = Instant::now() + DRAIN_PATIENCE;
    while tally.outstanding() > 0 {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Ok(event)) => {
                tally.apply(&event);
            }
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => {
                tracing::warn!(
                    "{} tasks of {} still live after it stopped",
                    tally.outstanding(),
                    tally.session
                );
                return;
            }
        }
    }
}

/// The error of a cancelled command.
pub(crate) fn cancelled() -> Error {
    Error {
        code: ErrorCode::RequestCancelled,
        message: "cancelled".into(),
        data: None,
    }
}

/// The error of a command that ran and failed (LSP's `RequestFailed`).
pub(crate) fn request_failed(message: String) -> Error {
    Error {
        code: ErrorCode::ServerError(-32803),
        message: message.into(),
        data: None,
    }
}

/// Sends one job's `$/progress` notifications; silent without a token.
struct Reporter {
    client: Client,
    token: Option<ProgressToken>,
    /// The last report's message and percentage, not to repeat it.
    last: Option<(String, u32)>,
}

impl Reporter {
    async fn send(&self, value: WorkDoneProgress) {
        if let Some(token) = &self.token {
            let params = ProgressParams {
                token: token.clone(),
                value: ProgressParamsValue::WorkDone(value),
            };
            self.client
                .send_notification::<ProgressNotification>(params)
                .await;
        }
    }

    async fn report(&mut self, tally: &mut SessionTally) {
        let now = (tally.summary(), tally.percentage());
        if self.last.as_ref() == Some(&now) {
            return;
        }
        self.send(WorkDoneProgress::Report(WorkDoneProgressReport {
            cancellable: Some(true),
            message: Some(now.0.clone()),
            percentage: Some(now.1),
        }))
        .await;
        self.last = Some(now);
    }
}

/// Sends `switchyard/laneStatus` whenever the lanes' figures change, at most once per
/// [`THROTTLE`], starting with the figures now; with lanes on a broker, also when their
/// workers come and go. Ends when the engine does.
pub(crate) async fn lane_status(client: Client, core: Core) {
    let lanes = core.lanes().clone();
    let mut events = lanes.subscribe();
    let mut last: Option<Value> = None;
    loop {
        let external = core.external_lanes();
        let status = to_proto::lane_status(&lanes.metrics(), &external);
        let value = serde_json::to_value(&status).unwrap_or(Value::Null);
        if last.as_ref() != Some(&value) {
            client.send_notification::<LaneStatus>(status).await;
            last = Some(value);
        }
        let sent = Instant::now();
        // Wait for something to happen, then let more happen before looking again.
        let event = if external.is_empty() {
            events.recv().await
        } else {
            // Workers joining or leaving send no lane event: look again after a heartbeat.
            match tokio::time::timeout(crate::broker::HEARTBEAT, events.recv()).await {
                Ok(event) => event,
                Err(_) => Err(broadcast::error::RecvError::Lagged(0)),
            }
        };
        match event {
            Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
            Err(broadcast::error::RecvError::Closed) => return,
        }
        tokio::time::sleep_until(sent + THROTTLE).await;
        loop {
            match events.try_recv() {
                Ok(_) | Err(broadcast::error::TryRecvError::Lagged(_)) => {}
                Err(broadcast::error::TryRecvError::Empty) => break,
                Err(broadcast::error::TryRecvError::Closed) => return,
            }
        }
    }
}

#[cfg(test)]
mod tests;
