//! The workspace sandbox: every file operation goes through a directory handle of a
//! workspace root ([`cap_std::fs::Dir`], opened once) and a path *beneath* it, so that the
//! kernel itself refuses to leave the root (`openat2` with `RESOLVE_BENEATH` and
//! `RESOLVE_NO_MAGICLINKS` on Linux). Checking a path by name and then opening it by name
//! cannot be made safe — a directory swapped for a symlink in between redirects the open —
//! so nothing here or in the tools opens a workspace file by name.
//!
//! A caller's path is resolved *lexically* to (root, relative path): `..` may not climb out
//! of the root and an absolute path must lie inside one. Symlinks that stay inside the
//! workspace keep working; one that leads out is refused ("is a link to …, outside the
//! workspace") because the handle cannot follow it. Non-regular files (FIFOs, sockets,
//! devices) are refused before anything opens them, and opens are non-blocking besides, so
//! a FIFO swapped in after the check can never hang a tool.
//!
//! Not contained: a hard link inside the workspace to a file outside it is the same file,
//! and is read and written like any other.

use std::fs::Metadata;
use std::io;
use std::os::unix::fs::FileTypeExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};

use super::ToolError;

/// The roots a session may touch: their canonical paths and a handle of each.
#[derive(Clone)]
pub struct Workspace {
    roots: Vec<PathBuf>,
    dirs: Vec<Arc<Dir>>,
}

impl std::fmt::Debug for Workspace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workspace")
            .field("roots", &self.roots)
            .finish()
    }
}

impl PartialEq for Workspace {
    fn eq(&self, other: &Workspace) -> bool {
        self.roots == other.roots
    }
}

impl Eq for Workspace {}

/// Whether an error is the handle refusing a path that leads out of its root.
pub fn is_escape(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied
        && e.to_string() == "a path led outside of the filesystem"
}

/// Why a workspace cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkspaceError {
    /// A root that does not exist or cannot be opened.
    #[error("cannot open the workspace root {}: {message}", root.display())]
    Unopenable {
        /// The root as given.
        root: PathBuf,
        /// What the system said.
        message: String,
    },
    /// A root that is a file, not a directory.
    #[error("the workspace root {} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// No root at all.
    #[error("a workspace needs at least one root")]
    NoRoot,
}

impl Workspace {
    /// A workspace of these roots (the first is where relative paths start).
    pub fn new(roots: impl IntoIterator<Item = PathBuf>) -> Result<Workspace, WorkspaceError> {
        let mut canonical = Vec::new();
        let mut dirs = Vec::new();
        for root in roots {
            let unopenable = |e: std::io::Error| WorkspaceError::Unopenable {
                root: root.clone(),
                message: e.to_string(),
            };
            let path = root.canonicalize().map_err(unopenable)?;
            if !path.is_dir() {
                return Err(WorkspaceError::NotADirectory(root));
            }
            let dir =
                Dir::open_ambient_dir(&path, cap_std::ambient_authority()).map_err(unopenable)?;
            canonical.push(path);
            dirs.push(Arc::new(dir));
        }
        if canonical.is_empty() {
            return Err(WorkspaceError::NoRoot);
        }
        Ok(Workspace {
            roots: canonical,
            dirs,
        })
    }

    /// The roots, canonical; the first is the primary one.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// Where relative paths start.
    pub fn primary(&self) -> &Path {
        &self.roots[0]
    }

    /// Whether a path lies lexically inside one of the roots.
    pub fn contains(&self, path: &Path) -> bool {
        self.beneath(path).is_some()
    }

