//! LSP types to the core's plain types. Nothing here fails loudly: what cannot be
//! converted is `None` and the caller decides what that means.

use std::path::PathBuf;

use tower_lsp_server::ls_types::{self as lsp, PositionEncodingKind};

use super::ext;
use super::server::Inner;
use crate::agent::{AskContext, Selection};
use crate::documents::{Position, PositionEncoding, Range, TextChange};

/// The encoding to use with a client: UTF-8 when it offers it, else LSP's default, UTF-16.
pub(crate) fn position_encoding(caps: &lsp::ClientCapabilities) -> PositionEncoding {
    let offered = caps
        .general
        .as_ref()
        .and_then(|general| general.position_encodings.as_deref())
        .unwrap_or_default();
    if offered.contains(&PositionEncodingKind::UTF8) {
        PositionEncoding::Utf8
    } else {
        PositionEncoding::Utf16
    }
}

/// A position.
pub(crate) fn position(p: lsp::Position) -> Position {
    Position::new(p.line, p.character)
}

/// A range.
pub(crate) fn range(r: lsp::Range) -> Range {
    Range::new(position(r.start), position(r.end))
}

/// One `didChange` content change.
pub(crate) fn text_change(change: lsp::TextDocumentContentChangeEvent) -> TextChange {
    TextChange {
        range: change.range.map(range),
        text: change.text,
    }
}

/// The local path of a `file:` URI; `None` for any other scheme.
pub(crate) fn path(uri: &lsp::Uri) -> Option<PathBuf> {
    if !uri.scheme().as_str().eq_ignore_ascii_case("file") {
        return None;
    }
    uri.to_file_path().map(|path| path.into_owned())
}

/// Where the user is, from `switchyard/ask`'s context: the document's path in the
/// workspace's terms, and the selection as 1-based lines with its text (the client's, else
/// the selected lines of the open buffer). A document that is not a file is left out.
pub(crate) fn ask_context(server: &Inner, context: ext::AskContext) -> AskContext {
    let open_file = context
        .file
        .as_ref()
        .and_then(|uri| server.document_path(uri));
    let selection = context.selection.map(|range| {
        let start_line = range.start.line + 1;
        // A selection that ends at the start of a line does not include that line.
        let end_line = if range.end.character == 0 && range.end.line > range.start.line {
            range.end.line
        } else {
            range.end.line + 1
        };
        let text = context.selected_text.clone().or_else(|| {
            let text = server.documents.get(open_file.as_deref()?)?.text();
            let lines: Vec<&str> = text
                .lines()
                .skip(start_line as usize - 1)
                .take((end_line + 1).saturating_sub(start_line) as usize)
                .collect();
            Some(lines.join("\n"))
        });
        Selection {
            start_line,
            end_line,
            text,
        }
    });
    AskContext {
        open_file,
        selection,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_is_chosen_only_when_offered() {
        let mut caps = lsp::ClientCapabilities::default();
        assert_eq!(position_encoding(&caps), PositionEncoding::Utf16);
        caps.general = Some(lsp::GeneralClientCapabilities {
            position_encodings: Some(vec![
                PositionEncodingKind::UTF16,
                PositionEncodingKind::UTF8,
            ]),
            ..Default::default()
        });
        assert_eq!(position_encoding(&caps), PositionEncoding::Utf8);
        caps.general = Some(lsp::GeneralClientCapabilities {
            position_encodings: Some(vec![PositionEncodingKind::UTF32]),
            ..Default::default()
        });
        assert_eq!(position_encoding(&caps), PositionEncoding::Utf16);
    }

    #[test]
    fn only_file_uris_have_paths() {
        let uri: lsp::Uri = "file:///w/src/a%20b.rs".parse().unwrap();
        assert_eq!(path(&uri), Some(PathBuf::from("/w/src/a b.rs")));
        let uri: lsp::Uri = "untitled:Untitled-1".parse().unwrap();
        assert_eq!(path(&uri), None);
    }
}
