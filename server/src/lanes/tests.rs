//! Behaviour of the lane engine as a submitter sees it. Concurrency is proven with gates and
//! high-water counters of tasks running at once, never with sleeps.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use super::*;

const PATIENCE: Duration = Duration::from_secs(10);

/// A door blocking tasks until the test opens it; a task that waits too long fails loudly
/// instead of hanging the suite.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

impl Gate {
    fn wait(&self) {
        let open = self.open.lock().unwrap();
        let (open, timeout) = self
            .cv
            .wait_timeout_while(open, PATIENCE, |open| !*open)
            .unwrap();
        assert!(*open && !timeout.timed_out(), "gate never opened");
    }

    fn open(&self) {
        *self.open.lock().unwrap() = true;
        self.cv.notify_all();
    }
}

/// Counts tasks running at once and remembers the most.
#[derive(Default)]
struct Tracker {
    now: AtomicUsize,
    high: AtomicUsize,
}

impl Tracker {
    fn enter(&self) -> usize {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.high.fetch_max(now, Ordering::SeqCst);
        now
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    /// Waits until `n` tasks are inside at once (a barrier that fails instead of hanging).
    fn wait_for(&self, n: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.now.load(Ordering::SeqCst) < n {
            assert!(
                Instant::now() < deadline,
                "never saw {n} tasks running at once"
            );
            std::thread::yield_now();
        }
    }
}

async fn eventually(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn config(patch: serde_json::Value) -> LanesConfig {
    LanesConfig::from_value(patch).unwrap()
}

fn lanes(patch: serde_json::Value) -> Lanes {
    Lanes::new(config(patch)).unwrap()
}

fn assert_books_balance(lanes: &Lanes) {
    let snapshot = lanes.metrics();
    for m in &snapshot.lanes {
        assert_eq!(
            m.submitted,
            m.completed + m.failed + m.cancelled + m.timed_out + m.queued + m.running,
            "books of the {} lane do not balance: {m:?}",
            m.lane
        );
    }
}

fn recorder(log: &Arc<Mutex<Vec<String>>>, lane: Lane, name: &str) -> Task<()> {
    let log = Arc::clone(log);
    let label = name.to_string();
    Task::blocking(lane, name.to_string(), move |_| {
        log.lock().unwrap().push(label.clone());
        Ok(())
    })
}

fn gated(lane: Lane, gate: &Arc<Gate>, tracker: &Arc<Tracker>) -> Task<()> {
    let (gate, tracker) = (Arc::clone(gate), Arc::clone(tracker));
    Task::blocking(lane, "gated", move |_| {
        tracker.enter();
        gate.wait();
        tracker.leave();
        Ok(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_freed_slot_goes_to_the_highest_priority_lane_fifo_within_it() {
    let lanes = lanes(json!({"global_max_concurrency": 1}));
    let gate = Arc::new(Gate::default());
    let tracker = Arc::new(Tracker::default());
    let blocker = lanes.submit(gated(Lane::Query, &gate, &tracker));
    tracker.wait_for(1);

    let log = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<_> = [
        (Lane::Generate, "g1"),
        (Lane::Execute, "e1"),
        (Lane::Query, "q1"),
        (Lane::Generate, "g2"),
        (Lane::Query, "q2"),
        (Lane::Execute, "e2"),
    ]
    .into_iter()
    .map(|(lane, name)| lanes.submit(recorder(&log, lane, name)))
    .collect();
    // Control is never queued behind anything: it runs while the only slot is taken.
    lanes
        .submit(recorder(&log, Lane::Control, "c1"))
        .await
        .unwrap();
    assert_eq!(*log.lock().unwrap(), ["c1"]);

    gate.open();
    blocker.await.unwrap();
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(
        *log.lock().unwrap(),
        ["c1", "q1", "q2", "e1", "e2", "g1", "g2"]
    );
    assert_books_balance(&lanes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_of_one_lane_start_in_submission_order() {
    let lanes = lanes(json!({"query": {"max_concurrency": 1}}));
    let log = Arc::new(Mutex::new(Vec::new()));
    let names: Vec<String> = (0..50).map(|i| format!("t{i}")).collect();
    let handles: Vec<_> = names
        .iter()
        .map(|n| lanes.submit(recorder(&log, Lane::Query, n)))
        .collect();
    for handle in handles {
        handle.await.unwrap();
    }
    assert_eq!(*log.lock().unwrap(), names);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_max_concurrency_is_the_one_in_force() {
    // The regression this project exists to avoid: `query_concurrency = 5` clamped to 4.
    // The tasks meet in waves at a barrier of five: under a limit of four no wave could ever
    // complete (the test times out and fails), and the high-water mark shows none above five.
    let lanes = lanes(json!({"query": {"max_concurrency": 5}}));
    assert_eq!(lanes.config().query.max_concurrency, Some(5));
    // The pool starts small and grows when a task finds every thread taken.
    assert!(lanes.pool().current_num_threads() <= crate::lanes::cores());
    let barrier = Arc::new(std::sync::Barrier::new(5));
    let tracker = Arc::new(Tracker::default());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (barrier, tracker) = (Arc::clone(&barrier), Arc::clone(&tracker));
            Task::blocking(Lane::Query, "five", move |_| {
                tracker.enter();
                barrier.wait();
                tracker.leave();
                Ok(())
            })
        })
        .collect();
    let results = tokio::time::timeout(PATIENCE, lanes.submit_batch(tasks).join())
        .await
        .expect("five tasks never ran at once: the configured limit is not in force");
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(tracker.high.load(Ordering::SeqCst), 5);
    assert_eq!(
        lanes.metrics().lane(Lane::Query).config.max_concurrency,
        Some(5)
    );
    assert!(lanes.pool().current_num_threads() >= 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_slots_let_a_lower_lane_run_under_a_saturated_global_cap() {
    let lanes = lanes(json!({"global_max_concurrency": 2, "generate": {"min_concurrency": 1}}));
    let gate = Arc::new(Gate::default());
    let tracker = Arc::new(Tracker::default());
    let queries: Vec<_> = (0..5)
        .map(|_| lanes.submit(gated(Lane::Query, &gate, &tracker)))
        .collect();
    tracker.wait_for(1);
    // One slot of two is Generate's: only one query may hold the other.
    assert_eq!(lanes.metrics().lane(Lane::Query).running, 1);
    assert_eq!(lanes.metrics().lane(Lane::Query).queued, 4);
    // Generate is the lowest priority, yet its reserved slot is there for it.
    lanes
        .submit(Task::future(Lane::Generate, "model", |_| async {
            Ok(7u32)
        }))
        .await
        .unwrap();
    assert_eq!(tracker.high.load(Ordering::SeqCst), 1);
    gate.open();
    for q in queries {
        q.await.unwrap();
    }
    assert_books_balance(&lanes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_session_limit_runs_one_session_at_a_time_and_others_alongside() {
    let lanes = lanes(json!({"execute": {"max_concurrency": 4, "max_per_session": 1}}));
    let gate = Arc::new(Gate::default());
    let tracker = Arc::new(Tracker::default());
    let mut handles: Vec<_> = (0..3)
        .map(|_| lanes.submit(gated(Lane::Execute, &gate, &tracker).session("a")))
        .collect();
    handles.push(lanes.submit(gated(Lane::Execute, &gate, &tracker).session("b")));
    tracker.wait_for(2);
    let m = lanes.metrics();
    assert_eq!(
        (m.lane(Lane::Execute).running, m.lane(Lane::Execute).queued),
        (2, 2)
    );
    gate.open();
    for h in handles {
        h.await.unwrap();
    }
    assert_eq!(tracker.high.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retryable_failures_are_retried_and_counted() {
    let lanes =
        lanes(json!({"query": {"retry": {"policy": "fixed", "max_attempts": 3, "delay_ms": 1}}}));
    let attempts = Arc::new(AtomicU32::new(0));
    let seen = Arc::clone(&attempts);
    let value = lanes
        .submit(Task::blocking(Lane::Query, "flaky", move |ctx| {
            seen.store(ctx.attempt(), Ordering::SeqCst);
            if ctx.attempt() < 3 {
                Err(TaskError::retryable("not yet"))
            } else {
                Ok(ctx.attempt())
            }
        }))
        .await
        .unwrap();
    assert_eq!(value, 3);
    assert_eq!(attempts.load(Ordering::SeqCst), 3);
    let m = lanes.metrics();
    assert_eq!(
        (m.lane(Lane::Query).retried, m.lane(Lane::Query).completed),
        (2, 1)
    );
    assert_books_balance(&lanes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_waited_at_least() {
    let lanes = lanes(json!({"generate": {"retry": {
        "policy": "exponential", "max_attempts": 2, "base_delay_ms": 1, "max_delay_ms": 2}}}));
    let starts = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&starts);
    lanes
        .submit(Task::future(Lane::Generate, "rate-limited", move |ctx| {
            log.lock().unwrap().push(Instant::now());
            async move {
                if ctx.attempt() == 1 {
                    Err(TaskError::retryable("429 too many requests")
                        .with_retry_after(Duration::from_millis(300)))
                } else {
                    Ok(())
                }
            }
        }))
        .await
        .unwrap();
    let starts = starts.lock().unwrap();
    assert_eq!(starts.len(), 2);
    let gap = starts[1] - starts[0];
    assert!(
        gap >= Duration::from_millis(300),
        "retried after {gap:?}, before Retry-After"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_land_in_a_bounded_dead_letter_queue() {
    let lanes = lanes(json!({
        "dead_letter_capacity": 2,
        "query": {"retry": {"policy": "fixed", "max_attempts": 2, "delay_ms": 1}},
    }));
    for i in 0..3u32 {
        let err = lanes
            .submit(Task::<()>::blocking(
                Lane::Query,
                format!("bad{i}"),
                move |_| {
                    Err(TaskError::fatal(format!(
                        "`limit` must be a positive integer, got -{i}"
                    )))
                },
            ))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                LaneError::Failed {
                    attempts: 1,
                    dead_letter: Some(_),
                    ..
                }
            ),
            "{err:?}"
        );
    }
    let exhausted = lanes
        .submit(Task::<()>::blocking(Lane::Query, "flaky", |_| {
            Err(TaskError::retryable("still down"))
        }))
        .await
        .unwrap_err();
    assert_eq!(exhausted.to_string(), "still down (after 2 attempts)");

    let letters = lanes.dead_letters();
    let names: Vec<&str> = letters.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["bad2", "flaky"]);
    assert_eq!(
        letters[0].error,
        "`limit` must be a positive integer, got -2"
    );
    assert_eq!((letters[1].attempts, letters[1].lane), (2, Lane::Query));
    let m = lanes.metrics();
    assert_eq!((m.dead_letters, m.dead_letters_evicted), (2, 2));
    assert_eq!(m.lane(Lane::Query).dead_lettered, 4);
    assert_eq!(lanes.clear_dead_letters(), 2);
    assert!(lanes.dead_letters().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_can_be_replayed_in_its_lane() {
    let lanes = lanes(json!({}));
    let healthy = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&healthy);
    let err = lanes
        .submit(
            Task::blocking(Lane::Query, "read", move |_| {
                if flag.load(Ordering::SeqCst) {
                    Ok("contents".to_string())
                } else {
                    Err(TaskError::fatal("disk gone"))
                }
            })
            .payload(json!({"path": "src/lib.rs"})),
        )
        .await
        .unwrap_err();
    let LaneError::Failed {
        dead_letter: Some(id),
        ..
    } = err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        lanes.dead_letters()[0].payload,
        json!({"path": "src/lib.rs"})
    );
    assert!(lanes.replay(id + 100).is_none());

    healthy.store(true, Ordering::SeqCst);
    let replayed = lanes.replay(id).unwrap().await.unwrap();
    assert_eq!(replayed, json!("contents"));
    assert!(lanes.dead_letters().is_empty());
    assert_eq!(lanes.metrics().lane(Lane::Query).submitted, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_running_blocking_task_stops_it_promptly() {
    let lanes = lanes(json!({}));
    let tracker = Arc::new(Tracker::default());
    let inside = Arc::clone(&tracker);
    let handle = lanes.submit(Task::<()>::blocking(Lane::Query, "long grep", move |ctx| {
        inside.enter();
        // A long search that checks its token between files.
        for _file in 0.. {
            ctx.checkpoint()?;
            std::thread::yield_now();
        }
        Ok(())
    }));
    tracker.wait_for(1);
    assert!(lanes.cancel(handle.id()));
    assert_eq!(handle.await.unwrap_err(), LaneError::Cancelled);
    eventually("the lane drains", || {
        lanes.metrics().lane(Lane::Query).running == 0
    })
    .await;
    let m = lanes.metrics();
    assert_eq!(
        (m.lane(Lane::Query).cancelled, m.lane(Lane::Query).failed),
        (1, 0)
    );
    assert!(m.dead_letters == 0, "a cancelled task is not a failure");
    assert!(!lanes.cancel(9999));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_tasks_and_whole_sessions_can_be_cancelled() {
    let lanes = lanes(json!({"query": {"max_concurrency": 1}}));
    let gate = Arc::new(Gate::default());
    let tracker = Arc::new(Tracker::default());
    let running = lanes.submit(gated(Lane::Query, &gate, &tracker).session("s1"));
    tracker.wait_for(1);
    let queued: Vec<_> = (0..3)
        .map(|_| lanes.submit(gated(Lane::Query, &gate, &tracker).session("s1")))
        .collect();
    let other = lanes.submit(gated(Lane::Query, &gate, &tracker).session("s2"));
    assert_eq!(lanes.metrics().lane(Lane::Query).queued, 4);

    assert_eq!(lanes.cancel_session("s1"), 4);
    for q in queued {
        assert_eq!(q.await.unwrap_err(), LaneError::Cancelled);
    }
    assert_eq!(running.await.unwrap_err(), LaneError::Cancelled);
    gate.open();
    other.await.unwrap();
    eventually("the lane drains", || {
        lanes.metrics().lane(Lane::Query).running == 0
    })
    .await;
    assert_eq!(lanes.metrics().lane(Lane::Query).cancelled, 4);
    assert_books_balance(&lanes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_running_past_its_timeout_is_reported_as_timed_out() {
    let lanes = lanes(json!({"query": {"timeout_ms": 50}, "generate": {"timeout_ms": 50}}));
    let cooperative = lanes.submit(Task::<()>::blocking(Lane::Query, "slow", |ctx| {
        loop {
            ctx.checkpoint()?;
            std::thread::yield_now();
        }
    }));
    assert_eq!(
        cooperative.await.unwrap_err(),
        LaneError::TimedOut(Duration::from_millis(50))
    );
    let future = lanes.submit(Task::<()>::future(Lane::Generate, "stalled model", |_| {
        std::future::pending()
    }));
    let err = future.await.unwrap_err();
    assert_eq!(err.to_string(), "timed out after 50 ms");
    eventually("the lanes drain", || {
        let m = lanes.metrics();
        m.lane(Lane::Query).running == 0 && m.lane(Lane::Generate).running == 0
    })
    .await;
    let m = lanes.metrics();
    assert_eq!(
        (
            m.lane(Lane::Query).timed_out,
            m.lane(Lane::Generate).timed_out
        ),
        (1, 1)
    );
    assert_eq!(m.dead_letters, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_task_fails_alone() {
    let lanes = lanes(json!({}));
    let err = lanes
        .submit(Task::<()>::blocking(Lane::Query, "boom", |_| {
            panic!("index out of range")
        }))
        .await;
    let err = err.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("task panicked: index out of range"),
        "{err}"
    );
    let err = lanes
        .submit(Task::<()>::future(Lane::Generate, "boom", |_| async {
            panic!("async boom")
        }))
        .await;
    assert!(err.unwrap_err().to_string().contains("async boom"));
    // The engine keeps running.
    assert_eq!(
        lanes
            .submit(Task::blocking(Lane::Query, "fine", |_| Ok(1u8)))
            .await
            .unwrap(),
        1
    );
    assert_books_balance(&lanes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_workers_claim_with_leases_and_complete() {
    let lanes = lanes(json!({"execute": {"mode": "external"}}));
    let handle = lanes.submit(
        Task::<u64>::blocking(Lane::Execute, "bash", |_| {
            unreachable!("external lanes do not run tasks")
        })
        .payload(json!({"command": "make"})),
    );
    let pending = lanes.pending_tasks(Some(Lane::Execute));
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].name.as_str(), &pending[0].payload),
        ("bash", &json!({"command": "make"}))
    );

    let first = lanes.claim(Lane::Execute, 10, Duration::from_millis(30));
    assert_eq!(first.len(), 1);
    assert!(lanes.pending_tasks(None).is_empty());
    assert_eq!(lanes.metrics().lane(Lane::Execute).running, 1);
    // The worker vanishes; its lease runs out and the task is pending again.
    eventually("the lease expires", || lanes.pending_tasks(None).len() == 1).await;
    assert_eq!(lanes.metrics().lane(Lane::Execute).running, 0);

    let second = lanes.claim(Lane::Execute, 10, Duration::from_secs(60));
    assert_eq!(second.len(), 1);
    assert!(
        lanes.complete(first[0].lease_id, Ok(json!(1))).is_err(),
        "an expired lease cannot complete"
    );
    lanes.complete(second[0].lease_id, Ok(json!(42))).unwrap();
    assert_eq!(handle.await.unwrap(), 42);

    // A result of the wrong shape is the task's failure, not a crash.
    let handle = lanes.submit(Task::<u64>::blocking(Lane::Execute, "bash", |_| Ok(0)));
    let claim = lanes.claim(Lane::Execute, 1, Duration::from_secs(60));
    lanes
        .complete(claim[0].lease_id, Ok(json!("not a number")))
        .unwrap();
    assert!(
        handle
            .await
            .unwrap_err()
            .to_string()
            .contains("does not fit")
    );
    assert_books_balance(&lanes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_results_come_back_in_submission_order() {
    let lanes = lanes(json!({}));
    // Each task waits for the next one to finish, so they finish in reverse order.
    let finished: Arc<Vec<Gate>> = Arc::new((0..8).map(|_| Gate::default()).collect());
    let tasks: Vec<_> = (0..8usize)
        .map(|i| {
            let finished = Arc::clone(&finished);
            Task::blocking(Lane::Query, "chain", move |_| {
                if i + 1 < 8 {
                    finished[i + 1].wait();
                }
                finished[i].open();
                Ok(i)
            })
        })
        .collect();
    let results = lanes.submit_batch(tasks).join().await;
    let values: Vec<usize> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(values, (0..8).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_batches_of_cheap_work_run_inline_and_are_counted() {
    let lanes = lanes(json!({}));
    let caller = std::thread::current().id();
    let tasks: Vec<_> = (0..2)
        .map(|i| {
            Task::blocking(Lane::Query, "cheap", move |_| {
                Ok((i, std::thread::current().id() == caller))
            })
            .cheap()
        })
        .collect();
    let results: Vec<_> = lanes
        .submit_batch(tasks)
        .join()
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(results, [(0, true), (1, true)]);
    // Three are above the threshold: they go through the pool.
    let tasks: Vec<_> = (0..3)
        .map(|_| {
            Task::blocking(Lane::Query, "cheap", move |_| {
                Ok(std::thread::current().id() == caller)
            })
            .cheap()
        })
        .collect();
    let on_caller = lanes
        .submit_batch(tasks)
        .join()
        .await
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(on_caller, 0);
    assert_eq!(lanes.metrics().lane(Lane::Query).completed, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_changed_live_take_effect_at_once() {
    let lanes = lanes(json!({"query": {"max_concurrency": 1}}));
    let gate = Arc::new(Gate::default());
    let tracker = Arc::new(Tracker::default());
    let handles: Vec<_> = (0..40)
        .map(|_| lanes.submit(gated(Lane::Query, &gate, &tracker)))
        .collect();
    tracker.wait_for(1);
    let mut raised = lanes.config();
    raised.query.max_concurrency = Some(40);
    lanes.reconfigure(raised).unwrap();
    tracker.wait_for(40);
    assert_eq!(lanes.metrics().lane(Lane::Query).running, 40);
    gate.open();
    for h in handles {
        h.await.unwrap();
    }
    let mut bad = lanes.config();
    bad.query.max_concurrency = Some(0);
    assert!(lanes.reconfigure(bad).is_err());
    assert_eq!(lanes.config().query.max_concurrency, Some(40));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_hear_each_task_in_order_and_slow_ones_lag() {
    let lanes = lanes(json!({}));
    let mut events = lanes.subscribe();
    lanes
        .submit(Task::blocking(Lane::Query, "read", |_| Ok(())))
        .await
        .unwrap();
    let kinds: Vec<String> = (0..3)
        .map(|_| match events.try_recv().unwrap().kind {
            EventKind::Queued => "queued".to_string(),
            EventKind::Started { attempt, .. } => format!("started#{attempt}"),
            EventKind::Finished { status, .. } => format!("{status:?}"),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["queued", "started#1", "Completed"]);

    // A subscriber that never reads does not slow anything down; it learns what it missed.
    let mut slow = lanes.subscribe();
    let tasks: Vec<_> = (0..2000)
        .map(|_| Task::blocking(Lane::Query, "tiny", |_| Ok(())))
        .collect();
    for r in lanes.submit_batch(tasks).join().await {
        r.unwrap();
    }
    match slow.try_recv() {
        Err(tokio::sync::broadcast::error::TryRecvError::Lagged(missed)) => assert!(missed > 0),
        other => panic!("expected a lag notice, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn named_counters_appear_in_the_snapshot() {
    let lanes = lanes(json!({}));
    let hits = lanes.counter("read_cache.hits");
    hits.add(3);
    lanes.counter("read_cache.hits").incr();
    assert_eq!(lanes.metrics().counters["read_cache.hits"], 4);
    let json = serde_json::to_value(lanes.metrics()).unwrap();
    assert_eq!(json["lanes"][1]["lane"], "query");
    assert!(json["lanes"][1]["queueWait"]["p99Us"].is_u64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_books_balance_while_work_is_in_every_state() {
    let lanes = lanes(json!({"query": {"max_concurrency": 2}, "generate": {"timeout_ms": 20}}));
    let gate = Arc::new(Gate::default());
    let tracker = Arc::new(Tracker::default());
    let mut waiting: Vec<_> = (0..5)
        .map(|_| lanes.submit(gated(Lane::Query, &gate, &tracker)))
        .collect();
    tracker.wait_for(2);
    let _ = lanes
        .submit(Task::<()>::future(Lane::Generate, "hang", |_| {
            std::future::pending()
        }))
        .await;
    let _ = lanes
        .submit(Task::<()>::blocking(Lane::Execute, "fail", |_| {
            Err(TaskError::fatal("no"))
        }))
        .await;
    let cancel_me = waiting.pop().unwrap();
    lanes.cancel(cancel_me.id());
    assert_books_balance(&lanes); // running 2, queued 2, cancelled 1, failed 1, timed out 1
    let m = lanes.metrics();
    assert_eq!(
        (m.lane(Lane::Query).running, m.lane(Lane::Query).queued),
        (2, 2)
    );
    gate.open();
    for w in waiting {
        w.await.unwrap();
    }
    assert_books_balance(&lanes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parent_token_takes_queued_tasks_out_at_once_and_stops_running_ones() {
    let lanes = lanes(json!({"query": {"max_concurrency": 1}}));
    let gate = Arc::new(Gate::default());
    let tracker = Arc::new(Tracker::default());
    let request = tokio_util::sync::CancellationToken::new();
    // An unrelated task holds the only slot for the whole test.
    let blocker = lanes.submit(gated(Lane::Query, &gate, &tracker));
    tracker.wait_for(1);
    let queued: Vec<_> = (0..3)
        .map(|_| lanes.submit(gated(Lane::Query, &gate, &tracker).cancelled_by(&request)))
        .collect();
    assert_eq!(lanes.metrics().lane(Lane::Query).queued, 3);

    request.cancel();
    // Out of the queue while the slot is still taken: not when a slot frees.
    for q in queued {
        assert_eq!(q.await.unwrap_err(), LaneError::Cancelled);
    }
    assert_eq!(lanes.metrics().lane(Lane::Query).queued, 0);
    assert_eq!(lanes.metrics().lane(Lane::Query).running, 1);

    // A running task is reported cancelled at once, even before its work notices.
    let other = tokio_util::sync::CancellationToken::new();
    let slow = Arc::new(Gate::default());
    let stuck = Arc::clone(&slow);
    let running = lanes.submit(
        Task::<()>::blocking(Lane::Control, "uncooperative", move |_| {
            stuck.wait();
            Ok(())
        })
        .cancelled_by(&other),
    );
    eventually("it runs", || {
        lanes.metrics().lane(Lane::Control).running == 1
    })
    .await;
    other.cancel();
    assert_eq!(running.await.unwrap_err(), LaneError::Cancelled);
    slow.open();
    gate.open();
    blocker.await.unwrap();
    assert_eq!(
        tracker.high.load(Ordering::SeqCst),
        1,
        "no cancelled task ever ran"
    );
    eventually("the lanes drain", || {
        lanes.metrics().lane(Lane::Control).running == 0
    })
    .await;
    assert_books_balance(&lanes);
}
