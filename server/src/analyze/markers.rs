//! Finding `TODO`, `FIXME`, `HACK` and `XXX` notes in a file's bytes, in one pass.
//!
//! A marker is one of the four words, in capitals, standing alone: the bytes on either side
//! are not letters, digits or `_` (so `TODOS`, `XXXX` and `todo!()` are not markers). A word
//! that is a whole quoted string — `"TODO"`, `'FIXME'` — is a literal, not a note, and is
//! left out. In a file whose language has comments, a marker must also read as a note: it
//! follows a comment opener on its line (`// TODO`, `# FIXME`, ` * HACK` in a block), or at
//! least does not sit inside a string (`push_str("no TODO here")` is code, and so is
//! `"// TODO"` in a test's input). That is a per-line judgement from the language's comment
//! and quote tokens, not a parse — cheap, and right for the notes people write.
//!
//! Matches are found with one Aho-Corasick automaton (SIMD-accelerated for so few
//! patterns); line numbers are only worked out for the occurrences whose location is kept.

use aho_corasick::{AhoCorasick, MatchKind};
use memchr::{memchr, memchr_iter, memrchr};
use serde::{Deserialize, Serialize};

use super::languages::Language;

/// The kinds of marker, in the order reports list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MarkerKind {
    /// `TODO`: work left to do.
    Todo,
    /// `FIXME`: something known to be broken.
    Fixme,
    /// `HACK`: a workaround to revisit.
    Hack,
    /// `XXX`: a warning to readers.
    Xxx,
}

impl MarkerKind {
    /// Every kind, in report order.
    pub const ALL: [MarkerKind; 4] = [
        MarkerKind::Todo,
        MarkerKind::Fixme,
        MarkerKind::Hack,
        MarkerKind::Xxx,
    ];

    /// The word itself: `TODO`, `FIXME`, `HACK`, `XXX`.
    pub fn word(self) -> &'static str {
        match self {
            MarkerKind::Todo => "TODO",
            MarkerKind::Fixme => "FIXME",
            MarkerKind::Hack => "HACK",
            MarkerKind::Xxx => "XXX",
        }
    }
}

/// Most characters of a marker's line kept as its text.
const MAX_TEXT_CHARS: usize = 120;

/// One marker found: where, and the line it sits on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Found {
    /// Which marker.
    pub kind: MarkerKind,
    /// 1-based line number.
    pub line: u64,
    /// The line, trimmed and cut to a readable length.
    pub text: String,
}

/// Finds markers; build once, share between threads.
#[derive(Debug, Clone)]
pub(crate) struct MarkerFinder {
    automaton: AhoCorasick,
}

impl MarkerFinder {
    /// The automaton for the four words.
    pub fn new() -> Result<MarkerFinder, String> {
        let automaton = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(MarkerKind::ALL.map(MarkerKind::word))
            .map_err(|e| format!("cannot build the marker search: {e}"))?;
        Ok(MarkerFinder { automaton })
    }

    /// Adds the markers of `bytes`, a file in `language` (if known), to `counts` (indexed
    /// like [`MarkerKind::ALL`]) and pushes the locations of the first ones to `found` while
    /// it holds fewer than `keep`. Returns how many markers the file holds.
    pub fn scan(
        &self,
        bytes: &[u8],
        language: Option<Language>,
        counts: &mut [u64; 4],
        found: &mut Vec<Found>,
        keep: usize,
    ) -> u64 {
        let syntax = language.map(Syntax::of).filter(Syntax::has_comments);
        let mut total = 0;
        // Line numbers are counted incrementally: newlines between the last marker kept
        // and this one.
        let mut line = 1;
        let mut line_counted_to = 0;
        for m in self.automaton.find_iter(bytes) {
            let (start, end) = (m.start(), m.end());
            if !stands_alone(bytes, start, end) {
                continue;
            }
            if let Some(syntax) = &syntax {
                let line_start = memrchr(b'\n', &bytes[..start]).map_or(0, |i| i + 1);
                if !syntax.reads_as_note(&bytes[line_start..start]) {
                    continue;
                }
            }
            let index = m.pattern().as_usize();
            counts[index] += 1;
            total += 1;
            if found.len() < keep {
                line += memchr_iter(b'\n', &bytes[line_counted_to..start]).count() as u64;
                line_counted_to = start;
                found.push(Found {
                    kind: MarkerKind::ALL[index],
                    line,
                    text: line_text(bytes, start),
                });
            }
        }
        total
    }
}

