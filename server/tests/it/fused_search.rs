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

#[test]
fn a_fused_batch_returns_what_each_call_returns_alone() {
    let (runtime, toolbox) = common::toolbox::on(&corpus(), ToolsConfig::default());
    let lanes = toolbox.lanes().clone();
    let ctx = CallContext::default();
    let calls = batch();
    let alone: Vec<Result<ToolOutput, ToolError>> = calls
        .iter()
        .map(|(name, args)| runtime.block_on(toolbox.run(name, args.clone(), &ctx)))
        .collect();
    let walks = lanes.counter("search.fused_walks");
    let before = (walks.get(), lanes.metrics());
    let fused = runtime.block_on(toolbox.run_batch(calls.clone(), &ctx));
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
