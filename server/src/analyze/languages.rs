//! Languages the analysis recognises: tokei's names, how a file's language is detected, and
//! each language's comment and string syntax.
//!
//! The data mirrors tokei's `languages.json` (v15) so that `switchyard analyze` reports the
//! same languages with the same numbers: names, extensions, file names, shebangs, comment
//! tokens, quotes, verbatim and doc quotes. Quotes are listed longest first, the order
//! tokei's build script gives them.

use std::fmt;
use std::path::Path;

use memchr::{memchr, memchr2, memchr3};

/// A programming, markup or data language, named as tokei names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Language {
    /// ABNF (.abnf)
    Abnf,
    /// ASN.1 (.asn1)
    Asn1,
    /// Assembly (.asm)
    Assembly,
    /// BASH (.bash)
    Bash,
    /// Batch (.bat, .btm, .cmd)
    Batch,
    /// Bitbake (.bb, .bbclass, .bbappend, .inc)
    Bitbake,
    /// C (.c, .ec, .pgc)
    C,
    /// C Header (.h)
    CHeader,
    /// C# (.cs, .csx)
    CSharp,
    /// C++ (.cc, .cpp, .cxx, .c++, .pcc, .tpp)
    Cpp,
    /// C++ Header (.hh, .hpp, .hxx, .inl, .ipp)
    CppHeader,
    /// Clojure (.clj)
    Clojure,
    /// CMake (.cmake; cmakelists.txt)
    CMake,
    /// CSS (.css)
    Css,
    /// Dart (.dart)
    Dart,
    /// Dockerfile (.dockerfile, .dockerignore; dockerfile)
    Dockerfile,
    /// Elixir (.ex, .exs)
    Elixir,
    /// Elm (.elm)
    Elm,
    /// Erlang (.erl, .hrl)
    Erlang,
    /// F* (.fst, .fsti)
    FStar,
    /// Fish (.fish)
    Fish,
    /// GNU Style Assembly (.s)
    GnuAssembly,
    /// Go (.go)
    Go,
    /// GraphQL (.gql, .graphql)
    GraphQl,
    /// Groovy (.groovy, .grt, .gtpl, .gvy)
    Groovy,
    /// Haskell (.hs)
    Haskell,
    /// HCL (.hcl, .tf, .tfvars)
    Hcl,
    /// HTML (.html, .htm)
    Html,
    /// INI (.ini)
    Ini,
    /// Java (.java)
    Java,
    /// JavaScript (.cjs, .js, .mjs)
    JavaScript,
    /// JSON (.json)
    Json,
    /// JSX (.jsx)
    Jsx,
    /// Julia (.jl)
    Julia,
    /// Just (.just; justfile)
    Just,
    /// Kotlin (.kt, .kts)
    Kotlin,
    /// LESS (.less)
    Less,
    /// Lua (.lua, .luau)
    Lua,
    /// Makefile (.makefile, .mak, .mk; gnumakefile, makefile)
    Makefile,
    /// Markdown (.md, .markdown)
    Markdown,
    /// Nix (.nix)
    Nix,
    /// Objective-C (.m)
    ObjectiveC,
    /// Objective-C++ (.mm)
    ObjectiveCpp,
    /// OCaml (.ml, .mli, .re, .rei)
    OCaml,
    /// Pan (.pan, .tpl)
    Pan,
    /// Perl (.pl, .pm)
    Perl,
    /// Pest (.pest)
    Pest,
    /// PHP (.php)
    Php,
    /// Plain Text (.text, .txt)
    PlainText,
    /// PowerShell (.ps1, .psm1, .psd1, .ps1xml, .cdxml, .pssc, .psc1)
    PowerShell,
    /// Protocol Buffers (.proto)
    ProtocolBuffers,
    /// Python (.py, .pyw, .pyi)
    Python,
    /// R (.r)
    R,
    /// ReStructuredText (.rst)
    ReStructuredText,
    /// Ruby (.rb)
    Ruby,
    /// Rust (.rs)
    Rust,
    /// Sass (.sass, .scss)
    Sass,
    /// Scala (.sc, .scala)
    Scala,
    /// Shell (.sh)
    Shell,
    /// SQL (.sql)
    Sql,
    /// SVG (.svg)
    Svg,
    /// Swift (.swift)
    Swift,
    /// TeX (.tex, .sty)
    Tex,
    /// TOML (.toml)
    Toml,
    /// TSX (.tsx)
    Tsx,
    /// TypeScript (.ts, .mts, .cts)
    TypeScript,
    /// XML (.xml)
    Xml,
    /// YAML (.yaml, .yml)
    Yaml,
    /// Zig (.zig)
    Zig,
    /// Zsh (.zsh)
    Zsh,
}

