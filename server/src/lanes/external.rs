//! External lanes: tasks that wait for a worker outside the engine, which claims them with a
//! lease and completes them; a lease that runs out returns its task to the front of the queue.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::engine::{Engine, Job, State};
use super::{EngineError, EventKind, FinishStatus, Lane, LaneMode, Lanes, TaskError, TaskId};

pub(super) struct Claim {
    pub(super) job: Job,
    pub(super) lease_expires: Instant,
    pub(super) claimed_at: Instant,
}

/// A task waiting for an external worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingTask {
    /// The task.
    pub task_id: TaskId,
    /// Its lane.
    pub lane: Lane,
    /// Its name (a tool's name).
    pub name: String,
    /// Its session, if any.
    pub session: Option<String>,
    /// What to do (a tool's arguments).
    pub payload: Value,
    /// 1 for the first attempt.
    pub attempt: u32,
}

/// A task an external worker holds until its lease expires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimedTask {
    /// Name this lease when completing the task.
    pub lease_id: u64,
    /// The task.
    pub task: PendingTask,
    /// How long the lease lasts from the claim.
    pub lease_ms: u64,
}

impl Lanes {
    /// Tasks waiting for an external worker, in `lane` or in every external lane.
    pub fn pending_tasks(&self, lane: Option<Lane>) -> Vec<PendingTask> {
        let mut st = self.engine.state.lock();
        st.expire_leases(&self.engine);
        Lane::ALL
            .iter()
            .filter(|&&l| {
                lane.is_none_or(|want| want == l) && st.config.lane(l).mode == LaneMode::External
            })
            .flat_map(|&l| st.lanes[l.priority()].queue.iter().map(Job::pending))
            .collect()
    }

    /// Claims up to `max` pending tasks of an external lane, oldest first, within the lane's
    /// `max_concurrency`. A claim not completed within `lease` returns to pending.
    pub fn claim(&self, lane: Lane, max: usize, lease: Duration) -> Vec<ClaimedTask> {
        let now = Instant::now();
        let mut st = self.engine.state.lock();
        st.expire_leases(&self.engine);
        if st.config.lane(lane).mode != LaneMode::External {
            return Vec::new();
        }
        let mut claimed = Vec::new();
        while claimed.len() < max && st.has_slot_external(lane) {
            let Some(job) = st.lanes[lane.priority()].queue.pop_front() else {
                break;
            };
            if job.shared.token.is_cancelled() {
                st.end_unstarted(&self.engine, job, FinishStatus::Cancelled);
                continue;
            }
            // A claim holds a slot of its lane (not of the global cap: the work runs elsewhere).
            st.hold(&self.engine, &job);
            let lease_id = st.next_lease;
            st.next_lease += 1;
            claimed.push(ClaimedTask {
                lease_id,
                task: job.pending(),
                lease_ms: u64::try_from(lease.as_millis()).unwrap_or(u64::MAX),
            });
            let claim = Claim {
                job,
                lease_expires: now + lease,
                claimed_at: now,
            };
            st.lanes[lane.priority()].claims.insert(lease_id, claim);
        }
        claimed
    }

    /// Completes a claimed task with the worker's result, as if the lane had run it: the
    /// submitter receives it, a retryable error is retried, a final one is dead-lettered.
    pub fn complete(
        &self,
        lease_id: u64,
        result: Result<Value, TaskError>,
    ) -> Result<(), EngineError> {
        let claim = {
            let mut st = self.engine.state.lock();
            st.expire_leases(&self.engine);
            let found = Lane::ALL
                .iter()
                .find_map(|l| st.lanes[l.priority()].claims.remove(&lease_id));
            // Its slot is released by `finish`, like any running task's.
            found.ok_or(EngineError::UnknownLease(lease_id))?
        };
        let run_time = claim.claimed_at.elapsed();
        let job = claim.job;
        let result =
            result.and_then(|value| (job.spec.codec.decode)(value).map_err(TaskError::fatal));
        self.engine.finish(job, Ok(result), run_time);
        Ok(())
    }
}

impl State {
    /// Whether an external worker may claim one more task of `lane` now.
    pub(super) fn has_slot_external(&self, lane: Lane) -> bool {
        let running = self.lanes[lane.priority()].running;
        self.config
            .lane(lane)
            .max_concurrency
            .is_none_or(|max| running < max)
    }

    /// Returns claims whose lease ran out to the front of their queue.
    pub(super) fn expire_leases(&mut self, engine: &Engine) {
        let now = Instant::now();
        for lane in Lane::ALL {
            let claims = &mut self.lanes[lane.priority()].claims;
            if claims.is_empty() {
                continue;
            }
            let expired: Vec<u64> = claims
                .iter()
                .filter(|(_, c)| c.lease_expires <= now)
                .map(|(k, _)| *k)
                .collect();
            for lease in expired {
                let Some(claim) = self.lanes[lane.priority()].claims.remove(&lease) else {
                    continue;
                };
                let mut job = claim.job;
                self.release(&job);
                job.shared.running_attempt.store(0, Ordering::Release);
                job.enqueued_at = now;
                engine.emit(&job, EventKind::Queued);
                self.lanes[lane.priority()].queue.push_front(job);
            }
        }
    }
}

impl Job {
    pub(super) fn pending(&self) -> PendingTask {
        PendingTask {
            task_id: self.shared.id,
            lane: self.spec.lane,
            name: self.spec.name.to_string(),
            session: self.spec.session.as_deref().map(str::to_string),
            payload: self.spec.payload.clone(),
            attempt: self.attempt,
        }
    }
}
