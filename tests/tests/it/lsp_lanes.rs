//! The lanes over LSP: external workers claim and complete tasks (`switchyard/pendingTasks`,
//! `switchyard/completeTask`), failures land in the dead-letter queue and can be retried
//! (`switchyard.deadLetters`, `switchyard.retryDeadLetter`), tasks are cancelled
//! (`switchyard.cancel`), `switchyard.queueStats` answers while work waits, and
//! `switchyard/laneStatus` follows it all.

use std::time::{Duration, Instant};

use serde_json::json;
use switchyard::lanes::Lane;
use switchyard::lsp::ext::{
    Cancel, CancelParams, CancelTarget, CompleteTask, CompleteTaskParams, DeadLetters, NoParams,
    PendingTasks, PendingTasksParams, QueueStats, RetryDeadLetter, RetryDeadLetterParams, RunTool,
    RunToolParams, TaskFailure,
};
use switchyard_tests::lsp_client::{ClientOptions, LspClient, PATIENCE, ServerEvent, within};

const LIMIT: Duration = Duration::from_secs(60);

/// Waits until `n` tasks are pending in the query lane; returns them.
async fn pending(client: &LspClient, n: usize) -> Vec<switchyard::lanes::PendingTask> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let result = client
            .ext_request::<PendingTasks>(PendingTasksParams {
                lane: Some(Lane::Query),
                ..Default::default()
            })
            .await
            .unwrap();
        if result.pending.len() == n {
            return result.pending;
        }
        assert!(
            Instant::now() < deadline,
            "never saw {n} pending tasks: {result:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn external_workers_claim_complete_and_retry_tasks() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut options = ClientOptions::new(dir.path());
        options.initialization_options = Some(json!({"lanes": {"query": {"mode": "external"}}}));
        let (mut client, _) = LspClient::initialized(options).await;

        // A tool call waits in the external query lane until a worker takes it.
        let call = client.command::<RunTool>(RunToolParams {
            name: "ls".into(),
            arguments: json!({"path": "."}),
        });
        let worker = async {
            let waiting = pending(&client, 1).await;
            assert_eq!(waiting[0].name, "ls");
            assert_eq!(waiting[0].payload, json!({"path": "."}));

            // The stats answer at once while the call waits.
            let asked = Instant::now();
            let stats = client.command::<QueueStats>(NoParams {}).await.unwrap();
            assert!(
                asked.elapsed() < Duration::from_secs(2),
                "{:?}",
                asked.elapsed()
            );
            assert_eq!(stats.lane(Lane::Query).queued, 1);

            let claimed = client
                .ext_request::<PendingTasks>(PendingTasksParams {
                    lane: Some(Lane::Query),
                    claim: Some(5),
                    lease_ms: Some(30_000),
                })
                .await
                .unwrap();
            assert_eq!(claimed.claimed.len(), 1);
            assert!(claimed.pending.is_empty());
            let lease = claimed.claimed[0].lease_id;
            client
                .ext_request::<CompleteTask>(CompleteTaskParams {
                    lease_id: lease,
                    result: None,
                    error: Some(TaskFailure {
                        message: "the worker gave up".into(),
                        retryable: false,
                        retry_after_ms: None,
                    }),
                })
                .await
                .unwrap();
            // The same lease cannot complete twice.
            let error = client
                .ext_request::<CompleteTask>(CompleteTaskParams {
                    lease_id: lease,
                    result: Some(json!(null)),
                    error: None,
                })
                .await
                .unwrap_err();
            assert_eq!(error.code.0, -32602, "{error:?}");
            assert!(
                error.message.contains(&format!("lease {lease}")),
                "{error:?}"
            );
        };
        let (result, ()) = tokio::join!(call, worker);
        let error = result.unwrap_err();
        assert_eq!(error.code.0, -32803, "{error:?}");
        assert!(error.message.contains("the worker gave up"), "{error:?}");

        // The failure is a dead letter; retrying it queues a new task.
        let letters = client.command::<DeadLetters>(NoParams {}).await.unwrap();
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].name, "ls");
        assert_eq!(letters[0].error, "the worker gave up");
        let retried = client
            .command::<RetryDeadLetter>(RetryDeadLetterParams { id: letters[0].id })
            .await
            .unwrap();
        assert!(
            client
                .command::<DeadLetters>(NoParams {})
                .await
                .unwrap()
                .is_empty()
        );
        let waiting = pending(&client, 1).await;
        assert_eq!(waiting[0].task_id, retried.task_id);

        // Cancelling it by id empties the lane.
        let cancelled = client
            .command::<Cancel>(CancelParams {
                id: Some(CancelTarget::Task(retried.task_id)),
            })
            .await
            .unwrap();
        assert_eq!((cancelled.tasks, cancelled.commands), (1, 0));
        pending(&client, 0).await;

        // The status bar's feed saw the dead letter and ends with nothing queued.
        client
            .event("a lane status with the dead letter", |e| {
                matches!(e, ServerEvent::LaneStatus(s)
                    if s.lanes[Lane::Query.priority()].dead_lettered == 1
                        && s.lanes[Lane::Query.priority()].queued == 0
                        && s.lanes[Lane::Query.priority()].cancelled == 1)
            })
            .await;
        client.shutdown_and_exit().await;
    })
    .await;
}

