//! The agent: sessions and the turn loop.
//!
//! A [`Session`] is a conversation with an id and a history; [`Session::send`] adds a prompt
//! and runs turns until the model answers without asking for tools, or a limit or a
//! cancellation stops it. Each turn is one model call in the Generate lane (which owns
//! retries, backoff and dead letters) and then the turn's tool calls through the
//! [`Toolbox`]: consecutive parallel-safe calls run together, a call that is not
//! parallel-safe is a barrier (see [`schedule`]), and the results go back in the model's
//! call order with matching ids. A tool's failure, unusable arguments included, is an error
//! result the model can correct; only cancellation or a model call that cannot succeed ends
//! the run early.
//!
//! The loop reports what happens as plain [`AgentEvent`]s on a channel; the CLI prints them
//! and the language server turns them into `switchyard/sessionUpdate` notifications.
//! Sessions live in memory while the process runs and, unless `agent.persist_sessions` is
//! off, as JSON lines on disk ([`store`]) so they can be listed and resumed after a restart.
//!
//! The tools are reached through one plain seam: [`Toolbox::spec`] says a call's lane and
//! whether it is parallel-safe (from the tool table, `tools/table.rs`), and
//! [`Toolbox::task`] gives the lane task that runs it. A new tool joins the table and the
//! loop does not change.

mod checkpoint;
mod compact;
mod config;
pub mod ensemble;
mod event;
pub mod instructions;
mod model;
mod prompt;
mod schedule;
pub mod store;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use checkpoint::{Only, RewindReport, RewindRequest};
pub use config::{AgentConfig, EnsembleConfig};
pub use event::{AgentEvent, Cost, EventSender, RunOutcome, StopReason, Timings, ToolStatus};
pub use prompt::{AskContext, Selection};
pub use store::{Loaded, SessionInfo, SessionStore, TurnUsage};

use crate::config::Config;
use crate::lanes::{Lane, LaneError, SessionId};
use crate::llm::{self, Client, Message, ModelRequest, ToolCall, Usage};
use crate::tools::{
    CallContext, Effect, SealOnDrop, SearchGroup, Tool, ToolKind, ToolOutput, ToolResult, Toolbox,
};
use schedule::{Progress, Step};

/// Why a request could not run or was cut short by a failure (not by a limit: those are a
/// [`StopReason`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// No model provider is configured; the message says how to configure one.
    #[error("{0}")]
    NotConfigured(String),
    /// A model call failed for good (a rejected key, an unknown model, an unreachable server,
    /// or retries exhausted); the message says what is wrong.
    #[error("{0}")]
    Model(String),
    /// A session cannot be found, read or named so, or has no such turn.
    #[error("{0}")]
    Session(String),
    /// A rewind cannot be done as asked: files changed since the agent left them, a request
    /// is running, or the changes could not be applied.
    #[error("{0}")]
    Rewind(String),
}

/// The changes that take a session's files back to the start of a turn, and what the
/// rewind will report once they are applied.
#[derive(Debug, Clone)]
pub struct RewindPlan {
    /// The files' changes, applied together (one `workspace/applyEdit` in the editor).
    pub changes: crate::edits::ChangeSet,
    /// What the rewind does.
    pub report: RewindReport,
}

/// The agent of one workspace: its tools, its model client and its sessions. Cheap to
/// clone; clones share everything.
#[derive(Clone)]
pub struct Agent {
    inner: Arc<Inner>,
}

struct Inner {
    toolbox: Toolbox,
    /// The model client of the configuration snapshot it was built from; rebuilt when the
    /// snapshot changes. `Pinned` when the caller gave a client of its own.
    llm: Mutex<Llm>,
    store: Option<SessionStore>,
    sessions: Mutex<HashMap<SessionId, Arc<SessionState>>>,
    /// Context windows the servers reported (or did not), by endpoint and model: asked once.
    windows: Mutex<HashMap<(String, String), Option<u64>>>,
}

/// How long the server is asked for its context window, at the most.
const WINDOW_PROBE: Duration = Duration::from_secs(2);

/// Where the agent's model client comes from.
enum Llm {
    /// Built from `[llm]` of this snapshot and the environment (or why it cannot be).
    Built(Arc<Config>, Result<Client, String>),
    /// Not built yet.
    Unbuilt,
    /// Given by the caller, whatever the configuration says.
    Pinned(Result<Client, String>),
}

/// One conversation. Cheap to clone; clones are the same session.
#[derive(Clone)]
pub struct Session {
    agent: Arc<Inner>,
    state: Arc<SessionState>,
}

struct SessionState {
    id: SessionId,
    /// Held for the whole of a request, so requests to one session run one after another.
    history: tokio::sync::Mutex<Vec<Message>>,
    /// Cancels the request running now.
    run: Mutex<CancellationToken>,
    persist: bool,
    /// Turns and usage over the session's life (earlier processes included).
    totals: Mutex<Totals>,
    /// When the history starts with a summary: how many transcript messages it stands for.
    compacted: Mutex<Option<usize>>,
    /// The model (and provider) the session was switched to, over `[llm]`'s.
    model: Mutex<Option<(Option<llm::ProviderKind>, String)>>,
}

/// A session's turns and usage so far.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Totals {
    turns: u32,
    usage: Usage,
    cost_usd: Option<f64>,
}

impl Agent {
    /// An agent over `toolbox`, configured by the configuration the toolbox reads (`[agent]`
    /// and `[llm]`; the model client is built from `[llm]` and the environment, again
    /// whenever the configuration changes). `store` keeps sessions on disk when given and
    /// `agent.persist_sessions` is on.
    pub fn new(toolbox: Toolbox, store: Option<SessionStore>) -> Agent {
        Agent::with_llm(toolbox, Llm::Unbuilt, store)
    }

    /// An agent that uses `client` (or reports why there is none) whatever `[llm]` says:
    /// for callers that build their client by hand.
    pub fn with_client(
        toolbox: Toolbox,
        client: Result<Client, String>,
        store: Option<SessionStore>,
    ) -> Agent {
        Agent::with_llm(toolbox, Llm::Pinned(client), store)
    }

