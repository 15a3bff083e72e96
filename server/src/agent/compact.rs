//! Context management: how big a request is, and compaction. Before a request would pass
//! `agent.compact_at` of the model's context window, the older part of the conversation is
//! summarized by the model — a Generate-lane task of its own (`compact`), with its own
//! prompt — and replaced by one message: the summary and the user's own messages, verbatim.
//! The recent turns are kept as they are; large old tool results go to the summarizer as a
//! note of what they were. The session file keeps the whole transcript and a record of the
//! compaction.

use crate::llm::{Message, ModelRequest, ProviderKind, ResolvedLlmConfig};

/// What the summarizer is told.
pub(crate) const SYSTEM: &str = "You compact the conversation of a coding agent so that it \
can go on within its context window. Write a summary of the conversation below for the \
agent itself: what the user asked, what was done and found (files, functions, facts, \
decisions, with paths), what was changed, and what is left to do. Be specific and brief; \
do not address the user.";

/// How the compacted part begins, so a later compaction finds the verbatim messages.
const HEAD: &str =
    "[The earlier conversation, compacted by Switchyard]\nSummary of the work so far:\n";

/// Where the user's verbatim messages start in a compacted part.
const VERBATIM: &str = "\n\nThe user's messages so far, verbatim:\n";

/// Tool results longer than this are not sent to the summarizer, only a note of them.
pub(crate) const LARGE_RESULT: usize = 2_000;

/// Tokens per byte of request body assumed until the provider reports a count.
pub(crate) const DEFAULT_RATIO: f64 = 0.25;

/// The request body's size in bytes, in `config`'s wire format: what the estimate scales.
pub(crate) fn body_bytes(config: &ResolvedLlmConfig, request: &ModelRequest) -> usize {
    let body = match config.provider {
        ProviderKind::OpenAi => crate::llm::openai::request_body(config, request),
        ProviderKind::Anthropic => crate::llm::anthropic::request_body(config, request),
    };
    serde_json::to_string(&body).map_or(0, |text| text.len())
}

/// Tokens for `bytes` of body at `ratio` tokens per byte, rounded up.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
pub(crate) fn tokens(bytes: usize, ratio: f64) -> u64 {
    (bytes as f64 * ratio).ceil() as u64
}

/// Bytes of body that `tokens` tokens allow at `ratio`.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
pub(crate) fn bytes_for(tokens: u64, ratio: f64) -> usize {
    (tokens as f64 / ratio.max(1e-3)) as usize
}

/// Where the history may be cut: before a message that is not a tool result (so every call
/// keeps its results), past the compacted part, if any.
fn cut_points(history: &[Message], first: usize) -> impl Iterator<Item = usize> + '_ {
    (first.max(1)..history.len()).filter(|&i| !matches!(history[i], Message::ToolResult { .. }))
}

/// The message's size as the summarizer or the model sees it, roughly.
fn size(message: &Message) -> usize {
    match message {
        Message::User { content } => content.len(),
        Message::Assistant {
            text, tool_calls, ..
        } => {
            text.len()
                + tool_calls
                    .iter()
                    .map(|c| c.name.len() + c.arguments.len() + c.id.len() + 40)
                    .sum::<usize>()
        }
        Message::ToolResult { content, .. } => content.len() + 40,
    }
}

/// The index the recent part starts at: the earliest cut whose tail fits in `keep_bytes`,
/// else the last cut; `None` when there is nothing older to compact.
pub(crate) fn keep_from(history: &[Message], compacted: bool, keep_bytes: usize) -> Option<usize> {
    let first = usize::from(compacted) + 1;
    let cuts: Vec<usize> = cut_points(history, first).collect();
    let last = *cuts.last()?;
    let mut tail = 0;
    let mut chosen = last;
    let mut at = history.len();
    for &cut in cuts.iter().rev() {
        tail += history[cut..at].iter().map(size).sum::<usize>();
        at = cut;
        if tail > keep_bytes {
            break;
        }
        chosen = cut;
    }
    Some(chosen)
}

/// Where the last exchange starts (its user message), for a compaction on demand; `None`
/// when there is no older exchange to compact.
pub(crate) fn last_exchange(history: &[Message], compacted: bool) -> Option<usize> {
    let first = usize::from(compacted) + 1;
    cut_points(history, first)
        .filter(|&i| matches!(history[i], Message::User { .. }))
        .last()
}

