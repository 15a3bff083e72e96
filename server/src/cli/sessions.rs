//! `switchyard sessions [list|show ID|rm ID]`: the workspace's stored sessions — listed with
//! their turns and usage, one shown in full (every message, compacted or rewound ones
//! included, with each turn's usage), one deleted.

use std::path::PathBuf;
use std::process::ExitCode;

use switchyard::agent::{Agent, Loaded};
use switchyard::core::FrontEnd;
use switchyard::llm::{Message, Usage};

use super::{fail, open_core, print};

/// `switchyard sessions`' arguments.
#[derive(Debug, clap::Args)]
pub struct SessionsArgs {
    #[command(subcommand)]
    action: Option<Action>,
    /// The workspace root (default: the current directory).
    #[arg(long, global = true)]
    cwd: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// List the sessions, most recently changed first (the default).
    List,
    /// Print a session's whole conversation, turn by turn, with each turn's usage.
    Show {
        /// The session's id.
        id: String,
    },
    /// Delete a session.
    Rm {
        /// The session's id.
        id: String,
    },
}

pub async fn run(args: SessionsArgs) -> ExitCode {
    let front = FrontEnd {
        applier: None,
        prompter: switchyard::approvals::Prompter::Nobody,
    };
    let core = match open_core(args.cwd, front) {
        Ok(core) => core,
        Err(e) => return fail(2, &e),
    };
    let agent = match core.agent() {
        Ok(agent) => agent,
        Err(e) => return fail(2, &e.to_string()),
    };
    match args.action.unwrap_or(Action::List) {
        Action::List => list(&agent).await,
        Action::Show { id } => match agent.transcript(&id).await {
            Ok(loaded) => {
                print!("{}", print::for_stdout(&show(&loaded)));
                ExitCode::SUCCESS
            }
            Err(e) => fail(1, &e.to_string()),
        },
        Action::Rm { id } => match agent.delete_session(&id).await {
            Ok(()) => {
                eprintln!("switchyard: deleted session {id}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(1, &e.to_string()),
        },
    }
}

async fn list(agent: &Agent) -> ExitCode {
    match agent.list_sessions().await {
        Ok(sessions) => {
            for s in sessions {
                let turns = plural(u64::from(s.turns), "turn");
                let line = format!(
                    "{}  {turns}  {}  {}",
                    s.id,
                    usage(s.usage, s.cost_usd),
                    s.title
                );
                println!("{}", print::for_stdout(&line));
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(1, &e.to_string()),
    }
}

/// `1,234 in (1,000 cached) · 56 out · $0.0123`: tokens and, when known, their cost.
pub(crate) fn usage(usage: Usage, cost_usd: Option<f64>) -> String {
    let thousands = switchyard::tools::thousands;
    let mut text = format!("{} in", thousands(usage.input_tokens));
    if usage.cached_tokens > 0 {
        text.push_str(&format!(" ({} cached)", thousands(usage.cached_tokens)));
    }
    text.push_str(&format!(" · {} out", thousands(usage.output_tokens)));
    if let Some(cost) = cost_usd {
        text.push_str(&format!(" · ${cost:.4}"));
    }
    text
}

/// `1 turn`, `3 turns`.
pub(crate) fn plural(n: u64, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// The conversation as text: each turn under a heading with its usage.
fn show(loaded: &Loaded) -> String {
    let mut out = String::new();
    let mut turn = 0;
    for message in &loaded.full {
        match message {
            Message::User { content } => {
                turn += 1;
                out.push_str(&format!("## turn {turn}"));
                if let Some(used) = loaded.turn_usage.iter().find(|u| u.turn == turn) {
                    out.push_str(&format!(
                        " ({}: {})",
                        used.model,
                        usage(used.usage, used.cost_usd)
                    ));
                }
                out.push_str(&format!("\n\n> {}\n\n", content.replace('\n', "\n> ")));
            }
            Message::Assistant {
                text, tool_calls, ..
            } => {
                if !text.is_empty() {
                    out.push_str(text);
                    out.push_str("\n\n");
                }
                for call in tool_calls {
                    out.push_str(&format!("  > {} {}\n", call.name, call.arguments));
                }
            }
            Message::ToolResult {
                content, is_error, ..
            } => {
                let lines = content.lines().count();
                let what = if *is_error { "error" } else { "result" };
                out.push_str(&format!("  < {what}: {}\n", plural(lines as u64, "line")));
            }
        }
    }
    out.push_str(&format!(
        "{} · {}\n",
        plural(u64::from(loaded.turns), "turn"),
        usage(loaded.usage, loaded.cost_usd)
    ));
    out
}