    fn with_llm(toolbox: Toolbox, llm: Llm, store: Option<SessionStore>) -> Agent {
        let inner = Inner {
            toolbox,
            llm: Mutex::new(llm),
            store,
            sessions: Mutex::new(HashMap::new()),
            windows: Mutex::new(HashMap::new()),
        };
        Agent {
            inner: Arc::new(inner),
        }
    }

    /// Resolves `llm` against the process environment and builds its client; the error says
    /// how to configure a provider.
    pub fn client(llm: &llm::LlmConfig) -> Result<Client, String> {
        let env = |name: &str| std::env::var(name).ok();
        llm.resolve(&env)
            .and_then(Client::new)
            .map_err(|e| e.message)
    }

    /// The model client of the configuration in force, or why there is none.
    pub fn llm(&self) -> Result<Client, String> {
        let config = self.inner.toolbox.config().get();
        let mut llm = self.inner.llm.lock();
        match &*llm {
            Llm::Pinned(client) => return client.clone(),
            Llm::Built(built, client) if Arc::ptr_eq(built, &config) || built.llm == config.llm => {
                return client.clone();
            }
            _ => {}
        }
        let client = Agent::client(&config.llm);
        *llm = Llm::Built(config, client.clone());
        client
    }

    /// The tools the agent calls.
    pub fn toolbox(&self) -> &Toolbox {
        &self.inner.toolbox
    }

    /// The settings in force.
    pub fn config(&self) -> AgentConfig {
        self.inner.toolbox.config().get().agent.clone()
    }

    /// Starts a new, empty session, kept on disk when sessions persist. A session file that
    /// cannot be created is logged and the session lives in memory only.
    pub async fn new_session(&self) -> Result<Session, AgentError> {
        let id: SessionId = store::new_id().into();
        let mut persist = self.persists();
        if let (true, Some(store)) = (persist, &self.inner.store)
            && let Err(e) = store.create(&id).await
        {
            tracing::warn!(session = %id, error = %e, "the session will not be kept");
            persist = false;
        }
        Ok(self.register(id, Loaded::default(), persist))
    }

    /// A session that is never written to disk (an ensemble's module agents).
    pub fn ephemeral_session(&self) -> Session {
        self.register(store::new_id().into(), Loaded::default(), false)
    }

    /// The session `id`: the live one, else the one stored for this workspace, resumed.
    pub async fn session(&self, id: &str) -> Result<Session, AgentError> {
        if let Some(state) = self.inner.sessions.lock().get(id) {
            return Ok(Session {
                agent: Arc::clone(&self.inner),
                state: Arc::clone(state),
            });
        }
        check_id(id)?;
        let Some(store) = self.inner.store.as_ref().filter(|_| self.persists()) else {
            return Err(AgentError::Session(format!(
                "no session `{id}`: sessions are not kept on disk (agent.persist_sessions is off)"
            )));
        };
        let mut loaded = store.replay(id).await.map_err(AgentError::Session)?;
        store::repair(&mut loaded.messages);
        Ok(self.register(id.into(), loaded, true))
    }

    /// The sessions stored for this workspace, most recent first (none when sessions are
    /// not kept on disk).
    pub async fn list_sessions(&self) -> Result<Vec<SessionInfo>, AgentError> {
        match self.inner.store.as_ref().filter(|_| self.persists()) {
            Some(store) => store.list().await.map_err(AgentError::Session),
            None => Ok(Vec::new()),
        }
    }

    /// Deletes session `id`: a request running in it is cancelled, the agent forgets it and
    /// its file is removed. An id with no session is an error that says so.
    pub async fn delete_session(&self, id: &str) -> Result<(), AgentError> {
        check_id(id)?;
        let live = self.inner.sessions.lock().remove(id);
        if let Some(state) = &live {
            state.run.lock().cancel();
            self.inner.toolbox.lanes().cancel_session(&state.id);
            self.inner.toolbox.mcp().end_session(&state.id);
        }
        let stored = match self.inner.store.as_ref() {
            Some(store) => store.delete(id).await.map_err(AgentError::Session)?,
            None => false,
        };
        if live.is_none() && !stored {
            return Err(AgentError::Session(format!(
                "no session `{id}` in this workspace"
            )));
        }
        Ok(())
    }

    /// What rewinding session `id` as `request` says takes: the files' changes (none for a
    /// conversation-only rewind) and the report. Refuses, naming them, files changed since
    /// the agent left them unless `request.force`; changes nothing itself.
    pub async fn plan_rewind(
        &self,
        id: &str,
        request: RewindRequest,
    ) -> Result<RewindPlan, AgentError> {
        let store = self.rewind_store(id)?;
        let loaded = store.replay(id).await.map_err(AgentError::Session)?;
        if request.turn == 0 || request.turn > loaded.turns {
            return Err(AgentError::Session(match loaded.turns {
                0 => format!("session `{id}` has no turns to rewind"),
                n => format!(
                    "session `{id}` has turns 1 to {n}; there is no turn {}",
                    request.turn
                ),
            }));
        }
        let mut report = RewindReport {
            turn: request.turn,
            conversation: request.conversation(),
            ..RewindReport::default()
        };
        let mut changes = Vec::new();
        if request.code() {
            let toolbox = self.inner.toolbox.clone();
            let id = id.to_string();
            let planned = tokio::task::spawn_blocking(move || {
                checkpoint::plan(&toolbox, &store, &id, &loaded, request)
            })
            .await
            .map_err(|e| AgentError::Rewind(format!("the rewind failed: {e}")))??;
            changes = planned.changes;
            report.restored = planned.restored;
            report.not_restorable = planned.notes;
        }
        Ok(RewindPlan {
            changes: crate::edits::ChangeSet {
                label: format!("rewind to turn {}", request.turn),
                changes,
            },
            report,
        })
    }

