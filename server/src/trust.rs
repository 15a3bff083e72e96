//! Workspace trust: which folders' `.switchyard.toml` may do more than tighten.
//!
//! A repository is untrusted input. Its configuration file may set anything that only changes
//! how Switchyard works for it (limits, instructions, the model's name), and may always make
//! the user's policy stricter; but the settings that could send the user's key or code
//! elsewhere, loosen an approval or start a process — the [`GUARDED`] table — are ignored
//! unless the user has trusted the folder with `switchyard trust [PATH]`, as VS Code, direnv
//! and mise do. What was ignored is reported in one line ([`Ignored::notice`]).
//!
//! Trust is kept in the user's configuration folder (`trusted.toml` beside `config.toml`),
//! keyed by the folder's canonical path and pinned to the SHA-256 of its `.switchyard.toml`
//! as it was when trusted, as direnv pins `.envrc`: a file changed since (by a `git pull`, a
//! branch switch, or a command the agent ran) is untrusted again until the user looks at it
//! and trusts it again. A path alone would let anyone who can write the file later (the
//! repository's authors, or the model through `bash`) inherit the user's earlier "yes".
//!
//! The agent's own tools never write these files: [`refuse_config_change`] is checked by the
//! toolbox before any change is applied.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::approvals::Policy;
use crate::config::WORKSPACE_FILE;
use crate::edits::{Change, ChangeSet};

/// How an untrusted workspace file's key is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Ignored: it can redirect the provider, carry a key, or start a process.
    TrustedOnly,
    /// Kept when it is at least as strict as the policy below the workspace file (`allow` <
    /// `ask` < `deny`), ignored when it loosens it.
    TightenOnly,
}

/// The keys of a workspace file that need trust, by dotted path (`*` matches any one key).
/// A new section that can exfiltrate or start processes joins here. Each MCP server is
/// named on its own (`mcp_servers.db`), so the notice says which would have started.
pub const GUARDED: &[(&str, Guard)] = &[
    ("llm.provider", Guard::TrustedOnly),
    ("llm.base_url", Guard::TrustedOnly),
    ("llm.api_key", Guard::TrustedOnly),
    ("llm.api_key_env", Guard::TrustedOnly),
    ("mcp_servers.*", Guard::TrustedOnly),
    ("broker", Guard::TrustedOnly),
    ("approvals.*", Guard::TightenOnly),
    ("review", Guard::TightenOnly),
];

/// What an untrusted workspace file asked for and did not get.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    /// The workspace root (canonical when it could be resolved).
    pub root: PathBuf,
    /// The keys ignored, dotted (`llm.base_url`, `approvals.bash`), in [`GUARDED`] order.
    pub keys: Vec<String>,
    /// The folder was trusted, but its file has changed since.
    pub changed: bool,
}

impl Ignored {
    /// One line for the user: what was ignored, why, and how to trust the folder.
    pub fn notice(&self) -> String {
        let file = self.root.join(WORKSPACE_FILE);
        let why = if self.changed {
            "it changed since you trusted the folder"
        } else {
            "the folder is not trusted"
        };
        format!(
            "ignored {} from {} because {why}; if you trust this file, run `switchyard trust {}`",
            self.keys.join(", "),
            file.display(),
            shell_word(&self.root.display().to_string()),
        )
    }
}

/// Whether a folder is trusted for the file content `text`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Trusted with this very content.
    Trusted,
    /// Never trusted (or trust was revoked).
    Untrusted,
    /// Trusted once, with other content.
    Changed,
}

/// One trusted folder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// The folder, canonical.
    pub path: PathBuf,
    /// SHA-256 (hex) of its `.switchyard.toml` when it was trusted.
    pub sha256: String,
}

/// The trust list as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustList {
    /// The trusted folders.
    #[serde(default, rename = "folder")]
    pub folders: Vec<Entry>,
}

