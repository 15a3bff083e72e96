//! What reaches the user's terminal: escape sequences in a tool's output or the model's text
//! (OSC 52 writes the clipboard, CSI moves the cursor and clears the screen) are dropped
//! when the CLI prints to a terminal — run here under a real pseudo-terminal with
//! `script` — and a stream cut mid-answer and retried prints its answer once.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use serde_json::json;
use switchyard_tests::mock_model::{MockModel, Response, Rule, Script};

use super::bounds::{run, switchyard};

/// Runs `command` under a pseudo-terminal (`script -qec`), so stdout and stderr are a
/// terminal; returns what the terminal received.
fn on_a_terminal(command: &Command) -> String {
    let mut line = shell_quote(&command.get_program().to_string_lossy());
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&shell_quote(&arg.to_string_lossy()));
    }
    let mut script = Command::new("script");
    script.args(["-qec", &line, "/dev/null"]);
    // `script` hands its environment to the command.
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => script.env(key, value),
            None => script.env_remove(key),
        };
    }
    let out = run(script);
    assert_eq!(
        out.code,
        Some(0),
        "stdout: {}\nstderr: {}",
        out.stdout,
        out.stderr
    );
    out.stdout
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The escape sequences an attacker would plant: OSC 52 (set the clipboard, BEL- and
/// ST-terminated), a window title, clear-screen and a cursor move, and colours.
const PLANTED: &str = "\u{1b}]52;c;cm0gLXJmIH4K\u{7}\u{1b}]52;c;ZXZpbA==\u{1b}\\\u{1b}]0;owned\u{7}\u{1b}[2J\u{1b}[1;1H\u{1b}[31m";

fn assert_clean(terminal: &str) {
    assert!(
        !terminal.contains('\u{1b}') && !terminal.contains('\u{7}') && !terminal.contains("52;c;"),
        "an escape sequence reached the terminal: {terminal:?}"
    );
}

#[test]
fn bash_output_reaches_the_terminal_without_escape_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("payload.txt"),
        format!("before{PLANTED}after\n"),
    )
    .unwrap();
    let args = json!({"command": "cat payload.txt"}).to_string();
    let mut command = switchyard(
        home.path(),
        None,
        &[
            OsStr::new("tool"),
            OsStr::new("bash"),
            OsStr::new(&args),
            OsStr::new("--yes"),
            OsStr::new("--cwd"),
            dir.path().as_os_str(),
        ],
    );
    command.env("SWITCHYARD_APPROVALS__BASH", "allow");
    let terminal = on_a_terminal(&command);
    assert!(terminal.contains("beforeafter"), "{terminal:?}");
    assert_clean(&terminal);

    // To a pipe the output is the tool's, byte for byte.
    let piped = run(command);
    assert!(piped.stdout.contains(PLANTED), "{:?}", piped.stdout);
}

#[test]
fn model_text_reaches_the_terminal_without_escape_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let model = MockModel::start_with(
        Script::new(vec![
            Rule::openai(Response::text(format!("Here{PLANTED} is the answer.")).chunk_size(3))
                .repeat(),
        ]),
        Default::default(),
    )
    .unwrap();
    let command = switchyard(
        home.path(),
        Some(&model),
        &[
            OsStr::new("ask"),
            OsStr::new("--cwd"),
            dir.path().as_os_str(),
            OsStr::new("Anything?"),
        ],
    );
    let terminal = on_a_terminal(&command);
    assert!(terminal.contains("Here is the answer."), "{terminal:?}");
    assert_clean(&terminal);
}

/// The answer, a cut after part of it, then the retry saying it again in full.
fn cut_then_whole(home: &Path, dir: &Path) -> (super::bounds::Output, MockModel) {
    let model = MockModel::start_with(
        Script::new(vec![
            Rule::openai(
                Response::text("The whole answer, said in full.")
                    .chunk_size(4)
                    .cut_after(4),
            )
            .times(2),
            Rule::openai(Response::text("The whole answer, said in full.")),
        ]),
        Default::default(),
    )
    .unwrap();
    let out = run(switchyard(
        home,
        Some(&model),
        &[
            OsStr::new("ask"),
            OsStr::new("--cwd"),
            dir.as_os_str(),
            OsStr::new("Anything?"),
        ],
    ));
    (out, model)
}

#[test]
fn a_cut_answer_that_is_retried_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let (out, model) = cut_then_whole(home.path(), dir.path());
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(model.requests().len(), 3);
    assert_eq!(out.stdout, "The whole answer, said in full.\n");
    assert_eq!(out.stderr.matches("retrying").count(), 2, "{}", out.stderr);
    assert!(!out.stderr.contains("starts over"), "{}", out.stderr);
}
