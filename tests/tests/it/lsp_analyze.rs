//! `switchyard.analyzeWorkspace` over LSP: the result as data and Markdown, the report file
//! and `window/showDocument`; work-done progress begin → reports → end, under the client's
//! token or one the server creates; cancellation by `window/workDoneProgress/cancel` and by
//! `$/cancelRequest` ending the progress and draining the lanes; `switchyard.queueStats`
//! answering while the analysis runs.
//!
//! An analysis that must still be running when the test acts on it runs with the Query lane
//! in external mode: its tasks wait for a worker that never comes, so the test decides when
//! it ends, without sleeps.

use std::time::{Duration, Instant};

use serde_json::json;
use switchyard::lanes::Lane;
use switchyard::lsp::ext::{
    AnalyzeWorkspace, AnalyzeWorkspaceParams, NoParams, PendingTasks, PendingTasksParams,
    QueueStats,
};
use switchyard_tests::lsp_client::lsp_types::notification::WorkDoneProgressCancel;
use switchyard_tests::lsp_client::lsp_types::{
    NumberOrString, ProgressParamsValue, ProgressToken, ShowDocumentClientCapabilities,
    WindowClientCapabilities, WorkDoneProgress, WorkDoneProgressCancelParams,
};
use switchyard_tests::lsp_client::{
    ClientOptions, LspClient, PATIENCE, ServerEvent, file_url, within,
};

const LIMIT: Duration = Duration::from_secs(90);

/// A small workspace with a few languages.
fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("src")).unwrap();
    std::fs::write(
        root.join("Cargo.toml"),
        "[package]\nname = \"demo\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    for i in 0..12 {
        std::fs::write(
            root.join(format!("src/m{i}.rs")),
            format!("//! Module {i}.\n\n// TODO: more\npub fn f{i}() -> u32 {{\n    {i}\n}}\n"),
        )
        .unwrap();
    }
    std::fs::write(root.join("README.md"), "# Demo\n\nSome text.\n").unwrap();
    std::fs::write(root.join("run.py"), "def main():\n    return 1\n").unwrap();
    dir
}

fn with_progress(options: &mut ClientOptions) {
    options.capabilities.window = Some(WindowClientCapabilities {
        work_done_progress: Some(true),
        show_document: Some(ShowDocumentClientCapabilities { support: true }),
        ..WindowClientCapabilities::default()
    });
}

fn external_query(options: &mut ClientOptions) {
    options.initialization_options = Some(json!({"lanes": {"query": {"mode": "external"}}}));
}

/// The progress values received under `token`, in order.
fn progress(client: &LspClient, token: &ProgressToken) -> Vec<WorkDoneProgress> {
    client
        .history
        .iter()
        .filter_map(|e| match e {
            ServerEvent::Progress(p) if &p.token == token => match &p.value {
                ProgressParamsValue::WorkDone(value) => Some(value.clone()),
            },
            _ => None,
        })
        .collect()
}

/// Waits for the progress under `token` to end.
async fn wait_end(client: &mut LspClient, token: &ProgressToken) {
    let token = token.clone();
    client
        .event("the end of the progress", move |e| {
            matches!(e, ServerEvent::Progress(p) if p.token == token
                && matches!(p.value, ProgressParamsValue::WorkDone(WorkDoneProgress::End(_))))
        })
        .await;
}

/// Checks begin, then reports with percentages that never go back and lane summaries,
/// then one end, last; returns the end's message.
fn check_sequence(values: &[WorkDoneProgress]) -> String {
    let Some(WorkDoneProgress::Begin(begin)) = values.first() else {
        panic!("the progress does not start with begin: {values:?}");
    };
    assert_eq!(begin.title, "Analyzing workspace");
    assert_eq!(begin.cancellable, Some(true));
    let Some(WorkDoneProgress::End(end)) = values.last() else {
        panic!("the progress does not finish with end: {values:?}");
    };
    let middle = &values[1..values.len() - 1];
    assert!(!middle.is_empty(), "no report: {values:?}");
    let mut last = 0;
    for value in middle {
        let WorkDoneProgress::Report(report) = value else {
            panic!("a begin or end in the middle: {values:?}");
        };
        let percentage = report.percentage.unwrap();
        assert!(percentage >= last, "the percentage went back: {values:?}");
        last = percentage;
        let message = report.message.as_deref().unwrap();
        assert!(
            message.starts_with("query ")
                && message.contains(" · execute ")
                && message.contains(" · generate "),
            "{message}"
        );
    }
    end.message.clone().unwrap()
}

