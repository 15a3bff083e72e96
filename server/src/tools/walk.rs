//! Walking a directory the way ripgrep does — `.gitignore`, `.ignore`, `.rgignore` and
//! hidden files respected by default — in a deterministic order (by name, depth first).
//!
//! The design (docs/architecture.md) forbids nesting `build_parallel()` walkers (threads of their own) inside the
//! shared rayon pool, and `ignore` offers no other way to share one walk between threads.
//! So a tree is walked in parallel the way this module does it: [`WalkOptions::split`]
//! cuts it into ordered *units* at the first depth with enough directories, and each of a
//! few sequential walkers — jobs on the pool — walks the whole tree from its root but
//! prunes the units that belong to the others ([`WalkOptions::walk_part`]). Every walker
//! is a real single walk from the root, so ignore files (the root's ancestors' included)
//! apply exactly as in one sequential walk, and are read once per walker rather than once
//! per subtree. Sorting what the walkers found by `Path` gives the sequential walk's
//! order; and because units are in path order, a search can stop at a limit once a prefix
//! of units is complete and still return the same results every time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use ignore::overrides::Override;
use ignore::types::Types;
use ignore::{DirEntry, Walk, WalkBuilder};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// Split until one depth has this many directories per walker, or this deep.
const UNITS_PER_PART: usize = 16;
const MAX_SPLIT_DEPTH: usize = 4;

/// A tree cut into units for walkers that share it out.
#[derive(Debug, Clone)]
pub struct Split {
    /// The units in path order: every directory at `depth`, and every file (or other
    /// non-directory) at or above it.
    pub units: Vec<PathBuf>,
    index: Arc<HashMap<PathBuf, usize>>,
    /// The depth of the directory units (≥ 1).
    depth: usize,
}

/// The key that orders paths as a walk sorted by name visits them (component by
/// component) with a plain byte comparison: `/` becomes the lowest byte, so `a/b` sorts
/// before `a.b` as the component `a` does. (A Unix path never holds a NUL byte.)
pub fn tree_key(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str()
        .as_bytes()
        .iter()
        .map(|&b| if b == b'/' { 0 } else { b })
        .collect()
}

/// Sorts paths in the order of a walk sorted by name.
pub fn sort_as_walked(paths: &mut [PathBuf]) {
    paths.sort_by_cached_key(|p| tree_key(p));
}

/// How many walkers to share a tree among on the current pool.
pub fn parts() -> usize {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    rayon::current_num_threads().min(cores).max(1)
}

/// What a walk includes.
#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    /// Include hidden files and directories (names starting with `.`).
    pub include_hidden: bool,
    /// Include what ignore files exclude.
    pub include_ignored: bool,
    /// Descend at most this deep (1 = the root's entries).
    pub max_depth: Option<usize>,
    /// Whitelist/blacklist globs (`grep`'s `glob`), which win over ignore files as in ripgrep.
    pub overrides: Option<Override>,
    /// File-type filters (`grep`'s `type`).
    pub types: Option<Types>,
}

impl WalkOptions {
    /// A walk of `root` with these options, sorted by file name at each level.
    pub fn walk(&self, root: &Path) -> Walk {
        self.builder(root, self.max_depth)
            .sort_by_file_name(|a, b| a.cmp(b))
            .build()
    }

    /// Walks `root` on the current rayon pool, calling `visit` (from any pool thread, in no
    /// particular order) for every entry below the root; sort what it collects with
    /// [`sort_as_walked`] for the sequential walk's order. Returns the walk's errors (an unreadable directory),
    /// the walk going on past them. Stops early when `token` is cancelled.
    pub fn walk_parallel(
        &self,
        root: &Path,
        token: &CancellationToken,
        visit: impl Fn(DirEntry) + Sync,
    ) -> Vec<String> {
        let errors = Mutex::new(Vec::new());
        let parts = parts();
        let split = self.split(root, parts, token);
        let unlimited = AtomicUsize::new(usize::MAX);
        rayon::scope(|scope| {
            for part in 0..parts {
                let (split, errors, visit, unlimited) = (&split, &errors, &visit, &unlimited);
                scope.spawn(move |_| {
                    let found = self.walk_part(
                        root,
                        split,
                        part,
                        parts,
                        unlimited,
                        token,
                        |e, _| visit(e),
                        |_| {},
                    );
                    errors.lock().extend(found);
                });
            }
        });
        errors.into_inner()
    }

