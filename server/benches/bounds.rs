//! Inputs that used to take quadratic time, each against its own baseline measured in this
//! run (issue 11, item 6):
//! 1. `edit` (dry run: the edit, its line count and its diff) changing every line of an
//!    83,000-line file vs changing one line of it — the diff's deadline bounds the first;
//! 2. a model answer whose tool-call argument is one SSE event of 20 MiB vs one of 1 MiB,
//!    read by the model client from the mock model over loopback — linear is 20x.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::median_ns;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use criterion::Criterion;
use serde_json::json;
use switchyard::approvals::{Approvals, Prompter};
use switchyard::documents::Documents;
use switchyard::edits::Applier;
use switchyard::lanes::{Lanes, LanesConfig};
use switchyard::llm::{Client, LlmConfig, Message, ModelRequest, ProviderKind, Secret};
use switchyard::tools::{CallContext, Mutations, Toolbox, ToolsConfig, Workspace};
use switchyard_tests::mock_model::{MockModel, Response, Rule, Script, ToolCall};
use tokio_util::sync::CancellationToken;

const LINES: usize = 83_000;
const MIB: usize = 1 << 20;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn edits(c: &mut Criterion, runtime: &tokio::runtime::Runtime, dir: &Path) {
    let text: String = (0..LINES)
        .map(|i| format!("let value_{i} = compute({i});\n"))
        .collect();
    std::fs::write(dir.join("big.rs"), &text).unwrap();
    let lanes = Lanes::with_runtime(LanesConfig::default(), runtime.handle().clone()).unwrap();
    let toolbox = Toolbox::new(
        Workspace::new([dir.to_path_buf()]).unwrap(),
        lanes,
        Documents::new(),
        ToolsConfig::default(),
    );
    toolbox.set_mutations(Mutations {
        applier: Applier::Disk { dry_run: true },
        approvals: Arc::new(Approvals::new(
            switchyard::config::Current::default(),
            Prompter::AllowAll,
        )),
    });
    let run = |args: serde_json::Value| {
        runtime
            .block_on(toolbox.run("edit", args, &CallContext::default()))
            .unwrap()
    };
    // The edit tool wants the file read first.
    runtime
        .block_on(toolbox.run(
            "read",
            json!({"path": "big.rs", "limit": 1}),
            &CallContext::default(),
        ))
        .unwrap();
    let mut group = c.benchmark_group("edit_83k_lines");
    group.sample_size(10);
    group.bench_function("one_line", |b| {
        b.iter(|| {
            black_box(run(json!({
                "path": "big.rs",
                "old_string": "let value_41500 = ",
                "new_string": "let renamed = ",
            })))
        })
    });
    group.bench_function("every_line", |b| {
        b.iter(|| {
            black_box(run(json!({
                "path": "big.rs",
                "old_string": " = compute(",
                "new_string": " = recompute(",
                "replace_all": true,
            })))
        })
    });
    group.finish();
}

/// A client of `model`, and a request it answers with one tool call whose arguments hold
/// `size` bytes in one SSE event.
fn sse(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let mut group = c.benchmark_group("sse_one_event");
    group.sample_size(10);
    for (name, size) in [("1_mib", MIB), ("20_mib", 20 * MIB)] {
        let content = "x".repeat(size);
        let model = runtime.block_on(async {
            MockModel::start(Script::new(vec![
                Rule::openai(
                    Response::tool_calls(vec![ToolCall::new(
                        "write",
                        json!({"path": "big.txt", "content": content}),
                    )])
                    .chunk_size(size + 1024),
                )
                .repeat(),
            ]))
            .await
        });
        let client = Client::new(
            LlmConfig {
                provider: Some(ProviderKind::OpenAi),
                base_url: Some(model.openai_base_url()),
                model: Some("mock-model".into()),
                api_key: Some(Secret::new("sk-bench")),
                ..LlmConfig::default()
            }
            .resolve(&|_: &str| None)
            .unwrap(),
        )
        .unwrap();
        let request = ModelRequest {
            messages: vec![Message::User {
                content: "write it".into(),
            }],
            ..ModelRequest::default()
        };
        let cancel = CancellationToken::new();
        group.bench_function(name, |b| {
            b.iter(|| {
                let answer = runtime
                    .block_on(client.stream(&request, &cancel, |_| {}))
                    .unwrap();
                assert!(answer.tool_calls[0].arguments.len() > size);
                black_box(answer)
            })
        });
    }
    group.finish();
}

fn main() {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let out = tmp.join("criterion-bounds");
    let data = tmp.join("bounds-bench-data");
    std::fs::create_dir_all(&data).unwrap();
    let mut c = Criterion::default()
        .output_directory(&out)
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    let runtime = runtime();
    edits(&mut c, &runtime, &data);
    sse(&mut c, &runtime);
    c.final_summary();

    let m = |g: &str, f: &str| median_ns(&out, g, f);
    println!("\nbounded inputs (criterion medians, this run):");
    if let (Some(one), Some(every)) = (
        m("edit_83k_lines", "one_line"),
        m("edit_83k_lines", "every_line"),
    ) {
        println!(
            "  edit of an 83,000-line file  one line {:7.1} ms vs every line {:7.1} ms = {:.1}x (bounded by the diff deadline; was 137 s)",
            one / 1e6,
            every / 1e6,
            every / one
        );
    }
    if let (Some(small), Some(big)) = (m("sse_one_event", "1_mib"), m("sse_one_event", "20_mib")) {
        println!(
            "  one SSE event  1 MiB {:7.1} ms vs 20 MiB {:7.1} ms = {:.1}x (linear: 20x; 8 MiB took 21.9 s before)",
            small / 1e6,
            big / 1e6,
            big / small
        );
    }
}
