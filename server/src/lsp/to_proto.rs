//! The core's plain types to LSP types.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tower_lsp_server::ls_types::{self as lsp, PositionEncodingKind};

use crate::broker::ExternalLane;

use super::ext::{
    AskResult, ContentBlock, LaneCounts, LaneStatusParams, TokenUsage, ToolCallContent,
    ToolCallStatus, ToolKind, Update,
};
use super::server::Caps;
use crate::agent::{AgentConfig, AgentEvent, RunOutcome, ToolStatus};
use crate::documents::{LineIndex, PositionEncoding};
use crate::edits::{Change, ChangeSet, TextEdit};
use crate::lanes::MetricsSnapshot;
use crate::llm::Usage;
use crate::tools;

/// The encoding's name in `initialize`'s result.
pub(crate) fn position_encoding(encoding: PositionEncoding) -> PositionEncodingKind {
    match encoding {
        PositionEncoding::Utf8 => PositionEncodingKind::UTF8,
        PositionEncoding::Utf16 => PositionEncodingKind::UTF16,
        PositionEncoding::Utf32 => PositionEncodingKind::UTF32,
    }
}

/// The `file:` URI of an absolute path.
pub(crate) fn uri(path: &Path) -> Result<lsp::Uri, String> {
    lsp::Uri::from_file_path(path)
        .ok_or_else(|| format!("cannot make a file URI of {}", path.display()))
}

/// The compact per-lane figures of `switchyard/laneStatus`.
pub(crate) fn lane_status(
    snapshot: &MetricsSnapshot,
    external: &[ExternalLane],
) -> LaneStatusParams {
    LaneStatusParams {
        lanes: snapshot
            .lanes
            .iter()
            .map(|m| LaneCounts {
                lane: m.lane,
                queued: m.queued,
                running: m.running,
                done: m.completed,
                failed: m.failed + m.timed_out,
                cancelled: m.cancelled,
                dead_lettered: m.dead_lettered,
                workers: external
                    .iter()
                    .find(|e| e.lane == m.lane)
                    .map(|e| e.workers.len() as u64),
            })
            .collect(),
        dead_letters: snapshot.dead_letters,
    }
}

/// The `window/logMessage` type of a tracing level.
pub(crate) fn message_type(level: tracing::Level) -> lsp::MessageType {
    match level {
        tracing::Level::ERROR => lsp::MessageType::ERROR,
        tracing::Level::WARN => lsp::MessageType::WARNING,
        tracing::Level::INFO => lsp::MessageType::INFO,
        _ => lsp::MessageType::LOG,
    }
}

