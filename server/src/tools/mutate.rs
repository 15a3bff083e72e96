//! The mutating tools — write, edit, multi_edit, delete, move, copy — in the Execute lane,
//! never parallel with anything else of their turn.
//!
//! Each call first computes its change against what the user sees (the open buffer if
//! there is one, else the disk), so a mistake (`old_string` not found, a path outside the
//! workspace) is answered without bothering anyone; then it is approved; then the
//! [`Applier`](crate::edits::Applier) applies it — through the editor in the language
//! server, to disk in the CLI. A file the user changed since the agent read it is refused:
//! the model is told to read it again, and nothing is clobbered.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::sandbox::{require_regular, special_kind};
use super::{Args, Tool, ToolError, thousands};
use crate::edits::review::{self, Review};
use crate::edits::{ApplyOutcome, Change, ChangeSet, TextEdit, unified_diff};

/// One replacement of `edit`/`multi_edit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    /// The exact text to replace.
    pub old_string: String,
    /// What replaces it.
    pub new_string: String,
    /// Every occurrence, not just a unique one.
    pub replace_all: bool,
}

/// A parsed mutating call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// `write`.
    Write {
        /// Where.
        path: String,
        /// What.
        content: String,
    },
    /// `edit` (one replacement) and `multi_edit` (several).
    Edit {
        /// Which tool was called: `edit` or `multi_edit`.
        tool: Tool,
        /// The file.
        path: String,
        /// In order.
        replacements: Vec<Replacement>,
    },
    /// `delete`.
    Delete {
        /// The file.
        path: String,
    },
    /// `move`.
    Move {
        /// From.
        from: String,
        /// To.
        to: String,
    },
    /// `copy`.
    Copy {
        /// From.
        from: String,
        /// To.
        to: String,
    },
}

impl Mutation {
    /// A `write` call.
    pub(super) fn write(args: &Args<'_>) -> Result<Mutation, ToolError> {
        args.only(&["path", "content"])?;
        Ok(Mutation::Write {
            path: args.string("path")?.into(),
            content: args.string("content")?.into(),
        })
    }

    /// An `edit` call.
    pub(super) fn edit(args: &Args<'_>) -> Result<Mutation, ToolError> {
        args.only(&["path", "old_string", "new_string", "replace_all"])?;
        let replacement = Replacement {
            old_string: args.string("old_string")?.into(),
            new_string: args.string("new_string")?.into(),
            replace_all: args.flag("replace_all", false)?,
        };
        Ok(Mutation::Edit {
            tool: Tool::Edit,
            path: args.string("path")?.into(),
            replacements: vec![replacement],
        })
    }

    /// A `multi_edit` call.
    pub(super) fn multi_edit(args: &Args<'_>) -> Result<Mutation, ToolError> {
        args.only(&["path", "edits"])?;
        let path = args.string("path")?.to_string();
        let list = args.array("edits")?;
        if list.is_empty() {
            return Err(ToolError::new("`edits` must hold at least one edit"));
        }
        let mut replacements = Vec::new();
        for (i, item) in list.iter().enumerate() {
            let edit = Args::new(Tool::MultiEdit.name(), item)
                .map_err(|_| ToolError::new(format!("`edits[{i}]` must be an object")))?;
            edit.only(&["old_string", "new_string", "replace_all"])
                .map_err(|e| ToolError::new(format!("`edits[{i}]`: {}", e.message)))?;
            let field = |key| {
                edit.string(key)
                    .map_err(|e| ToolError::new(format!("`edits[{i}]`: {}", e.message)))
            };
            replacements.push(Replacement {
                old_string: field("old_string")?.into(),
                new_string: field("new_string")?.into(),
                replace_all: edit.flag("replace_all", false)?,
            });
        }
        Ok(Mutation::Edit {
            tool: Tool::MultiEdit,
            path,
            replacements,
        })
    }

    /// A `delete` call.
    pub(super) fn delete(args: &Args<'_>) -> Result<Mutation, ToolError> {
        args.only(&["path"])?;
        Ok(Mutation::Delete {
            path: args.string("path")?.into(),
        })
    }

