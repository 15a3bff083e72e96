//! `grep`: ripgrep's search (the same `grep-regex` + `grep-searcher` crates and defaults)
//! over the workspace, in parallel across files on the shared pool.
//!
//! The walk runs on the task's own thread and hands files out in walk order; helpers
//! spawned on the pool search them, and the walking thread joins in once the walk is done,
//! so a call always finishes even when every other pool thread is busy. Results are kept
//! in walk order, and the search stops as soon as the first `max_results` matches *in that
//! order* are known — the same call always returns the same lines.

use std::cell::OnceCell;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use cap_std::fs::Dir;
use grep_regex::{RegexMatcher, RegexMatcherBuilder};
use grep_searcher::{BinaryDetection, Searcher, SearcherBuilder, Sink, SinkContext, SinkMatch};
use ignore::overrides::OverrideBuilder;
use ignore::types::TypesBuilder;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::{Args, Env, ToolError, ToolsConfig, WalkOptions, Workspace, push_capped, thousands};

/// What grep returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrepMode {
    /// Matching lines with context.
    Content,
    /// Paths of files with a match.
    Files,
    /// Matching lines per file.
    Count,
}

/// `grep`'s arguments.
#[derive(Debug, Clone)]
pub struct GrepArgs {
    /// The pattern.
    pub pattern: String,
    /// File or directory.
    pub path: Option<String>,
    /// Include glob.
    pub glob: Option<String>,
    /// File type.
    pub file_type: Option<String>,
    /// Ignore case.
    pub case_insensitive: bool,
    /// Smart case.
    pub smart_case: bool,
    /// Literal pattern.
    pub fixed_string: bool,
    /// Matches may span lines.
    pub multiline: bool,
    /// Context lines.
    pub context: u64,
    /// Output mode.
    pub output: GrepMode,
    /// Most results.
    pub max_results: Option<u64>,
}

impl GrepArgs {
    pub(super) fn parse(args: &Args<'_>) -> Result<GrepArgs, ToolError> {
        args.only(&[
            "pattern",
            "path",
            "glob",
            "type",
            "case_insensitive",
            "smart_case",
            "fixed_string",
            "multiline",
            "context",
            "output",
            "max_results",
        ])?;
        let output = match args.opt_string("output")? {
            None | Some("content") => GrepMode::Content,
            Some("files") | Some("files_with_matches") => GrepMode::Files,
            Some("count") => GrepMode::Count,
            Some(other) => {
                return Err(ToolError::new(format!(
                    "`output` must be \"content\", \"files\" or \"count\", got {other:?}"
                )));
            }
        };
        let pattern = args.string("pattern")?;
        let case_insensitive = args.flag("case_insensitive", false)?;
        let smart_case = args.flag("smart_case", false)?;
        let fixed_string = args.flag("fixed_string", false)?;
        let multiline = args.flag("multiline", false)?;
        // Checked here, so a bad pattern fails before the call takes a lane slot; compiled
        // in the task, on the pool (a Unicode class can take milliseconds to compile).
        if !fixed_string {
            regex_syntax::ParserBuilder::new()
                .case_insensitive(case_insensitive)
                .build()
                .parse(pattern)
                .map_err(|e| invalid_regex(pattern, &e))?;
        }
        Ok(GrepArgs {
            pattern: pattern.to_string(),
            path: args.opt_string("path")?.map(str::to_string),
            glob: args.opt_string("glob")?.map(str::to_string),
            file_type: args.opt_string("type")?.map(str::to_string),
            case_insensitive,
            smart_case,
            fixed_string,
            multiline,
            context: args.opt_count("context")?.unwrap_or(0),
            output,
            max_results: args.opt_positive("max_results")?,
        })
    }
}

/// One line of grep output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrepLine {
    /// 1-based line number.
    pub line: u64,
    /// The line, decoded, without its ending; cut at the line cap.
    pub text: String,
    /// A context line rather than a match.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub context: bool,
}

