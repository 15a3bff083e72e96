//! Changes to the user's files as plain data, and the two ways they are applied.
//!
//! The mutating tools compute a [`ChangeSet`] — text edits as byte ranges of the text the
//! user sees, file creations, deletions, renames — and hand it to an [`Applier`]. In the
//! language server the applier passes it to the LSP layer, which sends one
//! `workspace/applyEdit` and reports the editor's answer: the server never writes the
//! user's files itself. In the CLI it writes to disk atomically and only beneath a
//! directory handle of the workspace root (a temporary file in the same directory renamed
//! over the target, permissions kept), or only shows the diff in a dry run.

use std::ffi::OsStr;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::lanes::SessionId;
use crate::tools::Workspace;

pub mod review;

/// A replacement of the bytes `start..end` of a file's text with `new_text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextEdit {
    /// First byte replaced.
    pub start: usize,
    /// One past the last byte replaced.
    pub end: usize,
    /// What goes there.
    pub new_text: String,
}

/// One change to the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Edits to an existing file's text, sorted and not overlapping.
    Edit {
        /// The file (canonical).
        path: PathBuf,
        /// The text the edits' offsets refer to (the open buffer, else the disk).
        before: Arc<str>,
        /// The editor buffer's version `before` was, if it came from an open buffer.
        version: Option<i32>,
        /// The edits.
        edits: Vec<TextEdit>,
    },
    /// A new file (or a file replaced whole when `overwrite`).
    Create {
        /// Where.
        path: PathBuf,
        /// Its content.
        content: String,
        /// Replace an existing file.
        overwrite: bool,
    },
    /// A file removed.
    Delete {
        /// Which.
        path: PathBuf,
    },
    /// A file moved.
    Rename {
        /// From where.
        from: PathBuf,
        /// To where.
        to: PathBuf,
    },
}

impl Change {
    /// The text after the change, for edits.
    pub fn after(&self) -> Option<String> {
        match self {
            Change::Edit { before, edits, .. } => Some(apply_text_edits(before, edits)),
            _ => None,
        }
    }
}

/// The changes of one tool call, applied together or not at all, under one label (the
/// editor shows it in its undo history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeSet {
    /// "edit src/main.rs", say.
    pub label: String,
    /// The changes, in order.
    pub changes: Vec<Change>,
}

/// What became of a change set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ApplyOutcome {
    /// It is in the user's buffers (LSP) or on disk (CLI).
    Applied,
    /// A dry run: shown, not written.
    DryRun,
    /// It was not applied; the reason is the editor's or the disk's.
    NotApplied {
        /// Why.
        reason: String,
    },
}

/// A change set on its way to the editor, with where to send the editor's answer.
#[derive(Debug)]
pub struct EditorRequest {
    /// What to apply.
    pub changes: ChangeSet,
    /// The session whose call made the changes, when it runs in one.
    pub session: Option<SessionId>,
    /// Whether the front end writes the changes itself ([`Applier::Editor`], and
    /// [`Applier::Client`] for text it can write); when false it is only shown them and its
    /// `Applied` lets the core write them to disk.
    pub write: bool,
    /// The outcome, once the editor answered.
    pub reply: oneshot::Sender<ApplyOutcome>,
}

/// How changes reach the user's files.
#[derive(Debug, Clone)]
pub enum Applier {
    /// Through the editor (`workspace/applyEdit`), by way of the language server.
    Editor {
        /// Where change sets go.
        edits: mpsc::Sender<EditorRequest>,
        /// Where reviews go (`switchyard/reviewChange`), when the front end can ask for
        /// them; see [`review`].
        reviews: Option<mpsc::Sender<review::ReviewRequest>>,
    },
    /// Through a client that writes whole text files but no more (ACP's
    /// `fs/write_text_file`): the front end is shown every change set; it writes the edits
    /// and creations of a set that has nothing else when `writes_files`, and otherwise
    /// answers whether the core may write the set to disk (atomically, as `Disk` does).
    /// When the client offers terminals, `bash` runs in one of them.
    Client {
        /// Where change sets go.
        requests: mpsc::Sender<EditorRequest>,
        /// Whether the client can write files.
        writes_files: bool,
        /// Where commands go when the client runs them (ACP `terminal/*`).
        terminal: Option<mpsc::Sender<crate::tools::TerminalRequest>>,
    },
    /// Straight to disk, atomically; or, in a dry run, nowhere.
    Disk {
        /// Show the diff, write nothing.
        dry_run: bool,
    },
}

