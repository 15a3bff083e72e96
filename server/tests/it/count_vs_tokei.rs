//! Holds the line counter to the real tokei: on the fixture tree `tests/fixtures/count`
//! every language's files, code, comments and blanks (and its embedded blocks) must equal
//! tokei's exactly, and so must every file of a generated set of snippets that stress
//! strings, comments, escapes and embedded blocks, and every file of a mixed corpus of
//! real sources (Debian source packages: C, C++, Tcl, Perl, shell, AsciiDoc, PO, Autoconf,
//! Meson, …) that `tests/provision` fetches and names in `SWITCHYARD_MIXED_CORPUS`.
//!
//! tokei comes from `SWITCHYARD_TOKEI`, else `PATH`; `tests/run` installs it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "the helpers are test code: a failed setup step should panic with its message"
)]

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use switchyard::analyze::count::{Counts, count_with_embedded};
use switchyard::analyze::languages::Language;

/// One language's numbers: files, own counts, and embedded blocks per child language.
#[derive(Debug, Default, PartialEq)]
struct LanguageTotals {
    files: usize,
    counts: Counts,
    embedded: BTreeMap<String, Counts>,
}

/// Per-language totals and per-file own counts.
#[derive(Debug, Default)]
struct Tally {
    languages: BTreeMap<String, LanguageTotals>,
    files: BTreeMap<PathBuf, Counts>,
    /// Each file's language.
    language_of: BTreeMap<PathBuf, String>,
}

fn run_tokei(dir: &Path) -> Tally {
    let mut tally = Tally::default();
    for (name, language) in common::tokei::run(dir).languages {
        let totals = LanguageTotals {
            files: language.files.len(),
            counts: language.lines,
            embedded: language.embedded,
        };
        for (path, _) in &language.files {
            tally.language_of.insert(path.clone(), name.clone());
        }
        tally.files.extend(language.files);
        tally.languages.insert(name, totals);
    }
    tally
}

/// Walks `dir` with tokei's settings and counts every file whose language is detected.
fn run_ours(dir: &Path) -> Tally {
    let mut tally = Tally::default();
    let walker = ignore::WalkBuilder::new(dir)
        .add_custom_ignore_filename(".tokeignore")
        .build();
    for entry in walker {
        let entry = entry.unwrap();
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        let Some(language) = Language::detect(entry.path(), Some(&bytes)) else {
            continue;
        };
        let totals = tally
            .languages
            .entry(language.name().to_string())
            .or_default();
        let own = count_with_embedded(language, &bytes, &mut |child, counts| {
            *totals.embedded.entry(child.name().to_string()).or_default() += counts;
        });
        totals.files += 1;
        totals.counts += own;
        tally
            .language_of
            .insert(entry.path().to_path_buf(), language.name().to_string());
        tally.files.insert(entry.into_path(), own);
    }
    tally
}

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/count")
}

#[test]
fn fixture_tree_matches_tokei_exactly() {
    let dir = fixture_dir();
    let tokei = run_tokei(&dir);
    let ours = run_ours(&dir);

    let differing: Vec<String> = tokei
        .files
        .iter()
        .filter(|(path, counts)| ours.files.get(*path) != Some(counts))
        .map(|(path, counts)| {
            format!(
                "{}: tokei {counts:?}, ours {:?}",
                path.display(),
                ours.files.get(path)
            )
        })
        .collect();
    assert!(
        differing.is_empty(),
        "files differ:\n{}",
        differing.join("\n")
    );
    assert_eq!(ours.files.len(), tokei.files.len(), "files counted");
    assert_eq!(ours.languages, tokei.languages);

    // The fixture keeps covering the languages analyze must get right.
    let required = [
        "Rust",
        "C",
        "C Header",
        "C++",
        "C++ Header",
        "Go",
        "Python",
        "JavaScript",
        "TypeScript",
        "JSX",
        "TSX",
        "Java",
        "Kotlin",
        "Shell",
        "BASH",
        "Lua",
        "Markdown",
        "TOML",
        "YAML",
        "JSON",
        "HTML",
        "CSS",
        "Sass",
        "Ruby",
        "PHP",
        "C#",
        "Swift",
        "Scala",
        "SQL",
        "Makefile",
        "Dockerfile",
        "CMake",
        "XML",
        "Zig",
        "Haskell",
        "Nix",
        "Protocol Buffers",
        "Plain Text",
    ];
    assert_covers(&ours, &required, "the fixture");
}

