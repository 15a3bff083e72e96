//! The core's plain types to LSP types.

use std::path::Path;

use tower_lsp_server::ls_types::{self as lsp, PositionEncodingKind};

use super::ext::{LaneCounts, LaneStatusParams};
use crate::documents::PositionEncoding;
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
