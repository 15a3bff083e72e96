//! Progress of long commands with real lane tasks in a session, independent of any command:
//! begin, throttled reports with the lane summary, end; cancellation by token, by dropping
//! the request, and the drain of the session's tasks before `end`.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tower_lsp_server::ls_types::NumberOrString;

use super::*;
use crate::lanes::{Lane, SessionId, Task, TaskError};
use crate::lsp::tests::{PATIENCE, Peer};

/// A door blocking tasks until the test opens it.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn wait(&self, ctx: &crate::lanes::TaskContext) -> Result<(), TaskError> {
        let mut open = self.open.lock().unwrap();
        while !*open {
            ctx.checkpoint()?;
            open = self
                .cv
                .wait_timeout(open, Duration::from_millis(5))
                .unwrap()
                .0;
        }
        Ok(())
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

/// `n` Query tasks in `session`, each waiting on `gate`, submitted when the work starts;
/// resolves when all are done.
fn fan_out(
    lanes: &Lanes,
    session: &SessionId,
    n: usize,
    gate: &Arc<Gate>,
) -> impl Future<Output = WorkResult<usize>> + Send + 'static {
    let tasks: Vec<Task<usize>> = (0..n)
        .map(|i| {
            let gate = Arc::clone(gate);
            Task::blocking(Lane::Query, "wait", move |ctx| {
                gate.wait(ctx)?;
                Ok(i)
            })
            .session(session.clone())
        })
        .collect();
    let lanes = lanes.clone();
    async move {
        let results = lanes.submit_batch(tasks).join().await;
        let done = results.iter().filter(|r| r.is_ok()).count();
        if done == n {
            Ok((done, format!("{done} tasks done")))
        } else {
            Err(format!("{} of {n} tasks failed", n - done))
        }
    }
}

fn command(session: &SessionId, token: Option<ProgressToken>) -> LongCommand {
    LongCommand {
        title: "Testing".into(),
        message: "a fan-out".into(),
        session: session.clone(),
        token,
        can_create_token: true,
    }
}

/// The `$/progress` values sent under `token`, in order.
fn progress_of(peer: &Peer, token: &Value) -> Vec<Value> {
    peer.seen
        .iter()
        .filter(|m| m["method"] == "$/progress" && &m["params"]["token"] == token)
        .map(|m| m["params"]["value"].clone())
        .collect()
}

async fn ended(peer: &mut Peer, token: &Value) -> Vec<Value> {
    let wanted = token.clone();
    peer.wait(move |m| {
        m["method"] == "$/progress"
            && m["params"]["token"] == wanted
            && m["params"]["value"]["kind"] == "end"
    })
    .await;
    progress_of(peer, token)
}

#[tokio::test]
async fn a_server_created_token_gets_begin_reports_and_end_in_order() {
    let (mut peer, server) = Peer::start();
    peer.initialize(json!({"window": {"workDoneProgress": true}}))
        .await;
    let inner = Arc::clone(&server.inner);
    let session: SessionId = "progress-test".into();
    let gate = Arc::new(Gate::default());
    let work = fan_out(&inner.lanes, &session, 40, &gate);
    let run = {
        let inner = Arc::clone(&inner);
        let command = command(&session, None);
        tokio::spawn(async move {
            run_long(&inner.client, &inner.lanes, &inner.jobs, command, |_| work).await
        })
    };
    let create = peer
        .wait(|m| m["method"] == "window/workDoneProgress/create")
        .await;
    let token = create["params"]["token"].clone();
    // A report shows the queued tasks before any is done.
    peer.wait(|m| m["params"]["value"]["kind"] == "report")
        .await;
    gate.open();
    let values = ended(&mut peer, &token).await;
    assert_eq!(run.await.unwrap().unwrap(), 40);

    assert_eq!(values.first().unwrap()["kind"], "begin", "{values:?}");
    assert_eq!(values.first().unwrap()["title"], "Testing");
    assert_eq!(values.first().unwrap()["cancellable"], true);
    let end = values.last().unwrap();
    assert_eq!(end["kind"], "end");
    assert_eq!(end["message"], "40 tasks done");
    let reports: Vec<&Value> = values[1..values.len() - 1].iter().collect();
    assert!(reports.iter().all(|r| r["kind"] == "report"), "{values:?}");
    assert_eq!(
        reports.first().unwrap()["message"],
        "query 0/40 · execute 0 · generate 0"
    );
    let last = reports.last().unwrap();
    assert_eq!(last["message"], "query 40/40 · execute 0 · generate 0");
    assert_eq!(last["percentage"], 100);
    let percentages: Vec<u64> = reports
        .iter()
        .map(|r| r["percentage"].as_u64().unwrap())
        .collect();
    assert!(
        percentages.windows(2).all(|w| w[0] <= w[1]),
        "{percentages:?}"
    );
    // The create request came before anything was sent under its token.
    let first_use = peer
        .seen
        .iter()
        .position(|m| m["params"]["token"] == token && m["method"] == "$/progress");
    let created = peer
        .seen
        .iter()
        .position(|m| m["method"] == "window/workDoneProgress/create");
    assert!(created < first_use);
}

