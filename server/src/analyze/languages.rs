//! Languages the analysis recognises: every language tokei knows, with tokei's names, how
//! a file's language is detected, and each language's comment and string syntax.
//!
//! The data is not kept by hand: `build.rs` generates the [`Language`] enum, the syntax
//! rows and the lookup tables from tokei's own `languages.json` (v15, vendored with its
//! licence in `server/data/tokei/`), so `switchyard analyze` reports the same languages
//! with the same numbers. This file holds what the data means: detection by file name,
//! path suffix, extension and shebang, name and MIME lookups, and the byte sets the line
//! counter searches with.

use std::fmt;
use std::path::Path;

use memchr::{memchr, memchr2, memchr3};

include!(concat!(env!("OUT_DIR"), "/languages.rs"));

impl Language {
    /// The display name, exactly as tokei prints it ("C++ Header", "BASH", "Plain Text").
    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// The language with this name, ignoring case, the way tokei resolves a Markdown code
    /// fence's info string (` ```rust `) or an HTML `<style lang="…">` (`FromStr`).
    pub fn from_name(name: &str) -> Option<Language> {
        lookup_name(name.as_bytes())
    }

    /// Detects the language of the file at `path` as tokei does: by file name, then by
    /// the end of the file name, then by extension (all compared lowercased), then — only
    /// for a file without an extension — by its shebang line.
    ///
    /// `first_line` is the start of the file (the whole file is fine); as in tokei only the
    /// first line within its first 128 bytes is read. Pass `None` when the contents are not
    /// at hand: extension-less scripts are then not detected.
    pub fn detect(path: &Path, first_line: Option<&[u8]>) -> Option<Language> {
        if let Some(file_name) = path.file_name() {
            let file_name = file_name.to_string_lossy().to_lowercase();
            if let Some(language) = find(&FILENAMES, &file_name) {
                return Some(language);
            }
            if let Some(&(_, language)) = PATH_SUFFIXES
                .iter()
                .find(|(suffix, _)| file_name.ends_with(suffix))
            {
                return Some(language);
            }
        }
        match path.extension() {
            Some(extension) => find(&EXTENSIONS, &extension.to_string_lossy().to_lowercase()),
            None => first_line.and_then(from_shebang),
        }
    }

    /// The language tokei gives this (lowercase) extension, as its `from_file_extension`.
    pub fn from_extension(extension: &str) -> Option<Language> {
        find(&EXTENSIONS, extension)
    }

    pub(crate) fn def(self) -> &'static LanguageDef {
        &DEFS[self as usize]
    }
}

