//! The loop's small pure pieces: argument parsing and the one-line summaries front ends show.

use serde_json::json;

use super::*;

#[test]
fn arguments_must_be_one_json_object() {
    assert_eq!(
        parse_arguments("read", r#"{"path":"a"}"#),
        Ok(json!({"path": "a"}))
    );
    assert_eq!(
        parse_arguments("ls", "  "),
        Ok(json!({})),
        "no arguments is an empty object"
    );
    let err = parse_arguments("read", r#"{"path": "a""#).unwrap_err();
    assert!(
        err.starts_with("the arguments of `read` are not valid JSON (EOF while parsing"),
        "{err}"
    );
    assert!(
        err.ends_with(r#": {"path": "a"; call it again with a JSON object"#),
        "{err}"
    );
    assert_eq!(
        parse_arguments("grep", "42").unwrap_err(),
        "the arguments of `grep` must be a JSON object, got a number; call it again with an object"
    );
    let long = format!("{{\"x\": \"{}", "y".repeat(500));
    assert!(
        parse_arguments("read", &long).unwrap_err().contains('…'),
        "the echo is clipped"
    );
}

#[test]
fn summaries_fit_on_one_line() {
    assert_eq!(
        // In the order the model sent them (serde_json keeps object order: the ACP schema
        // crate turns on its `preserve_order`).
        summarize_arguments(&json!({"path": "src/lib.rs", "offset": 10, "pattern": "fn main"})),
        r#"path=src/lib.rs offset=10 pattern="fn main""#
    );
    assert_eq!(summarize_arguments(&json!(null)), "");
    assert_eq!(
        summarize_arguments(&json!({"x": "a".repeat(300)}))
            .chars()
            .count(),
        101
    );
    assert_eq!(summarize_output("one line\n"), "one line");
    assert_eq!(summarize_output("a\nb\nc\n"), "3 lines");
    assert_eq!(first_line("first\nsecond"), "first");
}

/// Front ends spawn requests on the runtime: the future of `send` must stay `Send`.
#[test]
fn the_future_of_send_can_be_spawned() {
    fn spawnable<T: Send + 'static>(_: &T) {}
    fn check(session: Session, events: EventSender) {
        let run = async move { session.send("hi", &AskContext::default(), &events).await };
        spawnable(&run);
    }
    let _ = check;
}