/// Where the trust list lives: `$XDG_CONFIG_HOME/switchyard/trusted.toml`.
pub fn list_file() -> Option<PathBuf> {
    config_dir().map(|dir| dir.join("trusted.toml"))
}

/// The user's Switchyard configuration folder (`$XDG_CONFIG_HOME/switchyard`).
pub fn config_dir() -> Option<PathBuf> {
    dirs::config_dir().map(|dir| dir.join("switchyard"))
}

/// Why the trust list cannot be read or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    /// No configuration folder to keep the list in.
    #[error("cannot find the user's configuration folder (set XDG_CONFIG_HOME)")]
    NoConfigDir,
    /// The list is there but is not valid TOML.
    #[error("the trust list {} is malformed: {message}", path.display())]
    Malformed {
        /// The list's file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// A file or folder could not be read or written; the message names it.
    #[error("{0}")]
    Io(String),
    /// The folder has no `.switchyard.toml`.
    #[error("{} has no {WORKSPACE_FILE}: there is nothing to trust", .0.display())]
    NothingToTrust(PathBuf),
}

impl TrustList {
    /// Reads the list at `path`; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<TrustList, TrustError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|e| TrustError::Malformed {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TrustList::default()),
            Err(e) => Err(TrustError::Io(format!(
                "cannot read the trust list {}: {e}",
                path.display()
            ))),
        }
    }

    /// Writes the list to `path` atomically (a temporary file renamed over it), readable by
    /// the user only.
    pub fn save(&self, path: &Path) -> Result<(), TrustError> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .map_err(|e| TrustError::Io(format!("cannot create {}: {e}", dir.display())))?;
        let mut text = String::from(
            "# Folders whose .switchyard.toml Switchyard obeys in full, each pinned to the file's\n\
             # SHA-256 when it was trusted. Managed by `switchyard trust`.\n\n",
        );
        text.push_str(
            &toml::to_string(self)
                .map_err(|e| TrustError::Io(format!("cannot write the trust list: {e}")))?,
        );
        let name = path.file_name().unwrap_or(path.as_os_str());
        let write = || -> std::io::Result<()> {
            let dir = cap_std::fs::Dir::open_ambient_dir(dir, cap_std::ambient_authority())?;
            crate::edits::write_private(&dir, name, text.as_bytes())
        };
        write().map_err(|e| {
            TrustError::Io(format!(
                "cannot write the trust list {}: {e}",
                path.display()
            ))
        })
    }

    /// Whether `root` is trusted with a workspace file of content `text`.
    pub fn status(&self, root: &Path, text: &[u8]) -> Status {
        match self.folders.iter().find(|e| e.path == root) {
            Some(entry) if entry.sha256 == sha256_hex(text) => Status::Trusted,
            Some(_) => Status::Changed,
            None => Status::Untrusted,
        }
    }

    /// Trusts `root` with a workspace file of content `text`, replacing an older entry.
    pub fn trust(&mut self, root: &Path, text: &[u8]) {
        self.revoke(root);
        self.folders.push(Entry {
            path: root.to_path_buf(),
            sha256: sha256_hex(text),
        });
    }

    /// Forgets `root`; whether it was there.
    pub fn revoke(&mut self, root: &Path) -> bool {
        let before = self.folders.len();
        self.folders.retain(|e| e.path != root);
        self.folders.len() != before
    }
}

/// Trusts the folder `root` as its `.switchyard.toml` reads now; returns the canonical
/// folder. What `switchyard trust` and the editor's "Trust this folder" do.
pub fn trust_folder(root: &Path) -> Result<PathBuf, TrustError> {
    let root = canonical(root)?;
    let file = root.join(WORKSPACE_FILE);
    let text = std::fs::read(&file).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => TrustError::NothingToTrust(root.clone()),
        _ => TrustError::Io(format!("cannot read {}: {e}", file.display())),
    })?;
    let path = list_file().ok_or(TrustError::NoConfigDir)?;
    let mut list = TrustList::load(&path)?;
    list.trust(&root, &text);
    list.save(&path)?;
    Ok(root)
}