impl Language {
    /// Every supported language, in the order of their names.
    pub const ALL: &'static [Language] = &[
        Abnf,
        Asn1,
        Assembly,
        Bash,
        Batch,
        Bitbake,
        C,
        CHeader,
        CSharp,
        Cpp,
        CppHeader,
        Clojure,
        CMake,
        Css,
        Dart,
        Dockerfile,
        Elixir,
        Elm,
        Erlang,
        FStar,
        Fish,
        GnuAssembly,
        Go,
        GraphQl,
        Groovy,
        Haskell,
        Hcl,
        Html,
        Ini,
        Java,
        JavaScript,
        Json,
        Jsx,
        Julia,
        Just,
        Kotlin,
        Less,
        Lua,
        Makefile,
        Markdown,
        Nix,
        ObjectiveC,
        ObjectiveCpp,
        OCaml,
        Pan,
        Perl,
        Pest,
        Php,
        PlainText,
        PowerShell,
        ProtocolBuffers,
        Python,
        R,
        ReStructuredText,
        Ruby,
        Rust,
        Sass,
        Scala,
        Shell,
        Sql,
        Svg,
        Swift,
        Tex,
        Toml,
        Tsx,
        TypeScript,
        Xml,
        Yaml,
        Zig,
        Zsh,
    ];

    /// The display name, exactly as tokei prints it ("C++ Header", "BASH", "Plain Text").
    pub fn name(self) -> &'static str {
        self.def().name
    }

    /// The language with this name, ignoring case, the way tokei resolves a Markdown code
    /// fence's info string (` ```rust `) or an HTML `<style lang="…">`.
    pub fn from_name(name: &str) -> Option<Language> {
        match lookup_name(name.as_bytes()) {
            Some(Named::Ours(language)) => Some(language),
            Some(Named::Foreign) | None => None,
        }
    }

    /// Detects the language of the file at `path` as tokei does: by file name, then by
    /// extension (both compared lowercased), then — only for a file without an extension —
    /// by its shebang line.
    ///
    /// `first_line` is the start of the file (the whole file is fine); as in tokei only the
    /// first line within its first 128 bytes is read. Pass `None` when the contents are not
    /// at hand: extension-less scripts are then not detected.
    pub fn detect(path: &Path, first_line: Option<&[u8]>) -> Option<Language> {
        if let Some(file_name) = path.file_name() {
            let file_name = file_name.to_string_lossy().to_lowercase();
            if let Some(def) = DEFS
                .iter()
                .find(|d| d.filenames.contains(&file_name.as_str()))
            {
                return Some(def.lang);
            }
            // Names and suffixes tokei gives to languages this table does not carry: claim
            // nothing rather than report the file under its extension's language.
            if OTHER_FILENAMES.contains(&file_name.as_str()) || file_name.ends_with(".blade.php") {
                return None;
            }
        }
        match path.extension() {
            Some(extension) => {
                let extension = extension.to_string_lossy().to_lowercase();
                DEFS.iter()
                    .find(|d| d.extensions.contains(&extension.as_str()))
                    .map(|d| d.lang)
            }
            None => first_line.and_then(from_shebang),
        }
    }

    pub(crate) fn def(self) -> &'static LanguageDef {
        &DEFS[self as usize]
    }
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
        return DEFS
            .iter()
            .find(|d| d.env.iter().any(|e| program.starts_with(e)))
            .map(|d| d.lang);
    }
    DEFS.iter()
        .find(|d| d.shebangs.contains(&interpreter))
        .map(|d| d.lang)
}

/// What a language name resolves to among everything tokei knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Named {
    /// A language of this table.
    Ours(Language),
    /// A language tokei knows and this table does not carry.
    Foreign,
}

/// Resolves a language name case-insensitively, as tokei's `LanguageType::from_str`.
pub(crate) fn lookup_name(name: &[u8]) -> Option<Named> {
    let name = std::str::from_utf8(name).ok()?;
    let lower;
    let name = if name.is_ascii() {
        name
    } else {
        lower = name.to_lowercase();
        lower.as_str()
    };
    if let Some(def) = DEFS.iter().find(|d| d.name.eq_ignore_ascii_case(name)) {
        return Some(Named::Ours(def.lang));
    }
    OTHER_NAMES
        .iter()
        .any(|other| other.eq_ignore_ascii_case(name))
        .then_some(Named::Foreign)
}

