//! Walking a directory the way ripgrep does — `.gitignore`, `.ignore`, `.rgignore` and
//! hidden files respected by default — in a deterministic order (by name, depth first).
//!
//! DESIGN.md forbids nesting `build_parallel()` walkers (threads of their own) inside the
//! shared rayon pool. So [`WalkOptions::walk`] is sequential, for tools that spread their
//! per-file work over the pool themselves (grep), and [`WalkOptions::walk_parallel`] splits
//! the tree into subtrees walked as jobs *on the pool* — each a sequential walk whose root
//! still honours its ancestors' ignore files — for tools whose work is the walk (glob, ls).

use std::path::{Path, PathBuf};

use ignore::overrides::Override;
use ignore::types::Types;
use ignore::{DirEntry, Walk, WalkBuilder};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

/// Split the tree until there are this many subtrees per pool thread, or this deep.
const SUBTREES_PER_THREAD: usize = 4;
const MAX_SPLIT_DEPTH: usize = 4;

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
    /// particular order) for every entry below the root; sort what it collects by `Path`
    /// for the sequential walk's order. Returns the walk's errors (an unreadable directory),
    /// the walk going on past them. Stops early when `token` is cancelled.
    pub fn walk_parallel(
        &self,
        root: &Path,
        token: &CancellationToken,
        visit: impl Fn(DirEntry) + Sync,
    ) -> Vec<String> {
        let errors = Mutex::new(Vec::new());
        let threads = rayon::current_num_threads()
            .min(std::thread::available_parallelism().map_or(2, usize::from));
        let wanted = threads * SUBTREES_PER_THREAD;
        // Breadth first, a level at a time, until there are enough subtrees to share out.
        let mut frontier = vec![root.to_path_buf()];
        let mut depth = 0;
        while frontier.len() < wanted
            && depth < MAX_SPLIT_DEPTH
            && self.max_depth.is_none_or(|max| depth < max)
        {
            if token.is_cancelled() {
                return errors.into_inner();
            }
            let mut next = Vec::new();
            for dir in &frontier {
                for entry in self.builder(dir, Some(1)).build() {
                    match entry {
                        Ok(entry) if entry.depth() == 0 => {}
                        Ok(entry) if entry.file_type().is_some_and(|t| t.is_dir()) => {
                            next.push(entry.path().to_path_buf());
                            visit(entry);
                        }
                        Ok(entry) => visit(entry),
                        Err(e) => errors.lock().push(e.to_string()),
                    }
                }
            }
            frontier = next;
            depth += 1;
        }
        let remaining = self.max_depth.map(|max| max.saturating_sub(depth));
        if remaining == Some(0) {
            return errors.into_inner();
        }
        let subtree = |dir: &PathBuf| {
            for (n, entry) in self.builder(dir, remaining).build().enumerate() {
                if n % 256 == 0 && token.is_cancelled() {
                    return;
                }
                match entry {
                    Ok(entry) if entry.depth() == 0 => {}
                    Ok(entry) => visit(entry),
                    Err(e) => errors.lock().push(e.to_string()),
                }
            }
        };
        rayon::scope(|scope| {
            for dir in &frontier {
                scope.spawn(|_| subtree(dir));
            }
        });
        errors.into_inner()
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
