//! Project instructions: `AGENTS.md` files, read for every request so an edit takes effect
//! on the next prompt. The user's own (`~/.config/switchyard/AGENTS.md`) comes first, then
//! the workspace root's, then each one in the folders from the root down to the open file's
//! folder: the nearer one is later in the prompt and applies on top, as Codex does.
//!
//! They are text for the model and nothing more: they are instructions from the repository,
//! as untrusted as its code, and never change approvals, trust or any setting. Files inside
//! the workspace are read beneath its handle; the whole is capped at [`MAX_BYTES`], and a
//! file cut short says so.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::tools::Workspace;

/// The file name looked for.
pub const FILE_NAME: &str = "AGENTS.md";

/// The most bytes of instructions put in the prompt, over every file (Codex's default).
pub const MAX_BYTES: usize = 32 * 1024;

/// One instructions file as it goes into the prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instructions {
    /// Where it is, as shown to the model: relative to the workspace root, or the user's
    /// file's full path.
    pub shown: String,
    /// Its text, cut to what the cap left.
    pub text: String,
    /// Whether the text was cut.
    pub cut: bool,
}

/// The instructions files in force for a request with `open_file` open (none when the
/// files do not exist). `user_file` is the user's own, when there is a configuration folder.
pub fn load(
    workspace: &Workspace,
    open_file: Option<&Path>,
    user_file: Option<&Path>,
) -> Vec<Instructions> {
    let mut budget = MAX_BYTES;
    let mut found = Vec::new();
    if let Some(path) = user_file
        && let Ok(file) = std::fs::File::open(path)
        && file.metadata().is_ok_and(|m| m.is_file())
        && let Some(doc) = take(file, path.display().to_string(), &mut budget)
    {
        found.push(doc);
    }
    for dir in folders(workspace, open_file) {
        let path = dir.join(FILE_NAME);
        let shown = workspace.display(&path);
        // A missing file, a link out of the workspace or a FIFO is no instructions.
        let Ok((file, _)) = workspace.open_regular(&path, &shown) else {
            continue;
        };
        if let Some(doc) = take(file, shown, &mut budget) {
            found.push(doc);
        }
    }
    found
}

/// The user's own instructions file: `AGENTS.md` in Switchyard's configuration folder.
pub fn user_file() -> Option<PathBuf> {
    dirs::config_dir().map(|dir| dir.join("switchyard").join(FILE_NAME))
}

/// The primary root, then each folder below it down to `open_file`'s folder, when the open
/// file is in the workspace.
fn folders(workspace: &Workspace, open_file: Option<&Path>) -> Vec<PathBuf> {
    let root = workspace.primary().to_path_buf();
    let mut folders = vec![root.clone()];
    let Some(file) = open_file else {
        return folders;
    };
    let file = if file.is_absolute() {
        file.to_path_buf()
    } else {
        root.join(file)
    };
    let Some(below) = file.parent().and_then(|dir| dir.strip_prefix(&root).ok()) else {
        return folders;
    };
    let mut dir = root;
    for part in below.components() {
        match part {
            std::path::Component::Normal(name) => {
                dir.push(name);
                folders.push(dir.clone());
            }
            // `..` or anything odd: stop where the path is still plainly inside.
            _ => break,
        }
    }
    folders
}

/// Up to `budget` bytes of `file` as text; `None` when the budget is spent or the file is
/// empty.
fn take(file: std::fs::File, shown: String, budget: &mut usize) -> Option<Instructions> {
    if *budget == 0 {
        return Some(Instructions {
            shown,
            text: String::new(),
            cut: true,
        });
    }
    let mut bytes = Vec::new();
    let limit = u64::try_from(*budget).unwrap_or(u64::MAX) + 1;
    file.take(limit).read_to_end(&mut bytes).ok()?;
    let cut = bytes.len() > *budget;
    bytes.truncate(*budget);
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if cut {
        // Not half a character at the cut.
        text = text.trim_end_matches('\u{fffd}').to_string();
    }
    if text.trim().is_empty() && !cut {
        return None;
    }
    *budget -= bytes.len();
    Some(Instructions { shown, text, cut })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(root: &Path) -> Workspace {
        Workspace::new([root.to_path_buf()]).unwrap()
    }

    #[test]
    fn the_root_then_the_nearest_folders_then_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("crates/core/src")).unwrap();
        std::fs::create_dir_all(root.join("other")).unwrap();
        std::fs::write(root.join("AGENTS.md"), "Use tabs.").unwrap();
        std::fs::write(root.join("crates/core/AGENTS.md"), "Core: no unsafe.").unwrap();
        std::fs::write(root.join("other/AGENTS.md"), "Not this one.").unwrap();
        let user = root.join("user-AGENTS.md");
        std::fs::write(&user, "Answer briefly.").unwrap();
        let ws = workspace(&root);

        let open = root.join("crates/core/src/lib.rs");
        let docs = load(&ws, Some(&open), Some(&user));
        let shown: Vec<(&str, &str)> = docs
            .iter()
            .map(|d| (d.shown.as_str(), d.text.as_str()))
            .collect();
        let user_shown = user.display().to_string();
        assert_eq!(
            shown,
            [
                (user_shown.as_str(), "Answer briefly."),
                ("AGENTS.md", "Use tabs."),
                ("crates/core/AGENTS.md", "Core: no unsafe."),
            ]
        );
        let relative = load(&ws, Some(Path::new("crates/core/src/lib.rs")), None);
        assert_eq!(relative.len(), 2);
        assert_eq!(
            load(&ws, None, None).len(),
            1,
            "only the root's without a file"
        );
        let outside = load(&ws, Some(Path::new("/etc/passwd")), None);
        assert_eq!(outside.len(), 1);

        std::fs::write(root.join("AGENTS.md"), "x".repeat(MAX_BYTES + 10)).unwrap();
        let docs = load(&ws, Some(&open), None);
        assert_eq!(docs[0].text.len(), MAX_BYTES);
        assert!(docs[0].cut);
        assert_eq!(docs[1].text, "", "nothing is left for the nearer file");
        assert!(docs[1].cut);
    }

    #[test]
    fn a_link_out_of_the_workspace_is_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "the secret").unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root.join("AGENTS.md")).unwrap();
        assert!(load(&workspace(&root), None, None).is_empty());
    }
}
