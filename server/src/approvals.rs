//! Approvals: a policy per tool — allow, ask or deny — and the ways a person is asked.
//!
//! Defaults: the read-only tools are allowed; write, edit, multi_edit, delete, move and copy
//! ask; bash is denied. In the language server, asking is a `window/showMessageRequest`
//! (Allow / Allow for this session / Reject) sent by the LSP layer; in the CLI it is a
//! prompt on the terminal, and `--yes` allows everything the policy does not deny.

use std::collections::HashSet;
use std::fmt;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::config::Current;
use crate::lanes::SessionId;
use crate::tools::{Tool, ToolKind};

/// What a tool may do without asking, from the loosest to the strictest (so `a < b` means
/// `a` allows more than `b`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Policy {
    /// Run without asking.
    Allow,
    /// Ask first.
    Ask,
    /// Never run; the model is told so.
    Deny,
}

/// The policy of every tool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsConfig {
    /// `read`.
    pub read: Policy,
    /// `glob`.
    pub glob: Policy,
    /// `grep`.
    pub grep: Policy,
    /// `ls`.
    pub ls: Policy,
    /// `write`.
    pub write: Policy,
    /// `edit`.
    pub edit: Policy,
    /// `multi_edit`.
    pub multi_edit: Policy,
    /// `delete`.
    pub delete: Policy,
    /// `move`.
    #[serde(rename = "move")]
    pub move_: Policy,
    /// `copy`.
    pub copy: Policy,
    /// `bash`.
    pub bash: Policy,
}

impl Default for ApprovalsConfig {
    fn default() -> Self {
        ApprovalsConfig {
            read: Policy::Allow,
            glob: Policy::Allow,
            grep: Policy::Allow,
            ls: Policy::Allow,
            write: Policy::Ask,
            edit: Policy::Ask,
            multi_edit: Policy::Ask,
            delete: Policy::Ask,
            move_: Policy::Ask,
            copy: Policy::Ask,
            bash: Policy::Deny,
        }
    }
}

impl ApprovalsConfig {
    /// The policy of `tool`.
    pub fn policy(&self, tool: Tool) -> Policy {
        match tool {
            Tool::Read => self.read,
            Tool::Glob => self.glob,
            Tool::Grep => self.grep,
            Tool::Ls => self.ls,
            // It changes nothing and only shows the user a checklist.
            Tool::UpdatePlan => Policy::Allow,
            Tool::Write => self.write,
            Tool::Edit => self.edit,
            Tool::MultiEdit => self.multi_edit,
            Tool::Delete => self.delete,
            Tool::Move => self.move_,
            Tool::Copy => self.copy,
            Tool::Bash => self.bash,
        }
    }
}

/// A person's answer to "may this tool do this?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// This once.
    Allow,
    /// This tool, for the rest of the session.
    AllowForSession,
    /// No.
    Reject,
}

/// What asks for approval: a built-in tool, or a tool known at run time (an MCP server's)
/// by the name the model calls it, with the setting that holds its policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// A built-in tool; its policy is `approvals.<tool>`.
    Tool(Tool),
    /// An MCP tool (`mcp__<server>__<tool>`).
    Mcp {
        /// The name the model calls it.
        name: Arc<str>,
        /// The setting that holds its policy (`mcp_servers.fs.approval`).
        setting: Arc<str>,
    },
}

impl Subject {
    /// What it is, for the protocols: a built-in's kind from the table; an outside tool
    /// that asks is one whose effects are not known.
    pub fn kind(&self) -> ToolKind {
        match self {
            Subject::Tool(tool) => tool.kind(),
            Subject::Mcp { .. } => ToolKind::Other,
        }
    }

    /// The setting a user changes to allow or deny it.
    fn setting(&self) -> String {
        match self {
            Subject::Tool(tool) => format!("approvals.{tool}"),
            Subject::Mcp { setting, .. } => setting.to_string(),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Tool(tool) => tool.fmt(f),
            Subject::Mcp { name, .. } => f.write_str(name),
        }
    }
}

