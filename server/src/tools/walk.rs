//! Walking a directory the way ripgrep does — `.gitignore`, `.ignore`, `.rgignore`,
//! `.git/info/exclude`, the global gitignore and hidden files respected by default — in a
//! deterministic order (by name, depth first), through directory handles.
//!
//! Every directory is opened beneath its parent's handle without following a link
//! (`openat2(RESOLVE_BENEATH)` from the workspace root for the start, then one component
//! at a time with `O_NOFOLLOW`), and its ignore files are read through its own handle; so a
//! directory swapped for a link to elsewhere while the walk runs is an error, never a
//! listing of the outside. The rules are those of the `ignore` crate's walker (which walks
//! by path and so cannot be used here), built from the same matchers: overrides win, then
//! ignore files — `.rgignore` over `.ignore` over `.gitignore` over `exclude` over the
//! global file, the deepest directory's rule first, gitignore rules only inside a git
//! repository and not above its root — then file types, then the hidden-file rule. Ignore
//! files above the walk's start are read too: through the workspace's handle inside it,
//! by name above the workspace root (outside it, only rules are read there).
//!
//! The design (docs/architecture.md) forbids walkers with threads of their own inside the shared rayon pool. So a
//! tree is walked in parallel the way this module does it: [`WalkOptions::split`] cuts it
//! into ordered *units* at the first depth with enough directories, and each of a few
//! sequential walkers — jobs on the pool — walks the whole tree from its root but skips
//! the units another walker reached first ([`WalkOptions::walk_part`]); inside a unit it
//! queues the directories it finds, and a walker left with no unit to take walks the
//! shallowest directories on another's queue, so the last big unit is shared rather than
//! walked alone. Every walker carries the ignore rules of each directory down from the
//! root, so ignore files apply exactly as in one sequential walk, and those above the
//! units are read once per walker rather than once per subtree. Sorting what the walkers found by
//! `Path` gives the sequential walk's order; and because units are in path order, a search
//! can stop at a limit once a prefix of units is complete and still return the same
//! results every time.

use std::collections::{HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use cap_std::fs::{Dir, OpenOptions, OpenOptionsExt};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use ignore::overrides::Override;
use ignore::types::Types;
use parking_lot::{Condvar, Mutex};
use tokio_util::sync::CancellationToken;

use super::{EntryKind, Workspace};

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
    /// The units a walker has taken: the first walker to reach a unit walks it, so a
    /// walker that drew small units goes on to take more (units differ in size by orders
    /// of magnitude; dealt out round-robin, one walker was often left with the big one).
    claimed: Arc<Vec<AtomicBool>>,
    /// The directories inside units the walkers share out.
    work: Arc<Work>,
    /// The directories above the units by path, as the split listed them.
    above: Arc<HashMap<PathBuf, Arc<Listed>>>,
    /// The depth of the directory units (≥ 1).
    depth: usize,
}

impl Split {
    /// Whether walker `part` goes into (and yields) `entry`: everything above and below
    /// the units, and the units before `stop` it is the first to reach. Every walker
    /// lists the levels above the units in the same order, so each takes the next unit no
    /// other has taken yet — a shared queue without a queue. Called once per entry a
    /// walker meets: a unit it is refused is another's.
    fn keeps(&self, entry: &Entry, part: usize, stop: usize) -> bool {
        let d = entry.depth;
        if d > self.depth || (d < self.depth && entry.is_dir()) {
            return true;
        }
        match self.index.get(&entry.path) {
            Some(&unit) => unit < stop && !self.claimed[unit].swap(true, Ordering::AcqRel),
            // Appeared after the split: one walker takes it.
            None => part == 0,
        }
    }
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
    let cores = crate::lanes::cores();
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

/// One entry a walk found (the start itself is never one).
#[derive(Debug, Clone)]
pub struct Entry {
    path: PathBuf,
    depth: usize,
    kind: EntryKind,
}

impl Entry {
    /// Its path: the start's joined with the names below it.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its path, owned.
    pub fn into_path(self) -> PathBuf {
        self.path
    }

    /// How deep below the start (1 = the start's own entries).
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// What it is; a link is not followed.
    pub fn kind(&self) -> EntryKind {
        self.kind
    }

    /// A directory (not a link to one).
    pub fn is_dir(&self) -> bool {
        self.kind == EntryKind::Dir
    }

    /// A regular file (not a link to one).
    pub fn is_file(&self) -> bool {
        self.kind == EntryKind::File
    }
}

/// The ignore rules of one directory that has any, chained to those above it.
#[derive(Debug)]
struct Rules {
    parent: Option<Arc<Rules>>,
    custom: Gitignore,
    ignore: Gitignore,
    git: Gitignore,
    exclude: Gitignore,
    /// The directory holds `.git` (or `.jj`): a repository's root.
    has_git: bool,
    /// This directory or one above it is a repository's root.
    any_git: bool,
}

/// What the rules say of one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    None,
    Ignore,
    Whitelist,
}

impl<T> From<ignore::Match<T>> for Verdict {
    fn from(m: ignore::Match<T>) -> Verdict {
        match m {
            ignore::Match::None => Verdict::None,
            ignore::Match::Ignore(_) => Verdict::Ignore,
            ignore::Match::Whitelist(_) => Verdict::Whitelist,
        }
    }
}

impl Verdict {
    fn or(self, other: impl FnOnce() -> Verdict) -> Verdict {
        if self == Verdict::None { other() } else { self }
    }
}

/// The ignore files a directory's names show it has.
#[derive(Debug, Default)]
struct Present {
    rgignore: bool,
    ignore: bool,
    gitignore: bool,
    git: bool,
}

impl Present {
    fn of<'a>(names: impl IntoIterator<Item = &'a OsStr>) -> Present {
        let mut present = Present::default();
        for name in names {
            match name.as_encoded_bytes() {
                b".rgignore" => present.rgignore = true,
                b".ignore" => present.ignore = true,
                b".gitignore" => present.gitignore = true,
                b".git" | b".jj" => present.git = true,
                _ => {}
            }
        }
        present
    }
}