/// The older part as text for the summarizer, large tool results as notes, at most
/// `max_bytes` (the oldest part dropped first, the earlier summary kept).
pub(crate) fn transcript(old: &[Message], max_bytes: usize) -> String {
    let mut names = std::collections::HashMap::new();
    let mut parts: Vec<String> = Vec::new();
    for message in old {
        parts.push(match message {
            Message::User { content } if content.starts_with(HEAD) => {
                format!("(earlier summary)\n{content}")
            }
            Message::User { content } => format!("USER: {content}"),
            Message::Assistant {
            text, tool_calls, ..
        } => {
                let mut out = format!("AGENT: {text}");
                for call in tool_calls {
                    names.insert(call.id.clone(), (call.name.clone(), call.arguments.clone()));
                    out.push_str(&format!("\nCALL {} {}", call.name, call.arguments));
                }
                out
            }
            Message::ToolResult {
                call_id, content, ..
            } => {
                if content.len() > LARGE_RESULT {
                    let (name, args) = names.get(call_id).cloned().unwrap_or_default();
                    format!(
                        "RESULT of {name} {args}: {} characters, not shown (read it again if needed)",
                        content.len()
                    )
                } else {
                    format!("RESULT: {content}")
                }
            }
        });
    }
    // Over the limit, the oldest parts go first (an earlier summary stays).
    let mut total: usize = parts.iter().map(|p| p.len() + 2).sum();
    let from = usize::from(parts.first().is_some_and(|p| p.starts_with("(earlier")));
    let mut dropped = 0;
    while total > max_bytes && from + dropped + 1 < parts.len() {
        total -= parts[from + dropped].len() + 2;
        dropped += 1;
    }
    if dropped > 0 {
        parts.splice(from..from + dropped, [String::from("(…)")]);
    }
    let mut text = parts.join("\n\n");
    if text.len() > max_bytes {
        let mut at = text.len() - max_bytes;
        while !text.is_char_boundary(at) {
            at += 1;
        }
        text = text[at..].to_string();
    }
    text
}

/// The one message that stands for `old`: the summary, then the user's own messages from
/// it (and from an earlier compaction) verbatim.
pub(crate) fn summary_message(old: &[Message], summary: &str) -> Message {
    let mut verbatim: Vec<String> = Vec::new();
    for message in old {
        if let Message::User { content } = message {
            match content.strip_prefix(HEAD) {
                Some(earlier) => {
                    if let Some((_, list)) = earlier.split_once(VERBATIM) {
                        verbatim.extend(list.split("\n---\n").map(str::to_string));
                    }
                }
                None => verbatim.push(content.clone()),
            }
        }
    }
    let mut content = format!("{HEAD}{}", summary.trim());
    if !verbatim.is_empty() {
        content.push_str(VERBATIM);
        content.push_str(&verbatim.join("\n---\n"));
    }
    Message::User { content }
}

/// Whether a model error says the request was longer than the context window (OpenAI
/// `context_length_exceeded`, Anthropic "prompt is too long", llama.cpp's and vLLM's).
pub(crate) fn is_overflow(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    [
        "context_length_exceeded",
        "maximum context length",
        "prompt is too long",
        "exceeds the available context size",
        "exceed_context_size",
        "longer than the model's context length",
        "context window",
    ]
    .iter()
    .any(|needle| message.contains(needle))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ToolCall;

    fn turn(n: usize, result: &str) -> Vec<Message> {
        vec![
            Message::Assistant {
                text: String::new(),
                thinking: vec![],
                tool_calls: vec![ToolCall {
                    id: format!("c{n}"),
                    name: "read".into(),
                    arguments: format!("{{\"path\":\"f{n}\"}}"),
                }],
            },
            Message::ToolResult {
                call_id: format!("c{n}"),
                content: result.into(),
                is_error: false,
                images: Vec::new(),
            },
        ]
    }

    #[test]
    fn the_recent_turns_are_kept_and_the_users_words_survive_two_compactions() {
        let mut history = vec![Message::User {
            content: "Read everything.".into(),
        }];
        for n in 0..6 {
            history.extend(turn(n, &"x".repeat(3_000)));
        }
        let from = keep_from(&history, false, 7_000).unwrap();
        assert_eq!(from, 9, "the last two turns fit in 7,000 bytes");
        assert!(matches!(history[from], Message::Assistant { .. }));
        let old = transcript(&history[..from], 100_000);
        assert!(old.starts_with("USER: Read everything."), "{old}");
        assert!(old.contains("RESULT of read {\"path\":\"f0\"}: 3000 characters, not shown"));
        let first = summary_message(&history[..from], "Read f0 to f3.");
        let mut compacted = vec![first];
        compacted.extend_from_slice(&history[from..]);
        compacted.push(Message::User {
            content: "Now f9.".into(),
        });
        compacted.extend(turn(9, "y"));
        let from = keep_from(&compacted, true, 10).unwrap();
        let second = summary_message(&compacted[..from], "All read.");
        let Message::User { content } = second else {
            unreachable!()
        };
        assert!(content.starts_with(HEAD), "{content}");
        assert!(
            content.ends_with("verbatim:\nRead everything.\n---\nNow f9."),
            "{content}"
        );
    }

    #[test]
    fn on_demand_the_last_exchange_stays_and_a_single_one_is_not_compacted() {
        let user = |text: &str| Message::User {
            content: text.into(),
        };
        let mut history = vec![user("Read f0.")];
        history.extend(turn(0, "x"));
        assert_eq!(last_exchange(&history, false), None, "one exchange only");
        history.push(user("Now f1."));
        history.extend(turn(1, "y"));
        assert_eq!(last_exchange(&history, false), Some(3));
        let compacted = [summary_message(&history[..3], "Read f0."), user("Now f1.")];
        assert_eq!(last_exchange(&compacted, true), None, "nothing older left");
    }

    #[test]
    fn overflow_errors_of_each_server_are_recognized() {
        for said in [
            "This model's maximum context length is 4000 tokens. However, your messages resulted in 4100 tokens.",
            "prompt is too long: 210000 tokens > 200000 maximum",
            "the request exceeds the available context size, try increasing it",
        ] {
            assert!(is_overflow(said), "{said}");
        }
        assert!(!is_overflow("invalid api key"));
    }
}
