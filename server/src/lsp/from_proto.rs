//! LSP types to the core's plain types. Nothing here fails loudly: what cannot be
//! converted is `None` and the caller decides what that means.

use std::path::PathBuf;

use tower_lsp_server::ls_types::{self as lsp, PositionEncodingKind};

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
