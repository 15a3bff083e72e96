//! Ensembles: after the deterministic analysis, one agent per top-level module explores its
//! module in parallel (as many at once as the Generate lane allows, each under a timeout),
//! then one synthesis agent writes the workspace summary from the report and their notes.
//!
//! A module agent that fails or times out is reported, not fatal: the synthesis goes on with
//! what the others found. Module agents run in sessions that are never written to disk.

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Agent, AgentError, AskContext, StopReason};
use crate::analyze::Analysis;
use crate::lanes::{Lane, Task, TaskError};
use crate::llm::Usage;
use crate::tools::{Toolbox, WalkOptions};

/// Marker locations and largest files quoted per module, at most.
const FACTS_PER_LIST: usize = 10;

/// One module of the workspace, as the deterministic analysis describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Module {
    /// Its name (a crate, a package, a top-level directory).
    pub name: String,
    /// Its directory, relative to the workspace root.
    pub path: String,
    /// Its size in bytes: the largest modules are kept when there are too many.
    pub bytes: u64,
    /// What the analysis found about it, as text for the agent.
    pub facts: String,
}

/// What the ensemble works from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnsembleInput {
    /// The deterministic analysis, as the Markdown report.
    pub report: String,
    /// The modules to give an agent each.
    pub modules: Vec<Module>,
}

/// How one module agent ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ModuleOutcome {
    /// It wrote its notes.
    Done {
        /// The notes.
        notes: String,
    },
    /// It failed; the ensemble went on without it.
    Failed {
        /// Why.
        error: String,
    },
    /// It ran past `agent.ensemble.module_timeout_ms` and was cancelled.
    TimedOut {
        /// The limit it ran into, in milliseconds.
        after_ms: u64,
    },
}

/// One module agent's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleReport {
    /// The module's name.
    pub name: String,
    /// Its directory.
    pub path: String,
    /// How its agent ended.
    pub outcome: ModuleOutcome,
    /// How long its agent ran, in milliseconds.
    pub duration_ms: u64,
}

/// What the ensemble produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnsembleReport {
    /// Every module agent's result, in the order the modules were given.
    pub modules: Vec<ModuleReport>,
    /// The synthesis agent's summary of the workspace.
    pub summary: String,
    /// Tokens over every agent.
    pub usage: Usage,
}

/// Progress of an ensemble, for a progress bar or work-done progress.
#[derive(Debug, Clone, PartialEq)]
pub enum EnsembleEvent {
    /// The module agents start: `total` of them.
    ModulesStarted {
        /// How many module agents run.
        total: usize,
    },
    /// One module agent is over.
    ModuleFinished {
        /// The module.
        name: String,
        /// Whether it wrote its notes.
        ok: bool,
        /// How many are over now.
        done: usize,
        /// How many run in all.
        total: usize,
    },
    /// The synthesis agent starts.
    SynthesisStarted,
}

impl Agent {
    /// Runs the ensemble over `input`: module agents in parallel, then the synthesis agent.
    /// Fails only when no provider is configured, the synthesis fails, or `token` is
    /// cancelled.
    pub async fn ensemble(
        &self,
        input: EnsembleInput,
        progress: &mpsc::UnboundedSender<EnsembleEvent>,
        token: &CancellationToken,
    ) -> Result<EnsembleReport, AgentError> {
        self.llm().map_err(AgentError::NotConfigured)?;
        let config = self.config().ensemble;
        let mut modules = input.modules;
        if modules.len() > config.max_modules {
            modules.sort_by_key(|m| std::cmp::Reverse(m.bytes));
            modules.truncate(config.max_modules);
        }
        let total = modules.len();
        let _ = progress.send(EnsembleEvent::ModulesStarted { total });
        let usage = parking_lot::Mutex::new(Usage::default());
        let (report, config_ref) = (&input.report, &config);
        let mut running: FuturesUnordered<_> = modules
            .iter()
            .enumerate()
            .map(|(index, module)| {
                let usage = &usage;
                async move {
                    let started = Instant::now();
                    let outcome = self
                        .module_agent(report, module, config_ref, token, usage)
                        .await;
                    let report = ModuleReport {
                        name: module.name.clone(),
                        path: module.path.clone(),
                        outcome,
                        duration_ms: millis(started.elapsed()),
                    };
                    (index, report)
                }
            })
            .collect();
        let mut reports: Vec<Option<ModuleReport>> = vec![None; total];
        let mut done = 0;
        while let Some((index, report)) = running.next().await {
            done += 1;
            let ok = matches!(report.outcome, ModuleOutcome::Done { .. });
            let _ = progress.send(EnsembleEvent::ModuleFinished {
                name: report.name.clone(),
                ok,
                done,
                total,
            });
            reports[index] = Some(report);
        }
        drop(running);
        if token.is_cancelled() {
            return Err(AgentError::Model("the analysis was cancelled".into()));
        }
        let modules: Vec<ModuleReport> = reports.into_iter().flatten().collect();

        let _ = progress.send(EnsembleEvent::SynthesisStarted);
        let session = self.ephemeral_session();
        let (events, _) = mpsc::unbounded_channel();
        let prompt = synthesis_prompt(&input.report, &modules);
        let watch = cancel_with(token, &session);
        let result = session
            .send_with(
                &prompt,
                &AskContext::default(),
                &events,
                Some(config.synthesis_max_turns),
            )
            .await;
        drop(watch);
        session.close();
        let outcome = result?;
        if outcome.stop == StopReason::Cancelled {
            return Err(AgentError::Model("the analysis was cancelled".into()));
        }
        let mut usage = usage.into_inner();
        usage.input_tokens += outcome.usage.input_tokens;
        usage.output_tokens += outcome.usage.output_tokens;
        Ok(EnsembleReport {
            modules,
            summary: outcome.text,
            usage,
        })
    }