/// The language of `key` in a table sorted by key.
fn find(table: &[(&str, Language)], key: &str) -> Option<Language> {
    table
        .binary_search_by(|(k, _)| (*k).cmp(key))
        .ok()
        .map(|i| table[i].1)
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether `bytes` look like a binary file: a NUL byte within the first
/// [`BINARY_SNIFF_LEN`] bytes, the test git and ripgrep apply.
///
/// tokei itself skips nothing as binary: it counts every file whose language it detects,
/// and decodes UTF-16 (recognised by its byte-order mark) before counting. So a file with
/// a UTF-16 byte-order mark is not binary here, and a caller that wants tokei's totals
/// should only consult this for files it would otherwise read as text of unknown kind.
pub fn looks_binary(bytes: &[u8]) -> bool {
    if bytes.starts_with(&[0xFF, 0xFE]) || bytes.starts_with(&[0xFE, 0xFF]) {
        return false;
    }
    memchr(0, &bytes[..bytes.len().min(BINARY_SNIFF_LEN)]).is_some()
}

/// How many leading bytes [`looks_binary`] inspects (git's `FIRST_FEW_BYTES`).
pub const BINARY_SNIFF_LEN: usize = 8000;

/// tokei reads at most this many bytes when it looks for a shebang.
const SHEBANG_READ_LIMIT: usize = 128;

fn from_shebang(head: &[u8]) -> Option<Language> {
    let head = &head[..head.len().min(SHEBANG_READ_LIMIT)];
    let first_line = head.split(|&b| b == b'\n').next()?;
    let first_line = std::str::from_utf8(first_line).ok()?;
    let mut words = first_line.split_whitespace();
    let interpreter = words.next()?;
    if interpreter == "#!/usr/bin/env" {
        let program = words.next()?;
        return ENVS
            .iter()
            .find(|(prefix, _)| program.starts_with(prefix))
            .map(|&(_, language)| language);
    }
    SHEBANGS
        .iter()
        .find(|(shebang, _)| *shebang == interpreter)
        .map(|&(_, language)| language)
}

/// Resolves a language name case-insensitively, as tokei's `LanguageType::from_str`.
pub(crate) fn lookup_name(name: &[u8]) -> Option<Language> {
    let name = std::str::from_utf8(name).ok()?;
    find(&NAMES, &name.to_lowercase())
}

/// Resolves a name or key exactly as written, as tokei's `LanguageType::from_name`.
pub(crate) fn lookup_exact_name(name: &[u8]) -> Option<Language> {
    find(&EXACT_NAMES, std::str::from_utf8(name).ok()?)
}

/// Resolves a MIME type (an HTML `<script type="…">`), as tokei's `LanguageType::from_mime`.
pub(crate) fn lookup_mime(mime: &[u8]) -> Option<Language> {
    find(&MIMES, std::str::from_utf8(mime).ok()?)
}

/// Which embedded languages tokei looks for inside a language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Embedding {
    /// Nothing is embedded.
    None,
    /// Runs of `///` or `//!` doc comments are Markdown (Rust).
    RustDoc,
    /// Fenced code blocks with a language name (Markdown).
    CodeFences,
    /// `<script>`, `<style>` and `<template>` contents (HTML, Vue, Svelte, …).
    HtmlTags,
    /// `{= … =}` blocks in the language the file's `target` names (Lingua Franca).
    LinguaFranca,
}

const fn token_has_space(token: &[u8]) -> bool {
    let mut i = 0;
    while i < token.len() {
        if token[i].is_ascii_whitespace() {
            return true;
        }
        i += 1;
    }
    false
}

const fn has_space(tokens: &[&[u8]]) -> bool {
    let mut i = 0;
    while i < tokens.len() {
        if token_has_space(tokens[i]) {
            return true;
        }
        i += 1;
    }
    false
}

const fn pairs_have_space(pairs: &[(&[u8], &[u8])]) -> bool {
    let mut i = 0;
    while i < pairs.len() {
        if token_has_space(pairs[i].0) || token_has_space(pairs[i].1) {
            return true;
        }
        i += 1;
    }
    false
}

/// A set of bytes, searched with `memchr` when it has at most three members.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ByteSet {
    table: [bool; 256],
    first: [u8; 3],
    len: usize,
}

impl ByteSet {
    const EMPTY: ByteSet = ByteSet {
        table: [false; 256],
        first: [0; 3],
        len: 0,
    };

    const fn with(mut self, byte: u8) -> ByteSet {
        if !self.table[byte as usize] {
            self.table[byte as usize] = true;
            if self.len < 3 {
                self.first[self.len] = byte;
            }
            self.len += 1;
        }
        self
    }

    const fn with_firsts(mut self, tokens: &[&[u8]]) -> ByteSet {
        let mut i = 0;
        while i < tokens.len() {
            self = self.with(tokens[i][0]);
            i += 1;
        }
        self
    }

    const fn with_pair_firsts(mut self, pairs: &[(&[u8], &[u8])], which: usize) -> ByteSet {
        let mut i = 0;
        while i < pairs.len() {
            let token = if which == 0 { pairs[i].0 } else { pairs[i].1 };
            self = self.with(token[0]);
            i += 1;
        }
        self
    }

