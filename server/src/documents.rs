//! Open editor buffers: the overlay the read and grep tools consult before the disk, so
//! unsaved text wins. Empty in the CLI; the language server fills it from
//! `textDocument/didOpen`/`didChange`/`didClose`, applying incremental changes with the
//! position arithmetic of [`line_index`].
//!
//! An ACP client pushes nothing: it serves a buffer when asked (`fs/read_text_file`). Its
//! front end sets an [editor](Documents::set_editor) here that `read` asks instead of the
//! disk, and keeps the texts the client served or wrote [per session](Documents::serve):
//! snapshots (the client does not say when the user types on), which `grep` and the edits
//! see until the session ends or the front end refreshes them.
//!
//! A buffer is kept in a rope ([`ropey::Rope`]): an incremental change costs O(log n), so a
//! keystroke in a 50 MB buffer does not hold up the server (its stats and cancel requests
//! wait behind `didChange`). The flat text the tools search is made from the rope only when
//! one asks, once per version, and shared.

mod line_index;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;
use ropey::Rope;
use tokio::sync::{mpsc, oneshot};

use crate::lanes::SessionId;

pub use line_index::{LineIndex, Position, PositionEncoding, Range, rope_offset};

/// One change to a buffer, as the editor sends it in `didChange`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextChange {
    /// The span replaced, in the negotiated encoding; `None` replaces the whole text.
    pub range: Option<Range>,
    /// The new text of that span.
    pub text: String,
}

/// `text` with `changes` applied one after another, each range read against the text the
/// changes before it left. Out-of-bounds positions are clamped (see [`LineIndex::offset`]).
pub fn apply_changes(text: &str, changes: &[TextChange], encoding: PositionEncoding) -> String {
    let mut rope = Rope::from_str(text);
    apply_to_rope(&mut rope, changes, encoding);
    rope.to_string()
}

/// [`apply_changes`] on a rope, in place.
fn apply_to_rope(rope: &mut Rope, changes: &[TextChange], encoding: PositionEncoding) {
    for change in changes {
        match change.range {
            None => *rope = Rope::from_str(&change.text),
            Some(range) => {
                let start = rope_offset(rope, range.start, encoding);
                let end = rope_offset(rope, range.end, encoding).max(start);
                rope.remove(start..end);
                rope.insert(start, &change.text);
            }
        }
    }
}

/// One open buffer as the editor last described it. Cloning is cheap (the rope's nodes are
/// shared); a clone is a snapshot that later changes do not touch.
#[derive(Debug, Clone)]
pub struct Document {
    /// The editor's version number, increased on every change.
    pub version: i32,
    /// The buffer's text.
    rope: Rope,
    /// The text made flat, on first use; shared by every holder of this version.
    flat: Arc<OnceLock<Arc<str>>>,
    /// The session an editor served this text to (a snapshot it does not keep current);
    /// `None` for a buffer the editor keeps current (the language server's).
    pub served_to: Option<SessionId>,
}

impl Document {
    fn new(version: i32, rope: Rope, flat: Option<Arc<str>>) -> Document {
        let cell = OnceLock::new();
        if let Some(flat) = flat {
            let _ = cell.set(flat);
        }
        Document {
            version,
            rope,
            flat: Arc::new(cell),
            served_to: None,
        }
    }

    /// The buffer's whole text: made from the rope on the first call for this version (one
    /// pass over the text), shared after that.
    pub fn text(&self) -> Arc<str> {
        self.flat
            .get_or_init(|| {
                let mut text = String::with_capacity(self.rope.len_bytes());
                for chunk in self.rope.chunks() {
                    text.push_str(chunk);
                }
                text.into()
            })
            .clone()
    }

    /// The buffer's text as a rope, for readers that need no flat copy.
    pub fn rope(&self) -> &Rope {
        &self.rope
    }

    /// The buffer's length in bytes.
    pub fn len(&self) -> usize {
        self.rope.len_bytes()
    }

    /// Whether the buffer is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A request for a buffer's text to an editor that serves its buffers when asked (ACP's
/// `fs/read_text_file`).
#[derive(Debug)]
pub struct BufferRequest {
    /// The session whose call asks.
    pub session: Option<SessionId>,
    /// The file, absolute, inside the workspace.
    pub path: PathBuf,
    /// The first line wanted, 1-based; `None`: from the start.
    pub line: Option<u32>,
    /// The most lines wanted; `None`: to the end.
    pub limit: Option<u32>,
    /// The text, `None` when the editor says there is no such file, or the editor's error.
    pub reply: oneshot::Sender<Result<Option<String>, String>>,
}

/// The open buffers, keyed by absolute path. Cheap to clone; clones share the store.
#[derive(Debug, Clone, Default)]
pub struct Documents {
    open: Arc<RwLock<HashMap<PathBuf, Arc<Document>>>>,
    /// The editor that serves buffers when asked, if there is one.
    editor: Arc<RwLock<Option<mpsc::Sender<BufferRequest>>>>,
}

impl Documents {
    /// An empty overlay (what the CLI uses).
    pub fn new() -> Documents {
        Documents::default()
    }