/// A question on its way to the editor, with where to send the answer.
#[derive(Debug)]
pub struct ApprovalRequest {
    /// The session whose call asks, when it runs in one (ACP asks per session).
    pub session: Option<SessionId>,
    /// The tool asking.
    pub tool: Subject,
    /// What it wants to do ("edit src/main.rs: 1 replacement, +3 −1 lines").
    pub summary: String,
    /// The answer; dropping it counts as a rejection.
    pub reply: oneshot::Sender<Decision>,
}

/// Who is asked when the policy says `ask`.
#[derive(Debug, Clone)]
pub enum Prompter {
    /// The editor, through the language server or the ACP client.
    Editor(mpsc::Sender<ApprovalRequest>),
    /// The terminal the CLI runs in.
    Terminal,
    /// `--yes`: everything the policy does not deny is allowed.
    AllowAll,
    /// Nobody can be asked: `ask` means no.
    Nobody,
}

/// The policies in force and the person to ask.
#[derive(Debug)]
pub struct Approvals {
    /// The configuration in force; its `approvals` table is read at each check.
    config: Current,
    prompter: Prompter,
    allowed_for_session: Mutex<HashSet<(Option<SessionId>, Subject)>>,
    terminal: Mutex<()>,
}

impl Approvals {
    /// Approvals by the `approvals` table of `config`, asking `prompter`.
    pub fn new(config: impl Into<Current>, prompter: Prompter) -> Approvals {
        Approvals {
            config: config.into(),
            prompter,
            allowed_for_session: Mutex::new(HashSet::new()),
            terminal: Mutex::new(()),
        }
    }

    /// The policy of `tool` now.
    pub fn policy(&self, tool: Tool) -> Policy {
        self.config.get().approvals.policy(tool)
    }

    /// Whether `tool` may do what `summary` says; `Err` holds what the model is told.
    pub async fn check(
        &self,
        tool: Tool,
        summary: &str,
        session: Option<&SessionId>,
    ) -> Result<(), String> {
        self.decide(Subject::Tool(tool), self.policy(tool), summary, session)
            .await
    }

    /// Whether `subject`, under `policy` (an MCP tool's, from its server's settings), may do
    /// what `summary` says; asked like a built-in tool.
    pub async fn check_runtime(
        &self,
        subject: Subject,
        policy: Policy,
        summary: &str,
        session: Option<&SessionId>,
    ) -> Result<(), String> {
        self.decide(subject, policy, summary, session).await
    }

    async fn decide(
        &self,
        tool: Subject,
        policy: Policy,
        summary: &str,
        session: Option<&SessionId>,
    ) -> Result<(), String> {
        let setting = tool.setting();
        match policy {
            Policy::Allow => return Ok(()),
            Policy::Deny => {
                return Err(format!(
                    "`{tool}` is turned off by the user's policy ({setting} = \"deny\"); do not call it again — \
                     tell the user what you wanted to do instead"
                ));
            }
            Policy::Ask => {}
        }
        let key = (session.cloned(), tool.clone());
        if self.allowed_for_session.lock().contains(&key) {
            return Ok(());
        }
        let nobody = match &self.prompter {
            Prompter::Nobody => true,
            Prompter::Terminal => !std::io::stdin().is_terminal(),
            _ => false,
        };
        let decision = match &self.prompter {
            Prompter::AllowAll => Decision::Allow,
            _ if nobody => {
                return Err(format!(
                    "`{tool}` needs the user's approval and nobody can be asked here ({summary}); \
                     the user can allow it with --yes or {setting} = \"allow\""
                ));
            }
            Prompter::Editor(editor) => {
                let (reply, answer) = oneshot::channel();
                let request = ApprovalRequest {
                    session: session.cloned(),
                    tool: tool.clone(),
                    summary: summary.to_string(),
                    reply,
                };
                if editor.send(request).await.is_err() {
                    return Err("the editor connection is closed; nothing was changed".into());
                }
                answer.await.unwrap_or(Decision::Reject)
            }
            Prompter::Terminal => self.ask_terminal(summary).await,
            Prompter::Nobody => Decision::Reject,
        };
        match decision {
            Decision::Allow => Ok(()),
            Decision::AllowForSession => {
                self.allowed_for_session.lock().insert(key);
                Ok(())
            }
            Decision::Reject => Err(format!(
                "the user rejected this `{tool}` ({summary}); nothing was changed — do not retry it unless the user asks"
            )),
        }
    }

