//! Sessions on disk: one JSON-lines file per session under
//! `$XDG_STATE_HOME/switchyard/sessions/<workspace-hash>/<session-id>.jsonl`.
//!
//! The first line describes the session, every later line is one message of its history,
//! appended as the conversation goes, so a crash loses at most the line being written (a
//! torn last line is skipped on load). Only the conversation is written: never the API key
//! nor any other setting. All file work goes through `tokio::fs`, off the runtime's workers.
//!
//! A session holds what the user asked and what the tools read, so it is private: files are
//! 0600 and their folders 0700, and a file or folder an older version left readable to
//! others is narrowed the next time it is written.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::checkpoint::Prior;
use crate::llm::{Message, ProviderKind, Usage};

/// Session files: read and written by their owner only.
const FILE_MODE: u32 = 0o600;

/// Session folders: entered by their owner only.
const DIR_MODE: u32 = 0o700;

/// Whether `meta` shows permissions for the group or others (an error reads as "no":
/// nothing to fix).
fn needs_narrowing(meta: &std::io::Result<std::fs::Metadata>) -> bool {
    meta.as_ref()
        .is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
}

/// Sets `path` to `mode` when `meta` says it is not.
async fn narrow(
    path: &Path,
    mode: u32,
    meta: std::io::Result<std::fs::Metadata>,
) -> Result<(), String> {
    if !needs_narrowing(&meta) {
        return Ok(());
    }
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .await
        .map_err(|e| {
            format!(
                "cannot make {} private (mode {mode:o}): {e}",
                path.display()
            )
        })
}

/// The file format's version, written in every header.
const VERSION: u32 = 1;

/// Characters of the first prompt kept as a session's title.
const TITLE_CHARS: usize = 80;

/// One line of a session file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Line {
    /// The first line.
    Session {
        version: u32,
        id: String,
        workspace: String,
        created_ms: u64,
    },
    /// One message of the history.
    Message { message: Message },
    /// What one turn (one prompt and the model calls and tools it led to) used, written
    /// when it ends.
    Usage {
        turn: u32,
        model: String,
        usage: Usage,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost_usd: Option<f64>,
    },
    /// What a file was before turn `turn` first changed it.
    Checkpoint {
        turn: u32,
        path: PathBuf,
        before: Prior,
    },
    /// What the agent left a file as after a batch of turn `turn`'s calls (`None`: absent).
    After {
        turn: u32,
        path: PathBuf,
        fingerprint: Option<String>,
    },
    /// Turn `turn` ran a tool whose changes are not known.
    Unrestorable { turn: u32, tool: String },
    /// The first `covered` messages of the transcript are summarized by `summary`: the
    /// model is sent it and the messages after them. The transcript itself stays.
    Compaction { covered: usize, summary: Message },
    /// From now on the session's turns use this model (and provider, when given).
    Model {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider: Option<ProviderKind>,
        model: String,
    },
    /// The session went back to the start of `turn`: its files, its conversation or both.
    Rewind {
        turn: u32,
        code: bool,
        conversation: bool,
    },
}

/// A file's state before a turn changed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The turn.
    pub turn: u32,
    /// The file (canonical).
    pub path: PathBuf,
    /// What it was.
    pub before: Prior,
}

/// What a session file holds, replayed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// The conversation, as the model is sent it (compacted, when it was).
    pub messages: Vec<Message>,
    /// The whole transcript, compacted parts included.
    pub full: Vec<Message>,
    /// How many messages of the transcript the compaction in force summarizes, and its
    /// summary.
    pub compaction: Option<(usize, Message)>,
    /// Turns so far: prompts the user sent.
    pub turns: u32,
    /// Tokens over every turn.
    pub usage: Usage,
    /// What they cost, when a price was configured for a model used.
    pub cost_usd: Option<f64>,
    /// Each turn's usage, in order: the turn, the model, its tokens and cost.
    pub turn_usage: Vec<TurnUsage>,
    /// The checkpoints still in force, oldest first.
    pub checkpoints: Vec<Checkpoint>,
    /// What the agent left each file as, oldest first: the turn, the file, its fingerprint.
    pub afters: Vec<(u32, PathBuf, Option<String>)>,
    /// Turns that ran a tool whose changes are not known, with the tool.
    pub unrestorable: Vec<(u32, String)>,
    /// The model the session was switched to, if it was.
    pub model: Option<(Option<ProviderKind>, String)>,
}