/// Where ignore files are read from: a directory's handle, or (above the workspace) its
/// path.
enum Source<'a> {
    Handle(&'a Dir),
    Outside(&'a Path),
}

impl Source<'_> {
    /// The content of a regular file, or nothing (missing, unreadable, not regular).
    fn read(&self, name: &str) -> Option<Vec<u8>> {
        let mut file = match self {
            Source::Handle(dir) => dir
                .open_with(
                    name,
                    OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK),
                )
                .ok()?
                .into_std(),
            Source::Outside(dir) => {
                let path = dir.join(name);
                if !std::fs::metadata(&path).ok()?.is_file() {
                    return None;
                }
                std::fs::File::open(path).ok()?
            }
        };
        if !file.metadata().ok()?.is_file() {
            return None;
        }
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ok()?;
        Some(bytes)
    }

    fn present(&self) -> Present {
        let names: Vec<OsString> = match self {
            Source::Handle(dir) => [".rgignore", ".ignore", ".gitignore", ".git", ".jj"]
                .into_iter()
                .filter(|name| dir.symlink_metadata(name).is_ok())
                .map(OsString::from)
                .collect(),
            Source::Outside(dir) => [".rgignore", ".ignore", ".gitignore", ".git", ".jj"]
                .into_iter()
                .filter(|name| dir.join(name).symlink_metadata().is_ok())
                .map(OsString::from)
                .collect(),
        };
        Present::of(names.iter().map(OsString::as_os_str))
    }
}

/// A gitignore matcher of the file `name` read from `source`, for the directory `dir`,
/// as `GitignoreBuilder::add` reads it (a BOM dropped, reading stopped at bad UTF-8).
fn gitignore(dir: &Path, source: &Source<'_>, name: &str) -> Gitignore {
    let Some(bytes) = source.read(name) else {
        return Gitignore::empty();
    };
    let mut builder = GitignoreBuilder::new(dir);
    let from = dir.join(name);
    for (i, line) in bytes.lines().enumerate() {
        let Ok(line) = line else { break };
        let line = if i == 0 {
            line.trim_start_matches('\u{feff}')
        } else {
            &line
        };
        let _ = builder.add_line(Some(from.clone()), line);
    }
    builder.build().unwrap_or_else(|_| Gitignore::empty())
}

/// The user's global gitignore (`core.excludesFile`), read once.
fn global_gitignore() -> &'static Gitignore {
    static GLOBAL: OnceLock<Gitignore> = OnceLock::new();
    GLOBAL.get_or_init(|| Gitignore::global().0)
}

impl Rules {
    /// The rules of `dir`, read from `source`, below `parent`'s; `parent` itself when the
    /// directory adds nothing.
    fn child(
        parent: Option<&Arc<Rules>>,
        dir: &Path,
        source: &Source<'_>,
        present: &Present,
    ) -> Option<Arc<Rules>> {
        let has_git = present.git;
        let any_git = has_git || parent.is_some_and(|p| p.any_git);
        // A `.gitignore` outside every repository is never consulted (`matched` reads git
        // rules only below the nearest repository root): it is not even read.
        let git_rules = present.gitignore && any_git;
        if !(present.rgignore || present.ignore || git_rules || has_git) {
            return parent.cloned();
        }
        let read = |yes: bool, name: &str| {
            if yes {
                gitignore(dir, source, name)
            } else {
                Gitignore::empty()
            }
        };
        Some(Arc::new(Rules {
            parent: parent.cloned(),
            custom: read(present.rgignore, ".rgignore"),
            ignore: read(present.ignore, ".ignore"),
            git: read(git_rules, ".gitignore"),
            exclude: read(has_git, ".git/info/exclude"),
            has_git,
            any_git,
        }))
    }

    fn chain(&self) -> impl Iterator<Item = &Rules> {
        std::iter::successors(Some(self), |r| r.parent.as_deref())
    }

    /// What the ignore files say of `path`: for each kind the deepest directory's rule;
    /// `.rgignore` over `.ignore` over `.gitignore` over `exclude` over the global file.
    fn matched(&self, path: &Path, is_dir: bool) -> Verdict {
        let any_git = self.any_git;
        let (mut custom, mut ignore, mut git, mut exclude) =
            (Verdict::None, Verdict::None, Verdict::None, Verdict::None);
        let mut saw_git = false;
        for rules in self.chain() {
            if custom == Verdict::None {
                custom = rules.custom.matched(path, is_dir).into();
            }
            if ignore == Verdict::None {
                ignore = rules.ignore.matched(path, is_dir).into();
            }
            if any_git && !saw_git {
                if git == Verdict::None {
                    git = rules.git.matched(path, is_dir).into();
                }
                if exclude == Verdict::None {
                    exclude = rules.exclude.matched(path, is_dir).into();
                }
            }
            saw_git |= rules.has_git;
        }
        custom.or(|| ignore).or(|| git).or(|| exclude).or(|| {
            if any_git {
                global_gitignore().matched(path, is_dir).into()
            } else {
                Verdict::None
            }
        })
    }
}

/// One directory being walked: its handle, path, depth and rules.
struct Level {
    dir: Dir,
    path: PathBuf,
    depth: usize,
    rules: Option<Arc<Rules>>,
}

impl Level {
    /// The rules inside this directory, whose entries are `entries`: its ignore files read
    /// through its handle, below the rules above it.
    fn rules_below(&self, entries: &[(OsString, EntryKind)]) -> Option<Arc<Rules>> {
        let present = Present::of(entries.iter().map(|(name, _)| name.as_os_str()));
        Rules::child(
            self.rules.as_ref(),
            &self.path,
            &Source::Handle(&self.dir),
            &present,
        )
    }
}