    /// Cuts the tree under `root` into units for `parts` walkers: the first depth with
    /// enough directories (or the deepest the split goes) becomes the depth of the units.
    /// Found by walks from the root itself, so it sees exactly what a walk sees.
    pub fn split(&self, root: &Path, parts: usize, token: &CancellationToken) -> Split {
        let wanted = parts * UNITS_PER_PART;
        let deepest = self
            .max_depth
            .map_or(MAX_SPLIT_DEPTH, |max| max.clamp(1, MAX_SPLIT_DEPTH));
        let mut depth = 1;
        let mut entries: Vec<(PathBuf, usize, bool)> = Vec::new();
        loop {
            entries.clear();
            for entry in self.builder(root, Some(depth)).build().flatten() {
                if token.is_cancelled() {
                    break;
                }
                let d = entry.depth();
                if d > 0 {
                    let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
                    entries.push((entry.into_path(), d, is_dir));
                }
            }
            let dirs_here = entries
                .iter()
                .filter(|(_, d, is_dir)| *d == depth && *is_dir)
                .count();
            if dirs_here >= wanted || dirs_here == 0 || depth >= deepest || token.is_cancelled() {
                break;
            }
            depth += 1;
        }
        let mut units: Vec<PathBuf> = entries
            .into_iter()
            .filter(|(_, d, is_dir)| !is_dir || *d == depth)
            .map(|(path, _, _)| path)
            .collect();
        sort_as_walked(&mut units);
        let index = units
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), i))
            .collect();
        Split {
            units,
            index: Arc::new(index),
            depth,
        }
    }

    /// Walks the share `part` of `parts` of a split tree: the whole tree from `root`, in no
    /// particular order within a unit, skipping the units of other parts and every unit at
    /// or past `stop` (which may drop while the walk runs). `visit` gets each entry with
    /// its unit (`None` for the directories above the units, which part 0 reports);
    /// `unit_done` is called when the walk has left a unit. Returns the walk's errors.
    #[allow(clippy::too_many_arguments)]
    pub fn walk_part(
        &self,
        root: &Path,
        split: &Split,
        part: usize,
        parts: usize,
        stop: &AtomicUsize,
        token: &CancellationToken,
        mut visit: impl FnMut(DirEntry, Option<usize>),
        mut unit_done: impl FnMut(usize),
    ) -> Vec<String> {
        let depth = split.depth;
        // Unsorted: the order within a unit is the caller's to restore (sorting every
        // directory's entries costs more than sorting what was found once).
        let mut builder = self.builder(root, self.max_depth);
        let index = Arc::clone(&split.index);
        let stop_now = Arc::new(AtomicUsize::new(stop.load(Ordering::Acquire)));
        let stop_seen = Arc::clone(&stop_now);
        builder.filter_entry(move |e| {
            let d = e.depth();
            if d == 0 || d > depth || (d < depth && e.file_type().is_some_and(|t| t.is_dir())) {
                return true;
            }
            match index.get(e.path()) {
                Some(&unit) => unit % parts == part && unit < stop_seen.load(Ordering::Acquire),
                // Appeared after the split: one walker takes it.
                None => part == 0,
            }
        });
        let mut errors = Vec::new();
        let mut current: Option<usize> = None;
        for (n, entry) in builder.build().enumerate() {
            if n % 64 == 0 {
                if token.is_cancelled() {
                    break;
                }
                stop_now.store(stop.load(Ordering::Acquire), Ordering::Release);
            }
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            };
            let d = entry.depth();
            if d == 0 {
                continue;
            }
            if d <= depth {
                if let Some(unit) = current.take() {
                    unit_done(unit);
                }
                if d < depth && entry.file_type().is_some_and(|t| t.is_dir()) {
                    if part == 0 {
                        visit(entry, None);
                    }
                    continue;
                }
                current = split.index.get(entry.path()).copied();
            }
            if current.is_some_and(|unit| unit >= stop.load(Ordering::Acquire)) {
                continue;
            }
            visit(entry, current);
        }
        if let Some(unit) = current {
            unit_done(unit);
        }
        errors
    }

    fn builder(&self, root: &Path, max_depth: Option<usize>) -> WalkBuilder {
        let mut builder = WalkBuilder::new(root);
        builder
            .hidden(!self.include_hidden)
            .ignore(!self.include_ignored)
            .git_ignore(!self.include_ignored)
            .git_global(!self.include_ignored)
            .git_exclude(!self.include_ignored)
            .parents(!self.include_ignored)
            .add_custom_ignore_filename(".rgignore")
            .max_depth(max_depth);
        if self.include_ignored {
            builder.standard_filters(false).hidden(!self.include_hidden);
        }
        if let Some(overrides) = &self.overrides {
            builder.overrides(overrides.clone());
        }
        if let Some(types) = &self.types {
            builder.types(types.clone());
        }
        builder
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_key_orders_by_components() {
        let mut paths: Vec<PathBuf> = [
            "a.b", "a/b", "a/b/c", "a-b", "a", "ab", "a/a", "b", "a/b.c", "a/b/a",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let mut by_components = paths.clone();
        by_components.sort();
        sort_as_walked(&mut paths);
        assert_eq!(paths, by_components);
    }
}
