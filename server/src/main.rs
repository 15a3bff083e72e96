//! The `switchyard` command line: `lsp`, `analyze`, `ask` and `tool` over one core.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

mod cli;

use clap::{Parser, Subcommand};
use switchyard::agent::ensemble::{self, EnsembleEvent, EnsembleInput};
use switchyard::agent::{Agent, AgentEvent, AskContext, SessionStore, StopReason};
use switchyard::analyze::{self, AnalyzeOptions};
use switchyard::approvals::{Approvals, Prompter};
use switchyard::config::Config;
use switchyard::documents::Documents;
use switchyard::edits::Applier;
use switchyard::lanes::{EventKind, Lanes, SessionId};
use switchyard::tools::{ALL_TOOLS, CallContext, Mutations, ToolOutput, Toolbox, Workspace};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A coding agent behind the Language Server Protocol.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the Language Server Protocol over stdin/stdout (what editors start).
    Lsp {
        /// Accepted for clients that ask for the stdio transport explicitly (stdio is the
        /// only transport).
        #[arg(long)]
        stdio: bool,
    },
    /// Ask the agent about the workspace: the answer streams to stdout, tool activity and
    /// notices to stderr.
    ///
    /// Every ask runs in a session kept under the user's state directory; continue one with
    /// --session, list them with --list. Ctrl-C cancels the request.
    ///
    /// Exits 0 when the model finished its answer, 1 on an error (the message goes to
    /// stderr), 2 on bad usage, 3 when a limit stopped the run early (agent.max_turns,
    /// agent.token_budget, the model's token limit), 130 when interrupted.
    Ask {
        /// What to ask; `-` reads it from stdin.
        #[arg(required_unless_present = "list")]
        prompt: Option<String>,
        /// The workspace root (default: the current directory).
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// Continue this session instead of starting a new one.
        #[arg(long, value_name = "ID")]
        session: Option<String>,
        /// List this workspace's sessions, most recent first, instead of asking.
        #[arg(long, conflicts_with_all = ["prompt", "session"])]
        list: bool,
        /// Allow every change the approval policy does not deny, without asking.
        #[arg(long)]
        yes: bool,
        /// Show the diff of every change and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Analyze a workspace: files, code, comment and blank lines per language (as tokei
    /// counts them), TODO/FIXME/HACK/XXX markers, the largest files, binary and ignored
    /// files, and the project manifests found.
    ///
    /// Prints a Markdown report on stdout (JSON with --json), with a progress bar on
    /// stderr when stderr is a terminal. Exits 0 on success, 1 when the analysis fails,
    /// 2 on bad usage, 130 when interrupted.
    Analyze {
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
    },
    /// Run one tool through the lanes and print its result: read, glob, grep, ls, and — on
    /// disk, asking first unless `--yes` — write, edit, multi_edit, delete, move, copy, bash.
    ///
    /// Exits 0 on success, 1 when the tool reports an error (the message goes to stderr),
    /// 2 on bad usage.
    Tool {
        /// The tool's name.
        name: String,
        /// Its arguments as a JSON object, e.g. '{"pattern": "fn main", "type": "rust"}'.
        #[arg(default_value = "{}")]
        args: String,
        /// The workspace root (default: the current directory).
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// Print the structured result as JSON instead of the text a model sees.
        #[arg(long)]
        json: bool,
        /// Allow every change the approval policy does not deny, without asking.
        #[arg(long)]
        yes: bool,
        /// Show the diff of a change and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Lsp { .. } = cli.command {
        // The language server sets up its own logging (stderr and the editor) and runtime.
        return match switchyard::lsp::run_stdio() {
            0 => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        };
    }
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(2, &format!("cannot start the runtime: {e}")),
    };
    match cli.command {
        Command::Lsp { .. } => ExitCode::FAILURE, // served above
        Command::Ask {
            prompt,
            cwd,
            session,
            list,
            yes,
            dry_run,
        } => runtime.block_on(ask(AskCommand {
            prompt,
            cwd,
            session,
            list,
            yes,
            dry_run,
        })),
        Command::Analyze { path, json, llm } => runtime.block_on(analyze(path, json, llm)),
        Command::Tool {
            name,
            args,
            cwd,
            json,
            yes,
            dry_run,
        } => runtime.block_on(tool(ToolCommand {
            name,
            args,
            cwd,
            json,
            yes,
            dry_run,
        })),
    }
}