#[tokio::test]
async fn reports_are_throttled() {
    let (mut peer, server) = Peer::start();
    peer.initialize(json!({})).await;
    let inner = Arc::clone(&server.inner);
    let session: SessionId = "throttled".into();
    let token = NumberOrString::String("client-token".into());
    let started = tokio::time::Instant::now();
    // Tasks finishing one by one over ~600 ms: far more changes than reports allowed.
    let lanes = inner.lanes.clone();
    let work_session = session.clone();
    let work = async move {
        for i in 0..60u64 {
            let task = Task::future(Lane::Query, "tick", move |_| async move {
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok(i)
            })
            .session(work_session.clone());
            lanes.submit(task).await.map_err(|e| e.to_string())?;
        }
        Ok(((), "ticked".to_string()))
    };
    run_long(
        &inner.client,
        &inner.lanes,
        &inner.jobs,
        command(&session, Some(token)),
        |_| work,
    )
    .await
    .unwrap();
    let elapsed = started.elapsed();
    let values = ended(&mut peer, &json!("client-token")).await;
    let reports = values.iter().filter(|v| v["kind"] == "report").count();
    // At most one per 100 ms, plus the final one.
    let allowed = (elapsed.as_millis() / 100) as usize + 2;
    assert!(
        reports >= 2 && reports <= allowed,
        "{reports} reports in {elapsed:?}"
    );
    assert!(
        !peer
            .seen
            .iter()
            .any(|m| m["method"] == "window/workDoneProgress/create")
    );
}

#[tokio::test]
async fn cancelling_by_token_stops_the_tasks_and_ends_the_progress() {
    let (mut peer, server) = Peer::start();
    peer.initialize(json!({"window": {"workDoneProgress": true}}))
        .await;
    let inner = Arc::clone(&server.inner);
    let session: SessionId = "cancelled".into();
    let gate = Arc::new(Gate::default());
    let work = fan_out(&inner.lanes, &session, 100, &gate);
    let run = {
        let inner = Arc::clone(&inner);
        let command = command(&session, None);
        tokio::spawn(async move {
            run_long(&inner.client, &inner.lanes, &inner.jobs, command, |_| work).await
        })
    };
    let begin = peer.wait(|m| m["params"]["value"]["kind"] == "begin").await;
    let token = begin["params"]["token"].clone();
    peer.wait(|m| m["params"]["value"]["kind"] == "report")
        .await;
    peer.notify("window/workDoneProgress/cancel", json!({"token": token}))
        .await;
    let values = ended(&mut peer, &token).await;
    assert_eq!(values.last().unwrap()["message"], "cancelled");
    let error = run.await.unwrap().unwrap_err();
    assert_eq!(error.code, ErrorCode::RequestCancelled);
    // `end` comes after the session drained: nothing of it runs or waits any more.
    let query = inner.lanes.metrics().lane(Lane::Query).clone();
    assert_eq!((query.running, query.queued), (0, 0), "{query:?}");
    assert_eq!(query.cancelled, 100);
    let reports: Vec<&Value> = values.iter().filter(|v| v["kind"] == "report").collect();
    assert_eq!(
        reports.last().unwrap()["message"],
        "query 100/100 · execute 0 · generate 0"
    );
}

#[tokio::test]
async fn dropping_the_request_cancels_the_job() {
    let (mut peer, server) = Peer::start();
    peer.initialize(json!({})).await;
    let inner = Arc::clone(&server.inner);
    let session: SessionId = "dropped".into();
    let gate = Arc::new(Gate::default());
    let work = fan_out(&inner.lanes, &session, 8, &gate);
    let seen_cancel = CancellationToken::new();
    let run = {
        let inner = Arc::clone(&inner);
        let seen_cancel = seen_cancel.clone();
        let command = command(&session, Some(NumberOrString::Number(7)));
        tokio::spawn(async move {
            run_long(
                &inner.client,
                &inner.lanes,
                &inner.jobs,
                command,
                move |cancel| {
                    let cancel = cancel.clone();
                    tokio::spawn(async move {
                        cancel.cancelled().await;
                        seen_cancel.cancel();
                    });
                    work
                },
            )
            .await
        })
    };
    peer.wait(|m| m["params"]["value"]["kind"] == "report")
        .await;
    // What tower-lsp-server does on `$/cancelRequest`: drop the handler's future.
    run.abort();
    tokio::time::timeout(PATIENCE, seen_cancel.cancelled())
        .await
        .unwrap();
    let values = ended(&mut peer, &json!(7)).await;
    assert_eq!(values.last().unwrap()["message"], "cancelled");
    assert_eq!(inner.lanes.metrics().lane(Lane::Query).running, 0);
}

#[test]
fn the_tally_counts_each_task_once_and_never_goes_back() {
    use crate::lanes::{EventKind, FinishStatus, LaneEvent};
    let event = |task_id, lane, session: &str, kind| LaneEvent {
        task_id,
        lane,
        session: Some(session.into()),
        name: "t".into(),
        kind,
    };
    let finished = EventKind::Finished {
        status: FinishStatus::Completed,
        run_time: Duration::ZERO,
    };
    let mut tally = SessionTally::new("s".into());
    assert_eq!(tally.summary(), "query 0 · execute 0 · generate 0");
    assert!(tally.apply(&event(1, Lane::Query, "s", EventKind::Queued)));
    assert!(tally.apply(&event(2, Lane::Query, "s", EventKind::Queued)));
    assert!(!tally.apply(&event(3, Lane::Query, "other", EventKind::Queued)));
    assert!(tally.apply(&event(1, Lane::Query, "s", finished.clone())));
    assert!(!tally.apply(&event(1, Lane::Query, "s", finished.clone())));
    assert_eq!(tally.percentage(), 50);
    // A task first seen finishing (its earlier events were missed) still counts.
    assert!(tally.apply(&event(4, Lane::Generate, "s", finished.clone())));
    assert_eq!(tally.summary(), "query 1/2 · execute 0 · generate 1/1");
    assert_eq!(tally.percentage(), 66);
    // More work queued lowers the ratio, not the percentage reported.
    for id in 5..20 {
        tally.apply(&event(id, Lane::Query, "s", EventKind::Queued));
    }
    assert_eq!(tally.percentage(), 66);
    assert_eq!(tally.outstanding(), 16);
}
