//! `switchyard analyze [PATH] [--json] [--llm]`: the workspace analysis on stdout, a progress
//! bar on a terminal, and with `--llm` the module agents' explanation after it.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use switchyard::agent::ensemble::EnsembleEvent;
use switchyard::approvals::Prompter;
use switchyard::core::FrontEnd;
use switchyard::lanes::SessionId;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{fail, open_core, print, progress};

/// `switchyard analyze`'s arguments.
#[derive(Debug, clap::Args)]
pub struct AnalyzeArgs {
    /// The directory to analyze (default: the current directory).
    path: Option<PathBuf>,
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
    let core = match open_core(args.path, read_only) {
        Ok(core) => core,
        Err(e) => return fail(2, &e),
    };
    let root = match core.toolbox() {
        Ok(toolbox) => toolbox.workspace().primary().to_path_buf(),
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
    let result = core
        .analyze_and_explain(&root, args.llm, session, &events, token.clone())
        .await;
    drop(events);
    let _ = printer.await;
    interrupt.abort();
    let analyzed = match result {
        Ok(analyzed) => analyzed,
        Err(e) if token.is_cancelled() => return fail(130, &e),
        Err(e) => return fail(1, &e),
    };
    if let Some(reason) = &analyzed.no_provider {
        eprintln!("switchyard: no model provider for --llm: {reason}; here is the analysis alone");
    }
    let text = match (args.json, &analyzed.ensemble) {
        (true, None) => serde_json::to_string_pretty(&analyzed.analysis).map(|t| t + "\n"),
        (true, Some(report)) => serde_json::to_string_pretty(
            &serde_json::json!({"analysis": analyzed.analysis, "ensemble": report}),
        )
        .map(|t| t + "\n"),
        (false, _) => Ok(analyzed.to_markdown()),
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
        Ok(()) => ExitCode::SUCCESS,
        // A reader that stopped early (`| head`) is not a failure of the analysis.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => fail(1, &format!("cannot write the report: {e}")),
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
