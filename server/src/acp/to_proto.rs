//! The core's plain types to ACP types: agent events as `session/update`s, change sets as
//! `diff` content, stored conversations replayed, stop reasons. Mirrors `lsp/to_proto.rs`
//! without sharing its LSP types.

use std::path::Path;

use agent_client_protocol_schema::v1 as acp;
use serde_json::Value;

use crate::agent::{AgentEvent, StopReason, ToolStatus};
use crate::edits::{Change, ChangeSet};
use crate::llm::Message;
use crate::tools::{Plan, StepStatus, Tool, ToolKind};

/// ACP's kind of a tool, from the tool table.
pub(crate) fn tool_kind(kind: ToolKind) -> acp::ToolKind {
    match kind {
        ToolKind::Read => acp::ToolKind::Read,
        ToolKind::Edit => acp::ToolKind::Edit,
        ToolKind::Delete => acp::ToolKind::Delete,
        ToolKind::Move => acp::ToolKind::Move,
        ToolKind::Search => acp::ToolKind::Search,
        ToolKind::Execute => acp::ToolKind::Execute,
        ToolKind::Fetch => acp::ToolKind::Fetch,
        ToolKind::Other => acp::ToolKind::Other,
    }
}

/// The kind of the tool a model calls `name` (a stored call being replayed).
pub(crate) fn kind_of(name: &str) -> acp::ToolKind {
    tool_kind(Tool::from_name(name).map_or(ToolKind::Other, Tool::kind))
}

/// Whether a tool of this kind changes the workspace (runs alone, may ask, makes changes).
pub(crate) fn changes_files(kind: acp::ToolKind) -> bool {
    matches!(
        kind,
        acp::ToolKind::Edit | acp::ToolKind::Delete | acp::ToolKind::Move | acp::ToolKind::Execute
    )
}

/// `read path=src/lib.rs`: the tool and its arguments on one line, as the LSP front end
/// titles them.
pub(crate) fn title(name: &str, summary: &str) -> String {
    if summary.is_empty() {
        name.to_string()
    } else {
        format!("{name} {summary}")
    }
}

/// The files a call's arguments name, absolute under `root`, with the line it starts at.
pub(crate) fn locations(arguments: &Value, root: &Path) -> Vec<acp::ToolCallLocation> {
    let Value::Object(map) = arguments else {
        return Vec::new();
    };
    let line = map
        .get("offset")
        .and_then(Value::as_u64)
        .and_then(|n| u32::try_from(n).ok());
    ["path", "from", "source", "to", "destination"]
        .iter()
        .filter_map(|key| map.get(*key).and_then(Value::as_str))
        .map(|path| {
            let path = root.join(path);
            let location = acp::ToolCallLocation::new(path);
            match line {
                Some(line) => location.line(line),
                None => location,
            }
        })
        .collect()
}

/// What a change set is shown as: a `diff` (old and new text) for every text change, a
/// line of text for a deletion or a move.
pub(crate) fn change_content(set: &ChangeSet) -> Vec<acp::ToolCallContent> {
    set.changes
        .iter()
        .map(|change| match change {
            Change::Edit { path, before, .. } => acp::ToolCallContent::Diff(
                acp::Diff::new(path.clone(), change.after().unwrap_or_default())
                    .old_text(before.to_string()),
            ),
            Change::Create { path, content, .. } => {
                acp::ToolCallContent::Diff(acp::Diff::new(path.clone(), content.clone()))
            }
            Change::Delete { path } => text(format!("deleted {}", path.display())),
            Change::Rename { from, to } => {
                text(format!("moved {} to {}", from.display(), to.display()))
            }
        })
        .collect()
}

/// A text block as tool call content.
pub(crate) fn text(text: impl Into<String>) -> acp::ToolCallContent {
    acp::ToolCallContent::from(acp::ContentBlock::Text(acp::TextContent::new(text)))
}

