//! Positions as editors count them — a line and a column in UTF-8, UTF-16 or UTF-32 code
//! units — and the line index that converts them to and from byte offsets of a text.
//!
//! Lines end at `\n`, `\r\n` or a lone `\r`, as LSP defines them. Positions that point past
//! the end of a line, past the last line, or into the middle of a character (half of a
//! surrogate pair, inside a multi-byte UTF-8 sequence) are clamped, never an error: the
//! column falls back to the line's end, a split character to its start.

use std::ops;
use std::sync::Arc;

use ropey::Rope;
use serde::{Deserialize, Serialize};

/// The code unit an editor counts columns in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PositionEncoding {
    /// Bytes of UTF-8.
    Utf8,
    /// UTF-16 code units: LSP's default, two for a character outside the BMP (an emoji).
    #[default]
    Utf16,
    /// Unicode scalar values.
    Utf32,
}

impl PositionEncoding {
    /// How many code units `c` takes.
    pub fn len(self, c: char) -> usize {
        match self {
            PositionEncoding::Utf8 => c.len_utf8(),
            PositionEncoding::Utf16 => c.len_utf16(),
            PositionEncoding::Utf32 => 1,
        }
    }

    /// How many code units `s` takes.
    pub fn measure(self, s: &str) -> usize {
        match self {
            PositionEncoding::Utf8 => s.len(),
            PositionEncoding::Utf16 => s.chars().map(char::len_utf16).sum(),
            PositionEncoding::Utf32 => s.chars().count(),
        }
    }
}

/// A place between two characters: a zero-based line and a column in some encoding's code
/// units.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Position {
    /// Zero-based line.
    pub line: u32,
    /// Zero-based column, in the code units of the encoding in use.
    pub character: u32,
}

impl Position {
    /// The position at `line`, `character`.
    pub fn new(line: u32, character: u32) -> Position {
        Position { line, character }
    }
}

/// A span between two positions; `end` is exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Range {
    /// Where it starts.
    pub start: Position,
    /// Where it ends (exclusive).
    pub end: Position,
}

impl Range {
    /// The range from `start` to `end`.
    pub fn new(start: Position, end: Position) -> Range {
        Range { start, end }
    }
}

/// A text with the byte offset of every line start, converting byte offsets to positions and
/// back in any [`PositionEncoding`].
#[derive(Debug, Clone)]
pub struct LineIndex {
    text: Arc<str>,
    /// Byte offset where each line starts; the first is 0.
    starts: Vec<usize>,
    /// Whether the text is all ASCII, where every encoding counts bytes.
    ascii: bool,
}

impl LineIndex {
    /// Indexes `text`.
    pub fn new(text: impl Into<Arc<str>>) -> LineIndex {
        let text = text.into();
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        let mut at = 0;
        while let Some(found) = memchr::memchr2(b'\n', b'\r', &bytes[at..]) {
            let end = at + found;
            at = if bytes[end] == b'\r' && bytes.get(end + 1) == Some(&b'\n') {
                end + 2
            } else {
                end + 1
            };
            starts.push(at);
        }
        let ascii = text.is_ascii();
        LineIndex {
            text,
            starts,
            ascii,
        }
    }

    /// The indexed text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// How many lines the text has; an empty text, or one ending in a line break, has an
    /// empty last line.
    pub fn line_count(&self) -> usize {
        self.starts.len()
    }

    /// The bytes of line `line` without its line break; `None` past the last line.
    pub fn line_span(&self, line: usize) -> Option<ops::Range<usize>> {
        let start = *self.starts.get(line)?;
        let end = match self.starts.get(line + 1) {
            Some(&next) if self.text.as_bytes()[..next].ends_with(b"\r\n") => next - 2,
            Some(&next) => next - 1,
            None => self.text.len(),
        };
        Some(start..end)
    }

