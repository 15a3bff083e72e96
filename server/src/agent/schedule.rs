//! The turn scheduler: one model turn's tool calls on the lanes, in the model's order.
//!
//! Consecutive parallel-safe calls are all handed to their lanes at once and run together.
//! A call that is not parallel-safe is a barrier: it waits for every earlier call of the
//! turn, runs alone, and every later call waits for it. Results come back indexed by the
//! model's order whatever order they finished in.
//!
//! The scheduler knows nothing of tools: it takes lane tasks and whether each is a barrier,
//! so the mutating tools (Execute lane, editor round trips) slot in without changing it, and
//! its ordering is tested here with tasks that record when they start and finish.

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

use crate::lanes::{LaneError, Lanes, Task, TaskOutput};

/// One call of a turn, as the scheduler sees it.
pub(crate) enum Step<T> {
    /// Nothing to run: its answer is known already (unusable arguments, an unknown tool).
    /// It neither waits for nor holds back anything.
    Answered,
    /// Runs alongside its parallel-safe neighbours.
    Parallel(Task<T>),
    /// Waits for every earlier call, runs alone, and holds back every later one.
    Barrier(Task<T>),
}

/// What the scheduler reports as calls start and finish.
pub(crate) enum Progress<'a, T> {
    /// Call `index` was handed to its lane.
    Started(usize),
    /// Call `index` finished after `Duration`.
    Finished(usize, &'a Result<T, LaneError>, Duration),
}

