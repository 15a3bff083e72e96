//! Counts a file's code, comment and blank lines the way tokei counts them, so that
//! `switchyard analyze` agrees with tokei line for line.
//!
//! The model is tokei's (v15) line classifier: a line is blank when it holds only
//! whitespace, a comment when it holds nothing but comment, code otherwise. Lines with none
//! of a language's "important" tokens (quote and block comment openers) are classified on
//! sight; the others are scanned byte by byte through plain, string and comment states,
//! with nested block comments where the language nests them. tokei's quirks are kept on
//! purpose, since the goal is its numbers: a backslash escapes the next quote even outside
//! strings, blank lines inside block comments are comments, docstrings are code, and a
//! line that closes a block comment is a comment whatever follows it.
//!
//! Embedded languages are split off as tokei does: runs of Rust `///` and `//!` doc
//! comments are Markdown, fenced Markdown code blocks naming a language are that language,
//! and HTML `<script>`, `<style>` and `<template>` bodies are JavaScript, CSS and HTML (or
//! what their `type`/`lang` attribute names). Those lines are not in the host file's
//! [`Counts`] (tokei's per-language rows leave them out too); [`count_with_embedded`]
//! reports them separately.

use std::borrow::Cow;
use std::ops::{Add, AddAssign};
use std::sync::LazyLock;

use memchr::{memchr, memchr2, memmem};
use serde::Deserialize;

use super::languages::{
    Embedding, Language, LanguageDef, lookup_exact_name, lookup_mime, lookup_name,
};

/// Code, comment and blank line counts of a file or of many files.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Counts {
    /// Lines with anything besides comments and whitespace.
    pub code: u64,
    /// Lines holding nothing but comments (and, in prose formats, every non-blank line).
    pub comments: u64,
    /// Lines holding nothing but whitespace.
    pub blanks: u64,
}

impl Counts {
    /// All lines: code, comments and blanks.
    pub fn lines(&self) -> u64 {
        self.code + self.comments + self.blanks
    }
}

impl AddAssign for Counts {
    fn add_assign(&mut self, other: Counts) {
        self.code += other.code;
        self.comments += other.comments;
        self.blanks += other.blanks;
    }
}

impl Add for Counts {
    type Output = Counts;

    fn add(mut self, other: Counts) -> Counts {
        self += other;
        self
    }
}

/// Counts the lines of `bytes`, a file in `lang`, as tokei does.
///
/// Lines of embedded blocks (see the module docs) are left out, as in tokei's per-language
/// totals. A leading UTF-8 byte-order mark is ignored and UTF-16 (with a byte-order mark)
/// is decoded first, as tokei does; anything else is read as bytes, so invalid UTF-8 is
/// fine.
pub fn count(lang: Language, bytes: &[u8]) -> Counts {
    let text = decode(bytes);
    count_text(lang, &text, None)
}

/// Like [`count`], and also calls `embedded(language, counts)` once for every embedded
/// block, with the block's lines including everything embedded within it (tokei's
/// "(Total)" view of a child language).
///
/// Adding the host's counts and every embedded block's gives the file's total lines as
/// tokei's "Total" row counts them.
pub fn count_with_embedded(
    lang: Language,
    bytes: &[u8],
    embedded: &mut dyn FnMut(Language, Counts),
) -> Counts {
    let text = decode(bytes);
    count_text(lang, &text, Some(embedded))
}

/// Counts decoded text: a Jupyter notebook cell by cell, anything else with the scanner
/// (tokei's `parse_from_slice`).
fn count_text(
    lang: Language,
    text: &[u8],
    embedded: Option<&mut dyn FnMut(Language, Counts)>,
) -> Counts {
    if lang == Language::Jupyter {
        return jupyter(text, embedded).unwrap_or_default();
    }
    Scanner::new(lang, text, embedded).run()
}

/// A notebook as tokei reads one: any other shape (a `raw` cell, a `source` that is one
/// string, missing metadata) makes it a file of no lines, as in tokei.
#[derive(Deserialize)]
struct Notebook {
    cells: Vec<Cell>,
    metadata: NotebookMetadata,
}

#[derive(Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum CellType {
    Markdown,
    Code,
}

#[derive(Deserialize)]
struct Cell {
    cell_type: CellType,
    source: Vec<String>,
}

#[derive(Deserialize)]
struct NotebookMetadata {
    kernelspec: serde_json::Value,
    language_info: serde_json::Value,
}

