//! `[mcp_servers.NAME]`: the MCP servers a user brings, how they are started and what their
//! tools may do. Only the user's own files (and a trusted workspace file, see
//! [`crate::trust`]) can declare one: starting a process is never a repository's say-so.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::approvals::Policy;

/// One MCP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpServerConfig {
    /// The program to start (stdio transport), looked up on `PATH`.
    pub command: Option<String>,
    /// Its arguments.
    pub args: Vec<String>,
    /// Variables set in its environment, beyond the safe basics (`PATH`, `HOME`, locale).
    pub env: BTreeMap<String, String>,
    /// Variables of Switchyard's own environment passed through by name (a token the user
    /// exported); nothing else of it is passed.
    pub env_vars: Vec<String>,
    /// Its working directory (default: the workspace root).
    pub cwd: Option<PathBuf>,
    /// A streamable HTTP endpoint (`http://` or `https://`) instead of a command.
    pub url: Option<String>,
    /// HTTP headers sent with every request to `url`, as written: never a secret (an
    /// `Authorization` header here is refused; see `bearer_token_env_var`).
    pub headers: BTreeMap<String, String>,
    /// HTTP headers whose values are read from Switchyard's environment at start, by the
    /// variable's name (`{ "X-Api-Key" = "MY_API_KEY" }`).
    pub env_headers: BTreeMap<String, String>,
    /// The environment variable holding a bearer token for `url`, sent as
    /// `Authorization: Bearer <token>`; the token itself is never written in a file.
    pub bearer_token_env_var: Option<String>,
    /// Whether it is started at all.
    pub enabled: bool,
    /// How long starting it (spawn, `initialize`, `tools/list`) may take.
    pub startup_timeout_ms: u64,
    /// How long one tool call may take before it is cancelled.
    pub tool_timeout_ms: u64,
    /// Most calls to it at once.
    pub max_concurrency: usize,
    /// Which of its tools are offered.
    pub tools: McpToolFilter,
    /// The policy of its tools that are not read-only (read-only ones are allowed).
    pub approval: Policy,
    /// Per-tool policies, by the server's own tool name; they win over `approval`.
    pub approvals: BTreeMap<String, Policy>,
}

impl Default for McpServerConfig {
    fn default() -> Self {
        McpServerConfig {
            command: None,
            args: Vec::new(),
            env: BTreeMap::new(),
            env_vars: Vec::new(),
            cwd: None,
            url: None,
            headers: BTreeMap::new(),
            env_headers: BTreeMap::new(),
            bearer_token_env_var: None,
            enabled: true,
            startup_timeout_ms: 30_000,
            tool_timeout_ms: 120_000,
            max_concurrency: 4,
            tools: McpToolFilter::default(),
            approval: Policy::Ask,
            approvals: BTreeMap::new(),
        }
    }
}

/// `tools.allow` / `tools.deny`: by the server's own tool names.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpToolFilter {
    /// Only these (absent: all).
    pub allow: Option<Vec<String>>,
    /// Never these.
    pub deny: Vec<String>,
}

impl McpToolFilter {
    /// Whether the tool the server calls `tool` is offered.
    pub fn offers(&self, tool: &str) -> bool {
        self.allow
            .as_ref()
            .is_none_or(|allow| allow.iter().any(|t| t == tool))
            && !self.deny.iter().any(|t| t == tool)
    }
}

impl McpServerConfig {
    /// The policy of the server's tool `tool`, read-only or not.
    pub fn policy(&self, tool: &str, read_only: bool) -> Policy {
        match self.approvals.get(tool) {
            Some(policy) => *policy,
            None if read_only => Policy::Allow,
            None => self.approval,
        }
    }

    /// The environment the server is started with: the safe basics of `vars` (Switchyard's
    /// own), the variables named in `env_vars`, then `env`. Nothing else — no provider key
    /// reaches a server unless the user names it.
    pub fn child_env(
        &self,
        vars: impl IntoIterator<Item = (OsString, OsString)>,
    ) -> Vec<(OsString, OsString)> {
        let mut out: BTreeMap<OsString, OsString> = vars
            .into_iter()
            .filter(|(name, _)| {
                name.to_str().is_some_and(|name| {
                    SAFE_BASICS.contains(&name)
                        || name.starts_with("LC_")
                        || self.env_vars.iter().any(|wanted| wanted == name)
                })
            })
            .collect();
        for (name, value) in &self.env {
            out.insert(name.into(), value.into());
        }
        out.into_iter().collect()
    }