/// Runs `steps` and returns each call's result at its index (`None` for
/// [`Step::Answered`]). Once `token` is cancelled, calls not yet started are not started and
/// come back [`LaneError::Cancelled`].
///
/// Steps are pulled one at a time, each after the one before it was handed to its lane, so
/// building a task (parsing arguments, compiling a pattern) overlaps with the calls already
/// running instead of delaying the first.
pub(crate) async fn run<T: TaskOutput>(
    lanes: &Lanes,
    steps: impl IntoIterator<Item = Step<T>>,
    token: &CancellationToken,
    mut progress: impl FnMut(Progress<'_, T>),
) -> Vec<Option<Result<T, LaneError>>> {
    let mut results: Vec<Option<Result<T, LaneError>>> = Vec::new();
    let mut running = FuturesUnordered::new();
    for (index, step) in steps.into_iter().enumerate() {
        results.push(None);
        let (task, barrier) = match step {
            Step::Answered => continue,
            Step::Parallel(task) => (task, false),
            Step::Barrier(task) => (task, true),
        };
        if barrier {
            drain(&mut running, &mut results, &mut progress).await;
        }
        if token.is_cancelled() {
            results[index] = Some(Err(LaneError::Cancelled));
            continue;
        }
        progress(Progress::Started(index));
        let started = Instant::now();
        let handle = lanes.submit(task);
        running.push(async move { (index, started, handle.await) });
        if barrier {
            drain(&mut running, &mut results, &mut progress).await;
        }
    }
    drain(&mut running, &mut results, &mut progress).await;
    results
}

/// Waits for every running call, reporting each as it finishes.
async fn drain<T, F>(
    running: &mut FuturesUnordered<F>,
    results: &mut [Option<Result<T, LaneError>>],
    progress: &mut impl FnMut(Progress<'_, T>),
) where
    F: Future<Output = (usize, Instant, Result<T, LaneError>)>,
{
    while let Some((index, started, result)) = running.next().await {
        progress(Progress::Finished(index, &result, started.elapsed()));
        results[index] = Some(result);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use parking_lot::{Condvar, Mutex};

    use super::*;
    use crate::lanes::{Lane, LanesConfig, TaskError};

    /// Start and finish marks, in the order they happened.
    #[derive(Default)]
    struct Log(Mutex<Vec<String>>);

    impl Log {
        fn mark(&self, what: String) {
            self.0.lock().push(what);
        }
        fn position(&self, what: &str) -> usize {
            let log = self.0.lock();
            log.iter()
                .position(|m| m == what)
                .unwrap_or_else(|| panic!("{what} never happened: {log:?}"))
        }
    }

    /// A rendezvous of `n` parties that gives up after a deadline instead of hanging: it
    /// returns whether all `n` arrived.
    struct Rendezvous {
        n: usize,
        arrived: Mutex<usize>,
        all: Condvar,
    }

    impl Rendezvous {
        fn new(n: usize) -> Arc<Rendezvous> {
            Arc::new(Rendezvous {
                n,
                arrived: Mutex::new(0),
                all: Condvar::new(),
            })
        }
        fn wait(&self) -> bool {
            let mut arrived = self.arrived.lock();
            *arrived += 1;
            self.all.notify_all();
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while *arrived < self.n {
                if self.all.wait_until(&mut arrived, deadline).timed_out() {
                    return false;
                }
            }
            true
        }
    }

    fn task(
        lane: Lane,
        name: &str,
        log: &Arc<Log>,
        rendezvous: Option<Arc<Rendezvous>>,
    ) -> Task<String> {
        let log = Arc::clone(log);
        let name = name.to_string();
        Task::blocking(lane, name.clone(), move |_| {
            log.mark(format!("start {name}"));
            if let Some(r) = &rendezvous {
                if !r.wait() {
                    return Err(TaskError::fatal(format!("{name}: the others never came")));
                }
            } else {
                std::thread::sleep(Duration::from_millis(5));
            }
            log.mark(format!("finish {name}"));
            Ok(name.clone())
        })
    }

    fn lanes() -> Lanes {
        Lanes::new(LanesConfig::default()).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_between_two_reads_waits_for_the_first_and_holds_back_the_second() {
        let lanes = lanes();
        let log = Arc::new(Log::default());
        let both = Rendezvous::new(2);
        let steps = vec![
            Step::Parallel(task(Lane::Query, "read-a", &log, Some(Arc::clone(&both)))),
            Step::Parallel(task(Lane::Query, "read-b", &log, Some(Arc::clone(&both)))),
            Step::Barrier(task(Lane::Execute, "write", &log, None)),
            Step::Parallel(task(Lane::Query, "read-c", &log, None)),
            Step::Parallel(task(Lane::Query, "read-d", &log, None)),
        ];
        let results = tokio::time::timeout(
            Duration::from_secs(20),
            run(&lanes, steps, &CancellationToken::new(), |_| {}),
        )
        .await
        .unwrap();
        let names: Vec<String> = results.into_iter().map(|r| r.unwrap().unwrap()).collect();
        assert_eq!(names, ["read-a", "read-b", "write", "read-c", "read-d"]);
        // read-a and read-b met at a rendezvous, so they truly ran at once.
        let write = log.position("start write");
        assert!(log.position("finish read-a") < write);
        assert!(log.position("finish read-b") < write);
        let written = log.position("finish write");
        assert!(written < log.position("start read-c"));
        assert!(written < log.position("start read-d"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_calls_all_run_at_once_and_results_keep_the_call_order() {
        let lanes = lanes();
        let log = Arc::new(Log::default());
        let n = 16;
        let all = Rendezvous::new(n);
        let steps: Vec<_> = (0..n)
            .map(|i| {
                Step::Parallel(task(
                    Lane::Query,
                    &format!("r{i}"),
                    &log,
                    Some(Arc::clone(&all)),
                ))
            })
            .collect();
        let mut finished = Vec::new();
        let results = tokio::time::timeout(
            Duration::from_secs(20),
            run(&lanes, steps, &CancellationToken::new(), |p| {
                if let Progress::Finished(i, _, _) = p {
                    finished.push(i);
                }
            }),
        )
        .await
        .unwrap();
        let names: Vec<String> = results.into_iter().map(|r| r.unwrap().unwrap()).collect();
        let expected: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
        assert_eq!(
            names, expected,
            "every call met the others and results keep the order"
        );
        finished.sort_unstable();
        assert_eq!(finished, (0..n).collect::<Vec<_>>());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn answered_calls_neither_wait_nor_block_and_barriers_in_a_row_run_one_by_one() {
        let lanes = lanes();
        let log = Arc::new(Log::default());
        let steps = vec![
            Step::Barrier(task(Lane::Execute, "w1", &log, None)),
            Step::Answered,
            Step::Barrier(task(Lane::Execute, "w2", &log, None)),
            Step::Parallel(task(Lane::Query, "r", &log, None)),
        ];
        let results = run(&lanes, steps, &CancellationToken::new(), |_| {}).await;
        assert!(results[1].is_none());
        assert!(log.position("finish w1") < log.position("start w2"));
        assert!(log.position("finish w2") < log.position("start r"));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_cancellation_no_further_call_starts() {
        let lanes = lanes();
        let log = Arc::new(Log::default());
        let token = CancellationToken::new();
        let cancel = token.clone();
        let steps = vec![
            Step::Barrier(Task::blocking(Lane::Execute, "w", move |_| {
                cancel.cancel();
                Ok("w".to_string())
            })),
            Step::Parallel(task(Lane::Query, "r", &log, None)),
        ];
        let results = run(&lanes, steps, &token, |_| {}).await;
        assert_eq!(results[0].clone().unwrap().unwrap(), "w");
        assert_eq!(results[1].clone().unwrap(), Err(LaneError::Cancelled));
        assert!(log.0.lock().is_empty(), "the read never started");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_step_is_built_after_the_one_before_was_handed_to_its_lane() {
        let lanes = lanes();
        let log = Arc::new(Log::default());
        let first = Rendezvous::new(2);
        let steps = (0..2).map(|i| {
            if i == 1 {
                // Built only once the first call runs: it waits for that call to start.
                assert!(first.wait(), "the first call was not running yet");
                log.mark("built second".into());
            }
            let first = Arc::clone(&first);
            let log = Arc::clone(&log);
            Step::Parallel(Task::blocking(Lane::Query, format!("c{i}"), move |_| {
                if i == 0 && !first.wait() {
                    return Err(TaskError::fatal("the second step never came"));
                }
                log.mark(format!("ran c{i}"));
                Ok(i)
            }))
        });
        let results = tokio::time::timeout(
            Duration::from_secs(20),
            run(&lanes, steps, &CancellationToken::new(), |_| {}),
        )
        .await
        .unwrap();
        let values: Vec<usize> = results.into_iter().map(|r| r.unwrap().unwrap()).collect();
        assert_eq!(values, [0, 1]);
        assert!(log.position("built second") < log.position("ran c1"));
    }
}