/// What of a language's syntax tells a note from code on one line.
struct Syntax {
    /// Line comment tokens and block comment openers.
    comment_openers: Vec<&'static [u8]>,
    /// One-byte string quotes (`"`, `'`, `` ` ``).
    quotes: Vec<u8>,
}

impl Syntax {
    fn of(language: Language) -> Syntax {
        let def = language.def();
        let comment_openers = def
            .line_comments
            .iter()
            .copied()
            .chain(def.block_comments.iter().map(|(open, _)| *open))
            .collect();
        let mut quotes: Vec<u8> = def
            .quotes
            .iter()
            .chain(def.verbatim_quotes)
            .chain(def.doc_quotes)
            .filter_map(|(open, _)| match open {
                [q] => Some(*q),
                _ => None,
            })
            .collect();
        quotes.sort_unstable();
        quotes.dedup();
        Syntax {
            comment_openers,
            quotes,
        }
    }

    fn has_comments(&self) -> bool {
        !self.comment_openers.is_empty()
    }

    /// Whether a marker after `before` (its line up to it) is a note: the line continues a
    /// block comment (` * TODO`), or, reading it from the start, a comment opener comes
    /// outside any string, or no string is left open before the marker.
    fn reads_as_note(&self, before: &[u8]) -> bool {
        if before.trim_ascii_start().starts_with(b"*") {
            return true;
        }
        let mut open: Option<u8> = None;
        let mut escaped = false;
        for (i, &b) in before.iter().enumerate() {
            match open {
                Some(_) if escaped => escaped = false,
                Some(_) if b == b'\\' => escaped = true,
                Some(quote) if b == quote => open = None,
                Some(_) => {}
                None if self
                    .comment_openers
                    .iter()
                    .any(|opener| before[i..].starts_with(opener)) =>
                {
                    return true;
                }
                None if self.quotes.contains(&b) => open = Some(b),
                None => {}
            }
        }
        open.is_none()
    }
}

fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

/// Whether `bytes[start..end]` is a word of its own and not a quoted literal.
fn stands_alone(bytes: &[u8], start: usize, end: usize) -> bool {
    let before = start.checked_sub(1).map(|i| bytes[i]);
    let after = bytes.get(end).copied();
    if before.is_some_and(is_word_byte) || after.is_some_and(is_word_byte) {
        return false;
    }
    !matches!((before, after), (Some(b), Some(a)) if b == a && matches!(a, b'"' | b'\'' | b'`'))
}