/// What one turn used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnUsage {
    /// The turn, from 1.
    pub turn: u32,
    /// The model that answered it.
    pub model: String,
    /// Its tokens.
    pub usage: Usage,
    /// Its cost in US dollars, when the model has a price.
    pub cost_usd: Option<f64>,
}

impl Loaded {
    fn apply(&mut self, line: Line) {
        match line {
            Line::Session { .. } => {}
            Line::Message { message } => {
                if matches!(message, Message::User { .. }) {
                    self.turns += 1;
                }
                self.full.push(message.clone());
                self.messages.push(message);
            }
            Line::Compaction { covered, summary } => {
                if covered <= self.full.len() {
                    self.compaction = Some((covered, summary));
                    self.working();
                }
            }
            Line::Usage {
                turn,
                model,
                usage,
                cost_usd,
            } => {
                self.usage.add(usage);
                self.cost_usd = add_cost(self.cost_usd, cost_usd);
                self.turn_usage.push(TurnUsage {
                    turn,
                    model,
                    usage,
                    cost_usd,
                });
            }
            Line::Checkpoint { turn, path, before } => {
                self.checkpoints.push(Checkpoint { turn, path, before });
            }
            Line::After {
                turn,
                path,
                fingerprint,
            } => self.afters.push((turn, path, fingerprint)),
            Line::Unrestorable { turn, tool } => self.unrestorable.push((turn, tool)),
            Line::Model { provider, model } => self.model = Some((provider, model)),
            Line::Rewind {
                turn,
                code,
                conversation,
            } => {
                if conversation {
                    let mut prompts = 0;
                    let start = self.full.iter().position(|m| {
                        prompts += u32::from(matches!(m, Message::User { .. }));
                        prompts == turn
                    });
                    if let Some(start) = start {
                        self.full.truncate(start);
                        self.turns = turn - 1;
                        // A summary of turns that are gone is gone with them.
                        if self.compaction.as_ref().is_some_and(|(n, _)| *n > start) {
                            self.compaction = None;
                        }
                        self.working();
                    }
                }
                if code {
                    self.afters.retain(|(t, ..)| *t < turn);
                }
                // Spent either way: restored, or no longer reachable once the turns are
                // numbered anew.
                self.checkpoints.retain(|c| c.turn < turn);
                self.unrestorable.retain(|(t, _)| *t < turn);
            }
        }
    }
}

impl Loaded {
    /// Rebuilds what the model is sent from the transcript and the compaction.
    fn working(&mut self) {
        self.messages = match &self.compaction {
            Some((covered, summary)) => std::iter::once(summary.clone())
                .chain(self.full[*covered..].iter().cloned())
                .collect(),
            None => self.full.clone(),
        };
    }
}

/// `a + b` where either may be unknown: known when either is.
pub fn add_cost(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (None, None) => None,
        (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
    }
}

/// A stored session as [`SessionStore::list`] shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    /// The session's id.
    pub id: String,
    /// When it was created, Unix milliseconds.
    pub created_ms: u64,
    /// When it last changed, Unix milliseconds.
    pub updated_ms: u64,
    /// Messages in its history.
    pub messages: usize,
    /// The start of its first prompt.
    pub title: String,
    /// Prompts sent in it.
    pub turns: u32,
    /// Tokens over every turn.
    pub usage: Usage,
    /// What they cost, when a price was configured for a model used.
    pub cost_usd: Option<f64>,
}

/// The sessions of one workspace on disk.
#[derive(Debug, Clone)]
pub struct SessionStore {
    dir: PathBuf,
    workspace: String,
}

impl SessionStore {
    /// The store of the workspace rooted at `root`, under the user's state directory
    /// (`$XDG_STATE_HOME`, else `~/.local/state`; the local data directory where there is no
    /// state directory).
    pub fn for_workspace(root: &Path) -> Result<SessionStore, String> {
        let base = dirs::state_dir()
            .or_else(dirs::data_local_dir)
            .ok_or_else(|| {
                "cannot find a state directory for sessions: set XDG_STATE_HOME or HOME".to_string()
            })?;
        Ok(SessionStore::in_dir(
            base.join("switchyard").join("sessions"),
            root,
        ))
    }

    /// The store of the workspace rooted at `root`, under `sessions_dir`.
    pub fn in_dir(sessions_dir: PathBuf, root: &Path) -> SessionStore {
        let workspace = root.display().to_string();
        SessionStore {
            dir: sessions_dir.join(workspace_key(&workspace)),
            workspace,
        }
    }

