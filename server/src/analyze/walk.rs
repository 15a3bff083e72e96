//! The analysis walk: the files the tools would see (ripgrep's ignore rules, through
//! [`WalkOptions::walk_parallel`] on the shared pool), and what those rules skipped.
//!
//! The walk does not say what it leaves out, so every directory the walk entered is listed
//! once more (through the workspace's handle) and its entries compared with what the walk
//! yielded: an entry the walk did not yield was skipped, as hidden (its name starts with a
//! `.`) or as ignored (an ignore file names it). A skipped directory is counted once, by
//! name, and never entered — a `target/` of a million files costs one directory entry.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::tools::{EntryKind, WalkOptions, Workspace};

/// Most skipped directories listed by name (of each kind); the counts stay exact.
const MAX_NAMED_DIRS: usize = 50;
/// Most walk errors kept.
const MAX_ERRORS: usize = 50;

/// What the walk leaves out, and why.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Skipped {
    /// Files an ignore file (`.gitignore`, `.ignore`, `.rgignore`) excludes.
    pub ignored_files: u64,
    /// Directories an ignore file excludes (not entered, so their contents are not counted).
    pub ignored_dirs: u64,
    /// The ignored directories, as `path/` relative to the root, sorted; at most 50.
    pub ignored_dir_names: Vec<String>,
    /// Hidden files (names starting with `.`).
    pub hidden_files: u64,
    /// Hidden directories (not entered).
    pub hidden_dirs: u64,
    /// The hidden directories, as `path/`, sorted; at most 50.
    pub hidden_dir_names: Vec<String>,
    /// Symbolic links, which the walk does not follow.
    pub symlinks: u64,
}

/// The files to analyze, relative to the root and sorted, with what the walk skipped.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Listing {
    /// The root, canonical.
    pub root: PathBuf,
    /// Regular files, relative to the root, sorted by path.
    pub files: Vec<PathBuf>,
    /// What the ignore rules and the hidden-file rule left out.
    pub skipped: Skipped,
    /// Directories that could not be read, the walk going on past them.
    pub errors: Vec<String>,
}

/// Walks `root` (a directory of `workspace`) on the current rayon pool, through the
/// workspace's handles. Returns `None` when `token` is cancelled before the walk is over.
pub(crate) fn list(
    workspace: &Workspace,
    root: &Path,
    token: &CancellationToken,
) -> Option<Listing> {
    let visited = Mutex::new(Vec::new());
    let mut errors = WalkOptions::default().walk_parallel(workspace, root, token, |entry| {
        let kind = match entry.kind() {
            EntryKind::Dir => Kind::Dir,
            EntryKind::File => Kind::File,
            EntryKind::Symlink => Kind::Symlink,
            EntryKind::Other => Kind::Other,
        };
        visited.lock().push((entry.into_path(), kind));
    });
    if token.is_cancelled() {
        return None;
    }
    let visited = visited.into_inner();

    // What the walk yielded, by directory.
    let mut yielded: HashMap<&Path, HashSet<&std::ffi::OsStr>> = HashMap::new();
    let mut dirs = vec![root];
    let mut files = Vec::new();
    let mut skipped = Skipped::default();
    for (path, kind) in &visited {
        if let (Some(parent), Some(name)) = (path.parent(), path.file_name()) {
            yielded.entry(parent).or_default().insert(name);
        }
        match kind {
            Kind::Dir => dirs.push(path),
            Kind::File => {
                if let Ok(relative) = path.strip_prefix(root) {
                    files.push(relative.to_path_buf());
                }
            }
            Kind::Symlink => skipped.symlinks += 1,
            Kind::Other => {}
        }
    }
    files.par_sort_unstable();

    // Every entered directory listed again; what the walk did not yield was skipped.
    let empty = HashSet::new();
    let found: Vec<LeftOut> = dirs
        .par_iter()
        .map(|dir| {
            if token.is_cancelled() {
                return (Vec::new(), None);
            }
            let seen = yielded.get(*dir).unwrap_or(&empty);
            let entries = match workspace.open_dir(dir).and_then(|d| d.entries()) {
                Ok(entries) => entries,
                // The walk reported it already.
                Err(_) => return (Vec::new(), None),
            };
            let mut left_out = Vec::new();
            for entry in entries {
                match entry {
                    Ok(entry) if !seen.contains(entry.file_name().as_os_str()) => {
                        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
                        left_out.push((entry.file_name(), is_dir));
                    }
                    Ok(_) => {}
                    Err(e) => return (left_out, Some(format!("{}: {e}", dir.display()))),
                }
            }
            (left_out, None)
        })
        .collect();
    if token.is_cancelled() {
        return None;
    }
    let mut ignored_dirs = Vec::new();
    let mut hidden_dirs = Vec::new();
    for (dir, (left_out, error)) in dirs.iter().zip(found) {
        errors.extend(error);
        for (name, is_dir) in left_out {
            let hidden = name.as_encoded_bytes().starts_with(b".");
            match (hidden, is_dir) {
                (true, true) => hidden_dirs.push(dir.join(&name)),
                (true, false) => skipped.hidden_files += 1,
                (false, true) => ignored_dirs.push(dir.join(&name)),
                (false, false) => skipped.ignored_files += 1,
            }
        }
    }
    skipped.ignored_dirs = ignored_dirs.len() as u64;
    skipped.hidden_dirs = hidden_dirs.len() as u64;
    skipped.ignored_dir_names = dir_names(root, ignored_dirs);
    skipped.hidden_dir_names = dir_names(root, hidden_dirs);
    errors.truncate(MAX_ERRORS);
    Some(Listing {
        root: root.to_path_buf(),
        files,
        skipped,
        errors,
    })
}

/// The entries of one directory the walk did not yield (name, whether a directory), and
/// the error that cut its listing short.
type LeftOut = (Vec<(OsString, bool)>, Option<String>);

#[derive(Clone, Copy)]
enum Kind {
    Dir,
    File,
    Symlink,
    Other,
}

/// `a/b/` names relative to `root`, sorted, the first [`MAX_NAMED_DIRS`].
fn dir_names(root: &Path, mut dirs: Vec<PathBuf>) -> Vec<String> {
    dirs.sort_unstable();
    dirs.iter()
        .take(MAX_NAMED_DIRS)
        .map(|dir| {
            let relative = dir.strip_prefix(root).unwrap_or(dir);
            format!("{}/", relative.display())
        })
        .collect()
}
