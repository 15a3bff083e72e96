//! The analysis as a Markdown report: what a developer wants on the first click — the
//! languages table (tokei's numbers), the markers with `path:line` locations, the largest
//! files, the projects found, and what was skipped — in GitHub-flavoured Markdown that
//! reads well both rendered and as plain text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::{Analysis, MarkerKind};
use crate::tools::thousands;

/// Manifests listed in the report; the rest are summarised by kind.
const MAX_MANIFEST_ROWS: usize = 25;

impl Analysis {
    /// The analysis as a Markdown report.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        self.write_header(&mut out);
        self.write_languages(&mut out);
        self.write_markers(&mut out);
        self.write_largest(&mut out);
        self.write_manifests(&mut out);
        self.write_files(&mut out);
        out
    }

    /// The project's name: what a manifest at the root declares, else the folder's name.
    fn title(&self) -> String {
        self.manifests
            .iter()
            .filter(|m| !m.path.contains('/'))
            .find_map(|m| m.name.clone())
            .or_else(|| {
                Path::new(&self.root)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| self.root.clone())
    }

    fn write_header(&self, out: &mut String) {
        let _ = writeln!(out, "# Workspace analysis: {}\n", escape(&self.title()));
        let _ = writeln!(
            out,
            "{} — {} file{}, {}, {} lines of code; analyzed in {} ({} task{} on the Query lane).\n",
            code(&self.root),
            thousands(self.files.files),
            plural(self.files.files),
            size(self.files.bytes),
            thousands(self.total.lines.code),
            duration(self.elapsed_ms),
            thousands(self.tasks),
            plural(self.tasks),
        );
    }

    fn write_languages(&self, out: &mut String) {
        out.push_str("## Languages\n\n");
        if self.languages.is_empty() {
            out.push_str("No files of a known language.\n\n");
            return;
        }
        out.push_str("| Language | Files | Code | Comments | Blanks | Lines |\n");
        out.push_str("|:---|---:|---:|---:|---:|---:|\n");
        let mut any_embedded = false;
        for language in &self.languages {
            let l = &language.lines;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                escape(&language.name),
                thousands(language.files),
                thousands(l.code),
                thousands(l.comments),
                thousands(l.blanks),
                thousands(l.total()),
            );
            for child in &language.embedded {
                any_embedded = true;
                let c = &child.lines;
                let _ = writeln!(
                    out,
                    "| ↳ {} |  | {} | {} | {} | {} |",
                    escape(&child.name),
                    thousands(c.code),
                    thousands(c.comments),
                    thousands(c.blanks),
                    thousands(c.total()),
                );
            }
        }
        let t = &self.total.lines;
        let _ = writeln!(
            out,
            "| **Total** | **{}** | **{}** | **{}** | **{}** | **{}** |\n",
            thousands(self.total.files),
            thousands(t.code),
            thousands(t.comments),
            thousands(t.blanks),
            thousands(t.total()),
        );
        if any_embedded {
            out.push_str(
                "↳ rows are blocks of one language inside another's files (Rust doc comments \
                 are Markdown, fenced code in Markdown is its language), counted as tokei \
                 counts them; the total includes them.\n\n",
            );
        }
    }

    fn write_markers(&self, out: &mut String) {
        out.push_str("## Markers\n\n");
        let markers = &self.markers;
        let total = markers.total();
        if total == 0 {
            out.push_str("No TODO, FIXME, HACK or XXX markers.\n\n");
            return;
        }
        let counts: Vec<String> = MarkerKind::ALL
            .iter()
            .map(|&kind| format!("{} {}", kind.word(), thousands(markers.count(kind))))
            .collect();
        let _ = writeln!(
            out,
            "**{}** marker{} in {} file{}: {}.\n",
            thousands(total),
            plural(total),
            thousands(markers.files),
            plural(markers.files),
            counts.join(" · ")
        );
        if markers.locations.is_empty() {
            return;
        }
        out.push_str("| Marker | Location | Line |\n|:---|:---|:---|\n");
        for at in &markers.locations {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                at.kind.word(),
                code(&format!("{}:{}", at.path, at.line)),
                code(&at.text),
            );
        }
        let shown = markers.locations.len() as u64;
        if shown < total {
            let _ = writeln!(
                out,
                "\n…and {} more (the first {} by path and line are listed).",
                thousands(total - shown),
                thousands(shown)
            );
        }
        out.push('\n');
    }

    fn write_largest(&self, out: &mut String) {
        if self.largest_files.is_empty() {
            return;
        }
        out.push_str("## Largest files\n\n| File | Size | Language |\n|:---|---:|:---|\n");
        for file in &self.largest_files {
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                code(&file.path),
                size(file.bytes),
                file.language.as_deref().map_or("—".to_string(), escape),
            );
        }
        out.push('\n');
    }

    fn write_manifests(&self, out: &mut String) {
        out.push_str("## Projects\n\n");
        if self.manifests.is_empty() {
            out.push_str("No project manifests found.\n\n");
            return;
        }
        let mut by_kind: BTreeMap<&str, u64> = BTreeMap::new();
        for m in &self.manifests {
            *by_kind.entry(m.kind.label()).or_default() += 1;
        }
        let mut kinds: Vec<(&str, u64)> = by_kind.into_iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        let kinds: Vec<String> = kinds
            .iter()
            .map(|(kind, n)| format!("{} {}", escape(kind), thousands(*n)))
            .collect();
        let n = self.manifests.len() as u64;
        let _ = writeln!(
            out,
            "{} manifest{}: {}.\n",
            thousands(n),
            plural(n),
            kinds.join(" · ")
        );
        // Shallowest first: the root's manifests are the ones that name the project.
        let mut rows: Vec<_> = self.manifests.iter().collect();
        rows.sort_by(|a, b| {
            (a.path.matches('/').count(), &a.path).cmp(&(b.path.matches('/').count(), &b.path))
        });
        out.push_str("| Manifest | Kind | Name |\n|:---|:---|:---|\n");
        for m in rows.iter().take(MAX_MANIFEST_ROWS) {
            let kind = if m.workspace {
                format!("{} (workspace)", m.kind.label())
            } else {
                m.kind.label().to_string()
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                code(&m.path),
                escape(&kind),
                m.name.as_deref().map_or("—".to_string(), code),
            );
        }
        if rows.len() > MAX_MANIFEST_ROWS {
            let _ = writeln!(
                out,
                "\n…and {} more, deeper in the tree.",
                thousands((rows.len() - MAX_MANIFEST_ROWS) as u64)
            );
        }
        out.push('\n');
    }

    fn write_files(&self, out: &mut String) {
        out.push_str("## Files\n\n");
        let f = &self.files;
        let mut kinds = vec![format!(
            "{} in {} language{}",
            thousands(f.counted),
            self.languages.len(),
            plural(self.languages.len() as u64)
        )];
        if f.binary > 0 {
            kinds.push(format!("{} binary", thousands(f.binary)));
        }
        if f.other_text > 0 {
            kinds.push(format!("{} other text", thousands(f.other_text)));
        }
        if f.large_unread > 0 {
            kinds.push(format!(
                "{} other over 8 MiB (not searched for markers)",
                thousands(f.large_unread)
            ));
        }
        let _ = writeln!(
            out,
            "- {} file{} ({}): {}.",
            thousands(f.files),
            plural(f.files),
            size(f.bytes),
            kinds.join(", ")
        );
        let s = &self.skipped;
        if s.ignored_dirs + s.ignored_files > 0 {
            let _ = writeln!(
                out,
                "- Ignored (`.gitignore`, `.ignore`, `.rgignore`): {}.",
                entries(s.ignored_dirs, &s.ignored_dir_names, s.ignored_files)
            );
        }
        if s.hidden_dirs + s.hidden_files > 0 {
            let _ = writeln!(
                out,
                "- Hidden, not analyzed: {}.",
                entries(s.hidden_dirs, &s.hidden_dir_names, s.hidden_files)
            );
        }
        if s.symlinks > 0 {
            let _ = writeln!(
                out,
                "- {} symbolic link{} not followed.",
                thousands(s.symlinks),
                plural(s.symlinks)
            );
        }
        out.push('\n');
        if !self.errors.is_empty() {
            out.push_str("## Errors\n\n");
            for error in &self.errors {
                let _ = writeln!(out, "- {}", escape(error));
            }
            out.push('\n');
        }
    }
}

