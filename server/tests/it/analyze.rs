//! `analyze::run` end to end on real trees: its per-language numbers equal the real
//! tokei's, its markers, largest files, manifests and skipped entries are exactly the
//! fixture's, its tasks run in the caller's session as one walk and one batch, and a
//! cancelled analysis stops at once and leaves nothing queued or running in the lanes.
//!
//! tokei comes from `SWITCHYARD_TOKEI`, else `PATH`; `tests/run` installs it. Every run is
//! under a deadline, so a bug fails the test instead of hanging it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use switchyard::analyze::{self, Analysis, AnalyzeOptions, LineCounts, ManifestKind, MarkerKind};
use switchyard::documents::Documents;
use switchyard::lanes::{EventKind, FinishStatus, Lane, LaneEvent, Lanes, LanesConfig};
use switchyard::tools::{Toolbox, ToolsConfig, Workspace};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(120);

async fn within<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(DEADLINE, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {DEADLINE:?}"))
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
        .canonicalize()
        .unwrap()
}

fn toolbox(root: &Path, config: LanesConfig) -> Toolbox {
    let lanes = Lanes::new(config).unwrap();
    let workspace = Workspace::new([root.to_path_buf()]).unwrap();
    Toolbox::new(workspace, lanes, Documents::new(), ToolsConfig::default())
}

fn options(root: &Path) -> AnalyzeOptions {
    AnalyzeOptions {
        root: root.to_path_buf(),
        ..AnalyzeOptions::default()
    }
}

async fn analyze(root: &Path) -> Analysis {
    let toolbox = toolbox(root, LanesConfig::default());
    within(
        "the analysis",
        analyze::run(
            &toolbox,
            &options(root),
            "test".into(),
            CancellationToken::new(),
        ),
    )
    .await
    .unwrap()
}

/// One language's row: files and own lines, and its embedded blocks by child language.
#[derive(Debug, Default, PartialEq)]
struct Row {
    files: u64,
    lines: LineCounts,
    embedded: BTreeMap<String, LineCounts>,
}

/// tokei's per-language rows and its Total row's lines.
fn tokei(dir: &Path) -> (BTreeMap<String, Row>, LineCounts) {
    let report = common::tokei::run(dir);
    let rows = report
        .languages
        .into_iter()
        .map(|(name, language)| {
            let row = Row {
                files: language.files.len() as u64,
                lines: language.lines.into(),
                embedded: (language.embedded.into_iter())
                    .map(|(child, lines)| (child, lines.into()))
                    .collect(),
            };
            (name, row)
        })
        .collect();
    (rows, report.total.into())
}