    /// The directory this workspace's session files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of session `id`.
    pub fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.jsonl"))
    }

    /// Starts the file of a new session with its header line.
    pub(crate) async fn create(&self, id: &str) -> Result<(), String> {
        tokio::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&self.dir)
            .await
            .map_err(|e| {
                format!(
                    "cannot create the session directory {}: {e}",
                    self.dir.display()
                )
            })?;
        let header = Line::Session {
            version: VERSION,
            id: id.to_string(),
            workspace: self.workspace.clone(),
            created_ms: now_ms(),
        };
        self.write(id, &[header], true).await
    }

    /// Appends messages to session `id`'s file.
    pub(crate) async fn append(&self, id: &str, messages: &[Message]) -> Result<(), String> {
        let lines: Vec<Line> = messages
            .iter()
            .map(|m| Line::Message { message: m.clone() })
            .collect();
        self.write(id, &lines, false).await
    }

    /// Appends what turn `turn` used to session `id`'s file.
    pub(crate) async fn append_usage(&self, id: &str, turn: &TurnUsage) -> Result<(), String> {
        let line = Line::Usage {
            turn: turn.turn,
            model: turn.model.clone(),
            usage: turn.usage,
            cost_usd: turn.cost_usd,
        };
        self.write(id, &[line], false).await
    }

    /// Appends records to session `id`'s file.
    pub(crate) async fn append_lines(&self, id: &str, lines: &[Line]) -> Result<(), String> {
        self.write(id, lines, false).await
    }

    /// The folder of session `id`'s checkpoint contents.
    fn blob_dir(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.blobs"))
    }

    /// Keeps `bytes` for session `id` under their SHA-256 (once: the same content is stored
    /// once), privately; returns the hash. Blocking: call it off the runtime's workers.
    pub(crate) fn put_blob(&self, id: &str, bytes: &[u8]) -> Result<String, String> {
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let sha = super::checkpoint::sha256(bytes);
        let dir = self.blob_dir(id);
        let path = dir.join(&sha);
        if path.exists() {
            return Ok(sha);
        }
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let temp = dir.join(format!(".{sha}.{:08x}", fastrand::u32(..)));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&temp)
            .and_then(|mut file| file.write_all(bytes).and_then(|()| file.sync_data()))
            .and_then(|()| std::fs::rename(&temp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&temp);
            return Err(format!(
                "cannot keep a checkpoint in {}: {e}",
                dir.display()
            ));
        }
        Ok(sha)
    }

    /// The content kept under `sha` for session `id`. Blocking.
    pub(crate) fn blob(&self, id: &str, sha: &str) -> Result<Vec<u8>, String> {
        let path = self.blob_dir(id).join(sha);
        let bytes = std::fs::read(&path)
            .map_err(|e| format!("cannot read the checkpoint {}: {e}", path.display()))?;
        if super::checkpoint::sha256(&bytes) != sha {
            return Err(format!(
                "the checkpoint {} does not hold what was kept",
                path.display()
            ));
        }
        Ok(bytes)
    }

    /// Deletes session `id`'s file and checkpoints; `Ok(false)` when there is no file.
    pub async fn delete(&self, id: &str) -> Result<bool, String> {
        let path = self.path(id);
        let blobs = self.blob_dir(id);
        if let Err(e) = tokio::fs::remove_dir_all(&blobs).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            return Err(format!("cannot delete {}: {e}", blobs.display()));
        }
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(format!(
                "cannot delete session file {}: {e}",
                path.display()
            )),
        }
    }

    async fn write(&self, id: &str, lines: &[Line], create_new: bool) -> Result<(), String> {
        let mut text = String::new();
        for line in lines {
            let json = serde_json::to_string(line)
                .map_err(|e| format!("cannot encode a line of session {id}: {e}"))?;
            text.push_str(&json);
            text.push('\n');
        }
        let path = self.path(id);
        let mut options = tokio::fs::OpenOptions::new();
        options.append(true).mode(FILE_MODE);
        if create_new {
            options.create_new(true);
        }
        let mut file = options
            .open(&path)
            .await
            .map_err(|e| format!("cannot open session file {}: {e}", path.display()))?;
        narrow(&self.dir, DIR_MODE, tokio::fs::metadata(&self.dir).await).await?;
        let meta = file.metadata().await;
        if needs_narrowing(&meta) {
            file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))
                .await
                .map_err(|e| {
                    format!(
                        "cannot make session file {} private (mode 600): {e}",
                        path.display()
                    )
                })?;
        }
        // One write per batch, so a reader never sees half of a message line but at a crash.
        file.write_all(text.as_bytes())
            .await
            .map_err(|e| format!("cannot write session file {}: {e}", path.display()))?;
        file.flush()
            .await
            .map_err(|e| format!("cannot write session file {}: {e}", path.display()))
    }

    /// Reads session `id`'s history back.
    pub async fn load(&self, id: &str) -> Result<Vec<Message>, String> {
        self.replay(id).await.map(|loaded| loaded.messages)
    }

    /// Reads session `id`'s file back: its history, turns and usage.
    pub async fn replay(&self, id: &str) -> Result<Loaded, String> {
        let path = self.path(id);
        let text = match tokio::fs::read_to_string(&path).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(format!(
                    "no session `{id}` in this workspace (looked for {})",
                    path.display()
                ));
            }
            Err(e) => return Err(format!("cannot read session file {}: {e}", path.display())),
        };
        let mut loaded = Loaded::default();
        for (number, raw) in text.lines().enumerate() {
            match serde_json::from_str::<Line>(raw) {
                Ok(Line::Session { version, .. }) if version > VERSION => {
                    return Err(format!(
                        "session file {} is of format version {version}; this switchyard reads up to {VERSION}",
                        path.display()
                    ));
                }
                Ok(line) => loaded.apply(line),
                Err(e) => {
                    tracing::warn!(file = %path.display(), line = number + 1, error = %e, "skipping an unreadable session line")
                }
            }
        }
        Ok(loaded)
    }

    /// This workspace's sessions, most recently changed first.
    pub async fn list(&self) -> Result<Vec<SessionInfo>, String> {
        let mut dir = match tokio::fs::read_dir(&self.dir).await {
            Ok(dir) => dir,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(format!(
                    "cannot list sessions in {}: {e}",
                    self.dir.display()
                ));
            }
        };
        let mut sessions = Vec::new();
        while let Ok(Some(entry)) = dir.next_entry().await {
            let path = entry.path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".jsonl"))
                .filter(|id| valid_id(id))
            else {
                continue;
            };
            let Ok(text) = tokio::fs::read_to_string(&path).await else {
                continue;
            };
            let updated_ms = entry
                .metadata()
                .await
                .ok()
                .and_then(|m| m.modified().ok())
                .map_or(0, epoch_ms);
            let mut created_ms = 0;
            let mut loaded = Loaded::default();
            for line in text
                .lines()
                .filter_map(|raw| serde_json::from_str::<Line>(raw).ok())
            {
                if let Line::Session { created_ms: at, .. } = line {
                    created_ms = at;
                }
                loaded.apply(line);
            }
            let title = loaded
                .full
                .iter()
                .find_map(|m| match m {
                    Message::User { content } => Some(title(content)),
                    _ => None,
                })
                .unwrap_or_default();
            sessions.push(SessionInfo {
                id: id.to_string(),
                created_ms,
                updated_ms,
                messages: loaded.full.len(),
                title,
                turns: loaded.turns,
                usage: loaded.usage,
                cost_usd: loaded.cost_usd,
            });
        }
        sessions.sort_by(|a, b| {
            b.updated_ms
                .cmp(&a.updated_ms)
                .then_with(|| a.id.cmp(&b.id))
        });
        Ok(sessions)
    }
}