/// A directory's entries with their kinds (a link not followed), and the listing's error
/// if it stopped early. Read straight from the handle with `getdents64` (rewound first),
/// rather than through a second descriptor of the directory as `Dir::entries` opens: one
/// `openat` and `close` less per directory.
fn list(dir: &Dir) -> (Vec<(OsString, EntryKind)>, io::Result<()>) {
    use std::mem::MaybeUninit;
    use std::os::unix::ffi::OsStrExt;

    use rustix::fs::{AtFlags, FileType, RawDir, SeekFrom};

    let kind_of = |t: FileType| match t {
        FileType::Directory => Some(EntryKind::Dir),
        FileType::RegularFile => Some(EntryKind::File),
        FileType::Symlink => Some(EntryKind::Symlink),
        FileType::Unknown => None,
        _ => Some(EntryKind::Other),
    };
    let mut entries = Vec::new();
    if let Err(e) = rustix::fs::seek(dir, SeekFrom::Start(0)) {
        return (entries, Err(e.into()));
    }
    let mut buf = [MaybeUninit::<u8>::uninit(); 16 * 1024];
    let mut raw = RawDir::new(dir, &mut buf);
    let listing = loop {
        let entry = match raw.next() {
            None => break Ok(()),
            Some(Err(e)) => break Err(e.into()),
            Some(Ok(entry)) => entry,
        };
        let name = entry.file_name();
        if matches!(name.to_bytes(), b"." | b"..") {
            continue;
        }
        // Filesystems that do not fill in `d_type` get a `stat` of the entry itself.
        let kind = kind_of(entry.file_type()).unwrap_or_else(|| {
            rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
                .map_or(EntryKind::Other, |st| {
                    kind_of(FileType::from_raw_mode(st.st_mode)).unwrap_or(EntryKind::Other)
                })
        });
        entries.push((OsStr::from_bytes(name.to_bytes()).to_os_string(), kind));
    };
    (entries, listing)
}

/// Opens the directory `name` of `dir` (a name a listing gave, one component), a link at
/// it not followed: as contained as `dir` itself.
fn open_subdir(dir: &Dir, name: &OsStr) -> io::Result<Dir> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    Ok(Dir::from_std_file(std::fs::File::from(fd)))
}

/// An entry of a directory a walk keeps: its name, path and kind.
type Kept = (OsString, PathBuf, EntryKind);

/// Whether a walk goes on into an entry (and yields it): the split's pruning.
type Keep<'a> = &'a dyn Fn(&Entry) -> bool;

impl WalkOptions {
    /// The directory `root` of `workspace` opened for a walk, with the rules of the
    /// directories above it (read through the workspace's handle inside it, by path
    /// above the workspace root).
    fn start(&self, workspace: &Workspace, root: &Path) -> io::Result<Level> {
        // The workspace's handles may be `O_PATH`, which cannot be listed: a readable
        // descriptor of the same directory is opened through it.
        let dir = open_subdir(&workspace.open_dir(root)?, OsStr::new("."))?;
        let mut rules = None;
        if !self.include_ignored {
            let mut above: Vec<&Path> = root.ancestors().skip(1).collect();
            above.reverse();
            for ancestor in above {
                if workspace.contains(ancestor) {
                    let Ok(handle) = workspace.open_dir(ancestor) else {
                        continue;
                    };
                    let source = Source::Handle(&handle);
                    rules = Rules::child(rules.as_ref(), ancestor, &source, &source.present());
                } else {
                    let source = Source::Outside(ancestor);
                    rules = Rules::child(rules.as_ref(), ancestor, &source, &source.present());
                }
            }
        }
        Ok(Level {
            dir,
            path: root.to_path_buf(),
            depth: 0,
            rules,
        })
    }

    /// Whether the walk leaves out the entry `name` at `path`.
    fn skips(&self, rules: Option<&Rules>, path: &Path, name: &OsStr, is_dir: bool) -> bool {
        if let Some(overrides) = &self.overrides {
            match Verdict::from(overrides.matched(path, is_dir)) {
                Verdict::Ignore => return true,
                Verdict::Whitelist => return false,
                Verdict::None => {}
            }
        }
        let mut whitelisted = false;
        if let (false, Some(rules)) = (self.include_ignored, rules) {
            match rules.matched(path, is_dir) {
                Verdict::Ignore => return true,
                Verdict::Whitelist => whitelisted = true,
                Verdict::None => {}
            }
        }
        if let Some(types) = &self.types {
            match Verdict::from(types.matched(path, is_dir)) {
                Verdict::Ignore => return true,
                Verdict::Whitelist => whitelisted = true,
                Verdict::None => {}
            }
        }
        !whitelisted && !self.include_hidden && name.as_encoded_bytes().starts_with(b".")
    }

    /// The entries of `level` the walk keeps, each with its path, and the rules inside
    /// it; a listing that stopped early is recorded in `errors`.
    fn kept_entries(
        &self,
        level: &Level,
        errors: &mut Vec<String>,
    ) -> (Option<Arc<Rules>>, Vec<Kept>) {
        let (entries, listing) = list(&level.dir);
        if let Err(e) = listing {
            errors.push(format!("{}: {e}", level.path.display()));
        }
        let rules = (!self.include_ignored)
            .then(|| level.rules_below(&entries))
            .flatten();
        let kept = entries
            .into_iter()
            .filter_map(|(name, kind)| {
                let path = level.path.join(&name);
                let skipped = self.skips(rules.as_deref(), &path, &name, kind == EntryKind::Dir);
                (!skipped).then_some((name, path, kind))
            })
            .collect();
        (rules, kept)
    }