    async fn ask_terminal(&self, summary: &str) -> Decision {
        let question =
            format!("switchyard: allow {summary}? [y]es / [a]lways for this session / [N]o: ");
        // One question at a time on the terminal; reading stdin blocks, so off the runtime.
        let _turn = self.terminal.lock();
        tokio::task::block_in_place(|| {
            let mut stderr = std::io::stderr();
            let _ = stderr.write_all(question.as_bytes());
            let _ = stderr.flush();
            let mut line = String::new();
            if std::io::stdin().lock().read_line(&mut line).is_err() {
                return Decision::Reject;
            }
            match line.trim().to_ascii_lowercase().as_str() {
                "y" | "yes" => Decision::Allow,
                "a" | "always" => Decision::AllowForSession,
                _ => Decision::Reject,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn policies_allow_ask_and_deny() {
        let approvals = Approvals::new(ApprovalsConfig::default(), Prompter::Nobody);
        assert!(approvals.check(Tool::Read, "read x", None).await.is_ok());
        let err = approvals
            .check(Tool::Bash, "run `rm -rf /`", None)
            .await
            .unwrap_err();
        assert!(
            err.starts_with("`bash` is turned off by the user's policy"),
            "{err}"
        );
        let err = approvals
            .check(Tool::Edit, "edit src/main.rs", None)
            .await
            .unwrap_err();
        assert!(err.contains("needs the user's approval"), "{err}");
        let yes = Approvals::new(ApprovalsConfig::default(), Prompter::AllowAll);
        assert!(
            yes.check(Tool::Edit, "edit src/main.rs", None)
                .await
                .is_ok()
        );
        assert!(
            yes.check(Tool::Bash, "run ls", None).await.is_err(),
            "--yes never overrides deny"
        );
    }

    #[tokio::test]
    async fn the_editor_is_asked_and_a_session_allowance_sticks() {
        let (tx, mut rx) = mpsc::channel(4);
        let approvals = std::sync::Arc::new(Approvals::new(
            ApprovalsConfig::default(),
            Prompter::Editor(tx),
        ));
        let answers = tokio::spawn(async move {
            let mut asked = Vec::new();
            for decision in [Decision::Reject, Decision::AllowForSession] {
                let request = rx.recv().await.unwrap();
                asked.push(request.summary.clone());
                request.reply.send(decision).unwrap();
            }
            asked
        });
        let session: SessionId = "s1".into();
        let err = approvals
            .check(Tool::Edit, "edit a.rs", Some(&session))
            .await
            .unwrap_err();
        assert!(
            err.starts_with("the user rejected this `edit` (edit a.rs)"),
            "{err}"
        );
        approvals
            .check(Tool::Edit, "edit b.rs", Some(&session))
            .await
            .unwrap();
        // Allowed for the session: not asked again, in this session only.
        approvals
            .check(Tool::Edit, "edit c.rs", Some(&session))
            .await
            .unwrap();
        assert_eq!(answers.await.unwrap(), ["edit a.rs", "edit b.rs"]);
        let other: SessionId = "s2".into();
        assert!(
            approvals
                .check(Tool::Edit, "edit d.rs", Some(&other))
                .await
                .is_err(),
            "the editor hung up: a refusal"
        );
    }
}
