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

mod config;
pub mod ensemble;
mod event;
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

pub use config::{AgentConfig, EnsembleConfig};
pub use event::{AgentEvent, EventSender, RunOutcome, StopReason, Timings, ToolStatus};
pub use prompt::{AskContext, Selection};
pub use store::{SessionInfo, SessionStore};

use crate::config::Config;
use crate::lanes::{Lane, LaneError, SessionId};
use crate::llm::{self, Client, Message, ModelRequest, ToolCall, Usage};
use crate::tools::{CallContext, ToolKind, ToolResult, ToolSpec, Toolbox};
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
    /// A session cannot be found, read or named so.
    #[error("{0}")]
    Session(String),
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
}

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
        if let (true, Some(store)) = (persist, &self.inner.store) {
            if let Err(e) = store.create(&id).await {
                tracing::warn!(session = %id, error = %e, "the session will not be kept");
                persist = false;
            }
        }
        Ok(self.register(id, Vec::new(), persist))
    }

    /// A session that is never written to disk (an ensemble's module agents).
    pub fn ephemeral_session(&self) -> Session {
        self.register(store::new_id().into(), Vec::new(), false)
    }

    /// The session `id`: the live one, else the one stored for this workspace, resumed.
    pub async fn session(&self, id: &str) -> Result<Session, AgentError> {
        if let Some(state) = self.inner.sessions.lock().get(id) {
            return Ok(Session {
                agent: Arc::clone(&self.inner),
                state: Arc::clone(state),
            });
        }
        if !store::valid_id(id) {
            return Err(AgentError::Session(format!(
                "`{id}` is not a session id: ids are letters, digits, `-` and `_`"
            )));
        }
        let Some(store) = self.inner.store.as_ref().filter(|_| self.persists()) else {
            return Err(AgentError::Session(format!(
                "no session `{id}`: sessions are not kept on disk (agent.persist_sessions is off)"
            )));
        };
        let mut history = store.load(id).await.map_err(AgentError::Session)?;
        store::repair(&mut history);
        Ok(self.register(id.into(), history, true))
    }

    /// The sessions stored for this workspace, most recent first (none when sessions are
    /// not kept on disk).
    pub async fn list_sessions(&self) -> Result<Vec<SessionInfo>, AgentError> {
        match self.inner.store.as_ref().filter(|_| self.persists()) {
            Some(store) => store.list().await.map_err(AgentError::Session),
            None => Ok(Vec::new()),
        }
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

    fn register(&self, id: SessionId, history: Vec<Message>, persist: bool) -> Session {
        let cancelled = CancellationToken::new();
        cancelled.cancel();
        let state = Arc::new(SessionState {
            id: Arc::clone(&id),
            history: tokio::sync::Mutex::new(history),
            run: Mutex::new(cancelled),
            persist,
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
        let agent = Agent {
            inner: Arc::clone(&self.agent),
        };
        let client = agent.llm().map_err(AgentError::NotConfigured)?;
        let mut history = self.state.history.lock().await;
        // A request whose future was dropped half way (a front end gave up on it) may have
        // left calls without results: the model would refuse that history.
        store::repair(&mut history);
        let token = CancellationToken::new();
        *self.state.run.lock() = token.clone();
        let mut config = agent.config();
        if let Some(max_turns) = max_turns {
            config.max_turns = max_turns;
        }
        let mut run = Run {
            session: self,
            client: &client,
            config,
            history: &mut history,
            events,
            token: &token,
            offered: Vec::new(),
            outcome: RunOutcome {
                session: self.state.id.to_string(),
                text: String::new(),
                stop: StopReason::EndTurn,
                usage: Usage::default(),
                turns: 0,
                tool_calls: 0,
                timings: Timings::default(),
            },
        };
        let started = Instant::now();
        let result = run.turns(prompt, context).await;
        let mut outcome = run.outcome;
        outcome.timings.total = started.elapsed();
        token.cancel();
        let stop = result?;
        outcome.stop = stop;
        let _ = events.send(AgentEvent::Done { stop });
        Ok(outcome)
    }
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
}

impl Run<'_> {
    async fn turns(
        &mut self,
        prompt: &str,
        context: &AskContext,
    ) -> Result<StopReason, AgentError> {
        let agent = &self.session.agent;
        agent.toolbox.start_mcp().await;
        let specs = agent.toolbox.specs();
        self.offered = specs.iter().map(|s| s.name.clone()).collect();
        let system = prompt::system_prompt(
            agent.toolbox.workspace().roots(),
            context,
            &specs,
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
            let request = ModelRequest {
                system: system.clone(),
                messages: self.history.clone(),
                tools: tools.clone(),
                parallel_tool_calls: self.config.parallel_tool_calls,
                ..ModelRequest::default()
            };
            self.outcome.turns += 1;
            let waited = Instant::now();
            let answer = model::call(
                agent.toolbox.lanes(),
                self.client,
                request,
                &self.session.state.id,
                self.token,
                self.events,
            )
            .await;
            self.outcome.timings.model += waited.elapsed();
            let mut answer = match answer {
                Ok(answer) => answer,
                Err(LaneError::Cancelled) => return Ok(StopReason::Cancelled),
                Err(_) if self.token.is_cancelled() => return Ok(StopReason::Cancelled),
                Err(e) => return Err(AgentError::Model(model::describe(&e))),
            };
            let usage = &mut self.outcome.usage;
            usage.input_tokens += answer.usage.input_tokens;
            usage.output_tokens += answer.usage.output_tokens;
            let _ = self.events.send(AgentEvent::Usage {
                call: answer.usage,
                total: *usage,
            });
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

    /// Runs one turn's tool calls and returns their results in call order.
    async fn run_tools(&mut self, calls: &[ToolCall]) -> Vec<Message> {
        let toolbox = &self.session.agent.toolbox;
        let ctx = CallContext {
            session: Some(Arc::clone(&self.session.state.id)),
            token: self.token.child_token(),
        };
        let events = self.events;
        // What the front ends are shown of each call, worked out up front (cheap); the lane
        // tasks are built one by one as the scheduler pulls them (see `schedule::run`).
        let shown: Vec<(Option<Lane>, AgentEvent)> = calls
            .iter()
            .map(|call| {
                let spec = toolbox.spec(&call.name);
                let lane = spec.as_ref().map(ToolSpec::lane);
                let arguments = serde_json::from_str(&call.arguments).unwrap_or(Value::Null);
                let started = AgentEvent::ToolCallStarted {
                    call_id: call.id.clone(),
                    name: call.name.clone(),
                    lane,
                    kind: spec.map_or(ToolKind::Other, |s| s.kind),
                    summary: summarize_arguments(&arguments),
                    arguments,
                };
                (lane, started)
            })
            .collect();
        let mut answers: Vec<Option<String>> = vec![None; calls.len()];
        // Indexed rather than over `&ToolCall`: a closure taking a reference would make the
        // future of `send` not provably `Send` (rust-lang/rust#110338).
        let steps = (0..calls.len()).map(|i| {
            let call = &calls[i];
            let spec = toolbox.spec(&call.name);
            let planned = self
                .offer(&call.name)
                .and_then(|()| parse_arguments(&call.name, &call.arguments))
                .and_then(|args| toolbox.task(&call.name, args, &ctx).map_err(|e| e.message));
            match planned {
                Ok(task) if spec.is_some_and(|s| s.parallel_safe()) => Step::Parallel(task),
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
        let mut contents: Vec<Option<(String, bool)>> = vec![None; calls.len()];
        schedule::run(
            toolbox.lanes(),
            steps,
            self.token,
            |progress| match progress {
                Progress::Started(i) => {
                    let _ = events.send(shown[i].1.clone());
                }
                Progress::Finished(i, result, duration) => {
                    let (content, is_error) = tool_content(toolbox, result);
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
                    contents[i] = Some((content, is_error));
                }
            },
        )
        .await;
        calls
            .iter()
            .zip(answers)
            .zip(contents)
            .map(|((call, answer), content)| {
                let (content, is_error) = match (answer, content) {
                    (Some(message), _) => (message, true),
                    (None, Some(content)) => content,
                    (None, None) => (
                        "the call was not run: the request was cancelled".to_string(),
                        true,
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
                }
            })
            .collect()
    }

    /// Whether the model may call `name` in this request, or why not.
    fn offer(&self, name: &str) -> Result<(), String> {
        if self.offered.iter().any(|offered| offered == name) {
            return Ok(());
        }
        let tools = self.offered.join(", ");
        Err(match self.session.agent.toolbox.spec(name) {
            Some(_) => format!("`{name}` is not available here; the tools are {tools}"),
            None => format!("unknown tool `{name}`; the tools are {tools}"),
        })
    }

    /// Adds messages to the history and, when the session persists, to its file. A failed
    /// write is logged, not fatal: the conversation goes on in memory.
    async fn record(&mut self, messages: Vec<Message>) {
        let state = &self.session.state;
        if let (true, Some(store)) = (state.persist, &self.session.agent.store) {
            if let Err(e) = store.append(&state.id, &messages).await {
                tracing::warn!(session = %state.id, error = %e, "cannot save the session");
            }
        }
        self.history.extend(messages);
    }
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

/// What the model is told of a call that ran: the rendered output, or the error.
fn tool_content(toolbox: &Toolbox, result: &Result<ToolResult, LaneError>) -> (String, bool) {
    match result {
        Ok(Ok(output)) => (toolbox.render(output), false),
        Ok(Err(message)) => (message.clone(), true),
        Err(LaneError::Cancelled) => ("cancelled by the user".to_string(), true),
        Err(e) => (e.to_string(), true),
    }
}

/// `path=src/lib.rs offset=10`: the arguments on one short line.
fn summarize_arguments(arguments: &Value) -> String {
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
