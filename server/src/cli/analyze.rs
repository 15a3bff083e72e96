//! `switchyard analyze [DIR…] [--json] [--llm]`: the workspace analysis on stdout, a progress
//! bar on a terminal, and with `--llm` the module agents' explanation after it. Several
//! directories are analysed at once through the lanes (by the external Query lane's workers
//! when it has them), a report each and a summary after them.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use switchyard::agent::ensemble::EnsembleEvent;
use switchyard::approvals::Prompter;
use switchyard::core::{Analyzed, FrontEnd};
use switchyard::lanes::SessionId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{fail, open_core, print, progress};

/// `switchyard analyze`'s arguments.
#[derive(Debug, clap::Args)]
pub struct AnalyzeArgs {
    /// The directory to analyze (default: the current directory); several are analysed at
    /// once, one report each, then a summary.
    paths: Vec<PathBuf>,
    /// Print the analysis as JSON instead of Markdown.
    #[arg(long)]
    json: bool,
    /// Then have the model explain it: one agent per top-level module or package in
    /// parallel, then one that writes the summary (needs a model provider: llm.model or
    /// SWITCHYARD_MODEL; without one, says so and prints the analysis alone).
    #[arg(long)]
    llm: bool,
}

pub async fn run(args: AnalyzeArgs) -> ExitCode {
    // The analysis and its module agents change nothing: read-only tools only.
    let read_only = FrontEnd {
        applier: None,
        prompter: Prompter::Nobody,
    };
    let core = match open_core(args.paths.first().cloned(), read_only) {
        Ok(core) => core,
        Err(e) => return fail(2, &e),
    };
    if args.paths.len() > 1
        && let Err(e) = core.set_roots(args.paths.clone())
    {
        return fail(2, &e.to_string());
    }
    let roots = match core.toolbox() {
        Ok(toolbox) => toolbox.workspace().roots().to_vec(),
        Err(e) => return fail(2, &e.to_string()),
    };
    let session: SessionId = "analyze".into();
    let token = CancellationToken::new();
    let interrupt = {
        let token = token.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                token.cancel();
            }
        })
    };
    let bar = std::io::stderr()
        .is_terminal()
        .then(|| progress::show(core.lanes(), session.clone()));
    let (events, received) = mpsc::unbounded_channel();
    let printer = tokio::spawn(print_ensemble(received, bar));
    let results = core
        .analyze_each(&roots, args.llm, session, &events, token.clone())
        .await;
    drop(events);
    let _ = printer.await;
    interrupt.abort();
    if token.is_cancelled() {
        return fail(130, "the analysis was cancelled");
    }
    let text = match results.as_slice() {
        [Err(e)] => return fail(1, e),
        [Ok(analyzed)] => report(analyzed, args.json),
        each => batch_report(&roots, each, args.json),
    };
    let text = match text {
        Ok(text) => text,
        Err(e) => return fail(1, &format!("cannot print the analysis as JSON: {e}")),
    };
    let text = print::for_stdout(&text);
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) if results.iter().all(Result::is_ok) => ExitCode::SUCCESS,
        Ok(()) => fail(
            1,
            "the analysis of some directories failed (see their reports)",
        ),
        // A reader that stopped early (`| head`) is not a failure of the analysis.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(1, &format!("cannot write the report: {e}")),
    }
}

/// One directory's report, as Markdown or JSON.
fn report(analyzed: &Analyzed, json: bool) -> serde_json::Result<String> {
    if let Some(reason) = &analyzed.no_provider {
        eprintln!("switchyard: no model provider for --llm: {reason}; here is the analysis alone");
    }
    match (json, &analyzed.ensemble) {
        (true, None) => serde_json::to_string_pretty(&analyzed.analysis).map(|t| t + "\n"),
        (true, Some(report)) => serde_json::to_string_pretty(
            &serde_json::json!({"analysis": analyzed.analysis, "ensemble": report}),
        )
        .map(|t| t + "\n"),
        (false, _) => Ok(analyzed.to_markdown()),
    }
}

