//! Deterministic workspace analysis: which languages a workspace holds and how many lines
//! of code, comments and blanks each has, in agreement with tokei; the `TODO`/`FIXME`/
//! `HACK`/`XXX` markers and where the first ones are; the largest files; binary, ignored
//! and hidden files; and the project manifests with the names they declare. No model is
//! involved, so it works on the first click.
//!
//! [`run`] is a fan-out of Query-lane tasks in the caller's session: one task walks the
//! tree the way the tools do (ripgrep's ignore rules, on the shared pool), then every file
//! is handed out in path order, in chunks, as one batch — so the session's lane events say
//! how much work there is as soon as the walk is over, and progress moves chunk by chunk.
//! Each file is read once, inside its chunk's task, and everything is taken from that one
//! read. The chunks' results are merged in path order, so the report is the same from run
//! to run: "the first 50 markers" are the first 50 by path and line.
//!
//! Cancelling the token (or the session, or a task, from outside) stops the walk and every
//! chunk at its next file; [`run`] returns only once each of its tasks is over in the
//! lanes' books, so nothing of it is left running or queued.

pub mod count;
pub mod languages;
mod manifests;
mod markers;
mod report;
mod scan;
mod walk;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;

use crate::lanes::{EventKind, Lane, LaneError, Lanes, SessionId, Task, TaskId};
use crate::tools::Toolbox;
use count::Counts;
use languages::Language;
use markers::MarkerFinder;
use scan::{ChunkResult, Limits};
use walk::Listing;

pub use manifests::ManifestKind;
pub use markers::MarkerKind;
pub use walk::Skipped;

/// Fewest files per analysis task.
const MIN_CHUNK_FILES: usize = 16;
/// The batch is cut into about this many tasks at most: enough for progress to move and
/// the pool to balance, few enough that the events of one batch never overflow a
/// subscriber's buffer.
const TARGET_CHUNKS: usize = 256;

/// What to analyze, and how much of the long lists to keep.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AnalyzeOptions {
    /// The directory to analyze: absolute, or relative to the workspace's primary root;
    /// it must lie inside the workspace.
    pub root: PathBuf,
    /// How many marker locations to keep (the first by path and line); the counts are
    /// always complete.
    pub marker_locations: usize,
    /// How many of the largest files to list.
    pub largest_files: usize,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        AnalyzeOptions {
            root: PathBuf::from("."),
            marker_locations: 50,
            largest_files: 10,
        }
    }
}

/// The result of an analysis: structured data, with [`to_markdown`](Analysis::to_markdown)
/// for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Analysis {
    /// The directory analyzed, canonical.
    pub root: String,
    /// Per language, the most code first: tokei's per-language rows.
    pub languages: Vec<LanguageStats>,
    /// Every language together, embedded blocks included: tokei's "Total" row.
    pub total: Totals,
    /// The files the walk found, by kind.
    pub files: FileSummary,
    /// What the ignore rules and the hidden-file rule left out.
    pub skipped: Skipped,
    /// `TODO`, `FIXME`, `HACK` and `XXX` markers.
    pub markers: Markers,
    /// The largest files, biggest first.
    pub largest_files: Vec<LargeFile>,
    /// Project manifests, by path.
    pub manifests: Vec<Manifest>,
    /// Files and directories that could not be read (at most a few dozen shown).
    pub errors: Vec<String>,
    /// How long the analysis took, in milliseconds.
    pub elapsed_ms: u64,
    /// How many Query-lane tasks it ran.
    pub tasks: u64,
}

/// One language's files and lines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LanguageStats {
    /// Its name, as tokei prints it ("C++ Header", "Plain Text").
    pub name: String,
    /// Files in it.
    pub files: u64,
    /// Lines of code, comments and blanks, embedded blocks left out (as tokei's row).
    pub lines: LineCounts,
    /// Blocks of other languages inside its files — Rust doc comments are Markdown,
    /// fenced code in Markdown is its language — by child language, most lines first.
    pub embedded: Vec<EmbeddedStats>,
}

/// Code, comment and blank lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LineCounts {
    /// Lines with code.
    pub code: u64,
    /// Lines with nothing but comments.
    pub comments: u64,
    /// Lines with nothing but whitespace.
    pub blanks: u64,
}