    /// The byte offset of `pos`, clamped into the text: a column past the line's end is the
    /// line's end, a line past the last is the text's end, a column inside a character is
    /// that character's start.
    pub fn offset(&self, pos: Position, encoding: PositionEncoding) -> usize {
        let Some(span) = self.line_span(pos.line as usize) else {
            return self.text.len();
        };
        let want = pos.character as usize;
        if self.ascii || encoding == PositionEncoding::Utf8 {
            let mut at = span.start + want.min(span.len());
            while !self.text.is_char_boundary(at) {
                at -= 1;
            }
            return at;
        }
        let mut units = 0;
        for (i, c) in self.text[span.clone()].char_indices() {
            let next = units + encoding.len(c);
            if next > want {
                return span.start + i;
            }
            units = next;
        }
        span.end
    }

    /// The position of byte `offset`, clamped into the text and down to a character start;
    /// an offset inside a line break is the end of its line.
    pub fn position(&self, offset: usize, encoding: PositionEncoding) -> Position {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let line = self.starts.partition_point(|&start| start <= offset) - 1;
        let span = self.line_span(line).unwrap_or(offset..offset);
        let column = &self.text[span.start..offset.min(span.end)];
        let character = if self.ascii {
            column.len()
        } else {
            encoding.measure(column)
        };
        Position {
            line: saturate(line),
            character: saturate(character),
        }
    }

    /// The byte range of `range`, each end clamped like [`offset`](LineIndex::offset); a
    /// range whose end comes before its start is empty at its start.
    pub fn offsets(&self, range: Range, encoding: PositionEncoding) -> ops::Range<usize> {
        let start = self.offset(range.start, encoding);
        let end = self.offset(range.end, encoding).max(start);
        start..end
    }

    /// The range of the bytes `offsets`.
    pub fn range(&self, offsets: ops::Range<usize>, encoding: PositionEncoding) -> Range {
        Range {
            start: self.position(offsets.start, encoding),
            end: self.position(offsets.end, encoding),
        }
    }
}

/// The char index of `pos` in `rope`, clamped exactly as [`LineIndex::offset`] clamps a
/// position in a flat text. Each step is a lookup in the rope's tree, O(log n) whatever the
/// length of the line, so a keystroke in a 50 MB buffer costs what it costs in a small one.
pub fn rope_offset(rope: &Rope, pos: Position, encoding: PositionEncoding) -> usize {
    let line = pos.line as usize;
    let lines = rope.len_lines();
    if line >= lines {
        return rope.len_chars();
    }
    let start = rope.line_to_char(line);
    let mut end = if line + 1 < lines {
        rope.line_to_char(line + 1)
    } else {
        rope.len_chars()
    };
    // Every line but the last ends in a break: `\r\n` (one unit, as LSP counts it), `\n`
    // or `\r`.
    if line + 1 < lines {
        end -= if end >= start + 2 && rope.char(end - 1) == '\n' && rope.char(end - 2) == '\r' {
            2
        } else {
            1
        };
    }
    let want = pos.character as usize;
    // Ropey maps a unit inside a character to that character, which is the clamping rule.
    match encoding {
        PositionEncoding::Utf32 => (start + want).min(end),
        PositionEncoding::Utf8 => {
            let (from, to) = (rope.char_to_byte(start), rope.char_to_byte(end));
            rope.byte_to_char((from + want).min(to))
        }
        PositionEncoding::Utf16 => {
            let (from, to) = (rope.char_to_utf16_cu(start), rope.char_to_utf16_cu(end));
            rope.utf16_cu_to_char((from + want).min(to))
        }
    }
}

