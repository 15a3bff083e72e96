//! `switchyard/listSessions`, `switchyard/deleteSession`, `switchyard/rewind` and
//! `switchyard.compact`: the workspace's stored sessions, converted to and from the core's.

use tower_lsp_server::jsonrpc::{Error, Result};

use std::sync::Arc;

use super::ext::{
    CompactParams, CompactResult, DeleteSessionParams, ListSessionsResult, RewindParams,
    RewindResult, SessionSummary, SessionUpdate, SessionUpdateParams,
};
use super::progress::request_failed;
use super::server::Inner;
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

/// Compacts one session now, streaming its usage and compaction as
/// `switchyard/sessionUpdate`s; an unknown id is invalid params, naming it.
pub(crate) async fn compact(server: &Arc<Inner>, params: CompactParams) -> Result<CompactResult> {
    const NAME: &str = "switchyard.compact";
    let agent = server.agent()?;
    let session = agent
        .session(&params.session_id)
        .await
        .map_err(|e| session_error(NAME, e))?;
    let (events, mut received) = tokio::sync::mpsc::unbounded_channel();
    let client = server.client.clone();
    let session_id = params.session_id;
    let forward = tokio::spawn(async move {
        while let Some(event) = received.recv().await {
            if let Some(update) = super::to_proto::session_update(&event) {
                let params = SessionUpdateParams {
                    session_id: session_id.clone(),
                    update,
                };
                client.send_notification::<SessionUpdate>(params).await;
            }
        }
    });
    let compacted = session.compact(&events).await;
    drop(events);
    let _ = forward.await;
    let done = compacted.map_err(|e| session_error(NAME, e))?;
    let result = CompactResult {
        compacted: done.replaced > 0,
        replaced: done.replaced,
        kept: done.kept,
        usage: token_usage(done.usage, done.cost_usd),
        session_usage: token_usage(done.session_usage, done.session_cost_usd),
    };
    Ok(result)
}

/// A session error as the method's error: a bad or unknown id is the caller's.
pub(crate) fn session_error(method: &str, error: AgentError) -> Error {
    match error {
        AgentError::Session(message) => Error::invalid_params(format!("{method}: {message}")),
        other => request_failed(format!("{method}: {other}")),
    }
}