#[tokio::test]
async fn analysis_returns_data_and_markdown_and_reports_progress_in_order() {
    within(LIMIT, async {
        let dir = workspace();
        let mut options = ClientOptions::new(dir.path());
        with_progress(&mut options);
        let (mut client, _) = LspClient::initialized(options).await;
        let token = NumberOrString::String("client-token-1".into());
        let result = client
            .command_with_token::<AnalyzeWorkspace>(
                AnalyzeWorkspaceParams {
                    folder: None,
                    show: true,
                    llm: false,
                },
                Some(token.clone()),
            )
            .await
            .unwrap();
        wait_end(&mut client, &token).await;
        let end = check_sequence(&progress(&client, &token));
        assert!(end.starts_with("analyzed"), "{end}");
        // The client gave a token: the server created none.
        assert!(
            !client
                .history
                .iter()
                .any(|e| matches!(e, ServerEvent::CreateProgress(_)))
        );

        assert!(result.session.starts_with("analyze-"));
        assert!(result.analysis.is_object(), "{}", result.analysis);
        assert!(result.markdown.contains("Rust"), "{}", result.markdown);
        let report = dir.path().join(".switchyard").join("analysis.md");
        assert_eq!(std::fs::read_to_string(&report).unwrap(), result.markdown);
        assert_eq!(
            result.report_uri.as_str(),
            file_url(&report.canonicalize().unwrap()).as_str()
        );
        let ServerEvent::ShowDocument(shown) = client
            .event("a showDocument of the report", |e| {
                matches!(e, ServerEvent::ShowDocument(_))
            })
            .await
        else {
            unreachable!()
        };
        assert_eq!(shown.uri.as_str(), result.report_uri.as_str());
        client.shutdown_and_exit().await;
    })
    .await;
}

#[tokio::test]
async fn without_a_client_token_the_server_creates_one() {
    within(LIMIT, async {
        let dir = workspace();
        let mut options = ClientOptions::new(dir.path());
        with_progress(&mut options);
        let (mut client, _) = LspClient::initialized(options).await;
        client
            .command::<AnalyzeWorkspace>(AnalyzeWorkspaceParams::default())
            .await
            .unwrap();
        let ServerEvent::CreateProgress(created) = client
            .event("a progress token created by the server", |e| {
                matches!(e, ServerEvent::CreateProgress(_))
            })
            .await
        else {
            unreachable!()
        };
        wait_end(&mut client, &created.token).await;
        check_sequence(&progress(&client, &created.token));
        // Created before its first use.
        let created_at = client
            .history
            .iter()
            .position(|e| matches!(e, ServerEvent::CreateProgress(_)))
            .unwrap();
        let first_use = client
            .history
            .iter()
            .position(|e| matches!(e, ServerEvent::Progress(p) if p.token == created.token))
            .unwrap();
        assert!(created_at < first_use);
        // Not asked to show it: no showDocument.
        assert!(
            !client
                .history
                .iter()
                .any(|e| matches!(e, ServerEvent::ShowDocument(_)))
        );
        client.shutdown_and_exit().await;
    })
    .await;
}

