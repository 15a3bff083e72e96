//! The workspace sandbox: every path a tool touches is resolved against the workspace roots
//! and checked *after* following symlinks, so neither `..`, an absolute path nor a link
//! inside the workspace pointing at `/etc` can reach outside. Non-regular files (FIFOs,
//! sockets, devices) are refused before anything opens them: a FIFO must never hang a tool.

use std::fs::Metadata;
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};

use super::ToolError;

/// The roots a session may touch, canonical.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    roots: Vec<PathBuf>,
}

impl Workspace {
    /// A workspace of these roots (the first is where relative paths start).
    pub fn new(roots: impl IntoIterator<Item = PathBuf>) -> Result<Workspace, String> {
        let mut canonical = Vec::new();
        for root in roots {
            let path = root
                .canonicalize()
                .map_err(|e| format!("cannot open the workspace root {}: {e}", root.display()))?;
            if !path.is_dir() {
                return Err(format!(
                    "the workspace root {} is not a directory",
                    root.display()
                ));
            }
            canonical.push(path);
        }
        if canonical.is_empty() {
            return Err("a workspace needs at least one root".into());
        }
        Ok(Workspace { roots: canonical })
    }

    /// The roots, canonical; the first is the primary one.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Where relative paths start.
    pub fn primary(&self) -> &Path {
        &self.roots[0]
    }

    /// Whether a canonical path lies inside one of the roots.
    pub fn contains(&self, canonical: &Path) -> bool {
        self.roots.iter().any(|root| canonical.starts_with(root))
    }

    /// An existing path named by a caller (relative to the primary root, or absolute),
    /// resolved through symlinks and checked to be inside the workspace.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, ToolError> {
        if path.is_empty() {
            return Err(ToolError::new(
                "the path is empty; use \".\" for the workspace root",
            ));
        }
        // A name shown escaped (`"a\nb"`, `"caf\xE9"`) is taken back as the file it names.
        let named = super::names::unescape(path);
        let candidates: Vec<PathBuf> = if Path::new(&named).is_absolute() {
            vec![PathBuf::from(&named)]
        } else {
            self.roots.iter().map(|root| root.join(&named)).collect()
        };
        for candidate in &candidates {
            match candidate.canonicalize() {
                Ok(canonical) if self.contains(&canonical) => return Ok(canonical),
                Ok(canonical) => {
                    let via_link = self.contains(&normalize(candidate));
                    return Err(ToolError::new(if via_link {
                        format!(
                            "`{path}` is a link to {}, outside the workspace ({}); only files inside it can be used",
                            canonical.display(),
                            self.describe_roots()
                        )
                    } else {
                        self.outside(path)
                    }));
                }
                Err(_) => continue,
            }
        }
        if !self.contains(&normalize(&candidates[0])) {
            return Err(ToolError::new(self.outside(path)));
        }
        Err(ToolError::new(format!(
            "`{path}` does not exist in the workspace ({})",
            self.describe_roots()
        )))
    }

    /// A path that may not exist yet (a file about to be written): its nearest existing
    /// ancestor is resolved through symlinks and checked, the rest must be plain names.
    pub fn resolve_new(&self, path: &str) -> Result<PathBuf, ToolError> {
        if path.is_empty() {
            return Err(ToolError::new("the path is empty"));
        }
        let named = super::names::unescape(path);
        let candidate = if Path::new(&named).is_absolute() {
            PathBuf::from(&named)
        } else {
            self.primary().join(&named)
        };
        let lexical = normalize(&candidate);
        let mut existing = lexical.as_path();
        let mut rest = Vec::new();
        while existing.symlink_metadata().is_err() {
            let Some(name) = existing.file_name() else {
                break;
            };
            rest.push(name.to_os_string());
            let Some(parent) = existing.parent() else {
                break;
            };
            existing = parent;
        }
        let base = existing
            .canonicalize()
            .map_err(|e| ToolError::new(format!("cannot resolve `{path}`: {e}")))?;
        if !self.contains(&base) {
            return Err(ToolError::new(self.outside(path)));
        }
        let resolved = rest.into_iter().rev().fold(base, |p, name| p.join(name));
        if !self.contains(&resolved) {
            return Err(ToolError::new(self.outside(path)));
        }
        Ok(resolved)
    }

    /// How a path is shown: relative to its root (`src/lib.rs`, `.` for the root itself);
    /// absolute for anything under a root other than the primary one.
    pub fn display(&self, canonical: &Path) -> String {
        // Escaped where the name could forge a line of output or is not UTF-8.
        if let Ok(rel) = canonical.strip_prefix(self.primary()) {
            let s = super::names::escape(rel.as_os_str());
            return if s.is_empty() {
                ".".to_string()
            } else {
                s.into_owned()
            };
        }
        super::names::escape(canonical.as_os_str()).into_owned()
    }

    fn describe_roots(&self) -> String {
        self.roots
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn outside(&self, path: &str) -> String {
        format!(
            "`{path}` is outside the workspace ({}); only paths inside it can be used",
            self.describe_roots()
        )
    }
}

