//! The `switchyard` binary: parses the command line and hands it to [`cli`].

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // Before anything reads a secret: the server's memory and environment stay unreadable
    // to the commands it runs (see `docs/security.md`).
    switchyard::tools::protect_process();
    cli::run(cli::Cli::parse())
}