    /// Records a rewind whose changes were applied, and takes the live session (if any)
    /// back to it.
    pub async fn finish_rewind(&self, id: &str, request: RewindRequest) -> Result<(), AgentError> {
        let store = self.rewind_store(id)?;
        let line = store::Line::Rewind {
            turn: request.turn,
            code: request.code(),
            conversation: request.conversation(),
        };
        store
            .append_lines(id, &[line])
            .await
            .map_err(AgentError::Rewind)?;
        let live = self.inner.sessions.lock().get(id).cloned();
        if let Some(state) = live {
            let mut loaded = store.replay(id).await.map_err(AgentError::Session)?;
            store::repair(&mut loaded.messages);
            let mut history = state.history.lock().await;
            *history = loaded.messages;
            state.totals.lock().turns = loaded.turns;
            *state.compacted.lock() = loaded.compaction.map(|(covered, _)| covered);
        }
        Ok(())
    }

    /// The store of a session that can be rewound now: kept on disk, and not running.
    fn rewind_store(&self, id: &str) -> Result<SessionStore, AgentError> {
        check_id(id)?;
        let Some(store) = self.inner.store.clone().filter(|_| self.persists()) else {
            return Err(AgentError::Session(format!(
                "no session `{id}`: sessions are not kept on disk (agent.persist_sessions is off)"
            )));
        };
        let running = self
            .inner
            .sessions
            .lock()
            .get(id)
            .is_some_and(|state| !state.run.lock().is_cancelled());
        if running {
            return Err(AgentError::Rewind(format!(
                "a request is running in session `{id}`; cancel it first"
            )));
        }
        Ok(store)
    }

    /// Session `id`'s whole record as kept on disk: its history, turns and usage.
    pub async fn transcript(&self, id: &str) -> Result<Loaded, AgentError> {
        check_id(id)?;
        let Some(store) = self.inner.store.as_ref() else {
            return Err(AgentError::Session(format!(
                "no session `{id}`: sessions are not kept on disk"
            )));
        };
        store.replay(id).await.map_err(AgentError::Session)
    }

    /// Cancels the request running in session `id`; returns whether one was running.
    pub fn cancel(&self, id: &str) -> bool {
        let state = self.inner.sessions.lock().get(id).cloned();
        state.is_some_and(|state| {
            (Session {
                agent: Arc::clone(&self.inner),
                state,
            })
            .cancel()
        })
    }

    fn persists(&self) -> bool {
        self.inner.store.is_some() && self.config().persist_sessions
    }

    fn register(&self, id: SessionId, loaded: Loaded, persist: bool) -> Session {
        let cancelled = CancellationToken::new();
        cancelled.cancel();
        let totals = Totals {
            turns: loaded.turns,
            usage: loaded.usage,
            cost_usd: loaded.cost_usd,
        };
        let state = Arc::new(SessionState {
            id: Arc::clone(&id),
            history: tokio::sync::Mutex::new(loaded.messages),
            run: Mutex::new(cancelled),
            persist,
            totals: Mutex::new(totals),
            compacted: Mutex::new(loaded.compaction.as_ref().map(|(covered, _)| *covered)),
            model: Mutex::new(loaded.model.clone()),
        });
        self.inner.sessions.lock().insert(id, Arc::clone(&state));
        Session {
            agent: Arc::clone(&self.inner),
            state,
        }
    }
}

impl Session {
    /// The session's id.
    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// Switches the model of this session's next turns (and the wire format, when
    /// `provider` is given: the history is sent in the other format from then on). Kept in
    /// the session file, so a resumed session goes on with it. Checked before it is kept:
    /// a model that cannot be configured is an error and changes nothing.
    pub async fn set_model(
        &self,
        provider: Option<llm::ProviderKind>,
        model: &str,
    ) -> Result<(), AgentError> {
        let model = model.trim();
        if model.is_empty() {
            return Err(AgentError::NotConfigured("the model name is empty".into()));
        }
        let chosen = Some((provider, model.to_string()));
        self.client_for(&chosen)?;
        *self.state.model.lock() = chosen;
        if let (true, Some(store)) = (self.state.persist, &self.agent.store) {
            let line = store::Line::Model {
                provider,
                model: model.to_string(),
            };
            if let Err(e) = store.append_lines(&self.state.id, &[line]).await {
                tracing::warn!(session = %self.state.id, error = %e, "cannot save the session");
            }
        }
        Ok(())
    }

    /// The model client for `chosen` over the configuration in force (the agent's own
    /// when nothing was chosen).
    fn client_for(
        &self,
        chosen: &Option<(Option<llm::ProviderKind>, String)>,
    ) -> Result<Client, AgentError> {
        let agent = Agent {
            inner: Arc::clone(&self.agent),
        };
        let Some((provider, model)) = chosen else {
            return agent.llm().map_err(AgentError::NotConfigured);
        };
        let mut config = self.agent.toolbox.config().get().llm.clone();
        config.model = Some(model.clone());
        if let Some(provider) = provider {
            if config.provider != Some(*provider) {
                // Another provider's base URL and key come from its own variables.
                config.base_url = None;
                config.api_key = None;
            }
            config.provider = Some(*provider);
        }
        Agent::client(&config).map_err(AgentError::NotConfigured)
    }

    /// The conversation so far (waits for a running request to finish).
    pub async fn history(&self) -> Vec<Message> {
        self.state.history.lock().await.clone()
    }

    /// Cancels the request running now: the in-flight model call is dropped and running
    /// tools are cancelled. The session stays usable. Returns whether a request was running.
    pub fn cancel(&self) -> bool {
        let token = self.state.run.lock().clone();
        let running = !token.is_cancelled();
        token.cancel();
        self.agent.toolbox.lanes().cancel_session(&self.state.id);
        running
    }

    /// Cancels what runs and lets the agent forget the session; its file stays, so it can
    /// still be resumed by id.
    pub fn close(&self) {
        self.cancel();
        self.agent.sessions.lock().remove(&self.state.id);
        self.agent.toolbox.mcp().end_session(&self.state.id);
    }

    /// Sends `prompt` and runs turns until the model is done, reporting on `events`.
    /// Requests to one session run one after another.
    pub async fn send(
        &self,
        prompt: &str,
        context: &AskContext,
        events: &EventSender,
    ) -> Result<RunOutcome, AgentError> {
        self.send_with(prompt, context, events, None).await
    }

