//! The test client's model of an editor's buffers: what `workspace/applyEdit` changes and
//! what the server is told about it, the way VS Code does it — versions checked before
//! anything is applied, text edits into buffers (left unsaved), resource operations on
//! disk, `didOpen`/`didChange`/`didClose` sent to the server as buffers come and go.
//!
//! Its position arithmetic is its own, written from the LSP specification, so that the
//! server's is checked against an independent reading of it.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use async_lsp::ServerSocket;
use lsp_types::notification::{DidChangeTextDocument, DidCloseTextDocument, DidOpenTextDocument};
use lsp_types::{
    DidChangeTextDocumentParams, DidCloseTextDocumentParams, DidOpenTextDocumentParams,
    DocumentChangeOperation, DocumentChanges, OneOf, Position, ResourceOp,
    TextDocumentContentChangeEvent, TextDocumentIdentifier, TextDocumentItem, TextEdit, Url,
    VersionedTextDocumentIdentifier, WorkspaceEdit,
};

/// How the editor answers the next `workspace/applyEdit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EditAnswer {
    /// Apply it, as an editor does (versions checked first).
    Apply,
    /// Refuse it with this reason.
    Refuse(String),
    /// Just before the edit arrives, the user types this text at the start of the first
    /// buffer it edits; then the edit is handled as usual (and its version is stale).
    TypeFirst(String),
}

/// One open buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buffer {
    /// Its version, as last told to the server.
    pub version: i32,
    /// Its text (not saved to disk).
    pub text: String,
}

/// The editor's buffers and its scripted answers.
#[derive(Debug)]
pub struct Editor {
    /// The position encoding `initialize` negotiated: "utf-8", "utf-16" or "utf-32".
    pub encoding: String,
    /// Open buffers by path.
    pub buffers: BTreeMap<PathBuf, Buffer>,
    /// Answers to the coming `workspace/applyEdit`s; `Apply` when empty.
    pub edit_answers: VecDeque<EditAnswer>,
    /// Titles to pick in the coming `window/showMessageRequest`s (`None` dismisses the
    /// prompt); "Allow" when empty.
    pub prompt_answers: VecDeque<Option<String>>,
    /// Answers to the coming `switchyard/reviewChange`s: the hunks to accept, or an error
    /// message; every hunk when empty.
    pub review_answers: VecDeque<Result<Vec<usize>, String>>,
    pub(crate) server: Option<ServerSocket>,
}

impl Default for Editor {
    fn default() -> Self {
        Editor {
            encoding: "utf-16".into(),
            buffers: BTreeMap::new(),
            edit_answers: VecDeque::new(),
            prompt_answers: VecDeque::new(),
            review_answers: VecDeque::new(),
            server: None,
        }
    }
}

fn uri_of(path: &Path) -> Url {
    Url::from_file_path(path).expect("absolute path")
}

fn path_of(uri: &Url) -> Result<PathBuf, String> {
    uri.to_file_path()
        .map_err(|()| format!("not a file URI: {uri}"))
}

impl Editor {
    /// Opens a buffer on `path` with `text` (unsaved if it differs from the disk).
    pub fn open(&mut self, path: &Path, text: &str) {
        self.buffers.insert(
            path.to_path_buf(),
            Buffer {
                version: 1,
                text: text.to_string(),
            },
        );
        self.notify_open(path);
    }

    /// The user replaces the buffer's text: a new version, sent to the server.
    pub fn type_text(&mut self, path: &Path, text: &str) {
        let buffer = self.buffers.get_mut(path).expect("the buffer is open");
        buffer.version += 1;
        buffer.text = text.to_string();
        self.notify_change(path);
    }

    /// The text of an open buffer.
    pub fn text(&self, path: &Path) -> Option<&str> {
        self.buffers.get(path).map(|b| b.text.as_str())
    }

    fn notify_open(&self, path: &Path) {
        let Some(server) = &self.server else { return };
        let buffer = &self.buffers[path];
        let _ = server.notify::<DidOpenTextDocument>(DidOpenTextDocumentParams {
            text_document: TextDocumentItem {
                uri: uri_of(path),
                language_id: "plaintext".into(),
                version: buffer.version,
                text: buffer.text.clone(),
            },
        });
    }