impl Applier {
    /// Applies a change set, made by a call of `session`, to files of `workspace` and
    /// reports what became of it.
    pub async fn apply(
        &self,
        changes: ChangeSet,
        workspace: &Workspace,
        session: Option<&SessionId>,
    ) -> ApplyOutcome {
        let ask = |requests: &mpsc::Sender<EditorRequest>, changes: ChangeSet, write: bool| {
            let requests = requests.clone();
            let session = session.cloned();
            async move {
                let (reply, answer) = oneshot::channel();
                let request = EditorRequest {
                    changes,
                    session,
                    write,
                    reply,
                };
                if requests.send(request).await.is_err() {
                    return ApplyOutcome::NotApplied {
                        reason: "the editor connection is closed".into(),
                    };
                }
                answer.await.unwrap_or(ApplyOutcome::NotApplied {
                    reason: "the editor did not answer".into(),
                })
            }
        };
        match self {
            Applier::Editor { edits, .. } => ask(edits, changes, true).await,
            Applier::Client {
                requests,
                writes_files,
                ..
            } => {
                let text_only = changes
                    .changes
                    .iter()
                    .all(|c| matches!(c, Change::Edit { .. } | Change::Create { .. }));
                let write = *writes_files && text_only;
                let outcome = ask(requests, changes.clone(), write).await;
                if write || outcome != ApplyOutcome::Applied {
                    return outcome;
                }
                Applier::disk(changes, workspace).await
            }
            Applier::Disk { dry_run: true } => ApplyOutcome::DryRun,
            Applier::Disk { dry_run: false } => Applier::disk(changes, workspace).await,
        }
    }

    /// Whether changes can be reviewed hunk by hunk before they land (the editor, through
    /// the language server).
    pub fn reviews(&self) -> bool {
        matches!(
            self,
            Applier::Editor {
                reviews: Some(_),
                ..
            }
        )
    }

    /// Asks the user to review one file's change: the indices of the hunks they accepted,
    /// or why there is no answer (the connection, the editor's error), which counts as a
    /// rejection.
    pub async fn review(&self, review: review::Review) -> Result<Vec<usize>, String> {
        let Applier::Editor {
            reviews: Some(reviews),
            ..
        } = self
        else {
            return Err("this front end cannot review changes".into());
        };
        let (reply, answer) = oneshot::channel();
        if reviews
            .send(review::ReviewRequest { review, reply })
            .await
            .is_err()
        {
            return Err("the editor connection is closed".into());
        }
        answer
            .await
            .unwrap_or_else(|_| Err("the editor did not answer".into()))
    }

    /// Writes `changes` to disk atomically, off the runtime.
    async fn disk(changes: ChangeSet, workspace: &Workspace) -> ApplyOutcome {
        let workspace = workspace.clone();
        match tokio::task::spawn_blocking(move || apply_to_disk(&changes, &workspace)).await {
            Ok(Ok(())) => ApplyOutcome::Applied,
            Ok(Err(e)) => ApplyOutcome::NotApplied {
                reason: e.to_string(),
            },
            Err(e) => ApplyOutcome::NotApplied {
                reason: format!("the write failed: {e}"),
            },
        }
    }
}

/// `before` with `edits` (sorted, not overlapping) applied.
pub fn apply_text_edits(before: &str, edits: &[TextEdit]) -> String {
    let mut out =
        String::with_capacity(before.len() + edits.iter().map(|e| e.new_text.len()).sum::<usize>());
    let mut at = 0;
    for edit in edits {
        out.push_str(&before[at..edit.start]);
        out.push_str(&edit.new_text);
        at = edit.end;
    }
    out.push_str(&before[at..]);
    out
}

