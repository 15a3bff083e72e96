//! Per-attempt timeouts for every lane, enforced from one task and one heap.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::LaneError;
use super::engine::{Shared, TIMED_OUT};

/// A timeout to enforce.
pub(super) struct Watch {
    pub(super) deadline: Instant,
    pub(super) after: Duration,
    pub(super) attempt: u32,
    pub(super) shared: Weak<Shared>,
}

impl PartialEq for Watch {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline
    }
}
impl Eq for Watch {}
impl PartialOrd for Watch {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Watch {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.deadline.cmp(&other.deadline)
    }
}

/// Enforces per-attempt timeouts for every lane from one task and one heap.
pub(super) async fn watch_timeouts(mut rx: mpsc::UnboundedReceiver<Watch>) {
    let mut heap: BinaryHeap<Reverse<Watch>> = BinaryHeap::new();
    let mut prune_at = 1024;
    loop {
        let next = heap.peek().map(|Reverse(w)| w.deadline);
        tokio::select! {
            received = rx.recv() => match received {
                Some(watch) => heap.push(Reverse(watch)),
                None => return,
            },
            () = sleep_until(next), if next.is_some() => {
                let now = Instant::now();
                while heap.peek().is_some_and(|Reverse(w)| w.deadline <= now) {
                    let Some(Reverse(watch)) = heap.pop() else { break };
                    if let Some(shared) = watch.shared.upgrade()
                        && shared.running_attempt.load(Ordering::Acquire) == watch.attempt {
                            shared.stop(TIMED_OUT, LaneError::TimedOut(watch.after));
                        }
                }
            }
        }
        // Entries of attempts that finished long before their deadline pile up under a busy
        // lane with a long timeout; drop them now and then.
        if heap.len() >= prune_at {
            heap.retain(|Reverse(w)| {
                w.shared
                    .upgrade()
                    .is_some_and(|s| s.running_attempt.load(Ordering::Acquire) == w.attempt)
            });
            prune_at = (heap.len() * 2).max(1024);
        }
    }
}

pub(super) async fn sleep_until(deadline: Option<Instant>) {
    if let Some(deadline) = deadline {
        tokio::time::sleep_until(deadline.into()).await;
    }
}
