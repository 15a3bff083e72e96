//! Fused searches: the `grep` and `glob` calls of one parallel batch (a model turn's run of
//! parallel-safe calls, a lane batch) served by one walk of the union of their paths, each
//! file read once and searched for every pattern whose own walk would have reached it.
//!
//! Each call's result is exactly what it would have been alone: the walk hands every file
//! to the searches whose own walk — start, ignore files, hidden rule, `glob`, `type` —
//! includes it, each with its unit of the split its own walk would have used, and the
//! ordered early stop of a grep is worked out afterwards from those units (see
//! [`grep::ordered_stop`]). Arguments that fail (an invalid pattern, a missing path) fail
//! their own call only.
//!
//! Every call stays its own lane task, so metrics and events show one task per call: the
//! calls join a [`SearchGroup`] as their tasks are built; the group is sealed once the
//! batch is complete; the first of its tasks to start hands the fused walk to the pool,
//! and every task (that one included) waits for its own share of the results. The shared
//! walk's time thus shows in each call's task as the time it waited. Cancelling a call
//! drops its searches from the rest of the walk; the walk stops when every call is
//! cancelled.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use cap_std::fs::Dir;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::grep::{self, Content, Found, Prepared, Scope, Walked};
use super::walk::{Entry, Share, Takers};
use super::{
    CallContext, GlobArgs, GrepArgs, Inner, ToolError, ToolOutput, ToolResult, ToolsConfig,
    Workspace, glob, walk,
};
use crate::documents::Documents;
use crate::lanes::{Lane, Task, TaskError};

/// Files larger than this are not read whole into memory for the searches that want
/// them: each search streams them itself, as it would alone.
const READ_WHOLE_MAX: u64 = 8 * 1024 * 1024;

/// A search a fused walk can serve.
#[derive(Debug, Clone)]
pub(crate) enum Query {
    Grep(GrepArgs),
    Glob(GlobArgs),
}

