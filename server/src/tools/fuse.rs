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
//! Calls that walk the tree alike (the same start, `glob`, `type`, hidden and ignored
//! options: a model's greps over the workspace, most often) are one share of the walk: one
//! split, one check of each entry against their rules; when every call walks alike, the
//! walk is their own walk, its walkers sharing out the last unit's directories. And the
//! greps that each look for one literal text (most of a model's) learn in one pass over a
//! file which of their texts it holds ([`Literals`]): those whose text is absent need no
//! search of their own.
//!
//! Every call stays its own lane task, so metrics and events show one task per call: the
//! calls join a [`SearchGroup`] as their tasks are built; the group is sealed once the
//! batch is complete; the first of its tasks to start hands the fused walk to the pool,
//! and every task (that one included) waits for its own share of the results. The shared
//! walk's time thus shows in each call's task as the time it waited. Cancelling a call
//! drops its searches from the rest of the walk; the walk stops when every call is
//! cancelled.

use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
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
    // The walking queries, in classes of those that walk the tree alike: a class is one
    // share of the walk, with one split, one reach and one check of each entry against its
    // rules, however many queries it serves.
    let walking: Vec<usize> = (0..n).filter(|&i| results[i].is_none()).collect();
    let walk_of = |i: usize| -> (WalkKey<'_>, &Path, &walk::WalkOptions) {
        match (&trees[i], &globs[i], &queries[i]) {
            (Some(tree), _, Query::Grep(args)) => (
                WalkKey::of(
                    &tree.target,
                    &tree.options,
                    args.glob.as_deref(),
                    args.file_type.as_deref(),
                ),
                &tree.target,
                &tree.options,
            ),
            (None, Some(plan), _) => (
                WalkKey::of(&plan.start, &plan.options, None, None),
                &plan.start,
                &plan.options,
            ),
            _ => unreachable!("a walking query has a plan"),
        }
    };
    let mut keys: Vec<WalkKey<'_>> = Vec::new();
    let mut classes: Vec<Vec<usize>> = Vec::new();
    for &i in &walking {
        let (key, _, _) = walk_of(i);
        match keys.iter().position(|k| *k == key) {
            Some(class) => classes[class].push(i),
            None => {
                keys.push(key);
                classes.push(vec![i]);
            }
        }
    }
    drop(keys);
    let never = CancellationToken::new();
    // A class with a grep has its split: the units the grep's own walk would use.
    let splits: Vec<Option<walk::Split>> = classes
        .iter()
        .map(|members| {
            let (_, start, options) = walk_of(members[0]);
            members
                .iter()
                .any(|&i| trees[i].is_some())
                .then(|| options.split(workspace, start, parts, &never))
        })
        .collect();
    let shares: Vec<Share<'_>> = classes
        .iter()
        .zip(&splits)
        .map(|(members, split)| {
            let (_, start, options) = walk_of(members[0]);
            Share {
                start,
                options,
                split: split.as_ref(),
            }
        })
        .collect();
    if let Some(root) = common_ancestor(shares.iter().map(|s| s.start)) {
        let found: Vec<Mutex<BTreeMap<usize, Vec<Found>>>> =
            (0..n).map(|_| Mutex::new(BTreeMap::new())).collect();
        let listed: Vec<Mutex<Vec<PathBuf>>> = (0..n).map(|_| Mutex::new(Vec::new())).collect();
        let literals = Literals::of(&trees);
        let live = |class: usize| classes[class].iter().any(|&i| !tokens[i].is_cancelled());
        let states: Mutex<Vec<WalkerState>> = Mutex::new(Vec::new());
        let visit = |entry: &Entry, dir: &Dir, takers: Takers<'_>| {
            let mut state = states.lock().pop().unwrap_or_else(|| WalkerState::new(n));
            let WalkerState {
                searchers,
                buf,
                wanted,
                searched,
            } = &mut state;
            // Which calls are still wanted, asked once per file (each ask takes a lock).
            wanted.clear();
            wanted.extend(tokens.iter().map(|t| !t.is_cancelled()));
            let searches = |&(class, unit): &(usize, Option<usize>)| {
                unit.is_some()
                    && classes[class]
                        .iter()
                        .any(|&i| trees[i].is_some() && wanted[i])
            };
            // Read once, for every grep that wants the file.
            let content = takers
                .iter()
                .any(searches)
                .then(|| read(documents, dir, entry.path(), buf));
            let occurs = match (&literals, &content) {
                (Some(literals), Some(Loaded::Whole(Content::Disk(bytes)))) => {
                    literals.occurring(bytes)
                }
                _ => None,
            };
            let nul = OnceCell::new();
            for &(class, unit) in takers {
                for &i in &classes[class] {
                    if !wanted[i] {
                        continue;
                    }
                    if let Some(plan) = &globs[i] {
                        if plan.matches(entry.path()) {
                            listed[i].lock().push(entry.path().to_path_buf());
                        }
                        continue;
                    }
                    let (Some(tree), Some(unit)) = (&trees[i], unit) else {
                        continue;
                    };
                    searched[i] += 1;
                    let searcher = searchers.entry(i).or_insert_with(|| tree.search.searcher());
                    let occurs = literals
                        .as_ref()
                        .zip(occurs.as_ref())
                        .and_then(|(literals, occurs)| Some(occurs[literals.of[i]?]));
                    let result = match &content {
                        Some(Loaded::Whole(Content::Disk(bytes))) if occurs == Some(false) => {
                            tree.search.nothing_in(entry.path(), bytes, &nul)
                        }
                        Some(Loaded::Whole(content)) => {
                            let holds_match = occurs == Some(true);
                            tree.search
                                .content(searcher, entry.path(), content, holds_match, &nul)
                        }
                        Some(Loaded::Stream) | None => {
                            tree.search.file(searcher, entry.path(), Some(dir))
                        }
                    };
                    if result.worth_keeping() {
                        found[i].lock().entry(unit).or_default().push(result);
                    }
                }
            }
            drop(content);
            states.lock().push(state);
        };
        let errors = walk::walk_fused(workspace, &root, &shares, &live, &never, &visit);
        let mut searched = vec![0; n];
        for state in states.into_inner() {
            for (total, walker) in searched.iter_mut().zip(state.searched) {
                *total += walker;
            }
        }
        for (members, (errors, split)) in classes.iter().zip(errors.into_iter().zip(&splits)) {
            for &i in members {
                if tokens[i].is_cancelled() {
                    results[i] = Some(Err(ToolError::new("cancelled")));
                    continue;
                }
                let result = if let Some(tree) = trees[i].take() {
                    let found = std::mem::take(&mut *found[i].lock());
                    let units = split.as_ref().map_or(0, |s| s.units.len());
                    let mode = tree.search.args.output;
                    let max_results = tree.search.max_results;
                    let walked = Walked {
                        stop: grep::ordered_stop(&found, units, mode, max_results),
                        found,
                        units,
                        searched: searched[i],
                        errors: errors.clone(),
                    };
                    ToolOutput::Grep(grep::finish(tree.out, workspace, walked, max_results))
                } else if let Some(plan) = &globs[i] {
                    let listed = std::mem::take(&mut *listed[i].lock());
                    ToolOutput::Glob(plan.finish(workspace, listed, errors.clone()))
                } else {
                    continue;
                };
                results[i] = Some(Ok(result));
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(ToolError::new("cancelled"))))
        .collect()
}