    fn notify_change(&self, path: &Path) {
        let Some(server) = &self.server else { return };
        let buffer = &self.buffers[path];
        let _ = server.notify::<DidChangeTextDocument>(DidChangeTextDocumentParams {
            text_document: VersionedTextDocumentIdentifier {
                uri: uri_of(path),
                version: buffer.version,
            },
            content_changes: vec![TextDocumentContentChangeEvent {
                range: None,
                range_length: None,
                text: buffer.text.clone(),
            }],
        });
    }

    fn notify_close(&self, path: &Path) {
        if let Some(server) = &self.server {
            let _ = server.notify::<DidCloseTextDocument>(DidCloseTextDocumentParams {
                text_document: TextDocumentIdentifier { uri: uri_of(path) },
            });
        }
    }

    /// The buffer of `path`, loaded from disk (and opened) if it is not open yet.
    fn load(&mut self, path: &Path) -> Result<(), String> {
        if !self.buffers.contains_key(path) {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
            self.buffers
                .insert(path.to_path_buf(), Buffer { version: 1, text });
            self.notify_open(path);
        }
        Ok(())
    }

    /// Handles a `workspace/applyEdit` by the next scripted answer.
    pub(crate) fn answer(&mut self, edit: &WorkspaceEdit) -> Result<(), String> {
        match self.edit_answers.pop_front().unwrap_or(EditAnswer::Apply) {
            EditAnswer::Apply => self.apply(edit),
            EditAnswer::Refuse(reason) => Err(reason),
            EditAnswer::TypeFirst(typed) => {
                if let Some(path) = first_edited(edit) {
                    self.load(&path)?;
                    let text = format!("{typed}{}", self.buffers[&path].text);
                    self.type_text(&path, &text);
                }
                self.apply(edit)
            }
        }
    }

    /// Applies a workspace edit: every version is checked before anything changes.
    pub fn apply(&mut self, edit: &WorkspaceEdit) -> Result<(), String> {
        let operations: Vec<DocumentChangeOperation> = match &edit.document_changes {
            Some(DocumentChanges::Operations(ops)) => ops.clone(),
            Some(DocumentChanges::Edits(edits)) => edits
                .iter()
                .cloned()
                .map(DocumentChangeOperation::Edit)
                .collect(),
            None => Vec::new(),
        };
        for op in &operations {
            if let DocumentChangeOperation::Edit(edit) = op {
                let path = path_of(&edit.text_document.uri)?;
                if let (Some(want), Some(buffer)) =
                    (edit.text_document.version, self.buffers.get(&path))
                    && want != buffer.version
                {
                    return Err(format!(
                        "the document changed: the edit is for version {want}, the buffer is at version {}",
                        buffer.version
                    ));
                }
            }
        }
        for op in operations {
            match op {
                DocumentChangeOperation::Edit(edit) => {
                    let path = path_of(&edit.text_document.uri)?;
                    let edits: Vec<TextEdit> = edit
                        .edits
                        .into_iter()
                        .map(|e| match e {
                            OneOf::Left(e) => e,
                            OneOf::Right(annotated) => annotated.text_edit,
                        })
                        .collect();
                    self.edit_buffer(&path, &edits)?;
                }
                DocumentChangeOperation::Op(ResourceOp::Create(create)) => {
                    let path = path_of(&create.uri)?;
                    let overwrite = create
                        .options
                        .as_ref()
                        .and_then(|o| o.overwrite)
                        .unwrap_or(false);
                    if path.exists() && !overwrite {
                        return Err(format!("{} already exists", path.display()));
                    }
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                    }
                    std::fs::write(&path, "").map_err(|e| e.to_string())?;
                    self.buffers.insert(
                        path.clone(),
                        Buffer {
                            version: 1,
                            text: String::new(),
                        },
                    );
                    self.notify_open(&path);
                }
                DocumentChangeOperation::Op(ResourceOp::Rename(rename)) => {
                    let (from, to) = (path_of(&rename.old_uri)?, path_of(&rename.new_uri)?);
                    if to.exists() {
                        return Err(format!("{} already exists", to.display()));
                    }
                    if let Some(parent) = to.parent() {
                        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
                    }
                    std::fs::rename(&from, &to).map_err(|e| e.to_string())?;
                    if let Some(buffer) = self.buffers.remove(&from) {
                        self.notify_close(&from);
                        self.buffers.insert(to.clone(), buffer);
                        self.notify_open(&to);
                    }
                }
                DocumentChangeOperation::Op(ResourceOp::Delete(delete)) => {
                    let path = path_of(&delete.uri)?;
                    std::fs::remove_file(&path).map_err(|e| e.to_string())?;
                    if self.buffers.remove(&path).is_some() {
                        self.notify_close(&path);
                    }
                }
            }
        }
        for (uri, edits) in edit.changes.clone().unwrap_or_default() {
            let path = path_of(&uri)?;
            if !path.exists() && !self.buffers.contains_key(&path) {
                // As Neovim does for a file that does not exist: a new, unsaved buffer.
                self.buffers.insert(
                    path.clone(),
                    Buffer {
                        version: 1,
                        text: String::new(),
                    },
                );
                self.notify_open(&path);
            }
            self.edit_buffer(&path, &edits)?;
        }
        Ok(())
    }

    fn edit_buffer(&mut self, path: &Path, edits: &[TextEdit]) -> Result<(), String> {
        self.load(path)?;
        let encoding = self.encoding.clone();
        let buffer = self.buffers.get_mut(path).expect("loaded");
        let mut spans: Vec<(usize, usize, &str)> = edits
            .iter()
            .map(|e| {
                (
                    offset(&buffer.text, e.range.start, &encoding),
                    offset(&buffer.text, e.range.end, &encoding),
                    e.new_text.as_str(),
                )
            })
            .collect();
        // From the end, so earlier offsets stay valid.
        spans.sort_by_key(|span| std::cmp::Reverse(span.0));
        for (start, end, new_text) in spans {
            buffer.text.replace_range(start..end, new_text);
        }
        buffer.version += 1;
        self.notify_change(path);
        Ok(())
    }
}