impl LineCounts {
    /// All lines.
    pub fn total(&self) -> u64 {
        self.code + self.comments + self.blanks
    }
}

impl From<Counts> for LineCounts {
    fn from(c: Counts) -> Self {
        LineCounts {
            code: c.code,
            comments: c.comments,
            blanks: c.blanks,
        }
    }
}

impl std::ops::AddAssign for LineCounts {
    fn add_assign(&mut self, other: LineCounts) {
        self.code += other.code;
        self.comments += other.comments;
        self.blanks += other.blanks;
    }
}

/// Lines of one language embedded in another's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EmbeddedStats {
    /// The embedded language.
    pub name: String,
    /// Its lines, including blocks nested within it.
    pub lines: LineCounts,
}

/// Every language together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    /// Files with a detected language.
    pub files: u64,
    /// Their lines, embedded blocks included.
    pub lines: LineCounts,
}

/// The files the walk found, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileSummary {
    /// Every regular file the walk found.
    pub files: u64,
    /// Their size, in bytes.
    pub bytes: u64,
    /// Files with a detected language (counted like tokei, binary or not).
    pub counted: u64,
    /// Files that look binary (a NUL byte in their first 8,000 bytes).
    pub binary: u64,
    /// Text files of no known language.
    pub other_text: u64,
    /// Files of no known language above 8 MiB, sniffed but not read for markers.
    pub large_unread: u64,
}

/// Marker counts, and the first locations.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Markers {
    /// `TODO`s.
    pub todo: u64,
    /// `FIXME`s.
    pub fixme: u64,
    /// `HACK`s.
    pub hack: u64,
    /// `XXX`s.
    pub xxx: u64,
    /// Files holding at least one.
    pub files: u64,
    /// The first ones by path and line.
    pub locations: Vec<MarkerLocation>,
}

impl Markers {
    /// All markers.
    pub fn total(&self) -> u64 {
        self.todo + self.fixme + self.hack + self.xxx
    }

    /// The count of one kind.
    pub fn count(&self, kind: MarkerKind) -> u64 {
        match kind {
            MarkerKind::Todo => self.todo,
            MarkerKind::Fixme => self.fixme,
            MarkerKind::Hack => self.hack,
            MarkerKind::Xxx => self.xxx,
        }
    }
}

/// Where one marker is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MarkerLocation {
    /// Which marker.
    pub kind: MarkerKind,
    /// The file, relative to the root.
    pub path: String,
    /// 1-based line.
    pub line: u64,
    /// The line, trimmed (cut after 120 characters).
    pub text: String,
}

/// A large file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LargeFile {
    /// The file, relative to the root.
    pub path: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its language, if detected.
    pub language: Option<String>,
}

/// A project manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// The file, relative to the root.
    pub path: String,
    /// Its build system or package manager.
    pub kind: ManifestKind,
    /// The project name it declares, if any.
    pub name: Option<String>,
    /// Whether it roots a workspace of several projects (Cargo `[workspace]`, npm
    /// `workspaces`).
    pub workspace: bool,
}

/// Analyzes `options.root` with a fan-out of Query-lane tasks in `session`, stopping when
/// `token` is cancelled. Returns once every task it started is over.
///
/// Errors: the root cannot be used (outside the workspace, missing, not a directory), or
/// the analysis was cancelled.
pub async fn run(
    toolbox: &Toolbox,
    options: &AnalyzeOptions,
    session: SessionId,
    token: CancellationToken,
) -> Result<Analysis, String> {
    let started = Instant::now();
    let finder = Arc::new(MarkerFinder::new()?);
    let lanes = toolbox.lanes().clone();
    // Everything started here is cancelled if this future is dropped half way.
    let token = token.child_token();
    let _cancel_on_drop = token.clone().drop_guard();
    let tracker = Tracker::start(&lanes, session.clone());
    let outcome = fan_out(toolbox, options, &session, &token, &finder, &tracker).await;
    tracker.drained().await;
    let (listing, parts, mut errors) = outcome?;
    if token.is_cancelled() {
        return Err(cancelled(&listing.root));
    }
    let tasks = tracker.submitted.lock().len() as u64;
    let mut analysis = merge(listing, parts, options);
    analysis.errors.append(&mut errors);
    analysis.tasks = tasks;
    analysis.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(analysis)
}

