//! The terminal printer of an agent run: the answer to stdout as it streams, tool activity
//! and notices to stderr.

use std::io::Write;

use switchyard::agent::{AgentEvent, ToolStatus};
use tokio::sync::mpsc;

/// Prints a run's events: the answer to stdout as it streams, tool activity to stderr.
pub async fn events(mut events: mpsc::UnboundedReceiver<AgentEvent>) {
    let mut stdout = std::io::stdout();
    // Where stdout stands: nothing written yet, mid-line, or at the start of a line.
    let mut wrote = false;
    let mut mid_line = false;
    // Tools ran since the last text: the next text is a new paragraph.
    let mut new_paragraph = false;
    while let Some(event) = events.recv().await {
        match event {
            AgentEvent::MessageChunk { text } => {
                if new_paragraph && wrote {
                    let _ = stdout.write_all(if mid_line { b"\n\n" } else { b"\n" });
                }
                new_paragraph = false;
                let _ = stdout.write_all(text.as_bytes());
                let _ = stdout.flush();
                wrote = true;
                mid_line = !text.ends_with('\n');
            }
            AgentEvent::ModelRetry {
                attempt,
                max_attempts,
                error,
                discarded_text,
            } => {
                eprintln!(
                    "switchyard: {error}; retrying (attempt {} of {max_attempts})",
                    attempt + 1
                );
                if discarded_text {
                    if mid_line {
                        let _ = stdout.write_all(b"\n");
                        let _ = stdout.flush();
                        mid_line = false;
                    }
                    eprintln!("switchyard: the answer starts over");
                }
            }
            AgentEvent::ModelWaiting { what, up_to } => {
                eprintln!(
                    "switchyard: waiting up to {} s for {what}",
                    up_to.as_secs_f64()
                );
            }
            AgentEvent::ToolCallStarted {
                name,
                lane,
                summary,
                ..
            } => {
                new_paragraph = true;
                let lane = lane.map_or("-", |l| l.name());
                eprintln!("  > {name} {summary} [{lane}]");
            }
            AgentEvent::ToolCallFinished {
                name,
                status,
                duration,
                summary,
                ..
            } => {
                let mark = match status {
                    ToolStatus::Completed => "ok",
                    ToolStatus::Failed => "error",
                    ToolStatus::Cancelled => "cancelled",
                };
                eprintln!(
                    "  < {name} {mark} in {} ms: {summary}",
                    duration.as_millis()
                );
            }
            AgentEvent::Usage { .. } | AgentEvent::Done { .. } => {}
        }
    }
    if mid_line {
        let _ = stdout.write_all(b"\n");
    }
    let _ = stdout.flush();
}