    /// A `move` call, or with `copy` a `copy` call.
    pub(super) fn move_or_copy(args: &Args<'_>, copy: bool) -> Result<Mutation, ToolError> {
        args.only(&["from", "to"])?;
        let (from, to) = (
            args.string("from")?.to_string(),
            args.string("to")?.to_string(),
        );
        Ok(if copy {
            Mutation::Copy { from, to }
        } else {
            Mutation::Move { from, to }
        })
    }

    /// The workspace paths it changes, as the model gave them (a copy's source is only read).
    pub fn targets(&self) -> Vec<&str> {
        match self {
            Mutation::Write { path, .. }
            | Mutation::Edit { path, .. }
            | Mutation::Delete { path } => vec![path],
            Mutation::Move { from, to } => vec![from, to],
            Mutation::Copy { to, .. } => vec![to],
        }
    }

    /// The tool called.
    pub fn tool(&self) -> Tool {
        match self {
            Mutation::Write { .. } => Tool::Write,
            Mutation::Edit { tool, .. } => *tool,
            Mutation::Delete { .. } => Tool::Delete,
            Mutation::Move { .. } => Tool::Move,
            Mutation::Copy { .. } => Tool::Copy,
        }
    }
}

/// The result of a mutating call that was applied (or shown, in a dry run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeOutput {
    /// The tool.
    pub tool: Tool,
    /// What was done, in a line.
    pub summary: String,
    /// The files touched, relative to the workspace root.
    pub paths: Vec<String>,
    /// Applied, or a dry run.
    pub outcome: ApplyOutcome,
    /// A unified diff of the change, for people (not shown to the model).
    pub diff: String,
    /// In review mode, when the user accepted only some hunks: which were applied and
    /// which rejected (see [`crate::edits::review::report`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<String>,
}

impl ChangeOutput {
    /// What the model is told.
    pub fn render(&self) -> String {
        let review = match &self.review {
            Some(review) => format!("\n{review}"),
            None => String::new(),
        };
        match self.outcome {
            ApplyOutcome::DryRun => format!("{} (dry run: nothing was written)\n", self.summary),
            _ => format!("{}{review}\n", self.summary),
        }
    }
}

/// What a mutation needs from the toolbox while it computes its change.
pub(super) struct Scope<'a> {
    pub workspace: &'a super::Workspace,
    pub documents: &'a crate::documents::Documents,
    pub ledger: &'a Ledger,
    pub session: Option<&'a crate::lanes::SessionId>,
    pub max_bytes: u64,
}

/// A computed change: what to apply, how to describe it, and what the file will read
/// afterwards (for the ledger).
pub(super) struct Prepared {
    pub set: ChangeSet,
    pub summary: String,
    pub paths: Vec<String>,
    pub after: Vec<(PathBuf, Option<u64>)>,
}

impl Prepared {
    /// What the change will do, for an approval prompt: the summary in the present tense
    /// ("edit `src/main.rs`: 1 replacement (+1 −1 lines)"). The verb is the tool's name, but
    /// `write` creates or overwrites and `multi_edit` edits.
    pub fn intent(&self, tool: Tool) -> String {
        let (done, rest) = self.summary.split_once(' ').unwrap_or((&self.summary, ""));
        let verb = match (tool, done) {
            (Tool::Write, "created") => "create",
            (Tool::Write, _) => "overwrite",
            (Tool::MultiEdit, _) => Tool::Edit.name(),
            (tool, _) => tool.name(),
        };
        format!("{verb} {rest}")
    }

    pub fn diff(&self, workspace: &super::Workspace) -> String {
        self.set
            .changes
            .iter()
            .map(|c| {
                unified_diff(
                    c,
                    |p| workspace.display(p),
                    |p| {
                        let bytes = workspace.read_regular(p, &workspace.display(p));
                        String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned()
                    },
                )
            })
            .collect()
    }
}

/// The text the agent last saw of each file, by content hash, per session: a file whose
/// text changed since is not edited until it is read again.
#[derive(Debug, Default)]
pub struct Ledger {
    seen: parking_lot::Mutex<
        std::collections::HashMap<(Option<crate::lanes::SessionId>, PathBuf), u64>,
    >,
}

