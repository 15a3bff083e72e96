//! `switchyard analyze` against tokei, cold process to cold process, on real code nobody
//! here wrote: the crate sources `cargo fetch` leaves under `$CARGO_HOME/registry/src`,
//! and the mixed corpus of Debian source packages `tests/provision` fetches
//! (`SWITCHYARD_MIXED_CORPUS`).
//!
//! Before timing anything it runs `switchyard analyze --json` and `tokei --output json`
//! once each and prints, for every language both count, the differences in code, comment
//! and blank lines in percent (the target is within 1%; the bench fails beyond it). Then
//! criterion times both commands, and the closing table prints the ratio of criterion's
//! medians from this run, with the CPU time (user + system) each process used per run —
//! the fairer figure on a shared machine, where wall time includes waiting for a core.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{cpu_per_run, median_ns};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use criterion::Criterion;
use serde_json::Value;
use switchyard::analyze::{Analysis, LineCounts};

fn corpus() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set")).join(".cargo")
        });
    home.join("registry").join("src")
}

fn tokei_binary() -> String {
    std::env::var("SWITCHYARD_TOKEI").unwrap_or_else(|_| "tokei".into())
}

fn tokei(root: &Path) -> Command {
    let mut cmd = Command::new(tokei_binary());
    // An empty config directory, so no tokei.toml changes what is counted.
    cmd.arg(root)
        .args(["--output", "json"])
        .env("XDG_CONFIG_HOME", "/nonexistent")
        .current_dir("/");
    cmd
}

fn ours(root: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchyard"));
    cmd.args(["analyze", "--json"]).arg(root).current_dir("/");
    cmd
}