    /// Records a buffer opened (or replaced whole) by the editor.
    pub fn open(&self, path: PathBuf, version: i32, text: impl Into<Arc<str>>) {
        let doc = whole(version, text.into());
        self.open.write().insert(path, Arc::new(doc));
    }

    /// Replaces an open buffer's text and version; returns false if it was not open.
    pub fn replace(&self, path: &Path, version: i32, text: impl Into<Arc<str>>) -> bool {
        if !self.open.read().contains_key(path) {
            return false;
        }
        // Built outside the lock: indexing a large text takes a while.
        let doc = Arc::new(whole(version, text.into()));
        match self.open.write().get_mut(path) {
            Some(slot) => {
                *slot = doc;
                true
            }
            None => false,
        }
    }

    /// Applies an editor's changes to an open buffer and sets its version; returns false if
    /// it was not open. O(log n) per change in the buffer's length.
    pub fn change(
        &self,
        path: &Path,
        version: i32,
        changes: &[TextChange],
        encoding: PositionEncoding,
    ) -> bool {
        let mut open = self.open.write();
        let Some(doc) = open.get_mut(path) else {
            return false;
        };
        let mut rope = doc.rope.clone();
        apply_to_rope(&mut rope, changes, encoding);
        let served_to = doc.served_to.clone();
        *doc = Arc::new(Document {
            served_to,
            ..Document::new(version, rope, None)
        });
        true
    }

    /// Forgets a buffer the editor closed: from now on the disk is the truth.
    pub fn close(&self, path: &Path) -> bool {
        self.open.write().remove(path).is_some()
    }

    /// The open buffer at `path`, if any: a snapshot that later changes do not touch.
    pub fn get(&self, path: &Path) -> Option<Arc<Document>> {
        self.open.read().get(path).cloned()
    }

    /// Every open buffer's path.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.open.read().keys().cloned().collect()
    }

    /// Whether no buffer is open.
    pub fn is_empty(&self) -> bool {
        self.open.read().is_empty()
    }

    /// Records the text an editor served to (or wrote for) `session`: a snapshot that wins
    /// over the disk until [`forget_session`](Documents::forget_session) or a newer one.
    pub fn serve(&self, path: PathBuf, session: &SessionId, text: impl Into<Arc<str>>) {
        let doc = Document {
            served_to: Some(session.clone()),
            ..whole(0, text.into())
        };
        self.open.write().insert(path, Arc::new(doc));
    }

    /// The paths of the snapshots served to `session`.
    pub fn served(&self, session: &SessionId) -> Vec<PathBuf> {
        let open = self.open.read();
        let mut paths: Vec<PathBuf> = open
            .iter()
            .filter(|(_, doc)| doc.served_to.as_ref() == Some(session))
            .map(|(path, _)| path.clone())
            .collect();
        paths.sort();
        paths
    }

    /// Drops the snapshots served to `session` (it ended).
    pub fn forget_session(&self, session: &SessionId) {
        self.open
            .write()
            .retain(|_, doc| doc.served_to.as_ref() != Some(session));
    }

    /// Makes `editor` the one `read` asks for a buffer before the disk.
    pub fn set_editor(&self, editor: mpsc::Sender<BufferRequest>) {
        *self.editor.write() = Some(editor);
    }

    /// The editor that serves buffers when asked, if there is one.
    pub fn editor(&self) -> Option<mpsc::Sender<BufferRequest>> {
        self.editor.read().clone()
    }
}

