//! Fused searches (`tools/fuse.rs`) against their baselines, measured in the same run on
//! the registry corpus (`$CARGO_HOME/registry/src`): one grep alone; the same 8 greps one
//! after another; and the 8 as one lane batch sharing one walk (`Toolbox::run_batch`),
//! with the 8 as a batch of separate walks beside it. Goal: 8 fused ≤ 2x one grep.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{EIGHT_PATTERNS, median_ns, registry_corpus, runtime, toolbox};
use std::hint::black_box;
use std::path::PathBuf;

use std::time::{Duration, Instant};

use criterion::Criterion;
use serde_json::{Value, json};
use switchyard::tools::{CallContext, lane_result};

fn args(pattern: &str) -> Value {
    json!({"pattern": pattern, "output": "count", "max_results": 1_000_000})
}

fn main() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("criterion-fused");
    let mut c = Criterion::default()
        .output_directory(&out)
        .sample_size(10)
        .measurement_time(Duration::from_secs(10))
        .configure_from_args();
    let runtime = runtime();
    let toolbox = toolbox(&runtime, &registry_corpus());
    let ctx = CallContext::default();
    let calls: Vec<(String, Value)> = EIGHT_PATTERNS
        .iter()
        .map(|p| ("grep".to_string(), args(p)))
        .collect();
    // The fused batch answers what the calls answer alone.
    let fused = runtime.block_on(toolbox.run_batch(calls.clone(), &ctx));
    for ((_, args), fused) in calls.iter().zip(&fused) {
        let alone = runtime.block_on(toolbox.run("grep", args.clone(), &ctx));
        assert_eq!(fused, &alone, "{args}");
    }

    let mut group = c.benchmark_group("fused");
    group.bench_function("one_grep", |b| {
        b.iter(|| black_box(runtime.block_on(toolbox.run("grep", args(EIGHT_PATTERNS[0]), &ctx))))
    });
    group.bench_function("eight_one_after_another", |b| {
        b.iter(|| {
            for p in EIGHT_PATTERNS {
                black_box(
                    runtime
                        .block_on(toolbox.run("grep", args(p), &ctx))
                        .unwrap(),
                );
            }
        })
    });
    group.bench_function("eight_batch_separate_walks", |b| {
        b.iter(|| {
            let tasks = EIGHT_PATTERNS
                .iter()
                .map(|p| toolbox.task("grep", args(p), &ctx).unwrap())
                .collect();
            for r in toolbox.lanes().submit_batch(tasks).join_blocking() {
                black_box(lane_result(r).unwrap());
            }
        })
    });
    group.bench_function("eight_fused", |b| {
        b.iter(|| black_box(runtime.block_on(toolbox.run_batch(calls.clone(), &ctx))))
    });
    group.finish();
    c.final_summary();

    let m = |f: &str| median_ns(&out, "fused", f);
    if let (Some(one), Some(seq), Some(batch), Some(fused)) = (
        m("one_grep"),
        m("eight_one_after_another"),
        m("eight_batch_separate_walks"),
        m("eight_fused"),
    ) {
        println!(
            "\n8 greps over {} (criterion medians, this run):",
            registry_corpus().display()
        );
        println!(
            "  one grep alone                    {:8.1} ms = 1.00x",
            one / 1e6
        );
        println!(
            "  8 one after another               {:8.1} ms = {:.2}x one grep",
            seq / 1e6,
            seq / one
        );
        println!(
            "  8 as a batch of separate walks    {:8.1} ms = {:.2}x one grep",
            batch / 1e6,
            batch / one
        );
        println!(
            "  8 fused: one walk, one read       {:8.1} ms = {:.2}x one grep (goal ≤ 2x); {:.2}x faster than one after another",
            fused / 1e6,
            fused / one,
            seq / fused
        );
    }

    // The ratio again from interleaved runs: one grep, then the 8 fused, round after round,
    // so a change in the machine's load between criterion's groups cannot skew it.
    let rounds = 15;
    let (mut ones, mut fuseds, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let start = Instant::now();
        black_box(runtime.block_on(toolbox.run("grep", args(EIGHT_PATTERNS[0]), &ctx))).unwrap();
        let one = start.elapsed().as_secs_f64() * 1e3;
        let start = Instant::now();
        black_box(runtime.block_on(toolbox.run_batch(calls.clone(), &ctx)));
        let fused = start.elapsed().as_secs_f64() * 1e3;
        ones.push(one);
        fuseds.push(fused);
        ratios.push(fused / one);
    }
    println!(
        "  interleaved, {rounds} rounds: one grep {:.1} ms, 8 fused {:.1} ms (medians); median ratio {:.2}x (goal ≤ 2x)",
        median(&mut ones),
        median(&mut fuseds),
        median(&mut ratios)
    );
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
