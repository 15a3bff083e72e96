//! The `switchyard` command line: `lsp`, `analyze`, `ask` and `tool` over one core.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::sync::Arc;
use switchyard::config::Config;
use switchyard::documents::Documents;
use switchyard::lanes::Lanes;

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
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(2, &format!("cannot start the runtime: {e}")),
    };
    match cli.command {
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