    /// The handle of the root `path` (absolute, normalized) lies in, and the path below it
    /// (`.` for the root itself); the innermost root wins when roots nest.
    pub fn beneath<'p>(&self, path: &'p Path) -> Option<(&Dir, &'p Path)> {
        self.roots
            .iter()
            .zip(&self.dirs)
            .filter_map(|(root, dir)| Some((dir, path.strip_prefix(root).ok()?)))
            .min_by_key(|(_, rel)| rel.as_os_str().len())
            .map(|(dir, rel)| {
                let rel = if rel.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    rel
                };
                (dir.as_ref(), rel)
            })
    }

    fn handle<'p>(&self, path: &'p Path) -> io::Result<(&Dir, &'p Path)> {
        self.beneath(path).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                "a path led outside of the filesystem",
            )
        })
    }

    /// The metadata of a workspace path, symlinks inside the workspace followed.
    pub fn metadata(&self, path: &Path) -> io::Result<cap_std::fs::Metadata> {
        let (dir, rel) = self.handle(path)?;
        dir.metadata(rel)
    }

    /// The metadata of a workspace path itself (a symlink is not followed).
    pub fn symlink_metadata(&self, path: &Path) -> io::Result<cap_std::fs::Metadata> {
        let (dir, rel) = self.handle(path)?;
        dir.symlink_metadata(rel)
    }

    /// Whether anything (a dangling link included) is at a workspace path.
    pub fn exists(&self, path: &Path) -> bool {
        self.symlink_metadata(path).is_ok()
    }

    /// A handle of a workspace directory.
    pub fn open_dir(&self, path: &Path) -> io::Result<Dir> {
        let (dir, rel) = self.handle(path)?;
        dir.open_dir(rel)
    }

    /// Opens a workspace file for reading: refused unless it is a regular file, checked
    /// before the open and again on the open file (the open is non-blocking, so a FIFO
    /// swapped in between cannot hang). Errors name the file as `shown`.
    pub fn open_regular(
        &self,
        path: &Path,
        shown: &str,
    ) -> Result<(std::fs::File, Metadata), ToolError> {
        let meta = self
            .metadata(path)
            .map_err(|e| self.io_error(path, shown, "read", e))?;
        require_regular(shown, &meta)?;
        let (dir, rel) = self
            .handle(path)
            .map_err(|e| self.io_error(path, shown, "read", e))?;
        let file = dir
            .open_with(rel, OpenOptions::new().read(true).custom_flags(NONBLOCK))
            .map_err(|e| self.io_error(path, shown, "read", e))?
            .into_std();
        let meta = file
            .metadata()
            .map_err(|e| self.io_error(path, shown, "read", e))?;
        require_regular_file(shown, &meta)?;
        Ok((file, meta))
    }

    /// Opens for reading a workspace file a walk has already seen to be regular: beneath
    /// the root's handle, non-blocking, and refused on the open file if it is not regular
    /// after all (swapped since the walk saw it).
    pub fn open_seen_regular(&self, path: &Path) -> io::Result<std::fs::File> {
        let (dir, rel) = self.handle(path)?;
        let file = dir
            .open_with(rel, OpenOptions::new().read(true).custom_flags(NONBLOCK))?
            .into_std();
        if !file.metadata()?.is_file() {
            return Err(no_longer_regular());
        }
        Ok(file)
    }

    /// Opens for reading the file a walk found at `path` in the directory `dir` (the
    /// handle the walk opened beneath the root): by its name alone — one component, a
    /// link at it not followed, non-blocking — and refused if it is no longer a regular
    /// file. Cheaper than [`Workspace::open_seen_regular`] (no path resolved from the
    /// root) and as contained: `dir` is beneath the root and nothing but its own entry
    /// is looked up. Returns the file and its size.
    pub fn open_entry(dir: &Dir, path: &Path) -> io::Result<(std::fs::File, u64)> {
        use rustix::fs::{FileType, Mode, OFlags};
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file name"))?;
        let fd = rustix::fs::openat(
            dir,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let stat = rustix::fs::fstat(&fd)?;
        if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
            return Err(no_longer_regular());
        }
        Ok((
            std::fs::File::from(fd),
            u64::try_from(stat.st_size).unwrap_or(0),
        ))
    }

    /// What a workspace link says, as written (it may point anywhere; nothing follows it).
    pub fn read_link(&self, path: &Path) -> io::Result<PathBuf> {
        let (dir, rel) = self.handle(path)?;
        dir.read_link_contents(rel)
    }

    /// The whole content of a workspace file (see [`Workspace::open_regular`]).
    pub fn read_regular(&self, path: &Path, shown: &str) -> Result<Vec<u8>, ToolError> {
        use std::io::Read;
        let (mut file, meta) = self.open_regular(path, shown)?;
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
        file.read_to_end(&mut bytes)
            .map_err(|e| self.io_error(path, shown, "read", e))?;
        Ok(bytes)
    }

    /// Creates a workspace directory and its missing parents, beneath the root's handle.
    pub fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let (dir, rel) = self.handle(path)?;
        dir.create_dir_all(rel)
    }

    /// Removes a workspace file (a link itself, not what it points to).
    pub fn remove_file(&self, path: &Path) -> io::Result<()> {
        let (dir, rel) = self.handle(path)?;
        dir.remove_file(rel)
    }

    /// Moves a workspace file to another workspace path (not across filesystems).
    pub fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let (from_dir, from_rel) = self.handle(from)?;
        let (to_dir, to_rel) = self.handle(to)?;
        from_dir.rename(from_rel, to_dir, to_rel)
    }

    /// A handle of the directory a workspace file is in, and the file's name.
    pub fn parent_of<'p>(&self, path: &'p Path) -> io::Result<(Dir, &'p std::ffi::OsStr)> {
        let (dir, rel) = self.handle(path)?;
        let name = rel.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "the workspace root is not a file",
            )
        })?;
        let parent = match rel.parent() {
            Some(p) if !p.as_os_str().is_empty() => dir.open_dir(p)?,
            _ => dir.try_clone()?,
        };
        Ok((parent, name))
    }

    /// An error of an operation on `path` as the user should read it: a path the handle
    /// refused because it leads outside is named as such.
    pub fn io_error(&self, path: &Path, shown: &str, verb: &str, e: io::Error) -> ToolError {
        if is_escape(&e) {
            return ToolError::new(self.link_out(shown, path));
        }
        ToolError::new(format!("cannot {verb} `{shown}`: {e}"))
    }

    fn link_out(&self, shown: &str, path: &Path) -> String {
        // Resolved by name only to say where the link goes; nothing is opened this way.
        match path.canonicalize() {
            Ok(target) if !self.contains(&target) => format!(
                "`{shown}` is a link to {}, outside the workspace ({}); only files inside it can be used",
                target.display(),
                self.describe_roots()
            ),
            _ => format!(
                "`{shown}` leads through a link outside the workspace ({}); only files inside it can be used",
                self.describe_roots()
            ),
        }
    }

    /// The workspace path a caller's path names, lexically: relative to each root in turn,
    /// or absolute; `..` may not climb out of the root.
    fn lexical(&self, path: &str) -> Vec<PathBuf> {
        // A name shown escaped (`"a\nb"`, `"caf\xE9"`) is taken back as the file it names.
        let named = super::names::unescape(path);
        let path = Path::new(&named);
        if path.is_absolute() {
            let lexical = normalize(path);
            if self.contains(&lexical) {
                return vec![lexical];
            }
            // A root reached by another name (a link above the workspace): what the name
            // resolves to is only used to find the root, then opened beneath its handle.
            return match path.canonicalize() {
                Ok(canonical) if self.contains(&canonical) => vec![canonical],
                _ => vec![lexical],
            };
        }
        self.roots
            .iter()
            .map(|root| normalize(&root.join(path)))
            .collect()
    }

    /// An existing path named by a caller (relative to the primary root, or absolute),
    /// checked through the root's handle to exist inside the workspace.
    pub fn resolve(&self, path: &str) -> Result<PathBuf, ToolError> {
        if path.is_empty() {
            return Err(ToolError::new(
                "the path is empty; use \".\" for the workspace root",
            ));
        }
        let candidates = self.lexical(path);
        for candidate in &candidates {
            if !self.contains(candidate) {
                continue;
            }
            match self.canonical(candidate) {
                Ok(canonical) => return Ok(canonical),
                Err(e) if is_escape(&e) => {
                    return Err(ToolError::new(self.link_out(path, candidate)));
                }
                Err(_) => continue,
            }
        }
        if !self.contains(&candidates[0]) {
            return Err(ToolError::new(self.outside(path)));
        }
        Err(ToolError::new(format!(
            "`{path}` does not exist in the workspace ({})",
            self.describe_roots()
        )))
    }

    /// A path that may not exist yet (a file about to be written): lexically inside the
    /// workspace; its longest existing part is resolved through the root's handle (links
    /// inside the workspace followed), the rest must be plain names.
    pub fn resolve_new(&self, path: &str) -> Result<PathBuf, ToolError> {
        if path.is_empty() {
            return Err(ToolError::new("the path is empty"));
        }
        let lexical = self.lexical(path).swap_remove(0);
        let Some((dir, rel)) = self.beneath(&lexical) else {
            return Err(ToolError::new(self.outside(path)));
        };
        let Some(root) = self.root_of(&lexical) else {
            return Err(ToolError::new(self.outside(path)));
        };
        let mut existing = rel;
        let mut rest = Vec::new();
        while dir.symlink_metadata(existing).is_err() {
            match (existing.file_name(), existing.parent()) {
                (Some(name), Some(parent)) => {
                    rest.push(name);
                    existing = if parent.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        parent
                    };
                }
                _ => break,
            }
        }
        let base = match dir.canonicalize(existing) {
            Ok(base) => root.join(base),
            Err(e) if is_escape(&e) => return Err(ToolError::new(self.outside(path))),
            Err(e) => return Err(ToolError::new(format!("cannot resolve `{path}`: {e}"))),
        };
        Ok(rest
            .into_iter()
            .rev()
            .fold(normalize(&base), |p, name| p.join(name)))
    }

    /// A workspace path with the links along it resolved through its root's handle (so
    /// never outside the root).
    fn canonical(&self, path: &Path) -> io::Result<PathBuf> {
        let (dir, rel) = self.handle(path)?;
        let root = self.root_of(path).unwrap_or_else(|| self.primary());
        Ok(normalize(&root.join(dir.canonicalize(rel)?)))
    }

    fn root_of(&self, path: &Path) -> Option<&Path> {
        self.roots
            .iter()
            .filter(|root| path.starts_with(root))
            .max_by_key(|root| root.as_os_str().len())
            .map(PathBuf::as_path)
    }

    /// How a path is shown: relative to its root (`src/lib.rs`, `.` for the root itself);
    /// absolute for anything under a root other than the primary one.
    pub fn display(&self, canonical: &Path) -> String {
        // Escaped where the name could forge a line of output or is not UTF-8.
        if let Some(rel) = below(canonical, self.primary()) {
            let s = super::names::escape(rel);
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

/// `path` relative to `root` when it lies below it. The walks build their paths by joining
/// names onto the root, so a byte prefix answers at once (this runs for every path a
/// search shows); a path with an empty or `.` component goes through [`Path::strip_prefix`]'s
/// component-wise comparison, as does one outside the root.
fn below<'a>(path: &'a Path, root: &Path) -> Option<&'a std::ffi::OsStr> {
    use std::os::unix::ffi::OsStrExt;
    let (bytes, prefix) = (path.as_os_str().as_bytes(), root.as_os_str().as_bytes());
    let rest = bytes.strip_prefix(prefix).and_then(|rest| match rest {
        [] => Some(rest),
        [b'/', tail @ ..] if !prefix.ends_with(b"/") => Some(tail),
        _ if prefix.ends_with(b"/") => Some(rest),
        _ => None,
    });
    match rest {
        Some([]) => Some(std::ffi::OsStr::new("")),
        Some(rest)
            if rest
                .split(|&b| b == b'/')
                .all(|c| !c.is_empty() && c != b".") =>
        {
            Some(std::ffi::OsStr::from_bytes(rest))
        }
        _ => path.strip_prefix(root).ok().map(Path::as_os_str),
    }
}