/// Logs go to stderr only (stdout carries results, and the LSP protocol in `lsp`), at the
/// level `SWITCHYARD_LOG` names (`warn` by default).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SWITCHYARD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn fail(code: u8, message: &str) -> ExitCode {
    // Messages quote the model's server and tool output: clean on a terminal.
    eprintln!("switchyard: {}", cli::for_stderr(message));
    ExitCode::from(code)
}

/// The tools over the workspace rooted at `cwd` (or the current directory), on lanes
/// configured as the workspace says, with that configuration. Read-only until a front end
/// gives them [`Mutations`].
fn open_toolbox(cwd: Option<PathBuf>) -> Result<(Toolbox, Config), String> {
    let root = match cwd {
        Some(dir) => dir,
        None => std::env::current_dir()
            .map_err(|e| format!("cannot read the current directory: {e}"))?,
    };
    let workspace = Workspace::new([root])?;
    let config = Config::load(Some(workspace.primary()))?;
    let lanes = Lanes::new(config.lanes.clone())?;
    let toolbox = Toolbox::new(workspace, lanes, Documents::new(), config.tools.clone());
    Ok((toolbox, config))
}

/// `switchyard tool`'s arguments.
struct ToolCommand {
    name: String,
    args: String,
    cwd: Option<PathBuf>,
    json: bool,
    yes: bool,
    dry_run: bool,
}

/// How the CLI changes files: on disk, asking on the terminal unless `--yes`.
fn disk_mutations(config: &Config, yes: bool, dry_run: bool) -> Mutations {
    let prompter = if yes || dry_run {
        Prompter::AllowAll
    } else {
        Prompter::Terminal
    };
    Mutations {
        applier: Applier::Disk { dry_run },
        approvals: Arc::new(Approvals::new(config.approvals.clone(), prompter)),
    }
}

async fn tool(command: ToolCommand) -> ExitCode {
    let ToolCommand {
        name,
        args,
        cwd,
        json,
        yes,
        dry_run,
    } = command;
    if Toolbox::spec(&name).is_none() {
        return fail(
            2,
            &format!(
                "unknown tool `{name}`; the tools are {}",
                ALL_TOOLS.join(", ")
            ),
        );
    }
    let args: serde_json::Value = match serde_json::from_str(&args) {
        Ok(args) => args,
        Err(e) => return fail(2, &format!("the arguments must be a JSON object: {e}")),
    };
    let (toolbox, config) = match open_toolbox(cwd) {
        Ok(opened) => opened,
        Err(e) => return fail(2, &e),
    };
    toolbox.set_mutations(disk_mutations(&config, yes, dry_run));
    let result = toolbox.run(&name, args, &CallContext::default()).await;
    if let Ok(ToolOutput::Change(change)) = &result {
        eprint!("{}", cli::for_stderr(&change.diff));
    }
    match result {
        Ok(output) if json => match serde_json::to_string_pretty(&output) {
            Ok(text) => {
                println!("{}", cli::for_stdout(&text));
                ExitCode::SUCCESS
            }
            Err(e) => fail(1, &format!("cannot print the result as JSON: {e}")),
        },
        Ok(output) => {
            print!("{}", cli::for_stdout(&toolbox.render(&output)));
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, &e.message),
    }
}