impl Ledger {
    /// Records that the agent of `session` has seen `text` of `path`.
    pub fn saw(&self, session: Option<&crate::lanes::SessionId>, path: &Path, text: &[u8]) {
        self.seen
            .lock()
            .insert((session.cloned(), path.to_path_buf()), hash(text));
    }

    fn check(
        &self,
        session: Option<&crate::lanes::SessionId>,
        path: &Path,
        shown: &str,
        text: &[u8],
    ) -> Result<(), ToolError> {
        match self
            .seen
            .lock()
            .get(&(session.cloned(), path.to_path_buf()))
        {
            Some(&seen) if seen != hash(text) => Err(ToolError::new(format!(
                "`{shown}` changed since you last read it (the user may have typed in it); nothing was changed — \
                 read it again, then redo the edit against what it says now"
            ))),
            _ => Ok(()),
        }
    }

    pub(super) fn record(
        &self,
        session: Option<&crate::lanes::SessionId>,
        path: PathBuf,
        after: Option<u64>,
    ) {
        let key = (session.cloned(), path);
        let mut seen = self.seen.lock();
        match after {
            Some(h) => {
                seen.insert(key, h);
            }
            None => {
                seen.remove(&key);
            }
        }
    }
}

pub(super) fn hash(text: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut hasher);
    hasher.finish()
}

/// The current text of an existing file as the user sees it, and the buffer version.
fn current_text(
    scope: &Scope<'_>,
    path: &Path,
    shown: &str,
    tool: Tool,
) -> Result<(Arc<str>, Option<i32>), ToolError> {
    if let Some(doc) = scope.documents.get(path) {
        return Ok((doc.text(), Some(doc.version)));
    }
    let (file, meta) = scope.workspace.open_regular(path, shown)?;
    if meta.len() > scope.max_bytes {
        return Err(ToolError::new(format!(
            "`{shown}` is too large for `{tool}` ({} bytes; the limit is {})",
            thousands(meta.len()),
            thousands(scope.max_bytes)
        )));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, scope.max_bytes + 1),
        &mut bytes,
    )
    .map_err(|e| ToolError::new(format!("cannot read `{shown}`: {e}")))?;
    if memchr::memchr(0, &bytes[..bytes.len().min(8192)]).is_some() {
        return Err(ToolError::new(format!(
            "`{shown}` is a binary file; `{tool}` changes text files only"
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        ToolError::new(format!("`{shown}` is not valid UTF-8; `{tool}` would corrupt it, so it changes UTF-8 files only"))
    })?;
    Ok((text.into(), None))
}

/// The smallest single edit turning `before` into `after` (common prefix and suffix kept).
fn minimal_edit(before: &str, after: &str) -> TextEdit {
    let prefix = before
        .bytes()
        .zip(after.bytes())
        .take_while(|(a, b)| a == b)
        .count();
    let mut prefix = prefix.min(before.len()).min(after.len());
    while !before.is_char_boundary(prefix) || !after.is_char_boundary(prefix) {
        prefix -= 1;
    }
    let max_suffix = (before.len() - prefix).min(after.len() - prefix);
    let mut suffix = before
        .bytes()
        .rev()
        .zip(after.bytes().rev())
        .take(max_suffix)
        .take_while(|(a, b)| a == b)
        .count();
    while !before.is_char_boundary(before.len() - suffix)
        || !after.is_char_boundary(after.len() - suffix)
    {
        suffix -= 1;
    }
    TextEdit {
        start: prefix,
        end: before.len() - suffix,
        new_text: after[prefix..after.len() - suffix].to_string(),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    memchr::memchr_iter(b'\n', &text.as_bytes()[..offset]).count() + 1
}

/// Lines added and removed, as `+3 −1`.
fn line_delta(before: &str, after: &str) -> String {
    // A new file (or one emptied) needs no diff: every line is added (or removed).
    let lines = |text: &str| text.lines().count();
    if before.is_empty() || after.is_empty() {
        return format!("+{} −{} lines", lines(after), lines(before));
    }
    let diff = crate::edits::line_diff(before, after);
    let (mut added, mut removed) = (0, 0);
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Insert => added += 1,
            similar::ChangeTag::Delete => removed += 1,
            similar::ChangeTag::Equal => {}
        }
    }
    format!("+{added} −{removed} lines")
}

