//! `glob {pattern, path?, include_ignored?, include_hidden?, limit?}`: the files whose path
//! matches a glob (globset syntax), walking like ripgrep (ignore files and hidden files
//! respected by default), in a deterministic order.
//!
//! A pattern without `/` matches file names at any depth (`*.rs`); one with `/` matches the
//! path below the search directory, where `*` stays within one directory and `**` crosses
//! any number (`src/**/*.rs`).

use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};
use parking_lot::Mutex;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Args, Env, ToolError, WalkOptions, push_capped, thousands};

/// `glob`'s arguments.
#[derive(Debug, Clone)]
pub struct GlobArgs {
    /// The glob.
    pub pattern: String,
    /// Where to search.
    pub path: Option<String>,
    /// Include ignored files.
    pub include_ignored: bool,
    /// Include hidden files.
    pub include_hidden: bool,
    /// Most paths returned.
    pub limit: Option<u64>,
}

impl GlobArgs {
    pub(super) fn parse(args: &Args<'_>) -> Result<GlobArgs, ToolError> {
        args.only(&[
            "pattern",
            "path",
            "include_ignored",
            "include_hidden",
            "limit",
        ])?;
        Ok(GlobArgs {
            pattern: args.string("pattern")?.to_string(),
            path: args.opt_string("path")?.map(str::to_string),
            include_ignored: args.flag("include_ignored", false)?,
            include_hidden: args.flag("include_hidden", false)?,
            limit: args.opt_positive("limit")?,
        })
    }
}

/// The matching files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GlobOutput {
    /// The glob.
    pub pattern: String,
    /// Matching files (up to the limit), relative to the workspace root, in walk order.
    pub paths: Vec<String>,
    /// How many files matched in all.
    pub total: u64,
    /// Walk errors (an unreadable directory), reported while the walk went on.
    pub errors: Vec<String>,
}

impl GlobOutput {
    /// The text rendering, cut at about `cap` bytes (0: no cap) with a note saying so.
    pub fn render_capped(&self, cap: usize) -> String {
        let mut out = String::new();
        let mut shown = 0;
        for path in &self.paths {
            if !push_capped(&mut out, path, cap) {
                break;
            }
            shown += 1;
        }
        let total = self.total;
        if total == 0 {
            out.push_str(&format!("(no files match `{}`)\n", self.pattern));
        } else if shown as u64 == total {
            out.push_str(&format!(
                "({} file{} match `{}`)\n",
                thousands(total),
                plural(total),
                self.pattern
            ));
        } else {
            out.push_str(&format!(
                "({} of {} matching files shown; narrow the pattern or pass `path`)\n",
                thousands(shown as u64),
                thousands(total)
            ));
        }
        for error in &self.errors {
            out.push_str(&format!("(skipped: {error})\n"));
        }
        out
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

pub(super) fn run(args: &GlobArgs, env: &Env<'_>) -> Result<GlobOutput, ToolError> {
    let plan = Plan::new(args, env.workspace, env.config)?;
    let found = Mutex::new(Vec::new());
    let errors =
        plan.options
            .walk_parallel(env.workspace, &plan.start, env.task.token(), |entry| {
                if plan.wants(&entry) {
                    found.lock().push(entry.into_path());
                }
            });
    env.task
        .checkpoint()
        .map_err(|e| ToolError::new(e.message))?;
    Ok(plan.finish(env.workspace, found.into_inner(), errors))
}

/// A glob ready to walk: its matcher, where its walk starts and what it includes.
pub(super) struct Plan<'a> {
    args: &'a GlobArgs,
    matcher: GlobMatcher,
    by_name: bool,
    base: PathBuf,
    /// Where the walk starts: the base, or the pattern's literal directories below it.
    pub(super) start: PathBuf,
    pub(super) options: WalkOptions,
    limit: usize,
}

impl<'a> Plan<'a> {
    /// Checks the arguments and compiles the pattern.
    pub(super) fn new(
        args: &'a GlobArgs,
        workspace: &super::Workspace,
        config: &super::ToolsConfig,
    ) -> Result<Plan<'a>, ToolError> {
        let base = workspace.resolve(args.path.as_deref().unwrap_or("."))?;
        if !workspace.metadata(&base).is_ok_and(|m| m.is_dir()) {
            return Err(ToolError::new(format!(
                "`path` must be a directory, and `{}` is not",
                workspace.display(&base)
            )));
        }
        let by_name = !args.pattern.contains('/');
        let pattern = args.pattern.strip_prefix("./").unwrap_or(&args.pattern);
        let matcher = GlobBuilder::new(pattern)
            .literal_separator(!by_name)
            .backslash_escape(true)
            .build()
            .map_err(|e| ToolError::new(format!("invalid glob `{}`: {}", args.pattern, e.kind())))?
            .compile_matcher();
        // Walk only below the pattern's literal directory prefix (`src/` of `src/**/*.rs`).
        let start = if by_name {
            base.clone()
        } else {
            literal_prefix(workspace, &base, pattern)
        };
        let options = WalkOptions {
            include_hidden: args.include_hidden,
            include_ignored: args.include_ignored,
            ..WalkOptions::default()
        };
        let limit = args.limit.unwrap_or(config.glob_default_limit as u64) as usize;
        Ok(Plan {
            args,
            matcher,
            by_name,
            base,
            start,
            options,
            limit,
        })
    }

    /// Whether the walk's entry is a file the pattern matches.
    pub(super) fn wants(&self, entry: &super::walk::Entry) -> bool {
        entry.is_file() && self.matches(entry.path())
    }

    /// Whether the file at `path` matches.
    pub(super) fn matches(&self, path: &Path) -> bool {
        matches(&self.matcher, self.by_name, &self.base, path)
    }

    /// The output for the files the walk found (in any order) and its errors.
    pub(super) fn finish(
        &self,
        workspace: &super::Workspace,
        found: Vec<PathBuf>,
        errors: Vec<String>,
    ) -> GlobOutput {
        // On the pool the walk ran on, the other walkers idle by now: keying, sorting and
        // showing ten thousand paths one after another took as long as the walk itself.
        let total = found.len() as u64;
        let mut keyed: Vec<(Vec<u8>, PathBuf)> = found
            .into_par_iter()
            .map(|p| (super::walk::tree_key(&p), p))
            .collect();
        keyed.par_sort_unstable_by(|a, b| a.0.cmp(&b.0));
        keyed.truncate(self.limit);
        let paths = keyed
            .par_iter()
            .map(|(_, p)| workspace.display(p))
            .collect();
        GlobOutput {
            pattern: self.args.pattern.clone(),
            paths,
            total,
            errors,
        }
    }
}

fn matches(matcher: &GlobMatcher, by_name: bool, base: &Path, path: &Path) -> bool {
    if by_name {
        path.file_name().is_some_and(|name| matcher.is_match(name))
    } else {
        path.strip_prefix(base)
            .is_ok_and(|rel| matcher.is_match(rel))
    }
}

/// The longest leading run of the pattern's directories without glob syntax, as a
/// directory under `base` that exists.
fn literal_prefix(workspace: &super::Workspace, base: &Path, pattern: &str) -> PathBuf {
    let mut dir = base.to_path_buf();
    let parts: Vec<&str> = pattern.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        if part.is_empty() || part.contains(['*', '?', '[', ']', '{', '}', '\\']) || *part == ".." {
            break;
        }
        let next = dir.join(part);
        if !workspace.metadata(&next).is_ok_and(|m| m.is_dir()) {
            break;
        }
        dir = next;
    }
    dir
}