async fn analyze(path: Option<PathBuf>, json: bool, llm: bool) -> ExitCode {
    let (toolbox, config) = match open_toolbox(path) {
        Ok(opened) => opened,
        Err(e) => return fail(2, &e),
    };
    let root = toolbox.workspace().primary().to_path_buf();
    let lanes = toolbox.lanes().clone();
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
    let progress = std::io::stderr()
        .is_terminal()
        .then(|| show_progress(&lanes, session.clone()));
    let options = AnalyzeOptions {
        root,
        ..AnalyzeOptions::default()
    };
    let result = analyze::run(&toolbox, &options, session, token.clone()).await;
    if let Some(progress) = progress {
        progress.abort();
        let _ = progress.await;
    }
    let analysis = match result {
        Ok(analysis) => analysis,
        Err(e) if token.is_cancelled() => return fail(130, &e),
        Err(e) => return fail(1, &e),
    };
    let report = if llm {
        let agent = Agent::new(
            toolbox,
            Agent::client(&config.llm),
            config.agent.clone(),
            None,
        );
        match explain(&agent, &analysis, &token).await {
            Ok(report) => report,
            Err(e) if token.is_cancelled() => return fail(130, &e),
            Err(e) => return fail(1, &e),
        }
    } else {
        None
    };
    interrupt.abort();
    let text = match (json, &report) {
        (true, None) => serde_json::to_string_pretty(&analysis),
        (true, Some(report)) => serde_json::to_string_pretty(
            &serde_json::json!({"analysis": analysis, "ensemble": report}),
        ),
        (false, None) => Ok(analysis.to_markdown()),
        (false, Some(report)) => Ok(format!(
            "{}\n{}",
            analysis.to_markdown(),
            report.to_markdown()
        )),
    };
    let text = match text {
        Ok(text) if json => text + "\n",
        Ok(text) => text,
        Err(e) => return fail(1, &format!("cannot print the analysis as JSON: {e}")),
    };
    let text = cli::for_stdout(&text);
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

/// `analyze --llm`: the ensemble over `analysis`, its progress on stderr. `Ok(None)` when
/// no provider is configured (said on stderr): the analysis stands alone.
async fn explain(
    agent: &Agent,
    analysis: &analyze::Analysis,
    token: &CancellationToken,
) -> Result<Option<ensemble::EnsembleReport>, String> {
    if let Err(e) = agent.llm() {
        eprintln!("switchyard: no model provider for --llm: {e}; here is the analysis alone");
        return Ok(None);
    }
    let modules = ensemble::modules(agent.toolbox(), analysis).await?;
    let input = EnsembleInput {
        report: analysis.to_markdown(),
        modules,
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let printer = tokio::spawn(async move {
        while let Some(event) = rx.recv().await {
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
                    eprintln!("{}", cli::for_stderr(&line));
                }
                EnsembleEvent::SynthesisStarted => eprintln!("switchyard: writing the summary"),
            }
        }
    });
    let result = agent.ensemble(input, &tx, token).await;
    drop(tx);
    let _ = printer.await;
    result.map(Some).map_err(|e| e.to_string())
}

/// A progress bar on stderr fed by the session's lane events: its length grows as tasks
/// are queued, its position as they finish. Abort the task to clear the bar.
fn show_progress(lanes: &Lanes, session: SessionId) -> tokio::task::JoinHandle<()> {
    let mut events = lanes.subscribe();
    tokio::spawn(async move {
        // Hidden until the first task is queued: a 0/0 bar would read as done.
        let bar = indicatif::ProgressBar::with_draw_target(
            Some(0),
            indicatif::ProgressDrawTarget::hidden(),
        );
        let style = indicatif::ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {pos}/{len} tasks {elapsed}",
        )
        .map(|style| style.progress_chars("=> "))
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message("walking");
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        // Clears the bar however the task ends, aborted included.
        struct Clear(indicatif::ProgressBar);
        impl Drop for Clear {
            fn drop(&mut self) {
                self.0.finish_and_clear();
            }
        }
        let bar = Clear(bar);
        loop {
            let event = match events.recv().await {
                Ok(event) => event,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            if event.session.as_deref() != Some(&*session) {
                continue;
            }
            match event.kind {
                EventKind::Queued => {
                    if bar.0.is_hidden() {
                        bar.0
                            .set_draw_target(indicatif::ProgressDrawTarget::stderr());
                    }
                    bar.0.inc_length(1);
                    if &*event.name != "analyze.walk" {
                        bar.0.set_message("reading files");
                    }
                }
                EventKind::Finished { .. } => bar.0.inc(1),
                _ => {}
            }
        }
    })
}

