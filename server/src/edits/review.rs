//! Review mode: a change the agent proposes is shown to the user hunk by hunk before it
//! lands, and only the hunks they accept are applied.
//!
//! The hunks come from the line diff every diff here goes through ([`super::line_diff`],
//! bounded in time): each run of changed lines between unchanged ones is one hunk. The file
//! is then built from the old text with the accepted hunks' new lines in place of their old
//! ones, so a hunk the user rejects leaves exactly the lines that were there. The front end
//! (the language server's `switchyard/reviewChange`) asks; the model is told in words which
//! hunks were applied and which were rejected ([`report`]).

use std::path::PathBuf;

use tokio::sync::oneshot;

use crate::lanes::SessionId;
use crate::tools::Tool;

/// One run of changed lines. Line numbers are 0-based; a pure insertion has `old_lines`
/// 0 and `old_start` the line it goes before, a pure deletion `new_lines` 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hunk {
    /// Its place among the change's hunks, from 0.
    pub index: usize,
    /// First line replaced in the old text.
    pub old_start: usize,
    /// Lines replaced.
    pub old_lines: usize,
    /// First line of the replacement in the new text.
    pub new_start: usize,
    /// Lines of the replacement.
    pub new_lines: usize,
    /// The old lines, line endings included.
    pub old_text: String,
    /// The new lines, line endings included.
    pub new_text: String,
}

/// One file's change, as the user reviews it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Review {
    /// The session whose call proposes it.
    pub session: Option<SessionId>,
    /// The model's id of the call.
    pub call_id: Option<String>,
    /// The tool called.
    pub tool: Tool,
    /// The file (canonical); for a move or a copy, the destination.
    pub path: PathBuf,
    /// What the file reads now (empty for a file that does not exist yet).
    pub old_text: String,
    /// What it would read (empty for a deletion).
    pub new_text: String,
    /// The changed lines; at least one (a change with no line of difference, such as a
    /// move, is one hunk of no lines, accepted or rejected whole).
    pub hunks: Vec<Hunk>,
}

/// A review on its way to the front end, with where its answer goes: the indices of the
/// accepted hunks, or why there is no answer (counted as a rejection).
#[derive(Debug)]
pub struct ReviewRequest {
    /// What to review.
    pub review: Review,
    /// The answer; dropping it counts as a rejection.
    pub reply: oneshot::Sender<Result<Vec<usize>, String>>,
}

/// The hunks turning `old` into `new`; one empty hunk when no line differs.
pub fn hunks(old: &str, new: &str) -> Vec<Hunk> {
    let diff = super::line_diff(old, new);
    let (old_lines, new_lines) = (diff.old_slices(), diff.new_slices());
    let mut hunks: Vec<Hunk> = Vec::new();
    let mut open: Option<(usize, usize, usize, usize)> = None;
    let close = |open: &mut Option<(usize, usize, usize, usize)>, hunks: &mut Vec<Hunk>| {
        if let Some((os, oe, ns, ne)) = open.take() {
            hunks.push(Hunk {
                index: hunks.len(),
                old_start: os,
                old_lines: oe - os,
                new_start: ns,
                new_lines: ne - ns,
                old_text: old_lines[os..oe].concat(),
                new_text: new_lines[ns..ne].concat(),
            });
        }
    };
    for op in diff.ops() {
        let (tag, old_range, new_range) = op.as_tag_tuple();
        if tag == similar::DiffTag::Equal {
            close(&mut open, &mut hunks);
            continue;
        }
        open = Some(match open {
            Some((os, _, ns, _)) => (os, old_range.end, ns, new_range.end),
            None => (
                old_range.start,
                old_range.end,
                new_range.start,
                new_range.end,
            ),
        });
    }
    close(&mut open, &mut hunks);
    if hunks.is_empty() {
        hunks.push(Hunk {
            index: 0,
            old_start: 0,
            old_lines: 0,
            new_start: 0,
            new_lines: 0,
            old_text: String::new(),
            new_text: String::new(),
        });
    }
    hunks
}

/// `old` with the accepted hunks' new lines in place of their old ones; the other hunks
/// keep their old lines.
pub fn build(old: &str, hunks: &[Hunk], accepted: &[usize]) -> String {
    // The old text's lines as the diff cut them (against nothing, which takes no search).
    let diff = super::line_diff(old, "");
    let lines = diff.old_slices();
    let mut out = String::with_capacity(old.len());
    let mut at = 0;
    for hunk in hunks {
        let start = hunk.old_start.min(lines.len());
        out.extend(lines[at.min(start)..start].iter().copied());
        if accepted.contains(&hunk.index) {
            out.push_str(&hunk.new_text);
        } else {
            out.push_str(&hunk.old_text);
        }
        at = (hunk.old_start + hunk.old_lines).min(lines.len());
    }
    out.extend(lines[at.min(lines.len())..].iter().copied());
    out
}