fn saturate(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::PositionEncoding::{Utf8, Utf16, Utf32};
    use super::*;

    fn pos(line: u32, character: u32) -> Position {
        Position::new(line, character)
    }

    /// Every character start of `text` maps to a position and back to itself, in every
    /// encoding.
    fn round_trips(text: &str) {
        let index = LineIndex::new(text);
        for encoding in [Utf8, Utf16, Utf32] {
            for (offset, _) in text.char_indices().chain([(text.len(), ' ')]) {
                let p = index.position(offset, encoding);
                let back = index.offset(p, encoding);
                // An offset between `\r` and `\n` is the line's end, the `\r`.
                let expected = if offset > 0
                    && text[..offset].ends_with('\r')
                    && text[offset..].starts_with('\n')
                {
                    offset - 1
                } else {
                    offset
                };
                assert_eq!(
                    back, expected,
                    "{text:?} {encoding:?} offset {offset} -> {p:?}"
                );
            }
        }
    }

    #[test]
    fn lines_end_at_lf_crlf_and_lone_cr() {
        let index = LineIndex::new("a\nbb\r\nccc\rd");
        assert_eq!(index.line_count(), 4);
        assert_eq!(index.line_span(0), Some(0..1));
        assert_eq!(index.line_span(1), Some(2..4));
        assert_eq!(index.line_span(2), Some(6..9));
        assert_eq!(index.line_span(3), Some(10..11));
        assert_eq!(index.line_span(4), None);
        assert_eq!(LineIndex::new("").line_count(), 1);
        assert_eq!(LineIndex::new("x\r\n").line_count(), 2);
    }

    #[test]
    fn columns_count_the_encodings_code_units() {
        // é is 2 bytes / 1 UTF-16 unit; 😀 is 4 bytes / 2 units; 中 is 3 bytes / 1 unit.
        let text = "é😀中x";
        let index = LineIndex::new(text);
        let x = text.find('x').unwrap();
        assert_eq!(index.position(x, Utf8), pos(0, 9));
        assert_eq!(index.position(x, Utf16), pos(0, 4));
        assert_eq!(index.position(x, Utf32), pos(0, 3));
        assert_eq!(index.offset(pos(0, 9), Utf8), x);
        assert_eq!(index.offset(pos(0, 4), Utf16), x);
        assert_eq!(index.offset(pos(0, 3), Utf32), x);
    }

    #[test]
    fn combining_marks_are_characters_of_their_own() {
        // "e" + U+0301 COMBINING ACUTE ACCENT: two scalar values, two UTF-16 units, 3 bytes.
        let text = "e\u{301}!";
        let index = LineIndex::new(text);
        assert_eq!(index.position(3, Utf16), pos(0, 2));
        assert_eq!(index.position(3, Utf8), pos(0, 3));
        assert_eq!(index.offset(pos(0, 1), Utf16), 1);
    }

    #[test]
    fn positions_out_of_bounds_are_clamped() {
        let text = "ab\r\n😀\nlast";
        let index = LineIndex::new(text);
        // Past the end of a line: the line's end, before its break.
        assert_eq!(index.offset(pos(0, 99), Utf16), 2);
        // Inside a surrogate pair or a UTF-8 sequence: the character's start.
        assert_eq!(index.offset(pos(1, 1), Utf16), 4);
        assert_eq!(index.offset(pos(1, 3), Utf8), 4);
        // Past the last line: the end of the text.
        assert_eq!(index.offset(pos(9, 0), Utf16), text.len());
        // Offsets inside a character or a CRLF.
        assert_eq!(index.position(5, Utf16), pos(1, 0));
        assert_eq!(index.position(3, Utf16), pos(0, 2));
        assert_eq!(index.position(999, Utf16), pos(2, 4));
        // A reversed range is empty at its start.
        assert_eq!(index.offsets(Range::new(pos(0, 2), pos(0, 0)), Utf16), 2..2);
    }

    #[test]
    fn offsets_and_positions_round_trip() {
        for text in [
            "",
            "plain ascii\nlines\n",
            "crlf\r\nlines\r\n\r\n",
            "lone\rcr\r",
            "emoji 😀👍🏽 and CJK 漢字かな\n第二行\r\n",
            "combining e\u{301} a\u{308}\u{323}\n",
            "mixed\r\n😀\r中\ne\u{301}",
        ] {
            round_trips(text);
        }
    }
}