/// Runs `queries` with one walk; `tokens[i]` cancels query `i` alone. Returns each query's
/// result in order, as it would have been alone (a cancelled one: "cancelled").
pub(crate) fn run(
    queries: &[Query],
    tokens: &[CancellationToken],
    workspace: &Workspace,
    documents: &Documents,
    config: &ToolsConfig,
) -> Vec<Result<ToolOutput, ToolError>> {
    let n = queries.len();
    let mut results: Vec<Option<Result<ToolOutput, ToolError>>> = vec![None; n];
    let parts = walk::parts();
    // Plan each query as its own run would: a failure is its answer.
    let mut trees: Vec<Option<Box<grep::Tree<'_>>>> = (0..n).map(|_| None).collect();
    let mut globs: Vec<Option<glob::Plan<'_>>> = (0..n).map(|_| None).collect();
    for (i, query) in queries.iter().enumerate() {
        let scope = Scope {
            workspace,
            documents,
            config,
            token: &tokens[i],
        };
        match query {
            Query::Grep(args) => match grep::prepare(args, &scope) {
                Ok(Prepared::Done(out)) => results[i] = Some(Ok(ToolOutput::Grep(out))),
                Ok(Prepared::Tree(tree)) => trees[i] = Some(tree),
                Err(e) => results[i] = Some(Err(e)),
            },
            Query::Glob(args) => match glob::Plan::new(args, workspace, config) {
                Ok(plan) => globs[i] = Some(plan),
                Err(e) => results[i] = Some(Err(e)),
            },
        }
    }
    let splits: Vec<Option<walk::Split>> = trees
        .iter()
        .enumerate()
        .map(|(i, tree)| {
            tree.as_ref()
                .map(|t| t.options.split(workspace, &t.target, parts, &tokens[i]))
        })
        .collect();
    // The walking queries, as shares of one walk.
    let walking: Vec<usize> = (0..n).filter(|&i| results[i].is_none()).collect();
    let shares: Vec<Share<'_>> = walking
        .iter()
        .map(|&i| match (&trees[i], &globs[i]) {
            (Some(tree), _) => Share {
                start: &tree.target,
                options: &tree.options,
                split: splits[i].as_ref(),
            },
            (None, Some(plan)) => Share {
                start: &plan.start,
                options: &plan.options,
                split: None,
            },
            (None, None) => unreachable!("a walking query has a plan"),
        })
        .collect();
    if let Some(root) = common_ancestor(shares.iter().map(|s| s.start)) {
        let found: Vec<Mutex<BTreeMap<usize, Vec<Found>>>> = walking
            .iter()
            .map(|_| Mutex::new(BTreeMap::new()))
            .collect();
        let listed: Vec<Mutex<Vec<PathBuf>>> =
            walking.iter().map(|_| Mutex::new(Vec::new())).collect();
        let searched: Vec<AtomicU64> = walking.iter().map(|_| AtomicU64::new(0)).collect();
        let live = |share: usize| !tokens[walking[share]].is_cancelled();
        let states: Mutex<Vec<WalkerState>> = Mutex::new(Vec::new());
        let visit = |entry: &Entry, dir: &Dir, takers: Takers<'_>| {
            let searches = |&(share, unit): &(usize, Option<usize>)| {
                let i = walking[share];
                unit.is_some() && trees[i].is_some() && !tokens[i].is_cancelled()
            };
            let mut state = states.lock().pop().unwrap_or_default();
            let WalkerState { searchers, buf } = &mut state;
            // Read once, for every grep that wants the file.
            let content = takers
                .iter()
                .any(searches)
                .then(|| read(documents, dir, entry.path(), buf));
            for &(share, unit) in takers {
                let i = walking[share];
                if tokens[i].is_cancelled() {
                    continue;
                }
                if let Some(plan) = &globs[i] {
                    if plan.matches(entry.path()) {
                        listed[share].lock().push(entry.path().to_path_buf());
                    }
                    continue;
                }
                let (Some(tree), Some(unit)) = (&trees[i], unit) else {
                    continue;
                };
                searched[share].fetch_add(1, Ordering::Relaxed);
                let searcher = searchers.entry(i).or_insert_with(|| tree.search.searcher());
                let result = match &content {
                    Some(Loaded::Whole(content)) => {
                        tree.search.content(searcher, entry.path(), content)
                    }
                    Some(Loaded::Stream) | None => {
                        tree.search.file(searcher, entry.path(), Some(dir))
                    }
                };
                if result.worth_keeping() {
                    found[share].lock().entry(unit).or_default().push(result);
                }
            }
            drop(content);
            states.lock().push(state);
        };
        let never = CancellationToken::new();
        let errors = walk::walk_fused(workspace, &root, &shares, &live, &never, &visit);
        drop(states);
        for (share, errors) in errors.into_iter().enumerate() {
            let i = walking[share];
            if tokens[i].is_cancelled() {
                results[i] = Some(Err(ToolError::new("cancelled")));
                continue;
            }
            let result = if let Some(tree) = trees[i].take() {
                let found = std::mem::take(&mut *found[share].lock());
                let units = splits[i].as_ref().map_or(0, |s| s.units.len());
                let mode = tree.search.args.output;
                let max_results = tree.search.max_results;
                let walked = Walked {
                    stop: grep::ordered_stop(&found, units, mode, max_results),
                    found,
                    units,
                    searched: searched[share].load(Ordering::Relaxed),
                    errors,
                };
                ToolOutput::Grep(grep::finish(tree.out, workspace, walked, max_results))
            } else if let Some(plan) = &globs[i] {
                let listed = std::mem::take(&mut *listed[share].lock());
                ToolOutput::Glob(plan.finish(workspace, listed, errors))
            } else {
                continue;
            };
            results[i] = Some(Ok(result));
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(ToolError::new("cancelled"))))
        .collect()
}

/// What a walker keeps between files: a searcher per grep, and the read buffer.
#[derive(Default)]
struct WalkerState {
    searchers: BTreeMap<usize, grep_searcher::Searcher>,
    buf: Vec<u8>,
}

