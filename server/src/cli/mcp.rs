//! `switchyard mcp [--json] [--path DIR]`: the MCP servers of a workspace, started and listed.

use std::path::PathBuf;
use std::process::ExitCode;

use switchyard::approvals::Prompter;
use switchyard::core::FrontEnd;
use switchyard::mcp::ServerState;

use super::{fail, open_core, print};

/// `switchyard mcp`'s arguments.
#[derive(Debug, clap::Args)]
pub struct McpArgs {
    /// The workspace (default: the current directory).
    #[arg(long)]
    path: Option<PathBuf>,
    /// Print the status as JSON (what `switchyard.mcpStatus` returns).
    #[arg(long)]
    json: bool,
}

pub async fn run(args: McpArgs) -> ExitCode {
    // Listing changes nothing.
    let read_only = FrontEnd {
        applier: None,
        prompter: Prompter::Nobody,
    };
    let core = match open_core(args.path, read_only) {
        Ok(core) => core,
        Err(e) => return fail(1, &e),
    };
    let servers = match core.mcp_status(true).await {
        Ok(servers) => servers,
        Err(e) => return fail(1, &e.to_string()),
    };
    let failed = servers.iter().any(|s| s.state == ServerState::Failed);
    if args.json {
        let shown = serde_json::json!({ "servers": servers });
        println!("{shown:#}");
    } else if servers.is_empty() {
        println!(
            "no MCP servers configured; add [mcp_servers.NAME] with `command` and `args` to your config"
        );
    } else {
        let mut out = String::new();
        for server in &servers {
            let state = serde_json::to_value(server.state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            out.push_str(&format!(
                "{}: {state}, {} tools",
                server.name,
                server.tools.len()
            ));
            if server.restarts > 0 {
                out.push_str(&format!(", {} restarts", server.restarts));
            }
            out.push('\n');
            for tool in &server.tools {
                let how = if tool.read_only {
                    "read-only"
                } else if tool.destructive {
                    "runs, destructive"
                } else {
                    "runs"
                };
                out.push_str(&format!("  {} ({how})\n", tool.name));
            }
            if let Some(error) = &server.last_error {
                out.push_str(&format!("  last error: {error}\n"));
            }
        }
        print!("{}", print::for_stdout(&out));
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