    /// The offset of the first byte of `haystack` in the set.
    pub(crate) fn find(&self, haystack: &[u8]) -> Option<usize> {
        match self.len {
            0 => None,
            1 => memchr(self.first[0], haystack),
            2 => memchr2(self.first[0], self.first[1], haystack),
            3 => memchr3(self.first[0], self.first[1], self.first[2], haystack),
            _ => haystack.iter().position(|&b| self.table[b as usize]),
        }
    }
}

/// One row of the language table: how to read the language.
#[derive(Debug)]
pub(crate) struct LanguageDef {
    pub(crate) lang: Language,
    pub(crate) name: &'static str,
    pub(crate) line_comments: &'static [&'static [u8]],
    pub(crate) block_comments: &'static [(&'static [u8], &'static [u8])],
    /// Block comments nest (Rust's `/* /* */ */`).
    pub(crate) nested: bool,
    /// Block comments that always nest, whatever `nested` says (D's `/+ +/`), tried after
    /// `block_comments`.
    pub(crate) nested_comments: &'static [(&'static [u8], &'static [u8])],
    pub(crate) quotes: &'static [(&'static [u8], &'static [u8])],
    /// Strings without escapes (`r#"…"#`, `@"…"`).
    pub(crate) verbatim_quotes: &'static [(&'static [u8], &'static [u8])],
    /// Docstrings (`"""…"""`): strings, counted as code as tokei does by default.
    pub(crate) doc_quotes: &'static [(&'static [u8], &'static [u8])],
    /// Tokens besides quote and block comment openers that send a line to the slow path.
    pub(crate) important: &'static [&'static [u8]],
    /// Every non-blank line is a comment (prose formats).
    pub(crate) literate: bool,
    /// A line comment only counts in the first column (FORTRAN): lines classified on sight
    /// are not trimmed first.
    pub(crate) fortran: bool,
    /// A token of `important`, a quote or a comment holds whitespace, so a match in a line's
    /// trailing whitespace does not count as one (tokei trims the line first).
    pub(crate) spaced_tokens: bool,
    pub(crate) embedding: Embedding,
    /// First bytes of everything that makes a line need the full scan.
    pub(crate) important_first: ByteSet,
    /// First bytes that can change state outside strings and comments.
    pub(crate) plain_first: ByteSet,
    /// First bytes that can change state inside a block comment.
    pub(crate) comment_first: ByteSet,
}

impl LanguageDef {
    const NONE: LanguageDef = LanguageDef {
        lang: Language::Text,
        name: "",
        line_comments: &[],
        block_comments: &[],
        nested: false,
        nested_comments: &[],
        quotes: &[],
        verbatim_quotes: &[],
        doc_quotes: &[],
        important: &[],
        literate: false,
        fortran: false,
        spaced_tokens: false,
        embedding: Embedding::None,
        important_first: ByteSet::EMPTY,
        plain_first: ByteSet::EMPTY,
        comment_first: ByteSet::EMPTY,
    };