fn chunk(text: impl Into<String>) -> acp::ContentChunk {
    acp::ContentChunk::new(acp::ContentBlock::Text(acp::TextContent::new(text)))
}

/// ACP's `plan` update of the model's plan: every step, at medium priority (the model gives
/// none).
pub(crate) fn plan(plan: &Plan) -> acp::SessionUpdate {
    acp::SessionUpdate::Plan(acp::Plan::new(
        plan.steps
            .iter()
            .map(|s| {
                acp::PlanEntry::new(
                    s.step.clone(),
                    acp::PlanEntryPriority::Medium,
                    match s.status {
                        StepStatus::Pending => acp::PlanEntryStatus::Pending,
                        StepStatus::InProgress => acp::PlanEntryStatus::InProgress,
                        StepStatus::Completed => acp::PlanEntryStatus::Completed,
                    },
                )
            })
            .collect(),
    ))
}

/// A tool call as it is first shown.
pub(crate) fn tool_call(
    call_id: &str,
    name: &str,
    kind: acp::ToolKind,
    summary: &str,
    arguments: &Value,
    root: &Path,
) -> acp::ToolCall {
    acp::ToolCall::new(call_id.to_string(), title(name, summary))
        .kind(kind)
        .status(acp::ToolCallStatus::Pending)
        .locations(locations(arguments, root))
        .raw_input(arguments.clone())
}

/// The `session/update`s of an agent event, in order; `changes` is the diff content of the
/// change the call made, when it made one. The end of the run is the prompt's answer, not
/// an update.
pub(crate) fn session_updates(
    event: &AgentEvent,
    root: &Path,
    changes: Vec<acp::ToolCallContent>,
) -> Vec<acp::SessionUpdate> {
    match event {
        AgentEvent::MessageChunk { text } => {
            vec![acp::SessionUpdate::AgentMessageChunk(chunk(text.clone()))]
        }
        AgentEvent::ThoughtChunk { text } => {
            vec![acp::SessionUpdate::AgentThoughtChunk(chunk(text.clone()))]
        }
        AgentEvent::Plan(p) => vec![plan(p)],
        AgentEvent::ToolCallStarted {
            call_id,
            name,
            kind,
            summary,
            arguments,
            ..
        } => vec![
            acp::SessionUpdate::ToolCall(tool_call(
                call_id,
                name,
                tool_kind(*kind),
                summary,
                arguments,
                root,
            )),
            acp::SessionUpdate::ToolCallUpdate(acp::ToolCallUpdate::new(
                call_id.clone(),
                acp::ToolCallUpdateFields::new().status(acp::ToolCallStatus::InProgress),
            )),
        ],
        AgentEvent::ToolCallFinished {
            call_id,
            status,
            summary,
            ..
        } => {
            let mut content = vec![text(summary.clone())];
            content.extend(changes);
            vec![acp::SessionUpdate::ToolCallUpdate(
                acp::ToolCallUpdate::new(
                    call_id.clone(),
                    acp::ToolCallUpdateFields::new()
                        .status(match status {
                            ToolStatus::Completed => acp::ToolCallStatus::Completed,
                            ToolStatus::Failed | ToolStatus::Cancelled => {
                                acp::ToolCallStatus::Failed
                            }
                        })
                        .content(content),
                ),
            )]
        }
        AgentEvent::ToolCallProgress {
            call_id,
            progress,
            total,
            message,
            ..
        } => vec![acp::SessionUpdate::ToolCallUpdate(
            acp::ToolCallUpdate::new(
                call_id.clone(),
                acp::ToolCallUpdateFields::new()
                    .status(acp::ToolCallStatus::InProgress)
                    .content(vec![text(AgentEvent::progress_line(
                        *progress,
                        *total,
                        message.as_deref(),
                    ))]),
            ),
        )],
        AgentEvent::Usage { call, session, .. } => {
            // ACP's usage is the context window: the last call's prompt and answer are
            // what the next call starts from. Its size is the provider's, not known here:
            // 0 says so.
            let mut usage = acp::UsageUpdate::new(call.input_tokens + call.output_tokens, 0);
            let mut meta = acp::Meta::new();
            meta.insert(
                "switchyard".into(),
                serde_json::json!({
                    "inputTokens": session.input_tokens,
                    "outputTokens": session.output_tokens,
                }),
            );
            usage.meta = Some(meta);
            vec![acp::SessionUpdate::UsageUpdate(usage)]
        }
        // ACP has no update for these: retries and waits are the agent's business. A
        // compaction is shown only to a client that says it shows them: see `compaction`.
        AgentEvent::ModelRetry { .. }
        | AgentEvent::ModelWaiting { .. }
        | AgentEvent::Compacted { .. }
        | AgentEvent::Done { .. } => Vec::new(),
    }
}

