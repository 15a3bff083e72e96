//! Commands the model runs (`bash`) against the server's secrets and its lifetime: they
//! cannot read the server's environment or memory through `/proc`, do not inherit
//! secrets (by name or by value), end with the call (time limit, cancellation) even when
//! they escape with `setsid`/`nohup`, and `--dry-run` runs nothing.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use switchyard_tests::cli::{self, Output};

use serde_json::{Value, json};
use switchyard_tests::mock_model::{MockModel, Response, Rule, Script, ToolCall};

/// Longest a switchyard process may run before the test kills it and fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// Something unique to this run, so secrets and process names cannot collide.
fn nonce() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{}{:09}", std::process::id(), t % 1_000_000_000)
}

/// The secrets planted in the server's environment.
struct Secrets {
    key: String,
    vars: Vec<(String, String)>,
    /// The distinctive part of each, in case a value comes out cut or escaped.
    fragments: Vec<String>,
}

impl Secrets {
    fn new() -> Secrets {
        let n = nonce();
        let key = format!("sk-fake-{n}-abcdef");
        let vars = vec![
            ("OPENAI_API_KEY".into(), key.clone()),
            (
                "DATABASE_URL".into(),
                format!("postgres://u:pw{n}@db.example/db"),
            ),
            // The key again, under a name that says nothing.
            ("INNOCENT_SETTING".into(), format!("prefix-{key}-suffix")),
            (
                "UPSTREAM".into(),
                format!("https://deploy:hunter{n}@git.example/repo.git"),
            ),
            ("SSH_AUTH_SOCK".into(), format!("/tmp/ssh-{n}/agent.1")),
            ("SESSION_COOKIE".into(), format!("sid=cookie{n}")),
            (
                "SLACK_WEBHOOK_URL".into(),
                format!("https://hooks.slack.example/services/T0/B0/hook{n}"),
            ),
        ];
        let fragments = ["fake-", "pw", "hunter", "ssh-", "cookie", "hook"]
            .iter()
            .map(|prefix| format!("{prefix}{n}"))
            .collect();
        Secrets {
            key,
            vars,
            fragments,
        }
    }

    fn assert_absent(&self, what: &str, text: &str) {
        let values = self.vars.iter().map(|(_, v)| v);
        for needle in values.chain(&self.fragments) {
            assert!(
                !text.contains(needle.as_str()),
                "{what} holds the secret {needle:?}:\n{text}"
            );
        }
    }
}

/// A workspace and a private config and state home.
struct Env {
    root: tempfile::TempDir,
    home: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let root = tempfile::tempdir().unwrap();
        std::fs::write(root.path().join("README.md"), "# Demo\n").unwrap();
        Env {
            root,
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn root(&self) -> &Path {
        self.root.path()
    }

    /// `switchyard ARGS` with bash allowed by the user's policy (the environment) and a
    /// clean model configuration.
    fn switchyard(&self, args: &[&str]) -> Command {
        let mut command = cli::switchyard(self.home.path(), args);
        command
            .env("XDG_STATE_HOME", self.home.path().join("state"))
            .env("XDG_CONFIG_HOME", self.home.path().join("config"))
            .env("SWITCHYARD_APPROVALS__BASH", "allow")
            // Nothing cut from the output: a secret must not hide behind the cap.
            .env("SWITCHYARD_TOOLS__MAX_OUTPUT_BYTES", "0");
        command
    }

    /// `switchyard tool bash` running `script`.
    fn bash(&self, script: &str, extra: &[&str]) -> Command {
        let args = json!({"command": script}).to_string();
        let root = self.root().to_str().unwrap().to_string();
        let mut all = vec![
            "tool",
            "bash",
            args.as_str(),
            "--cwd",
            root.as_str(),
            "--yes",
        ];
        all.extend_from_slice(extra);
        self.switchyard(&all)
    }

    /// `switchyard ask PROMPT` against `model`, with `key` as the API key.
    fn ask(&self, model: &MockModel, key: &str, extra: &[&str]) -> Command {
        let root = self.root().to_str().unwrap().to_string();
        let mut all = vec!["ask", "--cwd", root.as_str(), "--yes"];
        all.extend_from_slice(extra);
        all.push("Look around.");
        let mut command = self.switchyard(&all);
        command
            .env("SWITCHYARD_PROVIDER", "openai")
            .env("SWITCHYARD_MODEL", "mock-model")
            .env("OPENAI_BASE_URL", model.openai_base_url())
            .env("OPENAI_API_KEY", key);
        command
    }

    /// Every file under the state home, read as text.
    fn state_files(&self) -> Vec<(PathBuf, String)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else {
                    let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                    out.push((path, text));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.home.path().join("state"), &mut out);
        out
    }
}