/// What the model is told of a partly accepted review of `shown`: which hunks were
/// applied and which were rejected, with their lines (1-based, of the file as it was) and
/// the start of what each proposed.
pub fn report(shown: &str, hunks: &[Hunk], accepted: &[usize]) -> String {
    let describe = |h: &Hunk| {
        let lines = match h.old_lines {
            0 => format!("new lines after line {}", h.old_start),
            1 => format!("line {}", h.old_start + 1),
            n => format!("lines {}–{}", h.old_start + 1, h.old_start + n),
        };
        let proposed = h
            .new_text
            .lines()
            .find(|l| !l.trim().is_empty())
            .or_else(|| h.old_text.lines().find(|l| !l.trim().is_empty()))
            .unwrap_or("");
        let mut excerpt: String = proposed.trim().chars().take(60).collect();
        if proposed.trim().chars().count() > 60 {
            excerpt.push('…');
        }
        let verb = if h.new_lines == 0 { "removing" } else { "" };
        let excerpt = match (verb, excerpt.is_empty()) {
            (_, true) => String::new(),
            ("", false) => format!(": `{excerpt}`"),
            (verb, false) => format!(": {verb} `{excerpt}`"),
        };
        format!("hunk {} ({lines}{excerpt})", h.index + 1)
    };
    let (applied, rejected): (Vec<&Hunk>, Vec<&Hunk>) =
        hunks.iter().partition(|h| accepted.contains(&h.index));
    let list = |hs: &[&Hunk]| {
        hs.iter()
            .map(|h| describe(h))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let mut out = format!(
        "The user reviewed the change to `{shown}` hunk by hunk: applied {} of {}",
        applied.len(),
        hunks.len()
    );
    if !applied.is_empty() {
        out.push_str(&format!(" — {}", list(&applied)));
    }
    if !rejected.is_empty() {
        out.push_str(&format!(
            ". Rejected, so not in the file: {}. The file has only the applied hunks; read it again before changing it further, and do not redo a rejected hunk unless the user asks",
            list(&rejected)
        ));
    }
    out.push('.');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD: &str = "a\nb\nc\nd\ne\nf\ng\n";
    const NEW: &str = "a\nB\nc\nd\ne\nF1\nF2\ng\n";

    #[test]
    fn hunks_are_the_runs_of_changed_lines() {
        let hs = hunks(OLD, NEW);
        assert_eq!(hs.len(), 2);
        assert_eq!(
            (
                hs[0].old_start,
                hs[0].old_lines,
                hs[0].new_start,
                hs[0].new_lines
            ),
            (1, 1, 1, 1)
        );
        assert_eq!(
            (hs[0].old_text.as_str(), hs[0].new_text.as_str()),
            ("b\n", "B\n")
        );
        assert_eq!(
            (
                hs[1].old_start,
                hs[1].old_lines,
                hs[1].new_start,
                hs[1].new_lines
            ),
            (5, 1, 5, 2)
        );
        assert_eq!(hs[1].index, 1);
    }

    #[test]
    fn the_file_holds_exactly_the_accepted_hunks() {
        let hs = hunks(OLD, NEW);
        assert_eq!(build(OLD, &hs, &[0, 1]), NEW);
        assert_eq!(build(OLD, &hs, &[]), OLD);
        assert_eq!(build(OLD, &hs, &[0]), "a\nB\nc\nd\ne\nf\ng\n");
        assert_eq!(build(OLD, &hs, &[1]), "a\nb\nc\nd\ne\nF1\nF2\ng\n");
        // Insertions at the ends, deletions, no final newline, a new file.
        for (old, new) in [
            ("x\n", "top\nx\nbottom"),
            ("x\ny\nz", "y"),
            ("", "new\nfile\n"),
            ("gone\n", ""),
        ] {
            let hs = hunks(old, new);
            let all: Vec<usize> = hs.iter().map(|h| h.index).collect();
            assert_eq!(build(old, &hs, &all), new, "{old:?} → {new:?}");
            assert_eq!(build(old, &hs, &[]), old, "{old:?} → {new:?}");
        }
    }

    #[test]
    fn no_difference_is_one_empty_hunk() {
        let hs = hunks("same\n", "same\n");
        assert_eq!(hs.len(), 1);
        assert_eq!((hs[0].old_lines, hs[0].new_lines), (0, 0));
        assert_eq!(build("same\n", &hs, &[0]), "same\n");
    }

    #[test]
    fn the_report_names_applied_and_rejected_hunks_with_lines_and_excerpts() {
        let hs = hunks(OLD, NEW);
        let text = report("src/x.rs", &hs, &[0]);
        assert_eq!(
            text,
            "The user reviewed the change to `src/x.rs` hunk by hunk: applied 1 of 2 — hunk 1 (line 2: `B`). \
             Rejected, so not in the file: hunk 2 (line 6: `F1`). The file has only the applied hunks; read it \
             again before changing it further, and do not redo a rejected hunk unless the user asks."
        );
    }
}
