//! Switchyard's tools against ripgrep, cold process to cold process, on real code nobody
//! here wrote, two corpora: the crate sources `cargo fetch` leaves under
//! `$CARGO_HOME/registry/src`, and the mixed Debian-source corpus of C, Tcl, shell and
//! docs that `tests/provision` fetches (`$SWITCHYARD_MIXED_CORPUS`).
//!
//! Before timing anything it checks that `switchyard tool grep` finds exactly the lines
//! `rg` finds, and `switchyard tool glob` lists exactly the files `rg --files` lists. The
//! closing table prints the ratios of criterion's medians from this run, and of the CPU
//! time each process used per run (which the shared machine's load disturbs far less).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{cpu_per_run, median_ns};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use criterion::Criterion;
use switchyard::documents::Documents;
use switchyard::lanes::{Lanes, LanesConfig};
use switchyard::tools::{CallContext, Toolbox, ToolsConfig, Workspace};

const PATTERNS: [&str; 3] = [r"fn \w+_unchecked", "TODO", r"impl<T: ?Sized"];
/// For the mixed corpus: C and Tcl, rare and common.
const MIXED_PATTERNS: [&str; 3] = [r"static inline \w+", "TODO", "#include <stdio.h>"];

fn corpus() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| dirs_home().join(".cargo"));
    home.join("registry").join("src")
}

fn dirs_home() -> PathBuf {
    PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
}

