//! The `switchyard` command line: `lsp`, `analyze`, `ask` and `tool` over one core.

use clap::{Parser, Subcommand};

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
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Lsp => std::process::exit(switchyard::lsp::run_stdio()),
    }
}