    /// Walks below `level` depth first, calling `visit` with every entry kept (and going
    /// into the directories kept), down to the options' `max_depth`; `sorted` visits each
    /// directory's entries by name. Errors (a directory that cannot be read or opened) are
    /// collected and the walk goes on.
    fn descend(
        &self,
        level: Level,
        sorted: bool,
        token: &CancellationToken,
        visit: &mut dyn FnMut(Entry, &Dir),
        errors: &mut Vec<String>,
    ) {
        if token.is_cancelled() {
            return;
        }
        let (rules, mut entries) = self.kept_entries(&level, errors);
        if sorted {
            entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        let depth = level.depth + 1;
        for (name, path, kind) in entries {
            let is_dir = kind == EntryKind::Dir;
            let entry = Entry { path, depth, kind };
            if !is_dir || self.max_depth.is_some_and(|max| depth >= max) {
                visit(entry, &level.dir);
                continue;
            }
            let path = entry.path.clone();
            visit(entry, &level.dir);
            if token.is_cancelled() {
                return;
            }
            match open_subdir(&level.dir, &name) {
                Ok(dir) => {
                    let child = Level {
                        dir,
                        path,
                        depth,
                        rules: rules.clone(),
                    };
                    self.descend(child, sorted, token, visit, errors);
                }
                Err(e) => errors.push(format!("{}: {e}", path.display())),
            }
        }
    }

    /// Every entry below `root` (a directory of `workspace`), sorted as a walk by name
    /// visits them, with the walk's errors (`root` itself unreadable among them).
    pub fn walk(
        &self,
        workspace: &Workspace,
        root: &Path,
        token: &CancellationToken,
    ) -> (Vec<Entry>, Vec<String>) {
        let mut found = Vec::new();
        let mut errors = Vec::new();
        match self.start(workspace, root) {
            Ok(level) => self.descend(level, true, token, &mut |e, _| found.push(e), &mut errors),
            Err(e) => errors.push(format!("{}: {e}", root.display())),
        }
        (found, errors)
    }

    /// Walks `root` (a directory of `workspace`) on the current rayon pool, calling
    /// `visit` (from any pool thread, in no particular order) for every entry below the
    /// root; sort what it collects with [`sort_as_walked`] for the sequential walk's
    /// order. Returns the walk's errors (an unreadable directory), the walk going on past
    /// them. Stops early when `token` is cancelled.
    pub fn walk_parallel(
        &self,
        workspace: &Workspace,
        root: &Path,
        token: &CancellationToken,
        visit: impl Fn(Entry) + Sync,
    ) -> Vec<String> {
        let split = self.split(workspace, root, parts(), token);
        let unlimited = AtomicUsize::new(usize::MAX);
        self.walk_split(workspace, root, &split, &unlimited, token, |e, _, _| {
            visit(e)
        })
    }

    /// Walks `root` as cut by `split`, one walker ([`WalkOptions::walk_part`]) per part
    /// of the split on the current rayon pool, `stop` and `visit` as there. Returns the
    /// walk's errors, each once.
    fn walk_split(
        &self,
        workspace: &Workspace,
        root: &Path,
        split: &Split,
        stop: &AtomicUsize,
        token: &CancellationToken,
        visit: impl Fn(Entry, Option<usize>, &Dir) + Sync,
    ) -> Vec<String> {
        let errors = Mutex::new(Vec::new());
        rayon::scope(|scope| {
            for part in 0..split.work.queues.len() {
                let (errors, visit) = (&errors, &visit);
                scope.spawn(move |_| {
                    let found =
                        self.walk_part(workspace, root, split, part, stop, token, visit, |_| {});
                    errors.lock().extend(found);
                });
            }
        });
        let mut errors = errors.into_inner();
        // A directory above the units is every walker's: its error is reported once.
        errors.sort();
        errors.dedup();
        errors
    }

    /// Cuts the tree under `root` into units for `parts` walkers: the first depth with
    /// enough directories (or the deepest the split goes) becomes the depth of the units.
    /// Found by walks from the root itself, so it sees exactly what a walk sees.
    pub fn split(
        &self,
        workspace: &Workspace,
        root: &Path,
        parts: usize,
        token: &CancellationToken,
    ) -> Split {
        let wanted = parts * UNITS_PER_PART;
        let deepest = self
            .max_depth
            .map_or(MAX_SPLIT_DEPTH, |max| max.clamp(1, MAX_SPLIT_DEPTH));
        // Level by level: list every directory at one depth, then decide whether the
        // directories found one deeper are enough units.
        let mut above = HashMap::new();
        let mut units = Vec::new();
        let mut frontier: Vec<Level> = self.start(workspace, root).into_iter().collect();
        let mut depth = 1;
        loop {
            let mut dirs = Vec::new();
            for level in frontier.drain(..) {
                let listed = Arc::new(Listed::of(self, level));
                for (name, path, kind) in &listed.entries {
                    if *kind == EntryKind::Dir {
                        dirs.push((Arc::clone(&listed), name.clone(), path.clone()));
                    } else {
                        units.push(path.clone());
                    }
                }
                above.insert(listed.path.clone(), listed);
            }
            let enough = dirs.len() >= wanted || dirs.is_empty() || depth >= deepest;
            if enough || token.is_cancelled() {
                units.extend(dirs.into_iter().map(|(_, _, path)| path));
                break;
            }
            // A directory that cannot be opened is left to the walkers, which report it.
            frontier = dirs
                .into_iter()
                .filter_map(|(parent, name, path)| {
                    let dir = open_subdir(&parent.dir, &name).ok()?;
                    Some(Level {
                        dir,
                        path,
                        depth,
                        rules: parent.rules.clone(),
                    })
                })
                .collect();
            depth += 1;
        }
        sort_as_walked(&mut units);
        let index = units
            .iter()
            .enumerate()
            .map(|(i, p)| (p.clone(), i))
            .collect();
        Split {
            claimed: Arc::new(units.iter().map(|_| AtomicBool::new(false)).collect()),
            work: Arc::new(Work::new(parts, units.len())),
            above: Arc::new(above),
            units,
            index: Arc::new(index),
            depth,
        }
    }

    /// Walks the share of walker `part` of a split tree: the levels above the units from
    /// `root` (as every walker does), the units it reaches first, and then — once no unit
    /// is left to take — directories of units other walkers are still in, taken from
    /// their queues ([`Split`]'s shared work). Units at or past `stop` (which may drop
    /// while the walk runs) are skipped. `visit` gets each entry, in no particular order
    /// within a unit, with its unit (`None` for the directories above the units, which
    /// part 0 reports) and the handle of the directory the entry is in, to open it by its
    /// name alone ([`Workspace::open_entry`]); `unit_done` is called, by whichever walker
    /// finished its last directory, once a unit has been walked. Returns the walk's errors.
    #[allow(clippy::too_many_arguments)]
    pub fn walk_part(
        &self,
        workspace: &Workspace,
        root: &Path,
        split: &Split,
        part: usize,
        stop: &AtomicUsize,
        token: &CancellationToken,
        mut visit: impl FnMut(Entry, Option<usize>, &Dir),
        mut unit_done: impl FnMut(usize),
    ) -> Vec<String> {
        split.work.active.fetch_add(1, Ordering::SeqCst);
        let mut walker = Walker {
            options: self,
            split,
            part,
            stop,
            token,
            visit: &mut visit,
            unit_done: &mut unit_done,
            errors: Vec::new(),
        };
        match split.above.get(root) {
            Some(listed) => walker.above(listed),
            None => match self.start(workspace, root) {
                Ok(level) => walker.above(&Listed::of(self, level)),
                Err(e) => walker.errors.push(format!("{}: {e}", root.display())),
            },
        }
        walker.drain();
        walker.help();
        walker.errors
    }
}

/// A directory of a unit that a walker has listed but not entered: on its walker's queue,
/// where another walker may take it.
#[derive(Debug)]
struct Pending {
    parent: Arc<Dir>,
    name: OsString,
    path: PathBuf,
    depth: usize,
    rules: Option<Arc<Rules>>,
    unit: usize,
}

/// A directory above a split's units, as the split listed it: every walker goes through
/// it, so its handle, the entries the walk keeps and the rules inside it are read once.
#[derive(Debug)]
struct Listed {
    dir: Dir,
    path: PathBuf,
    depth: usize,
    rules: Option<Arc<Rules>>,
    entries: Vec<Kept>,
    /// Why its listing stopped early, if it did.
    errors: Vec<String>,
}

impl Listed {
    fn of(options: &WalkOptions, level: Level) -> Listed {
        let mut errors = Vec::new();
        let (rules, entries) = options.kept_entries(&level, &mut errors);
        Listed {
            dir: level.dir,
            path: level.path,
            depth: level.depth,
            rules,
            entries,
            errors,
        }
    }
}

/// What the walkers of one split tree share beyond the units' claims: each walker's queue
/// of directories found and not yet entered, and how many directories of each unit are
/// still to walk. A walker takes the deepest directory of its own queue (depth first);
/// one with no unit left to claim takes the shallowest of another's — the biggest piece
/// of work left — so the last big unit is walked by every walker rather than by the one
/// that happened to reach it.
#[derive(Debug)]
struct Work {
    queues: Vec<Mutex<VecDeque<Pending>>>,
    /// Directories of each unit listed or queued and not yet finished.
    left: Vec<AtomicUsize>,
    /// Walkers that may still queue work: in the levels above the units, in a directory,
    /// or trying to take one. A walker counts from its start: one whose job has not
    /// started yet (its pool thread busy elsewhere, perhaps with a walker waiting on this
    /// one) is never waited for — it will find every unit taken.
    active: AtomicUsize,
    /// Walkers waiting for work, woken when some is queued or none can come.
    waiting: AtomicUsize,
    idle: Mutex<()>,
    wake: Condvar,
}

impl Work {
    fn new(parts: usize, units: usize) -> Work {
        Work {
            queues: (0..parts).map(|_| Mutex::new(VecDeque::new())).collect(),
            left: (0..units).map(|_| AtomicUsize::new(0)).collect(),
            active: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            idle: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    fn push(&self, part: usize, pending: Pending) {
        self.queues[part].lock().push_back(pending);
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.wake.notify_one();
        }
    }

    /// The shallowest directory another walker has queued.
    fn steal(&self, part: usize) -> Option<Pending> {
        let n = self.queues.len();
        (1..n).find_map(|i| self.queues[(part + i) % n].lock().pop_front())
    }

    fn is_empty(&self) -> bool {
        self.queues.iter().all(|q| q.lock().is_empty())
    }
}

/// One walker of a split tree ([`WalkOptions::walk_part`]).
struct Walker<'a, 'v> {
    options: &'a WalkOptions,
    split: &'a Split,
    part: usize,
    stop: &'a AtomicUsize,
    token: &'a CancellationToken,
    visit: &'v mut dyn FnMut(Entry, Option<usize>, &Dir),
    unit_done: &'v mut dyn FnMut(usize),
    errors: Vec<String>,
}

impl Walker<'_, '_> {
    fn stopped(&self, unit: usize) -> bool {
        unit >= self.stop.load(Ordering::Acquire) || self.token.is_cancelled()
    }