/// The line holding `at`, whitespace trimmed, at most [`MAX_TEXT_CHARS`] characters.
fn line_text(bytes: &[u8], at: usize) -> String {
    let start = memrchr(b'\n', &bytes[..at]).map_or(0, |i| i + 1);
    let end = memchr(b'\n', &bytes[at..]).map_or(bytes.len(), |i| at + i);
    let line = String::from_utf8_lossy(&bytes[start..end]);
    let line = line.trim();
    match line.char_indices().nth(MAX_TEXT_CHARS) {
        Some((cut, _)) => format!("{}…", line[..cut].trim_end()),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn scan(text: &str, keep: usize) -> ([u64; 4], Vec<(MarkerKind, u64, String)>) {
        scan_in(None, text, keep)
    }

    fn scan_in(
        language: Option<Language>,
        text: &str,
        keep: usize,
    ) -> ([u64; 4], Vec<(MarkerKind, u64, String)>) {
        let mut counts = [0; 4];
        let mut found = Vec::new();
        let total = MarkerFinder::new().unwrap().scan(
            text.as_bytes(),
            language,
            &mut counts,
            &mut found,
            keep,
        );
        assert_eq!(total, counts.iter().sum::<u64>());
        let found = found
            .into_iter()
            .map(|f| (f.kind, f.line, f.text))
            .collect();
        (counts, found)
    }

    #[test]
    fn finds_each_kind_with_its_line() {
        let text =
            "fn main() {\n    // TODO: parse args\n\n  # FIXME(ana) broken\n/* HACK */ x; // XXX\n";
        let (counts, found) = scan(text, 10);
        assert_eq!(counts, [1, 1, 1, 1]);
        assert_eq!(
            found,
            vec![
                (MarkerKind::Todo, 2, "// TODO: parse args".to_string()),
                (MarkerKind::Fixme, 4, "# FIXME(ana) broken".to_string()),
                (MarkerKind::Hack, 5, "/* HACK */ x; // XXX".to_string()),
                (MarkerKind::Xxx, 5, "/* HACK */ x; // XXX".to_string()),
            ]
        );
    }

    #[test]
    fn words_must_stand_alone() {
        let text = "TODOS todo XXXX _TODO TODO_ FIXMEs aHACK HACK2 todo!()\nTODO";
        let (counts, found) = scan(text, 10);
        assert_eq!(counts, [1, 0, 0, 0]);
        assert_eq!(found, vec![(MarkerKind::Todo, 2, "TODO".to_string())]);
    }

    #[test]
    fn quoted_words_are_literals() {
        let text = "const KINDS = [\"TODO\", 'FIXME', `HACK`];\nlet s = \"TODO later\"; // 'XXX\n";
        let (counts, found) = scan(text, 10);
        assert_eq!(counts, [1, 0, 0, 1]);
        assert_eq!(found[0].1, 2);
        assert_eq!(found[1].1, 2);
    }

    #[test]
    fn counts_past_the_kept_locations() {
        let text = "TODO a\nTODO b\nFIXME c\nTODO d\n";
        let (counts, found) = scan(text, 2);
        assert_eq!(counts, [3, 1, 0, 0]);
        assert_eq!(
            found.iter().map(|f| f.1).collect::<Vec<_>>(),
            vec![1, 2],
            "only the first two kept"
        );
    }

    #[test]
    fn long_and_odd_lines_are_cut_and_cleaned() {
        let long = format!("\t// TODO {}\r\n", "é".repeat(300));
        let (_, found) = scan(&long, 1);
        assert_eq!(found[0].2.chars().count(), MAX_TEXT_CHARS + 1);
        assert!(found[0].2.ends_with('…'));
        let (_, found) = scan("x\n\u{0}\u{ff}TODO\u{ff}", 1);
        assert_eq!(found[0].1, 2);
    }

    #[test]
    fn in_code_a_marker_must_read_as_a_note() {
        let rust = "fn f() {\n    // TODO: one\n    let s = \"no TODO here\";\n    /* FIXME two */\n    /*\n     * HACK three\n       XXX four\n     */\n    x(); // \"quoted\" XXX five\n    let t = \"a\\\"b\"; // HACK six\n}\n";
        let (counts, found) = scan_in(Some(Language::Rust), rust, 10);
        let lines: Vec<u64> = found.iter().map(|f| f.1).collect();
        assert_eq!(lines, vec![2, 4, 6, 7, 9, 10], "{found:?}");
        assert_eq!(counts, [1, 1, 2, 2]);

        // A comment opener inside a string is text: a test's input, not a note.
        let input =
            "write(\"a.rs\", b\"fn f() {} // TODO\\n\");\nlet s = \"x\"; /* \"FIXME\" */ // HACK\n";
        let (counts, found) = scan_in(Some(Language::Rust), input, 10);
        assert_eq!(counts, [0, 0, 1, 0], "{found:?}");

        let python = "print('TODO later')  \nx = 1  # TODO: real\ns = \"it's\" + FIXME\n";
        let (counts, _) = scan_in(Some(Language::Python), python, 10);
        assert_eq!(counts, [1, 1, 0, 0]);

        // Prose and data without comments: every marker counts.
        let (counts, _) = scan_in(Some(Language::Markdown), "- \"TODO later\" TODO\n", 10);
        assert_eq!(counts, [2, 0, 0, 0]);
    }
}