fn rows_of(analysis: &Analysis) -> BTreeMap<String, Row> {
    analysis
        .languages
        .iter()
        .map(|l| {
            let embedded = l
                .embedded
                .iter()
                .map(|e| (e.name.clone(), e.lines))
                .collect();
            let row = Row {
                files: l.files,
                lines: l.lines,
                embedded,
            };
            (l.name.clone(), row)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_equal_tokei_on_the_fixture_trees() {
    for name in ["count", "analyze"] {
        let dir = fixture(name);
        let analysis = analyze(&dir).await;
        let (theirs, their_total) = tokei(&dir);
        let ours = rows_of(&analysis);
        for (language, row) in &theirs {
            assert_eq!(ours.get(language), Some(row), "{name}: {language}");
        }
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>(),
            "{name}: the same languages"
        );
        assert_eq!(analysis.total.lines, their_total, "{name}: the Total row");
        let files: u64 = theirs.values().map(|r| r.files).sum();
        assert_eq!(analysis.total.files, files, "{name}: files counted");
        assert_eq!(analysis.files.counted, files);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fixture_report_is_exact() {
    let dir = fixture("analyze");
    let a = analyze(&dir).await;
    assert_eq!(a.root, dir.display().to_string());

    // Markers: counts, and every location in path order, with its line.
    let m = &a.markers;
    assert_eq!((m.todo, m.fixme, m.hack, m.xxx, m.files), (3, 1, 1, 1, 3));
    let locations: Vec<(MarkerKind, String, u64)> = m
        .locations
        .iter()
        .map(|l| (l.kind, l.path.clone(), l.line))
        .collect();
    let expected = [
        (MarkerKind::Todo, "notes.md", 3),
        (MarkerKind::Todo, "src/main.rs", 4),
        (MarkerKind::Fixme, "src/main.rs", 7),
        (MarkerKind::Hack, "src/main.rs", 10),
        (MarkerKind::Xxx, "web/index.js", 4),
        (MarkerKind::Todo, "web/index.js", 5),
    ]
    .map(|(kind, path, line)| (kind, path.to_string(), line));
    assert_eq!(locations, expected);
    assert_eq!(m.locations[1].text, "// TODO: parse the arguments");

    // Largest files: biggest first, with their sizes and languages.
    let largest: Vec<(&str, u64, Option<&str>)> = a
        .largest_files
        .iter()
        .map(|f| (f.path.as_str(), f.bytes, f.language.as_deref()))
        .collect();
    assert_eq!(largest.len(), 10);
    assert_eq!(largest[0], ("data/table.csv", 3270, None));
    assert_eq!(largest[1], ("assets/logo.png", 2085, None));
    let size = |p: &str| std::fs::metadata(dir.join(p)).unwrap().len();
    assert_eq!(
        largest[2],
        ("src/main.rs", size("src/main.rs"), Some("Rust"))
    );
    assert!(largest.windows(2).all(|w| w[0].1 >= w[1].1));

    // Manifests, with the names they declare.
    let manifests: Vec<(&str, ManifestKind, Option<&str>)> = a
        .manifests
        .iter()
        .map(|m| (m.path.as_str(), m.kind, m.name.as_deref()))
        .collect();
    assert_eq!(
        manifests,
        vec![
            ("Cargo.toml", ManifestKind::Cargo, Some("acme-engine")),
            (
                "cli/go.mod",
                ManifestKind::GoModule,
                Some("example.com/acme/cli")
            ),
            (
                "tools/pyproject.toml",
                ManifestKind::Pyproject,
                Some("acme-tools")
            ),
            ("web/package.json", ManifestKind::Npm, Some("acme-web")),
        ]
    );

    // Files by kind, and what the rules skipped (never entering build/ or .hidden/).
    let f = &a.files;
    assert_eq!(
        (f.files, f.counted, f.binary, f.other_text, f.large_unread),
        (11, 8, 1, 2, 0)
    );
    let s = &a.skipped;
    assert_eq!((s.ignored_dirs, s.ignored_files), (1, 1));
    assert_eq!(s.ignored_dir_names, ["build/"]);
    assert_eq!((s.hidden_dirs, s.hidden_files), (1, 2));
    assert_eq!(s.hidden_dir_names, [".hidden/"]);
    assert_eq!(s.symlinks, 1);
    assert!(a.errors.is_empty(), "{:?}", a.errors);
    assert_eq!(a.tasks, 2, "one walk and one chunk");

    let markdown = a.to_markdown();
    for expected in [
        "# Workspace analysis: acme-engine",
        "| Rust | 1 | 5 | 3 | 2 | 10 |",
        "| ↳ Markdown |  | 0 | 1 | 0 | 1 |",
        "| **Total** | **8** | **31** | **11** | **12** | **54** |",
        "**6** markers in 3 files: TODO 3 · FIXME 1 · HACK 1 · XXX 1.",
        "| FIXME | `src/main.rs:7` | `/* FIXME: handle errors */` |",
        "| `data/table.csv` | 3.2 KiB | — |",
        "| `cli/go.mod` | Go module | `example.com/acme/cli` |",
        "1 directory (`build/`) and 1 file",
        "1 directory (`.hidden/`) and 2 files",
    ] {
        assert!(markdown.contains(expected), "{expected:?} in:\n{markdown}");
    }

    // The structured data survives JSON, as the language server sends it.
    let json = serde_json::to_string(&a).unwrap();
    assert_eq!(serde_json::from_str::<Analysis>(&json).unwrap(), a);
}

/// `n` small Rust files spread over a few directories.
fn generated_tree(n: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for i in 0..n {
        let sub = dir.path().join(format!("m{}", i % 10));
        std::fs::create_dir_all(&sub).unwrap();
        let text = format!("// file {i}\nfn f{i}() {{\n    // TODO: {i}\n}}\n");
        std::fs::write(sub.join(format!("f{i:05}.rs")), text).unwrap();
    }
    dir
}

/// Every event of `session` until `stop` says so, in order.
fn record(mut events: broadcast::Receiver<LaneEvent>, session: &'static str) -> Recorder {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if event.session.as_deref() == Some(session) && tx.send(event).is_err() {
                return;
            }
        }
    });
    Recorder { rx, task }
}