/// One file's results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrepFile {
    /// Relative to the workspace root.
    pub path: String,
    /// Matching lines in the file.
    pub count: u64,
    /// Matching and context lines (content output only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<GrepLine>,
}

/// The search's results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GrepOutput {
    /// The pattern searched.
    pub pattern: String,
    /// The output mode.
    pub mode: GrepMode,
    /// Context lines asked for around each match.
    pub context: u64,
    /// Files with matches, in walk order (by path).
    pub files: Vec<GrepFile>,
    /// Matching lines found.
    pub matches: u64,
    /// Whether the search stopped at `max_results` (there may be more).
    pub stopped_at_limit: bool,
    /// Files searched.
    pub files_searched: u64,
    /// Files skipped as binary.
    pub binary_skipped: u64,
    /// Files that could not be searched, with why; the search went on.
    pub errors: Vec<String>,
}

impl GrepOutput {
    /// The text rendering, cut at about `cap` bytes (0: no cap) with a note saying so.
    pub fn render_capped(&self, cap: usize) -> String {
        let mut out = String::new();
        let mut capped = false;
        'files: for file in &self.files {
            match self.mode {
                GrepMode::Files => capped = !push_capped(&mut out, &file.path, cap),
                GrepMode::Count => {
                    capped = !push_capped(&mut out, &format!("{}:{}", file.path, file.count), cap)
                }
                GrepMode::Content => {
                    let mut last = None;
                    for line in &file.lines {
                        if self.context > 0 && last.is_some_and(|l: u64| line.line > l + 1) {
                            out.push_str("--\n");
                        }
                        last = Some(line.line);
                        let sep = if line.context { '-' } else { ':' };
                        if !push_capped(
                            &mut out,
                            &format!("{}{sep}{}{sep}{}", file.path, line.line, line.text),
                            cap,
                        ) {
                            capped = true;
                            break 'files;
                        }
                    }
                }
            }
            if capped {
                break;
            }
        }
        let files = self.files.len() as u64;
        if self.matches == 0 {
            out.push_str(&format!(
                "(no matches for `{}` in {} files)\n",
                self.pattern,
                thousands(self.files_searched)
            ));
        } else if self.mode == GrepMode::Files {
            let (noun, verb) = if files == 1 {
                ("file", "matches")
            } else {
                ("files", "match")
            };
            out.push_str(&format!("({} {noun} {verb})\n", thousands(files)));
        } else {
            out.push_str(&format!(
                "({} matching line{} in {} file{})\n",
                thousands(self.matches),
                if self.matches == 1 { "" } else { "s" },
                thousands(files),
                if files == 1 { "" } else { "s" }
            ));
        }
        if capped {
            out.push_str("(output cut at its size cap; narrow the pattern, or use `output: \"files\"` or `count`)\n");
        }
        if self.stopped_at_limit {
            out.push_str("(stopped at the `max_results` limit; there may be more — narrow the pattern, add `glob` or `type`, or raise `max_results`)\n");
        }
        for error in self.errors.iter().take(5) {
            out.push_str(&format!("(skipped: {error})\n"));
        }
        if self.errors.len() > 5 {
            out.push_str(&format!(
                "(and {} more files skipped)\n",
                self.errors.len() - 5
            ));
        }
        out
    }
}

/// What a search reads besides its arguments: the workspace, the editor's buffers, the
/// settings, and the token that cancels it.
pub(super) struct Scope<'a> {
    pub workspace: &'a super::Workspace,
    pub documents: &'a crate::documents::Documents,
    pub config: &'a ToolsConfig,
    pub token: &'a CancellationToken,
}

/// Everything workers share.
pub(super) struct Search<'a> {
    matcher: RegexMatcher,
    /// Whether content read whole is first tested for a match anywhere in it
    /// ([`whole_content_test`]).
    whole_content_test: bool,
    pub(super) args: &'a GrepArgs,
    pub(super) max_results: u64,
    max_line_chars: usize,
    token: &'a CancellationToken,
    documents: &'a crate::documents::Documents,
    workspace: &'a super::Workspace,
}

