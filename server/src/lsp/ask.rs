//! `switchyard/ask` and `switchyard.ask`: a prompt to the agent as a long command. The run
//! reports work-done progress (the lane summary of its session: `generate 2/3 · query
//! 5/5 ...`) and streams `switchyard/sessionUpdate` notifications — message chunks, tool
//! calls started and finished — before the answer. `$/cancelRequest`,
//! `window/workDoneProgress/cancel` and `switchyard.cancel` with the session id cancel it:
//! the in-flight model request is dropped and running tools are cancelled, and the session
//! stays usable.

use std::sync::Arc;

use tokio::sync::mpsc;
use tower_lsp_server::jsonrpc::{Error, Result};
use tower_lsp_server::ls_types::ProgressToken;

use super::ext::{AskParams, AskResult, SessionUpdate, SessionUpdateParams};
use super::progress::{self, LongCommand};
use super::server::Inner;
use super::{from_proto, to_proto};
use crate::agent::{AgentError, AgentEvent};

/// Characters of the prompt shown as the progress message.
const PROMPT_SHOWN: usize = 60;

/// Runs one prompt and answers with the final answer.
pub(crate) async fn ask(
    server: &Arc<Inner>,
    params: AskParams,
    token: Option<ProgressToken>,
) -> Result<AskResult> {
    let agent = server.agent()?;
    if params.prompt.trim().is_empty() {
        return Err(Error::invalid_params("switchyard/ask: the prompt is empty"));
    }
    agent.llm().map_err(progress::request_failed)?;
    let session = match &params.session_id {
        Some(id) => agent.session(id).await,
        None => agent.new_session().await,
    }
    .map_err(|e| match e {
        AgentError::Session(message) => Error::invalid_params(format!("switchyard/ask: {message}")),
        other => progress::request_failed(other.to_string()),
    })?;
    match (&params.model, params.provider) {
        (Some(model), provider) => session
            .set_model(provider, model)
            .await
            .map_err(|e| Error::invalid_params(format!("switchyard/ask: {e}")))?,
        (None, Some(_)) => {
            return Err(Error::invalid_params(
                "switchyard/ask: `provider` needs a `model`",
            ));
        }
        (None, None) => {}
    }
    let context = params
        .context
        .map(|context| from_proto::ask_context(server, context))
        .unwrap_or_default();
    let caps = server.state.read().caps;
    let command = LongCommand {
        title: "Switchyard".into(),
        message: clip(params.prompt.trim(), PROMPT_SHOWN),
        session: session.id().into(),
        token,
        can_create_token: caps.work_done_progress,
    };
    let client = server.client.clone();
    let prompt = params.prompt;
    let work = move |cancel: tokio_util::sync::CancellationToken| async move {
        let (events, mut received) = mpsc::unbounded_channel::<AgentEvent>();
        let session_id = session.id().to_string();
        // Notifications go out in the order the run reports, all before the answer.
        let forward = tokio::spawn(async move {
            while let Some(event) = received.recv().await {
                if let Some(update) = to_proto::session_update(&event) {
                    let params = SessionUpdateParams {
                        session_id: session_id.clone(),
                        update,
                    };
                    client.send_notification::<SessionUpdate>(params).await;
                }
            }
        });
        let stop = {
            let session = session.clone();
            tokio::spawn(async move {
                cancel.cancelled().await;
                session.cancel();
            })
        };
        let result = session.send(&prompt, &context, &events).await;
        stop.abort();
        drop(events);
        let _ = forward.await;
        let outcome = result.map_err(|e| e.to_string())?;
        let config = agent.config();
        let result = to_proto::ask_result(&outcome, &config);
        let end = result
            .stop_message
            .clone()
            .unwrap_or_else(|| answered(&outcome));
        Ok((result, end))
    };
    progress::run_long(&server.client, &server.lanes, &server.jobs, command, work).await
}

/// `answered after 2 model calls and 3 tool calls (1,234 tokens in, 56 out)`.
fn answered(outcome: &crate::agent::RunOutcome) -> String {
    let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
    format!(
        "answered after {} and {} ({} tokens in, {} out)",
        plural(outcome.turns as usize, "model call"),
        plural(outcome.tool_calls, "tool call"),
        crate::tools::thousands(outcome.usage.input_tokens),
        crate::tools::thousands(outcome.usage.output_tokens),
    )
}

fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}