/// `switchyard ask`'s arguments.
struct AskCommand {
    prompt: Option<String>,
    cwd: Option<PathBuf>,
    session: Option<String>,
    list: bool,
    yes: bool,
    dry_run: bool,
}

async fn ask(command: AskCommand) -> ExitCode {
    let AskCommand {
        prompt,
        cwd,
        session,
        list,
        yes,
        dry_run,
    } = command;
    let (toolbox, config) = match open_toolbox(cwd) {
        Ok(opened) => opened,
        Err(e) => return fail(2, &e),
    };
    let store = match SessionStore::for_workspace(toolbox.workspace().primary()) {
        Ok(store) => Some(store),
        Err(e) => {
            eprintln!("switchyard: {e}; this session will not be kept");
            None
        }
    };
    toolbox.set_mutations(disk_mutations(&config, yes, dry_run));
    let agent = Agent::new(
        toolbox,
        Agent::client(&config.llm),
        config.agent.clone(),
        store,
    );
    if list {
        return match agent.list_sessions().await {
            Ok(sessions) => {
                for s in sessions {
                    let line = format!("{}  {} messages  {}", s.id, s.messages, s.title);
                    println!("{}", cli::for_stdout(&line));
                }
                ExitCode::SUCCESS
            }
            Err(e) => fail(1, &e.to_string()),
        };
    }
    let prompt = match prompt.as_deref() {
        Some("-") => {
            let mut text = String::new();
            if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
                return fail(2, &format!("cannot read the prompt from stdin: {e}"));
            }
            text
        }
        Some(prompt) => prompt.to_string(),
        None => String::new(),
    };
    if prompt.trim().is_empty() {
        return fail(2, "the prompt is empty");
    }
    if let Err(e) = agent.llm() {
        return fail(1, &e);
    }
    let session = match &session {
        Some(id) => agent.session(id).await,
        None => agent.new_session().await,
    };
    let session = match session {
        Ok(session) => session,
        Err(e) => return fail(1, &e.to_string()),
    };

    let (events, received) = mpsc::unbounded_channel();
    let printer = tokio::spawn(print_events(received));
    let context = AskContext::default();
    let result = {
        let send = session.send(&prompt, &context, &events);
        tokio::pin!(send);
        let mut interrupted = false;
        loop {
            tokio::select! {
                result = &mut send => break result,
                _ = tokio::signal::ctrl_c() => {
                    // The first Ctrl-C cancels and lets the session settle; a second one
                    // does not wait.
                    if interrupted {
                        return fail(130, "interrupted");
                    }
                    interrupted = true;
                    session.cancel();
                }
            }
        }
    };
    drop(events);
    let _ = printer.await;
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(e) => return fail(1, &e.to_string()),
    };
    let usage = outcome.usage;
    eprintln!(
        "switchyard: session {} ({} model call{}, {} tokens in, {} out); continue it with --session {}",
        outcome.session,
        outcome.turns,
        if outcome.turns == 1 { "" } else { "s" },
        usage.input_tokens,
        usage.output_tokens,
        outcome.session,
    );
    match outcome.stop {
        StopReason::EndTurn => ExitCode::SUCCESS,
        StopReason::Cancelled => fail(130, "cancelled"),
        stop => fail(3, &stop.explain(&agent.config()).unwrap_or_default()),
    }
}

/// Prints a run's events: the answer to stdout as it streams, tool activity to stderr
/// (see [`cli::AnswerPrinter`]).
async fn print_events(mut events: mpsc::UnboundedReceiver<AgentEvent>) {
    let mut printer = cli::AnswerPrinter::new(
        std::io::stdout(),
        std::io::stderr(),
        std::io::stdout().is_terminal(),
        std::io::stderr().is_terminal(),
    );
    while let Some(event) = events.recv().await {
        printer.event(event);
    }
    printer.finish();
}