    /// [`send`](Session::send) with at most `max_turns` model calls instead of
    /// `agent.max_turns`.
    pub(crate) async fn send_with(
        &self,
        prompt: &str,
        context: &AskContext,
        events: &EventSender,
        max_turns: Option<u32>,
    ) -> Result<RunOutcome, AgentError> {
        let chosen = self.state.model.lock().clone();
        let client = self.client_for(&chosen)?;
        let mut history = self.state.history.lock().await;
        let token = CancellationToken::new();
        let model = client.config().model.clone();
        let window = self.window(&client).await;
        let mut run = self.run(&client, window, &mut history, events, &token, max_turns, 1);
        let started = Instant::now();
        let result = run.turns(prompt, context).await;
        let mut outcome = run.outcome;
        outcome.timings.total = started.elapsed();
        token.cancel();
        // The prompt is in the history from the start: the turn counts whatever ended it.
        self.settle_usage(&outcome, model).await;
        let stop = result?;
        outcome.stop = stop;
        let _ = events.send(AgentEvent::Done { stop });
        Ok(outcome)
    }

    /// Compacts the conversation now, whatever its size (`switchyard.compact`, `ask
    /// --compact`): everything but the last exchange is summarized by the model, as when a
    /// request would pass `agent.compact_at` of the window. Waits for a running request to
    /// finish; [`Session::cancel`] cancels it. The summary's tokens count in the session's
    /// usage (on its last turn). Nothing is replaced when there is no older exchange.
    pub async fn compact(&self, events: &EventSender) -> Result<Compaction, AgentError> {
        let chosen = self.state.model.lock().clone();
        let client = self.client_for(&chosen)?;
        let mut history = self.state.history.lock().await;
        let token = CancellationToken::new();
        let model = client.config().model.clone();
        let window = self.window(&client).await;
        let mut run = self.run(&client, window, &mut history, events, &token, None, 0);
        let started = Instant::now();
        let result = run.compact(Keep::LastExchange).await;
        let mut outcome = run.outcome;
        outcome.timings.total = started.elapsed();
        token.cancel();
        if outcome.usage != Usage::default() {
            self.settle_usage(&outcome, model).await;
        }
        let (replaced, kept) = result?.unwrap_or((0, history.len()));
        Ok(Compaction {
            replaced,
            kept,
            usage: outcome.usage,
            cost_usd: outcome.cost_usd,
            session_usage: outcome.session_usage,
            session_cost_usd: outcome.session_cost_usd,
        })
    }

    /// A run of this session over `history` (repaired first: a request whose future was
    /// dropped half way may have left calls without results, which the model would
    /// refuse), in turn `before + next` of the session.
    #[allow(clippy::too_many_arguments)]
    fn run<'a>(
        &'a self,
        client: &'a Client,
        window: u64,
        history: &'a mut Vec<Message>,
        events: &'a EventSender,
        token: &'a CancellationToken,
        max_turns: Option<u32>,
        next: u32,
    ) -> Run<'a> {
        store::repair(history);
        *self.state.run.lock() = token.clone();
        let snapshot = self.agent.toolbox.config().get();
        let mut config = snapshot.agent.clone();
        if let Some(max_turns) = max_turns {
            config.max_turns = max_turns;
        }
        let model = client.config().model.clone();
        let price = snapshot.llm.pricing.get(&model).copied();
        let window = window.saturating_sub(u64::from(client.config().max_tokens.unwrap_or(0)));
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let threshold = (window as f64 * config.compact_at) as u64;
        let before = *self.state.totals.lock();
        Run {
            session: self,
            client,
            config,
            history,
            events,
            token,
            offered: Vec::new(),
            price,
            before,
            captured: std::collections::HashSet::new(),
            ratio: compact::DEFAULT_RATIO,
            threshold,
            outcome: RunOutcome {
                session: self.state.id.to_string(),
                text: String::new(),
                stop: StopReason::EndTurn,
                turn: before.turns + next,
                usage: Usage::default(),
                cost_usd: None,
                session_usage: before.usage,
                session_cost_usd: before.cost_usd,
                turns: 0,
                tool_calls: 0,
                timings: Timings::default(),
            },
        }
    }

    /// The model's context window: `llm.context_window`, else what the server reports
    /// (asked once per endpoint and model, for at most [`WINDOW_PROBE`]), else the model
    /// family's documented one, else the default.
    async fn window(&self, client: &Client) -> u64 {
        let llm = &self.agent.toolbox.config().get().llm;
        let model = &client.config().model;
        if let Some(window) = llm.context_window {
            return window;
        }
        // A model served by the broker's workers is not at this client's endpoint.
        let lanes = self.agent.toolbox.lanes();
        if lanes.config().generate.mode == crate::lanes::LaneMode::External {
            return llm.context_window(model);
        }
        let key = (client.config().endpoint.to_string(), model.clone());
        let known = self.agent.windows.lock().get(&key).copied();
        let reported = match known {
            Some(reported) => reported,
            None => {
                let reported = client.discover_window(WINDOW_PROBE).await;
                self.agent.windows.lock().insert(key, reported);
                reported
            }
        };
        reported.unwrap_or_else(|| llm.context_window(model))
    }

    /// Keeps a run's usage in the session's totals and, when it persists, in its file.
    async fn settle_usage(&self, outcome: &RunOutcome, model: String) {
        let turn = TurnUsage {
            turn: outcome.turn,
            model,
            usage: outcome.usage,
            cost_usd: outcome.cost_usd,
        };
        *self.state.totals.lock() = Totals {
            turns: turn.turn,
            usage: outcome.session_usage,
            cost_usd: outcome.session_cost_usd,
        };
        if let (true, Some(store)) = (self.state.persist, &self.agent.store)
            && let Err(e) = store.append_usage(&self.state.id, &turn).await
        {
            tracing::warn!(session = %self.state.id, error = %e, "cannot save the session");
        }
    }
}