/// Waits until the analysis has tasks waiting in the (external) query lane.
async fn analysis_waiting(client: &LspClient) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let pending = client
            .ext_request::<PendingTasks>(PendingTasksParams {
                lane: Some(Lane::Query),
                ..Default::default()
            })
            .await
            .unwrap()
            .pending;
        if !pending.is_empty() {
            assert!(pending.iter().all(|t| {
                t.session
                    .as_deref()
                    .is_some_and(|s| s.starts_with("analyze-"))
            }));
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the analysis never queued a task"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The query lane has nothing running or waiting.
async fn drained(client: &LspClient) {
    let stats = client.command::<QueueStats>(NoParams {}).await.unwrap();
    let query = stats.lane(Lane::Query);
    assert_eq!((query.running, query.queued), (0, 0), "{query:?}");
    assert!(query.cancelled > 0, "{query:?}");
}

#[tokio::test]
async fn queue_stats_answer_promptly_while_an_analysis_runs() {
    within(LIMIT, async {
        let dir = workspace();
        let mut options = ClientOptions::new(dir.path());
        external_query(&mut options);
        let (client, _) = LspClient::initialized(options).await;
        let analysis = client.command::<AnalyzeWorkspace>(AnalyzeWorkspaceParams::default());
        let probe = async {
            analysis_waiting(&client).await;
            for _ in 0..5 {
                let asked = Instant::now();
                let stats = client.command::<QueueStats>(NoParams {}).await.unwrap();
                let took = asked.elapsed();
                assert!(
                    took < Duration::from_millis(500),
                    "queueStats took {took:?}"
                );
                assert!(stats.lane(Lane::Query).queued > 0, "{stats:?}");
            }
            // Then end it: cancel everything.
            client
                .command::<switchyard::lsp::ext::Cancel>(Default::default())
                .await
                .unwrap()
        };
        let (result, cancelled) = tokio::join!(analysis, probe);
        assert_eq!(result.unwrap_err().code.0, -32800);
        assert!(
            cancelled.commands == 1 && cancelled.tasks > 0,
            "{cancelled:?}"
        );
        drained(&client).await;
        client.shutdown_and_exit().await;
    })
    .await;
}

#[tokio::test]
async fn cancelling_the_progress_ends_it_and_drains_the_lanes() {
    within(LIMIT, async {
        let dir = workspace();
        let mut options = ClientOptions::new(dir.path());
        with_progress(&mut options);
        external_query(&mut options);
        let (mut client, _) = LspClient::initialized(options).await;
        let token = NumberOrString::Number(42);
        let analysis = client.command_with_token::<AnalyzeWorkspace>(
            AnalyzeWorkspaceParams::default(),
            Some(token.clone()),
        );
        // The user presses cancel while the analysis's tasks wait in the lane.
        let cancel = async {
            analysis_waiting(&client).await;
            client
                .server
                .notify::<WorkDoneProgressCancel>(WorkDoneProgressCancelParams {
                    token: token.clone(),
                })
                .unwrap();
        };
        let (result, ()) = tokio::join!(analysis, cancel);
        assert_eq!(result.unwrap_err().code.0, -32800);
        wait_end(&mut client, &token).await;
        assert_eq!(check_sequence(&progress(&client, &token)), "cancelled");
        drained(&client).await;
        client.shutdown_and_exit().await;
    })
    .await;
}

#[tokio::test]
async fn cancel_request_ends_the_progress_and_drains_the_lanes() {
    within(LIMIT, async {
        let dir = workspace();
        let mut options = ClientOptions::new(dir.path());
        with_progress(&mut options);
        external_query(&mut options);
        let (mut client, _) = LspClient::initialized(options).await;
        let token = NumberOrString::String("to-be-cancelled".into());
        let analysis = client.command_with_token::<AnalyzeWorkspace>(
            AnalyzeWorkspaceParams::default(),
            Some(token.clone()),
        );
        let canceller = async {
            analysis_waiting(&client).await;
            let id = client.sent_request_id("workspace/executeCommand").await;
            client.cancel_request(id);
        };
        let (result, ()) = tokio::join!(analysis, canceller);
        assert_eq!(result.unwrap_err().code.0, -32800);
        wait_end(&mut client, &token).await;
        assert_eq!(check_sequence(&progress(&client, &token)), "cancelled");
        drained(&client).await;
        client.shutdown_and_exit().await;
    })
    .await;
}
