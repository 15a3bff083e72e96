//! `workspace/executeCommand`: one typed handler per command of [`ext`](super::ext).
//! Unknown commands and arguments that do not fit are `InvalidParams` errors saying which
//! command and what is wrong.

use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tower_lsp_server::jsonrpc::{Error, Result};
use tower_lsp_server::ls_types::{ExecuteCommandParams, ProgressToken, ShowDocumentParams};

use super::ext::{
    self, AnalyzeWorkspace, AnalyzeWorkspaceParams, AnalyzeWorkspaceResult, AskCommand, Cancel,
    CancelParams, CancelResult, CancelTarget, Command, Compact, DeadLetters, McpStatus,
    McpStatusResult, QueueStats, RetryDeadLetter, RetryDeadLetterResult, RunTool, RunToolParams,
    RunToolResult,
};
use super::progress::{self, LongCommand};
use super::server::Inner;
use super::{ask, to_proto};
use crate::analyze;
use crate::lanes::{Lanes, SessionId, TaskId};
use crate::tools::{self, CallContext};

/// Runs one command.
pub(crate) async fn execute(
    server: &Arc<Inner>,
    params: ExecuteCommandParams,
) -> Result<Option<Value>> {
    let ExecuteCommandParams {
        command,
        arguments,
        work_done_progress_params,
    } = params;
    let token = work_done_progress_params.work_done_token;
    match command.as_str() {
        QueueStats::NAME => {
            arguments_of::<QueueStats>(arguments)?;
            reply::<QueueStats>(server.core.queue_stats())
        }
        McpStatus::NAME => {
            let params = arguments_of::<McpStatus>(arguments)?;
            let servers = server
                .core
                .mcp_status(params.start)
                .await
                .map_err(|e| Error::invalid_params(format!("{}: {e}", McpStatus::NAME)))?;
            reply::<McpStatus>(McpStatusResult { servers })
        }
        DeadLetters::NAME => {
            arguments_of::<DeadLetters>(arguments)?;
            reply::<DeadLetters>(server.core.dead_letters())
        }
        RetryDeadLetter::NAME => {
            let params = arguments_of::<RetryDeadLetter>(arguments)?;
            let task_id = server
                .core
                .retry_dead_letter(params.id)
                .map_err(|e| Error::invalid_params(format!("{}: {e}", RetryDeadLetter::NAME)))?;
            reply::<RetryDeadLetter>(RetryDeadLetterResult { task_id })
        }
        Cancel::NAME => {
            let CancelParams { id } = arguments_of::<Cancel>(arguments)?;
            let result = match id {
                None => server.jobs.cancel_all(&server.lanes),
                Some(CancelTarget::Task(id)) => CancelResult {
                    commands: 0,
                    tasks: usize::from(server.lanes.cancel(id)),
                },
                Some(CancelTarget::Session(session)) => {
                    server.jobs.cancel_session(&server.lanes, &session)
                }
            };
            reply::<Cancel>(result)
        }
        AnalyzeWorkspace::NAME => {
            let params = arguments_of::<AnalyzeWorkspace>(arguments)?;
            let result = analyze_workspace(server, params, token).await?;
            reply::<AnalyzeWorkspace>(result)
        }
        RunTool::NAME => {
            let params = arguments_of::<RunTool>(arguments)?;
            reply::<RunTool>(run_tool(server, params).await?)
        }
        AskCommand::NAME => {
            let params = arguments_of::<AskCommand>(arguments)?;
            let token = token.or_else(|| params.work_done_token.clone());
            reply::<AskCommand>(ask::ask(server, params, token).await?)
        }
        Compact::NAME => {
            let params = arguments_of::<Compact>(arguments)?;
            reply::<Compact>(super::sessions::compact(server, params).await?)
        }
        unknown => Err(Error::invalid_params(format!(
            "unknown command `{unknown}`; this server runs {}",
            ext::command_names().join(", ")
        ))),
    }
}