/// How much of the recent turns a compaction keeps as they are.
#[derive(Debug, Clone, Copy)]
enum Keep {
    /// Two fifths of the threshold: before a request would pass it.
    Share,
    /// One fifth: after the server said the request was too long.
    Less,
    /// Only the last exchange: compaction on demand.
    LastExchange,
}

/// What an on-demand compaction did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compaction {
    /// Messages replaced by the summary; 0 when there was nothing older than the last
    /// exchange.
    pub replaced: usize,
    /// Recent messages kept as they were.
    pub kept: usize,
    /// The summarizer's tokens.
    pub usage: Usage,
    /// What they cost, when the model has a price.
    pub cost_usd: Option<f64>,
    /// Tokens over every turn of the session, the summary's included.
    pub session_usage: Usage,
    /// What those cost, when a model used had a price.
    pub session_cost_usd: Option<f64>,
}

/// One request in progress.
struct Run<'a> {
    session: &'a Session,
    client: &'a Client,
    config: AgentConfig,
    history: &'a mut Vec<Message>,
    events: &'a EventSender,
    token: &'a CancellationToken,
    outcome: RunOutcome,
    /// The tools offered to the model in this request.
    offered: Vec<std::borrow::Cow<'static, str>>,
    /// The price of the model answering, when `[llm.pricing]` has one.
    price: Option<llm::Price>,
    /// The session's totals before this turn.
    before: Totals,
    /// The files this turn has kept a checkpoint of.
    captured: std::collections::HashSet<std::path::PathBuf>,
    /// Tokens per byte of request body, from the provider's last count.
    ratio: f64,
    /// The most tokens a request may have before the session is compacted.
    threshold: u64,
}

