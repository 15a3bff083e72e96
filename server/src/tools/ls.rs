//! `ls {path?, depth?, include_ignored?, include_hidden?, limit?}`: a directory's entries
//! with kind and size, directories first at every level, respecting ignore files.

use std::ffi::OsStr;
use std::path::{Component, PathBuf};

use parking_lot::Mutex;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::{Args, Env, ToolError, WalkOptions, push_capped, thousands};

/// `ls`'s arguments.
#[derive(Debug, Clone)]
pub struct LsArgs {
    /// The directory.
    pub path: Option<String>,
    /// Levels to list.
    pub depth: Option<u64>,
    /// Include ignored entries.
    pub include_ignored: bool,
    /// Include hidden entries.
    pub include_hidden: bool,
    /// Most entries.
    pub limit: Option<u64>,
}

impl LsArgs {
    pub(super) fn parse(args: &Args<'_>) -> Result<LsArgs, ToolError> {
        args.only(&[
            "path",
            "depth",
            "include_ignored",
            "include_hidden",
            "limit",
        ])?;
        Ok(LsArgs {
            path: args.opt_string("path")?.map(str::to_string),
            depth: args.opt_positive("depth")?,
            include_ignored: args.flag("include_ignored", false)?,
            include_hidden: args.flag("include_hidden", false)?,
            limit: args.opt_positive("limit")?,
        })
    }
}

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (not followed).
    Symlink,
    /// A FIFO, socket or device.
    Other,
}

/// One listed entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LsEntry {
    /// Relative to the workspace root.
    pub path: String,
    /// Its kind.
    pub kind: EntryKind,
    /// Size in bytes, for files.
    pub size: Option<u64>,
    /// Where a symlink points.
    pub target: Option<String>,
    /// 1 for the directory's own entries.
    pub depth: u32,
}

/// The listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LsOutput {
    /// The directory listed, relative to the workspace root.
    pub path: String,
    /// Entries (up to the limit), directories first at each level.
    pub entries: Vec<LsEntry>,
    /// How many entries there were in all.
    pub total: u64,
    /// Walk errors, reported while the walk went on.
    pub errors: Vec<String>,
}

impl LsOutput {
    /// The text rendering, cut at about `cap` bytes (0: no cap) with a note saying so.
    pub fn render_capped(&self, cap: usize) -> String {
        let mut out = String::new();
        let mut shown = 0u64;
        for entry in &self.entries {
            let name = entry.path.rsplit('/').next().unwrap_or(&entry.path);
            let indent = "  ".repeat(entry.depth.saturating_sub(1) as usize);
            let line = match entry.kind {
                EntryKind::Dir => format!("{indent}{name}/"),
                EntryKind::File => {
                    format!("{indent}{name}  {}", human_size(entry.size.unwrap_or(0)))
                }
                EntryKind::Symlink => format!(
                    "{indent}{name} -> {}",
                    entry.target.as_deref().unwrap_or("?")
                ),
                EntryKind::Other => format!("{indent}{name}  (special file)"),
            };
            if !push_capped(&mut out, &line, cap) {
                break;
            }
            shown += 1;
        }
        if self.total == 0 {
            out.push_str(&format!("(`{}` is empty)\n", self.path));
        } else if shown < self.total {
            out.push_str(&format!(
                "({} of {} entries shown; list a subdirectory or lower `depth`)\n",
                thousands(shown),
                thousands(self.total)
            ));
        }
        for error in &self.errors {
            out.push_str(&format!("(skipped: {error})\n"));
        }
        out
    }
}

fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    for unit in UNITS {
        if value < 1024.0 {
            return format!("{value:.1} {unit}");
        }
        value /= 1024.0;
    }
    format!("{value:.1} PiB")
}

struct Found {
    path: PathBuf,
    kind: EntryKind,
    depth: u32,
    size: Option<u64>,
    target: Option<String>,
}

pub(super) fn run(args: &LsArgs, env: &Env<'_>) -> Result<LsOutput, ToolError> {
    let dir = env.workspace.resolve(args.path.as_deref().unwrap_or("."))?;
    let shown = env.workspace.display(&dir);
    if !env.workspace.metadata(&dir).is_ok_and(|m| m.is_dir()) {
        return Err(ToolError::new(format!(
            "`{shown}` is not a directory; use `read` for files"
        )));
    }
    let depth = args.depth.unwrap_or(1) as usize;
    let options = WalkOptions {
        include_hidden: args.include_hidden,
        include_ignored: args.include_ignored,
        max_depth: Some(depth),
        ..WalkOptions::default()
    };
    let found = Mutex::new(Vec::new());
    let errors = options.walk_parallel(env.workspace, &dir, env.task.token(), |entry| {
        let kind = entry.kind();
        found.lock().push(Found {
            path: entry.into_path(),
            kind,
            depth: 0,
            size: None,
            target: None,
        });
    });
    env.task
        .checkpoint()
        .map_err(|e| ToolError::new(e.message))?;
    let mut found = found.into_inner();
    // Sizes and link targets take a system call each: spread them over the pool.
    found.par_iter_mut().for_each(|f| match f.kind {
        EntryKind::File => f.size = env.workspace.metadata(&f.path).ok().map(|m| m.len()),
        EntryKind::Symlink => {
            f.target = env
                .workspace
                .read_link(&f.path)
                .ok()
                .map(|t| super::names::escape(t.as_os_str()).into_owned())
        }
        _ => {}
    });
    for f in &mut found {
        f.depth = f
            .path
            .strip_prefix(&dir)
            .map_or(1, |rel| rel.components().count() as u32);
    }
    found.sort_by_cached_key(dirs_first_key);
    let total = found.len() as u64;
    let limit = args.limit.unwrap_or(env.config.ls_default_limit as u64) as usize;
    let entries = found
        .into_iter()
        .take(limit)
        .map(|f| LsEntry {
            path: env.workspace.display(&f.path),
            kind: f.kind,
            size: f.size,
            target: f.target,
            depth: f.depth,
        })
        .collect();
    Ok(LsOutput {
        path: shown,
        entries,
        total,
        errors,
    })
}

/// The key that orders a tree with directories before files at every level, then by
/// name, as plain bytes: per component a kind byte (1 directory, 2 file), the name, and a
/// NUL that ends it (so `a` sorts before `ab`).
fn dirs_first_key(found: &Found) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    let names: Vec<&OsStr> = found
        .path
        .components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name),
            _ => None,
        })
        .collect();
    let last = names.len().saturating_sub(1);
    let mut key = Vec::with_capacity(found.path.as_os_str().len() + 2 * names.len());
    for (i, name) in names.into_iter().enumerate() {
        key.push(if i == last && found.kind != EntryKind::Dir {
            2
        } else {
            1
        });
        key.extend_from_slice(name.as_bytes());
        key.push(0);
    }
    key
}