/// `switchyard.analyzeWorkspace`: runs the analysis as a long command with progress,
/// writes its Markdown to `<root>/.switchyard/analysis.md`, and asks the client to show it
/// when the arguments say `show` and the client can.
async fn analyze_workspace(
    server: &Arc<Inner>,
    params: AnalyzeWorkspaceParams,
    token: Option<ProgressToken>,
) -> Result<AnalyzeWorkspaceResult> {
    let root = server.root(params.folder.as_ref())?;
    let session: SessionId = format!("analyze-{}", server.next_session()).into();
    let caps = server.state.read().caps;
    let command = LongCommand {
        title: "Analyzing workspace".into(),
        message: root.display().to_string(),
        session: session.clone(),
        token,
        can_create_token: caps.work_done_progress,
    };
    let work = {
        let server = Arc::clone(server);
        let session = session.clone();
        move |cancel: CancellationToken| async move {
            let core = &server.core;
            // Progress follows the analysis's session; the module agents report nothing more.
            let (progress, _) = tokio::sync::mpsc::unbounded_channel();
            let analyzed = core
                .analyze_and_explain(&root, params.llm, session.clone(), &progress, cancel)
                .await?;
            let markdown = analyzed.to_markdown();
            let mut outcome = outcome(&analyzed.analysis);
            let ensemble = match &analyzed.ensemble {
                Some(report) => {
                    outcome.push_str(&format!(
                        "; explained by {} module agents",
                        report.modules.len()
                    ));
                    Some(
                        serde_json::to_value(report)
                            .map_err(|e| format!("cannot represent the ensemble: {e}"))?,
                    )
                }
                None => None,
            };
            let notice = analyzed
                .no_provider
                .map(|reason| format!("no model provider, so no module agents: {reason}"));
            let analysis = serde_json::to_value(&analyzed.analysis)
                .map_err(|e| format!("cannot represent the analysis: {e}"))?;
            let report = core
                .write_report(&root, markdown.clone())
                .await
                .map_err(|e| e.to_string())?;
            let report_uri = to_proto::uri(&report)?;
            let result = AnalyzeWorkspaceResult {
                session: session.to_string(),
                analysis,
                markdown,
                report_uri,
                ensemble,
                notice,
            };
            Ok((result, outcome))
        }
    };
    let result =
        progress::run_long(&server.client, &server.lanes, &server.jobs, command, work).await?;
    if params.show && caps.show_document {
        let client = server.client.clone();
        let uri = result.report_uri.clone();
        tokio::spawn(async move {
            let show = ShowDocumentParams {
                uri,
                external: Some(false),
                take_focus: Some(true),
                selection: None,
            };
            if let Err(e) = client.show_document(show).await {
                tracing::warn!("the client did not show the analysis report: {e}");
            }
        });
    }
    Ok(result)
}

/// `switchyard.runTool`: one tool call through the lanes, seeing the open buffers. Bad
/// arguments are `InvalidParams`; a tool that ran and failed is `RequestFailed` with its
/// message. Dropping the request (`$/cancelRequest`) cancels the call's lane task.
async fn run_tool(server: &Arc<Inner>, params: RunToolParams) -> Result<RunToolResult> {
    let toolbox = server.toolbox()?;
    let task = toolbox
        .task(&params.name, params.arguments, &CallContext::default())
        .map_err(|e| Error::invalid_params(format!("{}: {e}", RunTool::NAME)))?;
    let handle = server.lanes.submit(task);
    // A cancelled token alone leaves a queued task waiting for a slot (or, in an external
    // lane, for a worker); cancelling by id takes it out at once.
    let mut guard = CancelOnDrop {
        lanes: &server.lanes,
        task: Some(handle.id()),
    };
    let result = handle.await;
    guard.task = None;
    let output = tools::lane_result(result).map_err(|e| progress::request_failed(e.message))?;
    let text = toolbox.render(&output);
    let output = serde_json::to_value(&output).map_err(|e| {
        tracing::error!("cannot serialize a tool's output: {e}");
        Error::internal_error()
    })?;
    Ok(RunToolResult { output, text })
}

/// Cancels a lane task when dropped before it is disarmed (`task` set to `None`).
struct CancelOnDrop<'a> {
    lanes: &'a Lanes,
    task: Option<TaskId>,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.task {
            self.lanes.cancel(id);
        }
    }
}

/// The one line a finished analysis is summed up in.
fn outcome(analysis: &analyze::Analysis) -> String {
    let took = match analysis.elapsed_ms {
        ms @ 0..1_000 => format!("{ms} ms"),
        ms => format!("{:.1} s", ms as f64 / 1_000.0),
    };
    format!(
        "analyzed {} files, {} lines of code, in {took}",
        tools::thousands(analysis.files.files),
        tools::thousands(analysis.total.lines.code),
    )
}

/// The command's parameters from `arguments`, or `InvalidParams` saying what is wrong.
fn arguments_of<C: Command>(arguments: Vec<Value>) -> Result<C::Params> {
    let value = ext::command_argument(arguments)
        .map_err(|e| Error::invalid_params(format!("{}: {e}", C::NAME)))?;
    serde_json::from_value(value)
        .map_err(|e| Error::invalid_params(format!("{}: invalid arguments: {e}", C::NAME)))
}

fn reply<C: Command>(result: C::Result) -> Result<Option<Value>> {
    serde_json::to_value(result).map(Some).map_err(|e| {
        tracing::error!("cannot serialize the result of {}: {e}", C::NAME);
        Error::internal_error()
    })
}