impl Run<'_> {
    async fn turns(
        &mut self,
        prompt: &str,
        context: &AskContext,
    ) -> Result<StopReason, AgentError> {
        let agent = &self.session.agent;
        let session = Some(&self.session.state.id);
        agent.toolbox.start_mcp(session).await;
        let specs = agent.toolbox.specs(session);
        self.offered = specs.iter().map(|s| s.name.clone()).collect();
        // Read for every request: an edited AGENTS.md applies from the next prompt.
        let project = {
            let workspace = agent.toolbox.workspace().clone();
            let open_file = context.open_file.clone();
            tokio::task::spawn_blocking(move || {
                instructions::load(
                    &workspace,
                    open_file.as_deref(),
                    instructions::user_file().as_deref(),
                )
            })
            .await
            .unwrap_or_default()
        };
        let system = prompt::system_prompt(
            agent.toolbox.workspace().roots(),
            context,
            &specs,
            &project,
            self.config.instructions.as_deref(),
        );
        let tools: Vec<llm::ToolSpec> = specs
            .iter()
            .map(|s| llm::ToolSpec {
                name: s.name.to_string(),
                description: s.description.to_string(),
                parameters: s.parameters.clone(),
            })
            .collect();
        self.record(vec![Message::User {
            content: prompt.to_string(),
        }])
        .await;
        let mut overflowed = false;
        loop {
            if self.token.is_cancelled() {
                return Ok(StopReason::Cancelled);
            }
            if self.outcome.turns >= self.config.max_turns {
                return Ok(StopReason::MaxTurns);
            }
            let used = self.outcome.usage.input_tokens + self.outcome.usage.output_tokens;
            if self.config.token_budget > 0 && used >= self.config.token_budget {
                return Ok(StopReason::TokenBudget);
            }
            let parallel_tool_calls = self.config.parallel_tool_calls;
            let request = |history: &[Message]| ModelRequest {
                system: system.clone(),
                messages: history.to_vec(),
                tools: tools.clone(),
                parallel_tool_calls,
                ..ModelRequest::default()
            };
            let sized = Instant::now();
            let model_before = self.outcome.timings.model;
            let mut sent = request(self.history);
            let mut bytes = compact::body_bytes(self.client.config(), &sent);
            if compact::tokens(bytes, self.ratio) > self.threshold {
                match self.compact(Keep::Share).await {
                    Ok(Some(_)) => {
                        sent = request(self.history);
                        bytes = compact::body_bytes(self.client.config(), &sent);
                    }
                    Ok(None) => {}
                    // Our window is an estimate (often a default): the request goes as it
                    // is, and a server it is too long for says so, which compacts harder.
                    Err(e) => tracing::warn!("{e}; sending the request as it is"),
                }
            }
            let summarizing = self.outcome.timings.model - model_before;
            self.outcome.timings.context += sized.elapsed().saturating_sub(summarizing);
            self.outcome.turns += 1;
            let waited = Instant::now();
            let answer = model::call(
                agent.toolbox.lanes(),
                self.client,
                sent,
                &self.session.state.id,
                self.token,
                self.events,
                "model",
            )
            .await;
            self.outcome.timings.model += waited.elapsed();
            let mut answer = match answer {
                Ok(answer) => answer,
                Err(LaneError::Cancelled) => return Ok(StopReason::Cancelled),
                Err(_) if self.token.is_cancelled() => return Ok(StopReason::Cancelled),
                Err(e) => {
                    let message = model::describe(&e);
                    // Longer than the window after all: the estimate was short. Compact
                    // harder and try once more.
                    if !overflowed && compact::is_overflow(&message) {
                        overflowed = true;
                        self.ratio *= 1.5;
                        self.outcome.turns -= 1;
                        if self.compact(Keep::Less).await?.is_some() {
                            continue;
                        }
                    }
                    return Err(AgentError::Model(message));
                }
            };
            overflowed = false;
            if answer.usage.input_tokens > 0 && bytes > 0 {
                #[allow(clippy::cast_precision_loss)]
                let ratio = answer.usage.input_tokens as f64 / bytes as f64;
                self.ratio = ratio;
            }
            self.count(answer.usage);
            for (i, call) in answer.tool_calls.iter_mut().enumerate() {
                if call.id.is_empty() {
                    call.id = format!("call_{}_{i}", self.outcome.turns);
                }
            }
            self.outcome.text.clone_from(&answer.text);
            let calls = answer.tool_calls.clone();
            self.record(vec![Message::Assistant {
                text: answer.text,
                tool_calls: answer.tool_calls,
                thinking: answer.thinking,
            }])
            .await;
            if calls.is_empty() {
                return Ok(match answer.stop {
                    llm::StopReason::MaxTokens => StopReason::MaxTokens,
                    llm::StopReason::ContentFilter => StopReason::Refusal,
                    _ => StopReason::EndTurn,
                });
            }
            let waited = Instant::now();
            let results = self.run_tools(&calls).await;
            self.outcome.timings.tools += waited.elapsed();
            self.outcome.tool_calls += calls.len();
            self.record(results).await;
        }
    }

    /// Adds one model call's tokens (and cost) to the turn's and the session's, and says so.
    fn count(&mut self, call: Usage) {
        let outcome = &mut self.outcome;
        outcome.usage.add(call);
        outcome.cost_usd = self.price.map(|p| p.cost(outcome.usage));
        outcome.session_usage = self.before.usage;
        outcome.session_usage.add(outcome.usage);
        outcome.session_cost_usd = store::add_cost(self.before.cost_usd, outcome.cost_usd);
        let _ = self.events.send(AgentEvent::Usage {
            call,
            turn: outcome.usage,
            session: outcome.session_usage,
            cost: Cost {
                call_usd: self.price.map(|p| p.cost(call)),
                turn_usd: outcome.cost_usd,
                session_usd: outcome.session_cost_usd,
            },
        });
    }

    /// Runs one turn's tool calls and returns their results in call order.
    async fn run_tools(&mut self, calls: &[ToolCall]) -> Vec<Message> {
        let kept = Instant::now();
        let touched = self.checkpoint(calls).await;
        let mut checkpoints = kept.elapsed();
        let toolbox = &self.session.agent.toolbox;
        let ctx = CallContext {
            session: Some(Arc::clone(&self.session.state.id)),
            token: self.token.child_token(),
            call: None,
            progress: None,
        };
        let events = self.events;
        // What the front ends are shown of each call, worked out up front (cheap); the lane
        // tasks are built one by one as the scheduler pulls them (see `schedule::run`).
        let shown: Vec<(Option<Lane>, AgentEvent)> = calls
            .iter()
            .map(|call| {
                let class = toolbox.class(&call.name, ctx.session.as_ref());
                let lane = class.map(|(_, effect)| effect.lane());
                let arguments = serde_json::from_str(&call.arguments).unwrap_or(Value::Null);
                let started = AgentEvent::ToolCallStarted {
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    lane,
                    kind: class.map_or(ToolKind::Other, |(kind, _)| kind),
                    summary: summarize_arguments(&arguments),
                    arguments,
                };
                (lane, started)
            })
            .collect();
        let mut answers: Vec<Option<String>> = vec![None; calls.len()];
        let searches = SearchRuns::of(toolbox, calls, ctx.session.as_ref());
        // Indexed rather than over `&ToolCall`: a closure taking a reference would make the
        // future of `send` not provably `Send` (rust-lang/rust#110338).
        let steps = (0..calls.len()).map(|i| {
            let call = &calls[i];
            let class = toolbox.class(&call.name, ctx.session.as_ref());
            let planned = self
                .offer(&call.name)
                .and_then(|()| parse_arguments(&call.name, &call.arguments))
                .and_then(|args| {
                    let ctx = CallContext {
                        call: Some(call.id.clone()),
                        ..ctx.clone()
                    };
                    let task = match searches.group(i) {
                        Some(group) => toolbox.task_in(&call.name, args, &ctx, group),
                        None => toolbox.task(&call.name, args, &progress_of(&ctx, call, events)),
                    };
                    task.map_err(|e| e.message)
                });
            searches.built(i);
            match planned {
                Ok(task) if class.is_some_and(|(_, effect)| effect.parallel_safe()) => {
                    Step::Parallel(task)
                }
                Ok(task) => Step::Barrier(task),
                Err(message) => {
                    // Answered at once: the model gets the error and can call again.
                    let _ = events.send(shown[i].1.clone());
                    let _ = events.send(AgentEvent::ToolCallFinished {
                        call_id: call.id.clone(),
                        name: call.name.clone(),
                        lane: shown[i].0,
                        status: ToolStatus::Failed,
                        duration: Duration::ZERO,
                        summary: first_line(&message),
                    });
                    answers[i] = Some(message);
                    Step::Answered
                }
            }
        });
        // What each call tells the model, rendered once as it finishes.
        let mut contents: Vec<Option<(String, bool, Vec<llm::ToolImage>)>> =
            vec![None; calls.len()];
        schedule::run(
            toolbox.lanes(),
            steps,
            self.token,
            |progress| match progress {
                Progress::Started(i) => {
                    let _ = events.send(shown[i].1.clone());
                }
                Progress::Finished(i, result, duration) => {
                    let (content, is_error, images) = tool_content(toolbox, result);
                    let status = match result {
                        Err(LaneError::Cancelled) => ToolStatus::Cancelled,
                        _ if is_error => ToolStatus::Failed,
                        _ => ToolStatus::Completed,
                    };
                    let summary = if is_error {
                        first_line(&content)
                    } else {
                        summarize_output(&content)
                    };
                    let _ = events.send(AgentEvent::ToolCallFinished {
                        call_id: calls[i].id.clone(),
                        name: calls[i].name.clone(),
                        lane: shown[i].0,
                        status,
                        duration,
                        summary,
                    });
                    if let Ok(Ok(ToolOutput::Plan(plan))) = result {
                        let _ = events.send(AgentEvent::Plan(plan.clone()));
                    }
                    contents[i] = Some((content, is_error, images));
                }
            },
        )
        .await;
        let settled = Instant::now();
        self.settle(touched).await;
        checkpoints += settled.elapsed();
        self.outcome.timings.checkpoints += checkpoints;
        calls
            .iter()
            .zip(answers)
            .zip(contents)
            .map(|((call, answer), content)| {
                let (content, is_error, images) = match (answer, content) {
                    (Some(message), _) => (message, true, Vec::new()),
                    (None, Some(content)) => content,
                    (None, None) => (
                        "the call was not run: the request was cancelled".to_string(),
                        true,
                        Vec::new(),
                    ),
                };
                // The OpenAI format has no error flag: the text itself says so.
                let content = if is_error {
                    format!("error: {content}")
                } else {
                    content
                };
                Message::ToolResult {
                    call_id: call.id.clone(),
                    content,
                    is_error,
                    images,
                }
            })
            .collect()
    }

    /// Summarizes the older part of the history (see [`compact`]) and puts the summary in
    /// its place, in memory and as a record in the session file; `keep` says how much of
    /// the recent turns stays. Returns the messages replaced and kept, `None` when nothing
    /// was compacted.
    async fn compact(&mut self, keep: Keep) -> Result<Option<(usize, usize)>, AgentError> {
        let state = &self.session.state;
        let previous = *state.compacted.lock();
        let compacted = previous.is_some();
        let from = match keep {
            Keep::Share => compact::keep_from(
                self.history,
                compacted,
                compact::bytes_for(self.threshold * 2 / 5, self.ratio),
            ),
            Keep::Less => compact::keep_from(
                self.history,
                compacted,
                compact::bytes_for(self.threshold / 5, self.ratio),
            ),
            Keep::LastExchange => compact::last_exchange(self.history, compacted),
        };
        let Some(from) = from else {
            return Ok(None);
        };
        let text = compact::transcript(
            &self.history[..from],
            compact::bytes_for(self.threshold / 2, self.ratio),
        );
        let request = ModelRequest {
            system: compact::SYSTEM.to_string(),
            messages: vec![Message::User { content: text }],
            ..ModelRequest::default()
        };
        // The summary is not the answer: its text is not streamed to the front end.
        let (quiet, _) = tokio::sync::mpsc::unbounded_channel();
        let waited = Instant::now();
        let answer = model::call(
            self.session.agent.toolbox.lanes(),
            self.client,
            request,
            &state.id,
            self.token,
            &quiet,
            "compact",
        )
        .await;
        self.outcome.timings.model += waited.elapsed();
        let answer = match answer {
            Ok(answer) => answer,
            Err(_) if self.token.is_cancelled() => return Ok(None),
            Err(e) => {
                return Err(AgentError::Model(format!(
                    "compacting the conversation failed: {}",
                    model::describe(&e)
                )));
            }
        };
        self.count(answer.usage);
        let summary = compact::summary_message(&self.history[..from], &answer.text);
        let covered = previous.map_or(from, |earlier| earlier + from - 1);
        self.history.splice(..from, [summary.clone()]);
        *state.compacted.lock() = Some(covered);
        self.append(&[store::Line::Compaction { covered, summary }])
            .await;
        let kept = self.history.len() - 1;
        let _ = self.events.send(AgentEvent::Compacted {
            replaced: from,
            kept,
        });
        Ok(Some((from, kept)))
    }

    /// Keeps, before a batch of calls runs, what the files they change are now (once per
    /// file per turn), and marks the turn when a call's changes cannot be known. Returns
    /// the files the batch may change. Nothing for a session not kept on disk.
    async fn checkpoint(&mut self, calls: &[ToolCall]) -> Vec<std::path::PathBuf> {
        let state = &self.session.state;
        let Some(store) = self.session.agent.store.clone().filter(|_| state.persist) else {
            return Vec::new();
        };
        let turn = self.outcome.turn;
        let toolbox = &self.session.agent.toolbox;
        // A call that runs something (bash, an outside tool) changes what cannot be known.
        let mut lines: Vec<store::Line> = calls
            .iter()
            .filter(|c| {
                toolbox
                    .class(&c.name, Some(&state.id))
                    .is_some_and(|(_, effect)| effect == Effect::Runs)
            })
            .map(|c| store::Line::Unrestorable {
                turn,
                tool: c.name.clone(),
            })
            .collect();
        let changing: Vec<(String, Value)> = calls
            .iter()
            .filter(|c| {
                toolbox
                    .class(&c.name, Some(&state.id))
                    .is_some_and(|(_, effect)| !effect.parallel_safe())
            })
            .filter_map(|c| Some((c.name.clone(), serde_json::from_str(&c.arguments).ok()?)))
            .collect();
        if changing.is_empty() && lines.is_empty() {
            return Vec::new();
        }
        let toolbox = self.session.agent.toolbox.clone();
        let id = Arc::clone(&state.id);
        let seen = self.captured.clone();
        let kept = tokio::task::spawn_blocking(move || {
            checkpoint::capture(&toolbox, &store, &id, turn, &changing, &seen)
        })
        .await
        .unwrap_or_default();
        let (paths, records) = kept;
        for line in &records {
            if let store::Line::Checkpoint { path, .. } = line {
                self.captured.insert(path.clone());
            }
        }
        lines.extend(records);
        self.append(&lines).await;
        paths
    }

    /// Records what the agent left `paths` as, after a batch of calls.
    async fn settle(&mut self, paths: Vec<std::path::PathBuf>) {
        if paths.is_empty() {
            return;
        }
        let toolbox = self.session.agent.toolbox.clone();
        let turn = self.outcome.turn;
        let lines = tokio::task::spawn_blocking(move || checkpoint::settle(&toolbox, turn, paths))
            .await
            .unwrap_or_default();
        self.append(&lines).await;
    }

    /// Appends records to the session file; a failed write is logged, not fatal.
    async fn append(&self, lines: &[store::Line]) {
        let state = &self.session.state;
        if let (true, Some(store), false) =
            (state.persist, &self.session.agent.store, lines.is_empty())
            && let Err(e) = store.append_lines(&state.id, lines).await
        {
            tracing::warn!(session = %state.id, error = %e, "cannot save the session");
        }
    }

    /// Whether the model may call `name` in this request, or why not.
    fn offer(&self, name: &str) -> Result<(), String> {
        if self.offered.iter().any(|offered| offered == name) {
            return Ok(());
        }
        let tools = self.offered.join(", ");
        Err(
            match self
                .session
                .agent
                .toolbox
                .class(name, Some(&self.session.state.id))
            {
                Some(_) => format!("`{name}` is not available here; the tools are {tools}"),
                None => format!("unknown tool `{name}`; the tools are {tools}"),
            },
        )
    }

    /// Adds messages to the history and, when the session persists, to its file. A failed
    /// write is logged, not fatal: the conversation goes on in memory.
    async fn record(&mut self, messages: Vec<Message>) {
        let state = &self.session.state;
        if let (true, Some(store)) = (state.persist, &self.session.agent.store)
            && let Err(e) = store.append(&state.id, &messages).await
        {
            tracing::warn!(session = %state.id, error = %e, "cannot save the session");
        }
        self.history.extend(messages);
    }
}