    /// Whether the walk goes into a directory found at `depth`.
    fn enters(&self, depth: usize) -> bool {
        self.options.max_depth.is_none_or(|max| depth < max)
    }

    /// A directory above the units' depth: every walker goes through it, part 0 reports
    /// its directories, and each unit in it goes to the first walker that reaches it.
    fn above(&mut self, listed: &Listed) {
        if self.token.is_cancelled() {
            return;
        }
        self.errors.extend(listed.errors.iter().cloned());
        let depth = listed.depth + 1;
        let split = self.split;
        for (name, path, kind) in &listed.entries {
            let (path, kind) = (path.clone(), *kind);
            let is_dir = kind == EntryKind::Dir;
            let entry = Entry { path, depth, kind };
            let opened = |walker: &mut Self, path: &Path| match open_subdir(&listed.dir, name) {
                Ok(dir) => Some(Level {
                    dir,
                    path: path.to_path_buf(),
                    depth,
                    rules: listed.rules.clone(),
                }),
                Err(e) => {
                    walker.errors.push(format!("{}: {e}", path.display()));
                    None
                }
            };
            if is_dir && depth < split.depth {
                let path = entry.path.clone();
                if self.part == 0 {
                    (self.visit)(entry, None, &listed.dir);
                }
                match split.above.get(&path) {
                    Some(below) => self.above(below),
                    // The split could not open it: this walker tries, and reports why not.
                    None => {
                        if let Some(child) = opened(self, &path) {
                            self.above(&Listed::of(self.options, child));
                        }
                    }
                }
                continue;
            }
            let Some(&unit) = split.index.get(&entry.path) else {
                // Appeared after the split: part 0 walks it on its own, under no unit.
                if self.part == 0 {
                    let path = entry.path.clone();
                    (self.visit)(entry, None, &listed.dir);
                    if is_dir
                        && self.enters(depth)
                        && let Some(child) = opened(self, &path)
                    {
                        let (options, visit) = (self.options, &mut *self.visit);
                        options.descend(
                            child,
                            false,
                            self.token,
                            &mut |e, dir| visit(e, None, dir),
                            &mut self.errors,
                        );
                    }
                }
                continue;
            };
            if self.stopped(unit) || split.claimed[unit].swap(true, Ordering::AcqRel) {
                continue;
            }
            let path = entry.path.clone();
            (self.visit)(entry, Some(unit), &listed.dir);
            let child = (is_dir && self.enters(depth))
                .then(|| opened(self, &path))
                .flatten();
            match child {
                Some(child) => {
                    split.work.left[unit].store(1, Ordering::Release);
                    self.unit_dir(child, unit);
                    self.drain();
                }
                None => (self.unit_done)(unit),
            }
            if self.token.is_cancelled() {
                return;
            }
        }
    }

