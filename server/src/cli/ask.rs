//! `switchyard ask PROMPT`: the agent, headless.

use std::path::PathBuf;
use std::process::ExitCode;

use switchyard::agent::{AskContext, StopReason};
use switchyard::llm::ProviderKind;
use tokio::sync::mpsc;

use super::{fail, on_disk, open_core, print, sessions};

/// `switchyard ask`'s arguments.
#[derive(Debug, clap::Args)]
pub struct AskArgs {
    /// What to ask; `-` reads it from stdin. Optional with --compact.
    #[arg(required_unless_present = "compact")]
    prompt: Option<String>,
    /// The workspace root (default: the current directory).
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Continue this session instead of starting a new one.
    #[arg(long, value_name = "ID")]
    session: Option<String>,
    /// Switch the session to this model for this turn and the next ones.
    #[arg(long, value_name = "NAME")]
    model: Option<String>,
    /// With --model: its provider (`openai` or `anthropic`); the history is sent in that
    /// wire format from now on.
    #[arg(long, requires = "model", value_parser = parse_provider)]
    provider: Option<ProviderKind>,
    /// Allow every change the approval policy does not deny, without asking.
    #[arg(long)]
    yes: bool,
    /// Show the diff of every change and write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Compact the session (--session) before the prompt: everything but its last
    /// exchange is summarized by the model. Without a prompt, only compact.
    #[arg(long, requires = "session")]
    compact: bool,
}

fn parse_provider(name: &str) -> Result<ProviderKind, String> {
    ProviderKind::parse(name)
        .ok_or_else(|| format!("unknown provider `{name}`: `openai` or `anthropic`"))
}

pub async fn run(args: AskArgs) -> ExitCode {
    let core = match open_core(args.cwd, on_disk(args.yes, args.dry_run)) {
        Ok(core) => core,
        Err(e) => return fail(2, &e),
    };
    let agent = match core.agent() {
        Ok(agent) => agent,
        Err(e) => return fail(2, &e.to_string()),
    };
    let prompt = match args.prompt.as_deref() {
        Some("-") => {
            let mut text = String::new();
            if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
                return fail(2, &format!("cannot read the prompt from stdin: {e}"));
            }
            Some(text)
        }
        prompt => prompt.map(str::to_string),
    };
    if prompt.as_ref().is_some_and(|p| p.trim().is_empty()) {
        return fail(2, "the prompt is empty");
    }
    if args.model.is_none()
        && let Err(e) = agent.llm()
    {
        return fail(1, &e);
    }
    let session = match &args.session {
        Some(id) => agent.session(id).await,
        None => agent.new_session().await,
    };
    let session = match session {
        Ok(session) => session,
        Err(e) => return fail(1, &e.to_string()),
    };
    if let Some(model) = &args.model
        && let Err(e) = session.set_model(args.provider, model).await
    {
        return fail(1, &e.to_string());
    }

    if args.compact {
        let (events, received) = mpsc::unbounded_channel();
        let printer = tokio::spawn(print::events(received));
        let compacted = session.compact(&events).await;
        drop(events);
        let _ = printer.await;
        match compacted {
            Ok(done) if done.replaced > 0 => eprintln!(
                "switchyard: session {} compacted: {} messages summarized, {} kept ({}); session so far: {}",
                session.id(),
                done.replaced,
                done.kept,
                sessions::usage(done.usage, done.cost_usd),
                sessions::usage(done.session_usage, done.session_cost_usd),
            ),
            Ok(_) => eprintln!(
                "switchyard: session {} has nothing older than its last exchange to compact",
                session.id()
            ),
            Err(e) => return fail(1, &e.to_string()),
        }
    }
    let Some(prompt) = prompt else {
        return ExitCode::SUCCESS;
    };
    let (events, received) = mpsc::unbounded_channel();
    let printer = tokio::spawn(print::events(received));
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
    eprintln!(
        "switchyard: session {} turn {} ({}, {}); session so far: {}; continue it with --session {}",
        outcome.session,
        outcome.turn,
        sessions::plural(u64::from(outcome.turns), "model call"),
        sessions::usage(outcome.usage, outcome.cost_usd),
        sessions::usage(outcome.session_usage, outcome.session_cost_usd),
        outcome.session,
    );
    match outcome.stop {
        StopReason::EndTurn => ExitCode::SUCCESS,
        StopReason::Cancelled => fail(130, "cancelled"),
        stop => fail(3, &stop.explain(&agent.config()).unwrap_or_default()),
    }
}