/// An error unless `id` can name a session.
/// `ctx` for `call`, its progress reported as [`AgentEvent::ToolCallProgress`].
fn progress_of(ctx: &CallContext, call: &ToolCall, events: &EventSender) -> CallContext {
    let (call_id, name, events) = (call.id.clone(), call.name.clone(), events.clone());
    let since = Instant::now();
    CallContext {
        progress: Some(crate::mcp::ProgressSink::new(move |p| {
            let _ = events.send(AgentEvent::ToolCallProgress {
                call_id: call_id.clone(),
                name: name.clone(),
                progress: p.progress,
                total: p.total,
                message: p.message,
                elapsed: since.elapsed(),
            });
        })),
        ..ctx.clone()
    }
}

fn check_id(id: &str) -> Result<(), AgentError> {
    if store::valid_id(id) {
        return Ok(());
    }
    Err(AgentError::Session(format!(
        "`{id}` is not a session id: ids are letters, digits, `-` and `_`"
    )))
}

/// The model's raw arguments as a JSON object, or an error the model can act on.
fn parse_arguments(tool: &str, raw: &str) -> Result<Value, String> {
    if raw.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(value @ Value::Object(_)) => Ok(value),
        Ok(other) => Err(format!(
            "the arguments of `{tool}` must be a JSON object, got {}; call it again with an object",
            crate::tools::json_kind(&other)
        )),
        Err(e) => Err(format!(
            "the arguments of `{tool}` are not valid JSON ({e}): {}; call it again with a JSON object",
            clip(raw, 200)
        )),
    }
}

