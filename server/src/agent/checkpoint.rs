//! Checkpoints: before a turn's mutating calls run, the prior content (or absence) of each
//! file they touch is kept in the session store, content-addressed by SHA-256, once per file
//! per turn; after them, a hash of what the agent left. A rewind restores the files to the
//! start of a turn from the earliest checkpoint at or after it, and refuses a file whose
//! content is no longer what the agent left (someone else changed it) unless forced.
//!
//! Files above [`MAX_FILE_BYTES`] are not kept (the record says so, and a rewind says the
//! file is left as it is). A turn that ran `bash` is marked: what a command changed is not
//! known, so a rewind past it says it is not fully restorable.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::AgentError;
use super::store::{Checkpoint, Line, Loaded, SessionStore};
use crate::documents::Documents;
use crate::edits::{Change, TextEdit};
use crate::tools::{Toolbox, Workspace};

/// The largest file a checkpoint keeps.
pub const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;

/// What a file was before a turn changed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Prior {
    /// There was no file.
    Absent,
    /// Its content, kept under this SHA-256 (hex).
    Kept { sha256: String },
    /// It was too large to keep.
    TooLarge { bytes: u64 },
}

/// A file as the agent sees it before or after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// There is no file (or not a regular one).
    Absent,
    /// Its bytes.
    Bytes(Vec<u8>),
    /// It is larger than [`MAX_FILE_BYTES`]: only its size is known.
    TooLarge(u64),
}

impl Content {
    /// `path`'s content: the editor's buffer, else the disk.
    pub fn of(workspace: &Workspace, documents: &Documents, path: &Path) -> Content {
        if let Some(doc) = documents.get(path) {
            return Content::Bytes(doc.text().as_bytes().to_vec());
        }
        let Ok(meta) = workspace.metadata(path) else {
            return Content::Absent;
        };
        if !meta.is_file() {
            return Content::Absent;
        }
        if meta.len() > MAX_FILE_BYTES {
            return Content::TooLarge(meta.len());
        }
        match workspace.read_regular(path, &path.display().to_string()) {
            Ok(bytes) => Content::Bytes(bytes),
            Err(_) => Content::Absent,
        }
    }

    /// What a checkpoint records of it (the bytes themselves go to the store).
    pub fn prior(&self) -> Prior {
        match self {
            Content::Absent => Prior::Absent,
            Content::Bytes(bytes) => Prior::Kept {
                sha256: sha256(bytes),
            },
            Content::TooLarge(bytes) => Prior::TooLarge { bytes: *bytes },
        }
    }

    /// A fingerprint to tell whether the file changed: its SHA-256, its size when too
    /// large, `None` when absent.
    pub fn fingerprint(&self) -> Option<String> {
        match self {
            Content::Absent => None,
            Content::Bytes(bytes) => Some(sha256(bytes)),
            Content::TooLarge(bytes) => Some(format!("large:{bytes}")),
        }
    }
}

/// SHA-256 of `bytes`, hex.
pub fn sha256(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest
        .as_ref()
        .iter()
        .fold(String::with_capacity(64), |mut out, b| {
            use std::fmt::Write;
            let _ = write!(out, "{b:02x}");
            out
        })
}

/// Which parts a rewind restores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Only {
    /// The files only; the conversation goes on.
    Code,
    /// The conversation only; the files stay as they are.
    Conversation,
}

impl Only {
    /// Parses `code` or `conversation`.
    pub fn parse(text: &str) -> Result<Only, String> {
        match text {
            "code" => Ok(Only::Code),
            "conversation" => Ok(Only::Conversation),
            other => Err(format!(
                "`{other}` is not a part to rewind: `code` or `conversation`"
            )),
        }
    }
}

/// What a rewind is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewindRequest {
    /// Back to the start of this turn (from 1).
    pub turn: u32,
    /// Only the code or only the conversation; both when `None`.
    pub only: Option<Only>,
    /// Restore files even when they changed since the agent left them.
    pub force: bool,
}

impl RewindRequest {
    /// Whether the files are restored.
    pub fn code(&self) -> bool {
        self.only != Some(Only::Conversation)
    }

    /// Whether the conversation is.
    pub fn conversation(&self) -> bool {
        self.only != Some(Only::Code)
    }
}

/// What a rewind did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RewindReport {
    /// The turn the session is back at the start of.
    pub turn: u32,
    /// The files restored, as shown (relative to the workspace root).
    pub restored: Vec<String>,
    /// Whether the conversation was rewound.
    pub conversation: bool,
    /// What could not be restored, in sentences: turns that ran `bash`, files too large
    /// to have been kept.
    pub not_restorable: Vec<String>,
}