    /// Lists a directory of `unit`: reports its entries and queues its directories.
    fn unit_dir(&mut self, level: Level, unit: usize) {
        let work = &self.split.work;
        if !self.stopped(unit) {
            let (rules, entries) = self.options.kept_entries(&level, &mut self.errors);
            let depth = level.depth + 1;
            let parent = Arc::new(level.dir);
            for (name, path, kind) in entries {
                let is_dir = kind == EntryKind::Dir;
                if is_dir && self.enters(depth) {
                    work.left[unit].fetch_add(1, Ordering::AcqRel);
                    let pending = Pending {
                        parent: Arc::clone(&parent),
                        name,
                        path: path.clone(),
                        depth,
                        rules: rules.clone(),
                        unit,
                    };
                    (self.visit)(Entry { path, depth, kind }, Some(unit), &parent);
                    work.push(self.part, pending);
                } else {
                    (self.visit)(Entry { path, depth, kind }, Some(unit), &parent);
                }
            }
        }
        if work.left[unit].fetch_sub(1, Ordering::AcqRel) == 1 {
            (self.unit_done)(unit);
        }
    }

    /// Enters a queued directory.
    fn take(&mut self, pending: Pending) {
        let Pending {
            parent,
            name,
            path,
            depth,
            rules,
            unit,
        } = pending;
        if !self.stopped(unit) {
            match open_subdir(&parent, &name) {
                Ok(dir) => {
                    drop(parent);
                    let level = Level {
                        dir,
                        path,
                        depth,
                        rules,
                    };
                    return self.unit_dir(level, unit);
                }
                Err(e) => self.errors.push(format!("{}: {e}", path.display())),
            }
        }
        if self.split.work.left[unit].fetch_sub(1, Ordering::AcqRel) == 1 {
            (self.unit_done)(unit);
        }
    }

    /// Walks this walker's own queue, deepest first, until it is empty.
    fn drain(&mut self) {
        loop {
            let next = self.split.work.queues[self.part].lock().pop_back();
            match next {
                Some(pending) => self.take(pending),
                None => return,
            }
        }
    }

