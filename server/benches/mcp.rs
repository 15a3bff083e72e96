//! One MCP tool call through the core's run-tool path (the toolbox: the tool found in the
//! table, a Query-lane task, the server's concurrency limit and timeout, the result made
//! `ToolOutput`) against the same call made directly on an `rmcp` client, in the same run:
//! `@modelcontextprotocol/server-everything`'s `echo` over stdio, one server process for
//! each side, both started before measuring.
//!
//! Needs `SWITCHYARD_NODE24` and `SWITCHYARD_MCP_MODULES`: source the env file
//! `tests/provision` prints. The closing line prints the ratio of the criterion medians.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use common::{median_ns, runtime};
use criterion::Criterion;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::json;
use switchyard::config::Config;
use switchyard::documents::Documents;
use switchyard::lanes::{Lanes, LanesConfig};
use switchyard::mcp::{McpServerConfig, ServerState};
use switchyard::tools::{CallContext, ToolOutput, Toolbox, Workspace};

fn provisioned(var: &str) -> PathBuf {
    std::env::var_os(var)
        .unwrap_or_else(|| panic!("{var} is not set: source the env file tests/provision prints"))
        .into()
}

/// The node program and arguments that run server-everything over stdio.
fn everything() -> (String, Vec<String>) {
    let script = provisioned("SWITCHYARD_MCP_MODULES")
        .join("@modelcontextprotocol/server-everything/dist/index.js");
    (
        provisioned("SWITCHYARD_NODE24").display().to_string(),
        vec![script.display().to_string(), "stdio".into()],
    )
}

fn main() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("criterion-mcp");
    let mut c = Criterion::default()
        .output_directory(&out)
        .sample_size(50)
        .measurement_time(Duration::from_secs(10))
        .configure_from_args();
    let runtime = runtime();
    let (program, args) = everything();
    let root = tempfile::tempdir().unwrap();

    // Direct: an rmcp client of its own server process.
    let direct = runtime.block_on(async {
        let mut command = tokio::process::Command::new(&program);
        command.args(&args);
        ().serve(TokioChildProcess::new(command).unwrap())
            .await
            .unwrap()
    });
    let arguments = json!({"message": "hello"});
    let call_direct = || {
        let params = CallToolRequestParams::new("echo")
            .with_arguments(arguments.as_object().unwrap().clone());
        runtime.block_on(direct.peer().call_tool(params)).unwrap()
    };
    let answer = call_direct();
    assert!(format!("{answer:?}").contains("Echo: hello"), "{answer:?}");

    // Through the lanes: the toolbox the core runs every tool call with.
    let lanes = Lanes::with_runtime(LanesConfig::default(), runtime.handle().clone()).unwrap();
    let config = Config {
        mcp_servers: [(
            "everything".to_string(),
            McpServerConfig {
                command: Some(program.clone()),
                args: args.clone(),
                ..McpServerConfig::default()
            },
        )]
        .into(),
        ..Config::default()
    };
    let toolbox = Toolbox::new(
        Workspace::new([root.path().to_path_buf()]).unwrap(),
        lanes,
        Documents::new(),
        config,
    );
    runtime.block_on(toolbox.start_mcp(None));
    let status = toolbox.mcp().status();
    assert_eq!(status[0].state, ServerState::Running, "{status:?}");
    let ctx = CallContext::default();
    let call_lanes = || {
        runtime
            .block_on(toolbox.run("mcp__everything__echo", arguments.clone(), &ctx))
            .unwrap()
    };
    let ToolOutput::Mcp(answer) = call_lanes() else {
        panic!("not an MCP output")
    };
    assert_eq!(answer.render(0), "Echo: hello");

    let mut group = c.benchmark_group("mcp_echo");
    group.bench_function("direct_rmcp", |b| b.iter(|| black_box(call_direct())));
    group.bench_function("lanes", |b| b.iter(|| black_box(call_lanes())));
    group.finish();
    c.final_summary();

    if let (Some(direct), Some(lanes)) = (
        median_ns(&out, "mcp_echo", "direct_rmcp"),
        median_ns(&out, "mcp_echo", "lanes"),
    ) {
        println!(
            "\none MCP call (server-everything echo, stdio), criterion medians of this run:\n  \
             through the lanes {:7.1} µs vs direct rmcp {:7.1} µs = {:.3}x (+{:.1} µs)",
            lanes / 1e3,
            direct / 1e3,
            lanes / direct,
            (lanes - direct) / 1e3
        );
    }
}