/// Refuses what is not a regular file, before anything opens it.
pub fn require_regular_file(shown: &str, meta: &Metadata) -> Result<(), ToolError> {
    let ft = meta.file_type();
    let what = if ft.is_file() {
        return Ok(());
    } else if ft.is_dir() {
        return Err(ToolError::new(format!(
            "`{shown}` is a directory; use `ls` or `glob` to list it"
        )));
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_char_device() || ft.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    };
    Err(ToolError::new(format!(
        "`{shown}` is {what}; only regular files can be read"
    )))
}

/// `a/./b/../c` → `a/c`, without touching the disk.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn workspace() -> (tempfile::TempDir, Workspace) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("ws/src")).unwrap();
        std::fs::write(dir.path().join("ws/src/lib.rs"), "fn x() {}").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "outside").unwrap();
        let ws = Workspace::new([dir.path().join("ws")]).unwrap();
        (dir, ws)
    }

    #[test]
    fn paths_inside_resolve_relative_or_absolute() {
        let (_dir, ws) = workspace();
        let lib = ws.resolve("src/lib.rs").unwrap();
        assert_eq!(ws.display(&lib), "src/lib.rs");
        assert_eq!(ws.resolve(lib.to_str().unwrap()).unwrap(), lib);
        assert_eq!(ws.resolve("src/../src/./lib.rs").unwrap(), lib);
        assert_eq!(ws.display(&ws.resolve(".").unwrap()), ".");
    }

    #[test]
    fn traversal_absolute_and_symlink_escapes_are_refused() {
        let (dir, ws) = workspace();
        let err = ws.resolve("../secret.txt").unwrap_err().message;
        assert!(
            err.starts_with("`../secret.txt` is outside the workspace"),
            "{err}"
        );
        let err = ws.resolve("/etc/passwd").unwrap_err().message;
        assert!(
            err.starts_with("`/etc/passwd` is outside the workspace"),
            "{err}"
        );
        let err = ws.resolve("../../../../nonexistent").unwrap_err().message;
        assert!(err.contains("outside the workspace"), "{err}");
        symlink("/etc", dir.path().join("ws/etc-link")).unwrap();
        let err = ws.resolve("etc-link/passwd").unwrap_err().message;
        assert!(
            err.starts_with("`etc-link/passwd` is a link to /etc/passwd, outside the workspace"),
            "{err}"
        );
        symlink(
            dir.path().join("secret.txt"),
            dir.path().join("ws/innocent.txt"),
        )
        .unwrap();
        assert!(
            ws.resolve("innocent.txt")
                .unwrap_err()
                .message
                .contains("is a link to")
        );
        assert!(
            ws.resolve_new("etc-link/new.txt")
                .unwrap_err()
                .message
                .contains("outside the workspace")
        );
        assert!(
            ws.resolve_new("../new.txt")
                .unwrap_err()
                .message
                .contains("outside the workspace")
        );
        assert!(
            ws.resolve_new("src/new/deeper.rs")
                .unwrap()
                .ends_with("ws/src/new/deeper.rs")
        );
    }

    #[test]
    fn missing_paths_are_named() {
        let (_dir, ws) = workspace();
        let err = ws.resolve("src/mian.rs").unwrap_err().message;
        assert!(
            err.starts_with("`src/mian.rs` does not exist in the workspace"),
            "{err}"
        );
    }
}
