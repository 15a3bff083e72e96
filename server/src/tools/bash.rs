//! `bash {command, timeout_ms?}`: a shell command in the workspace root, off unless the
//! configuration allows it (`approvals.bash`), with a timeout that kills the command and
//! everything it started, capped output, and an environment without secrets.
//!
//! What keeps the server's secrets (API keys in its environment and memory) from a command:
//! - [`protect_process`], called at the start of `main`, marks the server non-dumpable:
//!   its `/proc/PID/environ`, `mem` and `maps` are unreadable to processes of the same user
//!   that lack `CAP_SYS_PTRACE`.
//! - When bubblewrap (`bwrap`) can create a PID namespace, the command runs in one, with a
//!   fresh `/proc` and every capability dropped: the server is not even visible, and root
//!   in the sandbox cannot unmount that `/proc` or trace anything. When the namespace's
//!   first process dies, the kernel kills every process in it, so a time limit, a
//!   cancellation or the command's end takes `setsid`/`nohup` escapes with it. Without
//!   bwrap (or where namespaces are refused) a one-line notice says so, the command runs
//!   as a plain child, and the tree is ended by its process group plus a sweep of
//!   `/proc` for its descendants and for every process carrying the call's marker
//!   variable (escapes keep their environment).
//! - The command's environment is the server's less anything secret by name (`*KEY*`,
//!   `*TOKEN*`, `*SECRET*`, `*PASSWORD*`, `*COOKIE*`, `*WEBHOOK*`, `*AUTH*`,
//!   `DATABASE_URL`, ...) or by value (a URL with credentials, a well-known token
//!   prefix, or the value of any secret variable or configured API key inside it).

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

use super::{Args, ToolError, thousands};

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
    /// Its exit code; `None` when it was killed, or not run.
    pub exit_code: Option<i32>,
    /// Whether it ran past its time limit and was killed.
    pub timed_out: bool,
    /// Standard output, capped.
    pub stdout: String,
    /// Standard error, capped.
    pub stderr: String,
    /// How long it ran, in milliseconds.
    pub duration_ms: u64,
    /// A dry run: the command was not run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// A command for a client's terminal (ACP `terminal/*`): the front end runs it there and
/// answers with its outcome, killing it when `token` is cancelled or `timeout` passes.
#[derive(Debug)]
pub struct TerminalRequest {
    /// The session whose call runs it, when it runs in one.
    pub session: Option<crate::lanes::SessionId>,
    /// The command line, run by `bash -c`.
    pub command: String,
    /// Where it runs: the workspace root.
    pub cwd: PathBuf,
    /// Its time limit.
    pub timeout: Duration,
    /// The most output kept.
    pub max_bytes: usize,
    /// Cancels it (the user cancelled the request).
    pub token: CancellationToken,
    /// How it went, or why it could not run.
    pub reply: tokio::sync::oneshot::Sender<Result<BashOutput, String>>,
}

/// Runs `args` in a client's terminal through `terminal` and waits for its outcome.
pub(super) async fn in_terminal(
    terminal: &tokio::sync::mpsc::Sender<TerminalRequest>,
    args: &BashArgs,
    root: &Path,
    default_timeout: Duration,
    max_bytes: usize,
    session: Option<crate::lanes::SessionId>,
    token: &CancellationToken,
) -> Result<BashOutput, ToolError> {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let request = TerminalRequest {
        session,
        command: args.command.clone(),
        cwd: root.to_path_buf(),
        timeout: args
            .timeout_ms
            .map_or(default_timeout, Duration::from_millis),
        max_bytes,
        token: token.clone(),
        reply,
    };
    if terminal.send(request).await.is_err() {
        return Err(ToolError::new(
            "the editor connection is closed; nothing was run",
        ));
    }
    match answer.await {
        Ok(result) => result.map_err(ToolError::new),
        Err(_) => Err(ToolError::new(
            "the editor did not answer; the command may not have run",
        )),
    }
}

impl BashOutput {
    /// The result of a dry run: what would have run, and that nothing did.
    pub(super) fn not_run(args: &BashArgs) -> BashOutput {
        BashOutput {
            command: args.command.clone(),
            exit_code: None,
            timed_out: false,
            stdout: String::new(),
            stderr: String::new(),
            duration_ms: 0,
            dry_run: true,
        }
    }