/// What decides a query's walk: queries with equal keys walk the same tree alike (their
/// walk options are built from these alone: `grep`'s `glob` and `type`, rooted at its
/// start, and the hidden and ignored rules).
#[derive(PartialEq, Eq)]
struct WalkKey<'a> {
    start: &'a Path,
    include_hidden: bool,
    include_ignored: bool,
    max_depth: Option<usize>,
    glob: Option<&'a str>,
    file_type: Option<&'a str>,
}

impl<'a> WalkKey<'a> {
    fn of(
        start: &'a Path,
        options: &walk::WalkOptions,
        glob: Option<&'a str>,
        file_type: Option<&'a str>,
    ) -> WalkKey<'a> {
        WalkKey {
            start,
            include_hidden: options.include_hidden,
            include_ignored: options.include_ignored,
            max_depth: options.max_depth,
            glob,
            file_type,
        }
    }
}

/// The texts of a batch's greps that each look for one literal text ([`Search::literal`]),
/// looked for in one pass over a file's content: a grep whose text does not occur needs no
/// search of its own, and one whose text occurs needs no whole-content test.
///
/// The pass is exact for every text, including one that occurs only overlapping another:
/// the searcher reports the leftmost match (the first text listed, if several start there),
/// and the next search starts one byte after that match's start, not at its end. Two
/// different texts starting at one place would make one a prefix of the other; such a
/// prefix is left out of the pass (its grep tests the content itself). So at every place a
/// text starts only that text can match there, and every place is searched from.
///
/// [`Search::literal`]: grep::Search::literal
struct Literals {
    searcher: aho_corasick::packed::Searcher,
    /// How many distinct texts.
    texts: usize,
    /// Each query's text, if it is in the pass.
    of: Vec<Option<usize>>,
}

