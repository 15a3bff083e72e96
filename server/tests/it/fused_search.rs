//! Fused searches give each call exactly what it would have got alone: a mixed batch of
//! `grep` and `glob` calls (different paths, globs, types, case options, context, output
//! modes, result caps, a bad pattern, a missing path, a single file) over a real corpus —
//! the Debian sources `tests/provision` fetches (`SWITCHYARD_MIXED_CORPUS`) — run as one
//! lane batch sharing one walk, and again one call at a time; every result and its
//! rendering must be the same, and the batch must have walked once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::path::PathBuf;

use serde_json::{Value, json};
use switchyard::tools::{CallContext, ToolError, ToolOutput, ToolsConfig};

fn corpus() -> PathBuf {
    PathBuf::from(std::env::var_os("SWITCHYARD_MIXED_CORPUS").expect(
        "SWITCHYARD_MIXED_CORPUS names the mixed corpus: source the env file tests/provision prints",
    ))
}

fn batch() -> Vec<(String, Value)> {
    let calls = [
        (
            "grep",
            json!({"pattern": "static int", "path": "git-2.39.5", "type": "c", "context": 2, "max_results": 50}),
        ),
        (
            "grep",
            json!({"pattern": "todo", "case_insensitive": true, "output": "files"}),
        ),
        (
            "grep",
            json!({"pattern": "proc [a-z]+", "glob": "*.tcl", "output": "count"}),
        ),
        ("grep", json!({"pattern": "([a-z", "path": "git-2.39.5"})),
        (
            "grep",
            json!({"pattern": "msgid", "path": "util-linux-2.38.1/po", "max_results": 5}),
        ),
        (
            "grep",
            json!({"pattern": "Copyright (C)", "fixed_string": true, "smart_case": true, "path": "tcl8.6-8.6.13+dfsg", "max_results": 1000}),
        ),
        ("glob", json!({"pattern": "**/*.adoc"})),
        (
            "glob",
            json!({"pattern": "*.h", "path": "libpng1.6-1.6.39", "limit": 7}),
        ),
        (
            "glob",
            json!({"pattern": "**/meson.build", "include_hidden": true}),
        ),
        (
            "grep",
            json!({"pattern": "\\bmain\\(", "max_results": 10, "context": 1}),
        ),
        ("grep", json!({"pattern": "x", "path": "no-such-folder"})),
        (
            "grep",
            json!({"pattern": "^all:", "path": "git-2.39.5/Makefile"}),
        ),
        (
            "grep",
            json!({"pattern": "FMT_[A-Z]+", "path": "fmtlib-9.1.0+ds1", "glob": "!test/**", "output": "count", "max_results": 4}),
        ),
        ("glob", json!({"pattern": "git-2.39.5/t/*.sh", "limit": 3})),
        (
            "grep",
            json!({"pattern": "^\\.", "path": "git-2.39.5/.gitignore"}),
        ),
        (
            "grep",
            json!({"pattern": "^#include", "path": "libpng1.6-1.6.39", "output": "count"}),
        ),
        (
            "grep",
            json!({"pattern": "\\)$", "path": "fmtlib-9.1.0+ds1", "output": "count"}),
        ),
        (
            "grep",
            json!({"pattern": "^$", "path": "libxkbcommon-1.5.0", "output": "count"}),
        ),
    ];
    calls
        .into_iter()
        .map(|(name, args)| (name.to_string(), args))
        .collect()
}

/// The result with what a separate run leaves to chance taken out: how many files a grep
/// searched before an ordered early stop took effect.
fn settled(result: Result<ToolOutput, ToolError>) -> Result<ToolOutput, ToolError> {
    result.map(|output| match output {
        ToolOutput::Grep(mut grep) if grep.stopped_at_limit => {
            grep.files_searched = 0;
            ToolOutput::Grep(grep)
        }
        other => other,
    })
}

/// Runs `calls` one at a time and then as one fused batch over `root`; asserts the batch
/// walked once and that every call got what it got alone. Returns the renderings.
fn fused_equals_alone(root: &std::path::Path, calls: &[(String, Value)]) -> Vec<String> {
    let (runtime, toolbox) = common::toolbox::on(root, ToolsConfig::default());
    let lanes = toolbox.lanes().clone();
    let ctx = CallContext::default();
    let alone: Vec<Result<ToolOutput, ToolError>> = calls
        .iter()
        .map(|(name, args)| runtime.block_on(toolbox.run(name, args.clone(), &ctx)))
        .collect();
    let walks = lanes.counter("search.fused_walks");
    let before = (walks.get(), lanes.metrics());
    let fused = runtime.block_on(toolbox.run_batch(calls.to_vec(), &ctx));
    assert_eq!(walks.get(), before.0 + 1, "the batch shares one walk");

    assert_eq!(fused.len(), calls.len());
    let mut shown = Vec::new();
    for (i, ((name, args), (alone, fused))) in
        calls.iter().zip(alone.into_iter().zip(fused)).enumerate()
    {
        let render = |r: &Result<ToolOutput, ToolError>| match r {
            Ok(output) => toolbox.render(output),
            Err(e) => format!("error: {}", e.message),
        };
        assert_eq!(
            render(&fused),
            render(&alone),
            "call {i}: {name} {args}: rendering"
        );
        assert_eq!(
            settled(fused.clone()),
            settled(alone),
            "call {i}: {name} {args}: result"
        );
        shown.push(render(&fused));
    }
    shown
}