/// What the model is told of a call that ran: the rendered output (with its images), or
/// the error.
fn tool_content(
    toolbox: &Toolbox,
    result: &Result<ToolResult, LaneError>,
) -> (String, bool, Vec<llm::ToolImage>) {
    match result {
        Ok(Ok(output)) => {
            let (text, images) = toolbox.render_with_images(output);
            (text, false, images)
        }
        Ok(Err(message)) => (message.clone(), true, Vec::new()),
        Err(LaneError::Cancelled) => ("cancelled by the user".to_string(), true, Vec::new()),
        Err(e) => (e.to_string(), true, Vec::new()),
    }
}

/// `path=src/lib.rs offset=10`: the arguments on one short line.
pub(crate) fn summarize_arguments(arguments: &Value) -> String {
    let Value::Object(map) = arguments else {
        return String::new();
    };
    let parts: Vec<String> = map
        .iter()
        .map(|(key, value)| match value {
            Value::String(s) if !s.contains(char::is_whitespace) && !s.is_empty() => {
                format!("{key}={s}")
            }
            other => format!("{key}={other}"),
        })
        .collect();
    clip(&parts.join(" "), 100)
}

/// One line of output as it is, else how many lines.
fn summarize_output(text: &str) -> String {
    let lines = text.lines().count();
    if lines == 1 {
        clip(text.trim(), 100)
    } else {
        format!("{lines} lines")
    }
}

fn first_line(text: &str) -> String {
    clip(text.lines().next().unwrap_or(""), 160)
}

/// `text` cut to `max` characters, with `…` when cut.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests;

/// The searches of a turn that share a walk: each run of consecutive parallel-safe calls
/// (a call that is not parallel-safe ends a run) with two or more `grep`/`glob` calls gets
/// a [`SearchGroup`], sealed once its last search is built.
struct SearchRuns {
    /// Each call's group, by index into `groups`.
    of_call: Vec<Option<usize>>,
    /// The groups, each with the index of its last search and a guard that seals it even
    /// if the turn stops building calls early.
    groups: Vec<(SearchGroup, usize, SealOnDrop)>,
}

impl SearchRuns {
    fn of(toolbox: &Toolbox, calls: &[ToolCall], session: Option<&SessionId>) -> SearchRuns {
        let is_search = |call: &ToolCall| {
            Tool::from_name(&call.name).is_some_and(|tool| matches!(tool, Tool::Grep | Tool::Glob))
        };
        let mut runs: Vec<Vec<usize>> = vec![Vec::new()];
        for (i, call) in calls.iter().enumerate() {
            match toolbox.class(&call.name, session) {
                Some((_, effect)) if !effect.parallel_safe() => runs.push(Vec::new()),
                _ if is_search(call) => runs.last_mut().into_iter().for_each(|r| r.push(i)),
                _ => {}
            }
        }
        let mut of_call = vec![None; calls.len()];
        let mut groups = Vec::new();
        for run in runs.into_iter().filter(|r| r.len() >= 2) {
            let group = SearchGroup::new();
            let last = run[run.len() - 1];
            for &i in &run {
                of_call[i] = Some(groups.len());
            }
            let seal = group.seal_on_drop();
            groups.push((group, last, seal));
        }
        SearchRuns { of_call, groups }
    }

    /// The group call `i` joins, if any.
    fn group(&self, i: usize) -> Option<&SearchGroup> {
        self.of_call[i].map(|g| &self.groups[g].0)
    }

    /// Call `i` was built (or failed to be): its group is complete after its last search.
    fn built(&self, i: usize) {
        if let Some(g) = self.of_call[i] {
            let (group, last, _) = &self.groups[g];
            if *last == i {
                group.seal();
            }
        }
    }
}
