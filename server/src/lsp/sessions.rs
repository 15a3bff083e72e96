//! `switchyard/listSessions` and `switchyard/deleteSession`: the workspace's stored
//! sessions, converted to and from the agent's.

use tower_lsp_server::jsonrpc::{Error, Result};

use super::ext::{DeleteSessionParams, ListSessionsResult, SessionSummary};
use super::progress::request_failed;
use super::to_proto::token_usage;
use crate::agent::{Agent, AgentError};

/// The stored sessions, most recently changed first.
pub(crate) async fn list(agent: &Agent) -> Result<ListSessionsResult> {
    let sessions = agent
        .list_sessions()
        .await
        .map_err(|e| request_failed(e.to_string()))?;
    Ok(ListSessionsResult {
        sessions: sessions
            .into_iter()
            .map(|s| SessionSummary {
                session_id: s.id,
                title: s.title,
                created_ms: s.created_ms,
                updated_ms: s.updated_ms,
                turns: s.turns,
                usage: token_usage(s.usage, s.cost_usd),
            })
            .collect(),
    })
}

/// Deletes one session; an unknown id is invalid params, naming it.
pub(crate) async fn delete(agent: &Agent, params: DeleteSessionParams) -> Result<()> {
    agent
        .delete_session(&params.session_id)
        .await
        .map_err(|e| session_error("switchyard/deleteSession", e))
}

/// A session error as the method's error: a bad or unknown id is the caller's.
pub(crate) fn session_error(method: &str, error: AgentError) -> Error {
    match error {
        AgentError::Session(message) => Error::invalid_params(format!("{method}: {message}")),
        other => request_failed(format!("{method}: {other}")),
    }
}
