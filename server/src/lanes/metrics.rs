//! Per-lane counters and latency histograms, and the plain snapshot that serializes to JSON.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::{Lane, LaneConfig};

/// Latency percentiles of one histogram, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Percentiles {
    /// How many values were recorded.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Largest value.
    pub max_us: u64,
}

/// One lane's figures at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaneMetrics {
    /// The lane.
    pub lane: Lane,
    /// Tasks submitted (a retry is not a new submission; a replay is).
    pub submitted: u64,
    /// Tasks that produced a result.
    pub completed: u64,
    /// Tasks that failed for good.
    pub failed: u64,
    /// Retries scheduled.
    pub retried: u64,
    /// Tasks cancelled.
    pub cancelled: u64,
    /// Tasks whose attempt ran past the timeout.
    pub timed_out: u64,
    /// Tasks put in the dead-letter queue.
    pub dead_lettered: u64,
    /// Tasks waiting now: for a slot, for a retry, or for an external worker.
    pub queued: u64,
    /// Tasks running now (claimed, in an external lane).
    pub running: u64,
    /// Time from queued to started.
    pub queue_wait: Percentiles,
    /// Time from started to finished.
    pub run_time: Percentiles,
    /// The settings in force.
    pub config: LaneConfig,
}

/// The whole engine's figures at one moment, taken under one lock so they add up:
/// `submitted = completed + failed + cancelled + timed_out + queued + running` per lane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSnapshot {
    /// Per lane, highest priority first.
    pub lanes: Vec<LaneMetrics>,
    /// Tasks holding a slot of the global cap now.
    pub global_running: u64,
    /// The global cap in force.
    pub global_max_concurrency: Option<usize>,
    /// Dead letters kept now.
    pub dead_letters: u64,
    /// How many dead letters are kept at most.
    pub dead_letter_capacity: u64,
    /// Dead letters evicted to make room.
    pub dead_letters_evicted: u64,
    /// Named counters of the pieces built on the lanes (`read_cache.hits`, ...).
    pub counters: BTreeMap<String, u64>,
}

impl MetricsSnapshot {
    /// One lane's figures.
    pub fn lane(&self, lane: Lane) -> &LaneMetrics {
        &self.lanes[lane.priority()]
    }
}

pub(crate) struct Metrics {
    pub submitted: u64,
    pub completed: u64,
    pub failed: u64,
    pub retried: u64,
    pub cancelled: u64,
    pub timed_out: u64,
    pub dead_lettered: u64,
    queue_wait: Option<Histogram<u64>>,
    run_time: Option<Histogram<u64>>,
}

impl Metrics {
    pub fn new() -> Metrics {
        // 1 µs to one hour at 2 significant figures: about 10 KiB per histogram.
        let histogram = || Histogram::new_with_bounds(1, 3_600_000_000, 2).ok();
        Metrics {
            submitted: 0,
            completed: 0,
            failed: 0,
            retried: 0,
            cancelled: 0,
            timed_out: 0,
            dead_lettered: 0,
            queue_wait: histogram(),
            run_time: histogram(),
        }
    }

    pub fn record_queue_wait(&mut self, d: Duration) {
        record(&mut self.queue_wait, d);
    }

    pub fn record_run_time(&mut self, d: Duration) {
        record(&mut self.run_time, d);
    }

    pub fn snapshot(
        &self,
        lane: Lane,
        queued: u64,
        running: u64,
        config: LaneConfig,
    ) -> LaneMetrics {
        LaneMetrics {
            lane,
            submitted: self.submitted,
            completed: self.completed,
            failed: self.failed,
            retried: self.retried,
            cancelled: self.cancelled,
            timed_out: self.timed_out,
            dead_lettered: self.dead_lettered,
            queued,
            running,
            queue_wait: percentiles(self.queue_wait.as_ref()),
            run_time: percentiles(self.run_time.as_ref()),
            config,
        }
    }
}

fn record(histogram: &mut Option<Histogram<u64>>, d: Duration) {
    if let Some(h) = histogram {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
        h.saturating_record(us);
    }
}

fn percentiles(histogram: Option<&Histogram<u64>>) -> Percentiles {
    match histogram {
        Some(h) if !h.is_empty() => Percentiles {
            count: h.len(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            max_us: h.max(),
        },
        _ => Percentiles::default(),
    }
}

/// A named counter of a piece built on the lanes, reported in [`MetricsSnapshot::counters`].
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds `n`.
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    /// Adds one.
    pub fn incr(&self) {
        self.add(1);
    }

    /// The current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}
