//! The read-only tools in process, each against its own baseline measured in this run:
//! 1. the read cache: a hit on a 100 KB file (its one `stat` included) vs a cold read;
//! 2. a 1 GiB file: the last 100 lines read twice — the second seeks through the line
//!    index — and the peak RSS of a cold `switchyard tool read` of them;
//! 3. 8 greps over the registry corpus submitted as one batch vs awaited one by one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{EIGHT_PATTERNS, median_ns, registry_corpus, runtime, toolbox};
use std::hint::black_box;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use criterion::Criterion;
use serde_json::json;
use switchyard::lanes::{Lanes, LanesConfig};
use switchyard::read_cache::ReadCache;
use switchyard::tools::{CallContext, ToolOutput, lane_result};

const GIB: u64 = 1 << 30;

fn read_cache(c: &mut Criterion, runtime: &tokio::runtime::Runtime, dir: &Path) {
    let path = dir.join("hundred-kb.rs");
    let line = "    let value = compute(input, &mut state); // a line of ordinary code\n";
    std::fs::write(&path, line.repeat(100_000 / line.len())).unwrap();
    // Old enough that the racily-clean check trusts the entry on its key alone.
    std::thread::sleep(Duration::from_millis(2_100));
    let lanes = Lanes::with_runtime(LanesConfig::default(), runtime.handle().clone()).unwrap();
    let warm = ReadCache::new(64 << 20, &lanes);
    let cold = ReadCache::new(0, &lanes);
    // The caller opens the file (beneath the workspace's handle) and hands it over.
    let get = |cache: &ReadCache| {
        let file = std::fs::File::open(&path).unwrap();
        let meta = file.metadata().unwrap();
        cache.get(&path, &meta, file).unwrap()
    };
    get(&warm);
    let mut group = c.benchmark_group("read_cache");
    group.bench_function("hit", |b| b.iter(|| black_box(get(&warm))));
    group.bench_function("cold", |b| b.iter(|| black_box(get(&cold))));
    group.finish();
    let hits = lanes.metrics().counters["read_cache.hits"];
    assert!(
        hits > 0 && lanes.metrics().counters["read_cache.racy_rechecks"] == 0,
        "hits were not plain hits"
    );
}

/// A 1 GiB text file of numbered lines, made once and kept in the target directory.
fn big_file(dir: &Path) -> PathBuf {
    let path = dir.join("one-gib.txt");
    if std::fs::metadata(&path).is_ok_and(|m| m.len() >= GIB) {
        return path;
    }
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).unwrap());
    let mut written = 0u64;
    let mut n = 0u64;
    while written < GIB {
        n += 1;
        let line = format!(
            "{n:>10} the quick brown fox jumps over the lazy dog {}\n",
            n % 977
        );
        out.write_all(line.as_bytes()).unwrap();
        written += line.len() as u64;
    }
    out.flush().unwrap();
    path
}

fn ranged_reads(c: &mut Criterion, runtime: &tokio::runtime::Runtime, dir: &Path) -> (f64, u64) {
    big_file(dir);
    let toolbox = toolbox(runtime, dir);
    let read = |args| {
        let out = runtime
            .block_on(toolbox.run("read", args, &CallContext::default()))
            .unwrap();
        let ToolOutput::Read(read) = out else {
            panic!()
        };
        read
    };
    let started = std::time::Instant::now();
    let first = read(json!({"path": "one-gib.txt", "offset": -100}));
    let first_ms = started.elapsed().as_secs_f64() * 1e3;
    assert_eq!(first.lines.len(), 100);
    assert!(first.streamed);
    let mut group = c.benchmark_group("ranged_read");
    group.bench_function("last_100_lines_again", |b| {
        b.iter(|| black_box(read(json!({"path": "one-gib.txt", "offset": -100}))))
    });
    group.finish();
    // Peak memory of a cold process reading the same window.
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M"])
        .arg(env!("CARGO_BIN_EXE_switchyard"))
        .args([
            "tool",
            "read",
            r#"{"path": "one-gib.txt", "offset": -100}"#,
            "--cwd",
        ])
        .arg(dir)
        .output()
        .expect("GNU time (/usr/bin/time) is installed by tests/provision");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let peak_kib: u64 = stderr.lines().last().unwrap().trim().parse().unwrap();
    (first_ms, peak_kib)
}

fn eight_greps(c: &mut Criterion, runtime: &tokio::runtime::Runtime) {
    let toolbox = toolbox(runtime, &registry_corpus());
    let patterns = EIGHT_PATTERNS;
    let args = |p: &str| json!({"pattern": p, "output": "count", "max_results": 1_000_000});
    let mut group = c.benchmark_group("eight_greps");
    group.sample_size(10);
    group.bench_function("one_by_one", |b| {
        b.iter(|| {
            for p in patterns {
                black_box(
                    runtime
                        .block_on(toolbox.run("grep", args(p), &CallContext::default()))
                        .unwrap(),
                );
            }
        })
    });
    group.bench_function("lanes_batch", |b| {
        b.iter(|| {
            let tasks = patterns
                .iter()
                .map(|p| {
                    toolbox
                        .task("grep", args(p), &CallContext::default())
                        .unwrap()
                })
                .collect();
            for r in toolbox.lanes().submit_batch(tasks).join_blocking() {
                black_box(lane_result(r).unwrap());
            }
        })
    });
    group.finish();
}

fn main() {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let out = tmp.join("criterion-tools");
    let data = tmp.join("tools-bench-data");
    std::fs::create_dir_all(&data).unwrap();
    let mut c = Criterion::default()
        .output_directory(&out)
        .configure_from_args();
    let runtime = runtime();
    read_cache(&mut c, &runtime, &data);
    let (first_ms, peak_kib) = ranged_reads(&mut c, &runtime, &data);
    eight_greps(&mut c, &runtime);
    c.final_summary();

    let m = |g: &str, f: &str| median_ns(&out, g, f);
    println!("\ntools in process (criterion medians, this run):");
    if let (Some(hit), Some(cold)) = (m("read_cache", "hit"), m("read_cache", "cold")) {
        println!(
            "  read cache, 100 KB file    hit {:6.2} µs vs cold read {:6.2} µs = {:.0}x faster (target: hit ≤ 10 µs, ≥ 20x)",
            hit / 1e3,
            cold / 1e3,
            cold / hit
        );
    }
    if let Some(again) = m("ranged_read", "last_100_lines_again") {
        println!(
            "  1 GiB file, last 100 lines first read {first_ms:8.1} ms, again {:6.2} ms via the line index (target ≤ 10 ms)",
            again / 1e6
        );
    }
    println!(
        "  1 GiB file, last 100 lines peak RSS of a cold process {:.1} MiB (target ≤ 64 MiB)",
        peak_kib as f64 / 1024.0
    );
    if let (Some(seq), Some(batch)) = (
        m("eight_greps", "one_by_one"),
        m("eight_greps", "lanes_batch"),
    ) {
        println!(
            "  8 greps over the corpus   one by one {:7.1} ms vs lanes batch {:7.1} ms = {:.2}x",
            seq / 1e6,
            batch / 1e6,
            seq / batch
        );
    }
}