/// `2 directories (`target/`, `out/`) and 4 files`.
fn entries(dirs: u64, names: &[String], files: u64) -> String {
    const NAMED: usize = 8;
    let mut parts = Vec::new();
    if dirs > 0 {
        let mut named: Vec<String> = names.iter().take(NAMED).map(|n| code(n)).collect();
        if dirs as usize > named.len() {
            named.push("…".into());
        }
        parts.push(format!(
            "{} director{} ({})",
            thousands(dirs),
            if dirs == 1 { "y" } else { "ies" },
            named.join(", ")
        ));
    }
    if files > 0 {
        parts.push(format!("{} file{}", thousands(files), plural(files)));
    }
    parts.join(" and ")
}

fn plural(n: u64) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `532 B`, `4.2 KiB`, `1.0 MiB`, `3.5 GiB`.
pub(crate) fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn duration(ms: u64) -> String {
    if ms < 1_000 {
        format!("{ms} ms")
    } else {
        format!("{:.2} s", ms as f64 / 1_000.0)
    }
}

/// Text safe in a table cell: `|` escaped, line breaks flattened.
fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// A code span holding `text` whatever backticks it contains, safe in a table cell.
fn code(text: &str) -> String {
    let text = escape(text);
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    if longest > 0 || text.starts_with(' ') || text.ends_with(' ') {
        format!("{fence} {text} {fence}")
    } else {
        format!("{fence}{text}{fence}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(size(0), "0 B");
        assert_eq!(size(1023), "1023 B");
        assert_eq!(size(1024), "1.0 KiB");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(size(3 << 30), "3.0 GiB");
    }

    #[test]
    fn code_spans_survive_backticks_and_pipes() {
        assert_eq!(code("a.rs:3"), "`a.rs:3`");
        assert_eq!(code("let x = `y`;"), "`` let x = `y`; ``");
        assert_eq!(code("a | b"), "`a \\| b`");
        assert_eq!(code("```"), "```` ``` ````");
    }
}