/// A file a walk saw as regular that is not any more (swapped since).
fn no_longer_regular() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "not a regular file (it changed while it was being searched)",
    )
}

/// `O_NONBLOCK`: opening a FIFO must not wait for a writer.
const NONBLOCK: i32 = libc::O_NONBLOCK;

/// Refuses what is not a regular file, before anything opens it.
pub fn require_regular_file(shown: &str, meta: &Metadata) -> Result<(), ToolError> {
    let ft = meta.file_type();
    refuse_unless_regular(
        shown,
        ft.is_file(),
        ft.is_dir(),
        special(
            ft.is_fifo(),
            ft.is_socket(),
            ft.is_char_device() || ft.is_block_device(),
        ),
    )
}

/// [`require_regular_file`] for metadata read through a handle.
pub fn require_regular(shown: &str, meta: &cap_std::fs::Metadata) -> Result<(), ToolError> {
    refuse_unless_regular(shown, meta.is_file(), meta.is_dir(), special_kind(meta))
}

/// What a file that is neither regular, a directory nor a link is, in words ("a FIFO
/// (named pipe)").
pub fn special_kind(meta: &cap_std::fs::Metadata) -> &'static str {
    use cap_std::fs::FileTypeExt as _;
    let ft = meta.file_type();
    special(
        ft.is_fifo(),
        ft.is_socket(),
        ft.is_char_device() || ft.is_block_device(),
    )
}

fn special(fifo: bool, socket: bool, device: bool) -> &'static str {
    if fifo {
        "a FIFO (named pipe)"
    } else if socket {
        "a socket"
    } else if device {
        "a device"
    } else {
        "not a regular file"
    }
}

fn refuse_unless_regular(shown: &str, file: bool, dir: bool, what: &str) -> Result<(), ToolError> {
    if file {
        Ok(())
    } else if dir {
        Err(ToolError::new(format!(
            "`{shown}` is a directory; use `ls` or `glob` to list it"
        )))
    } else {
        Err(ToolError::new(format!(
            "`{shown}` is {what}; only regular files can be read"
        )))
    }
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