/// What a client is told of a compaction (`AgentEvent::Compacted`), by what it says it
/// shows (`clientCapabilities.session`): a `compaction_update` (completed: the agent
/// reports it once done; `_meta.switchyard` has the counts) to a client that shows
/// compactions, else an informational `notice` to one that shows notices, else nothing —
/// a compaction changes what the model sees, not the conversation, so it is never passed
/// off as the agent's message or thought. `id` is unique within the session.
pub(crate) fn compaction(
    id: String,
    replaced: usize,
    kept: usize,
    client: &acp::ClientCapabilities,
) -> Option<acp::SessionUpdate> {
    let session = client.session.as_ref()?;
    if session.compaction.is_some() {
        let mut meta = acp::Meta::new();
        meta.insert(
            "switchyard".into(),
            serde_json::json!({"replacedMessages": replaced, "keptMessages": kept}),
        );
        let update = acp::CompactionUpdate::new(id, acp::CompactionStatus::Completed).meta(meta);
        return Some(acp::SessionUpdate::CompactionUpdate(update));
    }
    session.notices.as_ref()?;
    Some(acp::SessionUpdate::Notice(
        acp::Notice::new(acp::NoticeSeverity::Info, "Conversation compacted").description(format!(
            "{replaced} earlier messages were summarized to fit the model's context \
                 window; the last {kept} are kept as they were"
        )),
    ))
}