struct Recorder {
    rx: tokio::sync::mpsc::UnboundedReceiver<LaneEvent>,
    task: tokio::task::JoinHandle<()>,
}

impl Recorder {
    /// The events received so far.
    fn drain(&mut self) -> Vec<LaneEvent> {
        let mut events = Vec::new();
        while let Ok(event) = self.rx.try_recv() {
            events.push(event);
        }
        events
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn assert_drained(lanes: &Lanes) {
    let query = lanes
        .metrics()
        .lanes
        .into_iter()
        .find(|l| l.lane == Lane::Query)
        .unwrap();
    assert_eq!((query.queued, query.running), (0, 0), "{query:?}");
    assert_eq!(
        query.submitted,
        query.completed + query.cancelled + query.failed + query.timed_out,
        "{query:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_run_in_the_session_the_batch_known_up_front() {
    let tree = generated_tree(2_000);
    let toolbox = toolbox(tree.path(), LanesConfig::default());
    let mut recorder = record(toolbox.lanes().subscribe(), "progress");
    let a = within(
        "the analysis",
        analyze::run(
            &toolbox,
            &options(tree.path()),
            "progress".into(),
            CancellationToken::new(),
        ),
    )
    .await
    .unwrap();
    assert_eq!(a.total.files, 2_000);
    assert_eq!(a.markers.todo, 2_000);
    assert_eq!(a.markers.locations.len(), 50);
    assert_eq!(a.markers.locations[0].path, "m0/f00000.rs");
    assert_eq!(a.markers.locations[1].path, "m0/f00010.rs");
    assert_drained(toolbox.lanes());

    // Every event of the analysis's tasks is in the session, and every one is over.
    let events = recorder.drain();
    let finished: Vec<&LaneEvent> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::Finished { .. }))
        .collect();
    assert_eq!(finished.len() as u64, a.tasks);
    assert!(finished.iter().all(|e| matches!(
        e.kind,
        EventKind::Finished {
            status: FinishStatus::Completed,
            ..
        }
    )));
    // The walk first; then the whole batch is queued before any of it finishes, so a
    // progress display knows the total at once.
    assert_eq!(&*events[0].name, "analyze.walk");
    let chunks_queued = events
        .iter()
        .filter(|e| &*e.name == "analyze.files" && e.kind == EventKind::Queued)
        .count() as u64;
    assert_eq!(chunks_queued, a.tasks - 1);
    assert!(
        chunks_queued >= 50,
        "{chunks_queued} chunks: progress moves"
    );
    let first_chunk_done = events
        .iter()
        .position(|e| &*e.name == "analyze.files" && matches!(e.kind, EventKind::Finished { .. }))
        .unwrap();
    let last_chunk_queued = events
        .iter()
        .rposition(|e| &*e.name == "analyze.files" && e.kind == EventKind::Queued)
        .unwrap();
    assert!(last_chunk_queued < first_chunk_done);
}

/// Starts an analysis of a large tree on a Query lane of one slot, stops it with `stop`
/// once its first chunk is running, and checks it stopped promptly and left the lanes idle.
async fn cancel_mid_run(stop: impl FnOnce(&Lanes, &CancellationToken)) {
    let tree = generated_tree(4_000);
    let mut config = LanesConfig::default();
    config.query.max_concurrency = Some(1);
    let toolbox = toolbox(tree.path(), config);
    let lanes = toolbox.lanes().clone();
    let mut events = lanes.subscribe();
    let token = CancellationToken::new();
    let run = {
        let toolbox = toolbox.clone();
        let options = options(tree.path());
        let token = token.clone();
        tokio::spawn(async move { analyze::run(&toolbox, &options, "cancel".into(), token).await })
    };
    // Wait for the first chunk to start; then stop everything.
    within("the first chunk", async {
        loop {
            let event = events.recv().await.unwrap();
            if &*event.name == "analyze.files" && matches!(event.kind, EventKind::Started { .. }) {
                return;
            }
        }
    })
    .await;
    let stopped_at = Instant::now();
    stop(&lanes, &token);
    let result = within("the cancelled analysis", run).await.unwrap();
    let error = result.expect_err("a cancelled analysis is an error");
    assert!(error.contains("cancelled"), "{error}");
    assert!(
        stopped_at.elapsed() < Duration::from_secs(10),
        "stopped in {:?}",
        stopped_at.elapsed()
    );
    assert_drained(&lanes);
    let metrics = lanes.metrics();
    let query = metrics
        .lanes
        .iter()
        .find(|l| l.lane == Lane::Query)
        .unwrap();
    // 250 chunks were submitted; most of them never ran.
    assert!(query.submitted > 200, "{query:?}");
    assert!(query.cancelled * 2 > query.submitted, "{query:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_token_stops_promptly_and_drains_the_lanes() {
    cancel_mid_run(|_, token| token.cancel()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_session_from_outside_stops_it_too() {
    cancel_mid_run(|lanes, _| {
        lanes.cancel_session("cancel");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_token_runs_nothing() {
    let dir = fixture("analyze");
    let toolbox = toolbox(&dir, LanesConfig::default());
    let token = CancellationToken::new();
    token.cancel();
    let result = within(
        "the analysis",
        analyze::run(&toolbox, &options(&dir), "early".into(), token),
    )
    .await;
    assert!(result.unwrap_err().contains("cancelled"));
    assert_drained(toolbox.lanes());
    let metrics = toolbox.lanes().metrics();
    let query = metrics
        .lanes
        .iter()
        .find(|l| l.lane == Lane::Query)
        .unwrap();
    assert_eq!(query.completed, 0, "{query:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roots_outside_the_workspace_are_refused() {
    let dir = fixture("analyze");
    let toolbox = toolbox(&dir.join("src"), LanesConfig::default());
    for (root, says) in [
        (dir.clone(), "outside the workspace"),
        (PathBuf::from("../web"), "outside the workspace"),
        (PathBuf::from("missing"), "does not exist"),
        (PathBuf::from("main.rs"), "is not a directory"),
    ] {
        let options = AnalyzeOptions {
            root: root.clone(),
            ..AnalyzeOptions::default()
        };
        let error = within(
            "the analysis",
            analyze::run(&toolbox, &options, "bad".into(), CancellationToken::new()),
        )
        .await
        .unwrap_err();
        assert!(error.contains(says), "{}: {error}", root.display());
    }
    // A relative root is resolved against the workspace.
    let options = AnalyzeOptions {
        root: PathBuf::from("."),
        ..AnalyzeOptions::default()
    };
    let a = within(
        "the analysis",
        analyze::run(&toolbox, &options, "ok".into(), CancellationToken::new()),
    )
    .await
    .unwrap();
    assert_eq!(a.total.files, 1);
    assert_drained(toolbox.lanes());
}