#[tokio::test]
async fn lane_status_is_sent_after_initialized_and_on_change() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), "alpha\n").unwrap();
        let (mut client, _) = LspClient::initialized(ClientOptions::new(dir.path())).await;
        let ServerEvent::LaneStatus(first) = client
            .event("the first lane status", |e| {
                matches!(e, ServerEvent::LaneStatus(_))
            })
            .await
        else {
            unreachable!()
        };
        let lanes: Vec<Lane> = first.lanes.iter().map(|l| l.lane).collect();
        assert_eq!(lanes, Lane::ALL);
        assert!(first.lanes.iter().all(|l| l.queued == 0 && l.running == 0));
        let started = Instant::now();
        for _ in 0..3 {
            client
                .command::<RunTool>(RunToolParams {
                    name: "read".into(),
                    arguments: json!({"path": "a.txt"}),
                })
                .await
                .unwrap();
        }
        client
            .event("a lane status counting the reads", |e| {
                matches!(e, ServerEvent::LaneStatus(s) if s.lanes[Lane::Query.priority()].done == 3)
            })
            .await;
        // Each read changes the figures several times (queued, started, finished); the
        // notifications after the first are coalesced to at most one per 100 ms.
        let statuses = client
            .history
            .iter()
            .filter(|e| matches!(e, ServerEvent::LaneStatus(_)))
            .count()
            - 1;
        let allowed = started.elapsed().as_millis() as usize / 100 + 1;
        assert!(
            statuses <= allowed,
            "{statuses} statuses in {:?}",
            started.elapsed()
        );
        client.shutdown_and_exit().await;
    })
    .await;
}

#[tokio::test]
async fn cancel_request_cancels_the_lane_task_of_the_request() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let mut options = ClientOptions::new(dir.path());
        options.initialization_options = Some(json!({"lanes": {"query": {"mode": "external"}}}));
        let (client, _) = LspClient::initialized(options).await;
        let call = client.command::<RunTool>(RunToolParams {
            name: "glob".into(),
            arguments: json!({"pattern": "**/*.rs"}),
        });
        let canceller = async {
            pending(&client, 1).await;
            let id = client.sent_request_id("workspace/executeCommand").await;
            client.cancel_request(id);
            pending(&client, 0).await;
        };
        let (result, ()) = tokio::join!(call, canceller);
        let error = result.unwrap_err();
        assert_eq!(error.code.0, -32800, "{error:?}");
        let stats = client.command::<QueueStats>(NoParams {}).await.unwrap();
        let query = stats.lane(Lane::Query);
        assert_eq!((query.queued, query.running, query.cancelled), (0, 0, 1));
        client.shutdown_and_exit().await;
    })
    .await;
}
