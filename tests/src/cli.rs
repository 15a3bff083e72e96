//! Running the `switchyard` command line from a test: a command with a clean model
//! environment and private state and config folders, and a run with a hang guard.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::switchyard_bin;

/// What a finished process said.
#[derive(Debug)]
pub struct Output {
    /// Its exit code; `None` when a signal ended it.
    pub code: Option<i32>,
    /// Its standard output (lossy UTF-8).
    pub stdout: String,
    /// Its standard error (lossy UTF-8).
    pub stderr: String,
}

/// `switchyard ARGS` with no model settings inherited from the test's environment and its
/// state and configuration folders (`XDG_STATE_HOME`, `XDG_CONFIG_HOME`) under `home`.
pub fn switchyard<S: AsRef<std::ffi::OsStr>>(home: &Path, args: &[S]) -> Command {
    let mut command = Command::new(switchyard_bin());
    command.args(args);
    for var in [
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_BASE_URL",
        "SWITCHYARD_PROVIDER",
        "SWITCHYARD_MODEL",
    ] {
        command.env_remove(var);
    }
    command
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CONFIG_HOME", home.join("config"));
    command
}

/// Runs `command` to its end with stdin closed; past `deadline` it is killed by its PID
/// and the test fails with what it said on stderr.
pub fn run(mut command: Command, deadline: Duration) -> Output {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .expect("switchyard starts (is it built? run tests/run)");
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let read = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            String::from_utf8_lossy(&bytes).into_owned()
        })
    };
    let (out, err) = (read(Box::new(stdout)), read(Box::new(stderr)));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("the child can be waited for") {
            break status;
        }
        if start.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "switchyard ran past {deadline:?}; killed; stderr: {}",
                err.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        code: status.code(),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}