/// A change set as one `WorkspaceEdit`, as rich as the client allows: `documentChanges`
/// with versioned edits and resource operations when it supports them, the plain
/// `changes` map otherwise. Ranges are in the negotiated `encoding`.
pub(crate) fn workspace_edit(
    set: &ChangeSet,
    encoding: PositionEncoding,
    caps: &Caps,
    uri_of: impl Fn(&Path) -> Result<lsp::Uri, String>,
) -> Result<lsp::WorkspaceEdit, String> {
    let text_edits = |before: &Arc<str>, edits: &[TextEdit]| {
        let index = LineIndex::new(Arc::clone(before));
        edits
            .iter()
            .map(|edit| lsp::TextEdit {
                range: range(index.range(edit.start..edit.end, encoding)),
                new_text: edit.new_text.clone(),
            })
            .collect::<Vec<_>>()
    };
    let insert_all = |content: &str| lsp::TextEdit {
        range: lsp::Range::default(),
        new_text: content.to_string(),
    };
    if !caps.document_changes {
        let mut changes: HashMap<lsp::Uri, Vec<lsp::TextEdit>> = HashMap::new();
        for change in &set.changes {
            match change {
                Change::Edit {
                    path,
                    before,
                    edits,
                    ..
                } => {
                    changes
                        .entry(uri_of(path)?)
                        .or_default()
                        .extend(text_edits(before, edits));
                }
                Change::Create {
                    path,
                    content,
                    overwrite: false,
                } => {
                    changes
                        .entry(uri_of(path)?)
                        .or_default()
                        .push(insert_all(content));
                }
                Change::Create { .. } | Change::Delete { .. } | Change::Rename { .. } => {
                    return Err(format!(
                        "the editor cannot {}: it supports neither documentChanges nor resource operations in workspace edits",
                        set.label
                    ));
                }
            }
        }
        return Ok(lsp::WorkspaceEdit {
            changes: Some(changes),
            ..Default::default()
        });
    }
    let needs = |supported: bool, what: &str| {
        if supported {
            Ok(())
        } else {
            Err(format!(
                "the editor cannot {what} files through workspace edits (no `{what}` resource operation)"
            ))
        }
    };
    let mut operations = Vec::new();
    for change in &set.changes {
        match change {
            Change::Edit {
                path,
                before,
                version,
                edits,
            } => {
                operations.push(lsp::DocumentChangeOperation::Edit(lsp::TextDocumentEdit {
                    text_document: lsp::OptionalVersionedTextDocumentIdentifier {
                        uri: uri_of(path)?,
                        version: *version,
                    },
                    edits: text_edits(before, edits)
                        .into_iter()
                        .map(lsp::OneOf::Left)
                        .collect(),
                }));
            }
            Change::Create {
                path,
                content,
                overwrite,
            } => {
                needs(caps.resource_create, "create")?;
                let uri = uri_of(path)?;
                operations.push(lsp::DocumentChangeOperation::Op(lsp::ResourceOp::Create(
                    lsp::CreateFile {
                        uri: uri.clone(),
                        options: Some(lsp::CreateFileOptions {
                            overwrite: Some(*overwrite),
                            ignore_if_exists: None,
                        }),
                        annotation_id: None,
                    },
                )));
                if !content.is_empty() {
                    operations.push(lsp::DocumentChangeOperation::Edit(lsp::TextDocumentEdit {
                        text_document: lsp::OptionalVersionedTextDocumentIdentifier {
                            uri,
                            version: None,
                        },
                        edits: vec![lsp::OneOf::Left(insert_all(content))],
                    }));
                }
            }
            Change::Delete { path } => {
                needs(caps.resource_delete, "delete")?;
                operations.push(lsp::DocumentChangeOperation::Op(lsp::ResourceOp::Delete(
                    lsp::DeleteFile {
                        uri: uri_of(path)?,
                        options: None,
                        annotation_id: None,
                    },
                )));
            }
            Change::Rename { from, to } => {
                needs(caps.resource_rename, "rename")?;
                operations.push(lsp::DocumentChangeOperation::Op(lsp::ResourceOp::Rename(
                    lsp::RenameFile {
                        old_uri: uri_of(from)?,
                        new_uri: uri_of(to)?,
                        options: Some(lsp::RenameFileOptions {
                            overwrite: Some(false),
                            ignore_if_exists: None,
                        }),
                        annotation_id: None,
                    },
                )));
            }
        }
    }
    Ok(lsp::WorkspaceEdit {
        document_changes: Some(lsp::DocumentChanges::Operations(operations)),
        ..Default::default()
    })
}

/// A core range as an LSP range.
pub(crate) fn range(r: crate::documents::Range) -> lsp::Range {
    lsp::Range {
        start: lsp::Position {
            line: r.start.line,
            character: r.start.character,
        },
        end: lsp::Position {
            line: r.end.line,
            character: r.end.character,
        },
    }
}