pub(super) fn prepare(mutation: &Mutation, scope: &Scope<'_>) -> Result<Prepared, ToolError> {
    let ws = scope.workspace;
    match mutation {
        Mutation::Write { path, content } => {
            let target = ws.resolve_new(path)?;
            let shown = ws.display(&target);
            let exists = ws.exists(&target) || scope.documents.get(&target).is_some();
            let change = if exists {
                let (before, version) = current_text(scope, &target, &shown, Tool::Write)?;
                scope
                    .ledger
                    .check(scope.session, &target, &shown, before.as_bytes())?;
                let summary = format!("wrote `{shown}` ({})", line_delta(&before, content));
                let edit = minimal_edit(&before, content);
                (
                    Change::Edit {
                        path: target.clone(),
                        before,
                        version,
                        edits: vec![edit],
                    },
                    summary,
                )
            } else {
                let lines = content.lines().count();
                let summary = format!("created `{shown}` ({} lines)", thousands(lines as u64));
                (
                    Change::Create {
                        path: target.clone(),
                        content: content.clone(),
                        overwrite: false,
                    },
                    summary,
                )
            };
            Ok(Prepared {
                set: ChangeSet {
                    label: format!("{} {shown}", Tool::Write),
                    changes: vec![change.0],
                },
                summary: change.1,
                paths: vec![shown],
                after: vec![(target, Some(hash(content.as_bytes())))],
            })
        }
        Mutation::Edit {
            tool,
            path,
            replacements,
        } => {
            let target = ws.resolve(path)?;
            let shown = ws.display(&target);
            let (before, version) = current_text(scope, &target, &shown, *tool)?;
            scope
                .ledger
                .check(scope.session, &target, &shown, before.as_bytes())?;
            let mut text = before.to_string();
            let mut count = 0;
            for (i, r) in replacements.iter().enumerate() {
                let which = if replacements.len() > 1 {
                    format!("edit {} of {}: ", i + 1, replacements.len())
                } else {
                    String::new()
                };
                if r.old_string.is_empty() {
                    return Err(ToolError::new(format!(
                        "{which}`old_string` is empty; use `write` to create a file"
                    )));
                }
                if r.old_string == r.new_string {
                    return Err(ToolError::new(format!(
                        "{which}`old_string` and `new_string` are the same; nothing to change"
                    )));
                }
                let hits: Vec<usize> = text
                    .match_indices(&r.old_string)
                    .map(|(at, _)| at)
                    .collect();
                match hits.len() {
                    0 => {
                        return Err(ToolError::new(format!(
                            "{which}`old_string` was not found in `{shown}`; read the file again and copy the text exactly, \
                             whitespace and indentation included — nothing was changed"
                        )));
                    }
                    n if n > 1 && !r.replace_all => {
                        let lines: Vec<String> = hits
                            .iter()
                            .take(10)
                            .map(|&at| line_of(&text, at).to_string())
                            .collect();
                        return Err(ToolError::new(format!(
                            "{which}`old_string` occurs {n} times in `{shown}` (lines {}); include more of the surrounding \
                             lines to make it unique, or pass `replace_all: true` — nothing was changed",
                            lines.join(", ")
                        )));
                    }
                    n => count += n,
                }
                text = text.replace(&r.old_string, &r.new_string);
            }
            let summary = format!(
                "edited `{shown}`: {count} replacement{} ({})",
                if count == 1 { "" } else { "s" },
                line_delta(&before, &text)
            );
            let edit = minimal_edit(&before, &text);
            Ok(Prepared {
                set: ChangeSet {
                    label: format!("{tool} {shown}"),
                    changes: vec![Change::Edit {
                        path: target.clone(),
                        before,
                        version,
                        edits: vec![edit],
                    }],
                },
                summary,
                paths: vec![shown],
                after: vec![(target, Some(hash(text.as_bytes())))],
            })
        }
        Mutation::Delete { path } => {
            let target = ws.resolve(path)?;
            let shown = ws.display(&target);
            // Looked at without opening it: a FIFO is refused, never opened (that would
            // wait for a writer).
            let meta = ws
                .symlink_metadata(&target)
                .map_err(|e| ws.io_error(&target, &shown, "delete", e))?;
            if meta.is_dir() {
                return Err(ToolError::new(format!(
                    "`{shown}` is a directory; `delete` removes files only"
                )));
            }
            if !meta.is_file() && !meta.is_symlink() {
                let what = special_kind(&meta);
                return Err(ToolError::new(format!(
                    "`{shown}` is {what}; `delete` removes regular files and links only"
                )));
            }
            Ok(Prepared {
                set: ChangeSet {
                    label: format!("{} {shown}", Tool::Delete),
                    changes: vec![Change::Delete {
                        path: target.clone(),
                    }],
                },
                summary: format!("deleted `{shown}`"),
                paths: vec![shown],
                after: vec![(target, None)],
            })
        }
        Mutation::Move { from, to } | Mutation::Copy { from, to } => {
            let source = ws.resolve(from)?;
            let target = ws.resolve_new(to)?;
            let (src, dst) = (ws.display(&source), ws.display(&target));
            if ws.exists(&target) {
                return Err(ToolError::new(format!(
                    "`{dst}` already exists; choose a new path or delete it first"
                )));
            }
            let copying = matches!(mutation, Mutation::Copy { .. });
            if copying {
                let (content, _) = current_text(scope, &source, &src, Tool::Copy)?;
                return Ok(Prepared {
                    set: ChangeSet {
                        label: format!("{} {src} to {dst}", Tool::Copy),
                        changes: vec![Change::Create {
                            path: target.clone(),
                            content: content.to_string(),
                            overwrite: false,
                        }],
                    },
                    summary: format!("copied `{src}` to `{dst}`"),
                    paths: vec![src, dst],
                    after: vec![(target, Some(hash(content.as_bytes())))],
                });
            }
            let meta = ws
                .metadata(&source)
                .map_err(|e| ws.io_error(&source, &src, "move", e))?;
            require_regular(&src, &meta)?;
            Ok(Prepared {
                set: ChangeSet {
                    label: format!("{} {src} to {dst}", Tool::Move),
                    changes: vec![Change::Rename {
                        from: source.clone(),
                        to: target,
                    }],
                },
                summary: format!("moved `{src}` to `{dst}`"),
                paths: vec![src, dst],
                after: vec![(source, None)],
            })
        }
    }
}

