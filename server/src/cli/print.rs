//! The terminal printer of an agent run, and everything else the command line prints that
//! came from the model or a tool: the answer streamed
//! once (a retried model call that repeats it adds only what is new), and, on a terminal,
//! nothing that drives the terminal — escape sequences (colours, cursor moves, OSC 52's
//! clipboard writes, window titles) and control characters are dropped, leaving plain text,
//! newlines and tabs. Output to a pipe or a file is left exactly as it came. The model's
//! reasoning goes to stderr, dimmed on a terminal and behind a `thinking: ` prefix
//! elsewhere; its plan too, as a checklist.

use std::borrow::Cow;
use std::io::{IsTerminal, Write};

use switchyard::agent::{AgentEvent, ToolStatus};
use switchyard::tools::StepStatus;
use tokio::sync::mpsc;

/// Where an escape sequence stands, across the pieces of a stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    /// Plain text.
    #[default]
    Text,
    /// After ESC.
    Escape,
    /// After ESC and intermediate bytes (`ESC ( B`).
    Intermediate,
    /// In a control sequence (`ESC [ 1 ; 31 m`), until its final byte.
    Csi,
    /// In a string (OSC `ESC ]`, DCS `ESC P`, SOS, PM, APC), until BEL or ST.
    String,
    /// After ESC inside a string: `\` ends it.
    StringEscape,
}

/// Drops terminal escape sequences and control characters from text that arrives in
/// pieces; a sequence split between pieces is still recognised.
#[derive(Debug, Clone, Default)]
pub struct Sanitizer {
    state: State,
}

impl Sanitizer {
    /// `text` without what would drive a terminal, given what came before it.
    pub fn clean<'a>(&mut self, text: &'a str) -> Cow<'a, str> {
        if self.state == State::Text && !text.chars().any(is_dropped) {
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len());
        for c in text.chars() {
            if let Some(c) = self.step(c) {
                out.push(c);
            }
        }
        Cow::Owned(out)
    }

    /// One character through the state machine: `Some` when it is shown.
    fn step(&mut self, c: char) -> Option<char> {
        match self.state {
            State::Text => match c {
                '\u{1b}' => self.state = State::Escape,
                '\u{9b}' => self.state = State::Csi,
                '\u{90}' | '\u{98}' | '\u{9d}' | '\u{9e}' | '\u{9f}' => self.state = State::String,
                c if is_dropped(c) => {}
                c => return Some(c),
            },
            State::Escape | State::StringEscape => {
                if self.state == State::StringEscape && c == '\\' {
                    self.state = State::Text;
                    return None;
                }
                self.state = match c {
                    '[' => State::Csi,
                    ']' | 'P' | 'X' | '^' | '_' => State::String,
                    '\u{1b}' => State::Escape,
                    ' '..='/' => State::Intermediate,
                    _ => State::Text,
                };
            }
            State::Intermediate => {
                if !(' '..='/').contains(&c) {
                    self.state = State::Text;
                }
            }
            State::Csi => match c {
                '\u{1b}' => self.state = State::Escape,
                '@'..='~' => self.state = State::Text,
                _ => {}
            },
            State::String => match c {
                '\u{7}' | '\u{9c}' => self.state = State::Text,
                '\u{1b}' => self.state = State::StringEscape,
                _ => {}
            },
        }
        None
    }
}

/// Control characters other than newline and tab; a carriage return goes too (it would
/// let text overwrite the line before it).
fn is_dropped(c: char) -> bool {
    c.is_control() && c != '\n' && c != '\t'
}

/// `text` as it may be shown on stderr: cleaned when stderr is a terminal.
pub fn for_stderr(text: &str) -> Cow<'_, str> {
    if std::io::stderr().is_terminal() {
        Sanitizer::default().clean(text).into_owned().into()
    } else {
        Cow::Borrowed(text)
    }
}