/// Resolves a MIME type (an HTML `<script type="…">`), as tokei's `LanguageType::from_mime`.
pub(crate) fn lookup_mime(mime: &[u8]) -> Option<Named> {
    let mime = std::str::from_utf8(mime).ok()?;
    if let Some(def) = DEFS.iter().find(|d| d.mime.contains(&mime)) {
        return Some(Named::Ours(def.lang));
    }
    (mime == "application/prql").then_some(Named::Foreign)
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
    /// `<script>`, `<style>` and `<template>` contents (HTML).
    HtmlTags,
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

/// One row of the language table: how to detect the language and how to read it.
#[derive(Debug)]
pub(crate) struct LanguageDef {
    pub(crate) lang: Language,
    pub(crate) name: &'static str,
    pub(crate) extensions: &'static [&'static str],
    pub(crate) filenames: &'static [&'static str],
    pub(crate) shebangs: &'static [&'static str],
    pub(crate) env: &'static [&'static str],
    pub(crate) mime: &'static [&'static str],
    pub(crate) line_comments: &'static [&'static [u8]],
    pub(crate) block_comments: &'static [(&'static [u8], &'static [u8])],
    /// Block comments nest (Rust's `/* /* */ */`). Only with a single block comment pair.
    pub(crate) nested: bool,
    pub(crate) quotes: &'static [(&'static [u8], &'static [u8])],
    /// Strings without escapes (`r#"…"#`, `@"…"`).
    pub(crate) verbatim_quotes: &'static [(&'static [u8], &'static [u8])],
    /// Docstrings (`"""…"""`): strings, counted as code as tokei does by default.
    pub(crate) doc_quotes: &'static [(&'static [u8], &'static [u8])],
    /// Tokens besides quote and block comment openers that send a line to the slow path.
    pub(crate) important: &'static [&'static [u8]],
    /// Every non-blank line is a comment (prose formats).
    pub(crate) literate: bool,
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
        lang: Language::PlainText,
        name: "",
        extensions: &[],
        filenames: &[],
        shebangs: &[],
        env: &[],
        mime: &[],
        line_comments: &[],
        block_comments: &[],
        nested: false,
        quotes: &[],
        verbatim_quotes: &[],
        doc_quotes: &[],
        important: &[],
        literate: false,
        embedding: Embedding::None,
        important_first: ByteSet::EMPTY,
        plain_first: ByteSet::EMPTY,
        comment_first: ByteSet::EMPTY,
    };

    /// Fills in the derived byte sets.
    const fn finish(mut self) -> LanguageDef {
        self.embedding = match self.lang {
            Language::Rust => Embedding::RustDoc,
            Language::Markdown => Embedding::CodeFences,
            Language::Html => Embedding::HtmlTags,
            _ => Embedding::None,
        };
        self.important_first = ByteSet::EMPTY
            .with_pair_firsts(self.quotes, 0)
            .with_pair_firsts(self.doc_quotes, 0)
            .with_pair_firsts(self.block_comments, 0)
            .with_firsts(self.important);
        self.plain_first = ByteSet::EMPTY
            .with(b'\\')
            .with_pair_firsts(self.quotes, 0)
            .with_pair_firsts(self.verbatim_quotes, 0)
            .with_pair_firsts(self.doc_quotes, 0)
            .with_pair_firsts(self.block_comments, 0)
            .with_firsts(self.line_comments);
        if let Embedding::RustDoc = self.embedding {
            self.plain_first = self.plain_first.with(b'/');
        }
        self.comment_first = ByteSet::EMPTY
            .with(b'\\')
            .with_pair_firsts(self.block_comments, 0)
            .with_pair_firsts(self.block_comments, 1);
        self
    }
}

use Language::*;