/// tokei's `parse_jupyter`: the notebook's own lines are its cells' own lines; each cell
/// is also a block in its language (Markdown, or the kernel's language, else Python), and
/// what a cell embeds is reported again on its own, as tokei's blobs hold it twice.
fn jupyter(text: &[u8], mut embedded: Option<&mut dyn FnMut(Language, Counts)>) -> Option<Counts> {
    let notebook: Notebook = serde_json::from_slice(text).ok()?;
    let kernel = notebook
        .metadata
        .kernelspec
        .get("language")
        .and_then(serde_json::Value::as_str)
        .and_then(|name| lookup_name(name.as_bytes()))
        .or_else(|| {
            notebook
                .metadata
                .language_info
                .get("file_extension")
                .and_then(serde_json::Value::as_str)
                .and_then(Language::from_extension)
        })
        .unwrap_or(Language::Python);
    let mut total = Counts::default();
    for cell in &notebook.cells {
        let language = match cell.cell_type {
            CellType::Markdown => Language::Markdown,
            CellType::Code => kernel,
        };
        let source = cell.source.concat();
        let mut nested: Vec<(Language, Counts)> = Vec::new();
        let own = match embedded {
            Some(_) => {
                let mut add = |child: Language, counts: Counts| nested.push((child, counts));
                Scanner::new(language, source.as_bytes(), Some(&mut add)).run()
            }
            None => Scanner::new(language, source.as_bytes(), None).run(),
        };
        total += own;
        if let Some(embedded) = embedded.as_mut() {
            let inner = nested
                .iter()
                .fold(Counts::default(), |sum, (_, c)| sum + *c);
            embedded(language, own + inner);
            for (child, counts) in nested {
                embedded(child, counts);
            }
        }
    }
    Some(total)
}

/// The language a Lingua Franca file's `target` declaration names (tokei's
/// `find_lf_target_language`); its `{= … =}` blocks are in that language.
fn lingua_franca_target(text: &[u8]) -> Option<Language> {
    static TARGET: LazyLock<Option<regex::bytes::Regex>> =
        LazyLock::new(|| regex::bytes::Regex::new(r"(?m)\btarget\s+(\w+)\s*($|;|\{)").ok());
    let name = TARGET.as_ref()?.captures(text)?.get(1)?.as_bytes();
    if name == b"CCpp" {
        return Some(Language::C);
    }
    lookup_exact_name(name)
}

/// Strips a UTF-8 byte-order mark and decodes UTF-16 with one, like the decoding reader
/// tokei reads files through.
fn decode(bytes: &[u8]) -> Cow<'_, [u8]> {
    if let Some(rest) = bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
        return Cow::Borrowed(rest);
    }
    let from_units: fn([u8; 2]) -> u16 = if bytes.starts_with(&[0xFF, 0xFE]) {
        u16::from_le_bytes
    } else if bytes.starts_with(&[0xFE, 0xFF]) {
        u16::from_be_bytes
    } else {
        return Cow::Borrowed(bytes);
    };
    let body = &bytes[2..];
    let units = body
        .chunks_exact(2)
        .map(|pair| from_units([pair[0], pair[1]]));
    let mut text = String::with_capacity(body.len());
    text.extend(char::decode_utf16(units).map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER)));
    if body.len() % 2 == 1 {
        text.push(char::REPLACEMENT_CHARACTER);
    }
    Cow::Owned(text.into_bytes())
}

/// tokei's notion of whitespace: ASCII space and `\t` `\n` `\v` `\f` `\r`.
fn is_space(byte: u8) -> bool {
    byte == b' ' || (b'\t'..=b'\r').contains(&byte)
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| !is_space(b))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn trim(bytes: &[u8]) -> &[u8] {
    let bytes = trim_start(bytes);
    let end = bytes
        .iter()
        .rposition(|&b| !is_space(b))
        .map_or(0, |i| i + 1);
    &bytes[..end]
}

/// tokei's trim of an HTML tag body: drops the first byte that is a newline or not
/// whitespace (and the whitespace before it), and the last newline (with a `\r` before it).
fn trim_first_and_last_line(bytes: &[u8]) -> &[u8] {
    let Some(last) = bytes.len().checked_sub(1) else {
        return bytes;
    };
    let edge = |b: &u8| *b == b'\n' || !is_space(*b);
    let start = bytes.iter().position(edge).map_or(0, |i| (i + 1).min(last));
    let end = bytes.iter().rposition(edge).map_or(last, |i| {
        if i > 0 && bytes[i - 1] == b'\r' && bytes[i] == b'\n' {
            i - 1
        } else {
            i
        }
    });
    bytes.get(start..=end).unwrap_or(&[])
}

/// `bytes.starts_with(token)` for the short tokens of the syntax table, without the call
/// to `memcmp` that the slice comparison makes.
#[inline]
fn has_prefix(bytes: &[u8], token: &[u8]) -> bool {
    bytes.len() >= token.len() && bytes.iter().zip(token).all(|(a, b)| a == b)
}

fn starts_with_any(bytes: &[u8], tokens: &[&[u8]]) -> bool {
    tokens.iter().any(|t| has_prefix(bytes, t))
}

/// Whether one of tokei's "important syntax" tokens starts `window`: a quote, doc quote or
/// block comment opener, or a token the language lists (tokei's `important_syntax`).
fn important_at(def: &LanguageDef, window: &[u8]) -> bool {
    let opens = |pairs: &[(&[u8], &[u8])]| pairs.iter().any(|(open, _)| has_prefix(window, open));
    opens(def.quotes)
        || opens(def.doc_quotes)
        || opens(def.block_comments)
        || opens(def.nested_comments)
        || starts_with_any(window, def.important)
}

/// One UTF-8 encoded char at the start of `bytes`, with its length.
fn decode_char(bytes: &[u8]) -> Option<(char, usize)> {
    let len = match *bytes.first()? {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return None,
    };
    let c = std::str::from_utf8(bytes.get(..len)?)
        .ok()?
        .chars()
        .next()?;
    Some((c, len))
}