/// The name of a whole analysis as one Query task ([`task`]).
pub const TASK: &str = "analyze";

/// The analysis of `options.root` as one Query task whose payload says everything it needs
/// (`{"path": ROOT, "markerLocations": …, "largestFiles": …}`, the shape [`task_options`]
/// reads): what an external lane hands to a worker that has the repository. It fans out on
/// its own lanes there. Here it runs [`run`] in `session`; a caller running here calls
/// [`run`] itself instead, so the analysis's own tasks never wait behind their parent's slot.
pub fn task(toolbox: &Toolbox, options: &AnalyzeOptions, session: SessionId) -> Task<Analysis> {
    let payload = json!({
        "path": options.root,
        "markerLocations": options.marker_locations,
        "largestFiles": options.largest_files,
    });
    let (toolbox, options, inner) = (toolbox.clone(), options.clone(), session.clone());
    Task::future(Lane::Query, TASK, move |ctx| {
        let (toolbox, options, session) = (toolbox.clone(), options.clone(), inner.clone());
        async move {
            run(&toolbox, &options, session, ctx.token().clone())
                .await
                .map_err(crate::lanes::TaskError::fatal)
        }
    })
    .session(session)
    .payload(payload)
}

/// The options of an analysis [`task`]'s payload.
pub fn task_options(payload: &serde_json::Value) -> Result<AnalyzeOptions, String> {
    let defaults = AnalyzeOptions::default();
    let root = payload.get("path").and_then(serde_json::Value::as_str);
    let count = |key: &str, default: usize| match payload.get(key) {
        None => Ok(default),
        Some(v) => v
            .as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| format!("an analysis task's `{key}` is not a count: {v}")),
    };
    Ok(AnalyzeOptions {
        root: root.map_or(defaults.root, PathBuf::from),
        marker_locations: count("markerLocations", defaults.marker_locations)?,
        largest_files: count("largestFiles", defaults.largest_files)?,
    })
}

fn cancelled(root: &std::path::Path) -> String {
    format!("the analysis of {} was cancelled", root.display())
}

type FanOut = (Listing, Vec<ChunkResult>, Vec<String>);

/// The walk, then the chunks; what they found, and the chunk failures as messages.
async fn fan_out(
    toolbox: &Toolbox,
    options: &AnalyzeOptions,
    session: &SessionId,
    token: &CancellationToken,
    finder: &Arc<MarkerFinder>,
    tracker: &Tracker,
) -> Result<FanOut, String> {
    let lanes = toolbox.lanes();
    let requested = options.root.clone();
    let workspace = toolbox.workspace().clone();
    let inflight = tracker.inflight.clone();
    let walk = Task::blocking(Lane::Query, "analyze.walk", move |ctx| {
        let _running = inflight.enter();
        ctx.checkpoint()?;
        let root = match workspace.resolve(&requested.to_string_lossy()) {
            Ok(root) if workspace.metadata(&root).is_ok_and(|m| m.is_dir()) => root,
            Ok(root) => return Ok(Err(format!("{} is not a directory", root.display()))),
            Err(e) => return Ok(Err(e.message)),
        };
        match walk::list(&workspace, &root, ctx.token()) {
            Some(listing) => Ok(Ok(listing)),
            None => Err(crate::lanes::TaskError::cancelled()),
        }
    })
    .session(session.clone())
    .payload(json!({ "root": options.root }))
    .cancelled_by(token);
    let handle = lanes.submit(walk);
    tracker.submitted(&[handle.id()]);
    let mut listing = match tracker.join(lanes, token, handle).await {
        Some(Ok(Ok(listing))) => listing,
        Some(Ok(Err(message))) => return Err(message),
        Some(Err(LaneError::Cancelled)) | None => return Err(cancelled(&options.root)),
        Some(Err(e)) => {
            return Err(format!(
                "the walk of {} failed: {e}",
                options.root.display()
            ));
        }
    };

    let limits = Limits {
        marker_locations: options.marker_locations,
        largest_files: options.largest_files,
    };
    let files = Arc::new(std::mem::take(&mut listing.files));
    let root = Arc::new(listing.root.clone());
    let workspace = toolbox.workspace().clone();
    let per_chunk = files.len().div_ceil(TARGET_CHUNKS).max(MIN_CHUNK_FILES);
    let ranges: Vec<std::ops::Range<usize>> = (0..files.len())
        .step_by(per_chunk)
        .map(|start| start..(start + per_chunk).min(files.len()))
        .collect();
    let tasks: Vec<Task<ChunkResult>> = ranges
        .iter()
        .map(|range| {
            let (files, root, finder) = (files.clone(), root.clone(), finder.clone());
            let workspace = workspace.clone();
            let inflight = tracker.inflight.clone();
            let payload = json!({
                "root": root.as_path(),
                "first": files[range.start],
                "files": range.len(),
            });
            let range = range.clone();
            Task::blocking(Lane::Query, "analyze.files", move |ctx| {
                let _running = inflight.enter();
                scan::chunk(
                    &workspace,
                    &root,
                    &files[range.clone()],
                    &finder,
                    limits,
                    ctx,
                )
            })
            .session(session.clone())
            .payload(payload)
            .cancelled_by(token)
        })
        .collect();
    let batch = lanes.submit_batch(tasks);
    tracker.submitted(&batch.ids());
    let Some(results) = tracker.join(lanes, token, batch.join()).await else {
        return Err(cancelled(&listing.root));
    };
    let mut parts = Vec::with_capacity(results.len());
    let mut errors = Vec::new();
    for (result, range) in results.into_iter().zip(&ranges) {
        match result {
            Ok(part) => parts.push(part),
            Err(LaneError::Cancelled) => return Err(cancelled(&listing.root)),
            Err(e) => errors.push(format!(
                "{} files from {} on were not analyzed: {e}",
                range.len(),
                files[range.start].display()
            )),
        }
    }
    Ok((listing, parts, errors))
}

