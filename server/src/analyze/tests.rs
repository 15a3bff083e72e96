//! Unit tests of merging the chunks' results: order, limits and totals.

use std::path::PathBuf;

use super::markers::Found;
use super::scan::{ChunkResult, LanguagePart, MarkerAt, Sized};
use super::*;

fn counts(code: u64, comments: u64, blanks: u64) -> Counts {
    Counts {
        code,
        comments,
        blanks,
    }
}

fn marker(path: &str, line: u64) -> MarkerAt {
    MarkerAt {
        path: path.into(),
        found: Found {
            kind: MarkerKind::Todo,
            line,
            text: format!("// TODO {line}"),
        },
    }
}

fn chunk(
    languages: &[(Language, u64, Counts)],
    markers: &[(&str, u64)],
    largest: &[(&str, u64)],
) -> ChunkResult {
    let mut result = ChunkResult::default();
    for &(language, files, c) in languages {
        let part = result
            .languages
            .entry(language)
            .or_insert_with(LanguagePart::default);
        part.files += files;
        part.counts += c;
        result.files += files;
    }
    result.markers = markers.iter().map(|&(p, l)| marker(p, l)).collect();
    result.marker_counts[0] = markers.len() as u64 + 1;
    result.largest = largest
        .iter()
        .map(|&(path, bytes)| Sized {
            path: path.into(),
            bytes,
            language: None,
        })
        .collect();
    result
}

fn listing() -> Listing {
    Listing {
        root: PathBuf::from("/w"),
        ..Listing::default()
    }
}

#[test]
fn markers_are_the_first_by_chunk_order_and_counts_are_complete() {
    let options = AnalyzeOptions {
        marker_locations: 3,
        ..AnalyzeOptions::default()
    };
    let parts = vec![
        chunk(&[], &[("a.rs", 1), ("a.rs", 9)], &[]),
        chunk(&[], &[("b.rs", 2), ("b.rs", 3)], &[]),
        chunk(&[], &[("c.rs", 1)], &[]),
    ];
    let a = merge(listing(), parts, &options);
    let kept: Vec<(&str, u64)> = a
        .markers
        .locations
        .iter()
        .map(|l| (l.path.as_str(), l.line))
        .collect();
    assert_eq!(kept, vec![("a.rs", 1), ("a.rs", 9), ("b.rs", 2)]);
    assert_eq!(a.markers.todo, 3 + 3 + 2);
}

#[test]
fn languages_sum_across_chunks_most_code_first_with_embedded_in_the_total() {
    let mut first = chunk(
        &[
            (Language::Toml, 1, counts(10, 1, 1)),
            (Language::Rust, 2, counts(50, 5, 5)),
        ],
        &[],
        &[],
    );
    if let Some(rust) = first.languages.get_mut(&Language::Rust) {
        rust.embedded.insert(Language::Markdown, counts(0, 7, 1));
    }
    let second = chunk(
        &[
            (Language::Rust, 1, counts(100, 0, 0)),
            (Language::Markdown, 1, counts(0, 3, 0)),
        ],
        &[],
        &[],
    );
    let a = merge(listing(), vec![first, second], &AnalyzeOptions::default());
    let names: Vec<&str> = a.languages.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, vec!["Rust", "TOML", "Markdown"]);
    let rust = &a.languages[0];
    assert_eq!(rust.files, 3);
    assert_eq!(rust.lines, LineCounts::from(counts(150, 5, 5)));
    assert_eq!(rust.embedded.len(), 1);
    assert_eq!(rust.embedded[0].name, "Markdown");
    assert_eq!(a.total.files, 5);
    assert_eq!(a.total.lines, LineCounts::from(counts(160, 16, 7)));
    assert_eq!(a.files.counted, 5);
}

#[test]
fn largest_files_merge_to_the_overall_top() {
    let options = AnalyzeOptions {
        largest_files: 3,
        ..AnalyzeOptions::default()
    };
    let parts = vec![
        chunk(&[], &[], &[("a", 5), ("b", 1)]),
        chunk(&[], &[], &[("c", 9), ("d", 5)]),
        chunk(&[], &[], &[("e", 2)]),
    ];
    let a = merge(listing(), parts, &options);
    let got: Vec<(&str, u64)> = a
        .largest_files
        .iter()
        .map(|f| (f.path.as_str(), f.bytes))
        .collect();
    assert_eq!(got, vec![("c", 9), ("a", 5), ("d", 5)]);
}

#[test]
fn an_empty_tree_reports_nothing_found() {
    let a = merge(listing(), Vec::new(), &AnalyzeOptions::default());
    assert_eq!(a.total, Totals::default());
    let markdown = a.to_markdown();
    assert!(
        markdown.starts_with("# Workspace analysis: w\n"),
        "{markdown}"
    );
    assert!(markdown.contains("No files of a known language."));
    assert!(markdown.contains("No TODO, FIXME, HACK or XXX markers."));
    assert!(markdown.contains("No project manifests found."));
}