    async fn module_agent(
        &self,
        report: &str,
        module: &Module,
        config: &super::EnsembleConfig,
        token: &CancellationToken,
        usage: &parking_lot::Mutex<Usage>,
    ) -> ModuleOutcome {
        let session = self.ephemeral_session();
        let (events, _) = mpsc::unbounded_channel();
        let prompt = module_prompt(report, module);
        let watch = cancel_with(token, &session);
        let context = AskContext::default();
        let run = session.send_with(&prompt, &context, &events, Some(config.module_max_turns));
        let result = tokio::time::timeout(config.module_timeout(), run).await;
        drop(watch);
        // Also stops what a timed-out run left in the lanes.
        session.close();
        match result {
            Err(_) => ModuleOutcome::TimedOut {
                after_ms: config.module_timeout_ms,
            },
            Ok(Err(e)) => ModuleOutcome::Failed {
                error: e.to_string(),
            },
            Ok(Ok(outcome)) => {
                let mut total = usage.lock();
                total.input_tokens += outcome.usage.input_tokens;
                total.output_tokens += outcome.usage.output_tokens;
                match outcome.stop {
                    StopReason::Cancelled => ModuleOutcome::Failed {
                        error: "cancelled".into(),
                    },
                    _ if outcome.text.trim().is_empty() => ModuleOutcome::Failed {
                        error: outcome
                            .stop
                            .explain(&self.config())
                            .unwrap_or_else(|| "the agent wrote no notes".into()),
                    },
                    _ => ModuleOutcome::Done {
                        notes: outcome.text,
                    },
                }
            }
        }
    }
}

/// The modules of an analyzed workspace, one agent each: the packages its manifests declare
/// when it has two or more, else its top-level directories (the whole workspace when it has
/// neither). Each is sized by one walk — a Query-lane task, the ignore rules of the tools —
/// and described with what the analysis found inside it.
pub async fn modules(toolbox: &Toolbox, analysis: &Analysis) -> Result<Vec<Module>, String> {
    let root = std::path::PathBuf::from(&analysis.root);
    let workspace = toolbox.workspace().clone();
    let walk = Task::blocking(Lane::Query, "ensemble.modules", move |ctx| {
        let mut files = Vec::new();
        let (entries, _) = WalkOptions::default().walk(&workspace, &root, ctx.token());
        for entry in entries {
            ctx.checkpoint()?;
            if !entry.is_file() {
                continue;
            }
            let Ok(relative) = entry.path().strip_prefix(&root) else {
                continue;
            };
            let bytes = workspace.metadata(entry.path()).map_or(0, |m| m.len());
            files.push((relative.to_string_lossy().replace('\\', "/"), bytes));
        }
        Ok::<_, TaskError>(files)
    });
    let files = toolbox
        .lanes()
        .submit(walk)
        .await
        .map_err(|e| format!("cannot size the modules: {e}"))?;

    // Packages: the directories of manifests that do not root a workspace.
    let mut candidates: Vec<(String, String)> = Vec::new();
    for manifest in analysis.manifests.iter().filter(|m| !m.workspace) {
        let dir = manifest
            .path
            .rsplit_once('/')
            .map_or("", |(dir, _)| dir)
            .to_string();
        if dir.is_empty() || candidates.iter().any(|(_, d)| *d == dir) {
            continue;
        }
        let name = manifest.name.clone().unwrap_or_else(|| dir.clone());
        candidates.push((name, dir));
    }
    if candidates.len() < 2 {
        candidates = files
            .iter()
            .filter_map(|(path, _)| path.split_once('/').map(|(top, _)| top.to_string()))
            .fold(Vec::new(), |mut dirs, dir| {
                if !dirs.contains(&dir) {
                    dirs.push(dir);
                }
                dirs
            })
            .into_iter()
            .map(|dir| (dir.clone(), dir))
            .collect();
    }
    if candidates.is_empty() {
        candidates.push((".".to_string(), String::new()));
    }
    let inside = |dir: &str, path: &str| {
        dir.is_empty()
            || path
                .strip_prefix(dir)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    Ok(candidates
        .into_iter()
        .map(|(name, dir)| {
            let (count, bytes) = files
                .iter()
                .filter(|(path, _)| inside(&dir, path))
                .fold((0u64, 0u64), |(n, b), (_, bytes)| (n + 1, b + bytes));
            let shown = if dir.is_empty() {
                ".".to_string()
            } else {
                dir.clone()
            };
            let mut facts = format!("{count} files, {} in `{shown}`.\n", size(bytes));
            for m in analysis.manifests.iter().filter(|m| inside(&dir, &m.path)) {
                let kind = serde_json::to_value(m.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let named = m
                    .name
                    .as_deref()
                    .map(|n| format!(", `{n}`"))
                    .unwrap_or_default();
                let workspace = if m.workspace { ", a workspace" } else { "" };
                facts.push_str(&format!(
                    "- manifest `{}` ({kind}{named}{workspace})\n",
                    m.path
                ));
            }
            for f in analysis
                .largest_files
                .iter()
                .filter(|f| inside(&dir, &f.path))
                .take(FACTS_PER_LIST)
            {
                let language = f
                    .language
                    .as_deref()
                    .map(|l| format!(", {l}"))
                    .unwrap_or_default();
                facts.push_str(&format!(
                    "- large file `{}` ({}{language})\n",
                    f.path,
                    size(f.bytes)
                ));
            }
            for m in analysis
                .markers
                .locations
                .iter()
                .filter(|m| inside(&dir, &m.path))
                .take(FACTS_PER_LIST)
            {
                let kind = serde_json::to_value(m.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                facts.push_str(&format!(
                    "- {kind} at `{}:{}`: {}\n",
                    m.path,
                    m.line,
                    m.text.trim()
                ));
            }
            Module {
                name,
                path: shown,
                bytes,
                facts,
            }
        })
        .collect())
}

fn size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / f64::from(1u32 << 20)),
        b if b >= 1 << 10 => format!("{:.1} KiB", b as f64 / 1024.0),
        b => format!("{b} bytes"),
    }
}