/// The `switchyard/sessionUpdate` of an agent event; `None` for what the answer itself
/// carries (the end of the run).
pub(crate) fn session_update(event: &AgentEvent) -> Option<Update> {
    Some(match event {
        AgentEvent::MessageChunk { text } => Update::AgentMessageChunk {
            content: ContentBlock::Text { text: text.clone() },
        },
        AgentEvent::ThoughtChunk { text } => Update::AgentThoughtChunk {
            content: ContentBlock::Text { text: text.clone() },
        },
        AgentEvent::Plan(plan) => Update::Plan {
            entries: plan
                .steps
                .iter()
                .map(|s| crate::lsp::ext::PlanEntry {
                    content: s.step.clone(),
                    priority: "medium".to_string(),
                    status: s.status.as_str().to_string(),
                })
                .collect(),
            explanation: plan.explanation.clone(),
        },
        AgentEvent::ToolCallStarted {
            call_id,
            name,
            lane,
            kind,
            summary,
            arguments,
        } => Update::ToolCall {
            tool_call_id: call_id.clone(),
            title: if summary.is_empty() {
                name.clone()
            } else {
                format!("{name} {summary}")
            },
            kind: tool_kind(*kind),
            status: ToolCallStatus::InProgress,
            raw_input: arguments.clone(),
            lane: *lane,
        },
        AgentEvent::ToolCallFinished {
            call_id,
            lane,
            status,
            duration,
            summary,
            ..
        } => Update::ToolCallUpdate {
            tool_call_id: call_id.clone(),
            status: match status {
                ToolStatus::Completed => ToolCallStatus::Completed,
                ToolStatus::Failed | ToolStatus::Cancelled => ToolCallStatus::Failed,
            },
            content: vec![ToolCallContent::Content {
                content: ContentBlock::Text {
                    text: summary.clone(),
                },
            }],
            duration_ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
            lane: *lane,
            progress: None,
        },
        AgentEvent::ToolCallProgress {
            call_id,
            progress,
            total,
            message,
            elapsed,
            ..
        } => Update::ToolCallUpdate {
            tool_call_id: call_id.clone(),
            status: ToolCallStatus::InProgress,
            content: vec![ToolCallContent::Content {
                content: ContentBlock::Text {
                    text: AgentEvent::progress_line(*progress, *total, message.as_deref()),
                },
            }],
            duration_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            lane: None,
            progress: Some(crate::lsp::ext::ToolCallProgress {
                progress: *progress,
                total: *total,
                message: message.clone(),
            }),
        },
        AgentEvent::Usage {
            call,
            turn,
            session,
            cost,
        } => Update::Usage {
            call: token_usage(*call, cost.call_usd),
            turn: token_usage(*turn, cost.turn_usd),
            session: token_usage(*session, cost.session_usd),
        },
        AgentEvent::ModelRetry {
            attempt,
            max_attempts,
            error,
            discarded_text,
        } => Update::ModelRetry {
            attempt: *attempt,
            max_attempts: *max_attempts,
            error: error.clone(),
            discarded_text: *discarded_text,
        },
        AgentEvent::ModelWaiting { what, up_to } => {
            tracing::info!("waiting up to {} s for {what}", up_to.as_secs_f64());
            Update::ModelWaiting {
                what: what.clone(),
                up_to_ms: u64::try_from(up_to.as_millis()).unwrap_or(u64::MAX),
            }
        }
        AgentEvent::Compacted { replaced, kept } => Update::Compaction {
            replaced_messages: *replaced,
            kept_messages: *kept,
        },
        AgentEvent::Done { .. } => return None,
    })
}

/// ACP's kind of a tool.
fn tool_kind(kind: tools::ToolKind) -> ToolKind {
    match kind {
        tools::ToolKind::Read => ToolKind::Read,
        tools::ToolKind::Edit => ToolKind::Edit,
        tools::ToolKind::Delete => ToolKind::Delete,
        tools::ToolKind::Move => ToolKind::Move,
        tools::ToolKind::Search => ToolKind::Search,
        tools::ToolKind::Execute => ToolKind::Execute,
        tools::ToolKind::Fetch => ToolKind::Fetch,
        tools::ToolKind::Other => ToolKind::Other,
    }
}

/// Token counts and their cost on the wire.
pub(crate) fn token_usage(usage: Usage, cost_usd: Option<f64>) -> TokenUsage {
    TokenUsage {
        input_tokens: usage.input_tokens,
        output_tokens: usage.output_tokens,
        cached_tokens: usage.cached_tokens,
        cost_usd,
    }
}

/// The answer to `switchyard/ask`.
pub(crate) fn ask_result(outcome: &RunOutcome, config: &AgentConfig) -> AskResult {
    AskResult {
        session_id: outcome.session.clone(),
        text: outcome.text.clone(),
        stop_reason: outcome.stop.as_str().to_string(),
        stop_message: outcome.stop.explain(config),
        usage: token_usage(outcome.usage, outcome.cost_usd),
        turns: outcome.turns,
        tool_calls: outcome.tool_calls,
        turn: outcome.turn,
        session_usage: token_usage(outcome.session_usage, outcome.session_cost_usd),
    }
}