/// A document whose whole text is `text`: the rope, and the flat text already made.
fn whole(version: i32, text: Arc<str>) -> Document {
    Document::new(version, Rope::from_str(&text), Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_snapshots_belong_to_their_session() {
        let docs = Documents::new();
        let (a, b): (SessionId, SessionId) = (Arc::from("a"), Arc::from("b"));
        docs.open(PathBuf::from("/w/lsp.rs"), 3, "kept current");
        docs.serve(PathBuf::from("/w/x.rs"), &a, "served to a");
        docs.serve(PathBuf::from("/w/y.rs"), &b, "served to b");
        assert_eq!(docs.served(&a), [PathBuf::from("/w/x.rs")]);
        assert_eq!(
            &*docs.get(Path::new("/w/x.rs")).unwrap().text(),
            "served to a"
        );
        docs.forget_session(&a);
        assert!(docs.get(Path::new("/w/x.rs")).is_none());
        assert!(docs.get(Path::new("/w/y.rs")).is_some());
        assert!(docs.get(Path::new("/w/lsp.rs")).is_some());
        assert!(docs.served(&a).is_empty());
    }

    #[test]
    fn a_closed_buffer_falls_back_to_disk() {
        let docs = Documents::new();
        let path = PathBuf::from("/w/src/lib.rs");
        docs.open(path.clone(), 1, "fn unsaved() {}");
        assert_eq!(&*docs.get(&path).unwrap().text(), "fn unsaved() {}");
        assert!(docs.replace(&path, 2, "fn edited() {}"));
        assert_eq!(docs.get(&path).unwrap().version, 2);
        assert!(docs.close(&path));
        assert!(docs.get(&path).is_none());
        assert!(!docs.replace(&path, 3, "x"));
    }

    fn edit(range: ((u32, u32), (u32, u32)), text: &str) -> TextChange {
        let ((l0, c0), (l1, c1)) = range;
        TextChange {
            range: Some(Range::new(Position::new(l0, c0), Position::new(l1, c1))),
            text: text.to_string(),
        }
    }

    #[test]
    fn incremental_changes_count_columns_in_the_negotiated_encoding() {
        use PositionEncoding::{Utf8, Utf16, Utf32};
        // Replace the `x` after an emoji, CJK and a combining mark: its column differs in
        // every encoding.
        let text = "😀中e\u{301}x = 1;\r\nnext\r\n";
        let cases = [(Utf8, 10), (Utf16, 5), (Utf32, 4)];
        for (encoding, column) in cases {
            let changed =
                apply_changes(text, &[edit(((0, column), (0, column + 1)), "y")], encoding);
            assert_eq!(changed, "😀中e\u{301}y = 1;\r\nnext\r\n", "{encoding:?}");
        }
    }

    #[test]
    fn changes_apply_in_order_against_the_text_before_them() {
        let text = "line one\r\nline two\r\n";
        let changes = [
            // Join the lines: the CRLF goes as one unit.
            edit(((0, 8), (1, 0)), " + "),
            // Now on the single joined line.
            edit(((0, 0), (0, 4)), "LINE"),
            // Insert an emoji at the end, then text after it (2 UTF-16 units further).
            edit(((0, 19), (0, 19)), "👍"),
            edit(((0, 21), (0, 21)), "!"),
            // Delete from the line end to a position past the text: the CRLF goes.
            edit(((0, 22), (9, 9)), ""),
        ];
        let changed = apply_changes(text, &changes, PositionEncoding::Utf16);
        assert_eq!(changed, "LINE one + line two👍!");
        let whole = TextChange {
            range: None,
            text: "fresh".into(),
        };
        assert_eq!(
            apply_changes("old", &[whole], PositionEncoding::Utf16),
            "fresh"
        );
    }

    #[test]
    fn change_updates_an_open_buffer_only() {
        let docs = Documents::new();
        let path = PathBuf::from("/w/a.txt");
        assert!(!docs.change(&path, 2, &[], PositionEncoding::Utf16));
        docs.open(path.clone(), 1, "中文\n");
        assert!(docs.change(
            &path,
            2,
            &[edit(((0, 1), (0, 2)), "国")],
            PositionEncoding::Utf16
        ));
        let doc = docs.get(&path).unwrap();
        assert_eq!((doc.version, &*doc.text()), (2, "中国\n"));
    }

    /// The position of char `at` of `chars`, computed the slow, obvious way.
    fn naive_position(chars: &[char], at: usize, encoding: PositionEncoding) -> Position {
        let (mut line, mut col) = (0, 0);
        let mut i = 0;
        while i < at {
            match chars[i] {
                '\r' if chars.get(i + 1) == Some(&'\n') && i + 1 < at => {
                    line += 1;
                    col = 0;
                    i += 1;
                }
                '\n' | '\r' => {
                    line += 1;
                    col = 0;
                }
                c => col += encoding.len(c) as u32,
            }
            i += 1;
        }
        Position::new(line, col)
    }

    #[test]
    fn random_edits_match_a_naive_model() {
        let alphabet = ['a', 'Z', ' ', '\n', '\r', 'é', '中', '😀', '\u{301}', '👍'];
        let mut rng = fastrand::Rng::with_seed(4);
        for encoding in [
            PositionEncoding::Utf8,
            PositionEncoding::Utf16,
            PositionEncoding::Utf32,
        ] {
            for _ in 0..200 {
                let mut model: Vec<char> = (0..rng.usize(0..30))
                    .map(|_| alphabet[rng.usize(..alphabet.len())])
                    .collect();
                let mut text: String = model.iter().collect();
                for _ in 0..5 {
                    let mut a = rng.usize(..=model.len());
                    let mut b = rng.usize(a..=model.len());
                    // A CRLF is one line break: an edit never starts or ends inside it.
                    for at in [&mut a, &mut b] {
                        if *at > 0 && model[*at - 1] == '\r' && model.get(*at) == Some(&'\n') {
                            *at -= 1;
                        }
                    }
                    let insert: Vec<char> = (0..rng.usize(0..4))
                        .map(|_| alphabet[rng.usize(..alphabet.len())])
                        .collect();
                    let change = TextChange {
                        range: Some(Range::new(
                            naive_position(&model, a, encoding),
                            naive_position(&model, b.max(a), encoding),
                        )),
                        text: insert.iter().collect(),
                    };
                    model.splice(a..b.max(a), insert);
                    text = apply_changes(&text, &[change], encoding);
                    assert_eq!(text, model.iter().collect::<String>(), "{encoding:?}");
                }
            }
        }
    }
}