static DEFS: [LanguageDef; Language::ALL.len()] = [
    LanguageDef {
        lang: Abnf,
        name: "ABNF",
        extensions: &["abnf"],
        line_comments: &[b";"],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Asn1,
        name: "ASN.1",
        extensions: &["asn1"],
        line_comments: &[b"--"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"\"", b"\""), (b"'", b"'")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Assembly,
        name: "Assembly",
        extensions: &["asm"],
        line_comments: &[b";"],
        quotes: &[(b"\"", b"\""), (b"'", b"'")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Bash,
        name: "BASH",
        extensions: &["bash"],
        shebangs: &["#!/bin/bash"],
        env: &["bash"],
        line_comments: &[b"#"],
        quotes: &[(b"\"", b"\""), (b"'", b"'")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Batch,
        name: "Batch",
        extensions: &["bat", "btm", "cmd"],
        line_comments: &[b"REM", b"::"],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Bitbake,
        name: "Bitbake",
        extensions: &["bb", "bbclass", "bbappend", "inc"],
        line_comments: &[b"#"],
        quotes: &[(b"\"", b"\""), (b"'", b"'")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: C,
        name: "C",
        extensions: &["c", "ec", "pgc"],
        line_comments: &[b"//"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"\"", b"\"")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: CHeader,
        name: "C Header",
        extensions: &["h"],
        line_comments: &[b"//"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"\"", b"\"")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: CSharp,
        name: "C#",
        extensions: &["cs", "csx"],
        line_comments: &[b"//"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"\"", b"\"")],
        verbatim_quotes: &[(b"@\"", b"\"")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Cpp,
        name: "C++",
        extensions: &["cc", "cpp", "cxx", "c++", "pcc", "tpp"],
        line_comments: &[b"//"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"\"", b"\"")],
        verbatim_quotes: &[(b"R\"(", b")\"")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: CppHeader,
        name: "C++ Header",
        extensions: &["hh", "hpp", "hxx", "inl", "ipp"],
        line_comments: &[b"//"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"\"", b"\"")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Clojure,
        name: "Clojure",
        extensions: &["clj"],
        line_comments: &[b";"],
        quotes: &[(b"\"", b"\"")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: CMake,
        name: "CMake",
        extensions: &["cmake"],
        filenames: &["cmakelists.txt"],
        line_comments: &[b"#"],
        quotes: &[(b"\"", b"\"")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Css,
        name: "CSS",
        extensions: &["css"],
        mime: &["text/css"],
        line_comments: &[b"//"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"\"", b"\""), (b"'", b"'")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Dart,
        name: "Dart",
        extensions: &["dart"],
        line_comments: &[b"//"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[
            (b"\"\"\"", b"\"\"\""),
            (b"'''", b"'''"),
            (b"\"", b"\""),
            (b"'", b"'"),
        ],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Dockerfile,
        name: "Dockerfile",
        extensions: &["dockerfile", "dockerignore"],
        filenames: &["dockerfile"],
        line_comments: &[b"#"],
        quotes: &[(b"\"", b"\""), (b"'", b"'")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Elixir,
        name: "Elixir",
        extensions: &["ex", "exs"],
        line_comments: &[b"#"],
        quotes: &[
            (b"\"\"\"", b"\"\"\""),
            (b"'''", b"'''"),
            (b"\"", b"\""),
            (b"'", b"'"),
        ],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Elm,
        name: "Elm",
        extensions: &["elm"],
        line_comments: &[b"--"],
        block_comments: &[(b"{-", b"-}")],
        nested: true,
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Erlang,
        name: "Erlang",
        extensions: &["erl", "hrl"],
        line_comments: &[b"%"],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: FStar,
        name: "F*",
        extensions: &["fst", "fsti"],
        line_comments: &[b"//"],
        block_comments: &[(b"(*", b"*)")],
        quotes: &[(b"\"", b"\"")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Fish,
        name: "Fish",
        extensions: &["fish"],
        shebangs: &["#!/bin/fish"],
        env: &["fish"],
        line_comments: &[b"#"],
        quotes: &[(b"\"", b"\""), (b"'", b"'")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: GnuAssembly,
        name: "GNU Style Assembly",
        extensions: &["s"],
        line_comments: &[b"//"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"\"", b"\"")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Go,
        name: "Go",
        extensions: &["go"],
        line_comments: &[b"//"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"\"", b"\"")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: GraphQl,
        name: "GraphQL",
        extensions: &["gql", "graphql"],
        line_comments: &[b"#"],
        quotes: &[(b"\"\"\"", b"\"\"\""), (b"\"", b"\"")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Groovy,
        name: "Groovy",
        extensions: &["groovy", "grt", "gtpl", "gvy"],
        env: &["groovy"],
        line_comments: &[b"//"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"\"", b"\"")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Haskell,
        name: "Haskell",
        extensions: &["hs"],
        line_comments: &[b"--"],
        block_comments: &[(b"{-", b"-}")],
        nested: true,
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Hcl,
        name: "HCL",
        extensions: &["hcl", "tf", "tfvars"],
        line_comments: &[b"#", b"//"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"\"", b"\"")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Html,
        name: "HTML",
        extensions: &["html", "htm"],
        mime: &["text/html"],
        block_comments: &[(b"<!--", b"-->")],
        quotes: &[(b"\"", b"\""), (b"'", b"'")],
        important: &[b"<script", b"<style"],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Ini,
        name: "INI",
        extensions: &["ini"],
        line_comments: &[b";", b"#"],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Java,
        name: "Java",
        extensions: &["java"],
        line_comments: &[b"//"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"\"", b"\"")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: JavaScript,
        name: "JavaScript",
        extensions: &["cjs", "js", "mjs"],
        mime: &[
            "application/javascript",
            "application/ecmascript",
            "application/x-ecmascript",
            "application/x-javascript",
            "text/javascript",
            "text/ecmascript",
            "text/javascript1.0",
            "text/javascript1.1",
            "text/javascript1.2",
            "text/javascript1.3",
            "text/javascript1.4",
            "text/javascript1.5",
            "text/jscript",
            "text/livescript",
            "text/x-ecmascript",
            "text/x-javascript",
        ],
        line_comments: &[b"//"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"\"", b"\""), (b"'", b"'"), (b"`", b"`")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Json,
        name: "JSON",
        extensions: &["json"],
        mime: &["application/json", "application/manifest+json"],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Jsx,
        name: "JSX",
        extensions: &["jsx"],
        line_comments: &[b"//"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"\"", b"\""), (b"'", b"'"), (b"`", b"`")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Julia,
        name: "Julia",
        extensions: &["jl"],
        line_comments: &[b"#"],
        block_comments: &[(b"#=", b"=#")],
        nested: true,
        quotes: &[(b"\"\"\"", b"\"\"\""), (b"\"", b"\"")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Just,
        name: "Just",
        extensions: &["just"],
        filenames: &["justfile"],
        shebangs: &["#!/usr/bin/env just --justfile"],
        env: &["just"],
        line_comments: &[b"#"],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Kotlin,
        name: "Kotlin",
        extensions: &["kt", "kts"],
        line_comments: &[b"//"],
        block_comments: &[(b"/*", b"*/")],
        nested: true,
        quotes: &[(b"\"\"\"", b"\"\"\""), (b"\"", b"\"")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Less,
        name: "LESS",
        extensions: &["less"],
        line_comments: &[b"//"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"\"", b"\""), (b"'", b"'")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Lua,
        name: "Lua",
        extensions: &["lua", "luau"],
        line_comments: &[b"--"],
        block_comments: &[(b"--[[", b"]]")],
        quotes: &[(b"\"", b"\""), (b"'", b"'")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Makefile,
        name: "Makefile",
        extensions: &["makefile", "mak", "mk"],
        filenames: &["gnumakefile", "makefile"],
        line_comments: &[b"#"],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Markdown,
        name: "Markdown",
        extensions: &["md", "markdown"],
        important: &[b"```"],
        literate: true,
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Nix,
        name: "Nix",
        extensions: &["nix"],
        line_comments: &[b"#"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"\"", b"\"")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: ObjectiveC,
        name: "Objective-C",
        extensions: &["m"],
        line_comments: &[b"//"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"\"", b"\"")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: ObjectiveCpp,
        name: "Objective-C++",
        extensions: &["mm"],
        line_comments: &[b"//"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"\"", b"\"")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: OCaml,
        name: "OCaml",
        extensions: &["ml", "mli", "re", "rei"],
        block_comments: &[(b"(*", b"*)")],
        quotes: &[(b"\"", b"\"")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Pan,
        name: "Pan",
        extensions: &["pan", "tpl"],
        line_comments: &[b"#"],
        quotes: &[(b"\"", b"\""), (b"'", b"'")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Perl,
        name: "Perl",
        extensions: &["pl", "pm"],
        shebangs: &["#!/usr/bin/perl"],
        line_comments: &[b"#"],
        block_comments: &[(b"=pod", b"=cut")],
        quotes: &[(b"\"", b"\""), (b"'", b"'")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Pest,
        name: "Pest",
        extensions: &["pest"],
        line_comments: &[b"//"],
        quotes: &[(b"\"", b"\""), (b"'", b"'")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Php,
        name: "PHP",
        extensions: &["php"],
        line_comments: &[b"#", b"//"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"\"", b"\""), (b"'", b"'")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: PlainText,
        name: "Plain Text",
        extensions: &["text", "txt"],
        mime: &["text/plain"],
        literate: true,
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: PowerShell,
        name: "PowerShell",
        extensions: &["ps1", "psm1", "psd1", "ps1xml", "cdxml", "pssc", "psc1"],
        line_comments: &[b"#"],
        block_comments: &[(b"<#", b"#>")],
        quotes: &[
            (b"\"@", b"@\""),
            (b"@'", b"'@"),
            (b"\"", b"\""),
            (b"'", b"'"),
        ],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: ProtocolBuffers,
        name: "Protocol Buffers",
        extensions: &["proto"],
        line_comments: &[b"//"],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Python,
        name: "Python",
        extensions: &["py", "pyw", "pyi"],
        env: &["python", "python2", "python3"],
        mime: &["text/x-python"],
        line_comments: &[b"#"],
        quotes: &[(b"\"", b"\""), (b"'", b"'")],
        doc_quotes: &[(b"\"\"\"", b"\"\"\""), (b"'''", b"'''")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: R,
        name: "R",
        extensions: &["r"],
        line_comments: &[b"#"],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: ReStructuredText,
        name: "ReStructuredText",
        extensions: &["rst"],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Ruby,
        name: "Ruby",
        extensions: &["rb"],
        env: &["ruby"],
        line_comments: &[b"#"],
        block_comments: &[(b"=begin", b"=end")],
        quotes: &[(b"\"", b"\""), (b"'", b"'")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Rust,
        name: "Rust",
        extensions: &["rs"],
        line_comments: &[b"//"],
        block_comments: &[(b"/*", b"*/")],
        nested: true,
        quotes: &[(b"#\"", b"\"#"), (b"\"", b"\"")],
        verbatim_quotes: &[(b"r##\"", b"\"##"), (b"r#\"", b"\"#")],
        important: &[b"///", b"//!"],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Sass,
        name: "Sass",
        extensions: &["sass", "scss"],
        line_comments: &[b"//"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"\"", b"\""), (b"'", b"'")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Scala,
        name: "Scala",
        extensions: &["sc", "scala"],
        line_comments: &[b"//"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"\"", b"\"")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Shell,
        name: "Shell",
        extensions: &["sh"],
        shebangs: &["#!/bin/sh"],
        env: &["sh"],
        line_comments: &[b"#"],
        quotes: &[(b"\"", b"\""), (b"'", b"'")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Sql,
        name: "SQL",
        extensions: &["sql"],
        line_comments: &[b"--"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"'", b"'")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Svg,
        name: "SVG",
        extensions: &["svg"],
        mime: &["image/svg+xml"],
        block_comments: &[(b"<!--", b"-->")],
        quotes: &[(b"\"", b"\""), (b"'", b"'")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Swift,
        name: "Swift",
        extensions: &["swift"],
        line_comments: &[b"//"],
        block_comments: &[(b"/*", b"*/")],
        nested: true,
        quotes: &[(b"\"", b"\"")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Tex,
        name: "TeX",
        extensions: &["tex", "sty"],
        line_comments: &[b"%"],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Toml,
        name: "TOML",
        extensions: &["toml"],
        line_comments: &[b"#"],
        quotes: &[
            (b"\"\"\"", b"\"\"\""),
            (b"'''", b"'''"),
            (b"\"", b"\""),
            (b"'", b"'"),
        ],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Tsx,
        name: "TSX",
        extensions: &["tsx"],
        line_comments: &[b"//"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"\"", b"\""), (b"'", b"'"), (b"`", b"`")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: TypeScript,
        name: "TypeScript",
        extensions: &["ts", "mts", "cts"],
        line_comments: &[b"//"],
        block_comments: &[(b"/*", b"*/")],
        quotes: &[(b"\"", b"\""), (b"'", b"'"), (b"`", b"`")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Xml,
        name: "XML",
        extensions: &["xml"],
        block_comments: &[(b"<!--", b"-->")],
        quotes: &[(b"\"", b"\""), (b"'", b"'")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Yaml,
        name: "YAML",
        extensions: &["yaml", "yml"],
        line_comments: &[b"#"],
        quotes: &[(b"\"", b"\""), (b"'", b"'")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Zig,
        name: "Zig",
        extensions: &["zig"],
        line_comments: &[b"//"],
        quotes: &[(b"\"", b"\"")],
        ..LanguageDef::NONE
    }
    .finish(),
    LanguageDef {
        lang: Zsh,
        name: "Zsh",
        extensions: &["zsh"],
        shebangs: &["#!/bin/zsh"],
        line_comments: &[b"#"],
        quotes: &[(b"\"", b"\""), (b"'", b"'")],
        ..LanguageDef::NONE
    }
    .finish(),
];

/// File names tokei gives to languages this table does not carry.
const OTHER_FILENAMES: &[&str] = &[
    "build",
    "workspace",
    "module",
    "meson.build",
    "meson_options.txt",
    "nuget.config",
    "packages.config",
    "nugetdefaults.config",
    "pkgbuild",
    "rakefile",
    "sconstruct",
    "sconscript",
    "snakefile",
];

/// Lowercased names of the languages tokei knows and this table does not carry: a Markdown
/// code fence naming one of them still opens an embedded block in tokei's count.
const OTHER_NAMES: &[&str] = &[
    ".net resource",
    "8th",
    "abap",
    "actionscript",
    "ada",
    "agda",
    "alex",
    "alloy",
    "apache velocity",
    "apl",
    "arduino c++",
    "ark typescript",
    "arturo",
    "asciidoc",
    "asp",
    "asp.net",
    "astro",
    "ats",
    "autoconf",
    "autohotkey",
    "autoit",
    "automake",
    "awk",
    "axaml",
    "ballerina",
    "bazel",
    "bean",
    "bicep",
    "blade",
    "bqn",
    "brightscript",
    "c shell",
    "c++ module",
    "c3",
    "cabal",
    "cairo",
    "cangjie",
    "cassius",
    "ceylon",
    "chapel",
    "cil (selinux)",
    "circom",
    "clojurec",
    "clojurescript",
    "cobol",
    "codeql",
    "coffeescript",
    "cogent",
    "coldfusion",
    "coldfusion cfscript",
    "common lisp",
    "coq",
    "crystal",
    "cuda",
    "cue",
    "cython",
    "d",
    "d2",
    "daml",
    "device tree",
    "dhall",
    "djot",
    "dream maker",
    "dust.js",
    "ebuild",
    "edgedb schema definition",
    "edgeql",
    "edn",
    "elvish",
    "emacs dev env",
    "emacs lisp",
    "emojicode",
    "f#",
    "factor",
    "fen",
    "fennel",
    "flatbuffers schema",
    "forge config",
    "forth",
    "fortran legacy",
    "fortran modern",
    "freemarker",
    "futhark",
    "gdb script",
    "gdscript",
    "gdshader",
    "gherkin (cucumber)",
    "gleam",
    "glimmer js",
    "glimmer ts",
    "glsl",
    "gml",
    "go html",
    "godot textscene",
    "gwion",
    "haml",
    "hamlet",
    "handlebars",
    "happy",
    "haxe",
    "headache",
    "hex",
    "hex0",
    "hex1",
    "hex2",
    "hicad",
    "hledger",
    "hlsl",
    "holyc",
    "hy",
    "idris",
    "intel hex",
    "isabelle",
    "jai",
    "janet",
    "jinja2",
    "jq",
    "jslt",
    "jsonnet",
    "julius",
    "jupyter notebooks",
    "k",
    "kaem",
    "kakoune script",
    "koka",
    "korn shell",
    "kv language",
    "lalrpop",
    "lauterbach practice script",
    "ld script",
    "lean",
    "lex",
    "lingua franca",
    "liquid",
    "livescript",
    "llvm",
    "logtalk",
    "lolcode",
    "lucius",
    "m1 assembly",
    "m4",
    "madlang",
    "max",
    "mdx",
    "menhir",
    "meson",
    "metal shading language",
    "mint",
    "mlatu",
    "modelica",
    "module-definition",
    "mojo",
    "monkey c",
    "moonbit",
    "moonscript",
    "msbuild",
    "mustache",
    "nextflow",
    "nim",
    "not quite perl",
    "nuget config",
    "nushell",
    "odin",
    "open policy agent",
    "opencl",
    "openqasm",
    "openscad",
    "opentype feature file",
    "org",
    "oz",
    "pacman's makepkg",
    "pascal",
    "phix",
    "plantuml",
    "po file",
    "poke",
    "polly",
    "pony",
    "postcss",
    "processing",
    "prolog",
    "prql",
    "psl assertion",
    "pug",
    "puppet",
    "purescript",
    "pyret",
    "q",
    "qcl",
    "qml",
    "racket",
    "rakefile",
    "raku",
    "razor",
    "redscript",
    "ren'py",
    "rescript",
    "roc",
    "rpm specfile",
    "ruby html",
    "rusty object notation",
    "scheme",
    "scons",
    "shaderlab",
    "sil",
    "slang",
    "slint",
    "smalltalk",
    "snakemake",
    "solidity",
    "specman e",
    "spice netlist",
    "sqf",
    "srecode template",
    "stan",
    "standard ml (sml)",
    "stata",
    "stratego/xt",
    "stylus",
    "svelte",
    "swig",
    "systemverilog",
    "tact",
    "tcl",
    "templ",
    "tera",
    "the wenyan programming language",
    "thrift",
    "ttcn-3",
    "twig",
    "typst",
    "uiua",
    "umpl",
    "unison",
    "unreal markdown",
    "unreal plugin",
    "unreal project",
    "unreal script",
    "unreal shader",
    "unreal shader header",
    "ur/web",
    "ur/web project",
    "vala",
    "vb6/vba",
    "vbscript",
    "verilog",
    "verilog args file",
    "vhdl",
    "vim script",
    "virgil",
    "visual basic",
    "visual studio project",
    "visual studio solution",
    "vue",
    "webassembly",
    "webgpu shader language",
    "wolfram",
    "xaml",
    "xcode config",
    "xsl",
    "xtend",
    "zencode",
    "zokrates",
];

#[cfg(test)]
mod tests {
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
            (Shell, "Shell"),
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
            (ProtocolBuffers, "Protocol Buffers"),
            (PlainText, "Plain Text"),
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
                .chain(def.block_comments);
            let tokens: Vec<&[u8]> = pairs
                .flat_map(|&(open, close)| [open, close])
                .chain(def.line_comments.iter().copied())
                .chain(def.important.iter().copied())
                .collect();
            for token in tokens {
                // A token with whitespace could straddle the trimmed edge of a line.
                assert!(!token.is_empty(), "{}", def.name);
                assert!(
                    !token.iter().any(|b| b.is_ascii_whitespace()),
                    "{}: {token:?}",
                    def.name
                );
            }
            // The scanner keeps one closing token and a depth for nesting.
            assert!(!def.nested || def.block_comments.len() == 1, "{}", def.name);
            // tokei's build sorts quotes longest first.
            for quotes in [def.quotes, def.verbatim_quotes] {
                let lengths: Vec<usize> =
                    quotes.iter().map(|(o, c)| o.len().max(c.len())).collect();
                assert!(lengths.is_sorted_by(|a, b| a >= b), "{}", def.name);
            }
            for ext in def.extensions {
                assert_eq!(ext.to_lowercase(), *ext);
                let owners = DEFS.iter().filter(|d| d.extensions.contains(ext)).count();
                assert_eq!(owners, 1, ".{ext}");
            }
        }
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
            ("notes.txt", Some(PlainText)),
            ("x.proto", Some(ProtocolBuffers)),
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
            // Claimed by languages tokei knows and this table does not carry.
            ("meson_options.txt", None),
            ("view.blade.php", None),
            ("BUILD", None),
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
            (b"#!/bin/sh\necho hi\n", Some(Shell)),
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
        assert_eq!(
            Language::detect(Path::new("tool"), Some(&long)),
            Some(Shell)
        );
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
        assert_eq!(lookup_name(b"rust"), Some(Named::Ours(Rust)));
        assert_eq!(lookup_name(b"c++ header"), Some(Named::Ours(CppHeader)));
        assert_eq!(lookup_name(b"Plain Text"), Some(Named::Ours(PlainText)));
        assert_eq!(lookup_name(b"dhall"), Some(Named::Foreign));
        assert_eq!(lookup_name(b"sh"), None);
        assert_eq!(lookup_name(b"\xff"), None);
        assert_eq!(
            lookup_mime(b"text/javascript"),
            Some(Named::Ours(JavaScript))
        );
        assert_eq!(lookup_mime(b"application/prql"), Some(Named::Foreign));
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