/// `text` as it may be shown on stdout: cleaned when stdout is a terminal.
pub fn for_stdout(text: &str) -> Cow<'_, str> {
    if std::io::stdout().is_terminal() {
        Sanitizer::default().clean(text).into_owned().into()
    } else {
        Cow::Borrowed(text)
    }
}

/// Prints a run's events: the answer to `out` as it streams, tool activity and retries to
/// `err`.
///
/// A model call that fails after streaming part of its answer is retried; the retry usually
/// says the same thing again. What was printed stays printed: the retry's text is held
/// against it, and only what goes beyond it is printed. A retry that says something else
/// is announced once ("the answer starts over") and printed from its start.
pub struct AnswerPrinter<O: Write, E: Write> {
    out: O,
    err: E,
    /// Cleans stdout's text; `None` when stdout is not a terminal.
    out_clean: Option<Sanitizer>,
    /// Whether stderr is a terminal (its lines are cleaned).
    err_terminal: bool,
    /// Anything written to `out` yet.
    wrote: bool,
    /// `out` stands in the middle of a line.
    mid_line: bool,
    /// Tools ran since the last text: the next text is a new paragraph.
    new_paragraph: bool,
    /// The text printed for the current model call.
    shown: String,
    /// While a retried call's text is checked against `shown`: how much of it the retry
    /// has repeated so far.
    replaying: Option<usize>,
    /// Reasoning is being printed to `err`: where its line stands, and the sanitizer that
    /// cleans it on a terminal (it streams in pieces).
    thought: Option<Thought>,
}

/// Reasoning being printed.
struct Thought {
    /// `err` stands at the start of a line.
    line_start: bool,
    clean: Sanitizer,
}

/// Prefixes each line of reasoning printed where there is no terminal to dim it.
const THINKING: &str = "thinking: ";

impl<O: Write, E: Write> AnswerPrinter<O, E> {
    /// A printer to `out` and `err`, cleaning what goes to the ones that are terminals.
    pub fn new(out: O, err: E, out_terminal: bool, err_terminal: bool) -> Self {
        AnswerPrinter {
            out,
            err,
            out_clean: out_terminal.then(Sanitizer::default),
            err_terminal,
            wrote: false,
            mid_line: false,
            new_paragraph: false,
            shown: String::new(),
            replaying: None,
            thought: None,
        }
    }

    /// Prints one event.
    pub fn event(&mut self, event: AgentEvent) {
        if !matches!(event, AgentEvent::ThoughtChunk { .. }) {
            self.end_thought();
        }
        match event {
            AgentEvent::MessageChunk { text } => self.chunk(&text),
            AgentEvent::ThoughtChunk { text } => self.think(&text),
            AgentEvent::Plan(plan) => {
                self.settle();
                self.note("  plan:");
                for step in &plan.steps {
                    let mark = match step.status {
                        StepStatus::Pending => "[ ]",
                        StepStatus::InProgress => "[>]",
                        StepStatus::Completed => "[x]",
                    };
                    self.note(&format!("    {mark} {}", step.step));
                }
                if let Some(why) = &plan.explanation {
                    self.note(&format!("    ({why})"));
                }
            }
            AgentEvent::ModelRetry {
                attempt,
                max_attempts,
                error,
                discarded_text,
            } => {
                self.note(&format!(
                    "switchyard: {error}; retrying (attempt {} of {max_attempts})",
                    attempt + 1
                ));
                if (discarded_text || self.replaying.is_some()) && !self.shown.is_empty() {
                    self.replaying = Some(0);
                }
            }
            AgentEvent::ModelWaiting { what, up_to } => {
                self.note(&format!(
                    "switchyard: waiting up to {} s for {what}",
                    up_to.as_secs_f64()
                ));
            }
            AgentEvent::ToolCallStarted {
                name,
                lane,
                summary,
                ..
            } => {
                self.settle();
                self.shown.clear();
                self.new_paragraph = true;
                let lane = lane.map_or("-", |l| l.name());
                self.note(&format!("  > {name} {summary} [{lane}]"));
            }
            AgentEvent::ToolCallProgress {
                name,
                progress,
                total,
                message,
                ..
            } => {
                self.settle();
                let line = AgentEvent::progress_line(progress, total, message.as_deref());
                self.note(&format!("  … {name} {line}"));
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
                self.note(&format!(
                    "  < {name} {mark} in {} ms: {summary}",
                    duration.as_millis()
                ));
            }
            AgentEvent::Done { .. } => self.settle(),
            AgentEvent::Usage { .. } => {}
            AgentEvent::Compacted { replaced, kept } => {
                self.settle();
                self.note(&format!(
                    "  ~ compacted: {replaced} earlier messages summarized, {kept} kept"
                ));
            }
        }
    }