/// The ordered early stop: results by unit of the split tree (units are in path order),
/// which units are done, and how far the contiguous prefix of done units reaches.
struct Progress {
    found: BTreeMap<usize, Vec<Found>>,
    done: BTreeSet<usize>,
    prefix_end: usize,
    prefix_count: u64,
}

pub(super) struct Found {
    path: PathBuf,
    count: u64,
    lines: Vec<GrepLine>,
    binary: bool,
    error: Option<String>,
}

impl Found {
    /// Whether the file shows in the results: a match, or a binary skip or error to count.
    pub(super) fn worth_keeping(&self) -> bool {
        self.count > 0 || self.binary || self.error.is_some()
    }
}

pub(super) fn run(args: &GrepArgs, env: &Env<'_>) -> Result<GrepOutput, ToolError> {
    let scope = Scope {
        workspace: env.workspace,
        documents: env.documents,
        config: env.config,
        token: env.task.token(),
    };
    match prepare(args, &scope)? {
        Prepared::Done(out) => Ok(out),
        Prepared::Tree(tree) => tree.run(&scope),
    }
}

/// A grep ready to walk: or, for a single file, already done.
pub(super) enum Prepared<'a> {
    /// A file: searched already.
    Done(GrepOutput),
    /// A directory to walk.
    Tree(Box<Tree<'a>>),
}

/// A grep over a directory, its pattern compiled and its walk planned.
pub(super) struct Tree<'a> {
    pub(super) search: Search<'a>,
    pub(super) out: GrepOutput,
    pub(super) target: PathBuf,
    pub(super) options: WalkOptions,
}

/// Checks and compiles what a grep needs; a single file is searched at once.
pub(super) fn prepare<'a>(
    args: &'a GrepArgs,
    scope: &Scope<'a>,
) -> Result<Prepared<'a>, ToolError> {
    let target = scope
        .workspace
        .resolve(args.path.as_deref().unwrap_or("."))?;
    let max_results = args
        .max_results
        .unwrap_or(scope.config.grep_default_max_results as u64);
    let matcher = build_matcher(
        &args.pattern,
        args.case_insensitive,
        args.smart_case,
        args.fixed_string,
        args.multiline,
    )?;
    let search = Search {
        matcher,
        whole_content_test: whole_content_test(args),
        args,
        max_results,
        max_line_chars: scope.config.grep_max_line_chars,
        token: scope.token,
        documents: scope.documents,
        workspace: scope.workspace,
    };
    let mut out = GrepOutput {
        pattern: args.pattern.clone(),
        mode: args.output,
        context: if args.output == GrepMode::Content {
            args.context
        } else {
            0
        },
        files: Vec::new(),
        matches: 0,
        stopped_at_limit: false,
        files_searched: 0,
        binary_skipped: 0,
        errors: Vec::new(),
    };
    let shown = scope.workspace.display(&target);
    let meta = scope
        .workspace
        .metadata(&target)
        .map_err(|e| scope.workspace.io_error(&target, &shown, "search", e))?;
    if !meta.is_dir() {
        super::sandbox::require_regular(&shown, &meta)?;
        let found = search.file(&mut search.searcher(), &target, None);
        collect(&mut out, scope.workspace, found, max_results);
        return Ok(Prepared::Done(out));
    }
    let options = walk_options(args, &target)?;
    Ok(Prepared::Tree(Box::new(Tree {
        search,
        out,
        target,
        options,
    })))
}