/// Fails unless `tally` counted files of every language named in `required`.
fn assert_covers(tally: &Tally, required: &[&str], what: &str) {
    let missing: Vec<&str> = required
        .iter()
        .copied()
        .filter(|name| !tally.languages.contains_key(*name))
        .collect();
    assert!(missing.is_empty(), "{what} lacks {missing:?}");
}

/// A small deterministic generator (xorshift), so the snippets are the same on every run.
struct Snippets(u64);

impl Snippets {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, items: &[&'a [u8]]) -> &'a [u8] {
        items[(self.next() % items.len() as u64) as usize]
    }

    /// Up to `max` tokens from the shared alphabet and the language's own.
    fn snippet(&mut self, own: &[&[u8]], max: u64) -> Vec<u8> {
        const COMMON: &[&[u8]] = &[
            b" ",
            b"  ",
            b"\t",
            b"\n",
            b"\n",
            b"\n",
            b"\r\n",
            b"x",
            b"foo",
            b"(",
            b")",
            b";",
            b"{",
            b"}",
            b"\\",
            b"\\\\",
            b"\"",
            b"'",
            b"`",
            b"#",
            b"/",
            b"*",
            b"-",
            b"!",
            b"=",
            b"<",
            b">",
            b"\xc2\xa0",
            b"\xff",
        ];
        let len = self.next() % (max + 1);
        let mut out = Vec::new();
        for _ in 0..len {
            // Language tokens three times as often as common ones.
            let token = if self.next().is_multiple_of(4) {
                self.pick(COMMON)
            } else {
                self.pick(own)
            };
            out.extend_from_slice(token);
        }
        out
    }
}

#[test]
fn generated_snippets_match_tokei_file_by_file() {
    let languages: &[(&str, &[&[u8]])] = &[
        (
            "rs",
            &[
                b"//",
                b"///",
                b"//!",
                b"/*",
                b"*/",
                b"r#\"",
                b"\"#",
                b"r##\"",
                b"\"##",
                b"#\"",
                b"'\"'",
                b"\n    /// doc ```rust\n",
                b"```",
                b"```rust\n",
                b"fn f() {}",
            ],
        ),
        (
            "c",
            &[b"//", b"/*", b"*/", b"\"", b"\\\"", b"#include", b"int x;"],
        ),
        ("cpp", &[b"//", b"/*", b"*/", b"R\"(", b")\"", b"\""]),
        (
            "py",
            &[b"#", b"\"\"\"", b"'''", b"\"", b"'", b"\\\"", b"def f():"],
        ),
        ("js", &[b"//", b"/*", b"*/", b"`", b"${", b"\"", b"'"]),
        (
            "md",
            &[
                b"```",
                b"```rust\n",
                b"```rust,ignore\n",
                b"```toml ",
                b"```\r\n",
                b"````",
                b"```console\n",
                b"```c++\n",
                b"# title",
                b"- item",
                b"```rust",
                b"///",
            ],
        ),
        (
            "html",
            &[
                b"<!--",
                b"-->",
                b"<script>",
                b"</script>",
                b"<script type=\"text/css\">",
                b"<script type=\"module\" src=\"a.js\">",
                b"<style>",
                b"</style>",
                b"<style lang=\"scss\">",
                b"<template>",
                b"</template>",
                b"<template lang=\"html\">",
                b"type=\"",
                b"lang=\"",
                b"<div>",
            ],
        ),
        ("lua", &[b"--", b"--[[", b"]]", b"\"", b"'"]),
        ("toml", &[b"#", b"\"\"\"", b"'''", b"\"", b"'"]),
        ("hs", &[b"--", b"{-", b"-}", b"\""]),
        ("sh", &[b"#", b"\"", b"'", b"#!/bin/sh"]),
        ("cs", &[b"//", b"/*", b"*/", b"@\"", b"\""]),
        ("rb", &[b"#", b"=begin", b"=end", b"\""]),
        ("swift", &[b"//", b"/*", b"*/", b"\""]),
    ];
    let dir = tempfile::tempdir().unwrap();
    let mut snippets = Snippets(0x5eed_1234_abcd_0001);
    for i in 0..30 {
        for (extension, tokens) in languages {
            let mut text = snippets.snippet(tokens, 120);
            if snippets.next().is_multiple_of(10) {
                text.retain(|&b| b != b'\n');
            }
            std::fs::write(dir.path().join(format!("f{i}.{extension}")), text).unwrap();
        }
    }
    let tokei = run_tokei(dir.path());
    let ours = run_ours(dir.path());
    assert_eq!(
        tokei.files.len(),
        30 * languages.len(),
        "tokei counted every file"
    );
    let differing: Vec<String> = tokei
        .files
        .iter()
        .filter(|(path, counts)| ours.files.get(*path) != Some(counts))
        .map(|(path, counts)| {
            let text = std::fs::read(path).unwrap();
            format!(
                "{}: tokei {counts:?}, ours {:?}\n  {:?}",
                path.display(),
                ours.files.get(path),
                String::from_utf8_lossy(&text)
            )
        })
        .collect();
    assert!(
        differing.is_empty(),
        "{} files differ:\n{}",
        differing.len(),
        differing.join("\n")
    );
}

/// Every file of the mixed corpus: the same files in the same languages, with the same
/// code, comment and blank lines, and the same embedded blocks per language.
#[test]
fn mixed_corpus_matches_tokei_file_by_file() {
    let dir = PathBuf::from(std::env::var_os("SWITCHYARD_MIXED_CORPUS").expect(
        "SWITCHYARD_MIXED_CORPUS names the mixed corpus: \
         source the env file tests/provision prints",
    ));
    let tokei = run_tokei(&dir);
    let ours = run_ours(&dir);

    let mut differing: Vec<String> = Vec::new();
    for (path, counts) in &tokei.files {
        let language = &tokei.language_of[path];
        let (our_language, our_counts) = (ours.language_of.get(path), ours.files.get(path));
        if our_language != Some(language) || our_counts != Some(counts) {
            differing.push(format!(
                "{}: tokei {language} {counts:?}, ours {our_language:?} {our_counts:?}",
                path.display()
            ));
        }
    }
    for path in ours.files.keys().filter(|p| !tokei.files.contains_key(*p)) {
        differing.push(format!(
            "{}: only ours counts it, as {}",
            path.display(),
            ours.language_of[path]
        ));
    }
    assert!(
        differing.is_empty(),
        "{} of {} files differ:\n{}",
        differing.len(),
        tokei.files.len(),
        differing[..differing.len().min(40)].join("\n")
    );
    assert_eq!(ours.languages, tokei.languages);

    // The corpus keeps covering the languages the hand-kept table once missed.
    let required = [
        "C",
        "C Header",
        "C++",
        "TCL",
        "Perl",
        "Shell",
        "BASH",
        "AsciiDoc",
        "PO File",
        "Autoconf",
        "Meson",
        "Module-Definition",
        "M4",
        "Automake",
    ];
    assert_covers(&ours, &required, "the mixed corpus");
    assert!(
        tokei.files.len() >= 5_000,
        "the mixed corpus has only {} files tokei counts",
        tokei.files.len()
    );
}
