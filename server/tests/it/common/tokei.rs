//! The real tokei, which the line counter is held to: found through `SWITCHYARD_TOKEI`,
//! else `PATH` (`tests/run` installs it), run with no user configuration, and its JSON
//! report read into plain numbers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use switchyard::analyze::count::Counts;

/// tokei's report on a tree: its languages by name, and its Total row.
#[derive(Debug, Default)]
pub struct Report {
    pub languages: BTreeMap<String, Language>,
    pub total: Counts,
}

/// One language of the report.
#[derive(Debug, Default)]
pub struct Language {
    /// Each file with its own lines (embedded blocks left out).
    pub files: Vec<(PathBuf, Counts)>,
    /// The language's own lines over all its files.
    pub lines: Counts,
    /// Lines of blocks in other languages embedded in its files, by child language.
    pub embedded: BTreeMap<String, Counts>,
}

fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SWITCHYARD_TOKEI") {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("tokei"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| {
            panic!(
                "tokei not found: set SWITCHYARD_TOKEI or put tokei on PATH \
                 (tests/run installs it with `cargo install tokei --locked`)"
            )
        })
}

/// Runs tokei on `dir` and reads its report.
pub fn run(dir: &Path) -> Report {
    // An empty home and config directory, so no tokei.toml changes what is counted.
    let home = tempfile::tempdir().unwrap();
    let output = Command::new(binary())
        .arg(dir)
        .args(["--output", "json"])
        .current_dir(home.path())
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .output()
        .expect("tokei runs");
    assert!(
        output.status.success(),
        "tokei failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value = serde_json::from_slice(&output.stdout).expect("tokei prints json");
    let mut report = Report::default();
    for (name, language) in json.as_object().expect("a json object") {
        if name == "Total" {
            report.total = counts_of(language);
            continue;
        }
        let mut embedded = BTreeMap::new();
        for (child, reports) in language["children"].as_object().expect("children") {
            let total: &mut Counts = embedded.entry(child.clone()).or_default();
            for report in reports.as_array().expect("child reports") {
                *total += summarised(&report["stats"]);
            }
        }
        let files = language["reports"]
            .as_array()
            .expect("reports")
            .iter()
            .map(|report| {
                let path = PathBuf::from(report["name"].as_str().expect("report name"));
                (path, counts_of(&report["stats"]))
            })
            .collect();
        report.languages.insert(
            name.clone(),
            Language {
                files,
                lines: counts_of(language),
                embedded,
            },
        );
    }
    report
}

fn counts_of(value: &Value) -> Counts {
    let field = |name: &str| value[name].as_u64().unwrap_or(0);
    Counts {
        code: field("code"),
        comments: field("comments"),
        blanks: field("blanks"),
    }
}

/// A tokei `CodeStats` with its blobs folded in.
fn summarised(stats: &Value) -> Counts {
    let mut total = counts_of(stats);
    for blob in stats["blobs"]
        .as_object()
        .into_iter()
        .flat_map(|b| b.values())
    {
        total += summarised(blob);
    }
    total
}