    /// Fills in the derived byte sets.
    const fn finish(mut self) -> LanguageDef {
        // The languages tokei's `RegexCache::build` and `parse_from_slice` single out.
        self.embedding = match self.lang {
            Language::Rust => Embedding::RustDoc,
            Language::Markdown | Language::UnrealDeveloperMarkdown => Embedding::CodeFences,
            Language::Html
            | Language::RubyHtml
            | Language::Svelte
            | Language::Vue
            | Language::GlimmerJs
            | Language::GlimmerTs => Embedding::HtmlTags,
            Language::LinguaFranca => Embedding::LinguaFranca,
            _ => Embedding::None,
        };
        self.fortran = matches!(self.lang, Language::FortranLegacy | Language::FortranModern);
        self.spaced_tokens = has_space(self.line_comments)
            || pairs_have_space(self.block_comments)
            || pairs_have_space(self.nested_comments)
            || pairs_have_space(self.quotes)
            || pairs_have_space(self.verbatim_quotes)
            || pairs_have_space(self.doc_quotes)
            || has_space(self.important);
        self.important_first = ByteSet::EMPTY
            .with_pair_firsts(self.quotes, 0)
            .with_pair_firsts(self.doc_quotes, 0)
            .with_pair_firsts(self.block_comments, 0)
            .with_pair_firsts(self.nested_comments, 0)
            .with_firsts(self.important);
        self.plain_first = ByteSet::EMPTY
            .with(b'\\')
            .with_pair_firsts(self.quotes, 0)
            .with_pair_firsts(self.verbatim_quotes, 0)
            .with_pair_firsts(self.doc_quotes, 0)
            .with_pair_firsts(self.block_comments, 0)
            .with_pair_firsts(self.nested_comments, 0)
            .with_firsts(self.line_comments);
        match self.embedding {
            Embedding::RustDoc => self.plain_first = self.plain_first.with(b'/'),
            Embedding::LinguaFranca => self.plain_first = self.plain_first.with(b'{'),
            Embedding::None | Embedding::CodeFences | Embedding::HtmlTags => {}
        }
        self.comment_first = ByteSet::EMPTY
            .with(b'\\')
            .with_pair_firsts(self.block_comments, 0)
            .with_pair_firsts(self.block_comments, 1)
            .with_pair_firsts(self.nested_comments, 0)
            .with_pair_firsts(self.nested_comments, 1);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::Language::*;
    use super::*;

    #[test]
    fn table_rows_are_in_enum_order_and_sorted_by_name() {
        assert_eq!(DEFS.len(), Language::ALL.len());
        for (i, (def, &lang)) in DEFS.iter().zip(Language::ALL).enumerate() {
            assert_eq!(def.lang, lang, "row {i}");
            assert_eq!(lang as usize, i, "{lang:?}");
        }
        let names: Vec<String> = DEFS.iter().map(|d| d.name.to_lowercase()).collect();
        assert!(names.is_sorted(), "{names:?}");
        // tokei 15 knows 333 languages; every one is here.
        assert_eq!(Language::ALL.len(), 333);
    }

    #[test]
    fn lookup_tables_are_sorted_for_binary_search() {
        for table in [&EXTENSIONS[..], &FILENAMES, &MIMES, &NAMES, &EXACT_NAMES] {
            let keys: Vec<&str> = table.iter().map(|(k, _)| *k).collect();
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
        }
    }

    #[test]
    fn names_are_tokei_names() {
        let expected = [
            (Rust, "Rust"),
            (C, "C"),
            (CHeader, "C Header"),
            (Cpp, "C++"),
            (CppHeader, "C++ Header"),
            (Go, "Go"),
            (Python, "Python"),
            (JavaScript, "JavaScript"),
            (TypeScript, "TypeScript"),
            (Jsx, "JSX"),
            (Tsx, "TSX"),
            (Java, "Java"),
            (Kotlin, "Kotlin"),
            (Sh, "Shell"),
            (Bash, "BASH"),
            (Lua, "Lua"),
            (Markdown, "Markdown"),
            (Toml, "TOML"),
            (Yaml, "YAML"),
            (Json, "JSON"),
            (Html, "HTML"),
            (Css, "CSS"),
            // tokei has no SCSS: `.scss` files are "Sass".
            (Sass, "Sass"),
            (Ruby, "Ruby"),
            (Php, "PHP"),
            (CSharp, "C#"),
            (Swift, "Swift"),
            (Scala, "Scala"),
            (Sql, "SQL"),
            (Makefile, "Makefile"),
            (Dockerfile, "Dockerfile"),
            (CMake, "CMake"),
            (Xml, "XML"),
            (Zig, "Zig"),
            (Haskell, "Haskell"),
            (Nix, "Nix"),
            (Protobuf, "Protocol Buffers"),
            (Text, "Plain Text"),
            (Tcl, "TCL"),
            (Po, "PO File"),
            (Autoconf, "Autoconf"),
            (Meson, "Meson"),
            (AsciiDoc, "AsciiDoc"),
            (ModuleDef, "Module-Definition"),
        ];
        for (lang, name) in expected {
            assert_eq!(lang.name(), name);
            assert_eq!(lang.to_string(), name);
            assert_eq!(Language::from_name(&name.to_uppercase()), Some(lang));
        }
    }

    #[test]
    fn syntax_tokens_fit_the_scanner() {
        for def in &DEFS {
            let pairs = def
                .quotes
                .iter()
                .chain(def.verbatim_quotes)
                .chain(def.doc_quotes)
                .chain(def.block_comments)
                .chain(def.nested_comments);
            let tokens: Vec<&[u8]> = pairs
                .flat_map(|&(open, close)| [open, close])
                .chain(def.line_comments.iter().copied())
                .chain(def.important.iter().copied())
                .collect();
            for token in tokens {
                assert!(!token.is_empty(), "{}", def.name);
                // A token never spans lines, so a line can be scanned on its own.
                assert!(!token.contains(&b'\n'), "{}: {token:?}", def.name);
            }
        }
        // tokei's build sorts quotes longest first, measured in the JSON's escaped text
        // (`##\"` is as long as `###'`), and the first that matches wins.
        let rust = Rust.def().verbatim_quotes;
        assert_eq!(rust[0].0, b"r##\"");
        let cangjie: Vec<&[u8]> = Cangjie.def().verbatim_quotes.iter().map(|q| q.0).collect();
        assert_eq!(
            cangjie,
            [&b"###\""[..], b"##\"", b"###'", b"#\"", b"##'", b"#'"]
        );
        // The JSON's string values are Rust literal bodies: `\"` is a quote.
        assert_eq!(C.def().quotes, &[(&b"\""[..], &b"\""[..])]);
        assert_eq!(D.def().nested_comments, &[(&b"/+"[..], &b"+/"[..])]);
        assert!(Forth.def().spaced_tokens && !C.def().spaced_tokens);
        assert!(FortranLegacy.def().fortran);
    }

    #[test]
    fn detects_by_extension_ignoring_case() {
        let cases = [
            ("src/main.rs", Some(Rust)),
            ("SRC/MAIN.RS", Some(Rust)),
            ("a/b.H", Some(CHeader)),
            ("x.hpp", Some(CppHeader)),
            ("x.c++", Some(Cpp)),
            ("x.mjs", Some(JavaScript)),
            ("x.tsx", Some(Tsx)),
            ("x.scss", Some(Sass)),
            ("x.yml", Some(Yaml)),
            ("x.markdown", Some(Markdown)),
            ("notes.txt", Some(Text)),
            ("x.proto", Some(Protobuf)),
            ("x.tcl", Some(Tcl)),
            ("de.po", Some(Po)),
            ("Makefile.in", Some(Autoconf)),
            ("doc.adoc", Some(AsciiDoc)),
            ("lib.def", Some(ModuleDef)),
            // Two languages claim `.e`: the first in tokei's key order wins.
            ("x.e", Some(Phix)),
            ("archive.tar.gz", None),
            ("x.unknown", None),
        ];
        for (path, expected) in cases {
            assert_eq!(Language::detect(Path::new(path), None), expected, "{path}");
        }
    }

    #[test]
    fn detects_by_file_name_before_extension() {
        let cases = [
            ("Makefile", Some(Makefile)),
            ("GNUmakefile", Some(Makefile)),
            ("Dockerfile", Some(Dockerfile)),
            ("CMakeLists.txt", Some(CMake)),
            ("justfile", Some(Just)),
            ("meson.build", Some(Meson)),
            ("meson_options.txt", Some(Meson)),
            ("view.blade.php", Some(Blade)),
            ("BUILD", Some(Bazel)),
        ];
        for (path, expected) in cases {
            assert_eq!(
                Language::detect(Path::new(path), Some(b"#!/bin/sh\n")),
                expected,
                "{path}"
            );
        }
    }

    #[test]
    fn detects_extensionless_scripts_by_shebang() {
        let cases: [(&[u8], Option<Language>); 10] = [
            (b"#!/bin/sh\necho hi\n", Some(Sh)),
            (b"#!/bin/bash\n", Some(Bash)),
            (b"#!/usr/bin/env bash -e\n", Some(Bash)),
            (b"#!/usr/bin/env python3\n", Some(Python)),
            (b"#!/usr/bin/env ruby", Some(Ruby)),
            (b"#!/usr/bin/perl -w\n", Some(Perl)),
            (b"#!/usr/bin/python3\n", None),
            (b"#!/usr/bin/env\n", None),
            (b"\xff#!/bin/sh\n", None),
            (b"echo no shebang\n", None),
        ];
        for (head, expected) in cases {
            assert_eq!(
                Language::detect(Path::new("bin/tool"), Some(head)),
                expected,
                "{}",
                String::from_utf8_lossy(head)
            );
        }
        // Only the first line within tokei's 128 byte read counts.
        let long = [b"#!/bin/sh".as_slice(), &[b' '; 130], b"\n"].concat();
        assert_eq!(Language::detect(Path::new("tool"), Some(&long)), Some(Sh));
        let cut = [b"#!/usr/bin/env ".as_slice(), &[b' '; 113], b"bash\n"].concat();
        assert_eq!(Language::detect(Path::new("tool"), Some(&cut)), None);
        // The shebang is not consulted when there is an extension, or no contents.
        assert_eq!(
            Language::detect(Path::new("tool.unknown"), Some(b"#!/bin/sh\n")),
            None
        );
        assert_eq!(Language::detect(Path::new("tool"), None), None);
        assert_eq!(
            Language::detect(Path::new(".bashrc"), Some(b"#!/bin/bash\n")),
            Some(Bash)
        );
    }

    #[test]
    fn resolves_names_as_tokei_does() {
        assert_eq!(lookup_name(b"rust"), Some(Rust));
        assert_eq!(lookup_name(b"c++ header"), Some(CppHeader));
        assert_eq!(lookup_name(b"Plain Text"), Some(Text));
        assert_eq!(lookup_name(b"dhall"), Some(Dhall));
        assert_eq!(lookup_name(b"tcl"), Some(Tcl));
        assert_eq!(lookup_name(b"sh"), None);
        assert_eq!(lookup_name(b"\xff"), None);
        // `from_name` takes a display name or a key, exactly as written.
        assert_eq!(lookup_exact_name(b"CCpp"), None);
        assert_eq!(lookup_exact_name(b"Cpp"), Some(Cpp));
        assert_eq!(lookup_exact_name(b"C++"), Some(Cpp));
        assert_eq!(lookup_exact_name(b"cpp"), None);
        assert_eq!(lookup_mime(b"text/javascript"), Some(JavaScript));
        assert_eq!(lookup_mime(b"application/prql"), Some(PRQL));
        assert_eq!(lookup_mime(b"module"), None);
    }

    #[test]
    fn binary_means_a_nul_byte_up_front() {
        assert!(!looks_binary(b""));
        assert!(!looks_binary(b"fn main() {}\n"));
        assert!(looks_binary(b"\x7fELF\x02\x01\x01\x00"));
        let late = [vec![b'a'; BINARY_SNIFF_LEN], vec![0]].concat();
        assert!(!looks_binary(&late));
        // UTF-16 text has NULs but is text to tokei.
        assert!(!looks_binary(b"\xff\xfea\x00b\x00"));
    }
}
