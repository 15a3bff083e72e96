//! The core's plain types to LSP types.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use tower_lsp_server::ls_types::{self as lsp, PositionEncodingKind};

use super::ext::{LaneCounts, LaneStatusParams};
use super::server::Caps;
use crate::documents::{LineIndex, PositionEncoding};
use crate::edits::{Change, ChangeSet, TextEdit};
use crate::lanes::MetricsSnapshot;

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
pub(crate) fn lane_status(snapshot: &MetricsSnapshot) -> LaneStatusParams {
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