    /// Exit status, then both streams.
    pub fn render(&self) -> String {
        let status = match (self.exit_code, self.timed_out) {
            _ if self.dry_run => "dry run: not run".to_string(),
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

/// Makes the server's memory and environment unreadable to its children: marks the
/// process non-dumpable, so `/proc/PID/{environ,mem,maps}` refuse every process of the same
/// user that lacks `CAP_SYS_PTRACE`. Called first thing in `main`; a failure is logged and
/// ignored (commands still run in a PID namespace when bwrap is there).
pub fn protect_process() {
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        tracing::warn!("cannot mark the server non-dumpable (prctl PR_SET_DUMPABLE): {e}");
    }
}

/// Shorter values are not looked for inside other variables (too many false matches).
const MIN_SECRET_LEN: usize = 8;

/// Variables a command keeps whatever their name says.
const ALWAYS_KEPT: &[&str] = &[
    "PATH",
    "HOME",
    "LANG",
    "LANGUAGE",
    "TERM",
    "USER",
    "LOGNAME",
    "SHELL",
    "TZ",
    "PWD",
    "OLDPWD",
    "TMPDIR",
    "HOSTNAME",
    "COLORTERM",
    "EDITOR",
    "PAGER",
];

/// Words that make a variable's name secret.
const SECRET_WORDS: &[&str] = &[
    "KEY",
    "TOKEN",
    "SECRET",
    "PASSWORD",
    "PASSWD",
    "PASSPHRASE",
    "_PWD",
    "CREDENTIAL",
    "COOKIE",
    "WEBHOOK",
    "AUTH",
    "SESSION",
    "PRIVATE",
    "SIGNING",
    "DSN",
    "DATABASE_URL",
    "CONNECTION_STRING",
    "AGENT_INFO",
    "KRB5CCNAME",
    "NETRC",
];

/// Prefixes of well-known credentials (OpenAI, Anthropic, GitHub, GitLab, Slack, AWS,
/// Google, Hugging Face, npm, PyPI, Stripe) and PEM private keys.
const TOKEN_PREFIXES: &[&str] = &[
    "sk-",
    "sk_live_",
    "rk_live_",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "glpat-",
    "xoxb-",
    "xoxp-",
    "xoxa-",
    "xapp-",
    "AKIA",
    "ASIA",
    "AIza",
    "hf_",
    "npm_",
    "pypi-",
];

/// Whether a variable's name says it holds a secret.
fn secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    if ALWAYS_KEPT.contains(&upper.as_str()) || upper.starts_with("LC_") {
        return false;
    }
    SECRET_WORDS.iter().any(|word| upper.contains(word))
}

/// Whether a value looks like a credential: a URL with a user and password (or a token
/// as its user), a well-known token, a private key.
fn secret_value(value: &str) -> bool {
    let trimmed = value.trim();
    if trimmed.contains("PRIVATE KEY-----") {
        return true;
    }
    if trimmed.len() >= 20
        && !trimmed.contains(char::is_whitespace)
        && TOKEN_PREFIXES.iter().any(|p| trimmed.starts_with(p))
    {
        return true;
    }
    url_with_credentials(value)
}

/// Whether any `scheme://user:password@host` (or `scheme://LONG-TOKEN@host`) is in `value`.
fn url_with_credentials(value: &str) -> bool {
    let mut rest = value;
    while let Some(at) = rest.find("://") {
        rest = &rest[at + 3..];
        let end = rest
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | ',' | ';') || c.is_whitespace()
            })
            .unwrap_or(rest.len());
        let authority = &rest[..end];
        if let Some(at) = authority.rfind('@') {
            let userinfo = &authority[..at];
            let password = userinfo.split_once(':').is_some_and(|(_, p)| !p.is_empty());
            if password || userinfo.len() >= 16 {
                return true;
            }
        }
    }
    false
}

