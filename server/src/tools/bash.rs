//! `bash {command, timeout_ms?}`: a shell command in the workspace root, off unless the
//! configuration allows it (`approvals.bash`), with a timeout that kills the command and
//! everything it started, capped output, and an environment without API keys or tokens.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::{Args, ToolError, ToolSpec, thousands};
use crate::lanes::Lane;

pub(super) fn spec() -> ToolSpec {
    ToolSpec {
        name: "bash",
        description: "Run a shell command (bash -c) in the workspace root and return its exit code and output. \
                      It times out after `timeout_ms` (default 2 minutes). Prefer the read-only tools for \
                      reading and searching files.",
        parameters: json!({
            "type": "object",
            "properties": {
                "command": {"type": "string"},
                "timeout_ms": {"type": "integer", "minimum": 1, "description": "Kill the command after this long"}
            },
            "required": ["command"],
            "additionalProperties": false
        }),
        lane: Lane::Execute,
        parallel_safe: false,
    }
}

/// `bash`'s arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BashArgs {
    /// The command line.
    pub command: String,
    /// Time limit.
    pub timeout_ms: Option<u64>,
}

impl BashArgs {
    pub(super) fn parse(args: &Args<'_>) -> Result<BashArgs, ToolError> {
        args.only(&["command", "timeout_ms"])?;
        Ok(BashArgs {
            command: args.string("command")?.into(),
            timeout_ms: args.opt_positive("timeout_ms")?,
        })
    }
}

/// What a command did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BashOutput {
    /// The command line.
    pub command: String,
    /// Its exit code; `None` when it was killed.
    pub exit_code: Option<i32>,
    /// Whether it ran past its time limit and was killed.
    pub timed_out: bool,
    /// Standard output, capped.
    pub stdout: String,
    /// Standard error, capped.
    pub stderr: String,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
}

impl BashOutput {
    /// Exit status, then both streams.
    pub fn render(&self) -> String {
        let status = match (self.exit_code, self.timed_out) {
            (_, true) => format!(
                "killed after {} ms (time limit)",
                thousands(self.duration_ms)
            ),
            (Some(code), _) => format!("exit code {code}"),
            (None, _) => "killed by a signal".to_string(),
        };
        let mut out = format!("$ {}\n({status})\n", self.command);
        if !self.stdout.is_empty() {
            out.push_str(&format!("stdout:\n{}\n", self.stdout.trim_end()));
        }
        if !self.stderr.is_empty() {
            out.push_str(&format!("stderr:\n{}\n", self.stderr.trim_end()));
        }
        out
    }
}

/// Names of environment variables a command must not see.
fn secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    ["KEY", "TOKEN", "SECRET", "PASSWORD", "CREDENTIAL"]
        .iter()
        .any(|word| upper.contains(word))
}

/// Runs a command; `Err` only when it could not be started.
pub(super) async fn run(
    args: &BashArgs,
    root: &std::path::Path,
    default_timeout: Duration,
    max_bytes: usize,
    token: &CancellationToken,
) -> Result<BashOutput, ToolError> {
    let timeout = args
        .timeout_ms
        .map_or(default_timeout, Duration::from_millis);
    let mut command = tokio::process::Command::new("bash");
    command
        .arg("-c")
        .arg(&args.command)
        .current_dir(root)
        .env_clear()
        .envs(std::env::vars().filter(|(name, _)| !secret(name)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own process group, so a timeout ends everything it started.
        .process_group(0);
    let started = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| ToolError::new(format!("cannot start bash: {e}")))?;
    let pid = child.id();
    let cap = if max_bytes == 0 {
        usize::MAX
    } else {
        max_bytes / 2
    };
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let waited = async {
        tokio::join!(
            read_capped(stdout.as_mut(), cap),
            read_capped(stderr.as_mut(), cap),
            child.wait()
        )
    };
    tokio::pin!(waited);
    let finished = tokio::select! {
        result = &mut waited => Some(result),
        () = tokio::time::sleep(timeout) => None,
        () = token.cancelled() => {
            kill_group(pid).await;
            return Err(ToolError::new("cancelled"));
        }
    };
    let (stdout, stderr, exit_code, timed_out) = match finished {
        Some((out, err, status)) => (out, err, status.ok().and_then(|s| s.code()), false),
        None => {
            kill_group(pid).await;
            // The output so far; a grandchild that left the group could hold the pipes open.
            match tokio::time::timeout(Duration::from_secs(2), &mut waited).await {
                Ok((out, err, _)) => (out, err, None, true),
                Err(_) => (String::new(), String::new(), None, true),
            }
        }
    };
    Ok(BashOutput {
        command: args.command.clone(),
        exit_code,
        timed_out,
        stdout,
        stderr,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    })
}

/// Kills a process group by its leader's PID (`kill -s KILL -- -PID`), never by name.
async fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid {
        let _ = tokio::process::Command::new("kill")
            .args(["-s", "KILL", "--"])
            .arg(format!("-{pid}"))
            .status()
            .await;
    }
}

/// Reads a stream to its end, keeping its first `cap` bytes and saying how many were cut.
async fn read_capped<R: tokio::io::AsyncRead + Unpin>(
    stream: Option<&mut R>,
    cap: usize,
) -> String {
    let Some(stream) = stream else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut dropped = 0u64;
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                dropped += (n - n.min(room)) as u64;
            }
        }
    }
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    if dropped > 0 {
        text.push_str(&format!("\n… [{} more bytes cut]", thousands(dropped)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_kept_out_of_the_environment() {
        for name in [
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "GITHUB_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "db_password",
        ] {
            assert!(secret(name), "{name}");
        }
        for name in ["PATH", "HOME", "LANG", "CARGO_HOME"] {
            assert!(!secret(name), "{name}");
        }
    }
}