    /// Ends the output: whatever a retry still held back is settled, and the last line
    /// ended.
    pub fn finish(&mut self) {
        self.end_thought();
        self.settle();
        if self.mid_line {
            let _ = self.out.write_all(b"\n");
            self.mid_line = false;
        }
        let _ = self.out.flush();
        let _ = self.err.flush();
    }

    /// The printer's streams, for tests.
    #[cfg(test)]
    pub fn into_inner(self) -> (O, E) {
        (self.out, self.err)
    }

    fn chunk(&mut self, text: &str) {
        let Some(matched) = self.replaying else {
            self.print(text);
            return;
        };
        let rest = &self.shown[matched..];
        if rest.starts_with(text) {
            // Still repeating what is on the screen.
            let matched = matched + text.len();
            self.replaying = (matched < self.shown.len()).then_some(matched);
        } else if let Some(beyond) = text.strip_prefix(rest) {
            // Caught up: print only what is new.
            let beyond = beyond.to_owned();
            self.replaying = None;
            self.print(&beyond);
        } else {
            let answer = format!("{}{text}", &self.shown[..matched]);
            self.start_over(&answer);
        }
    }

    /// A retried call ended while it was still repeating: if it said less than was shown,
    /// its answer is not the one on the screen.
    fn settle(&mut self) {
        if let Some(matched) = self.replaying {
            let answer = self.shown[..matched].to_owned();
            self.start_over(&answer);
        }
    }

    fn start_over(&mut self, answer: &str) {
        self.replaying = None;
        if self.mid_line {
            let _ = self.out.write_all(b"\n");
            self.mid_line = false;
        }
        let _ = self.out.flush();
        self.note("switchyard: the answer starts over");
        self.shown.clear();
        self.print(answer);
    }

    fn print(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if self.new_paragraph && self.wrote {
            let _ = self
                .out
                .write_all(if self.mid_line { b"\n\n" } else { b"\n" });
        }
        self.new_paragraph = false;
        self.shown.push_str(text);
        let shown = match &mut self.out_clean {
            Some(sanitizer) => sanitizer.clean(text),
            None => Cow::Borrowed(text),
        };
        let _ = self.out.write_all(shown.as_bytes());
        let _ = self.out.flush();
        self.wrote = true;
        self.mid_line = !text.ends_with('\n');
    }

    /// More reasoning on `err`: dimmed on a terminal, each line behind [`THINKING`]
    /// elsewhere.
    fn think(&mut self, text: &str) {
        let thought = self.thought.get_or_insert_with(|| Thought {
            line_start: true,
            clean: Sanitizer::default(),
        });
        if self.err_terminal {
            let text = thought.clean.clean(text);
            if !text.is_empty() {
                // Reset after every piece: an interrupted run leaves no dim terminal.
                let _ = write!(self.err, "\u{1b}[2m{text}\u{1b}[0m");
                thought.line_start = text.ends_with('\n');
            }
        } else {
            let mut out = String::with_capacity(text.len() + THINKING.len());
            for piece in text.split_inclusive('\n') {
                if thought.line_start {
                    out.push_str(THINKING);
                }
                out.push_str(piece);
                thought.line_start = piece.ends_with('\n');
            }
            let _ = self.err.write_all(out.as_bytes());
        }
        let _ = self.err.flush();
    }