impl Tree<'_> {
    /// Walks and searches the tree on its own.
    fn run(self, scope: &Scope<'_>) -> Result<GrepOutput, ToolError> {
        let Tree {
            search,
            out,
            target,
            options,
        } = self;
        let args = search.args;
        let max_results = search.max_results;
        let parts = super::walk::parts();
        let split = options.split(scope.workspace, &target, parts, search.token);
        let units = split.units.len();
        let progress = Mutex::new(Progress {
            found: BTreeMap::new(),
            done: BTreeSet::new(),
            prefix_end: 0,
            prefix_count: 0,
        });
        let stop_at = AtomicUsize::new(usize::MAX);
        let searched = AtomicU64::new(0);
        let walk_errors = Mutex::new(Vec::new());
        // Each walker searches the files of its share as it walks them, as ripgrep's threads do.
        let share = |part: usize| {
            let mut searcher = search.searcher();
            let errors = options.walk_part(
                scope.workspace,
                &target,
                &split,
                part,
                &stop_at,
                search.token,
                |entry, unit, dir| {
                    let Some(unit) = unit else { return };
                    if !entry.is_file() {
                        return;
                    }
                    searched.fetch_add(1, Ordering::Relaxed);
                    let found = search.file(&mut searcher, entry.path(), Some(dir));
                    if found.worth_keeping() {
                        progress.lock().found.entry(unit).or_default().push(found);
                    }
                },
                |unit| {
                    let mut p = progress.lock();
                    p.done.insert(unit);
                    // A unit counts once every unit before it is done: then the results up to
                    // it are final, and enough of them stops the search deterministically.
                    while p.done.contains(&p.prefix_end) {
                        let unit_end = p.prefix_end;
                        let count: u64 = p.found.get(&unit_end).map_or(0, |files| {
                            files
                                .iter()
                                .map(|f| {
                                    if args.output == GrepMode::Content {
                                        f.count
                                    } else {
                                        u64::from(f.count > 0)
                                    }
                                })
                                .sum()
                        });
                        p.prefix_count += count;
                        p.prefix_end += 1;
                        if p.prefix_count >= max_results {
                            stop_at.fetch_min(p.prefix_end, Ordering::AcqRel);
                        }
                    }
                },
            );
            walk_errors.lock().extend(errors);
        };
        rayon::scope(|scope| {
            for part in 0..parts {
                let share = &share;
                scope.spawn(move |_| share(part));
            }
        });
        if search.token.is_cancelled() {
            return Err(ToolError::new("cancelled"));
        }
        Ok(finish(
            out,
            scope.workspace,
            Walked {
                found: progress.into_inner().found,
                stop: stop_at.into_inner(),
                units,
                searched: searched.into_inner(),
                errors: walk_errors.into_inner(),
            },
            max_results,
        ))
    }
}

/// What a walk found for one grep: files with matches (or trouble) by unit of its split,
/// where the ordered stop fell, how many units and files there were, and the walk errors.
pub(super) struct Walked {
    pub(super) found: BTreeMap<usize, Vec<Found>>,
    pub(super) stop: usize,
    pub(super) units: usize,
    pub(super) searched: u64,
    pub(super) errors: Vec<String>,
}

/// Where the ordered early stop falls for results found by unit: just past the first unit
/// at which the matches of every unit up to it reach `max_results` (as a walk that stops
/// there finds it), else nowhere.
pub(super) fn ordered_stop(
    found: &BTreeMap<usize, Vec<Found>>,
    units: usize,
    mode: GrepMode,
    max_results: u64,
) -> usize {
    let mut count = 0;
    for unit in 0..units {
        count += found.get(&unit).map_or(0, |files| {
            files
                .iter()
                .map(|f| {
                    if mode == GrepMode::Content {
                        f.count
                    } else {
                        u64::from(f.count > 0)
                    }
                })
                .sum::<u64>()
        });
        if count >= max_results {
            return unit + 1;
        }
    }
    usize::MAX
}

/// Puts a walked grep's results in walk order, up to its limit.
pub(super) fn finish(
    mut out: GrepOutput,
    workspace: &super::Workspace,
    walked: Walked,
    max_results: u64,
) -> GrepOutput {
    out.errors = walked.errors;
    // A directory above the units is every walker's: its error is reported once.
    out.errors.sort();
    out.errors.dedup();
    let stop = walked.stop;
    let by_unit = walked.found.into_iter().filter(|(unit, _)| *unit < stop);
    // A walker visits a unit's files in no particular order: restore the walk's.
    let ordered = by_unit.flat_map(|(_, mut files)| {
        files.sort_by_cached_key(|f| super::walk::tree_key(&f.path));
        files
    });
    for found in ordered {
        if !collect(&mut out, workspace, found, max_results) {
            break;
        }
    }
    out.files_searched = walked.searched;
    out.stopped_at_limit |= stop < walked.units;
    out
}

