//! One model call as a Generate-lane task: the lane owns concurrency, retries with backoff
//! (honouring `Retry-After`), timeouts and dead letters; this side streams the answer to the
//! run's events as it arrives, says what it waits for, and when a failed attempt's text is
//! void. The whole request, retries included, keeps within `llm.request_budget`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::event::{AgentEvent, EventSender};
use crate::broker::ModelTask;
use crate::lanes::{Lane, LaneError, LaneMode, Lanes, SessionId, Task, TaskError};
use crate::llm::{Client, LlmError, LlmErrorKind, ModelRequest, ModelResponse, StreamEvent};

/// What the task tells the waiting run, attempt by attempt.
enum Signal {
    /// Streamed text of the attempt running now.
    Text(String),
    /// Streamed reasoning of the attempt running now.
    Thought(String),
    /// The attempt running now waits longer than usual.
    Waiting { what: String, up_to: Duration },
    /// `attempt` failed.
    Failed {
        attempt: u32,
        error: String,
        retryable: bool,
        retry_after: Option<Duration>,
    },
}

/// Calls the model through the Generate lane as a task named `name` (`model` for a turn,
/// `compact` for a summary) and waits for the answer, forwarding its text to `events` as
/// it streams. Cancelling `token` drops the HTTP request at once.
pub(crate) async fn call(
    lanes: &Lanes,
    client: &Client,
    request: ModelRequest,
    session: &SessionId,
    token: &CancellationToken,
    events: &EventSender,
    name: &'static str,
) -> Result<ModelResponse, LaneError> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    // An external lane's worker makes the call itself: the whole request travels, the key
    // and the base URL do not (see `broker::ModelTask`).
    let external = lanes.config().generate.mode == LaneMode::External;
    let payload = if external {
        serde_json::to_value(ModelTask::new(client.config(), &request)).unwrap_or_default()
    } else {
        json!({
            "model": client.config().model,
            "provider": client.config().provider.as_str(),
            "messages": request.messages.len(),
        })
    };
    let request = Arc::new(request);
    let client = client.clone();
    let deadline = Instant::now() + client.config().request_budget;
    let task = Task::future(Lane::Generate, name, move |ctx| {
        let (client, request, tx) = (client.clone(), Arc::clone(&request), tx.clone());
        async move {
            let attempt = ctx.attempt();
            let result = client
                .stream_until(&request, deadline, ctx.token(), |event| match event {
                    StreamEvent::TextDelta(text) => {
                        let _ = tx.send(Signal::Text(text));
                    }
                    StreamEvent::ThinkingDelta(text) => {
                        let _ = tx.send(Signal::Thought(text));
                    }
                    StreamEvent::Waiting { what, up_to } => {
                        let _ = tx.send(Signal::Waiting { what, up_to });
                    }
                    _ => {}
                })
                .await;
            result.map_err(|error| {
                let _ = tx.send(Signal::Failed {
                    attempt,
                    error: error.message.clone(),
                    retryable: error.retryable,
                    retry_after: error.retry_after,
                });
                task_error(error)
            })
        }
    })
    .session(Arc::clone(session))
    .payload(payload)
    .cancelled_by(token);
    let max_attempts = lanes.config().generate.retry.max_attempts();
    let mut handle = lanes.submit(task);
    let mut streamed = false;
    let mut forward = |signal: Signal| match signal {
        Signal::Text(text) => {
            streamed = true;
            let _ = events.send(AgentEvent::MessageChunk { text });
        }
        Signal::Thought(text) => {
            let _ = events.send(AgentEvent::ThoughtChunk { text });
        }
        Signal::Waiting { what, up_to } => {
            let _ = events.send(AgentEvent::ModelWaiting { what, up_to });
        }
        Signal::Failed {
            attempt,
            error,
            retryable,
            retry_after,
        } => {
            if retryable && attempt < max_attempts && !token.is_cancelled() {
                let _ = events.send(AgentEvent::ModelRetry {
                    attempt,
                    max_attempts,
                    error,
                    discarded_text: streamed,
                });
                if let Some(up_to) = retry_after {
                    let _ = events.send(AgentEvent::ModelWaiting {
                        what: format!(
                            "the end of the wait the provider asked for (Retry-After) before attempt {}",
                            attempt + 1
                        ),
                        up_to,
                    });
                }
            }
            streamed = false;
        }
    };
    let result = loop {
        tokio::select! {
            biased;
            Some(signal) = rx.recv() => forward(signal),
            result = &mut handle => break result,
        }
    };
    // Whatever the task sent before it returned is already queued.
    while let Ok(signal) = rx.try_recv() {
        forward(signal);
    }
    // A worker returns the answer whole: it is shown as one chunk.
    if let (true, Ok(answer)) = (external, &result)
        && !answer.text.is_empty()
    {
        let text = answer.text.clone();
        let _ = events.send(AgentEvent::MessageChunk { text });
    }
    result
}

/// The lane's view of a model failure: the client classifies, the lane decides.
fn task_error(error: LlmError) -> TaskError {
    if error.kind == LlmErrorKind::Cancelled {
        return TaskError::cancelled();
    }
    let mut task_error = if error.retryable {
        TaskError::retryable(error.message)
    } else {
        TaskError::fatal(error.message)
    };
    task_error.retry_after = error.retry_after;
    task_error
}

/// A model call that failed for good, worded for the user.
pub(crate) fn describe(error: &LaneError) -> String {
    match error {
        LaneError::Failed {
            error, attempts, ..
        } if *attempts > 1 => {
            format!("{} (gave up after {attempts} attempts)", error.message)
        }
        LaneError::Failed { error, .. } => error.message.clone(),
        LaneError::TimedOut(_) => format!("the model call {error} (lanes.generate.timeout_ms)"),
        other => format!("the model call failed: {other}"),
    }
}