/// An embedded block found while scanning a line.
struct Embedded {
    /// Where counting resumes, possibly mid-line.
    resume: usize,
    /// What the line that opened the block counts for in the host.
    opener: Opener,
}

enum Opener {
    /// Rust doc comments: the line is part of the block.
    Nothing,
    /// A code fence: the fences are comments.
    Fences { closed: bool },
    /// An HTML tag: the line is code.
    Code,
}

/// A span `start..end` of the text.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
}

/// Matches of the regexes tokei runs on a line of an embedding language.
#[derive(Default)]
struct LineMatches {
    /// tokei's "```\S+\s": a code fence with an info string.
    fence: Option<Span>,
    /// `<script(?:.*type="(.*)")?.*?>`, `<style(?:.*lang="(.*)")?.*?>`,
    /// `<template(?:.*lang="(.*)")?.*?>`: the whole tag and the attribute's value.
    script: Option<(Span, Option<Span>)>,
    style: Option<(Span, Option<Span>)>,
    template: Option<(Span, Option<Span>)>,
}

impl LineMatches {
    fn find(embedding: Embedding, text: &[u8], start: usize, end: usize) -> LineMatches {
        let line = &text[start..end];
        let shift = |span: Span| Span {
            start: start + span.start,
            end: start + span.end,
        };
        let tag = |name: &[u8], attribute: &[u8]| {
            find_tag(line, name, attribute).map(|(tag, value)| (shift(tag), value.map(shift)))
        };
        match embedding {
            Embedding::CodeFences => LineMatches {
                fence: find_fence(line).map(shift),
                ..LineMatches::default()
            },
            Embedding::HtmlTags => LineMatches {
                script: tag(b"<script", b"type=\""),
                style: tag(b"<style", b"lang=\""),
                template: tag(b"<template", b"lang=\""),
                ..LineMatches::default()
            },
            Embedding::None | Embedding::RustDoc | Embedding::LinguaFranca => {
                LineMatches::default()
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.fence.is_none()
            && self.script.is_none()
            && self.style.is_none()
            && self.template.is_none()
    }
}

/// The leftmost match of "```\S+\s" in `line` (Unicode classes, as the regex).
fn find_fence(line: &[u8]) -> Option<Span> {
    let mut from = 0;
    while let Some(offset) = memmem::find(&line[from..], b"```") {
        let start = from + offset;
        let mut at = start + 3;
        let mut info_chars = 0;
        while let Some((c, len)) = decode_char(&line[at..]) {
            if c.is_whitespace() {
                if info_chars > 0 {
                    return Some(Span {
                        start,
                        end: at + len,
                    });
                }
                break;
            }
            info_chars += 1;
            at += len;
        }
        from = start + 1;
    }
    None
}

/// The match of `<name(?:.*attribute(.*)")?.*?>` in `line`, with the capture group, as
/// the regex crate's leftmost-first search finds them. `.` is any UTF-8 encoded char but
/// a newline, so a match cannot reach past a newline or an invalid byte.
fn find_tag(line: &[u8], name: &[u8], attribute: &[u8]) -> Option<(Span, Option<Span>)> {
    memmem::find_iter(line, name)
        .find_map(|start| tag_at(line, start, start + name.len(), attribute))
}

fn tag_at(
    line: &[u8],
    start: usize,
    after: usize,
    attribute: &[u8],
) -> Option<(Span, Option<Span>)> {
    let newline = memchr(b'\n', &line[after..]).map_or(line.len(), |i| after + i);
    let limit = match std::str::from_utf8(&line[after..newline]) {
        Ok(_) => newline,
        Err(error) => after + error.valid_up_to(),
    };
    let rest = &line[after..limit];
    let first_gt = after + memchr(b'>', rest)?;
    let last_gt = after + memchr::memrchr(b'>', rest)?;
    // The greedy group wants the last `"` that still has a `>` after it, behind the last
    // attribute that starts before that quote.
    let value = memchr::memrchr(b'"', &line[after..last_gt]).and_then(|q| {
        let quote = after + q;
        // An attribute found before the quote ends at or before it, as the group needs.
        memmem::rfind(&line[after..quote], attribute).map(|a| Span {
            start: after + a + attribute.len(),
            end: quote,
        })
    });
    let tag_end = match value {
        Some(value) => value.end + 1 + memchr(b'>', &line[value.end + 1..limit])? + 1,
        None => first_gt + 1,
    };
    Some((
        Span {
            start,
            end: tag_end,
        },
        value,
    ))
}

/// The line counter for one file (or one embedded block): tokei's `SyntaxCounter`.
struct Scanner<'t, 's> {
    def: &'static LanguageDef,
    text: &'t [u8],
    embedded: Option<&'s mut dyn FnMut(Language, Counts)>,
    /// The closing token of the string the scan is in.
    quote: Option<&'static [u8]>,
    /// The last string opened was verbatim: backslashes escape nothing. tokei keeps this
    /// after the string ends, until the next string opens.
    quote_is_verbatim: bool,
    /// The closing tokens of the block comments the scan is in, innermost last.
    comments: Vec<&'static [u8]>,
    /// The language of `{= … =}` blocks (Lingua Franca only).
    lf_target: Language,
}

impl<'t, 's> Scanner<'t, 's> {
    fn new(
        lang: Language,
        text: &'t [u8],
        embedded: Option<&'s mut dyn FnMut(Language, Counts)>,
    ) -> Self {
        let def = lang.def();
        let lf_target = match def.embedding {
            Embedding::LinguaFranca => lingua_franca_target(text).unwrap_or(lang),
            _ => lang,
        };
        Scanner {
            def,
            text,
            embedded,
            quote: None,
            quote_is_verbatim: false,
            comments: Vec::new(),
            lf_target,
        }
    }

    fn is_plain(&self) -> bool {
        self.quote.is_none() && self.comments.is_empty()
    }

    fn run(mut self) -> Counts {
        let text = self.text;
        let def = self.def;
        let mut counts = Counts::default();
        let mut pos = 0;
        let mut next_important = self.find_important(0);
        while pos < text.len() {
            let end = memchr(b'\n', &text[pos..]).map_or(text.len(), |i| pos + i + 1);
            let line = trim(&text[pos..end]);
            if self.is_plain() {
                if line.is_empty() {
                    counts.blanks += 1;
                    pos = end;
                    continue;
                }
                if next_important < pos {
                    next_important = self.find_important(pos);
                }
                if next_important < end && def.spaced_tokens && !self.has_important(line) {
                    // The token matched in whitespace tokei trims off: skip the line.
                    next_important = end;
                }
                if next_important >= end {
                    // FORTRAN's comments start in the first column.
                    let head = if def.fortran { &text[pos..end] } else { line };
                    if def.literate || starts_with_any(head, def.line_comments) {
                        counts.comments += 1;
                    } else {
                        counts.code += 1;
                    }
                    pos = end;
                    continue;
                }
            }
            let started_in_comment = !self.comments.is_empty();
            if let Some(block) = self.scan_line(pos, end) {
                match block.opener {
                    Opener::Nothing => {}
                    Opener::Fences { closed } => counts.comments += if closed { 2 } else { 1 },
                    Opener::Code => counts.code += 1,
                }
                pos = block.resume;
                continue;
            }
            if def.literate || self.line_is_comment(line, started_in_comment) {
                counts.comments += 1;
            } else {
                counts.code += 1;
            }
            pos = end;
        }
        counts
    }

    /// The position of the next important token at or after `from`, or the text's length.
    fn find_important(&self, from: usize) -> usize {
        let text = self.text;
        let def = self.def;
        let mut at = from;
        while let Some(offset) = def.important_first.find(&text[at..]) {
            let candidate = at + offset;
            if important_at(def, &text[candidate..]) {
                return candidate;
            }
            at = candidate + 1;
        }
        text.len()
    }

    /// Whether an important token lies wholly within `line` (tokei's `is_match` on the
    /// trimmed line).
    fn has_important(&self, line: &[u8]) -> bool {
        let mut at = 0;
        while let Some(offset) = self.def.important_first.find(&line[at..]) {
            if important_at(self.def, &line[at + offset..]) {
                return true;
            }
            at += offset + 1;
        }
        false
    }

    /// The next position in `at..end` where something can happen in the current state.
    fn next_candidate(&self, at: usize, end: usize) -> Option<usize> {
        let haystack = &self.text[at..end];
        let offset = if let Some(close) = self.quote {
            if self.quote_is_verbatim {
                memchr(close[0], haystack)
            } else {
                memchr2(close[0], b'\\', haystack)
            }
        } else if !self.comments.is_empty() {
            self.def.comment_first.find(haystack)
        } else {
            self.def.plain_first.find(haystack)
        };
        offset.map(|o| at + o)
    }

    /// Scans the line `start..end` through strings and comments (tokei's
    /// `perform_multi_line_analysis`), stopping early at an embedded block.
    fn scan_line(&mut self, start: usize, end: usize) -> Option<Embedded> {
        let text = self.text;
        let def = self.def;
        let matches = LineMatches::find(def.embedding, text, start, end);
        // Tag and fence matches start at arbitrary bytes: visit every byte of such lines.
        let every_byte = !matches.is_empty();
        let mut i = start;
        while i < end {
            if !every_byte {
                match self.next_candidate(i, end) {
                    Some(next) => i = next,
                    None => break,
                }
            }
            let window = &text[i..];
            if let Some(close) = self.quote.filter(|close| has_prefix(window, close)) {
                self.quote = None;
                i += close.len();
                continue;
            }
            if !self.quote_is_verbatim
                && window[0] == b'\\'
                && (window.get(1) == Some(&b'\\')
                    || def
                        .quotes
                        .iter()
                        .any(|(open, _)| has_prefix(&window[1..], open)))
            {
                i += 2;
                continue;
            }
            if let Some(close) = self
                .comments
                .last()
                .copied()
                .filter(|close| has_prefix(window, close))
            {
                self.comments.pop();
                i += close.len();
                continue;
            }
            if self.quote.is_some() {
                i += 1;
                continue;
            }
            if self.comments.is_empty() {
                if let Some(block) = self.embedded_at(i, end, &matches) {
                    return Some(block);
                }
                if let Some(&(open, close)) =
                    def.doc_quotes.iter().find(|(o, _)| has_prefix(window, o))
                {
                    self.quote = Some(close);
                    self.quote_is_verbatim = false;
                    i += open.len();
                    continue;
                }
                if let Some(&(open, close)) = def
                    .verbatim_quotes
                    .iter()
                    .find(|(o, _)| has_prefix(window, o))
                {
                    self.quote = Some(close);
                    self.quote_is_verbatim = true;
                    i += open.len();
                    continue;
                }
                if let Some(&(open, close)) = def.quotes.iter().find(|(o, _)| has_prefix(window, o))
                {
                    self.quote = Some(close);
                    self.quote_is_verbatim = false;
                    i += open.len();
                    continue;
                }
            }
            if let Some(&(open, close)) = def
                .block_comments
                .iter()
                .chain(def.nested_comments)
                .find(|(o, _)| has_prefix(window, o))
            {
                if self.comments.is_empty()
                    || def.nested
                    || def.nested_comments.contains(&(open, close))
                {
                    self.comments.push(close);
                }
                i += open.len();
                continue;
            }
            if self.comments.is_empty() && starts_with_any(window, def.line_comments) {
                return None;
            }
            i += 1;
        }
        // tokei also tries the trailing whitespace of the line: a doc comment on the next
        // line opens there, and the current line is then counted with neither.
        if def.embedding == Embedding::RustDoc && self.is_plain() {
            let line = &text[start..end];
            let trailing = line.iter().rev().take_while(|&&b| is_space(b)).count();
            if trailing > 0 {
                let from = end - trailing;
                if let Some(syntax) = doc_comment_syntax(&text[from..]) {
                    return Some(self.rust_doc(from, syntax));
                }
            }
        }
        None
    }

    /// The embedded block opening at `i` in plain state, if any (tokei's `parse_context`).
    fn embedded_at(&mut self, i: usize, end: usize, matches: &LineMatches) -> Option<Embedded> {
        match self.def.embedding {
            Embedding::None => None,
            Embedding::RustDoc => {
                let syntax = doc_comment_syntax(&self.text[i..])?;
                Some(self.rust_doc(i, syntax))
            }
            Embedding::CodeFences => {
                let fence = matches.fence.filter(|f| f.start == i && f.end <= end)?;
                self.code_fence(fence)
            }
            Embedding::HtmlTags => {
                if let Some(body) = tag_body_at(matches.script, i) {
                    self.html_tag(body, b"</script>", lookup_mime, Language::JavaScript)
                } else if let Some(body) = tag_body_at(matches.style, i) {
                    self.html_tag(body, b"</style>", lookup_name, Language::Css)
                } else if let Some(body) = tag_body_at(matches.template, i) {
                    self.html_tag(body, b"</template>", lookup_name, Language::Html)
                } else {
                    None
                }
            }
            Embedding::LinguaFranca => {
                has_prefix(&self.text[i..end], b"{=").then(|| self.lingua_franca_block(i))
            }
        }
    }

    /// A `{= … =}` block opening at `start`: counted in the target language up to `=}`
    /// (or the end), and nothing for the host; counting resumes at the `=}`.
    fn lingua_franca_block(&mut self, start: usize) -> Embedded {
        let text = self.text;
        let code_start = start + 2;
        let code_end =
            memmem::find(&text[code_start..], b"=}").map_or(text.len(), |i| code_start + i);
        if self.embedded.is_some() {
            let block = trim_first_and_last_line(&text[code_start..code_end]);
            self.report(self.lf_target, block);
        }
        Embedded {
            resume: code_end,
            opener: Opener::Nothing,
        }
    }

    /// A run of Rust doc comments starting at `start`: every following line whose rest
    /// (after whitespace, blank lines included) starts with the same doc comment token.
    fn rust_doc(&mut self, start: usize, syntax: &'static [u8]) -> Embedded {
        let text = self.text;
        let mut markdown = self.embedded.as_ref().map(|_| Vec::new());
        let mut line_start = start;
        // The first non-whitespace byte at or after the last line looked at: blank lines
        // share it, so long blank runs are skipped once.
        let mut next_text = start;
        let resume = loop {
            if line_start >= text.len() {
                break text.len();
            }
            let line_end =
                memchr(b'\n', &text[line_start..]).map_or(text.len(), |i| line_start + i + 1);
            if next_text <= line_start {
                next_text = text.len() - trim_start(&text[line_start..]).len();
            }
            if !has_prefix(&text[next_text..], syntax) {
                break line_start;
            }
            if let Some(markdown) = markdown.as_mut() {
                let line = trim_start(&text[line_start..line_end]);
                markdown.extend_from_slice(&line[line.len().min(3)..]);
            }
            line_start = line_end;
        };
        if let Some(markdown) = markdown {
            self.report(Language::Markdown, trim(&markdown));
        }
        Embedded {
            resume,
            opener: Opener::Nothing,
        }
    }

    /// A fenced code block opened by `fence` ("```rust\n"), if its info string names a
    /// language tokei knows.
    fn code_fence(&mut self, fence: Span) -> Option<Embedded> {
        let text = self.text;
        let info = trim(&text[fence.start..fence.end])
            .get(3..)
            .unwrap_or_default();
        let child = info.split(|&b| b == b',').find_map(lookup_name)?;
        let code_start = fence.end;
        let closing = memmem::find(&text[code_start..], b"```").map(|i| code_start + i);
        let (code_end, resume) = match closing {
            Some(close) => {
                let after = close + 3;
                let space = decode_char(&text[after..])
                    .filter(|(c, _)| c.is_whitespace())
                    .map_or(0, |(_, len)| len);
                (close, after + space)
            }
            None => (text.len(), text.len()),
        };
        if self.embedded.is_some() {
            self.report(child, trim(&text[code_start..code_end]));
        }
        Some(Embedded {
            resume,
            opener: Opener::Fences {
                closed: closing.is_some(),
            },
        })
    }

    /// An HTML `<script>`, `<style>` or `<template>` body starting at `body.0`, closed by
    /// `closing_tag`, in the language its attribute (`body.1`) names.
    fn html_tag(
        &mut self,
        body: (usize, Option<Span>),
        closing_tag: &[u8],
        lookup: fn(&[u8]) -> Option<Language>,
        default: Language,
    ) -> Option<Embedded> {
        let text = self.text;
        let (code_start, attribute) = body;
        let code_end = code_start + memmem::find(&text[code_start..], closing_tag)?;
        let contents = &text[code_start..code_end];
        if trim(contents).is_empty() {
            return None;
        }
        if self.embedded.is_some() {
            let child = attribute
                .and_then(|value| lookup(trim(&text[value.start..value.end])))
                .unwrap_or(default);
            self.report(child, trim_first_and_last_line(contents));
        }
        Some(Embedded {
            resume: code_end,
            opener: Opener::Code,
        })
    }

    /// Counts an embedded block with everything embedded in it and hands it to the caller.
    fn report(&mut self, language: Language, block: &[u8]) {
        let Some(embedded) = self.embedded.as_mut() else {
            return;
        };
        let mut nested = Counts::default();
        let mut add = |_: Language, counts: Counts| nested += counts;
        let own = count_text(language, block, Some(&mut add));
        embedded(language, own + nested);
    }

    /// Whether a scanned line is a comment line (tokei's `line_is_comment`, with doc
    /// strings counted as code, tokei's default). `line` is trimmed.
    fn line_is_comment(&self, line: &[u8], started_in_comment: bool) -> bool {
        let def = self.def;
        if self.quote.is_some() {
            return false;
        }
        if started_in_comment
            && def
                .doc_quotes
                .iter()
                .any(|(_, close)| memmem::find(line, close).is_some())
        {
            return true;
        }
        let mut block_comments = def.block_comments.iter().chain(def.nested_comments);
        if starts_with_any(line, def.line_comments)
            || block_comments
                .clone()
                .any(|(open, close)| has_prefix(line, open) && line.ends_with(close))
        {
            return true;
        }
        if started_in_comment {
            return true;
        }
        let Some(&innermost) = self.comments.last() else {
            return false;
        };
        block_comments.any(|(open, close)| *close == innermost && has_prefix(line, open))
    }
}

/// The doc comment token `text` starts with after whitespace, if any.
fn doc_comment_syntax(text: &[u8]) -> Option<&'static [u8]> {
    let text = trim_start(text);
    if text.starts_with(b"///") {
        Some(b"///")
    } else if text.starts_with(b"//!") {
        Some(b"//!")
    } else {
        None
    }
}

/// Where a tag's body starts if its match (or, as tokei's lookup allows, its attribute
/// value) starts at `i`, and the attribute value that names the body's language.
fn tag_body_at(tag: Option<(Span, Option<Span>)>, i: usize) -> Option<(usize, Option<Span>)> {
    let (whole, value) = tag?;
    if whole.start == i {
        Some((whole.end, value))
    } else {
        value.filter(|v| v.start == i).map(|v| (v.end, None))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Language::*;

    type Expected = (u64, u64, u64);

    fn counts((code, comments, blanks): Expected) -> Counts {
        Counts {
            code,
            comments,
            blanks,
        }
    }

    /// Each snippet was counted by tokei 15 (`tokei --output json`) for these numbers.
    #[test]
    fn counts_like_tokei() {
        let cases: &[(&str, Language, &[u8], Expected)] = &[
            // what, language, source, (code, comments, blanks) as tokei 15 counts them
            ("empty file", Rust, b"", (0, 0, 0)),
            ("only blank lines", Rust, b"\n  \n\t\n", (0, 0, 3)),
            ("code and line comment", Rust, b"fn main() {}\n// comment\n    // indented comment\nlet x = 1; // trailing\n", (2, 2, 0)),
            ("no trailing newline", Rust, b"fn a() {}\n\n// last line", (1, 1, 1)),
            ("crlf line endings", Rust, b"fn a() {\r\n\r\n    // c\r\n    let s = \"x\";\r\n}\r\n", (3, 1, 1)),
            ("nested block comments", Rust, b"/* outer /* inner */ still outer */\nfn x() {}\n/* /* */\nstill a comment\n*/\nfn y() {}\n", (2, 4, 0)),
            ("comment tokens in strings", Rust, b"let s = \"/* not a comment\";\nlet t = \"// nor this\";\nlet u = 1;\n", (3, 0, 0)),
            ("raw strings", Rust, b"let r = r#\"a \"quote\" // and /* \"#;\nlet y = 2;\nlet z = r##\"\n// inside\n\"##;\n", (5, 0, 0)),
            ("multi line string", Rust, b"let s = \"one\n// inside the string\n\nend\";\nlet t = 1;\n", (5, 0, 0)),
            ("escaped quotes", Rust, b"let s = \"a \\\" /* b\";\nlet t = '\\\\';\nlet u = 1;\n", (3, 0, 0)),
            ("doc comments are markdown", Rust, b"//! Crate docs.\n//!\n//! More.\n\n/// Item docs.\n/// ```\n/// let x = 1;\n/// ```\nfn f() {}\n", (1, 0, 1)),
            ("line before doc comment vanishes", Rust, b"const A: &str = \"a\";\n/// Docs.\nfn f() {}\n", (1, 0, 0)),
            ("block comment then code", Rust, b"/* c */ let x = 1;\nlet y = 2; /* c */\n/* start\n end */ let z = 3;\n", (2, 2, 0)),
            ("blank line inside block comment", Rust, b"/*\n\n*/\nfn x() {}\n", (1, 3, 0)),
            ("char quote opens string", Rust, b"let c = '\"';\nlet d = 1; // comment\n\"\n", (3, 0, 0)),
            ("c block comments", C, b"#include <stdio.h>\n/* block\n * comment */\nint main(void) { return 0; } // tail\n\n", (2, 2, 1)),
            ("c comment not nested", C, b"/* a /* b */\nint x;\n", (1, 1, 0)),
            ("cpp raw string", Cpp, b"auto s = R\"(/* not */ \"quoted)\";\nint x;\n// c\n", (2, 1, 0)),
            ("python docstrings are code", Python, b"def f():\n    \"\"\"Doc.\n\n    More.\n    \"\"\"\n    # comment\n    return 1\n", (6, 1, 0)),
            ("python hash in string", Python, b"s = 'a # not'\n# real\nt = \"# no\"  # yes\n", (2, 1, 0)),
            ("js template literal", JavaScript, b"const s = `line\n// inside\n`;\n// c\n/* b */\n", (3, 2, 0)),
            ("ts code", TypeScript, b"// c\nlet x: number = 1;\n/**\n * doc\n */\nexport {};\n", (2, 4, 0)),
            ("go backticks are not strings", Go, b"package main\n// c\nvar s = `raw\n// no`\n", (2, 2, 0)),
            ("shell script", Sh, b"#!/bin/sh\necho \"# not comment\"\n# comment\n\n", (1, 2, 1)),
            ("lua block comment", Lua, b"--[[ block\ncomment ]]\nlocal x = 1 -- tail\n-- line\n", (1, 3, 0)),
            ("markdown prose is comment", Markdown, b"# Title\n\nSome text.\n- item\n", (0, 3, 1)),
            ("markdown fences", Markdown, b"# Title\n\n```rust\nfn main() {}\n// c\n```\n\n```\nplain fence\n```\n\n```sh\nls\n```\n", (0, 9, 3)),
            ("markdown unclosed fence", Markdown, b"Text\n```toml\na = 1\n", (0, 2, 0)),
            ("toml multiline string", Toml, b"a = \"\"\"\nmulti # not a comment\n\"\"\"\n# c\n[t]\n", (4, 1, 0)),
            ("yaml quotes", Yaml, b"# c\nkey: 'v # x'\n\n", (1, 1, 1)),
            ("json has no comments", Json, b"{\n  \"a\": \"// x\"\n\n}\n", (3, 0, 1)),
            ("html with script and style", Html, b"<html>\n<!-- c -->\n<script>\nvar x = 1;\n// c\n</script>\n<style>\nbody {}\n</style>\n</html>\n", (6, 1, 0)),
            ("css comments", Css, b"/* c */\nbody { color: red; }\n\n", (1, 1, 1)),
            ("java block comment", Java, b"/**\n * Doc.\n */\nclass A { String s = \"/*\"; }\n", (1, 3, 0)),
            ("kotlin nested comments", Kotlin, b"/* a /* b */ c */\nval x = 1\n", (1, 1, 0)),
            ("haskell nested comments", Haskell, b"{- a {- b -} c -}\nmain = pure ()\n-- c\n", (1, 2, 0)),
            ("sql comments", Sql, b"-- c\nSELECT '--' FROM t; /* x */\n", (1, 1, 0)),
            ("invalid utf8", Rust, b"fn a() {}\n\xff\xfe // x\n\"\xc3(\n\"", (4, 0, 0)),
            ("utf8 bom", Rust, b"\xef\xbb\xbf// c\nfn x() {}\n", (1, 1, 0)),
            ("utf16 bom", Rust, b"\xff\xfe/\x00/\x00 \x00c\x00\n\x00f\x00n\x00 \x00x\x00(\x00)\x00 \x00{\x00}\x00\n\x00", (1, 1, 0)),
            ("plain text", Text, b"hello\n\nworld\n", (0, 2, 1)),
            ("makefile like", Makefile, b"# c\nall:\n\techo hi\n", (2, 1, 0)),
        ];
        let wrong: Vec<String> = cases
            .iter()
            .filter_map(|&(what, lang, source, expected)| {
                let got = count(lang, source);
                (got != counts(expected))
                    .then(|| format!("{what}: got {got:?}, tokei says {expected:?}"))
            })
            .collect();
        assert!(
            wrong.is_empty(),
            "{} of {} cases differ:\n{}",
            wrong.len(),
            cases.len(),
            wrong.join("\n")
        );
    }

    /// Embedded blocks, with everything nested in them, per language as tokei's children.
    #[test]
    fn reports_embedded_blocks_like_tokei() {
        type Case = (
            &'static str,
            Language,
            &'static [u8],
            &'static [(Language, Expected)],
        );
        let cases: &[Case] = &[
            ("doc comments are markdown", Rust, b"//! Crate docs.\n//!\n//! More.\n\n/// Item docs.\n/// ```\n/// let x = 1;\n/// ```\nfn f() {}\n", &[(Markdown, (0, 6, 1))]),
            ("line before doc comment vanishes", Rust, b"const A: &str = \"a\";\n/// Docs.\nfn f() {}\n", &[(Markdown, (0, 1, 0))]),
            ("markdown fences", Markdown, b"# Title\n\n```rust\nfn main() {}\n// c\n```\n\n```\nplain fence\n```\n\n```sh\nls\n```\n", &[(Rust, (1, 1, 0))]),
            ("markdown unclosed fence", Markdown, b"Text\n```toml\na = 1\n", &[(Toml, (1, 0, 0))]),
            ("html with script and style", Html, b"<html>\n<!-- c -->\n<script>\nvar x = 1;\n// c\n</script>\n<style>\nbody {}\n</style>\n</html>\n", &[(Css, (1, 0, 0)), (JavaScript, (1, 1, 0))]),
        ];
        for &(what, lang, source, expected) in cases {
            let mut got: Vec<(Language, Counts)> = Vec::new();
            count_with_embedded(lang, source, &mut |child, c| match got
                .iter_mut()
                .find(|(l, _)| *l == child)
            {
                Some((_, total)) => *total += c,
                None => got.push((child, c)),
            });
            got.sort_by_key(|(l, _)| *l);
            let mut expected: Vec<(Language, Counts)> =
                expected.iter().map(|&(l, e)| (l, counts(e))).collect();
            expected.sort_by_key(|(l, _)| *l);
            assert_eq!(got, expected, "{what}");
        }
    }

    #[test]
    fn embedded_counts_do_not_change_the_host_counts() {
        let source = b"//! Docs.\nfn main() {\n    let s = \"x\";\n}\n/// More.\nfn f() {}\n";
        assert_eq!(
            count_with_embedded(Rust, source, &mut |_, _| {}),
            count(Rust, source)
        );
    }

    #[test]
    fn lines_is_the_sum_of_the_kinds() {
        let c = count(Rust, b"fn a() {}\n\n// c\n");
        assert_eq!((c.code, c.comments, c.blanks, c.lines()), (1, 1, 1, 3));
    }

    #[test]
    fn unterminated_and_truncated_input_does_not_panic() {
        let sources: &[&[u8]] = &[
            b"\"",
            b"/*",
            b"r#\"",
            b"\\",
            b"```rust",
            b"<script>",
            b"<script type=\"",
            b"\xff\xfe\x00",
            b"\xfe\xff\x00",
            b"\xef\xbb",
            b"///",
            b"<style lang=\"\xff\">x</style>",
            b"```\xe2\x80",
        ];
        for &lang in Language::ALL {
            for source in sources {
                let _ = count_with_embedded(lang, source, &mut |_, _| {});
            }
        }
    }

    #[test]
    fn tokei_trims_tag_bodies_oddly() {
        assert_eq!(trim_first_and_last_line(b"\n  code\n"), b"  code\n");
        assert_eq!(trim_first_and_last_line(b"var x;"), b"ar x;");
        assert_eq!(trim_first_and_last_line(b"\r\n a\r\n"), b" a\r");
        assert_eq!(trim_first_and_last_line(b""), b"");
    }

    #[test]
    fn finds_html_tags_as_the_regex_does() {
        fn tag(line: &[u8]) -> Option<(&[u8], Option<&[u8]>)> {
            let (whole, value) = find_tag(line, b"<script", b"type=\"")?;
            Some((
                &line[whole.start..whole.end],
                value.map(|v| &line[v.start..v.end]),
            ))
        }
        assert_eq!(tag(b"<script>x"), Some((&b"<script>"[..], None)));
        assert_eq!(
            tag(b"<script type=\"module\" src=\"a.js\"></script>\n"),
            Some((
                &b"<script type=\"module\" src=\"a.js\">"[..],
                Some(&b"module\" src=\"a.js"[..])
            ))
        );
        assert_eq!(tag(b"<script\n>"), None);
        assert_eq!(
            tag(b"<script \xff> <script>"),
            Some((&b"<script>"[..], None))
        );
    }

    #[test]
    fn finds_code_fences_as_the_regex_does() {
        fn fence(line: &[u8]) -> Option<&[u8]> {
            find_fence(line).map(|f| &line[f.start..f.end])
        }
        assert_eq!(fence(b"```rust\n"), Some(&b"```rust\n"[..]));
        assert_eq!(fence(b"````md\n"), Some(&b"````md\n"[..]));
        assert_eq!(fence(b"```\n"), None);
        assert_eq!(fence(b"``` rust\n"), None);
        assert_eq!(fence(b"```rust"), None);
        assert_eq!(fence(b"x ```a\xc2\xa0"), Some(&b"```a\xc2\xa0"[..]));
    }
}