/// A change for review, as `switchyard/reviewChange` sends it.
pub(crate) fn review_change(
    review: crate::edits::review::Review,
    uri: lsp::Uri,
) -> super::ext::ReviewChangeParams {
    super::ext::ReviewChangeParams {
        session_id: review.session.map(|s| s.to_string()),
        call_id: review.call_id,
        tool: review.tool.name().to_string(),
        uri,
        old_text: review.old_text,
        new_text: review.new_text,
        hunks: review
            .hunks
            .into_iter()
            .map(|h| super::ext::ReviewHunk {
                index: h.index,
                old_start: h.old_start,
                old_lines: h.old_lines,
                new_start: h.new_start,
                new_lines: h.new_lines,
                old_text: h.old_text,
                new_text: h.new_text,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::lanes::Lane;

    #[test]
    fn progress_is_an_in_progress_tool_call_update() {
        let update = session_update(&AgentEvent::ToolCallProgress {
            call_id: "c1".into(),
            name: "mcp__everything__trigger-long-running-operation".into(),
            progress: 2.0,
            total: Some(5.0),
            message: Some("halfway".into()),
            elapsed: std::time::Duration::from_millis(40),
        })
        .unwrap();
        assert_eq!(
            serde_json::to_value(update).unwrap(),
            json!({
                "sessionUpdate": "tool_call_update",
                "toolCallId": "c1",
                "status": "in_progress",
                "content": [{"type": "content", "content": {"type": "text", "text": "2/5 (40%): halfway"}}],
                "durationMs": 40,
                "progress": {"progress": 2.0, "total": 5.0, "message": "halfway"},
            })
        );
    }

    #[test]
    fn agent_events_become_acp_shaped_session_updates() {
        let events = [
            AgentEvent::MessageChunk { text: "Hi".into() },
            AgentEvent::ToolCallStarted {
                call_id: "c1".into(),
                name: "grep".into(),
                lane: Some(Lane::Query),
                kind: crate::tools::ToolKind::Search,
                summary: "pattern=TODO".into(),
                arguments: json!({"pattern": "TODO"}),
            },
            AgentEvent::ToolCallFinished {
                call_id: "c1".into(),
                name: "grep".into(),
                lane: Some(Lane::Query),
                status: ToolStatus::Cancelled,
                duration: Duration::from_millis(12),
                summary: "cancelled".into(),
            },
            AgentEvent::Usage {
                call: Usage {
                    input_tokens: 10,
                    output_tokens: 2,
                    ..Usage::default()
                },
                turn: Usage {
                    input_tokens: 30,
                    output_tokens: 5,
                    cached_tokens: 20,
                },
                session: Usage {
                    input_tokens: 90,
                    output_tokens: 9,
                    cached_tokens: 20,
                },
                cost: crate::agent::Cost {
                    call_usd: None,
                    turn_usd: Some(0.25),
                    session_usd: Some(0.5),
                },
            },
            AgentEvent::ModelRetry {
                attempt: 1,
                max_attempts: 5,
                error: "rate limited (429)".into(),
                discarded_text: false,
            },
        ];
        let shapes: Vec<serde_json::Value> = events
            .iter()
            .map(|e| serde_json::to_value(session_update(e).unwrap()).unwrap())
            .collect();
        assert_eq!(
            shapes,
            [
                json!({"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": "Hi"}}),
                json!({"sessionUpdate": "tool_call", "toolCallId": "c1", "title": "grep pattern=TODO",
                       "kind": "search", "status": "in_progress", "rawInput": {"pattern": "TODO"}, "lane": "query"}),
                json!({"sessionUpdate": "tool_call_update", "toolCallId": "c1", "status": "failed",
                       "content": [{"type": "content", "content": {"type": "text", "text": "cancelled"}}],
                       "durationMs": 12, "lane": "query"}),
                json!({"sessionUpdate": "usage", "call": {"inputTokens": 10, "outputTokens": 2, "cachedTokens": 0},
                       "turn": {"inputTokens": 30, "outputTokens": 5, "cachedTokens": 20, "costUsd": 0.25},
                       "session": {"inputTokens": 90, "outputTokens": 9, "cachedTokens": 20, "costUsd": 0.5}}),
                json!({"sessionUpdate": "model_retry", "attempt": 1, "maxAttempts": 5,
                       "error": "rate limited (429)", "discardedText": false}),
            ]
        );
        for shape in shapes {
            let back: Update = serde_json::from_value(shape.clone()).unwrap();
            assert_eq!(serde_json::to_value(back).unwrap(), shape);
        }
        let done = AgentEvent::Done {
            stop: crate::agent::StopReason::EndTurn,
        };
        assert_eq!(session_update(&done), None, "the answer carries the end");
    }
}