    /// Ends the line of reasoning being printed, if any.
    fn end_thought(&mut self) {
        if let Some(thought) = self.thought.take()
            && !thought.line_start
        {
            let _ = self.err.write_all(b"\n");
        }
    }

    /// A line on `err`, cleaned on a terminal.
    fn note(&mut self, line: &str) {
        let line = if self.err_terminal {
            Sanitizer::default().clean(line)
        } else {
            Cow::Borrowed(line)
        };
        let _ = writeln!(self.err, "{line}");
    }
}

/// Prints a run's events: the answer to stdout as it streams, tool activity to stderr
/// (see [`AnswerPrinter`]).
pub async fn events(mut events: mpsc::UnboundedReceiver<AgentEvent>) {
    let mut printer = AnswerPrinter::new(
        std::io::stdout(),
        std::io::stderr(),
        std::io::stdout().is_terminal(),
        std::io::stderr().is_terminal(),
    );
    while let Some(event) = events.recv().await {
        printer.event(event);
    }
    printer.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(pieces: &[&str]) -> String {
        let mut sanitizer = Sanitizer::default();
        pieces.iter().map(|p| sanitizer.clean(p)).collect()
    }

    #[test]
    fn escape_sequences_and_controls_are_dropped_from_plain_text() {
        assert_eq!(clean(&["plain\ttext\nline two"]), "plain\ttext\nline two");
        // OSC 52 (clipboard), with BEL and with ST; a window title; colours; a cursor move.
        assert_eq!(
            clean(&["a\u{1b}]52;c;cm0gLXJmIH4=\u{7}b\u{1b}]0;title\u{1b}\\c"]),
            "abc"
        );
        assert_eq!(
            clean(&["\u{1b}[1;31mred\u{1b}[0m \u{1b}[2J\u{1b}[H!"]),
            "red !"
        );
        // Split across pieces, and the C1 forms.
        assert_eq!(clean(&["x\u{1b}", "]52;c;", "aGk=", "\u{7}y"]), "xy");
        assert_eq!(clean(&["\u{9b}31mz\u{9d}8;;http://x\u{9c}w"]), "zw");
        // Charset selection, backspace, carriage return, DEL.
        assert_eq!(clean(&["\u{1b}(Bok\u{8}\r\n\u{7f}"]), "ok\n");
    }

    fn chunk(text: &str) -> AgentEvent {
        AgentEvent::MessageChunk { text: text.into() }
    }

    fn retry() -> AgentEvent {
        AgentEvent::ModelRetry {
            attempt: 1,
            max_attempts: 3,
            error: "stream cut before completion".into(),
            discarded_text: true,
        }
    }

    fn print(events: Vec<AgentEvent>, terminal: bool) -> (String, String) {
        let mut printer = AnswerPrinter::new(Vec::new(), Vec::new(), terminal, terminal);
        for event in events {
            printer.event(event);
        }
        printer.finish();
        let (out, err) = printer.into_inner();
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn a_retry_that_repeats_the_answer_prints_only_what_is_new() {
        let (out, err) = print(
            vec![
                chunk("The whole"),
                chunk(" ans"),
                retry(),
                chunk("The"),
                chunk(" whole answer"),
                chunk("."),
            ],
            false,
        );
        assert_eq!(out, "The whole answer.\n");
        assert_eq!(err.matches("retrying").count(), 1, "{err}");
        assert!(!err.contains("starts over"), "{err}");

        // Cut twice: still printed once.
        let (out, _) = print(
            vec![
                chunk("One two"),
                retry(),
                chunk("One"),
                retry(),
                chunk("One two three"),
            ],
            false,
        );
        assert_eq!(out, "One two three\n");
    }

    #[test]
    fn a_retry_that_says_something_else_starts_over_once() {
        let (out, err) = print(
            vec![
                chunk("A first try"),
                retry(),
                chunk("A se"),
                chunk("cond one"),
            ],
            false,
        );
        assert_eq!(out, "A first try\nA second one\n");
        assert_eq!(err.matches("the answer starts over").count(), 1, "{err}");

        // A retry that stops short of what was shown.
        let (out, err) = print(vec![chunk("Yes, and more"), retry(), chunk("Yes")], false);
        assert_eq!(out, "Yes, and more\nYes\n");
        assert!(err.contains("the answer starts over"), "{err}");
    }

    #[test]
    fn tool_progress_goes_to_stderr() {
        let (out, err) = print(
            vec![switchyard::agent::AgentEvent::ToolCallProgress {
                call_id: "c1".into(),
                name: "mcp__everything__trigger-long-running-operation".into(),
                progress: 2.0,
                total: Some(5.0),
                message: Some("halfway".into()),
                elapsed: std::time::Duration::from_millis(40),
            }],
            false,
        );
        assert_eq!(out, "");
        assert!(
            err.contains("  … mcp__everything__trigger-long-running-operation 2/5 (40%): halfway"),
            "{err}"
        );
    }

    #[test]
    fn thoughts_go_to_stderr_dimmed_on_a_terminal_prefixed_elsewhere() {
        let thought = |text: &str| AgentEvent::ThoughtChunk { text: text.into() };
        let events = vec![
            thought("Look at the\nparser"),
            thought(" first.\u{1b}[2J"),
            chunk("Done."),
        ];
        let (out, err) = print(events.clone(), false);
        assert_eq!(out, "Done.\n");
        assert_eq!(
            err,
            "thinking: Look at the\nthinking: parser first.\u{1b}[2J\n"
        );
        let (out, err) = print(events, true);
        assert_eq!(out, "Done.\n");
        assert_eq!(
            err,
            "\u{1b}[2mLook at the\nparser\u{1b}[0m\u{1b}[2m first.\u{1b}[0m\n"
        );
    }

    #[test]
    fn a_plan_is_a_checklist_on_stderr() {
        let step = |step: &str, status| switchyard::tools::PlanStep {
            step: step.into(),
            status,
        };
        let (out, err) = print(
            vec![AgentEvent::Plan(switchyard::tools::Plan {
                steps: vec![
                    step("Read", StepStatus::Completed),
                    step("Fix", StepStatus::InProgress),
                    step("Test", StepStatus::Pending),
                ],
                explanation: Some("found it".into()),
            })],
            false,
        );
        assert_eq!(out, "");
        assert_eq!(
            err,
            "  plan:\n    [x] Read\n    [>] Fix\n    [ ] Test\n    (found it)\n"
        );
    }

    #[test]
    fn a_terminal_gets_no_escape_sequences_from_the_model_or_tools() {
        let events = vec![
            chunk("safe \u{1b}]52;c;"),
            chunk("ZWNobyBwd25lZA==\u{7}text"),
            AgentEvent::ToolCallStarted {
                call_id: "c1".into(),
                name: "bash".into(),
                lane: None,
                kind: switchyard::tools::ToolKind::Execute,
                summary: "command=\u{1b}[2Jclear".into(),
                arguments: serde_json::Value::Null,
            },
        ];
        let (out, err) = print(events.clone(), true);
        assert_eq!(out, "safe text\n");
        assert!(
            !err.contains('\u{1b}') && err.contains("command=clear"),
            "{err}"
        );
        // A pipe gets the bytes as they came.
        let (out, _) = print(events, false);
        assert!(out.contains("\u{1b}]52;c;ZWNobyBwd25lZA==\u{7}"));
    }
}