/// Merges the chunks' results, in path order, into the analysis.
fn merge(listing: Listing, parts: Vec<ChunkResult>, options: &AnalyzeOptions) -> Analysis {
    let mut languages: BTreeMap<Language, (u64, Counts, BTreeMap<Language, Counts>)> =
        BTreeMap::new();
    let mut files = FileSummary::default();
    let mut markers = Markers::default();
    let mut marker_counts = [0u64; 4];
    let mut largest = Vec::new();
    let mut manifests = Vec::new();
    let mut errors = listing.errors;
    let mut unreported_errors = 0;
    for part in parts {
        for (language, lp) in part.languages {
            let entry = languages.entry(language).or_default();
            entry.0 += lp.files;
            entry.1 += lp.counts;
            for (child, counts) in lp.embedded {
                *entry.2.entry(child).or_default() += counts;
            }
        }
        files.files += part.files;
        files.bytes += part.bytes;
        files.binary += part.binary;
        files.other_text += part.other_text;
        files.large_unread += part.unread_large;
        for (total, n) in marker_counts.iter_mut().zip(part.marker_counts) {
            *total += n;
        }
        markers.files += part.marker_files;
        for at in part.markers {
            if markers.locations.len() < options.marker_locations {
                markers.locations.push(MarkerLocation {
                    kind: at.found.kind,
                    path: at.path,
                    line: at.found.line,
                    text: at.found.text,
                });
            }
        }
        for file in part.largest {
            scan::keep_largest(&mut largest, file, options.largest_files);
        }
        manifests.extend(part.manifests.into_iter().map(|m| Manifest {
            path: m.path,
            kind: m.kind,
            name: m.name,
            workspace: m.workspace,
        }));
        unreported_errors += part.error_count - part.errors.len() as u64;
        errors.extend(part.errors);
    }
    if unreported_errors > 0 {
        errors.push(format!("… and {unreported_errors} more unreadable files"));
    }
    [markers.todo, markers.fixme, markers.hack, markers.xxx] = marker_counts;

    let mut total = Totals::default();
    let mut languages: Vec<LanguageStats> = languages
        .into_iter()
        .map(|(language, (n, counts, embedded))| {
            total.files += n;
            total.lines += counts.into();
            let mut embedded: Vec<EmbeddedStats> = embedded
                .into_iter()
                .map(|(child, counts)| {
                    total.lines += counts.into();
                    EmbeddedStats {
                        name: child.name().to_string(),
                        lines: counts.into(),
                    }
                })
                .collect();
            embedded.sort_by_key(|e| std::cmp::Reverse(e.lines.total()));
            LanguageStats {
                name: language.name().to_string(),
                files: n,
                lines: counts.into(),
                embedded,
            }
        })
        .collect();
    languages.sort_by(|a, b| {
        (b.lines.code, b.lines.total())
            .cmp(&(a.lines.code, a.lines.total()))
            .then_with(|| a.name.cmp(&b.name))
    });
    files.counted = total.files;

    Analysis {
        root: listing.root.display().to_string(),
        languages,
        total,
        files,
        skipped: listing.skipped,
        markers,
        largest_files: largest
            .into_iter()
            .map(|f| LargeFile {
                path: f.path,
                bytes: f.bytes,
                language: f.language,
            })
            .collect(),
        manifests,
        errors,
        elapsed_ms: 0,
        tasks: 0,
    }
}