impl Literals {
    /// The pass for the literal greps among `trees`, when there are two or more texts.
    fn of(trees: &[Option<Box<grep::Tree<'_>>>]) -> Option<Literals> {
        let wanted: Vec<Option<Vec<u8>>> = trees
            .iter()
            .map(|tree| tree.as_ref()?.search.literal())
            .collect();
        let mut texts: Vec<&[u8]> = wanted.iter().flatten().map(Vec::as_slice).collect();
        texts.sort_unstable();
        texts.dedup();
        // Sorted, a text that is a proper prefix of others comes just before the first.
        let prefix = |i: usize| {
            texts
                .get(i + 1)
                .is_some_and(|next| next.starts_with(texts[i]))
        };
        let texts: Vec<&[u8]> = (0..texts.len())
            .filter(|&i| !prefix(i))
            .map(|i| texts[i])
            .collect();
        if texts.len() < 2 {
            return None;
        }
        let searcher = aho_corasick::packed::Config::new()
            .match_kind(aho_corasick::packed::MatchKind::LeftmostFirst)
            .builder()
            .extend(&texts)
            .build()?;
        let of = wanted
            .iter()
            .map(|text| texts.iter().position(|t| Some(*t) == text.as_deref()))
            .collect();
        Some(Literals {
            searcher,
            texts: texts.len(),
            of,
        })
    }

    /// Which texts occur in `bytes`; `None` for content with a byte-order mark, which the
    /// searcher does not search as its raw bytes.
    fn occurring(&self, bytes: &[u8]) -> Option<Vec<bool>> {
        if grep::has_bom(bytes) {
            return None;
        }
        let mut seen = vec![false; self.texts];
        let mut left = self.texts;
        let mut at = 0;
        while let Some(found) = self
            .searcher
            .find_in(bytes, aho_corasick::Span::from(at..bytes.len()))
        {
            let text = found.pattern().as_usize();
            if !seen[text] {
                seen[text] = true;
                left -= 1;
                if left == 0 {
                    break;
                }
            }
            at = found.start() + 1;
        }
        Some(seen)
    }
}

/// What a walker keeps between files: a searcher per grep, the read buffer, which calls
/// are still wanted (not cancelled) for the file at hand, and how many files it searched
/// for each call.
struct WalkerState {
    searchers: BTreeMap<usize, grep_searcher::Searcher>,
    buf: Vec<u8>,
    wanted: Vec<bool>,
    searched: Vec<u64>,
}

impl WalkerState {
    fn new(calls: usize) -> WalkerState {
        WalkerState {
            searchers: BTreeMap::new(),
            buf: Vec::new(),
            wanted: Vec::with_capacity(calls),
            searched: vec![0; calls],
        }
    }
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
