//! Walking a directory the way ripgrep does — `.gitignore`, `.ignore`, `.rgignore` and
//! hidden files respected by default — in a deterministic order (by name, depth first).
//!
//! The walk is sequential on the calling pool thread: DESIGN.md forbids nesting
//! `build_parallel()` walkers (threads of their own) inside the shared rayon pool. Tools
//! that do heavy work per file (grep, analysis) spread that work over the pool instead.

use std::path::Path;

use ignore::overrides::Override;
use ignore::types::Types;
use ignore::{Walk, WalkBuilder};

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
        let mut builder = WalkBuilder::new(root);
        builder
            .hidden(!self.include_hidden)
            .ignore(!self.include_ignored)
            .git_ignore(!self.include_ignored)
            .git_global(!self.include_ignored)
            .git_exclude(!self.include_ignored)
            .parents(!self.include_ignored)
            .add_custom_ignore_filename(".rgignore")
            .max_depth(self.max_depth)
            .sort_by_file_name(|a, b| a.cmp(b));
        if self.include_ignored {
            builder.standard_filters(false).hidden(!self.include_hidden);
        }
        if let Some(overrides) = &self.overrides {
            builder.overrides(overrides.clone());
        }
        if let Some(types) = &self.types {
            builder.types(types.clone());
        }
        builder.build()
    }
}