/// Whether `id` can name a session file: 1 to 64 ASCII letters, digits, `-` or `_`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A new session id: 16 hex digits, random.
pub(crate) fn new_id() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// The directory name of a workspace: FNV-1a of its root path, in hex. Stable across runs
/// and releases (unlike `std`'s hasher).
fn workspace_key(root: &str) -> String {
    let hash = root.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    format!("{hash:016x}")
}

fn title(prompt: &str) -> String {
    let line = prompt
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    match line.char_indices().nth(TITLE_CHARS) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line.to_string(),
    }
}

fn now_ms() -> u64 {
    epoch_ms(SystemTime::now())
}

fn epoch_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Makes a loaded history one a model accepts: every tool call of an assistant message gets
/// a result (a session that stopped mid-tool, in a crash, has calls without one).
pub(crate) fn repair(messages: &mut Vec<Message>) {
    let mut at = 0;
    while at < messages.len() {
        if let Message::Assistant { tool_calls, .. } = &messages[at] {
            let calls: Vec<String> = tool_calls.iter().map(|c| c.id.clone()).collect();
            let mut end = at + 1;
            let mut answered = Vec::new();
            while let Some(Message::ToolResult { call_id, .. }) = messages.get(end) {
                answered.push(call_id.clone());
                end += 1;
            }
            let missing: Vec<Message> = calls
                .into_iter()
                .filter(|id| !answered.contains(id))
                .map(|call_id| Message::ToolResult {
                    call_id,
                    content: "error: the session stopped before this call's result was recorded"
                        .into(),
                    is_error: true,
                    images: Vec::new(),
                })
                .collect();
            let added = missing.len();
            messages.splice(end..end, missing);
            at = end + added;
        } else {
            at += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ToolCall;

    #[tokio::test]
    async fn a_session_round_trips_and_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::in_dir(dir.path().to_path_buf(), Path::new("/repo"));
        let other = SessionStore::in_dir(dir.path().to_path_buf(), Path::new("/other"));
        assert_ne!(store.dir(), other.dir(), "workspaces are kept apart");
        store.create("s1").await.unwrap();
        let history = vec![
            Message::User {
                content: "What is in src?\nmore".into(),
            },
            Message::Assistant {
                text: String::new(),
                thinking: vec![],
                tool_calls: vec![ToolCall {
                    id: "c1".into(),
                    name: "ls".into(),
                    arguments: "{}".into(),
                }],
            },
            Message::ToolResult {
                call_id: "c1".into(),
                content: "lib.rs".into(),
                is_error: false,
                images: Vec::new(),
            },
            Message::Assistant {
                text: "A library.".into(),
                thinking: vec![],
                tool_calls: vec![],
            },
        ];
        store.append("s1", &history[..1]).await.unwrap();
        store.append("s1", &history[1..]).await.unwrap();
        assert_eq!(store.load("s1").await.unwrap(), history);
        assert!(
            store.create("s1").await.is_err(),
            "a session is never overwritten"
        );

        let listed = store.list().await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, "s1");
        assert_eq!(listed[0].messages, 4);
        assert_eq!(listed[0].title, "What is in src?");
        assert!(other.list().await.unwrap().is_empty());

        let err = store.load("nope").await.unwrap_err();
        assert!(
            err.starts_with("no session `nope` in this workspace"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn sessions_are_private_and_old_ones_are_narrowed() {
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::in_dir(dir.path().join("sessions"), Path::new("/repo"));
        store.create("s1").await.unwrap();
        assert_eq!(mode(&store.path("s1")), 0o600);
        assert_eq!(mode(store.dir()), 0o700);
        assert_eq!(mode(&dir.path().join("sessions")), 0o700);

        // What an older version left: a world-readable folder and file.
        let old = SessionStore::in_dir(dir.path().join("old"), Path::new("/repo"));
        std::fs::create_dir_all(old.dir()).unwrap();
        std::fs::set_permissions(old.dir(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(old.path("s2"), "").unwrap();
        std::fs::set_permissions(old.path("s2"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let said = Message::User {
            content: "secret".into(),
        };
        old.append("s2", &[said]).await.unwrap();
        assert_eq!(mode(&old.path("s2")), 0o600);
        assert_eq!(mode(old.dir()), 0o700);
    }

    #[tokio::test]
    async fn a_torn_last_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store = SessionStore::in_dir(dir.path().to_path_buf(), Path::new("/repo"));
        store.create("s").await.unwrap();
        store
            .append(
                "s",
                &[Message::User {
                    content: "hi".into(),
                }],
            )
            .await
            .unwrap();
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(store.path("s"))
            .unwrap();
        std::io::Write::write_all(&mut file, b"{\"type\":\"message\",\"mess").unwrap();
        assert_eq!(
            store.load("s").await.unwrap(),
            [Message::User {
                content: "hi".into()
            }]
        );
    }

    #[test]
    fn repair_answers_calls_left_without_a_result() {
        let call = |id: &str| ToolCall {
            id: id.into(),
            name: "read".into(),
            arguments: "{}".into(),
        };
        let mut history = vec![
            Message::User {
                content: "q".into(),
            },
            Message::Assistant {
                text: String::new(),
                thinking: vec![],
                tool_calls: vec![call("a"), call("b")],
            },
            Message::ToolResult {
                call_id: "a".into(),
                content: "x".into(),
                is_error: false,
                images: Vec::new(),
            },
        ];
        repair(&mut history);
        assert_eq!(history.len(), 4);
        assert!(
            matches!(&history[3], Message::ToolResult { call_id, is_error: true, .. } if call_id == "b")
        );
        let before = history.clone();
        repair(&mut history);
        assert_eq!(history, before, "a whole history is left alone");
    }

    #[test]
    fn ids_are_checked_before_they_name_a_file() {
        assert!(valid_id(&new_id()));
        assert!(valid_id("my-session_2"));
        assert!(!valid_id("../etc/passwd"));
        assert!(!valid_id(""));
        assert!(!valid_id("a/b"));
    }
}