/// Turns the applier's answer into the call's result.
pub(super) fn finish(
    tool: Tool,
    prepared: Prepared,
    outcome: ApplyOutcome,
    diff: String,
    scope_ledger: &Ledger,
    session: Option<&crate::lanes::SessionId>,
) -> Result<ChangeOutput, ToolError> {
    match outcome {
        ApplyOutcome::NotApplied { reason } => Err(ToolError::new(format!(
            "the change was not applied ({}): {reason}; read the file again before retrying",
            prepared.set.label
        ))),
        outcome => {
            if outcome == ApplyOutcome::Applied {
                for (path, after) in prepared.after {
                    scope_ledger.record(session, path, after);
                }
            }
            Ok(ChangeOutput {
                tool,
                summary: prepared.summary,
                paths: prepared.paths,
                outcome,
                diff,
                review: None,
            })
        }
    }
}

/// The reviews of a prepared change, one per file it changes, as the user is shown them.
pub(super) fn reviews(
    prepared: &Prepared,
    tool: Tool,
    call: Option<String>,
    scope: &Scope<'_>,
) -> Vec<Review> {
    // The text the user sees of a file a change replaces, deletes or moves; a file that
    // cannot be read as text is shown empty (the change is still accepted or rejected whole).
    let text_of = |path: &Path| {
        current_text(scope, path, &scope.workspace.display(path), tool)
            .map(|(text, _)| text.to_string())
            .unwrap_or_default()
    };
    prepared
        .set
        .changes
        .iter()
        .map(|change| {
            let (path, old_text, new_text) = match change {
                Change::Edit { path, before, .. } => (
                    path.clone(),
                    before.to_string(),
                    change.after().unwrap_or_default(),
                ),
                Change::Create {
                    path,
                    content,
                    overwrite,
                } => {
                    let old = if *overwrite {
                        text_of(path)
                    } else {
                        String::new()
                    };
                    (path.clone(), old, content.clone())
                }
                Change::Delete { path } => (path.clone(), text_of(path), String::new()),
                Change::Rename { from, to } => (to.clone(), String::new(), text_of(from)),
            };
            Review {
                session: scope.session.cloned(),
                call_id: call.clone(),
                tool,
                hunks: review::hunks(&old_text, &new_text),
                path,
                old_text,
                new_text,
            }
        })
        .collect()
}

