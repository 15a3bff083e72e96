//! The `switchyard` binary: parses the command line and hands it to [`cli`].

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    cli::run(cli::Cli::parse())
}