/// Why a change set was not written to disk. Everything but [`WriteError::Io`] is found
/// before the first write, so nothing of the set was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// The file is not what the edit was prepared against.
    #[error("{} changed on disk while the edit was prepared; read it again", .0.display())]
    Changed(PathBuf),
    /// A file to create, or a move's target, is there already.
    #[error("{} already exists", .0.display())]
    Exists(PathBuf),
    /// A file to delete or move is gone.
    #[error("{} does not exist", .0.display())]
    Missing(PathBuf),
    /// The file system refused: a path out of the workspace, a permission, a full disk.
    #[error("{0}")]
    Io(String),
}

/// Writes a change set to disk, every path through a handle of its workspace root. Each
/// file is written atomically; the set is checked in full before the first write, so a
/// change that cannot be made stops all of them.
pub fn apply_to_disk(set: &ChangeSet, workspace: &Workspace) -> Result<(), WriteError> {
    let shown = |path: &Path| path.display().to_string();
    for change in &set.changes {
        match change {
            Change::Edit { path, before, .. } => {
                let now = workspace
                    .read_regular(path, &shown(path))
                    .map_err(|e| WriteError::Io(e.message))?;
                if now != before.as_bytes() {
                    return Err(WriteError::Changed(path.clone()));
                }
            }
            Change::Create {
                path,
                overwrite: false,
                ..
            } if workspace.exists(path) => {
                return Err(WriteError::Exists(path.clone()));
            }
            Change::Rename { to, .. } if workspace.exists(to) => {
                return Err(WriteError::Exists(to.clone()));
            }
            Change::Delete { path } | Change::Rename { from: path, .. }
                if !workspace.exists(path) =>
            {
                return Err(WriteError::Missing(path.clone()));
            }
            _ => {}
        }
    }
    let parent_dirs = |path: &Path| match path.parent() {
        Some(parent) => workspace.create_dir_all(parent).map_err(|e| {
            WriteError::Io(
                workspace
                    .io_error(parent, &shown(parent), "create", e)
                    .message,
            )
        }),
        None => Ok(()),
    };
    for change in &set.changes {
        match change {
            Change::Edit { path, .. } => {
                let after = change.after().unwrap_or_default();
                write_atomically(workspace, path, after.as_bytes())?;
            }
            Change::Create { path, content, .. } => {
                parent_dirs(path)?;
                write_atomically(workspace, path, content.as_bytes())?;
            }
            Change::Delete { path } => {
                workspace.remove_file(path).map_err(|e| {
                    WriteError::Io(workspace.io_error(path, &shown(path), "delete", e).message)
                })?;
            }
            Change::Rename { from, to } => {
                parent_dirs(to)?;
                workspace.rename(from, to).map_err(|e| {
                    WriteError::Io(format!(
                        "cannot move {} to {}: {e}",
                        from.display(),
                        to.display()
                    ))
                })?;
            }
        }
    }
    Ok(())
}

/// Temporary files of ours older than this are left over from a write that was killed, and
/// are removed when their directory is next written to. A write takes seconds at most, so
/// an hour cannot catch one still in progress (ours or another Switchyard's).
pub const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);

/// Replaces the workspace file `path`'s content with `bytes`: a temporary file is written
/// beside it through a handle of its directory, synced, and renamed over the target within
/// that same handle, so a crash leaves either the old file or the new one, and a directory
/// swapped for a link meanwhile cannot redirect the write. An existing file keeps its
/// permissions; a new one gets the umask's default (`0666 & !umask`), as an editor's would.
pub fn write_atomically(
    workspace: &Workspace,
    path: &Path,
    bytes: &[u8],
) -> Result<(), WriteError> {
    let (dir, name) = workspace.parent_of(path).map_err(|e| {
        WriteError::Io(
            workspace
                .io_error(path, &path.display().to_string(), "write", e)
                .message,
        )
    })?;
    write_in(&dir, name, bytes)
        .map_err(|e| WriteError::Io(format!("cannot write {}: {e}", path.display())))
}

/// [`write_atomically`] for the file `name` in the directory `dir`.
pub fn write_in(dir: &Dir, name: &OsStr, bytes: &[u8]) -> io::Result<()> {
    write_with(dir, name, bytes, None)
}