fn first_edited(edit: &WorkspaceEdit) -> Option<PathBuf> {
    match &edit.document_changes {
        Some(DocumentChanges::Operations(ops)) => {
            for op in ops {
                if let DocumentChangeOperation::Edit(e) = op {
                    return path_of(&e.text_document.uri).ok();
                }
            }
        }
        Some(DocumentChanges::Edits(edits)) => {
            return edits
                .first()
                .and_then(|e| path_of(&e.text_document.uri).ok());
        }
        None => {}
    }
    edit.changes
        .as_ref()?
        .keys()
        .next()
        .and_then(|uri| path_of(uri).ok())
}

/// The byte offset of an LSP position: lines end at `\n`, `\r\n` or `\r`; `character`
/// counts code units of the encoding within the line, clamped to its end.
pub fn offset(text: &str, position: Position, encoding: &str) -> usize {
    let bytes = text.as_bytes();
    let mut line_start = 0;
    for _ in 0..position.line {
        let mut i = line_start;
        while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
            i += 1;
        }
        if i == bytes.len() {
            return bytes.len();
        }
        i += if bytes[i] == b'\r' && bytes.get(i + 1) == Some(&b'\n') {
            2
        } else {
            1
        };
        line_start = i;
    }
    let mut units = 0;
    for (at, c) in text[line_start..].char_indices() {
        if c == '\n' || c == '\r' || units >= position.character as usize {
            return line_start + at;
        }
        units += match encoding {
            "utf-8" => c.len_utf8(),
            "utf-32" => 1,
            _ => c.len_utf16(),
        };
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_count_code_units_of_the_encoding() {
        let text = "a😀b\r\n中文x\rlast";
        let at = |line, character, enc| offset(text, Position { line, character }, enc);
        assert_eq!(&text[at(0, 3, "utf-16")..], "b\r\n中文x\rlast");
        assert_eq!(&text[at(0, 5, "utf-8")..], "b\r\n中文x\rlast");
        assert_eq!(&text[at(0, 2, "utf-32")..], "b\r\n中文x\rlast");
        assert_eq!(&text[at(1, 2, "utf-16")..], "x\rlast");
        assert_eq!(&text[at(1, 6, "utf-8")..], "x\rlast");
        assert_eq!(&text[at(2, 0, "utf-16")..], "last");
        assert_eq!(at(0, 99, "utf-16"), 6, "clamped to the end of the line");
    }
}