#[test]
fn a_fused_batch_returns_what_each_call_returns_alone() {
    let shown = fused_equals_alone(&corpus(), &batch());
    // The batch holds what it should: matches, limits, counts, errors of its own.
    let expect_some = |i: usize, what: &str| {
        assert!(
            shown[i].contains(what),
            "call {i} says {:?}, not {what:?}",
            shown[i]
        );
    };
    expect_some(0, "stopped at the `max_results` limit");
    expect_some(3, "invalid regex");
    expect_some(4, "stopped at the `max_results` limit");
    expect_some(6, "files match");
    expect_some(7, "matching files shown");
    expect_some(10, "error:");
    assert!(shown[1].contains("files match"), "{}", shown[1]);
}

/// Files whose raw bytes are not what the searcher searches — a UTF-16 file and a UTF-8
/// file behind byte-order marks, a NUL byte after thousands of matching lines, a binary
/// file with no match — give a fused batch exactly what each call gets alone.
#[test]
fn a_fused_batch_agrees_on_encodings_and_binary_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut utf16 = vec![0xFF, 0xFE];
    utf16.extend(
        "TODO in utf-16\nnothing\n"
            .encode_utf16()
            .flat_map(u16::to_le_bytes),
    );
    std::fs::write(root.join("utf16.txt"), utf16).unwrap();
    std::fs::write(
        root.join("bom8.txt"),
        b"\xEF\xBB\xBFTODO first\nlater TODO\n",
    )
    .unwrap();
    let mut late = b"TODO before\n".repeat(10_000);
    late.extend_from_slice(b"\0TODO after\n");
    std::fs::write(root.join("late_nul.txt"), late).unwrap();
    std::fs::write(root.join("nul.bin"), b"abc\0def\n").unwrap();
    std::fs::write(root.join("plain.txt"), b"nothing to see\n").unwrap();
    let calls: Vec<(String, Value)> = [
        json!({"pattern": "^TODO", "output": "count"}),
        json!({"pattern": "TODO", "output": "files"}),
        json!({"pattern": "TODO", "max_results": 100_000}),
        json!({"pattern": "zzz"}),
        json!({"pattern": "\\ATODO", "output": "count"}),
    ]
    .into_iter()
    .map(|args| ("grep".to_string(), args))
    .collect();
    let shown = fused_equals_alone(root, &calls);
    assert!(shown[1].contains("utf16.txt"), "{}", shown[1]);
    assert!(shown[0].contains("bom8.txt"), "{}", shown[0]);
}

/// Greps for literal texts that overlap one another, start one another or occur only
/// inside another's match — looked for together in one pass over each file — give a fused
/// batch exactly what each call gets alone.
#[test]
fn a_fused_batch_finds_literal_texts_that_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let files: [(&str, &[u8]); 6] = [
        ("overlap.txt", b"async fn main() {}\n"),
        ("inside.txt", b"xabcabcx\n"),
        ("prefix.txt", b"unsafe fn f()\nunsafe\n"),
        ("late.txt", b"one\ntwo\nthree fn main\n"),
        ("none.txt", b"nothing here at all\n"),
        ("binary.bin", b"async fn\0main\n"),
    ];
    for (name, bytes) in files {
        std::fs::write(root.join(name), bytes).unwrap();
    }
    let calls: Vec<(String, Value)> = [
        json!({"pattern": "async fn", "output": "files"}),
        json!({"pattern": "fn main", "output": "count"}),
        json!({"pattern": "c fn m", "fixed_string": true}),
        json!({"pattern": "unsafe"}),
        json!({"pattern": "unsafe fn", "output": "count"}),
        json!({"pattern": "abca"}),
        json!({"pattern": "bcab", "output": "files"}),
        json!({"pattern": "cabc"}),
        json!({"pattern": "three"}),
        json!({"pattern": "fn main", "output": "files", "max_results": 1}),
        json!({"pattern": "zzz"}),
    ]
    .into_iter()
    .map(|args| ("grep".to_string(), args))
    .collect();
    let shown = fused_equals_alone(root, &calls);
    assert!(shown[2].contains("overlap.txt"), "{}", shown[2]);
    assert!(shown[7].contains("inside.txt"), "{}", shown[7]);
    assert!(shown[3].contains("prefix.txt"), "{}", shown[3]);
}
