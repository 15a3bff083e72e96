//! Lane configuration: per-lane limits, timeouts, retry policies and modes, with the
//! defaults of the design (docs/architecture.md, the README's lane table). Values are applied exactly as configured — never clamped.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{EngineError, Lane};

/// How a lane's tasks are executed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LaneMode {
    /// The engine runs the tasks itself.
    #[default]
    Internal,
    /// Tasks wait as pending work for an outside worker to claim with a lease and complete.
    External,
}

/// How often, and after how long, a retryable failure is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "policy", rename_all = "snake_case", deny_unknown_fields)]
pub enum RetryPolicy {
    /// One attempt only.
    None,
    /// Up to `max_attempts` attempts, `delay_ms` apart.
    Fixed {
        /// Total attempts, the first included.
        max_attempts: u32,
        /// Wait between attempts.
        delay_ms: u64,
    },
    /// Up to `max_attempts` attempts; before attempt `n + 1` the wait is drawn uniformly from
    /// `0..=min(max_delay_ms, base_delay_ms × 2^(n-1))` ("full jitter").
    Exponential {
        /// Total attempts, the first included.
        max_attempts: u32,
        /// The ceiling of the first wait.
        base_delay_ms: u64,
        /// The ceiling no wait exceeds (a `Retry-After` may still ask for more).
        max_delay_ms: u64,
    },
}

impl RetryPolicy {
    /// Total attempts allowed, the first included.
    pub fn max_attempts(&self) -> u32 {
        match *self {
            RetryPolicy::None => 1,
            RetryPolicy::Fixed { max_attempts, .. }
            | RetryPolicy::Exponential { max_attempts, .. } => max_attempts.max(1),
        }
    }

    /// The upper bound of the wait before attempt `failed_attempt + 1`, before any
    /// `Retry-After` is taken into account.
    pub fn ceiling(&self, failed_attempt: u32) -> Duration {
        match *self {
            RetryPolicy::None => Duration::ZERO,
            RetryPolicy::Fixed { delay_ms, .. } => Duration::from_millis(delay_ms),
            RetryPolicy::Exponential {
                base_delay_ms,
                max_delay_ms,
                ..
            } => {
                let shift = failed_attempt.saturating_sub(1).min(63);
                let ceiling = base_delay_ms.saturating_mul(1u64 << shift);
                Duration::from_millis(ceiling.min(max_delay_ms))
            }
        }
    }

    /// The wait before attempt `failed_attempt + 1`: the policy's delay (jittered for
    /// exponential), but never less than `retry_after` when the failure carried one.
    pub fn delay(&self, failed_attempt: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self.ceiling(failed_attempt);
        let base = match self {
            RetryPolicy::Exponential { .. } => {
                let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
                Duration::from_millis(fastrand::u64(0..=ms))
            }
            _ => ceiling,
        };
        match retry_after {
            Some(wait) => base.max(wait),
            None => base,
        }
    }
}

/// One lane's settings.
///
/// Deserialized only on top of a lane's own defaults (see [`LanesConfig::from_value`]), so
/// a partial table keeps that lane's values for the keys it leaves out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LaneConfig {
    /// Slots reserved for this lane out of the global cap.
    pub min_concurrency: usize,
    /// Most tasks of this lane running at once; `None` is unbounded.
    pub max_concurrency: Option<usize>,
    /// Most tasks of one session running at once in this lane; `None` is no per-session limit.
    pub max_per_session: Option<usize>,
    /// Per-attempt time limit in milliseconds; `None` or `0` is no limit.
    pub timeout_ms: Option<u64>,
    /// What to do with a retryable failure.
    pub retry: RetryPolicy,
    /// Run here, or hand out to an external worker.
    pub mode: LaneMode,
}