/// The environment a command gets: `vars` (the server's) less every secret, by name and by
/// value — including any variable whose value contains a secret variable's value (an API
/// key under an innocent name).
fn child_env(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Vec<(OsString, OsString)> {
    let vars: Vec<(OsString, OsString)> = vars.into_iter().collect();
    let text = |s: &OsStr| s.to_string_lossy().into_owned();
    let secrets: Vec<String> = vars
        .iter()
        .filter(|(name, _)| secret_name(&text(name)))
        .map(|(_, value)| text(value).trim().to_string())
        .filter(|value| value.len() >= MIN_SECRET_LEN)
        .collect();
    vars.into_iter()
        .filter(|(name, value)| {
            let (name, value) = (text(name), text(value));
            !secret_name(&name)
                && !secret_value(&value)
                && !secrets.iter().any(|s| value.contains(s.as_str()))
        })
        .collect()
}

/// The variable that marks every process of one call, for the sweep without a namespace.
const MARKER: &str = "SWITCHYARD_BASH_CALL";

/// How commands are contained in this process, decided at the first call.
#[derive(Debug)]
enum Sandbox {
    /// In a PID namespace under bubblewrap (this binary).
    Bwrap(PathBuf),
    /// A plain child in its own process group.
    Plain,
}

static SANDBOX: tokio::sync::OnceCell<Sandbox> = tokio::sync::OnceCell::const_new();

/// bwrap's options: the whole file system as it is (so commands behave as outside), a
/// fresh `/dev` and a `/proc` of the new PID namespace mounted over it, no capabilities,
/// and death with the server.
fn bwrap_args(root: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "--bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--unshare-pid",
        "--die-with-parent",
        "--cap-drop",
        "ALL",
        "--chdir",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.push(root.as_os_str().to_owned());
    args.push("--".into());
    args
}

/// Finds bwrap on `PATH` and checks that it can create a namespace here (root without
/// `CAP_SYS_ADMIN`, or user namespaces turned off, make it fail); says once when commands
/// run without it.
async fn sandbox(root: &Path) -> &'static Sandbox {
    SANDBOX
        .get_or_init(|| async {
            let found = std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("bwrap"))
                    .find(|candidate| candidate.is_file())
            });
            let Some(bwrap) = found else {
                tracing::warn!(
                    "bash commands run without a PID namespace: bubblewrap (bwrap) is not on PATH; install it (apt install bubblewrap) to hide the server's process from them"
                );
                return Sandbox::Plain;
            };
            let probe = tokio::process::Command::new(&bwrap)
                .args(bwrap_args(root))
                .arg("true")
                .env_clear()
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .output();
            match tokio::time::timeout(Duration::from_secs(10), probe).await {
                Ok(Ok(out)) if out.status.success() => Sandbox::Bwrap(bwrap),
                Ok(Ok(out)) => {
                    let why = String::from_utf8_lossy(&out.stderr);
                    tracing::warn!(
                        "bash commands run without a PID namespace: {} cannot create one here ({}); allow user namespaces (sysctl kernel.unprivileged_userns_clone=1) or run with CAP_SYS_ADMIN",
                        bwrap.display(),
                        why.lines().next().unwrap_or("no message").trim()
                    );
                    Sandbox::Plain
                }
                Ok(Err(e)) => {
                    tracing::warn!(
                        "bash commands run without a PID namespace: cannot start {}: {e}",
                        bwrap.display()
                    );
                    Sandbox::Plain
                }
                Err(_) => {
                    tracing::warn!(
                        "bash commands run without a PID namespace: {} did not answer within 10 s",
                        bwrap.display()
                    );
                    Sandbox::Plain
                }
            }
        })
        .await
}

/// Runs a command; `Err` only when it could not be started, or was cancelled.
pub(super) async fn run(
    args: &BashArgs,
    root: &Path,
    default_timeout: Duration,
    max_bytes: usize,
    token: &CancellationToken,
) -> Result<BashOutput, ToolError> {
    let timeout = args
        .timeout_ms
        .map_or(default_timeout, Duration::from_millis);
    let sandbox = sandbox(root).await;
    let mut command = match sandbox {
        Sandbox::Bwrap(bwrap) => {
            let mut command = tokio::process::Command::new(bwrap);
            command.args(bwrap_args(root)).arg("bash");
            command
        }
        Sandbox::Plain => tokio::process::Command::new("bash"),
    };
    let marker = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
    command
        .arg("-c")
        .arg(&args.command)
        .current_dir(root)
        .env_clear()
        .envs(child_env(std::env::vars_os()))
        .env(MARKER, &marker)
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
    // Ends the whole tree however this call ends: finished, timed out, cancelled, dropped.
    let tree = Tree {
        pid: child.id(),
        marker: format!("{MARKER}={marker}"),
        sweep: matches!(sandbox, Sandbox::Plain),
    };
    let cap = if max_bytes == 0 {
        usize::MAX
    } else {
        max_bytes / 2
    };
    let stdout = tokio::spawn(read_capped(child.stdout.take(), cap));
    let stderr = tokio::spawn(read_capped(child.stderr.take(), cap));
    let status = tokio::select! {
        status = child.wait() => Some(status),
        () = tokio::time::sleep(timeout) => None,
        () = token.cancelled() => {
            tree.kill();
            let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
            return Err(ToolError::new("cancelled"));
        }
    };
    tree.kill();
    if status.is_none() {
        let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
    }
    // With the tree gone the pipes close; a process that escaped the sweep must not hold
    // the call open.
    let collect = |task: tokio::task::JoinHandle<String>| async move {
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default()
    };
    let (stdout, stderr) = tokio::join!(collect(stdout), collect(stderr));
    Ok(BashOutput {
        command: args.command.clone(),
        timed_out: status.is_none(),
        exit_code: status.and_then(Result::ok).and_then(|s| s.code()),
        stdout,
        stderr,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        dry_run: false,
    })
}

/// The processes of one call.
struct Tree {
    /// The child's PID, which leads its process group.
    pid: Option<u32>,
    /// `MARKER=value`, in the environment of every process the call started (unless one
    /// cleared its environment).
    marker: String,
    /// Whether to sweep `/proc` (no PID namespace does the work).
    sweep: bool,
}

