//! The command line, one module per subcommand (as cargo and ripgrep lay theirs out): each
//! parses into its own `#[derive(Args)]` struct, used as it is, and calls the core. The
//! terminal printer of agent events is in `print.rs`, the progress bar in `progress.rs`.

mod acp;
mod analyze;
mod ask;
mod mcp;
mod print;
mod progress;
mod rewind;
mod sessions;
mod tool;
mod trust;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchyard::approvals::Prompter;
use switchyard::core::{Core, FrontEnd};
use switchyard::edits::Applier;

/// A coding agent behind the Language Server Protocol.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the Language Server Protocol over stdin/stdout (what editors start).
    Lsp(LspArgs),
    /// Serve the Agent Client Protocol on stdio (for Zed, JetBrains, agent-shell, acpx, ...)
    Acp(acp::AcpArgs),
    /// Ask the agent about the workspace: the answer streams to stdout, tool activity and
    /// notices to stderr.
    ///
    /// Every ask runs in a session kept under the user's state directory; continue one with
    /// --session, list them with `switchyard sessions`. Ctrl-C cancels the request.
    ///
    /// Exits 0 when the model finished its answer, 1 on an error (the message goes to
    /// stderr), 2 on bad usage, 3 when a limit stopped the run early (agent.max_turns,
    /// agent.token_budget, the model's token limit), 130 when interrupted.
    Ask(ask::AskArgs),
    /// The workspace's sessions: list them with their turns and usage (the default), show
    /// one's whole conversation, or delete one.
    ///
    /// Exits 0 on success, 1 on an error (an unknown session), 2 on bad usage.
    Sessions(sessions::SessionsArgs),
    /// Take a session back to the start of a turn: the files the agent changed since (as
    /// they were before), the conversation, or both. A file someone else changed since the
    /// agent left it is not overwritten unless --force; a turn that ran bash is said to be
    /// not fully restorable.
    ///
    /// Exits 0 on success, 1 when the rewind is refused or fails, 2 on bad usage.
    Rewind(rewind::RewindArgs),
    /// Analyze a workspace: files, code, comment and blank lines per language (as tokei
    /// counts them), TODO/FIXME/HACK/XXX markers, the largest files, binary and ignored
    /// files, and the project manifests found.
    ///
    /// Prints a Markdown report on stdout (JSON with --json), with a progress bar on
    /// stderr when stderr is a terminal. Exits 0 on success, 1 when the analysis fails,
    /// 2 on bad usage, 130 when interrupted.
    Analyze(analyze::AnalyzeArgs),
    /// Run one tool through the lanes and print its result: read, glob, grep, ls, and — on
    /// disk, asking first unless `--yes` — write, edit, multi_edit, delete, move, copy, bash.
    ///
    /// Exits 0 on success, 1 when the tool reports an error (the message goes to stderr),
    /// 2 on bad usage.
    Tool(tool::ToolArgs),
    /// Trust a folder's `.switchyard.toml` as it reads now, so it may also set the model
    /// provider, base URL and key, loosen approvals and start processes. Untrusted, those
    /// settings are ignored (with a notice); tightening ones always apply.
    ///
    /// Trust is kept in the user's configuration folder, pinned to the file's content: after
    /// the file changes, trust it again. Exits 0 on success, 1 on an error.
    Trust(trust::TrustArgs),
    /// List the MCP servers configured for the workspace (`[mcp_servers.NAME]`): each is
    /// started, then shown with its state, its tools as the model calls them (read-only ones
    /// marked) and its last error.
    ///
    /// Exits 0 when every enabled server runs, 1 when one failed, 2 on bad usage.
    Mcp(mcp::McpArgs),
    /// Serve external lanes from a NATS JetStream broker: claim the Query tasks of the
    /// repositories under --root, run them, renew their leases, return their results.
    /// SIGTERM drains (the tasks held are finished) and exits 0; exits 1 on an error.
    Worker(worker::WorkerArgs),
}

/// `switchyard lsp`.
#[derive(Debug, clap::Args)]
struct LspArgs {
    /// Accepted for clients that ask for the stdio transport explicitly (stdio is the only
    /// transport).
    #[arg(long)]
    stdio: bool,
}

/// Runs a parsed command line; the exit code is the command's.
pub fn run(cli: Cli) -> ExitCode {
    if let Command::Lsp(_) = cli.command {
        // The language server sets up its own logging (stderr and the editor) and runtime.
        return match switchyard::lsp::run_stdio() {
            0 => ExitCode::SUCCESS,
            _ => ExitCode::FAILURE,
        };
    }
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(switchyard::lanes::cores())
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(2, &format!("cannot start the runtime: {e}")),
    };
    match cli.command {
        Command::Lsp(_) => ExitCode::FAILURE, // served above
        Command::Acp(args) => runtime.block_on(acp::run(args)),
        Command::Ask(args) => runtime.block_on(ask::run(args)),
        Command::Sessions(args) => runtime.block_on(sessions::run(args)),
        Command::Rewind(args) => runtime.block_on(rewind::run(args)),
        Command::Analyze(args) => runtime.block_on(analyze::run(args)),
        Command::Tool(args) => runtime.block_on(tool::run(args)),
        Command::Trust(args) => trust::run(args),
        Command::Mcp(args) => runtime.block_on(mcp::run(args)),
        Command::Worker(args) => runtime.block_on(worker::run(args)),
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

/// Says `message` on stderr and returns `code`.
fn fail(code: u8, message: &str) -> ExitCode {
    // Messages quote the model's server and tool output: clean on a terminal.
    eprintln!("switchyard: {}", print::for_stderr(message));
    ExitCode::from(code)
}

/// How the CLI changes files: on disk, asking on the terminal — unless `yes` (allow what the
/// policy does not deny) or `dry_run` (write nothing).
fn on_disk(yes: bool, dry_run: bool) -> FrontEnd {
    let prompter = if yes || dry_run {
        Prompter::AllowAll
    } else {
        Prompter::Terminal
    };
    FrontEnd {
        applier: Some(Applier::Disk { dry_run }),
        prompter,
    }
}

/// The core over the workspace rooted at `cwd` (or the current directory).
fn open_core(cwd: Option<PathBuf>, front: FrontEnd) -> Result<Core, String> {
    let root = match cwd {
        Some(dir) => dir,
        None => std::env::current_dir()
            .map_err(|e| format!("cannot read the current directory: {e}"))?,
    };
    let (core, ignored) = Core::open(&root, front).map_err(|e| e.to_string())?;
    if let Some(ignored) = ignored {
        eprintln!("switchyard: {}", ignored.notice());
    }
    Ok(core)
}