fn rg() -> String {
    std::env::var("SWITCHYARD_RG").unwrap_or_else(|_| "rg".into())
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn rg_grep(root: &Path, pattern: &str) -> Command {
    let mut cmd = Command::new(rg());
    cmd.current_dir(root).args([
        "--no-config",
        "-n",
        "--no-heading",
        "--with-filename",
        "--color",
        "never",
        pattern,
    ]);
    cmd
}

fn our_grep(root: &Path, pattern: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    let args = serde_json::json!({"pattern": pattern, "max_results": 100_000_000});
    cmd.current_dir(root)
        .env("SWITCHYARD_TOOLS__MAX_OUTPUT_BYTES", "0")
        .env("SWITCHYARD_TOOLS__GREP_MAX_LINE_CHARS", "1000000000")
        .args(["tool", "grep", &args.to_string()]);
    cmd
}

fn rg_files(root: &Path) -> Command {
    let mut cmd = Command::new(rg());
    cmd.current_dir(root).args(["--no-config", "--files"]);
    cmd
}

fn our_files(root: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    cmd.current_dir(root)
        .env("SWITCHYARD_TOOLS__MAX_OUTPUT_BYTES", "0")
        .args(["tool", "glob", r#"{"pattern": "**", "limit": 100000000}"#]);
    cmd
}

/// `path:line:text` lines, without the summary lines our rendering adds.
fn match_set(out: &Output) -> BTreeSet<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('(') && !l.contains(": WARNING: "))
        .map(str::to_string)
        .collect()
}

fn check_same(root: &Path, patterns: &[&str]) -> usize {
    let mut files = 0;
    for &pattern in patterns {
        let theirs = match_set(&run(&mut rg_grep(root, pattern)));
        let ours = match_set(&run(&mut our_grep(root, pattern)));
        assert_eq!(
            theirs.len(),
            ours.len(),
            "`{pattern}`: rg found {} lines, switchyard {}",
            theirs.len(),
            ours.len()
        );
        assert!(theirs == ours, "`{pattern}`: the matching lines differ");
        println!("`{pattern}`: the same {} matching lines", ours.len());
    }
    let theirs = match_set(&run(&mut rg_files(root)));
    let ours = match_set(&run(&mut our_files(root)));
    assert!(
        theirs == ours,
        "rg --files lists {} files, switchyard glob {}",
        theirs.len(),
        ours.len()
    );
    files += ours.len();
    files
}

/// The same tools in this process, through the lanes, as the language server runs them.
fn in_process(runtime: &tokio::runtime::Runtime, root: &Path) -> Toolbox {
    let lanes = Lanes::with_runtime(LanesConfig::default(), runtime.handle().clone()).unwrap();
    let config = ToolsConfig {
        max_output_bytes: 0,
        grep_max_line_chars: usize::MAX,
        ..ToolsConfig::default()
    };
    Toolbox::new(
        Workspace::new([root.to_path_buf()]).unwrap(),
        lanes,
        Documents::new(),
        config,
    )
}

fn main() {
    let mixed = std::env::var_os("SWITCHYARD_MIXED_CORPUS")
        .map(PathBuf::from)
        .expect(
            "SWITCHYARD_MIXED_CORPUS is not set: source the file `tests/provision` prints last",
        );
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("criterion-vs-ripgrep");
    let mut c = Criterion::default()
        .output_directory(&out)
        .sample_size(20)
        .configure_from_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let corpora = [
        ("registry", corpus(), &PATTERNS, 10_000),
        ("mixed", mixed, &MIXED_PATTERNS, 3_000),
    ];
    let mut tables = Vec::new();
    for (name, root, patterns, at_least) in corpora {
        let files = check_same(&root, patterns);
        println!("corpus {name}: {} ({files} files)", root.display());
        assert!(
            files >= at_least,
            "the {name} corpus has {files} files, fewer than {at_least}: run `tests/provision` and `cargo fetch`"
        );
        tables.push(bench_corpus(
            &mut c, &runtime, &out, name, &root, patterns, files,
        ));
    }
    c.final_summary();
    for table in tables {
        println!("{table}");
    }
}

/// Times one corpus; returns its closing table.
fn bench_corpus(
    c: &mut Criterion,
    runtime: &tokio::runtime::Runtime,
    out: &Path,
    name: &str,
    root: &Path,
    patterns: &[&str],
    files: usize,
) -> String {
    use std::fmt::Write as _;
    let toolbox = in_process(runtime, root);
    for (i, pattern) in patterns.iter().enumerate() {
        let mut group = c.benchmark_group(format!("{name}-grep{i}"));
        group.bench_function("rg", |b| b.iter(|| run(&mut rg_grep(root, pattern))));
        group.bench_function("switchyard", |b| {
            b.iter(|| run(&mut our_grep(root, pattern)))
        });
        let args = serde_json::json!({"pattern": pattern, "max_results": 100_000_000});
        group.bench_function("in_process", |b| {
            b.iter(|| {
                runtime
                    .block_on(toolbox.run("grep", args.clone(), &CallContext::default()))
                    .unwrap()
            })
        });
        group.finish();
    }
    let mut group = c.benchmark_group(format!("{name}-files"));
    group.bench_function("rg", |b| b.iter(|| run(&mut rg_files(root))));
    group.bench_function("switchyard", |b| b.iter(|| run(&mut our_files(root))));
    group.finish();

    let runs = 5;
    let cpu = |ours: &dyn Fn() -> Command, theirs: &dyn Fn() -> Command| {
        let ours = cpu_per_run(runs, || {
            run(&mut ours());
        });
        let theirs = cpu_per_run(runs, || {
            run(&mut theirs());
        });
        ours.zip(theirs)
    };
    let mut cpu_times: Vec<_> = patterns
        .iter()
        .map(|p| cpu(&|| our_grep(root, p), &|| rg_grep(root, p)))
        .collect();
    cpu_times.push(cpu(&|| our_files(root), &|| rg_files(root)));

    let mut table = format!(
        "\nswitchyard vs ripgrep on the {name} corpus, cold process to cold process ({files} files; criterion medians, this run):\n"
    );
    let groups: Vec<(String, String)> = patterns
        .iter()
        .enumerate()
        .map(|(i, p)| (format!("{name}-grep{i}"), format!("grep `{p}`")))
        .chain([(format!("{name}-files"), "glob ** vs rg --files".to_string())])
        .collect();
    for ((group, label), cpu) in groups.into_iter().zip(cpu_times) {
        if let (Some(ours), Some(theirs)) = (
            median_ns(out, &group, "switchyard"),
            median_ns(out, &group, "rg"),
        ) {
            let _ = writeln!(
                table,
                "  {label:<32} {:7.1} ms vs {:7.1} ms  = {:.2}x ripgrep's time (target ≤ 1.0x)",
                ours / 1e6,
                theirs / 1e6,
                ours / theirs
            );
        }
        if let (Some(ours), Some(theirs)) = (
            median_ns(out, &group, "in_process"),
            median_ns(out, &group, "rg"),
        ) {
            let _ = writeln!(
                table,
                "  {:<32} {:7.1} ms in process, through the lanes = {:.2}x",
                "",
                ours / 1e6,
                ours / theirs
            );
        }
        if let Some((ours, theirs)) = cpu {
            let _ = writeln!(
                table,
                "  {:<32} {:7.1} ms vs {:7.1} ms of CPU per run (mean of {runs}) = {:.2}x",
                "",
                ours.as_secs_f64() * 1e3,
                theirs.as_secs_f64() * 1e3,
                ours.as_secs_f64() / theirs.as_secs_f64()
            );
        }
    }
    table
}