/// [`write_in`] for a file only its owner may read (mode `0600` whatever it had before):
/// the user's own state, such as the trust list.
pub fn write_private(dir: &Dir, name: &OsStr, bytes: &[u8]) -> io::Result<()> {
    write_with(dir, name, bytes, Some(0o600))
}

fn write_with(dir: &Dir, name: &OsStr, bytes: &[u8], mode: Option<u32>) -> io::Result<()> {
    remove_stale_temps(dir);
    // The old file's permissions; a link is replaced by a file, never written through.
    let old = dir.symlink_metadata(name).ok().filter(|m| m.is_file());
    let (tmp, mut file) = create_temp(dir)?;
    let written = (|| {
        // A private file is private before the first byte is in it.
        if let Some(mode) = mode {
            file.set_permissions(cap_std::fs::Permissions::from_std(
                std::os::unix::fs::PermissionsExt::from_mode(mode),
            ))?;
        }
        file.write_all(bytes)?;
        if let (None, Some(old)) = (mode, &old) {
            file.set_permissions(old.permissions())?;
        }
        file.sync_all()?;
        drop(file);
        dir.rename(&tmp, dir, name)
    })();
    if written.is_err() {
        let _ = dir.remove_file(&tmp);
    }
    written
}

/// A new, uniquely named temporary file in `dir`, created with mode `0666` (less the umask).
fn create_temp(dir: &Dir) -> io::Result<(String, cap_std::fs::File)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true).mode(0o666);
    loop {
        let name = format!(
            ".switchyard-{}-{}-{:08x}.tmp",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            fastrand::u32(..)
        );
        match dir.open_with(&name, &options) {
            Ok(file) => return Ok((name, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Removes our temporary files (`.switchyard-*.tmp`, regular files) older than
/// [`STALE_TEMP_AGE`] from `dir`. Best effort: a failure only leaves them.
fn remove_stale_temps(dir: &Dir) {
    let Ok(entries) = dir.entries() else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if !(name.starts_with(".switchyard-") && name.ends_with(".tmp")) {
            continue;
        }
        let Ok(meta) = dir.symlink_metadata(name) else {
            continue;
        };
        let old = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m.into_std()).ok())
            .is_some_and(|age| age > STALE_TEMP_AGE);
        if meta.is_file() && old {
            let _ = dir.remove_file(name);
        }
    }
}

/// How long a line diff may search for the smallest set of changes. Myers' algorithm takes
/// time proportional to the file's length times the number of changed lines, so a rewrite of
/// every line of an 83,000-line file would take minutes; past this it settles for what it has
/// and shows the rest of the changed region as removed and added whole. A normal edit
/// finishes in well under a millisecond, far from the limit.
pub const DIFF_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(200);

/// A line diff of `old` and `new`, bounded by [`DIFF_TIMEOUT`]: every diff shown or counted
/// goes through here.
pub fn line_diff<'a>(old: &'a str, new: &'a str) -> similar::TextDiff<'a, 'a, 'a, str> {
    similar::TextDiff::configure()
        .timeout(DIFF_TIMEOUT)
        .diff_lines(old, new)
}

/// `a/path`, or `/dev/null` for a side that does not exist.
fn side(prefix: &str, name: &str) -> String {
    if name == "/dev/null" {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

/// A unified diff of one change, with paths shown as `shown` gives them and the current
/// text of a file replaced or deleted read by `current`.
pub fn unified_diff(
    change: &Change,
    shown: impl Fn(&Path) -> String,
    current: impl Fn(&Path) -> String,
) -> String {
    let (old_name, new_name, old, new) = match change {
        Change::Edit { path, before, .. } => (
            shown(path),
            shown(path),
            before.to_string(),
            change.after().unwrap_or_default(),
        ),
        Change::Create { path, content, .. } => {
            let old = current(path);
            ("/dev/null".to_string(), shown(path), old, content.clone())
        }
        Change::Delete { path } => {
            let old = current(path);
            (shown(path), "/dev/null".to_string(), old, String::new())
        }
        Change::Rename { from, to } => return format!("rename {} → {}\n", shown(from), shown(to)),
    };
    line_diff(&old, &new)
        .unified_diff()
        .context_radius(3)
        .header(&side("a", &old_name), &side("b", &new_name))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn text_edits_apply_in_order() {
        let edits = [
            TextEdit {
                start: 0,
                end: 3,
                new_text: "let".into(),
            },
            TextEdit {
                start: 8,
                end: 8,
                new_text: "mut ".into(),
            },
        ];
        assert_eq!(
            apply_text_edits("var x = mut_not;", &edits[..1]),
            "let x = mut_not;"
        );
        assert_eq!(apply_text_edits("var x = 1;", &edits), "let x = mut 1;");
    }

    #[test]
    fn disk_writes_are_atomic_and_keep_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("run.sh");
        std::fs::write(&script, "echo old\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o754)).unwrap();
        let ws = Workspace::new([dir.path().to_path_buf()]).unwrap();
        let script = ws.primary().join("run.sh");
        let set = ChangeSet {
            label: "edit run.sh".into(),
            changes: vec![Change::Edit {
                path: script.clone(),
                before: "echo old\n".into(),
                version: None,
                edits: vec![TextEdit {
                    start: 5,
                    end: 8,
                    new_text: "new".into(),
                }],
            }],
        };
        apply_to_disk(&set, &ws).unwrap();
        assert_eq!(std::fs::read_to_string(&script).unwrap(), "echo new\n");
        assert_eq!(
            std::fs::metadata(&script).unwrap().permissions().mode() & 0o777,
            0o754
        );
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["run.sh"]);
        // A change prepared against stale text is refused and nothing is written.
        let err = apply_to_disk(&set, &ws).unwrap_err();
        assert_eq!(err, WriteError::Changed(script.clone()));
        assert_eq!(std::fs::read_to_string(&script).unwrap(), "echo new\n");
    }

    #[test]
    fn stale_temp_files_of_a_killed_write_are_removed_and_fresh_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new([dir.path().to_path_buf()]).unwrap();
        let stale = dir.path().join(".switchyard-1-0-deadbeef.tmp");
        let fresh = dir.path().join(".switchyard-2-0-cafef00d.tmp");
        let other = dir.path().join(".other.tmp");
        for path in [&stale, &fresh, &other] {
            std::fs::write(path, "half").unwrap();
        }
        let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
        for path in [&stale, &other] {
            std::fs::File::options()
                .write(true)
                .open(path)
                .unwrap()
                .set_modified(two_hours_ago)
                .unwrap();
        }
        write_atomically(&ws, &ws.primary().join("a.txt"), b"new").unwrap();
        assert!(!stale.exists());
        assert!(fresh.exists() && other.exists());
        assert_eq!(std::fs::read(dir.path().join("a.txt")).unwrap(), b"new");
    }

    #[test]
    fn a_set_that_cannot_be_made_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("exists.txt"), "x").unwrap();
        let ws = Workspace::new([dir.path().to_path_buf()]).unwrap();
        let dir = ws.primary();
        let set = ChangeSet {
            label: "copy".into(),
            changes: vec![
                Change::Create {
                    path: dir.join("new.txt"),
                    content: "new".into(),
                    overwrite: false,
                },
                Change::Create {
                    path: dir.join("exists.txt"),
                    content: "y".into(),
                    overwrite: false,
                },
            ],
        };
        assert!(
            apply_to_disk(&set, &ws)
                .unwrap_err()
                .to_string()
                .ends_with("exists.txt already exists")
        );
        assert!(!dir.join("new.txt").exists());
    }

    #[test]
    fn diffs_are_unified() {
        let change = Change::Edit {
            path: PathBuf::from("/w/a.txt"),
            before: "one\ntwo\nthree\n".into(),
            version: None,
            edits: vec![TextEdit {
                start: 4,
                end: 7,
                new_text: "TWO".into(),
            }],
        };
        let diff = unified_diff(
            &change,
            |p| p.strip_prefix("/w").unwrap().display().to_string(),
            |_| String::new(),
        );
        assert_eq!(
            diff,
            "--- a/a.txt\n+++ b/a.txt\n@@ -1,3 +1,3 @@\n one\n-two\n+TWO\n three\n"
        );
    }
}