    /// The headers sent to `url`: `headers` as written, `env_headers` and the bearer token
    /// read through `var` (Switchyard's environment). `Err` names the variable not set.
    pub fn http_headers(
        &self,
        name: &str,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Vec<(String, String)>, String> {
        let read = |variable: &str, key: String| {
            var(variable).filter(|v| !v.is_empty()).ok_or_else(|| {
                format!("needs the environment variable `{variable}` (mcp_servers.{name}.{key}), which is not set")
            })
        };
        let mut out: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for (header, variable) in &self.env_headers {
            out.push((
                header.clone(),
                read(variable, format!("env_headers.{header}"))?,
            ));
        }
        if let Some(variable) = &self.bearer_token_env_var {
            let token = read(variable, "bearer_token_env_var".into())?;
            out.push(("Authorization".into(), format!("Bearer {token}")));
        }
        Ok(out)
    }
}

/// What every program needs to run and find its files; none of it is a secret.
const SAFE_BASICS: &[&str] = &[
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "TERM", "TMPDIR", "TZ",
];

/// Checks the servers of a configuration file or the editor's settings: names and
/// transports (see [`validate_session`]), and no token written in `headers`.
pub fn validate(servers: &BTreeMap<String, McpServerConfig>) -> Result<(), String> {
    validate_session(servers)?;
    for (name, server) in servers {
        if let Some(header) = server
            .headers
            .keys()
            .find(|h| h.eq_ignore_ascii_case("authorization"))
        {
            return Err(format!(
                "mcp_servers.{name}.headers.{header}: a token is never written in a file; name the \
                 environment variable holding it with bearer_token_env_var (or env_headers)"
            ));
        }
    }
    Ok(())
}

/// Checks the servers' names and transports; the message names the key. What a server an
/// editor adds for one session must pass (its headers come from the editor, not a file, so
/// they may carry a token).
pub fn validate_session(servers: &BTreeMap<String, McpServerConfig>) -> Result<(), String> {
    for (name, server) in servers {
        if name.is_empty()
            || name.contains("__")
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "mcp_servers.{name}: a server's name may have only letters, digits, `_` and `-`, and no `__` \
                 (its tools are called mcp__<server>__<tool>)"
            ));
        }
        if server.command.is_none() && server.url.is_none() {
            return Err(format!(
                "mcp_servers.{name}: needs `command` (a program speaking MCP on stdio) or `url`"
            ));
        }
        if server.command.is_some() && server.url.is_some() {
            return Err(format!(
                "mcp_servers.{name}: has both `command` and `url`; keep one"
            ));
        }
        if let Some(url) = &server.url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "mcp_servers.{name}.url must start with http:// or https://, got `{url}`"
                ));
            }
            let stdio_only = [
                ("args", !server.args.is_empty()),
                ("env", !server.env.is_empty()),
                ("env_vars", !server.env_vars.is_empty()),
                ("cwd", server.cwd.is_some()),
            ];
            if let Some((key, _)) = stdio_only.iter().find(|(_, set)| *set) {
                return Err(format!(
                    "mcp_servers.{name}.{key} is for a server started with `command`; this one has `url`"
                ));
            }
        } else if !server.headers.is_empty()
            || !server.env_headers.is_empty()
            || server.bearer_token_env_var.is_some()
        {
            return Err(format!(
                "mcp_servers.{name}: headers, env_headers and bearer_token_env_var are for a server reached by `url`"
            ));
        }
        for header in server.headers.keys().chain(server.env_headers.keys()) {
            if header.is_empty()
                || !header
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
            {
                return Err(format!(
                    "mcp_servers.{name}: `{header}` is not an HTTP header name"
                ));
            }
        }
        if server.max_concurrency == 0 {
            return Err(format!(
                "mcp_servers.{name}.max_concurrency must be at least 1, got 0"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_is_the_basics_the_named_and_the_configured() {
        let server = McpServerConfig {
            env: [("DB_URL".to_string(), "postgres://x".to_string())].into(),
            env_vars: vec!["GITHUB_TOKEN".into()],
            ..McpServerConfig::default()
        };
        let env = server.child_env(
            [
                ("PATH", "/bin"),
                ("HOME", "/home/u"),
                ("LC_ALL", "C"),
                ("ANTHROPIC_API_KEY", "sk-ant"),
                ("OPENAI_API_KEY", "sk-oai"),
                ("SWITCHYARD_LLM__API_KEY", "sk"),
                ("GITHUB_TOKEN", "ghp"),
                ("AWS_SECRET_ACCESS_KEY", "x"),
            ]
            .map(|(k, v)| (OsString::from(k), OsString::from(v))),
        );
        let names: Vec<_> = env.iter().map(|(k, _)| k.to_str().unwrap()).collect();
        assert_eq!(names, ["DB_URL", "GITHUB_TOKEN", "HOME", "LC_ALL", "PATH"]);
    }

    #[test]
    fn http_headers_read_tokens_from_the_environment_by_name() {
        let server = McpServerConfig {
            url: Some("https://example.com/mcp".into()),
            headers: [("X-Team".to_string(), "core".to_string())].into(),
            env_headers: [("X-Api-Key".to_string(), "API_KEY".to_string())].into(),
            bearer_token_env_var: Some("TOKEN".into()),
            ..McpServerConfig::default()
        };
        let env = |name: &str| match name {
            "API_KEY" => Some("k1".to_string()),
            "TOKEN" => Some("t1".to_string()),
            _ => None,
        };
        assert_eq!(
            server.http_headers("gh", env).unwrap(),
            [
                ("X-Team".to_string(), "core".to_string()),
                ("X-Api-Key".to_string(), "k1".to_string()),
                ("Authorization".to_string(), "Bearer t1".to_string()),
            ]
        );
        assert_eq!(
            server.http_headers("gh", |_| None).unwrap_err(),
            "needs the environment variable `API_KEY` (mcp_servers.gh.env_headers.X-Api-Key), which is not set"
        );
    }

    #[test]
    fn filters_and_policies() {
        let server = McpServerConfig {
            tools: McpToolFilter {
                allow: Some(vec!["a".into(), "b".into()]),
                deny: vec!["b".into()],
            },
            approvals: [("w".to_string(), Policy::Allow)].into(),
            ..McpServerConfig::default()
        };
        assert!(server.tools.offers("a"));
        assert!(!server.tools.offers("b"));
        assert!(!server.tools.offers("c"));
        assert_eq!(server.policy("r", true), Policy::Allow);
        assert_eq!(server.policy("x", false), Policy::Ask);
        assert_eq!(server.policy("w", false), Policy::Allow);
    }

    #[test]
    fn names_and_transports_are_checked() {
        let ok = McpServerConfig {
            command: Some("x".into()),
            ..McpServerConfig::default()
        };
        let check = |name: &str, server: &McpServerConfig| {
            validate(&[(name.to_string(), server.clone())].into())
        };
        assert!(check("fs-1_a", &ok).is_ok());
        assert!(check("a__b", &ok).unwrap_err().contains("no `__`"));
        assert!(
            check("a.b", &ok)
                .unwrap_err()
                .starts_with("mcp_servers.a.b: ")
        );
        let http = McpServerConfig {
            url: Some("http://127.0.0.1:1/mcp".into()),
            headers: [("X-Team".to_string(), "a".to_string())].into(),
            bearer_token_env_var: Some("TOKEN".into()),
            ..McpServerConfig::default()
        };
        assert!(check("remote", &http).is_ok());
        let mut secret = http.clone();
        secret
            .headers
            .insert("authorization".into(), "Bearer x".into());
        assert!(
            check("remote", &secret)
                .unwrap_err()
                .starts_with("mcp_servers.remote.headers.authorization: a token is never written")
        );
        let with_args = McpServerConfig {
            args: vec!["x".into()],
            ..http.clone()
        };
        assert_eq!(
            check("remote", &with_args).unwrap_err(),
            "mcp_servers.remote.args is for a server started with `command`; this one has `url`"
        );
        let ftp = McpServerConfig {
            url: Some("ftp://x".into()),
            ..McpServerConfig::default()
        };
        assert!(
            check("f", &ftp)
                .unwrap_err()
                .contains("http:// or https://")
        );
        let err = check("db", &McpServerConfig::default()).unwrap_err();
        assert_eq!(
            err,
            "mcp_servers.db: needs `command` (a program speaking MCP on stdio) or `url`"
        );
    }
}
