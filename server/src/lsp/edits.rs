//! Changes and approvals through the editor: every change set of the mutating tools
//! becomes one labelled `workspace/applyEdit` — the server never writes the user's files
//! itself — and every approval the policy asks for becomes a `window/showMessageRequest`
//! with Allow / Allow for this session / Reject. In review mode a change is first sent as
//! `switchyard/reviewChange`, and the editor answers with the hunks the user accepted.

use std::sync::Arc;

use tokio::sync::mpsc;
use tower_lsp_server::ls_types::request::ApplyWorkspaceEdit;
use tower_lsp_server::ls_types::{ApplyWorkspaceEditParams, MessageActionItem, MessageType};

use super::ext::ReviewChange;
use super::server::Inner;
use super::to_proto;
use crate::approvals::{ApprovalRequest, Decision, Subject};
use crate::edits::review::ReviewRequest;
use crate::edits::{ApplyOutcome, Change, ChangeSet, EditorRequest};

/// The titles of the approval prompt's buttons.
pub(crate) const ALLOW: &str = "Allow";
/// Allow this tool for the rest of the session.
pub(crate) const ALLOW_SESSION: &str = "Allow for this session";
/// Refuse.
pub(crate) const REJECT: &str = "Reject";

/// Serves the tools' change sets, approval questions and reviews until the channels close.
pub(crate) async fn serve(
    inner: Arc<Inner>,
    mut edits: mpsc::Receiver<EditorRequest>,
    mut approvals: mpsc::Receiver<ApprovalRequest>,
    mut reviews: mpsc::Receiver<ReviewRequest>,
) {
    loop {
        tokio::select! {
            Some(request) = edits.recv() => {
                let inner = Arc::clone(&inner);
                tokio::spawn(async move {
                    let outcome = apply(&inner, request.changes).await;
                    let _ = request.reply.send(outcome);
                });
            }
            Some(request) = approvals.recv() => {
                let inner = Arc::clone(&inner);
                tokio::spawn(async move {
                    let decision = ask(&inner, request.tool, &request.summary).await;
                    let _ = request.reply.send(decision);
                });
            }
            Some(request) = reviews.recv() => {
                let inner = Arc::clone(&inner);
                tokio::spawn(async move {
                    let answer = review(&inner, request.review).await;
                    let _ = request.reply.send(answer);
                });
            }
            else => return,
        }
    }
}

/// Sends one change set to the editor and reports its answer.
async fn apply(inner: &Inner, set: ChangeSet) -> ApplyOutcome {
    let (caps, encoding) = {
        let state = inner.state.read();
        (state.caps, state.encoding)
    };
    if !caps.apply_edit {
        return ApplyOutcome::NotApplied {
            reason: "the editor does not support workspace/applyEdit, so files cannot be changed through it".into(),
        };
    }
    // An edit prepared against a buffer the user has typed in since is never sent: some
    // editors would skip it silently and still answer that it was applied.
    for change in &set.changes {
        if let Change::Edit {
            path,
            version: Some(version),
            ..
        } = change
            && let Some(doc) = inner.documents.get(path)
            && doc.version != *version
        {
            return ApplyOutcome::NotApplied {
                reason: format!(
                    "the buffer of {} changed in the editor while the edit was prepared (version {version} → {})",
                    path.display(),
                    doc.version
                ),
            };
        }
    }
    let edit = match to_proto::workspace_edit(&set, encoding, &caps, |path| inner.editor_uri(path))
    {
        Ok(edit) => edit,
        Err(reason) => return ApplyOutcome::NotApplied { reason },
    };
    let params = ApplyWorkspaceEditParams {
        label: Some(set.label.clone()),
        edit,
    };
    match inner
        .client
        .send_request::<ApplyWorkspaceEdit>(params)
        .await
    {
        Ok(response) if response.applied => ApplyOutcome::Applied,
        Ok(response) => ApplyOutcome::NotApplied {
            reason: response
                .failure_reason
                .unwrap_or_else(|| "the editor did not apply it and gave no reason".into()),
        },
        Err(e) => ApplyOutcome::NotApplied {
            reason: format!("the editor answered with an error: {e}"),
        },
    }
}

/// Asks the user; a dismissed prompt is a refusal.
async fn ask(inner: &Inner, tool: Subject, intent: &str) -> Decision {
    let actions = [ALLOW, ALLOW_SESSION, REJECT]
        .into_iter()
        .map(|title| MessageActionItem {
            title: title.to_string(),
            properties: Default::default(),
        })
        .collect();
    let message = format!("Switchyard wants to {intent} (tool `{tool}`).");
    match inner
        .client
        .show_message_request(MessageType::WARNING, message, Some(actions))
        .await
    {
        Ok(Some(item)) if item.title == ALLOW => Decision::Allow,
        Ok(Some(item)) if item.title == ALLOW_SESSION => Decision::AllowForSession,
        Ok(_) => Decision::Reject,
        Err(e) => {
            tracing::warn!("the approval prompt failed: {e}");
            Decision::Reject
        }
    }
}

/// Sends one file's change to the editor for review; the accepted hunks' indices, or why
/// there are none (an editor that cannot review, its error), which counts as a rejection.
async fn review(inner: &Inner, review: crate::edits::review::Review) -> Result<Vec<usize>, String> {
    let uri = inner.editor_uri(&review.path)?;
    let params = to_proto::review_change(review, uri);
    match inner.client.send_request::<ReviewChange>(params).await {
        Ok(result) => Ok(result.accepted),
        Err(e) if e.code == tower_lsp_server::jsonrpc::ErrorCode::MethodNotFound => Err(
            "the editor does not review changes (it does not know switchyard/reviewChange); turn review off or use an editor that does".into(),
        ),
        Err(e) => Err(format!("the editor answered the review with an error: {}", e.message)),
    }
}