    /// With no unit left to claim: takes what other walkers have queued until every
    /// walker is done.
    fn help(&mut self) {
        let work = &self.split.work;
        if work.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            work.wake.notify_all();
        }
        while !self.token.is_cancelled() {
            work.active.fetch_add(1, Ordering::SeqCst);
            if let Some(pending) = work.steal(self.part) {
                self.take(pending);
                self.drain();
                work.active.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            if work.active.fetch_sub(1, Ordering::SeqCst) == 1 {
                work.wake.notify_all();
            }
            if work.active.load(Ordering::SeqCst) == 0 && work.is_empty() {
                return;
            }
            let mut idle = work.idle.lock();
            work.waiting.fetch_add(1, Ordering::SeqCst);
            if work.is_empty() && work.active.load(Ordering::SeqCst) > 0 {
                work.wake
                    .wait_for(&mut idle, std::time::Duration::from_millis(1));
            }
            work.waiting.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// One search's own walk inside a fused walk ([`walk_fused`]): where it would start, what
/// it would include, and (for a search that stops at a limit) its own split into units.
pub struct Share<'a> {
    /// The directory its own walk starts at.
    pub start: &'a Path,
    /// Its own options: hidden, ignored, overrides, types.
    pub options: &'a WalkOptions,
    /// Its own split, whose unit each of its files is reported with.
    pub split: Option<&'a Split>,
}

/// Where a share stands at one directory of a fused walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Its own walk never comes here.
    Off,
    /// An ancestor of its start: walked through, nothing yielded.
    Above,
    /// Inside its own walk, in this unit of its split.
    In(Option<usize>),
}

/// A directory of a fused walk and where each share stands there.
struct FusedLevel {
    level: Level,
    reach: Vec<Reach>,
}

/// The files one fused walk found for a share: what [`walk_fused`] hands its visitor.
pub type Takers<'a> = &'a [(usize, Option<usize>)];

/// One walk that serves several searches at once: the tree under `root` (an ancestor of
/// every share's start, or one of them) is walked once, in parallel on the current pool,
/// and every file is handed to `visit` once with the shares whose own walk would have
/// yielded it — each with the file's unit in that share's split. A directory is entered
/// when some share's own walk enters it (or leads to its start); each share's ignore
/// files, hidden rule, overrides and types decide for it alone, exactly as its own walk.
/// The visitor also gets the handle of the directory the file is in, to open it by its
/// name alone ([`Workspace::open_entry`]).
/// `live(share)` false drops a share from the rest of the walk (its call was cancelled);
/// the walk stops when no share is live or `token` is cancelled. Returns each share's walk
/// errors, sorted and deduplicated.
pub fn walk_fused(
    workspace: &Workspace,
    root: &Path,
    shares: &[Share<'_>],
    live: &(dyn Fn(usize) -> bool + Sync),
    token: &CancellationToken,
    visit: &(dyn Fn(&Entry, &Dir, Takers<'_>) + Sync),
) -> Vec<Vec<String>> {
    if let [share] = shares
        && share.start == root
    {
        return vec![walk_alone(workspace, share, live, token, visit)];
    }
    // The loosest of the shares' options: read ignore files unless every share ignores
    // them; split the tree as widely as any share walks it.
    let union = WalkOptions {
        include_hidden: shares.iter().any(|s| s.options.include_hidden),
        include_ignored: shares.iter().all(|s| s.options.include_ignored),
        ..WalkOptions::default()
    };
    let root_depth = root.components().count();
    let start_depths: Vec<usize> = shares
        .iter()
        .map(|s| s.start.components().count() - root_depth)
        .collect();
    let parts = parts();
    let split = union.split(workspace, root, parts, token);
    let errors = Mutex::new(vec![Vec::new(); shares.len()]);
    let fused = Fused {
        union: &union,
        shares,
        start_depths: &start_depths,
        live,
        token,
        visit,
    };
    rayon::scope(|scope| {
        for part in 0..parts {
            let (fused, split, errors) = (&fused, &split, &errors);
            scope.spawn(move |_| {
                let found = fused.walk_part(workspace, root, split, part);
                let mut all = errors.lock();
                for (mine, theirs) in all.iter_mut().zip(found) {
                    mine.extend(theirs);
                }
            });
        }
    });
    let mut errors = errors.into_inner();
    for errors in &mut errors {
        errors.sort();
        errors.dedup();
    }
    errors
}

/// A fused walk with one share (searches that all walk the same tree the same way): its
/// own walk, walkers sharing out units and the last unit's directories as any walk's do.
fn walk_alone(
    workspace: &Workspace,
    share: &Share<'_>,
    live: &(dyn Fn(usize) -> bool + Sync),
    token: &CancellationToken,
    visit: &(dyn Fn(&Entry, &Dir, Takers<'_>) + Sync),
) -> Vec<String> {
    let own;
    let split = match share.split {
        Some(split) => split,
        None => {
            own = share.options.split(workspace, share.start, parts(), token);
            &own
        }
    };
    // Cancelling the share stops the walk at once: every unit is past the stop.
    let stop = AtomicUsize::new(usize::MAX);
    let options = share.options;
    options.walk_split(
        workspace,
        share.start,
        split,
        &stop,
        token,
        |entry, unit, dir| {
            if !entry.is_file() {
                return;
            }
            if !live(0) {
                stop.store(0, Ordering::Release);
                return;
            }
            visit(&entry, dir, &[(0, unit)]);
        },
    )
}

/// What every walker of a fused walk shares.
struct Fused<'a> {
    union: &'a WalkOptions,
    shares: &'a [Share<'a>],
    /// How deep below the root each share's start is.
    start_depths: &'a [usize],
    live: &'a (dyn Fn(usize) -> bool + Sync),
    token: &'a CancellationToken,
    visit: &'a (dyn Fn(&Entry, &Dir, Takers<'_>) + Sync),
}

impl Fused<'_> {
    fn walk_part(
        &self,
        workspace: &Workspace,
        root: &Path,
        split: &Split,
        part: usize,
    ) -> Vec<Vec<String>> {
        let keep = |e: &Entry| split.keeps(e, part, usize::MAX);
        let mut errors = vec![Vec::new(); self.shares.len()];
        match self.union.start(workspace, root) {
            Ok(level) => {
                let reach = self
                    .shares
                    .iter()
                    .map(|s| {
                        if s.start == root {
                            Reach::In(None)
                        } else {
                            Reach::Above
                        }
                    })
                    .collect();
                let mut takers = Vec::new();
                self.descend(FusedLevel { level, reach }, &keep, &mut takers, &mut errors);
            }
            Err(e) => {
                for errors in &mut errors {
                    errors.push(format!("{}: {e}", root.display()));
                }
            }
        }
        errors
    }

    /// Where share `i` stands at `path` (an entry `depth` below the root, `name` its last
    /// component) given where it stood at the parent directory.
    #[allow(clippy::too_many_arguments)]
    fn reach(
        &self,
        i: usize,
        parent: Reach,
        rules: Option<&Rules>,
        path: &Path,
        name: &OsStr,
        depth: usize,
        is_dir: bool,
    ) -> Reach {
        let share = &self.shares[i];
        match parent {
            Reach::Off => Reach::Off,
            Reach::Above if path == share.start => Reach::In(None),
            Reach::Above if is_dir && share.start.starts_with(path) => Reach::Above,
            Reach::Above => Reach::Off,
            Reach::In(unit) => {
                if !(self.live)(i) || share.options.skips(rules, path, name, is_dir) {
                    return Reach::Off;
                }
                let Some(split) = share.split else {
                    return Reach::In(None);
                };
                // As in `walk_part`: entries down to the units' depth are looked up (files
                // above it are units too); deeper ones are in their ancestor's unit.
                if depth - self.start_depths[i] <= split.depth {
                    Reach::In(split.index.get(path).copied())
                } else {
                    Reach::In(unit)
                }
            }
        }
    }

    fn descend(
        &self,
        at: FusedLevel,
        keep: Keep<'_>,
        takers: &mut Vec<(usize, Option<usize>)>,
        errors: &mut [Vec<String>],
    ) {
        if self.token.is_cancelled() || !(0..self.shares.len()).any(|i| (self.live)(i)) {
            return;
        }
        let FusedLevel { level, reach } = at;
        let (entries, listing) = list(&level.dir);
        if let Err(e) = listing {
            for (i, r) in reach.iter().enumerate() {
                if matches!(r, Reach::In(_)) {
                    errors[i].push(format!("{}: {e}", level.path.display()));
                }
            }
        }
        let rules = (!self.union.include_ignored)
            .then(|| level.rules_below(&entries))
            .flatten();
        let depth = level.depth + 1;
        let mut child_reach = Vec::with_capacity(reach.len());
        for (name, kind) in entries {
            let path = level.path.join(&name);
            let is_dir = kind == EntryKind::Dir;
            child_reach.clear();
            for (i, &parent) in reach.iter().enumerate() {
                let r = self.reach(i, parent, rules.as_deref(), &path, &name, depth, is_dir);
                child_reach.push(r);
            }
            if child_reach.iter().all(|r| *r == Reach::Off) {
                continue;
            }
            let entry = Entry { path, depth, kind };
            if !keep(&entry) {
                continue;
            }
            if !is_dir {
                if entry.is_file() {
                    takers.clear();
                    takers.extend(child_reach.iter().enumerate().filter_map(|(i, r)| match r {
                        Reach::In(unit) => Some((i, *unit)),
                        _ => None,
                    }));
                    if !takers.is_empty() {
                        (self.visit)(&entry, &level.dir, takers);
                    }
                }
                continue;
            }
            match open_subdir(&level.dir, &name) {
                Ok(dir) => {
                    let child = Level {
                        dir,
                        path: entry.path,
                        depth,
                        rules: rules.clone(),
                    };
                    let at = FusedLevel {
                        level: child,
                        reach: child_reach.clone(),
                    };
                    self.descend(at, keep, takers, errors);
                }
                Err(e) => {
                    for (i, r) in child_reach.iter().enumerate() {
                        if matches!(r, Reach::In(_)) {
                            errors[i].push(format!("{}: {e}", entry.path.display()));
                        }
                    }
                }
            }
        }
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

    /// A walker whose sibling's job never starts (its pool thread busy elsewhere) walks
    /// the whole tree and returns, rather than waiting for the sibling.
    #[test]
    fn a_walker_never_waits_for_one_that_has_not_started() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        for i in 0..40 {
            std::fs::create_dir_all(root.join(format!("u{i:02}")).join("deeper")).unwrap();
            std::fs::write(root.join(format!("u{i:02}")).join("deeper").join("f"), "x").unwrap();
        }
        let workspace = Workspace::new([root.clone()]).unwrap();
        let options = WalkOptions::default();
        let token = CancellationToken::new();
        let split = options.split(&workspace, &root, 2, &token);
        let (tx, rx) = std::sync::mpsc::channel();
        // On its own thread, so that a walker stuck waiting fails the test, not hangs it.
        std::thread::spawn(move || {
            let mut files = 0;
            let errors = options.walk_part(
                &workspace,
                &root,
                &split,
                0,
                &AtomicUsize::new(usize::MAX),
                &token,
                |entry, _, _| files += usize::from(entry.is_file()),
                |_| {},
            );
            let _ = tx.send((files, errors));
        });
        let (files, errors) = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the walker returned");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(files, 40);
    }

    /// Forty units, the last of which holds four directories: whichever walker takes it,
    /// the other — out of units — must walk part of it. Each file visit inside it waits
    /// (up to a deadline) until both walkers have visited one, so without the shared queues
    /// the walker that took the last unit waits alone and the test fails.
    #[test]
    fn an_idle_walker_takes_directories_of_a_unit_another_is_walking() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        for i in 0..40 {
            std::fs::create_dir(root.join(format!("u{i:02}"))).unwrap();
        }
        for s in 0..4 {
            let dir = root.join("u39").join(format!("s{s}"));
            std::fs::create_dir(&dir).unwrap();
            std::fs::write(dir.join("f"), "x").unwrap();
        }
        let workspace = Workspace::new([root.clone()]).unwrap();
        let options = WalkOptions::default();
        let token = CancellationToken::new();
        let split = options.split(&workspace, &root, 2, &token);
        assert_eq!(split.units.len(), 40, "the units are the forty directories");
        let stop = AtomicUsize::new(usize::MAX);
        let inside = Mutex::new([false; 2]);
        let both = Condvar::new();
        let found = Mutex::new(Vec::new());
        let done = Mutex::new(Vec::new());
        std::thread::scope(|scope| {
            for part in 0..2 {
                let (options, workspace, root, split) = (&options, &workspace, &root, &split);
                let (stop, token, inside, both, found, done) =
                    (&stop, &token, &inside, &both, &found, &done);
                scope.spawn(move || {
                    let errors = options.walk_part(
                        workspace,
                        root,
                        split,
                        part,
                        stop,
                        token,
                        |entry, unit, _| {
                            if entry.is_file() {
                                assert_eq!(unit, Some(39));
                                let mut seen = inside.lock();
                                seen[part] = true;
                                both.notify_all();
                                let deadline =
                                    std::time::Instant::now() + std::time::Duration::from_secs(10);
                                while !seen.iter().all(|s| *s)
                                    && !both.wait_until(&mut seen, deadline).timed_out()
                                {
                                }
                                found.lock().push(entry.into_path());
                            }
                        },
                        |unit| done.lock().push(unit),
                    );
                    assert!(errors.is_empty(), "{errors:?}");
                });
            }
        });
        assert_eq!(
            *inside.lock(),
            [true, true],
            "both walkers walked inside u39"
        );
        let mut found = found.into_inner();
        found.sort();
        let expected: Vec<PathBuf> = (0..4)
            .map(|s| root.join("u39").join(format!("s{s}")).join("f"))
            .collect();
        assert_eq!(found, expected, "every file once");
        let mut done = done.into_inner();
        done.sort_unstable();
        assert_eq!(
            done,
            (0..40).collect::<Vec<_>>(),
            "every unit finished once"
        );
    }
}