/// A file as read once for the greps that want it.
enum Loaded<'a> {
    /// Its whole content (or why it could not be read).
    Whole(Content<'a>),
    /// Too large to hold: each grep streams it.
    Stream,
}

/// Reads the file a walk found at `path` in `dir` once: an editor buffer's text, else
/// the disk's bytes into `buf` (whole files up to [`READ_WHOLE_MAX`]).
fn read<'b>(documents: &Documents, dir: &Dir, path: &Path, buf: &'b mut Vec<u8>) -> Loaded<'b> {
    if documents.get(path).is_some() {
        // Rare: each grep reads the buffer itself, as it would alone.
        return Loaded::Stream;
    }
    let failed = |e: std::io::Error| {
        Loaded::Whole(Content::Failed(format!(
            "{}: {e}",
            super::names::escape(path.as_os_str())
        )))
    };
    let (mut file, len) = match Workspace::open_entry(dir, path) {
        Ok(opened) => opened,
        Err(e) => return failed(e),
    };
    if len > READ_WHOLE_MAX {
        return Loaded::Stream;
    }
    buf.clear();
    match file.read_to_end(buf) {
        Ok(_) => Loaded::Whole(Content::Disk(buf)),
        Err(e) => failed(e),
    }
}

/// The deepest directory every path is in (or is).
fn common_ancestor<'a>(mut paths: impl Iterator<Item = &'a Path>) -> Option<PathBuf> {
    let mut common = paths.next()?.to_path_buf();
    for path in paths {
        while !path.starts_with(&common) {
            if !common.pop() {
                return None;
            }
        }
    }
    Some(common)
}

/// The searches of one batch that share a walk: each call's task joins as it is built; the
/// batch seals the group once complete; the first task to start runs the walk for all.
#[derive(Clone, Default)]
pub struct SearchGroup {
    shared: Arc<GroupShared>,
}

#[derive(Default)]
struct GroupShared {
    state: Mutex<GroupState>,
    sealed: Notify,
}

#[derive(Default)]
struct GroupState {
    members: Vec<Arc<Member>>,
    sealed: bool,
    started: bool,
}

/// One call of a group: its query, the token that cancels its share, and its result.
pub(crate) struct Member {
    query: Query,
    token: CancellationToken,
    result: OnceLock<Result<ToolOutput, ToolError>>,
    ready: Notify,
}

impl SearchGroup {
    /// An empty group.
    pub fn new() -> SearchGroup {
        SearchGroup::default()
    }

    /// No more calls join: the first task to start may run the walk. Also done when the
    /// last handle to the group that could add calls is dropped ([`SealOnDrop`]).
    pub fn seal(&self) {
        self.shared.state.lock().sealed = true;
        self.shared.sealed.notify_waiters();
    }

    /// A guard that seals the group when dropped.
    pub fn seal_on_drop(&self) -> SealOnDrop {
        SealOnDrop(self.clone())
    }

    /// How many calls joined.
    pub fn len(&self) -> usize {
        self.shared.state.lock().members.len()
    }

    /// Whether no call joined.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a call; `token` cancels its share (the call's own token).
    pub(crate) fn join(&self, query: Query, token: CancellationToken) -> Arc<Member> {
        let member = Arc::new(Member {
            query,
            token,
            result: OnceLock::new(),
            ready: Notify::new(),
        });
        let mut state = self.shared.state.lock();
        debug_assert!(!state.sealed, "a call joined a sealed group");
        state.members.push(Arc::clone(&member));
        member
    }

    /// Waits until sealed; then, if no task of the group has started the walk yet, returns
    /// every call's member for this task to run the walk with.
    pub(crate) async fn wait_sealed_and_claim(&self) -> Option<Vec<Arc<Member>>> {
        loop {
            let notified = self.shared.sealed.notified();
            {
                let mut state = self.shared.state.lock();
                if state.sealed {
                    if state.started {
                        return None;
                    }
                    state.started = true;
                    return Some(state.members.clone());
                }
            }
            notified.await;
        }
    }
}

