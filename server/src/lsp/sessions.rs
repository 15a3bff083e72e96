//! `switchyard/listSessions`, `switchyard/deleteSession` and `switchyard/rewind`: the
//! workspace's stored sessions, converted to and from the core's.

use tower_lsp_server::jsonrpc::{Error, Result};

use super::ext::{
    DeleteSessionParams, ListSessionsResult, RewindParams, RewindResult, SessionSummary,
};
use super::progress::request_failed;
use super::to_proto::token_usage;
use crate::agent::{Agent, AgentError, RewindRequest};
use crate::core::Core;

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

/// Takes a session back to the start of a turn.
pub(crate) async fn rewind(core: &Core, params: RewindParams) -> Result<RewindResult> {
    let request = RewindRequest {
        turn: params.turn,
        only: params.only,
        force: params.force,
    };
    let report = core
        .rewind(&params.session_id, request)
        .await
        .map_err(|e| session_error("switchyard/rewind", e))?;
    Ok(RewindResult {
        turn: report.turn,
        restored: report.restored,
        conversation: report.conversation,
        not_restorable: report.not_restorable,
    })
}

/// A session error as the method's error: a bad or unknown id is the caller's.
pub(crate) fn session_error(method: &str, error: AgentError) -> Error {
    match error {
        AgentError::Session(message) => Error::invalid_params(format!("{method}: {message}")),
        other => request_failed(format!("{method}: {other}")),
    }
}