fn stdout_of(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn run_quietly(cmd: &mut Command) {
    let status = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(status.success(), "{cmd:?} failed");
}

/// tokei's per-language rows: files and lines, embedded blocks left out as in our rows.
fn tokei_rows(json: &[u8]) -> BTreeMap<String, (u64, LineCounts)> {
    let json: Value = serde_json::from_slice(json).expect("tokei prints json");
    let field = |v: &Value, name: &str| v[name].as_u64().unwrap_or(0);
    json.as_object()
        .expect("a json object")
        .iter()
        .filter(|(name, _)| *name != "Total")
        .map(|(name, v)| {
            let files = v["reports"].as_array().map_or(0, |r| r.len() as u64);
            let lines = LineCounts {
                code: field(v, "code"),
                comments: field(v, "comments"),
                blanks: field(v, "blanks"),
            };
            (name.clone(), (files, lines))
        })
        .collect()
}

fn percent(ours: u64, theirs: u64) -> f64 {
    if theirs == 0 {
        if ours == 0 { 0.0 } else { 100.0 }
    } else {
        (ours as f64 - theirs as f64) / theirs as f64 * 100.0
    }
}

/// Prints the per-language comparison; returns the files walked and the worst difference.
fn check_same(root: &Path) -> (u64, f64) {
    let analysis: Analysis =
        serde_json::from_slice(&stdout_of(&mut ours(root))).expect("switchyard prints json");
    let theirs = tokei_rows(&stdout_of(&mut tokei(root)));
    println!(
        "\n{:<20} {:>15} {:>26} {:>26} {:>26}",
        "language",
        "files us/tokei",
        "code us/tokei Δ%",
        "comments us/tokei Δ%",
        "blanks us/tokei Δ%"
    );
    let mut worst: f64 = 0.0;
    let mut only_tokei = Vec::new();
    for (name, (tk_files, tk)) in &theirs {
        let Some(language) = analysis.languages.iter().find(|l| &l.name == name) else {
            only_tokei.push(format!("{name} ({} files)", tk_files));
            continue;
        };
        let us = language.lines;
        let cell = |a: u64, b: u64| format!("{a}/{b} {:+.3}", percent(a, b));
        for (a, b) in [
            (us.code, tk.code),
            (us.comments, tk.comments),
            (us.blanks, tk.blanks),
        ] {
            worst = worst.max(percent(a, b).abs());
        }
        println!(
            "{name:<20} {:>15} {:>26} {:>26} {:>26}",
            format!("{}/{}", language.files, tk_files),
            cell(us.code, tk.code),
            cell(us.comments, tk.comments),
            cell(us.blanks, tk.blanks),
        );
    }
    let ours_only: Vec<&str> = analysis
        .languages
        .iter()
        .filter(|l| !theirs.contains_key(&l.name))
        .map(|l| l.name.as_str())
        .collect();
    if !only_tokei.is_empty() {
        println!("only tokei counts: {}", only_tokei.join(", "));
        // Every language tokei knows is carried: a language missing is a full difference.
        worst = 100.0;
    }
    if !ours_only.is_empty() {
        println!("only switchyard counts: {}", ours_only.join(", "));
    }
    println!(
        "switchyard: {} files walked ({} counted, {} binary), {} markers, {} manifests",
        analysis.files.files,
        analysis.files.counted,
        analysis.files.binary,
        analysis.markers.total(),
        analysis.manifests.len()
    );
    (analysis.files.files, worst)
}

/// The corpora: the Rust crates `cargo fetch` left, and the mixed corpus of Debian source
/// packages `tests/provision` fetches (C, Tcl, shell, Perl, AsciiDoc, PO, Autoconf, Meson…).
fn corpora() -> Vec<(&'static str, PathBuf, u64)> {
    let mixed = std::env::var_os("SWITCHYARD_MIXED_CORPUS").map(PathBuf::from).expect(
        "SWITCHYARD_MIXED_CORPUS names the mixed corpus: source the env file tests/provision prints",
    );
    vec![("registry", corpus(), 10_000), ("mixed", mixed, 5_000)]
}

fn main() {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("criterion-analyze");
    let mut c = Criterion::default()
        .output_directory(&out)
        .sample_size(10)
        .measurement_time(Duration::from_secs(30))
        .configure_from_args();
    let mut summary = Vec::new();
    for (label, root, least) in corpora() {
        let (files, worst) = check_same(&root);
        println!("corpus {label}: {} ({files} files)", root.display());
        assert!(
            files >= least,
            "the {label} corpus has {files} files, fewer than {least}: run `cargo fetch` \
             (registry) or tests/provision (mixed)"
        );
        assert!(
            worst <= 1.0,
            "{label}: a language's lines differ from tokei's by {worst:.3}% (target ≤ 1%)"
        );
        let group_name = format!("analyze-{label}");
        let mut group = c.benchmark_group(&group_name);
        group.bench_function("tokei", |b| b.iter(|| run_quietly(&mut tokei(&root))));
        group.bench_function("switchyard", |b| b.iter(|| run_quietly(&mut ours(&root))));
        group.finish();

        let runs = 5;
        let cpu_tokei = cpu_per_run(runs, || run_quietly(&mut tokei(&root)));
        let cpu_ours = cpu_per_run(runs, || run_quietly(&mut ours(&root)));
        summary.push((label, files, worst, group_name, cpu_tokei, cpu_ours, runs));
    }
    c.final_summary();

    for (label, files, worst, group, cpu_tokei, cpu_ours, runs) in summary {
        println!(
            "\nswitchyard analyze vs tokei on the {label} corpus, cold process to cold process ({files} files; criterion medians, this run):"
        );
        if let (Some(us), Some(them)) = (
            median_ns(&out, &group, "switchyard"),
            median_ns(&out, &group, "tokei"),
        ) {
            println!(
                "  wall time: {:7.1} ms vs {:7.1} ms = {:.2}x tokei's time (target ≤ 1.0x; the counter alone: count_corpus)",
                us / 1e6,
                them / 1e6,
                us / them
            );
        }
        if let (Some(us), Some(them)) = (cpu_ours, cpu_tokei) {
            println!(
                "  CPU time per run (user + system, mean of {runs}): {:7.1} ms vs {:7.1} ms = {:.2}x",
                us.as_secs_f64() * 1e3,
                them.as_secs_f64() * 1e3,
                us.as_secs_f64() / them.as_secs_f64()
            );
        }
        println!("  per-language lines: largest difference {worst:.3}% (target ≤ 1%)");
    }
}