/// Knows which of the analysis's tasks the lanes have finished with, from the session's
/// lane events, so [`run`] returns only once none is queued or running.
struct Tracker {
    submitted: Mutex<Vec<TaskId>>,
    seen: Arc<Seen>,
    inflight: Inflight,
    _stop: tokio_util::sync::DropGuard,
}

#[derive(Default)]
struct Seen {
    finished: Mutex<HashSet<TaskId>>,
    /// Events were missed; fall back on the in-flight count.
    lagged: AtomicBool,
    notify: Notify,
}

impl Tracker {
    fn start(lanes: &Lanes, session: SessionId) -> Tracker {
        let mut events = lanes.subscribe();
        let seen = Arc::new(Seen::default());
        let stop = CancellationToken::new();
        let listener = {
            let seen = Arc::clone(&seen);
            let stop = stop.clone();
            async move {
                loop {
                    let event = tokio::select! {
                        () = stop.cancelled() => return,
                        event = events.recv() => event,
                    };
                    match event {
                        Ok(event) => {
                            if matches!(event.kind, EventKind::Finished { .. })
                                && event.session.as_deref() == Some(&*session)
                            {
                                seen.finished.lock().insert(event.task_id);
                                seen.notify.notify_waiters();
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            seen.lagged.store(true, Ordering::Release);
                            seen.notify.notify_waiters();
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            seen.lagged.store(true, Ordering::Release);
                            seen.notify.notify_waiters();
                            return;
                        }
                    }
                }
            }
        };
        tokio::spawn(listener);
        Tracker {
            submitted: Mutex::new(Vec::new()),
            seen,
            inflight: Inflight::default(),
            _stop: stop.drop_guard(),
        }
    }

    fn submitted(&self, ids: &[TaskId]) {
        self.submitted.lock().extend_from_slice(ids);
    }

    /// Awaits `work`, or cancels every task submitted so far when `token` is cancelled
    /// first (queued ones leave their queue at once; running ones stop at their next file).
    async fn join<F: std::future::Future>(
        &self,
        lanes: &Lanes,
        token: &CancellationToken,
        work: F,
    ) -> Option<F::Output> {
        tokio::select! {
            biased;
            output = work => Some(output),
            () = token.cancelled() => {
                let ids = self.submitted.lock().clone();
                for id in ids {
                    lanes.cancel(id);
                }
                None
            }
        }
    }

    /// Waits until the lanes have finished every submitted task.
    async fn drained(&self) {
        loop {
            let notified = self.seen.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.seen.lagged.load(Ordering::Acquire) {
                self.inflight.idle().await;
                return;
            }
            {
                let finished = self.seen.finished.lock();
                if self.submitted.lock().iter().all(|id| finished.contains(id)) {
                    return;
                }
            }
            notified.await;
        }
    }
}

/// How many of the analysis's task bodies are running now.
#[derive(Clone, Default)]
struct Inflight(Arc<(AtomicUsize, Notify)>);

struct Running(Inflight);

impl Inflight {
    fn enter(&self) -> Running {
        self.0.0.fetch_add(1, Ordering::AcqRel);
        Running(self.clone())
    }

    async fn idle(&self) {
        loop {
            let notified = self.0.1.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.0.0.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.0.0.0.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.0.1.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests;