/// Adds one file's results; returns false once the limit is reached.
fn collect(
    out: &mut GrepOutput,
    workspace: &super::Workspace,
    found: Found,
    max_results: u64,
) -> bool {
    out.files_searched += 1;
    out.binary_skipped += u64::from(found.binary);
    if let Some(error) = found.error {
        out.errors.push(error);
    }
    if found.count == 0 {
        return true;
    }
    let path = workspace.display(&found.path);
    match out.mode {
        GrepMode::Content => {
            let room = max_results.saturating_sub(out.matches);
            let mut kept = Vec::new();
            let mut taken = 0;
            for line in found.lines {
                if !line.context {
                    if taken == room {
                        break;
                    }
                    taken += 1;
                }
                kept.push(line);
            }
            if taken < found.count {
                out.stopped_at_limit = true;
            }
            out.matches += taken;
            out.files.push(GrepFile {
                path,
                count: taken,
                lines: kept,
            });
        }
        GrepMode::Files | GrepMode::Count => {
            if out.files.len() as u64 >= max_results {
                out.stopped_at_limit = true;
                return false;
            }
            out.matches += found.count;
            out.files.push(GrepFile {
                path,
                count: found.count,
                lines: Vec::new(),
            });
        }
    }
    !(out.stopped_at_limit)
}

fn build_matcher(
    pattern: &str,
    case_insensitive: bool,
    smart_case: bool,
    fixed_string: bool,
    multiline: bool,
) -> Result<RegexMatcher, ToolError> {
    let mut builder = RegexMatcherBuilder::new();
    builder
        .case_insensitive(case_insensitive)
        .case_smart(smart_case && !case_insensitive)
        .fixed_strings(fixed_string);
    if multiline {
        builder.multi_line(true);
    } else {
        builder.line_terminator(Some(b'\n'));
    }
    builder
        .build(pattern)
        .map_err(|e| invalid_regex(pattern, &e))
}

/// Whether "no match anywhere in the file's content" proves "no matching line", for the
/// line-by-line search these arguments ask for. It does when the matcher can never match
/// a line terminator (every search but a multiline one) — then a matching line is a run
/// of the content the matcher matches in — unless the pattern has an anchor, which a line
/// and the whole content place differently: `^` and `$` hold at every line's ends for the
/// searcher but only at the content's for the matcher run over it (so a `[^…]` class is
/// left out too), and `\A`, `\z` and inline flags are left out with them.
fn whole_content_test(args: &GrepArgs) -> bool {
    let pattern = &args.pattern;
    let anchored = ["^", "$", "\\A", "\\z", "(?"]
        .iter()
        .any(|anchor| pattern.contains(anchor));
    !args.multiline && (args.fixed_string || !anchored)
}

/// Whether content starts with a byte-order mark, which the searcher drops (UTF-8) or
/// transcodes from (UTF-16) before searching: its raw bytes are not what it searches.
pub(super) fn has_bom(bytes: &[u8]) -> bool {
    const BOMS: [&[u8]; 3] = [b"\xEF\xBB\xBF", b"\xFF\xFE", b"\xFE\xFF"];
    BOMS.iter().any(|bom| bytes.starts_with(bom))
}

fn invalid_regex(pattern: &str, error: &dyn std::fmt::Display) -> ToolError {
    ToolError::new(format!(
        "invalid regex `{pattern}`: {error}\n(escape special characters, or pass `fixed_string: true` to search for the text as written)"
    ))
}