/// The `diff` content of a stored call that changed files, from its arguments (what the
/// model asked for: `edit` and `multi_edit` as the replaced and replacing text, `write` as
/// the new text — its old text is not stored). Nothing for other tools.
fn replayed_diffs(name: &str, arguments: &Value, root: &Path) -> Vec<acp::ToolCallContent> {
    let field = |v: &Value, key: &str| v.get(key).and_then(Value::as_str).map(str::to_string);
    let Some(path) = field(arguments, "path").map(|p| root.join(p)) else {
        return Vec::new();
    };
    let edit = |e: &Value| {
        let (old, new) = (field(e, "old_string")?, field(e, "new_string")?);
        Some(acp::ToolCallContent::Diff(
            acp::Diff::new(path.clone(), new).old_text(old),
        ))
    };
    match name {
        "write" => field(arguments, "content")
            .map(|content| acp::ToolCallContent::Diff(acp::Diff::new(path.clone(), content)))
            .into_iter()
            .collect(),
        "edit" => edit(arguments).into_iter().collect(),
        "multi_edit" => arguments
            .get("edits")
            .and_then(Value::as_array)
            .map(|edits| edits.iter().filter_map(edit).collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// A stored conversation as the `session/update`s that show it again: the user's prompts,
/// the model's reasoning, the agent's answers, its tool calls and their results (with the
/// `diff` of a change), and each plan the model set (after the call that set it succeeded).
pub(crate) fn replay(history: &[Message], root: &Path) -> Vec<acp::SessionUpdate> {
    let mut updates = Vec::new();
    let mut calls = std::collections::HashMap::new();
    // The plans of `update_plan` calls not answered yet, by call id.
    let mut plans: Vec<(&str, Plan)> = Vec::new();
    for message in history {
        match message {
            Message::User { content } => {
                updates.push(acp::SessionUpdate::UserMessageChunk(chunk(content.clone())));
            }
            Message::Assistant {
                text,
                tool_calls,
                thinking,
            } => {
                for thought in thinking {
                    if let crate::llm::Thinking::Text { text, .. } = thought
                        && !text.is_empty()
                    {
                        updates.push(acp::SessionUpdate::AgentThoughtChunk(chunk(text.clone())));
                    }
                }
                if !text.is_empty() {
                    updates.push(acp::SessionUpdate::AgentMessageChunk(chunk(text.clone())));
                }
                for call in tool_calls {
                    let arguments: Value =
                        serde_json::from_str(&call.arguments).unwrap_or(Value::Null);
                    if Tool::from_name(&call.name) == Some(Tool::UpdatePlan)
                        && let Ok(plan) = Plan::from_arguments(&arguments)
                    {
                        plans.push((&call.id, plan));
                    }
                    let summary = crate::agent::summarize_arguments(&arguments);
                    calls.insert(
                        call.id.as_str(),
                        replayed_diffs(&call.name, &arguments, root),
                    );
                    updates.push(acp::SessionUpdate::ToolCall(
                        tool_call(
                            &call.id,
                            &call.name,
                            kind_of(&call.name),
                            &summary,
                            &arguments,
                            root,
                        )
                        .status(acp::ToolCallStatus::InProgress),
                    ));
                }
            }
            Message::ToolResult {
                call_id,
                content,
                is_error,
                ..
            } => {
                let mut shown = vec![text(content.clone())];
                if !*is_error {
                    shown.extend(calls.remove(call_id.as_str()).unwrap_or_default());
                }
                updates.push(acp::SessionUpdate::ToolCallUpdate(
                    acp::ToolCallUpdate::new(
                        call_id.clone(),
                        acp::ToolCallUpdateFields::new()
                            .status(if *is_error {
                                acp::ToolCallStatus::Failed
                            } else {
                                acp::ToolCallStatus::Completed
                            })
                            .content(shown),
                    ),
                ));
                if let Some(at) = plans.iter().position(|(id, _)| id == call_id) {
                    let (_, set) = plans.swap_remove(at);
                    if !is_error {
                        updates.push(plan(&set));
                    }
                }
            }
        }
    }
    updates
}

/// ACP's stop reason of a run's; the limits ACP has no name for are `max_turn_requests`.
pub(crate) fn stop_reason(stop: StopReason) -> acp::StopReason {
    match stop {
        StopReason::EndTurn => acp::StopReason::EndTurn,
        StopReason::MaxTurns | StopReason::TokenBudget => acp::StopReason::MaxTurnRequests,
        StopReason::MaxTokens => acp::StopReason::MaxTokens,
        StopReason::Refusal => acp::StopReason::Refusal,
        StopReason::Cancelled => acp::StopReason::Cancelled,
    }
}

/// `2026-12-03T07:01:53Z` of Unix milliseconds (ACP's `updatedAt` is ISO 8601).
pub(crate) fn iso8601(unix_ms: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_ms / 1000);
    humantime::format_rfc3339_seconds(time).to_string()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::edits::TextEdit;
    use crate::lanes::Lane;

    #[test]
    fn agent_events_become_session_updates() {
        let root = Path::new("/w");
        let shapes = |event: AgentEvent, changes| {
            session_updates(&event, root, changes)
                .into_iter()
                .map(|u| serde_json::to_value(u).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            shapes(AgentEvent::MessageChunk { text: "Hi".into() }, vec![]),
            [
                json!({"sessionUpdate": "agent_message_chunk", "content": {"type": "text", "text": "Hi"}})
            ]
        );
        // `pending` is the default status, left out on the wire.
        assert_eq!(
            shapes(
                AgentEvent::ToolCallStarted {
                    call_id: "c1".into(),
                    name: "read".into(),
                    lane: Some(Lane::Query),
                    kind: ToolKind::Read,
                    summary: "path=src/a.rs offset=3".into(),
                    arguments: json!({"path": "src/a.rs", "offset": 3}),
                },
                vec![]
            ),
            [
                json!({"sessionUpdate": "tool_call", "toolCallId": "c1", "title": "read path=src/a.rs offset=3",
                       "kind": "read",
                       "locations": [{"path": "/w/src/a.rs", "line": 3}],
                       "rawInput": {"path": "src/a.rs", "offset": 3}}),
                json!({"sessionUpdate": "tool_call_update", "toolCallId": "c1", "status": "in_progress"}),
            ]
        );
        let set = ChangeSet {
            label: "edit a.rs".into(),
            changes: vec![Change::Edit {
                path: "/w/a.rs".into(),
                before: Arc::from("let a = 1;\n"),
                version: None,
                edits: vec![TextEdit {
                    start: 8,
                    end: 9,
                    new_text: "2".into(),
                }],
            }],
        };
        assert_eq!(
            shapes(
                AgentEvent::ToolCallFinished {
                    call_id: "c2".into(),
                    name: "edit".into(),
                    lane: Some(Lane::Execute),
                    status: ToolStatus::Completed,
                    duration: Duration::from_millis(3),
                    summary: "edited a.rs".into(),
                },
                change_content(&set)
            ),
            [
                json!({"sessionUpdate": "tool_call_update", "toolCallId": "c2", "status": "completed",
                "content": [
                    {"type": "content", "content": {"type": "text", "text": "edited a.rs"}},
                    {"type": "diff", "path": "/w/a.rs", "oldText": "let a = 1;\n", "newText": "let a = 2;\n"}
                ]})
            ]
        );
    }

    #[test]
    fn progress_is_an_in_progress_tool_call_update() {
        let updates = session_updates(
            &AgentEvent::ToolCallProgress {
                call_id: "c1".into(),
                name: "mcp__everything__trigger-long-running-operation".into(),
                progress: 2.0,
                total: Some(5.0),
                message: Some("halfway".into()),
                elapsed: std::time::Duration::from_millis(40),
            },
            Path::new("/w"),
            Vec::new(),
        );
        assert_eq!(
            serde_json::to_value(&updates).unwrap(),
            serde_json::json!([{
                "sessionUpdate": "tool_call_update",
                "toolCallId": "c1",
                "status": "in_progress",
                "content": [{"type": "content", "content": {"type": "text", "text": "2/5 (40%): halfway"}}],
            }])
        );
    }

    #[test]
    fn a_compaction_is_shown_only_as_the_client_says_it_shows_them() {
        let client = |session: Value| {
            serde_json::from_value::<acp::ClientCapabilities>(json!({"session": session})).unwrap()
        };
        let shown = |caps: &acp::ClientCapabilities| {
            compaction("compaction-1".into(), 12, 3, caps).map(|u| serde_json::to_value(u).unwrap())
        };
        assert_eq!(
            shown(&client(json!({"compaction": {}, "notices": {}}))),
            Some(json!({
                "sessionUpdate": "compaction_update",
                "compactionId": "compaction-1",
                "status": "completed",
                "_meta": {"switchyard": {"replacedMessages": 12, "keptMessages": 3}},
            }))
        );
        assert_eq!(
            shown(&client(json!({"notices": {}}))),
            Some(json!({
                "sessionUpdate": "notice",
                "severity": "info",
                "title": "Conversation compacted",
                "description": "12 earlier messages were summarized to fit the model's context window; the last 3 are kept as they were",
            }))
        );
        assert_eq!(shown(&client(json!({}))), None);
        assert_eq!(shown(&acp::ClientCapabilities::default()), None);
    }

    #[test]
    fn stop_reasons_and_dates() {
        assert_eq!(
            serde_json::to_value(stop_reason(StopReason::TokenBudget)).unwrap(),
            json!("max_turn_requests")
        );
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(1_796_281_313_000), "2026-12-03T07:01:53Z");
    }
}
