//! The `[agent]` settings: how long one request may run, how tools are offered, whether
//! sessions are kept on disk, and the ensemble behind `analyze --llm`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The agent's settings. Every key may be left out; values are used exactly as given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// Most model calls one request (one [`Session::send`](super::Session::send)) makes;
    /// the run then stops with [`StopReason::MaxTurns`](super::StopReason::MaxTurns).
    pub max_turns: u32,
    /// Most tokens (input plus output, over every model call) one request may use before it
    /// stops with [`StopReason::TokenBudget`](super::StopReason::TokenBudget); `0` is no limit.
    pub token_budget: u64,
    /// Lets the model ask for several tools in one answer (they run in parallel when they
    /// are parallel-safe).
    pub parallel_tool_calls: bool,
    /// Keeps every session as JSON lines under the user's state directory, so it survives a
    /// restart and can be listed and resumed.
    pub persist_sessions: bool,
    /// The share of the model's context window (`llm.context_window`) a request may fill
    /// before the session is compacted: older turns summarized by the model, the user's
    /// messages and the recent turns kept verbatim. Above 0, at most 1.
    pub compact_at: f64,
    /// Extra instructions appended to the system prompt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    /// The module agents and the synthesis agent of `analyze --llm`.
    pub ensemble: EnsembleConfig,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            max_turns: 50,
            token_budget: 2_000_000,
            parallel_tool_calls: true,
            persist_sessions: true,
            compact_at: 0.8,
            instructions: None,
            ensemble: EnsembleConfig::default(),
        }
    }
}

/// The ensemble's settings (`[agent.ensemble]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnsembleConfig {
    /// How long one module agent may run before it is cancelled and reported as timed out.
    pub module_timeout_ms: u64,
    /// Most module agents; the largest modules are kept when a workspace has more.
    pub max_modules: usize,
    /// Most model calls one module agent makes.
    pub module_max_turns: u32,
    /// Most model calls the synthesis agent makes.
    pub synthesis_max_turns: u32,
}

impl Default for EnsembleConfig {
    fn default() -> Self {
        EnsembleConfig {
            module_timeout_ms: 180_000,
            max_modules: 16,
            module_max_turns: 12,
            synthesis_max_turns: 6,
        }
    }
}

impl EnsembleConfig {
    /// [`module_timeout_ms`](EnsembleConfig::module_timeout_ms) as a duration.
    pub fn module_timeout(&self) -> Duration {
        Duration::from_millis(self.module_timeout_ms)
    }
}

impl AgentConfig {
    /// Checks that the settings can be put in force; nothing is adjusted.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_turns == 0 {
            return Err("agent.max_turns must be at least 1, got 0".into());
        }
        if !(self.compact_at > 0.0 && self.compact_at <= 1.0) {
            return Err(format!(
                "agent.compact_at is a share of the context window, above 0 and at most 1, got {}",
                self.compact_at
            ));
        }
        let e = &self.ensemble;
        if e.module_timeout_ms == 0 {
            return Err("agent.ensemble.module_timeout_ms must be at least 1, got 0".into());
        }
        if e.max_modules == 0 {
            return Err("agent.ensemble.max_modules must be at least 1, got 0".into());
        }
        if e.module_max_turns == 0 || e.synthesis_max_turns == 0 {
            return Err(
                "agent.ensemble.module_max_turns and synthesis_max_turns must be at least 1, got 0"
                    .into(),
            );
        }
        Ok(())
    }
}
