//! Checks the line counter against tokei on a large tree (by default the crate sources
//! under `~/.cargo/registry/src`): per-language differences in percent, files that
//! disagree, and counting speed against tokei's wall time in the same run.
//!
//! ```text
//! cargo run --release --example count_corpus -- [DIR] [--tokei PATH] [--show N] [--runs N]
//! ```
//!
//! tokei is found through `--tokei`, then `SWITCHYARD_TOKEI`, then `PATH`. The walk uses
//! the `ignore` crate with tokei's settings (hidden files skipped, ignore files honoured,
//! `.tokeignore` too), sequentially.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rayon::prelude::*;
use serde_json::Value;
use switchyard::analyze::count::{Counts, count_with_embedded};
use switchyard::analyze::languages::Language;

struct Options {
    dir: PathBuf,
    tokei: PathBuf,
    show: usize,
    runs: usize,
}

fn parse_args() -> anyhow::Result<Options> {
    let mut dir = None;
    let mut tokei = std::env::var_os("SWITCHYARD_TOKEI").map(PathBuf::from);
    let mut show = 10;
    let mut runs = 3;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--tokei") => tokei = args.next().map(PathBuf::from),
            Some("--show") => {
                show = args
                    .next()
                    .context("--show needs a number")?
                    .to_string_lossy()
                    .parse()?
            }
            Some("--runs") => {
                runs = args
                    .next()
                    .context("--runs needs a number")?
                    .to_string_lossy()
                    .parse()?
            }
            _ => dir = Some(PathBuf::from(arg)),
        }
    }
    let dir = match dir {
        Some(dir) => dir,
        None => dirs_home()?.join(".cargo/registry/src"),
    };
    Ok(Options {
        dir,
        tokei: tokei.unwrap_or_else(|| PathBuf::from("tokei")),
        show,
        runs: runs.max(1),
    })
}

fn dirs_home() -> anyhow::Result<PathBuf> {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .context("HOME is not set; pass the directory to compare")
}

/// One file the walk found, with its detected language and contents.
struct File {
    path: PathBuf,
    language: Language,
    bytes: Vec<u8>,
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let walker = ignore::WalkBuilder::new(dir)
        .add_custom_ignore_filename(".tokeignore")
        .build();
    for entry in walker {
        match entry {
            Ok(entry) if entry.file_type().is_some_and(|t| t.is_file()) => {
                paths.push(entry.into_path())
            }
            Ok(_) => {}
            Err(error) => eprintln!("walk: {error}"),
        }
    }
    paths
}

/// Detects and reads one file: the contents are only read when the language is known or
/// can only be told from a shebang.
fn load(path: PathBuf) -> Option<File> {
    let by_name = Language::detect(&path, None);
    if by_name.is_none() && path.extension().is_some() {
        return None;
    }
    let bytes = std::fs::read(&path).ok()?;
    let language = by_name.or_else(|| Language::detect(&path, Some(&bytes)))?;
    Some(File {
        path,
        language,
        bytes,
    })
}

#[derive(Default, Clone, Copy)]
struct Totals {
    files: u64,
    own: Counts,
    with_embedded: Counts,
}

fn count_all(
    files: &[File],
) -> (
    BTreeMap<Language, Totals>,
    HashMap<PathBuf, Counts>,
    Duration,
) {
    let mut totals: BTreeMap<Language, Totals> = BTreeMap::new();
    let mut per_file = HashMap::new();
    let mut elapsed = Duration::ZERO;
    for file in files {
        let mut embedded = Counts::default();
        let started = Instant::now();
        let own = count_with_embedded(file.language, &file.bytes, &mut |_, c| embedded += c);
        elapsed += started.elapsed();
        let entry = totals.entry(file.language).or_default();
        entry.files += 1;
        entry.own += own;
        entry.with_embedded += own + embedded;
        per_file.insert(file.path.clone(), own);
    }
    (totals, per_file, elapsed)
}

/// tokei's per-language totals and per-file counts.
struct TokeiRun {
    languages: BTreeMap<String, (u64, Counts, Counts)>,
    per_file: HashMap<PathBuf, Counts>,
}

fn counts_of(value: &Value) -> Counts {
    let field = |name: &str| value.get(name).and_then(Value::as_u64).unwrap_or(0);
    Counts {
        code: field("code"),
        comments: field("comments"),
        blanks: field("blanks"),
    }
}