/// Keeps what the files `calls` change are now, but those in `seen` (kept earlier in the
/// turn): returns every file the calls change, and the checkpoint records. Blocking.
pub(crate) fn capture(
    toolbox: &Toolbox,
    store: &SessionStore,
    id: &str,
    turn: u32,
    calls: &[(String, Value)],
    seen: &HashSet<PathBuf>,
) -> (Vec<PathBuf>, Vec<Line>) {
    let workspace = toolbox.workspace();
    let mut paths: Vec<PathBuf> = Vec::new();
    for (tool, args) in calls {
        for path in toolbox.changed_paths(tool, args) {
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
    }
    let mut lines = Vec::new();
    for path in paths.iter().filter(|p| !seen.contains(*p)) {
        let content = Content::of(workspace, toolbox.documents(), path);
        if let Content::Bytes(bytes) = &content
            && let Err(e) = store.put_blob(id, bytes)
        {
            tracing::warn!(session = id, error = %e, "a change will not be restorable");
            continue;
        }
        lines.push(Line::Checkpoint {
            turn,
            path: path.clone(),
            before: content.prior(),
        });
    }
    (paths, lines)
}

/// What the agent left `paths` as. Blocking.
pub(crate) fn settle(toolbox: &Toolbox, turn: u32, paths: Vec<PathBuf>) -> Vec<Line> {
    paths
        .into_iter()
        .map(|path| Line::After {
            turn,
            fingerprint: Content::of(toolbox.workspace(), toolbox.documents(), &path).fingerprint(),
            path,
        })
        .collect()
}

/// The changes that take the files back to the start of `request.turn`. Blocking.
pub(crate) fn plan(
    toolbox: &Toolbox,
    store: &SessionStore,
    id: &str,
    loaded: &Loaded,
    request: RewindRequest,
) -> Result<Restore, AgentError> {
    let workspace = toolbox.workspace();
    let documents = toolbox.documents();
    let mut notes: Vec<String> = Vec::new();
    for (turn, tool) in loaded
        .unrestorable
        .iter()
        .filter(|(t, _)| *t >= request.turn)
    {
        let note = format!(
            "turn {turn} ran `{tool}`: what it changed is not known, so it is not restored"
        );
        if !notes.contains(&note) {
            notes.push(note);
        }
    }
    // The earliest checkpoint of each file at or after the turn: its state at the start.
    let mut firsts: Vec<&Checkpoint> = Vec::new();
    for c in loaded.checkpoints.iter().filter(|c| c.turn >= request.turn) {
        if !firsts.iter().any(|f| f.path == c.path) {
            firsts.push(c);
        }
    }
    let (mut changes, mut restored, mut conflicts) = (Vec::new(), Vec::new(), Vec::new());
    for first in firsts {
        let path = &first.path;
        let shown = workspace.display(path);
        let left = loaded
            .afters
            .iter()
            .rev()
            .find(|(_, p, _)| p == path)
            .map_or_else(|| fingerprint_of(&first.before), |(_, _, f)| f.clone());
        let now = Content::of(workspace, documents, path);
        if now.fingerprint() != left {
            conflicts.push(shown.clone());
            if !request.force {
                continue;
            }
        }
        let change = match (&first.before, now) {
            (Prior::TooLarge { bytes }, _) => {
                notes.push(format!(
                    "{shown} was too large to keep ({bytes} bytes; the limit is {} MiB) and is left as it is",
                    MAX_FILE_BYTES / (1024 * 1024)
                ));
                continue;
            }
            (Prior::Absent, Content::Absent) => continue,
            (Prior::Absent, _) => Change::Delete { path: path.clone() },
            (Prior::Kept { sha256 }, now) => {
                if now.fingerprint().as_ref() == Some(sha256) {
                    continue;
                }
                let bytes = store.blob(id, sha256).map_err(AgentError::Rewind)?;
                let Ok(text) = String::from_utf8(bytes) else {
                    notes.push(format!("{shown} is not text and is left as it is"));
                    continue;
                };
                match now {
                    Content::Bytes(current) => match String::from_utf8(current) {
                        Ok(current) => Change::Edit {
                            path: path.clone(),
                            version: documents.get(path).map(|d| d.version),
                            edits: vec![TextEdit {
                                start: 0,
                                end: current.len(),
                                new_text: text,
                            }],
                            before: current.into(),
                        },
                        Err(_) => Change::Create {
                            path: path.clone(),
                            content: text,
                            overwrite: true,
                        },
                    },
                    Content::TooLarge(_) => Change::Create {
                        path: path.clone(),
                        content: text,
                        overwrite: true,
                    },
                    Content::Absent => Change::Create {
                        path: path.clone(),
                        content: text,
                        overwrite: false,
                    },
                }
            }
        };
        changes.push(change);
        restored.push(shown);
    }
    if !conflicts.is_empty() && !request.force {
        let (them, have) = if conflicts.len() == 1 {
            ("it", "has")
        } else {
            ("them", "have")
        };
        return Err(AgentError::Rewind(format!(
            "not rewound: {} {have} changed since the agent left {them}; look at {them}, then rewind with --force (`force: true`) to overwrite",
            conflicts.join(", ")
        )));
    }
    Ok(Restore {
        changes,
        restored,
        notes,
    })
}

/// What a rewind's files need.
#[derive(Debug, Default)]
pub(crate) struct Restore {
    /// The changes that restore them.
    pub changes: Vec<Change>,
    /// The files restored, as shown.
    pub restored: Vec<String>,
    /// What cannot be restored, in sentences.
    pub notes: Vec<String>,
}

/// The fingerprint of a file as a checkpoint recorded it.
fn fingerprint_of(prior: &Prior) -> Option<String> {
    match prior {
        Prior::Absent => None,
        Prior::Kept { sha256 } => Some(sha256.clone()),
        Prior::TooLarge { bytes } => Some(format!("large:{bytes}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_checkpoint_keeps_of_a_file() {
        assert_eq!(Content::Absent.prior(), Prior::Absent);
        assert_eq!(Content::TooLarge(12).prior(), Prior::TooLarge { bytes: 12 });
        assert_eq!(
            Content::Bytes(b"abc".to_vec()).prior(),
            Prior::Kept {
                sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into()
            }
        );
    }
}
