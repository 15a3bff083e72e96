//! The `switchyard` command line: `lsp`, `analyze`, `ask` and `tool` over one core.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::sync::Arc;
use switchyard::analyze::{self, AnalyzeOptions};
use switchyard::config::Config;
use switchyard::documents::Documents;
use switchyard::lanes::{EventKind, Lanes, SessionId};
use tokio_util::sync::CancellationToken;

use switchyard::approvals::{Approvals, Prompter};
use switchyard::edits::Applier;
use switchyard::tools::{ALL_TOOLS, CallContext, Mutations, ToolOutput, Toolbox, Workspace};

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
    Lsp,
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
    if let Command::Lsp = cli.command {
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
        Command::Lsp => ExitCode::FAILURE, // served above
        Command::Analyze { path, json } => runtime.block_on(analyze(path, json)),
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
    eprintln!("switchyard: {message}");
    ExitCode::from(code)
}

/// The workspace rooted at `cwd` (or the current directory) with its configuration.
fn open_workspace(cwd: Option<PathBuf>) -> Result<(Workspace, Config), String> {
    let root = match cwd {
        Some(dir) => dir,
        None => std::env::current_dir()
            .map_err(|e| format!("cannot read the current directory: {e}"))?,
    };
    let workspace = Workspace::new([root])?;
    let config = Config::load(Some(workspace.primary()))?;
    Ok((workspace, config))
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
    let (workspace, config) = match open_workspace(cwd) {
        Ok(opened) => opened,
        Err(e) => return fail(2, &e),
    };
    let lanes = match Lanes::new(config.lanes.clone()) {
        Ok(lanes) => lanes,
        Err(e) => return fail(2, &e),
    };
    let mutations = disk_mutations(&config, yes, dry_run);
    let toolbox = Toolbox::new(workspace, lanes, Documents::new(), config.tools);
    toolbox.set_mutations(mutations);
    let result = toolbox.run(&name, args, &CallContext::default()).await;
    if let Ok(ToolOutput::Change(change)) = &result {
        eprint!("{}", change.diff);
    }
    match result {
        Ok(output) if json => match serde_json::to_string_pretty(&output) {
            Ok(text) => {
                println!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(1, &format!("cannot print the result as JSON: {e}")),
        },
        Ok(output) => {
            print!("{}", toolbox.render(&output));
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, &e.message),
    }
}

async fn analyze(path: Option<PathBuf>, json: bool) -> ExitCode {
    let (workspace, config) = match open_workspace(path) {
        Ok(opened) => opened,
        Err(e) => return fail(2, &e),
    };
    let lanes = match Lanes::new(config.lanes) {
        Ok(lanes) => lanes,
        Err(e) => return fail(2, &e),
    };
    let root = workspace.primary().to_path_buf();
    let toolbox = Toolbox::new(workspace, lanes.clone(), Documents::new(), config.tools);
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
    interrupt.abort();
    if let Some(progress) = progress {
        progress.abort();
        let _ = progress.await;
    }
    let analysis = match result {
        Ok(analysis) => analysis,
        Err(e) if token.is_cancelled() => return fail(130, &e),
        Err(e) => return fail(1, &e),
    };
    let text = if json {
        match serde_json::to_string_pretty(&analysis) {
            Ok(text) => text + "\n",
            Err(e) => return fail(1, &format!("cannot print the analysis as JSON: {e}")),
        }
    } else {
        analysis.to_markdown()
    };
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