/// A tokei `CodeStats` with all its blobs folded in.
fn summarised(stats: &Value) -> Counts {
    let mut total = counts_of(stats);
    if let Some(blobs) = stats.get("blobs").and_then(Value::as_object) {
        for blob in blobs.values() {
            total += summarised(blob);
        }
    }
    total
}

fn run_tokei(tokei: &Path, dir: &Path) -> anyhow::Result<TokeiRun> {
    let output = Command::new(tokei)
        .arg(dir)
        .args(["--output", "json"])
        .output()
        .with_context(|| {
            format!(
                "cannot run {}; install it with `cargo install tokei --locked`",
                tokei.display()
            )
        })?;
    if !output.status.success() {
        bail!("tokei failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    let json: Value =
        serde_json::from_slice(&output.stdout).context("tokei printed invalid json")?;
    let mut languages = BTreeMap::new();
    let mut per_file = HashMap::new();
    for (name, language) in json.as_object().context("tokei json is not an object")? {
        if name == "Total" {
            continue;
        }
        let reports = language
            .get("reports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut with_children = Counts::default();
        for report in &reports {
            let stats = &report["stats"];
            with_children += summarised(stats);
            if let Some(path) = report.get("name").and_then(Value::as_str) {
                per_file.insert(PathBuf::from(path), counts_of(stats));
            }
        }
        languages.insert(
            name.clone(),
            (reports.len() as u64, counts_of(language), with_children),
        );
    }
    Ok(TokeiRun {
        languages,
        per_file,
    })
}

/// The wall time of a plain `tokei DIR` run (table output, discarded), on `threads` rayon
/// threads or tokei's default of one per core.
fn time_tokei(tokei: &Path, dir: &Path, threads: Option<usize>) -> anyhow::Result<Duration> {
    let mut command = Command::new(tokei);
    command.arg(dir).stdout(Stdio::null());
    if let Some(threads) = threads {
        command.env("RAYON_NUM_THREADS", threads.to_string());
    }
    let started = Instant::now();
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", tokei.display()))?;
    let elapsed = started.elapsed();
    if !status.success() {
        bail!("tokei failed with {status}");
    }
    Ok(elapsed)
}

fn percent(ours: u64, theirs: u64) -> f64 {
    if theirs == 0 {
        if ours == 0 { 0.0 } else { 100.0 }
    } else {
        (ours as f64 - theirs as f64) / theirs as f64 * 100.0
    }
}

fn main() -> anyhow::Result<()> {
    let options = parse_args()?;
    let dir = &options.dir;

    // The numbers come from tokei's JSON; its speed from its usual table output, which
    // does not serialise a report per file. This first run also warms the page cache.
    let tokei = run_tokei(&options.tokei, dir)?;
    let mut best_tokei = Duration::MAX;
    let mut best_tokei_single = Duration::MAX;

    let mut best_sequential = Duration::MAX;
    let mut best_parallel = Duration::MAX;
    let mut best_count = Duration::MAX;
    let mut files = Vec::new();
    let mut results = None;
    for _ in 0..options.runs {
        best_tokei = best_tokei.min(time_tokei(&options.tokei, dir, None)?);
        best_tokei_single = best_tokei_single.min(time_tokei(&options.tokei, dir, Some(1))?);

        let started = Instant::now();
        let walked = walk(dir);
        let loaded: Vec<File> = walked.into_iter().filter_map(load).collect();
        let (totals, per_file, count_time) = count_all(&loaded);
        best_sequential = best_sequential.min(started.elapsed());
        best_count = best_count.min(count_time);
        files = loaded;
        results = Some((totals, per_file));

        // The same work on rayon's pool (one thread per core, as tokei).
        let started = Instant::now();
        let paths = walk(dir);
        let lines: u64 = paths
            .into_par_iter()
            .filter_map(load)
            .map(|file| {
                let mut embedded = 0;
                let own = count_with_embedded(file.language, &file.bytes, &mut |_, c| {
                    embedded += c.lines()
                });
                own.lines() + embedded
            })
            .sum();
        best_parallel = best_parallel.min(started.elapsed());
        std::hint::black_box(lines);
    }
    let Some((totals, per_file)) = results else {
        bail!("no run happened");
    };

    let bytes: u64 = files.iter().map(|f| f.bytes.len() as u64).sum();
    println!(
        "corpus: {} ({} files counted, {:.1} MiB)",
        dir.display(),
        files.len(),
        bytes as f64 / 1048576.0
    );
    println!();
    println!(
        "{:<20} {:>13} {:>24} {:>24} {:>24} {:>8} {:>9}",
        "language",
        "files us/tk",
        "code us/tokei Δ%",
        "comments us/tokei Δ%",
        "blanks us/tokei Δ%",
        "lines Δ%",
        "total Δ%"
    );
    let mut names: Vec<&str> = totals.keys().map(|l| l.name()).collect();
    for name in tokei.languages.keys() {
        if !names.contains(&name.as_str()) {
            names.push(name);
        }
    }
    names.sort_by_key(|n| n.to_lowercase());
    for name in names {
        let ours = Language::from_name(name)
            .and_then(|l| totals.get(&l))
            .copied()
            .unwrap_or_default();
        let Some(&(tk_files, theirs, theirs_total)) = tokei.languages.get(name) else {
            println!("{name:<20} {:>6}/{:<6} (tokei has none)", ours.files, 0);
            continue;
        };
        if Language::from_name(name).is_none() {
            println!(
                "{name:<20} {:>6}/{:<6} (not supported here; {} lines in tokei)",
                0,
                tk_files,
                theirs.lines()
            );
            continue;
        }
        let cell = |a: u64, b: u64| format!("{a}/{b} {:+.3}", percent(a, b));
        println!(
            "{name:<20} {:>6}/{:<6} {:>24} {:>24} {:>24} {:>+8.3} {:>+9.3}",
            ours.files,
            tk_files,
            cell(ours.own.code, theirs.code),
            cell(ours.own.comments, theirs.comments),
            cell(ours.own.blanks, theirs.blanks),
            percent(ours.own.lines(), theirs.lines()),
            percent(ours.with_embedded.lines(), theirs_total.lines()),
        );
    }

    println!();
    println!("lines Δ%: the language's own lines, tokei's per-language row;");
    println!("total Δ%: with embedded blocks (doc comments, code fences), tokei's \"(Total)\" row");
    if files.len() < 10_000 {
        println!("note: fewer than 10,000 files; a larger corpus tests more");
    }

    let mut mismatched: Vec<(&PathBuf, Counts, Counts)> = per_file
        .iter()
        .filter_map(|(path, ours)| {
            let theirs = tokei.per_file.get(path).copied().unwrap_or_default();
            (*ours != theirs).then_some((path, *ours, theirs))
        })
        .collect();
    mismatched.sort_by_key(|(path, _, _)| *path);
    let only_tokei = tokei
        .per_file
        .keys()
        .filter(|p| !per_file.contains_key(*p))
        .count();
    println!();
    println!(
        "files that differ: {} of {}; files only tokei counted: {only_tokei}",
        mismatched.len(),
        per_file.len()
    );
    for (path, ours, theirs) in mismatched.iter().take(options.show) {
        println!("  {}: ours {ours:?} tokei {theirs:?}", path.display());
    }

    let mib = bytes as f64 / 1048576.0;
    println!();
    let threads = rayon::current_num_threads();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "speed (best of {} runs, walk + read + count, release builds):",
        options.runs
    );
    let row = |label: String, time: Duration| println!("  {label:<40} {:>8.1} ms", ms(time));
    row(
        format!("tokei, {threads} threads (its default)"),
        best_tokei,
    );
    row(
        "tokei, 1 thread (RAYON_NUM_THREADS=1)".into(),
        best_tokei_single,
    );
    row(format!("ours, rayon pool of {threads}"), best_parallel);
    row("ours, 1 thread".into(), best_sequential);
    row("ours, counting alone, 1 thread".into(), best_count);
    println!(
        "  counting alone: {:.0} MiB/s",
        mib / best_count.as_secs_f64()
    );
    println!(
        "  tokei / ours: {:.2}x on {threads} threads, {:.2}x on 1 thread, {:.2}x for tokei on {threads} threads against ours on 1 thread divided by {threads}",
        best_tokei.as_secs_f64() / best_parallel.as_secs_f64(),
        best_tokei_single.as_secs_f64() / best_sequential.as_secs_f64(),
        best_tokei.as_secs_f64() / (best_sequential.as_secs_f64() / threads as f64),
    );
    Ok(())
}