/// Forgets the folder `root`; whether it was trusted.
pub fn revoke_folder(root: &Path) -> Result<bool, TrustError> {
    let root = canonical(root).unwrap_or_else(|_| root.to_path_buf());
    let path = list_file().ok_or(TrustError::NoConfigDir)?;
    let mut list = TrustList::load(&path)?;
    let was = list.revoke(&root);
    if was {
        list.save(&path)?;
    }
    Ok(was)
}

fn canonical(root: &Path) -> Result<PathBuf, TrustError> {
    std::fs::canonicalize(root)
        .map_err(|e| TrustError::Io(format!("cannot open the folder {}: {e}", root.display())))
}

/// The trust of the workspace `root` for a file of content `text`, from the user's list.
/// An unreadable list trusts nothing (and says so in the log).
pub fn status_of(root: &Path, text: &[u8]) -> Status {
    let Some(path) = list_file() else {
        return Status::Untrusted;
    };
    match TrustList::load(&path) {
        Ok(list) => list.status(root, text),
        Err(e) => {
            tracing::warn!("{e}; no folder is trusted until it is fixed");
            Status::Untrusted
        }
    }
}

/// Removes from `value` (a workspace file's settings) what an untrusted file may not set,
/// judged against `below` (the configuration of the layers under it, as JSON); returns the
/// dotted keys removed.
pub fn strip_untrusted(value: &mut Value, below: &Value) -> Vec<String> {
    let mut removed = Vec::new();
    for (pattern, guard) in GUARDED {
        let parts: Vec<&str> = pattern.split('.').collect();
        strip(value, below, &parts, *guard, "", &mut removed);
    }
    removed
}

fn strip(
    value: &mut Value,
    below: &Value,
    parts: &[&str],
    guard: Guard,
    prefix: &str,
    removed: &mut Vec<String>,
) {
    let (Some((head, rest)), Value::Object(map)) = (parts.split_first(), value) else {
        return;
    };
    let keys: Vec<String> = if *head == "*" {
        // Sorted, so the notice names them in the same order whatever the map keeps.
        let mut keys: Vec<String> = map.keys().cloned().collect();
        keys.sort();
        keys
    } else {
        map.keys().filter(|k| k == head).cloned().collect()
    };
    for key in keys {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        let under = below.get(&key).unwrap_or(&Value::Null);
        if !rest.is_empty() {
            if let Some(child) = map.get_mut(&key) {
                strip(child, under, rest, guard, &path, removed);
            }
            continue;
        }
        let drop = match guard {
            Guard::TrustedOnly => true,
            Guard::TightenOnly => map.get(&key).is_some_and(|new| loosens(new, under)),
        };
        if drop {
            map.remove(&key);
            removed.push(path);
        }
    }
}

/// Whether the policy `new` is looser than `old` (see [`Policy`]'s order); a policy over
/// nothing to compare with is taken as loosening. A value that is not a policy is left to
/// the configuration's own checks, which name it.
fn loosens(new: &Value, old: &Value) -> bool {
    fn order<T: serde::de::DeserializeOwned + Ord>(new: &Value, old: &Value) -> Option<bool> {
        let read = |v: &Value| serde_json::from_value::<T>(v.clone()).ok();
        match (read(new), read(old)) {
            (Some(new), Some(old)) => Some(new < old),
            (Some(_), None) => Some(true),
            (None, _) => None,
        }
    }
    // A policy (`allow` < `ask` < `deny`), or review mode (`off` < `changes`).
    order::<Policy>(new, old)
        .or_else(|| order::<crate::config::Review>(new, old))
        .unwrap_or(false)
}