/// Runs `command` to its end; kills it by its PID and fails past [`DEADLINE`].
fn run(command: Command) -> Output {
    cli::run(command, DEADLINE)
}

fn wait(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("switchyard ran past {limit:?}; killed");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Commands that look for the server's secrets everywhere a child could: its parent's and
/// every visible process's environment, its own, and the memory of every process whose
/// `maps` it can read (the stack holds the initial environment).
const PROBES: &str = r#"
echo "== parent $PPID"; cat /proc/$PPID/environ | tr '\0' '\n'
echo "== all"; cat /proc/*/environ 2>/dev/null | tr '\0' '\n'
echo "== env"; env
for p in /proc/[0-9]*; do
  grep -E '\[stack\]|\[heap\]' "$p/maps" 2>/dev/null | while read -r range rest; do
    start=$((16#${range%-*})); end=$((16#${range#*-}))
    dd if="$p/mem" bs=4096 iflag=skip_bytes,count_bytes skip=$start count=$((end - start)) 2>/dev/null | tr -c '[:print:]' '\n' | grep -E '.{8,}'
  done
done
echo "== done"
"#;

#[test]
fn bash_cannot_read_the_servers_secrets_through_proc_or_its_environment() {
    let env = Env::new();
    let secrets = Secrets::new();
    let mut command = env.bash(PROBES, &[]);
    command.envs(secrets.vars.iter().map(|(k, v)| (k, v)));
    let out = run(command);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert!(
        out.stdout.contains("== done"),
        "the probes did not all run: {}",
        out.stdout
    );
    // The probes did read something (the command's own environment is there).
    assert!(out.stdout.contains("PATH="), "{}", out.stdout);
    secrets.assert_absent("the output of `tool bash`", &out.stdout);
    secrets.assert_absent("the stderr of `tool bash`", &out.stderr);
}

#[test]
fn bash_run_by_the_model_leaks_no_secret_to_the_model_or_the_session_file() {
    let env = Env::new();
    let secrets = Secrets::new();
    let model = MockModel::start_with(
        Script::new(vec![
            Rule::openai(Response::tool_calls(vec![
                ToolCall::new("bash", json!({"command": PROBES})).with_id("call_probe"),
            ]))
            .turn(0),
            Rule::openai(Response::text("Nothing found.")).turn(1),
        ]),
        Default::default(),
    )
    .unwrap();
    let mut command = env.ask(&model, &secrets.key, &[]);
    command.envs(
        secrets
            .vars
            .iter()
            .filter(|(k, _)| k != "OPENAI_API_KEY")
            .map(|(k, v)| (k, v)),
    );
    let out = run(command);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let requests = model.requests();
    assert_eq!(requests.len(), 2, "{}", out.stderr);
    let result = requests[1].raw_body.clone();
    assert!(
        result.contains("== done"),
        "the probes did not all run: {result}"
    );
    for request in &requests {
        secrets.assert_absent("a request body sent to the model", &request.raw_body);
    }
    let files = env.state_files();
    assert!(!files.is_empty(), "no session file was written");
    for (path, text) in files {
        secrets.assert_absent(&path.display().to_string(), &text);
    }
    secrets.assert_absent("ask's stdout", &out.stdout);
    secrets.assert_absent("ask's stderr", &out.stderr);
}

/// Processes whose command line holds `needle`, by PID.
fn processes_with(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let state = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = state
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if !zombie && String::from_utf8_lossy(&cmdline).contains(needle) {
            found.push(pid);
        }
    }
    found
}

/// A command that starts a `setsid nohup` escape and a plain background child, each a
/// `sleep` with a unique duration the test finds it by, writes their PIDs (as the command
/// sees them) to files, then waits.
fn escaping(n: &str) -> (String, String, String) {
    let escape = format!("1000.{n}1");
    let background = format!("1000.{n}2");
    let script = format!(
        "setsid nohup sleep {escape} >/dev/null 2>&1 & echo $! > escape.pid\n\
         sleep {background} & echo $! > background.pid\n\
         echo started; sleep 1000"
    );
    (script, escape, background)
}

/// Polls until `pick` holds, failing after [`DEADLINE`].
fn until(what: &str, pick: impl Fn() -> bool) {
    let start = Instant::now();
    while !pick() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the command's PID file names a live process: `kill -0` succeeds and it is not
/// a zombie (a killed escape waits as one for its new parent to reap it). Meaningful only
/// when the command ran in the test's PID namespace.
fn pid_file_alive(env: &Env, name: &str) -> bool {
    let pid = std::fs::read_to_string(env.root().join(name))
        .unwrap_or_else(|e| panic!("the command wrote no {name}: {e}"));
    let pid = pid.trim();
    let signalled = Command::new("kill")
        .args(["-0", pid])
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let zombie = stat
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
    signalled && !zombie
}

fn check_escapes_end_at_the_time_limit(env: &Env, mut command: Command, same_pid_namespace: bool) {
    let n = nonce();
    let (script, escape, background) = escaping(&n);
    let args = json!({"command": script, "timeout_ms": 1500}).to_string();
    let root = env.root().to_str().unwrap().to_string();
    command.args([
        "tool",
        "bash",
        args.as_str(),
        "--cwd",
        root.as_str(),
        "--yes",
        "--json",
    ]);
    let out = run(command);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    let result: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(result["timedOut"], json!(true), "{result}");
    assert_eq!(result["stdout"], json!("started\n"), "{result}");
    for (what, needle) in [
        ("the setsid/nohup escape", &escape),
        ("the background child", &background),
    ] {
        let left = processes_with(&format!("sleep\0{needle}"));
        assert!(left.is_empty(), "{what} outlived the call: PIDs {left:?}");
    }
    for file in ["escape.pid", "background.pid"] {
        assert!(
            !same_pid_namespace || !pid_file_alive(env, file),
            "{file} names a live process"
        );
    }
}

#[test]
fn a_command_and_everything_it_started_end_at_the_time_limit() {
    let env = Env::new();
    // Under bwrap the PIDs the command writes are its namespace's: only the command
    // lines say which processes are left.
    check_escapes_end_at_the_time_limit(&env, env.switchyard(&[]), false);
}

/// A `PATH` with the tools the command needs and no `bwrap`: the fallback without a PID
/// namespace.
fn path_without_bwrap(dir: &Path) -> String {
    for tool in ["bash", "sleep", "setsid", "nohup", "cat", "kill"] {
        let found = std::env::split_paths(&std::env::var_os("PATH").unwrap())
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
            .unwrap_or_else(|| panic!("{tool} is not on PATH"));
        std::os::unix::fs::symlink(found, dir.join(tool)).unwrap();
    }
    dir.display().to_string()
}

#[test]
fn without_bwrap_the_escapes_still_end_at_the_time_limit() {
    let env = Env::new();
    let bin = tempfile::tempdir().unwrap();
    let mut command = env.switchyard(&[]);
    command.env("PATH", path_without_bwrap(bin.path()));
    check_escapes_end_at_the_time_limit(&env, command, true);
}

#[test]
fn cancelling_the_session_ends_the_command_and_its_escapes() {
    let env = Env::new();
    let n = nonce();
    let (script, escape, background) = escaping(&n);
    let model = MockModel::start_with(
        Script::new(vec![
            Rule::openai(Response::tool_calls(vec![ToolCall::new(
                "bash",
                json!({"command": script}),
            )]))
            .turn(0),
            Rule::openai(Response::text("Done.")).turn(1),
        ]),
        Default::default(),
    )
    .unwrap();
    let mut command = env.ask(&model, "sk-cancel-test-key", &[]);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    until("the command's processes to start", || {
        !processes_with(&format!("sleep\0{escape}")).is_empty()
            && !processes_with(&format!("sleep\0{background}")).is_empty()
    });
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = wait(&mut child, DEADLINE);
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    for (what, needle) in [
        ("the setsid/nohup escape", &escape),
        ("the background child", &background),
    ] {
        let left = processes_with(&format!("sleep\0{needle}"));
        assert!(
            left.is_empty(),
            "{what} outlived the cancelled call: PIDs {left:?}"
        );
    }
}

#[test]
fn tool_bash_dry_run_runs_nothing() {
    let env = Env::new();
    let out = run(env.bash("touch made-by-bash", &["--dry-run"]));
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert!(
        !env.root().join("made-by-bash").exists(),
        "the dry run ran the command"
    );
    assert!(
        out.stdout.contains("$ touch made-by-bash"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("dry run: not run"), "{}", out.stdout);
}

#[test]
fn ask_dry_run_runs_no_command_the_model_asks_for() {
    let env = Env::new();
    let model = MockModel::start_with(
        Script::new(vec![
            Rule::openai(Response::tool_calls(vec![ToolCall::new(
                "bash",
                json!({"command": "touch made-by-bash"}),
            )]))
            .turn(0),
            Rule::openai(Response::text("Done.")).turn(1),
        ]),
        Default::default(),
    )
    .unwrap();
    let out = run(env.ask(&model, "sk-dry-run-test-key", &["--dry-run"]));
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert!(
        !env.root().join("made-by-bash").exists(),
        "the dry run ran the command"
    );
    let requests = model.requests();
    assert_eq!(requests.len(), 2, "{}", out.stderr);
    assert!(
        requests[1].raw_body.contains("dry run: not run"),
        "the model is told the command did not run: {}",
        requests[1].raw_body
    );
}