/// The change as the user's reviews leave it: each file's change with only its accepted
/// hunks (a deletion, a move, a new file: whole or not at all), and what the model is told
/// when some hunks were rejected. Nothing accepted, or no answer, is an error saying so.
pub(super) fn reviewed(
    mut prepared: Prepared,
    answers: Vec<(Review, Result<Vec<usize>, String>)>,
    workspace: &super::Workspace,
) -> Result<(Prepared, Option<String>), ToolError> {
    let mut changes = Vec::new();
    let mut reports = Vec::new();
    let mut rejected = Vec::new();
    for (change, (review, answer)) in prepared.set.changes.into_iter().zip(answers) {
        let shown = workspace.display(&review.path);
        let accepted = match answer {
            Ok(accepted) => accepted,
            Err(reason) => {
                return Err(ToolError::new(format!(
                    "the change to `{shown}` was not applied: it was sent to the user for review, and no answer came                      ({reason}); it counts as rejected"
                )));
            }
        };
        let accepted: Vec<usize> = review
            .hunks
            .iter()
            .map(|h| h.index)
            .filter(|i| accepted.contains(i))
            .collect();
        if accepted.is_empty() {
            rejected.push(shown);
            prepared.after.retain(|(path, _)| *path != review.path);
            continue;
        }
        if accepted.len() == review.hunks.len() {
            changes.push(change);
            continue;
        }
        let text = review::build(&review.old_text, &review.hunks, &accepted);
        reports.push(review::report(&shown, &review.hunks, &accepted));
        for (path, after) in &mut prepared.after {
            if *path == review.path {
                *after = Some(hash(text.as_bytes()));
            }
        }
        changes.push(match change {
            Change::Edit {
                path,
                before,
                version,
                ..
            } => {
                let edit = minimal_edit(&before, &text);
                Change::Edit {
                    path,
                    before,
                    version,
                    edits: vec![edit],
                }
            }
            Change::Create {
                path, overwrite, ..
            } => Change::Create {
                path,
                content: text,
                overwrite,
            },
            whole => whole,
        });
    }
    if changes.is_empty() {
        return Err(ToolError::new(format!(
            "the user rejected the change to {}; nothing was changed — do not make it again unless the user asks",
            rejected
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let mut report = reports;
    if !rejected.is_empty() {
        report.push(format!(
            "The user rejected the change to {}; it was not made.",
            rejected
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    prepared.set.changes = changes;
    Ok((prepared, (!report.is_empty()).then(|| report.join("\n"))))
}

/// Lets `Args` read an array (only `multi_edit` takes one).
impl<'a> Args<'a> {
    /// A required array.
    pub fn array(&self, key: &str) -> Result<&'a Vec<Value>, ToolError> {
        match self.raw(key) {
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(ToolError::new(format!("`{key}` must be an array"))),
            None => Err(ToolError::new(format!("`{key}` is required (an array)"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_minimal_edit_keeps_common_ends_on_char_boundaries() {
        let e = minimal_edit("let a = 1;\n", "let a = 2;\n");
        assert_eq!((e.start, e.end, e.new_text.as_str()), (8, 9, "2"));
        let e = minimal_edit("héllo", "hèllo");
        assert_eq!(&"héllo"[..e.start], "h");
        assert_eq!(crate::edits::apply_text_edits("héllo", &[e]), "hèllo");
        let e = minimal_edit("same", "same");
        assert_eq!((e.start, e.end, e.new_text.as_str()), (4, 4, ""));
        let e = minimal_edit("aaa", "aaaa");
        assert_eq!(crate::edits::apply_text_edits("aaa", &[e]), "aaaa");
    }
}