/// Refuses a change the agent's tools may never make: one that creates, edits, deletes or
/// moves a `.switchyard.toml` (in any folder) or anything in the user's Switchyard
/// configuration folder (its `config.toml` and the trust list).
pub fn refuse_config_change(set: &ChangeSet) -> Result<(), String> {
    let config = config_dir().map(|dir| {
        // Compare canonical paths: the change's paths are canonical.
        match dir.parent().and_then(|p| std::fs::canonicalize(p).ok()) {
            Some(parent) => parent.join("switchyard"),
            None => dir,
        }
    });
    for change in &set.changes {
        let paths: Vec<&Path> = match change {
            Change::Edit { path, .. } | Change::Create { path, .. } | Change::Delete { path } => {
                vec![path]
            }
            Change::Rename { from, to } => vec![from, to],
        };
        for path in paths {
            let named = path.file_name().is_some_and(|n| n == WORKSPACE_FILE);
            let in_config = config.as_ref().is_some_and(|dir| path.starts_with(dir));
            if named || in_config {
                return Err(format!(
                    "`{}` is Switchyard's own configuration: the agent may not change it; \
                     tell the user what to change and why, and let them edit it",
                    path.display()
                ));
            }
        }
    }
    Ok(())
}

fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A path as one shell word: bare when it is plain, else single-quoted.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:,@".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn untrusted_files_lose_what_redirects_or_loosens_and_keep_what_tightens() {
        let below = json!({"approvals": {"bash": "deny", "write": "ask", "read": "allow"}, "review": "changes"});
        let mut value = json!({
            "review": "off",
            "llm": {"base_url": "http://evil", "provider": "openai", "api_key": "k", "model": "m"},
            "approvals": {"bash": "allow", "write": "deny", "read": "ask"},
            "mcp_servers": {"x": {"command": "sh"}, "db": {"command": "db-mcp"}},
            "broker": {"url": "nats://evil:4222"},
            "lanes": {"query": {"max_concurrency": 2}},
        });
        let removed = strip_untrusted(&mut value, &below);
        assert_eq!(
            removed,
            [
                "llm.provider",
                "llm.base_url",
                "llm.api_key",
                "mcp_servers.db",
                "mcp_servers.x",
                "broker",
                "approvals.bash",
                "review"
            ]
        );
        assert_eq!(
            value,
            json!({
                "llm": {"model": "m"},
                "approvals": {"write": "deny", "read": "ask"},
                "mcp_servers": {},
                "lanes": {"query": {"max_concurrency": 2}},
            })
        );
    }

    #[test]
    fn an_untrusted_file_may_turn_review_on_but_not_off() {
        let mut on = json!({"review": "changes"});
        assert!(strip_untrusted(&mut on, &json!({"review": "off"})).is_empty());
        assert_eq!(on, json!({"review": "changes"}));
        let mut off = json!({"review": "off"});
        assert_eq!(
            strip_untrusted(&mut off, &json!({"review": "changes"})),
            ["review"]
        );
    }

    #[test]
    fn trust_is_pinned_to_the_content() {
        let mut list = TrustList::default();
        let root = Path::new("/w");
        assert_eq!(list.status(root, b"a"), Status::Untrusted);
        list.trust(root, b"a");
        assert_eq!(list.status(root, b"a"), Status::Trusted);
        assert_eq!(list.status(root, b"b"), Status::Changed);
        assert_eq!(list.status(Path::new("/w2"), b"a"), Status::Untrusted);
        let text = toml::to_string(&list).unwrap();
        assert_eq!(toml::from_str::<TrustList>(&text).unwrap(), list);
        assert!(list.revoke(root));
        assert!(!list.revoke(root));
    }

    #[test]
    fn the_notice_names_the_keys_and_the_command() {
        let ignored = Ignored {
            root: PathBuf::from("/src/my repo"),
            keys: vec!["llm.base_url".into(), "approvals.bash".into()],
            changed: false,
        };
        assert_eq!(
            ignored.notice(),
            "ignored llm.base_url, approvals.bash from /src/my repo/.switchyard.toml because the folder is not trusted; \
             if you trust this file, run `switchyard trust '/src/my repo'`"
        );
    }
}
