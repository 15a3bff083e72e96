//! `switchyard rewind SESSION TURN [--only code|conversation] [--force]`: a session back to
//! the start of a turn — the files it changed since (written atomically, one by one), the
//! conversation, or both.

use std::path::PathBuf;
use std::process::ExitCode;

use switchyard::agent::{Only, RewindRequest};
use switchyard::approvals::Prompter;
use switchyard::core::FrontEnd;
use switchyard::edits::Applier;

use super::{fail, open_core, print};

/// `switchyard rewind`'s arguments.
#[derive(Debug, clap::Args)]
pub struct RewindArgs {
    /// The session's id (see `switchyard sessions`).
    session: String,
    /// The turn to go back to the start of, from 1 (see `switchyard sessions show`).
    turn: u32,
    /// Only the files (`code`) or only the conversation (`conversation`); both by default.
    #[arg(long, value_parser = Only::parse)]
    only: Option<Only>,
    /// Restore files even when they changed since the agent left them.
    #[arg(long)]
    force: bool,
    /// The workspace root (default: the current directory).
    #[arg(long)]
    cwd: Option<PathBuf>,
}

pub async fn run(args: RewindArgs) -> ExitCode {
    let front = FrontEnd {
        applier: Some(Applier::Disk { dry_run: false }),
        prompter: Prompter::Nobody,
    };
    let core = match open_core(args.cwd, front) {
        Ok(core) => core,
        Err(e) => return fail(2, &e),
    };
    let request = RewindRequest {
        turn: args.turn,
        only: args.only,
        force: args.force,
    };
    let report = match core.rewind(&args.session, request).await {
        Ok(report) => report,
        Err(e) => return fail(1, &e.to_string()),
    };
    for path in &report.restored {
        println!("{}", print::for_stdout(&format!("restored {path}")));
    }
    if report.conversation {
        let line = format!(
            "the conversation is back at the start of turn {}",
            report.turn
        );
        println!("{}", print::for_stdout(&line));
    }
    for note in &report.not_restorable {
        eprintln!("switchyard: {}", print::for_stderr(note));
    }
    ExitCode::SUCCESS
}