impl LaneConfig {
    /// The default settings of `lane`, as the README's lane table lists them.
    pub fn default_for(lane: Lane) -> LaneConfig {
        let cores = super::cores();
        let base = LaneConfig {
            min_concurrency: 0,
            max_concurrency: None,
            max_per_session: None,
            timeout_ms: None,
            retry: RetryPolicy::None,
            mode: LaneMode::Internal,
        };
        match lane {
            Lane::Control => base,
            Lane::Query => LaneConfig {
                max_concurrency: Some(16.max(2 * cores)),
                timeout_ms: Some(300_000),
                ..base
            },
            Lane::Execute => LaneConfig {
                max_concurrency: Some(4),
                max_per_session: Some(1),
                ..base
            },
            Lane::Generate => LaneConfig {
                max_concurrency: Some(2),
                timeout_ms: Some(600_000),
                retry: RetryPolicy::Exponential {
                    max_attempts: 5,
                    base_delay_ms: 500,
                    max_delay_ms: 30_000,
                },
                ..base
            },
        }
    }

    /// The per-attempt time limit.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout_ms
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis)
    }
}

/// Settings of the whole engine: the four lanes and what they share.
///
/// Like [`LaneConfig`], build it with [`LanesConfig::from_value`] so absent keys keep their
/// own lane's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LanesConfig {
    /// Most tasks running at once over Query, Execute and Generate together (Control is never
    /// held back); `None` is no cap beyond each lane's own.
    pub global_max_concurrency: Option<usize>,
    /// How many dead letters are kept; the oldest is evicted beyond this.
    pub dead_letter_capacity: usize,
    /// Batches of at most this many tasks, all marked cheap, run inline on the caller's
    /// thread instead of through the queue.
    pub inline_threshold: usize,
    /// The Control lane (P0).
    pub control: LaneConfig,
    /// The Query lane (P1).
    pub query: LaneConfig,
    /// The Execute lane (P2).
    pub execute: LaneConfig,
    /// The Generate lane (P3).
    pub generate: LaneConfig,
}

impl Default for LanesConfig {
    fn default() -> Self {
        LanesConfig {
            global_max_concurrency: None,
            dead_letter_capacity: 256,
            inline_threshold: 2,
            control: LaneConfig::default_for(Lane::Control),
            query: LaneConfig::default_for(Lane::Query),
            execute: LaneConfig::default_for(Lane::Execute),
            generate: LaneConfig::default_for(Lane::Generate),
        }
    }
}

impl LanesConfig {
    /// The settings of one lane.
    pub fn lane(&self, lane: Lane) -> &LaneConfig {
        match lane {
            Lane::Control => &self.control,
            Lane::Query => &self.query,
            Lane::Execute => &self.execute,
            Lane::Generate => &self.generate,
        }
    }

    /// The settings of one lane, to change.
    pub fn lane_mut(&mut self, lane: Lane) -> &mut LaneConfig {
        match lane {
            Lane::Control => &mut self.control,
            Lane::Query => &mut self.query,
            Lane::Execute => &mut self.execute,
            Lane::Generate => &mut self.generate,
        }
    }