fn walk_options(args: &GrepArgs, root: &Path) -> Result<WalkOptions, ToolError> {
    let mut options = WalkOptions::default();
    if let Some(glob) = &args.glob {
        let mut builder = OverrideBuilder::new(root);
        builder
            .add(glob)
            .map_err(|e| ToolError::new(format!("invalid `glob` {glob:?}: {e}")))?;
        options.overrides = Some(
            builder
                .build()
                .map_err(|e| ToolError::new(format!("invalid `glob` {glob:?}: {e}")))?,
        );
    }
    if let Some(file_type) = &args.file_type {
        let mut builder = TypesBuilder::new();
        builder.add_defaults();
        builder.select(file_type);
        let types = builder.build().map_err(|_| {
            ToolError::new(format!(
                "unknown file `type` {file_type:?}; use a ripgrep type name such as rust, py, js, ts, go, c, cpp, java, md, toml — or `glob`"
            ))
        })?;
        options.types = Some(types);
    }
    Ok(options)
}

impl Search<'_> {
    /// The searcher this grep's options call for; one per thread, reused across files.
    pub(super) fn searcher(&self) -> Searcher {
        let context = usize::try_from(self.args.context).unwrap_or(usize::MAX);
        let context = if self.args.output == GrepMode::Content {
            context
        } else {
            0
        };
        SearcherBuilder::new()
            .binary_detection(BinaryDetection::quit(b'\x00'))
            .line_number(true)
            .multi_line(self.args.multiline)
            .before_context(context)
            .after_context(context)
            .build()
    }

    /// The results of a file whose content a fused walk read once for every search that
    /// wants it: its bytes, searched as a reader exactly as [`Search::file`] reads the
    /// file, or the error reading it gave.
    /// `holds_match` says the batch already knows the content holds a match; `nul`,
    /// whether it holds a NUL byte, is worked out once for all the batch's greps.
    pub(super) fn content(
        &self,
        searcher: &mut Searcher,
        path: &Path,
        content: &Content<'_>,
        holds_match: bool,
        nul: &OnceCell<bool>,
    ) -> Found {
        let mut sink = self.sink(path);
        let result = match content {
            Content::Disk(bytes) if !holds_match && self.finds_nothing_in(bytes) => {
                return self.nothing_in(path, bytes, nul);
            }
            Content::Disk(bytes) => searcher.search_reader(&self.matcher, *bytes, &mut sink),
            Content::Failed(error) => {
                if !self.token.is_cancelled() {
                    sink.found.error = Some(error.clone());
                }
                return sink.found;
            }
        };
        self.settle(sink, result, path)
    }

    /// Whether a file whose whole content is `bytes` certainly holds no match: tested in
    /// one pass of the matcher over all of it, where the searcher would copy it into its
    /// buffer, count its lines and scan it again. Only where that is exact: see
    /// [`whole_content_test`]; and not for content with a byte-order mark, which the
    /// searcher drops or transcodes before searching.
    fn finds_nothing_in(&self, bytes: &[u8]) -> bool {
        use grep_matcher::Matcher;
        self.whole_content_test && !has_bom(bytes) && matches!(self.matcher.find(bytes), Ok(None))
    }

    /// What the searcher concludes of a file whose whole content `bytes` holds no match,
    /// after reading it all: nothing found, and (binary detection quits at a NUL byte)
    /// binary if it holds one.
    pub(super) fn nothing_in(&self, path: &Path, bytes: &[u8], nul: &OnceCell<bool>) -> Found {
        let mut found = self.sink(path).found;
        found.binary = *nul.get_or_init(|| memchr::memchr(0, bytes).is_some());
        found
    }

    /// The text this search looks for when it is one literal, case-sensitive string on one
    /// line that the whole-content test holds for: then "the text occurs in the content"
    /// is exactly "some line matches", and a batch can look for several such texts in one
    /// pass over a file.
    pub(super) fn literal(&self) -> Option<Vec<u8>> {
        let args = self.args;
        if !self.whole_content_test || args.case_insensitive || args.smart_case {
            return None;
        }
        let literal = if args.fixed_string {
            args.pattern.as_bytes().to_vec()
        } else {
            let hir = regex_syntax::Parser::new().parse(&args.pattern).ok()?;
            match hir.kind() {
                regex_syntax::hir::HirKind::Literal(literal) => literal.0.to_vec(),
                _ => return None,
            }
        };
        (!literal.is_empty() && !literal.contains(&b'\n')).then_some(literal)
    }

    fn sink(&self, path: &Path) -> Collect {
        Collect {
            found: Found {
                path: path.to_path_buf(),
                count: 0,
                lines: Vec::new(),
                binary: false,
                error: None,
            },
            mode: self.args.output,
            max_line_chars: self.max_line_chars,
            // One file never needs more matching lines than the whole call may return.
            limit: self.max_results,
        }
    }

    fn settle(&self, mut sink: Collect, result: Result<(), io::Error>, path: &Path) -> Found {
        if let Err(e) = result {
            if !self.token.is_cancelled() {
                sink.found.error = Some(format!("{}: {e}", super::names::escape(path.as_os_str())));
            }
            sink.found.count = 0;
            sink.found.lines.clear();
        }
        sink.found
    }

    /// Searches the file at `path` (an editor buffer first), streaming it from the disk:
    /// opened by its name in `dir` when a walk found it there, else from the root.
    pub(super) fn file(&self, searcher: &mut Searcher, path: &Path, dir: Option<&Dir>) -> Found {
        let mut sink = self.sink(path);
        let opened = || match dir {
            Some(dir) => Workspace::open_entry(dir, path).map(|(file, _)| file),
            None => self.workspace.open_seen_regular(path),
        };
        let result = match self.documents.get(path) {
            Some(doc) => searcher.search_slice(&self.matcher, doc.text().as_bytes(), &mut sink),
            None => match opened() {
                Ok(file) => searcher.search_reader(
                    &self.matcher,
                    Cancellable {
                        file,
                        token: self.token,
                    },
                    &mut sink,
                ),
                Err(e) => Err(e),
            },
        };
        self.settle(sink, result, path)
    }
}