/// Seals its group when dropped.
pub struct SealOnDrop(SearchGroup);

impl Drop for SealOnDrop {
    fn drop(&mut self) {
        self.0.seal();
    }
}

impl Member {
    /// This call's result, once the walk has it.
    pub(crate) async fn result(&self) -> Result<ToolOutput, ToolError> {
        loop {
            let notified = self.ready.notified();
            if let Some(result) = self.result.get() {
                return result.clone();
            }
            notified.await;
        }
    }

    /// Cancels this call's share of the walk.
    pub(crate) fn cancel(&self) {
        self.token.cancel();
    }
}

/// Runs the fused walk for `members` on the current (pool) thread and hands each its
/// result.
pub(crate) fn serve(
    members: &[Arc<Member>],
    workspace: &Workspace,
    documents: &Documents,
    config: &ToolsConfig,
) {
    let queries: Vec<Query> = members.iter().map(|m| m.query.clone()).collect();
    let tokens: Vec<CancellationToken> = members.iter().map(|m| m.token.clone()).collect();
    let results = run(&queries, &tokens, workspace, documents, config);
    for (member, result) in members.iter().zip(results) {
        let _ = member.result.set(result);
        member.ready.notify_waiters();
    }
}

/// The lane task of one call of a group: it joins the group now; when it runs, it waits for
/// the group to be sealed, starts the fused walk on the pool if no task of the group has,
/// and returns its own share of the results. Cancelling it drops its share of the walk.
pub(super) fn task(
    inner: Arc<Inner>,
    lane: Lane,
    name: &str,
    query: Query,
    group: &SearchGroup,
    ctx: &CallContext,
) -> Task<ToolResult> {
    let member = group.join(query, ctx.token.child_token());
    let group = group.clone();
    Task::future(lane, name, move |task| {
        let (inner, member, group) = (Arc::clone(&inner), Arc::clone(&member), group.clone());
        async move {
            let token = task.token().clone();
            let share = async {
                if let Some(members) = group.wait_sealed_and_claim().await {
                    inner.lanes.counter("search.fused_walks").incr();
                    inner
                        .lanes
                        .counter("search.fused_calls")
                        .add(members.len() as u64);
                    let lanes = inner.lanes.clone();
                    let inner = Arc::clone(&inner);
                    lanes.spawn_on_pool(move || {
                        let config = inner.tools_config();
                        serve(&members, &inner.workspace, &inner.documents, &config);
                    });
                }
                member.result().await
            };
            tokio::select! {
                () = token.cancelled() => {
                    member.cancel();
                    Err(TaskError::cancelled())
                }
                result = share => Ok(result.map_err(|e| e.message)),
            }
        }
    })
}

impl super::Toolbox {
    /// Runs calls side by side as one lane batch, the `grep` and `glob` calls among them
    /// sharing one walk; results in call order. Pass calls that are safe to run together
    /// (the read-only tools).
    pub async fn run_batch(
        &self,
        calls: Vec<(String, serde_json::Value)>,
        ctx: &CallContext,
    ) -> Vec<Result<ToolOutput, ToolError>> {
        let group = SearchGroup::new();
        let planned: Vec<Result<Task<ToolResult>, ToolError>> = calls
            .into_iter()
            .map(|(name, args)| self.task_in(&name, args, ctx, &group))
            .collect();
        group.seal();
        let mut results: Vec<Option<Result<ToolOutput, ToolError>>> = Vec::new();
        let mut tasks = Vec::new();
        for plan in planned {
            match plan {
                Ok(task) => {
                    tasks.push(task);
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e))),
            }
        }
        let mut done = self
            .inner
            .lanes
            .submit_batch(tasks)
            .join()
            .await
            .into_iter();
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    super::lane_result(
                        done.next()
                            .unwrap_or(Err(crate::lanes::LaneError::Cancelled)),
                    )
                })
            })
            .collect()
    }
}
