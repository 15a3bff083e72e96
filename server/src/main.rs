//! The `switchyard` command line: `lsp`, `analyze`, `ask` and `tool` over one core.

use clap::Parser;

/// A coding agent behind the Language Server Protocol.
#[derive(Debug, Parser)]
#[command(name = "switchyard", version, about, long_about = None)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