impl EnsembleReport {
    /// The summary and every module's notes (or why it has none), as Markdown to follow
    /// the deterministic report.
    pub fn to_markdown(&self) -> String {
        let mut out = format!("## Summary\n\n{}\n\n## Modules\n", self.summary.trim());
        for module in &self.modules {
            out.push_str(&format!("\n### {} (`{}`)\n\n", module.name, module.path));
            match &module.outcome {
                ModuleOutcome::Done { notes } => out.push_str(notes.trim()),
                ModuleOutcome::Failed { error } => {
                    out.push_str(&format!("_No notes: its agent failed: {error}._"))
                }
                ModuleOutcome::TimedOut { after_ms } => out.push_str(&format!(
                    "_No notes: its agent ran past {} s (agent.ensemble.module_timeout_ms)._",
                    *after_ms as f64 / 1_000.0
                )),
            }
            out.push('\n');
        }
        out
    }
}

/// Cancels `session` when `token` is, for as long as the guard lives.
fn cancel_with(token: &CancellationToken, session: &super::Session) -> Watch {
    let (token, session) = (token.clone(), session.clone());
    Watch(tokio::spawn(async move {
        token.cancelled().await;
        session.cancel();
    }))
}

/// Stops its watcher task when dropped.
struct Watch(tokio::task::JoinHandle<()>);

impl Drop for Watch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn module_prompt(report: &str, module: &Module) -> String {
    format!(
        "You are one of several agents analyzing a workspace; yours is the module `{name}` in \
         `{path}`. The deterministic analysis of the whole workspace is below, then what it \
         found about your module.\n\nExplore `{path}` with the tools (list it, read its entry \
         points, grep for what matters) and write concise notes for the agent that will \
         summarize the workspace: what the module is for, its main types and entry points, \
         how it connects to the rest, and anything surprising or risky. Cite paths. Do not \
         describe other modules.\n\n## Workspace analysis\n\n{report}\n\n## Module `{name}`\n\n{facts}\n",
        name = module.name,
        path = module.path,
        facts = module.facts,
    )
}

fn synthesis_prompt(report: &str, modules: &[ModuleReport]) -> String {
    let mut notes = String::new();
    for module in modules {
        notes.push_str(&format!("\n### `{}` ({})\n\n", module.name, module.path));
        match &module.outcome {
            ModuleOutcome::Done { notes: text } => notes.push_str(text.trim()),
            ModuleOutcome::Failed { error } => {
                notes.push_str(&format!("(no notes: its agent failed: {error})"))
            }
            ModuleOutcome::TimedOut { after_ms } => {
                notes.push_str(&format!(
                    "(no notes: its agent timed out after {after_ms} ms)"
                ));
            }
        }
        notes.push('\n');
    }
    format!(
        "Write the summary of this workspace for a developer new to it: what it is, how it is \
         organised, how the modules fit together, where to start reading, and what looks risky. \
         Use Markdown with short sections; cite paths. Work from the deterministic analysis and \
         the notes of the module agents below; use the tools only to check a doubt. Where a \
         module has no notes, say so briefly.\n\n## Workspace analysis\n\n{report}\n\n## Module notes\n{notes}"
    )
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
