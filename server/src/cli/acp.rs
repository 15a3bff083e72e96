//! `switchyard acp`: the agent for editors that speak the Agent Client Protocol, on stdin
//! and stdout (logs on stderr). The protocol lives in `switchyard::acp`.

use std::process::ExitCode;

/// Arguments of `switchyard acp` (none: the client sends the working directory).
#[derive(Debug, clap::Args)]
pub struct AcpArgs {}

pub async fn run(_args: AcpArgs) -> ExitCode {
    switchyard::acp::serve(tokio::io::stdin(), tokio::io::stdout()).await;
    ExitCode::SUCCESS
}