/// The reports of several directories, then a summary: as Markdown, or as JSON
/// `{"repositories": [{"root", "analysis", "ensemble"?} | {"root", "error"}], "summary"}`.
fn batch_report(
    roots: &[PathBuf],
    each: &[Result<Analyzed, String>],
    json: bool,
) -> serde_json::Result<String> {
    let summary = Summary::of(each);
    if json {
        let repositories: Vec<serde_json::Value> = roots
            .iter()
            .zip(each)
            .map(|(root, result)| match result {
                Ok(analyzed) => serde_json::json!({
                    "root": root,
                    "analysis": analyzed.analysis,
                    "ensemble": analyzed.ensemble,
                }),
                Err(error) => serde_json::json!({"root": root, "error": error}),
            })
            .collect();
        let all = serde_json::json!({"repositories": repositories, "summary": summary});
        return serde_json::to_string_pretty(&all).map(|t| t + "\n");
    }
    let mut out = String::new();
    for (root, result) in roots.iter().zip(each) {
        match result {
            Ok(analyzed) => out.push_str(&report(analyzed, false)?),
            Err(error) => out.push_str(&format!(
                "# {}\n\nThe analysis failed: {error}\n",
                root.display()
            )),
        }
        out.push('\n');
    }
    out.push_str(&format!(
        "# Summary\n\n{} repositories analysed, {} failed: {} files, {} lines of code, \
         {} comments, {} blanks, {} markers.\n\n\
         | repository | files | code | comments | blanks | markers | main language |\n\
         |---|---:|---:|---:|---:|---:|---|\n",
        summary.repositories,
        summary.failed,
        summary.files,
        summary.code,
        summary.comments,
        summary.blanks,
        summary.markers
    ));
    for (root, result) in roots.iter().zip(each) {
        let row = match result {
            Ok(Analyzed { analysis: a, .. }) => format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                a.root,
                a.total.files,
                a.total.lines.code,
                a.total.lines.comments,
                a.total.lines.blanks,
                a.markers.total(),
                a.languages.first().map_or("—", |l| l.name.as_str())
            ),
            Err(_) => format!("| {} | failed | | | | | |\n", root.display()),
        };
        out.push_str(&row);
    }
    Ok(out)
}

/// What several directories hold together.
#[derive(Debug, Default, serde::Serialize)]
struct Summary {
    repositories: usize,
    failed: usize,
    files: u64,
    code: u64,
    comments: u64,
    blanks: u64,
    markers: u64,
}

impl Summary {
    fn of(each: &[Result<Analyzed, String>]) -> Summary {
        let mut summary = Summary {
            repositories: each.len(),
            ..Summary::default()
        };
        for result in each {
            let Ok(Analyzed { analysis: a, .. }) = result else {
                summary.failed += 1;
                continue;
            };
            summary.files += a.total.files;
            summary.code += a.total.lines.code;
            summary.comments += a.total.lines.comments;
            summary.blanks += a.total.lines.blanks;
            summary.markers += a.markers.total();
        }
        summary
    }
}

/// Says on stderr what the module agents are doing; the analysis's progress bar (if any)
/// is cleared when the first of them starts.
async fn print_ensemble(
    mut events: mpsc::UnboundedReceiver<EnsembleEvent>,
    mut bar: Option<tokio::task::JoinHandle<()>>,
) {
    while let Some(event) = events.recv().await {
        if let Some(bar) = bar.take() {
            bar.abort();
            let _ = bar.await;
        }
        match event {
            EnsembleEvent::ModulesStarted { total } => {
                eprintln!("switchyard: {total} module agents at work");
            }
            EnsembleEvent::ModuleFinished {
                name,
                ok,
                done,
                total,
            } => {
                let how = if ok { "done" } else { "no notes" };
                let line = format!("  {name}: {how} ({done} of {total})");
                eprintln!("{}", print::for_stderr(&line));
            }
            EnsembleEvent::SynthesisStarted => eprintln!("switchyard: writing the summary"),
        }
    }
    if let Some(bar) = bar {
        bar.abort();
        let _ = bar.await;
    }
}