impl Tree {
    /// Kills the process group, then (without a namespace) every descendant of the child and
    /// every process with the call's marker, until none is left. Never by name.
    fn kill(&self) {
        use rustix::process::{Pid, Signal, kill_process, kill_process_group};
        let Some(pid) = self.pid.and_then(|p| i32::try_from(p).ok()) else {
            return;
        };
        let found = if self.sweep {
            self.members(pid)
        } else {
            Vec::new()
        };
        if let Some(group) = Pid::from_raw(pid) {
            let _ = kill_process_group(group, Signal::KILL);
        }
        if !self.sweep {
            return;
        }
        let me = rustix::process::getpid().as_raw_nonzero().get();
        let mut found = found;
        // A process may fork between the scan and the kill: scan again until none is left.
        for _ in 0..20 {
            found.retain(|&p| p != me);
            if found.is_empty() {
                return;
            }
            for p in &found {
                if let Some(p) = Pid::from_raw(*p) {
                    let _ = kill_process(p, Signal::KILL);
                }
            }
            found = self.members(pid);
        }
    }

    /// Live processes of the call: descendants of `pid` and carriers of the marker.
    fn members(&self, pid: i32) -> Vec<i32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
        let mut found: HashSet<i32> = HashSet::new();
        for entry in entries.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid ...`; the name may hold spaces and parentheses.
            let mut fields = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace())
                .into_iter()
                .flatten();
            let state = fields.next();
            if state == Some("Z") || state == Some("X") {
                continue;
            }
            if let Some(ppid) = fields.next().and_then(|f| f.parse::<i32>().ok()) {
                children.entry(ppid).or_default().push(p);
            }
            if let Ok(environ) = std::fs::read(entry.path().join("environ"))
                && environ
                    .split(|&b| b == 0)
                    .any(|var| var == self.marker.as_bytes())
            {
                found.insert(p);
            }
        }
        // The child itself (when alive: a zombie is its parent's to reap) and its
        // descendants.
        if children.values().flatten().any(|&p| p == pid) {
            found.insert(pid);
        }
        let mut stack = vec![pid];
        while let Some(p) = stack.pop() {
            for &child in children.get(&p).map(Vec::as_slice).unwrap_or_default() {
                if found.insert(child) {
                    stack.push(child);
                }
            }
        }
        found.into_iter().collect()
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads a stream to its end, keeping its first `cap` bytes and saying how many were cut.
async fn read_capped<R: tokio::io::AsyncRead + Unpin>(stream: Option<R>, cap: usize) -> String {
    let Some(mut stream) = stream else {
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

    fn env(vars: &[(&str, &str)]) -> Vec<String> {
        child_env(
            vars.iter()
                .map(|(n, v)| (OsString::from(n), OsString::from(v))),
        )
        .into_iter()
        .map(|(n, _)| n.to_string_lossy().into_owned())
        .collect()
    }

    #[test]
    fn secrets_are_kept_out_of_the_environment() {
        for name in [
            "OPENAI_API_KEY",
            "ANTHROPIC_API_KEY",
            "GITHUB_TOKEN",
            "AWS_SECRET_ACCESS_KEY",
            "db_password",
            "PGPASSWORD",
            "MYSQL_PWD",
            "DATABASE_URL",
            "SSH_AUTH_SOCK",
            "SESSION_COOKIE",
            "SLACK_WEBHOOK_URL",
            "SENTRY_DSN",
            "GPG_AGENT_INFO",
        ] {
            assert!(secret_name(name), "{name}");
        }
        for name in [
            "PATH",
            "HOME",
            "LANG",
            "LC_ALL",
            "CARGO_HOME",
            "PWD",
            "OLDPWD",
            "TERM",
        ] {
            assert!(!secret_name(name), "{name}");
        }
    }

    #[test]
    fn secrets_are_found_by_value() {
        let kept = env(&[
            ("PATH", "/usr/bin:/bin"),
            ("HOME", "/root"),
            ("OPENAI_API_KEY", "sk-test-0123456789abcdef"),
            ("INNOCENT", "prefix sk-test-0123456789abcdef suffix"),
            ("MY_DB", "postgres://u:pw@h/db"),
            ("PROXY", "http://user:hunter2@proxy:8080"),
            ("REPO", "https://ghp_0123456789abcdefghij@github.com/o/r"),
            ("LOOKS_LIKE", "ghp_0123456789abcdefghijklmnop"),
            ("PEM", "-----BEGIN RSA PRIVATE KEY-----\nMII"),
            ("GIT_URL", "ssh://git@github.com/o/r"),
            ("SITE", "https://example.com/a?b=c"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1"),
        ]);
        assert_eq!(
            kept,
            ["PATH", "HOME", "GIT_URL", "SITE", "OPENAI_BASE_URL"],
            "{kept:?}"
        );
    }
}