/// A file's content as a fused walk read it once for every search.
pub(super) enum Content<'a> {
    /// The file's bytes on disk.
    Disk(&'a [u8]),
    /// Opening or reading it failed: the message each search reports.
    Failed(String),
}

/// A file that stops reading once the call is cancelled, so even one huge file ends promptly.
struct Cancellable<'a> {
    file: File,
    token: &'a CancellationToken,
}

impl Read for Cancellable<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.token.is_cancelled() {
            return Err(io::Error::other("cancelled"));
        }
        self.file.read(buf)
    }
}

struct Collect {
    found: Found,
    mode: GrepMode,
    max_line_chars: usize,
    limit: u64,
}

impl Collect {
    fn line(&self, number: u64, bytes: &[u8], context: bool) -> GrepLine {
        let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        let text = String::from_utf8_lossy(bytes);
        let text = match text.char_indices().nth(self.max_line_chars) {
            Some((at, _)) => format!(
                "{} … [line cut: {} more bytes]",
                &text[..at],
                thousands((bytes.len() - at) as u64)
            ),
            None => text.into_owned(),
        };
        GrepLine {
            line: number,
            text,
            context,
        }
    }
}

impl Sink for Collect {
    type Error = io::Error;

    fn matched(&mut self, _searcher: &Searcher, mat: &SinkMatch<'_>) -> Result<bool, io::Error> {
        let first = mat.line_number().unwrap_or(0);
        for (i, line) in mat.lines().enumerate() {
            self.found.count += 1;
            if self.mode == GrepMode::Content {
                let line = self.line(first + i as u64, line, false);
                self.found.lines.push(line);
            }
        }
        Ok(match self.mode {
            GrepMode::Files => false,
            GrepMode::Content => self.found.count < self.limit,
            GrepMode::Count => true,
        })
    }

    fn context(&mut self, _searcher: &Searcher, ctx: &SinkContext<'_>) -> Result<bool, io::Error> {
        if self.mode == GrepMode::Content {
            let line = self.line(ctx.line_number().unwrap_or(0), ctx.bytes(), true);
            self.found.lines.push(line);
        }
        Ok(true)
    }

    fn binary_data(&mut self, _searcher: &Searcher, _offset: u64) -> Result<bool, io::Error> {
        self.found.binary = true;
        Ok(false)
    }
}
