//! The lane engine against plain loops, measured in the same run:
//! 1. dispatch overhead of 10,000 no-op tasks, per task;
//! 2. overlap: 16 tasks blocked 20 ms on I/O, lanes vs one after another;
//! 3. a tiny batch of 2 cheap tasks, lanes (inline) vs called directly;
//! 4. how soon a Control task starts while the Query lane is saturated.
//!
//! Criterion measures each side; the closing table prints the ratios from its medians.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::median_ns;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use switchyard::lanes::{Lane, Lanes, LanesConfig, Task};

const NOOPS: usize = 10_000;

fn engine(runtime: &tokio::runtime::Runtime, patch: serde_json::Value) -> Lanes {
    let config = LanesConfig::from_value(patch).unwrap();
    Lanes::with_runtime(config, runtime.handle().clone()).unwrap()
}

/// The cost of a cheap task: FNV-1a over 16 KiB, about what rendering a window of a cached
/// file costs.
fn cheap(buf: &[u8]) -> u64 {
    buf.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3)
    })
}

fn dispatch(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let lanes = engine(runtime, serde_json::json!({}));
    let mut group = c.benchmark_group("dispatch");
    group.sample_size(20);
    // The same no-op closures, called one after another.
    let noops: Vec<Box<dyn Fn() -> usize>> = (0..NOOPS)
        .map(|i| Box::new(move || i) as Box<dyn Fn() -> usize>)
        .collect();
    group.bench_function("loop", |b| {
        b.iter(|| {
            for noop in &noops {
                black_box(noop());
            }
        })
    });
    group.bench_function("lanes", |b| {
        b.iter(|| {
            let handles: Vec<_> = (0..NOOPS)
                .map(|i| lanes.submit(Task::blocking(Lane::Query, "noop", move |_| Ok(i))))
                .collect();
            for h in handles {
                black_box(h.join_blocking().unwrap());
            }
        })
    });
    group.finish();
}

fn overlap(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let lanes = engine(
        runtime,
        serde_json::json!({"query": {"max_concurrency": 16}}),
    );
    let slow_io = || std::thread::sleep(Duration::from_millis(20));
    let mut group = c.benchmark_group("overlap");
    group.sample_size(10);
    group.bench_function("sequential", |b| {
        b.iter(|| {
            for _ in 0..16 {
                slow_io();
            }
        })
    });
    group.bench_function("lanes", |b| {
        b.iter(|| {
            let tasks = (0..16)
                .map(|_| {
                    Task::blocking(Lane::Query, "slow read", move |_| {
                        slow_io();
                        Ok(())
                    })
                })
                .collect();
            for r in lanes.submit_batch(tasks).join_blocking() {
                r.unwrap();
            }
        })
    });
    group.finish();
}

fn tiny_batch(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let lanes = engine(runtime, serde_json::json!({}));
    let buf: Arc<Vec<u8>> = Arc::new((0..16 * 1024).map(|i| (i % 251) as u8).collect());
    let mut group = c.benchmark_group("tiny_batch");
    group.bench_function("direct", |b| {
        b.iter(|| (black_box(cheap(&buf)), black_box(cheap(&buf))))
    });
    group.bench_function("lanes", |b| {
        b.iter(|| {
            let tasks = (0..2)
                .map(|_| {
                    let buf = Arc::clone(&buf);
                    Task::blocking(Lane::Query, "cheap", move |_| Ok(cheap(&buf))).cheap()
                })
                .collect();
            black_box(lanes.submit_batch(tasks).join_blocking())
        })
    });
    group.finish();
}

#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    cv: Condvar,
}

fn control_under_load(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let lanes = engine(
        runtime,
        serde_json::json!({"query": {"max_concurrency": 16}}),
    );
    let gate = Arc::new(Gate::default());
    // Saturate Query: 16 running, 64 more waiting.
    let blockers: Vec<_> = (0..80)
        .map(|_| {
            let gate = Arc::clone(&gate);
            lanes.submit(Task::blocking(Lane::Query, "busy", move |_| {
                let open = gate.open.lock().unwrap();
                drop(gate.cv.wait_while(open, |open| !*open).unwrap());
                Ok(())
            }))
        })
        .collect();
    while lanes.metrics().lane(Lane::Query).running < 16 {
        std::thread::yield_now();
    }
    let mut group = c.benchmark_group("control_under_load");
    group.bench_function(BenchmarkId::new("start_latency", "query_saturated"), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let submitted = Instant::now();
                let started = lanes
                    .submit(Task::future(Lane::Control, "stats", |_| async { Ok(()) }).cheap())
                    .join_blocking()
                    .map(|()| Instant::now());
                total += started.unwrap() - submitted;
            }
            total
        })
    });
    group.finish();
    assert!(
        lanes.metrics().lane(Lane::Query).queued >= 64,
        "the query lane stayed saturated"
    );
    *gate.open.lock().unwrap() = true;
    gate.cv.notify_all();
    for b in blockers {
        b.join_blocking().unwrap();
    }
}

fn main() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("criterion-lanes");
    let mut c = Criterion::default()
        .output_directory(&out)
        .configure_from_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    dispatch(&mut c, &runtime);
    overlap(&mut c, &runtime);
    tiny_batch(&mut c, &runtime);
    control_under_load(&mut c, &runtime);
    c.final_summary();

    let m = |g: &str, f: &str| median_ns(&out, g, f);
    println!("\nlanes vs plain loops (criterion medians, this run):");
    if let (Some(lanes), Some(plain)) = (m("dispatch", "lanes"), m("dispatch", "loop")) {
        let per_task_us = (lanes - plain) / NOOPS as f64 / 1_000.0;
        println!("  dispatch overhead      {per_task_us:8.2} µs per task   (target ≤ 20 µs)");
    }
    if let (Some(lanes), Some(seq)) = (m("overlap", "lanes"), m("overlap", "sequential")) {
        println!(
            "  overlap, 16 × 20 ms    {:8.1}x faster than one by one (target ≥ 12x)",
            seq / lanes
        );
    }
    if let (Some(lanes), Some(direct)) = (m("tiny_batch", "lanes"), m("tiny_batch", "direct")) {
        println!(
            "  tiny batch of 2 cheap  {:8.3}x the direct calls (target ≤ 1.05)",
            lanes / direct
        );
    }
    if let Some(start) = m("control_under_load", "start_latency/query_saturated") {
        println!(
            "  control start, query saturated {:8.1} µs (target ≤ 1 ms)",
            start / 1_000.0
        );
    }
}