    /// Checks that the settings can be put in force; nothing is adjusted.
    pub fn validate(&self) -> Result<(), EngineError> {
        let invalid = |message: String| Err(EngineError::InvalidConfig(message));
        let mut reserved = 0usize;
        for lane in Lane::ALL {
            let c = self.lane(lane);
            let name = lane.name();
            if let Some(max) = c.max_concurrency {
                if max == 0 {
                    return invalid(format!(
                        "lanes.{name}.max_concurrency must be at least 1, got 0"
                    ));
                }
                if c.min_concurrency > max {
                    return invalid(format!(
                        "lanes.{name}.min_concurrency ({}) is above its max_concurrency ({max})",
                        c.min_concurrency
                    ));
                }
            } else if lane == Lane::Query {
                return invalid(
                    "lanes.query.max_concurrency must be set: it sizes the query pool".into(),
                );
            }
            if c.max_per_session == Some(0) {
                return invalid(format!(
                    "lanes.{name}.max_per_session must be at least 1, got 0"
                ));
            }
            if let RetryPolicy::Fixed {
                max_attempts: 0, ..
            }
            | RetryPolicy::Exponential {
                max_attempts: 0, ..
            } = c.retry
            {
                return invalid(format!(
                    "lanes.{name}.retry.max_attempts must be at least 1, got 0"
                ));
            }
            if lane != Lane::Control {
                reserved += c.min_concurrency;
            }
        }
        if let Some(global) = self.global_max_concurrency {
            if global == 0 {
                return invalid("lanes.global_max_concurrency must be at least 1, got 0".into());
            }
            if reserved > global {
                return invalid(format!(
                    "the lanes reserve {reserved} slots (min_concurrency) but global_max_concurrency is {global}"
                ));
            }
        }
        if self.dead_letter_capacity == 0 {
            return invalid("lanes.dead_letter_capacity must be at least 1, got 0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_values_are_the_values_in_force() {
        // The regression this project exists to avoid: a user's `query_concurrency = 5` was
        // clamped to a built-in maximum of 4.
        let config = LanesConfig::from_value(serde_json::json!({
            "query": { "max_concurrency": 5 },
            "generate": { "max_concurrency": 64, "timeout_ms": 5 },
        }))
        .unwrap();
        assert_eq!(config.query.max_concurrency, Some(5));
        assert_eq!(config.generate.max_concurrency, Some(64));
        assert_eq!(config.generate.timeout_ms, Some(5));
        // Keys not given keep their own lane's defaults.
        assert_eq!(config.execute.max_per_session, Some(1));
        assert_eq!(
            config.generate.retry,
            LaneConfig::default_for(Lane::Generate).retry
        );
    }

    #[test]
    fn impossible_values_are_refused_with_the_key_named() {
        let err = LanesConfig::from_value(serde_json::json!({"query": {"max_concurrency": 0}}))
            .unwrap_err()
            .to_string();
        assert_eq!(err, "lanes.query.max_concurrency must be at least 1, got 0");
        let err = LanesConfig::from_value(serde_json::json!({
            "global_max_concurrency": 2,
            "query": {"min_concurrency": 2},
            "generate": {"min_concurrency": 1},
        }))
        .unwrap_err()
        .to_string();
        assert!(err.contains("reserve 3 slots"), "{err}");
        let err = LanesConfig::from_value(serde_json::json!({"query": {"max_concurency": 3}}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_concurency"), "{err}");
    }

    #[test]
    fn exponential_ceiling_doubles_up_to_the_cap() {
        let policy = RetryPolicy::Exponential {
            max_attempts: 10,
            base_delay_ms: 100,
            max_delay_ms: 1_000,
        };
        let ceilings: Vec<u128> = (1..=6).map(|n| policy.ceiling(n).as_millis()).collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1_000, 1_000]);
    }

    #[test]
    fn exponential_delays_stay_within_their_jitter_bounds() {
        let policy = RetryPolicy::Exponential {
            max_attempts: 10,
            base_delay_ms: 100,
            max_delay_ms: 1_000,
        };
        for attempt in 1..=6 {
            let ceiling = policy.ceiling(attempt);
            let delays: Vec<Duration> = (0..500).map(|_| policy.delay(attempt, None)).collect();
            assert!(
                delays.iter().all(|d| *d <= ceiling),
                "attempt {attempt}: above {ceiling:?}"
            );
            // Full jitter spreads over the whole range, not just near the ceiling.
            let low = delays.iter().filter(|d| **d < ceiling / 4).count();
            assert!(
                low > 50,
                "attempt {attempt}: only {low} of 500 delays in the lowest quarter"
            );
        }
    }

    #[test]
    fn retry_after_is_a_floor() {
        let policy = RetryPolicy::Exponential {
            max_attempts: 3,
            base_delay_ms: 10,
            max_delay_ms: 20,
        };
        for _ in 0..100 {
            assert!(policy.delay(1, Some(Duration::from_secs(2))) >= Duration::from_secs(2));
        }
        let fixed = RetryPolicy::Fixed {
            max_attempts: 3,
            delay_ms: 5_000,
        };
        assert_eq!(
            fixed.delay(1, Some(Duration::from_secs(1))),
            Duration::from_secs(5)
        );
    }
}
