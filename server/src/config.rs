//! Configuration: one [`Config`] built from layers, lowest precedence first — defaults, the
//! environment (`SWITCHYARD_SECTION__KEY=value`), the user file
//! (`~/.config/switchyard/config.toml`), the workspace file (`.switchyard.toml`), then the
//! editor (`initializationOptions`, `workspace/configuration`).
//!
//! Every layer is a JSON-shaped tree merged key by key over the defaults, so a layer that sets
//! `lanes.query.max_concurrency` changes exactly that value and nothing else. Values are used
//! exactly as given: a value that cannot be put in force is an error naming its source and
//! key, never silently adjusted.
//!
//! The workspace file comes from the repository, so it is untrusted: unless the user trusted
//! the folder, [`Config::discover`] leaves out what it may not set (see [`crate::trust`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use serde_json::Value;

use crate::agent::AgentConfig;
use crate::approvals::ApprovalsConfig;
use crate::lanes::{EngineError, Lane, LaneMode, LanesConfig};
use crate::llm::LlmConfig;
use crate::mcp::McpServerConfig;
use crate::tools::ToolsConfig;
use crate::trust::{self, Ignored};

/// Why a configuration cannot be put in force. Each names where the fault is: the file,
/// the layer, or the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A configuration file exists but cannot be read.
    #[error("cannot read {}: {message}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the system said.
        message: String,
    },
    /// A configuration file is not valid TOML.
    #[error("{}: {message}", path.display())]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What the parser said, with the line.
        message: String,
    },
    /// A layer has an unknown key or a value of the wrong type.
    #[error("{layer}: {message}")]
    Layer {
        /// Where the layer came from (a file, `environment`, `workspace/configuration`).
        layer: String,
        /// What is wrong, naming the key.
        message: String,
    },
    /// The lanes cannot be run with these settings.
    #[error(transparent)]
    Lanes(#[from] EngineError),
    /// Values that cannot be put in force together; the message names the keys.
    #[error("{0}")]
    Invalid(String),
}

impl ConfigError {
    /// Whether the error already names the layer it came from.
    pub fn names_its_layer(&self) -> bool {
        matches!(
            self,
            ConfigError::Unreadable { .. }
                | ConfigError::Malformed { .. }
                | ConfigError::Layer { .. }
        )
    }
}

/// Everything Switchyard can be configured with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The lane engine.
    pub lanes: LanesConfig,
    /// Tool output limits and caches.
    pub tools: ToolsConfig,
    /// The model provider (`[llm]`): wire format, base URL, model, key, timeouts.
    pub llm: LlmConfig,
    /// The agent (`[agent]`): turn and token limits, sessions, ensembles.
    pub agent: AgentConfig,
    /// Which tools may run without asking.
    pub approvals: ApprovalsConfig,
    /// Logging.
    pub log: LogConfig,
    /// MCP servers (`[mcp_servers.NAME]`), by name; see [`crate::mcp`].
    #[serde(default)]
    pub mcp_servers: BTreeMap<String, McpServerConfig>,
    /// The NATS JetStream broker that backs external lanes (`[broker]`); none by default.
    pub broker: BrokerConfig,
    /// Whether the user reviews every change hunk by hunk before it lands (`review =
    /// "changes"`; the language server only, see `switchyard/reviewChange`).
    #[serde(default)]
    pub review: Review,
}

/// `review`: whether changes are reviewed hunk by hunk before they land. Ordered from
/// loosest to strictest: an untrusted workspace file may turn it on, never off.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Review {
    /// Changes land as the approval policy says.
    #[default]
    Off,
    /// Every change of the agent's tools is shown to the user, who accepts or rejects each
    /// hunk; accepting is approving.
    Changes,
}

/// `[broker]`: where external lanes go. The URL may come from the user's file, the
/// environment or a trusted workspace; the credentials only from the environment
/// ([`BrokerConfig::TOKEN_ENV`], [`BrokerConfig::CREDS_ENV`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    /// `nats://host:port` (`tls://` for TLS); none leaves external lanes in this process.
    pub url: Option<String>,
    /// How long a worker holds a task without renewing it (JetStream's `ack_wait`).
    pub lease_ms: u64,
    /// Deliveries of one task before it goes to the dead-letter queue (`max_deliver`).
    pub max_deliver: u32,
}

impl BrokerConfig {
    /// The environment variable a broker token is read from.
    pub const TOKEN_ENV: &'static str = "SWITCHYARD_BROKER_TOKEN";
    /// The environment variable naming a NATS credentials file.
    pub const CREDS_ENV: &'static str = "SWITCHYARD_BROKER_CREDS";

    /// Lanes a broker may carry: changes (Execute) never leave the editor's machine, and
    /// Control is answered here.
    pub fn check(&self, lanes: &LanesConfig) -> Result<(), String> {
        if self.url.is_none() {
            return Ok(());
        }
        if self.max_deliver == 0 || self.lease_ms == 0 {
            return Err("broker.lease_ms and broker.max_deliver must be at least 1".into());
        }
        for lane in Lane::ALL {
            if lanes.lane(lane).mode != LaneMode::External {
                continue;
            }
            match lane {
                Lane::Query | Lane::Generate => {}
                Lane::Control | Lane::Execute => {
                    return Err(format!(
                        "lanes.{lane}.mode = \"external\" cannot go to [broker]: {lane} work \
                         changes files or answers the editor and never leaves this machine; \
                         only query and generate may be external on a broker"
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Default for BrokerConfig {
    fn default() -> BrokerConfig {
        BrokerConfig {
            url: None,
            lease_ms: 30_000,
            max_deliver: 3,
        }
    }
}

/// Logging settings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// The least severe messages the language server sends to the editor
    /// (`window/logMessage`). Everything also goes to stderr, filtered by `SWITCHYARD_LOG`.
    pub level: LogLevel,
}

/// How much to log, from nothing to everything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Nothing.
    Off,
    /// Failures.
    Error,
    /// Failures and what may become one.
    Warn,
    /// Also what the server is doing, briefly.
    #[default]
    Info,
    /// Also details for debugging.
    Debug,
    /// Everything.
    Trace,
}

/// One source of settings and what it says.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// Where the settings came from, for error messages (`/repo/.switchyard.toml`).
    pub source: String,
    /// The settings, shaped like [`Config`], any subset of keys.
    pub value: Value,
}

/// The name of the workspace configuration file.
pub const WORKSPACE_FILE: &str = ".switchyard.toml";

impl Config {
    /// Builds the configuration from `layers`, lowest precedence first.
    ///
    /// Each layer is checked on its own first, so an unknown key or a value of the wrong type
    /// is reported with the layer it came from.
    pub fn from_layers(layers: &[Layer]) -> Result<Config, ConfigError> {
        let defaults = Config::default();
        let mut merged = to_value(&defaults)?;
        for layer in layers {
            let value = renamed(layer.value.clone());
            overlay::<Config>(&defaults, value.clone()).map_err(|e| ConfigError::Layer {
                layer: layer.source.clone(),
                message: e.to_string(),
            })?;
            merge_json(&mut merged, value);
        }
        let config: Config =
            serde_json::from_value(merged).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        config.lanes.validate()?;
        config.agent.validate().map_err(ConfigError::Invalid)?;
        config.llm.validate().map_err(ConfigError::Invalid)?;
        crate::mcp::config::validate(&config.mcp_servers).map_err(ConfigError::Invalid)?;
        config
            .broker
            .check(&config.lanes)
            .map_err(ConfigError::Invalid)?;
        Ok(config)
    }

    /// The layers found on this machine for a workspace rooted at `workspace`: environment,
    /// user file, workspace file. The editor's layer is added by the language server.
    ///
    /// The workspace file is untrusted unless the user trusted the folder (see
    /// [`crate::trust`]): what it may not set is left out, and said in
    /// [`Discovered::ignored`].
    pub fn discover(workspace: Option<&Path>) -> Result<Discovered, ConfigError> {
        let mut layers = Vec::new();
        let env = env_layer(std::env::vars());
        if env.as_object().is_some_and(|o| !o.is_empty()) {
            layers.push(Layer {
                source: "environment".into(),
                value: env,
            });
        }
        if let Some(path) = user_file()
            && let Some(layer) = toml_layer(&path)?
        {
            layers.push(layer);
        }
        let mut ignored = None;
        if let Some(root) = workspace {
            let path = root.join(WORKSPACE_FILE);
            if let Some(text) = read_file(&path)? {
                let mut layer = parse_layer(&path, &text)?;
                let status = trust::status_of(root, text.as_bytes());
                if status != trust::Status::Trusted {
                    // Judged against the user's own policy: the layers below this one.
                    let below = Config::from_layers(&layers).unwrap_or_default();
                    let keys = trust::strip_untrusted(&mut layer.value, &to_value(&below)?);
                    if !keys.is_empty() {
                        ignored = Some(Ignored {
                            root: root.to_path_buf(),
                            keys,
                            changed: status == trust::Status::Changed,
                        });
                    }
                }
                layers.push(layer);
            }
        }
        Ok(Discovered { layers, ignored })
    }

    /// Defaults, then everything [`Config::discover`] finds; with what an untrusted
    /// workspace file was not allowed to set.
    pub fn load(workspace: Option<&Path>) -> Result<(Config, Option<Ignored>), ConfigError> {
        let Discovered { layers, ignored } = Config::discover(workspace)?;
        Ok((Config::from_layers(&layers)?, ignored))
    }
}

/// What [`Config::discover`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovered {
    /// The layers, lowest precedence first.
    pub layers: Vec<Layer>,
    /// What the workspace file set that was ignored because its folder is not trusted.
    pub ignored: Option<Ignored>,
}

/// The user's configuration file: `$XDG_CONFIG_HOME/switchyard/config.toml`.
pub fn user_file() -> Option<PathBuf> {
    dirs::config_dir().map(|dir| dir.join("switchyard").join("config.toml"))
}

/// Reads a TOML file into a layer; a missing file is no layer, a malformed one an error.
pub fn toml_layer(path: &Path) -> Result<Option<Layer>, ConfigError> {
    match read_file(path)? {
        Some(text) => parse_layer(path, &text).map(Some),
        None => Ok(None),
    }
}

fn read_file(path: &Path) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError::Unreadable {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
    }
}

fn parse_layer(path: &Path, text: &str) -> Result<Layer, ConfigError> {
    let value: Value = toml::from_str(text).map_err(|e| ConfigError::Malformed {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(Layer {
        source: path.display().to_string(),
        value,
    })
}

/// Turns `SWITCHYARD_LANES__QUERY__MAX_CONCURRENCY=5` into `{"lanes":{"query":{"max_concurrency":5}}}`.
///
/// Only variables with at least one `__` are settings (so `SWITCHYARD_LOG` is not); a value
/// that parses as JSON (a number, `true`, `[..]`) is taken as such, anything else as a string.
pub fn env_layer(vars: impl IntoIterator<Item = (String, String)>) -> Value {
    let mut root = Value::Object(Default::default());
    for (name, raw) in vars {
        let Some(path) = name.strip_prefix("SWITCHYARD_") else {
            continue;
        };
        if !path.contains("__") {
            continue;
        }
        let value = serde_json::from_str(&raw).unwrap_or(Value::String(raw));
        let mut patch = value;
        for key in path.rsplit("__") {
            let mut object = serde_json::Map::new();
            object.insert(key.to_ascii_lowercase(), patch);
            patch = Value::Object(object);
        }
        merge_json(&mut root, patch);
    }
    root
}

/// Keys that were renamed, old name first: a layer that still says the old one means the new.
const RENAMED: [(&str, &str, &str); 1] = [("llm", "request_timeout", "first_byte_timeout")];

fn renamed(mut value: Value) -> Value {
    for (section, old, new) in RENAMED {
        if let Some(Value::Object(table)) = value.get_mut(section)
            && let Some(v) = table.remove(old)
        {
            table.entry(new).or_insert(v);
        }
    }
    value
}

/// Keys that name which variant a table is (`[lanes.query.retry] policy = "fixed"`). A table
/// that names its variant replaces the one below it whole: the fields of one variant mean
/// nothing to another.
const VARIANT_KEYS: [&str; 1] = ["policy"];

/// Merges `patch` into `base`: objects key by key, anything else replaced.
pub fn merge_json(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch))
            if !VARIANT_KEYS.iter().any(|key| patch.contains_key(*key)) =>
        {
            for (key, value) in patch {
                match base.get_mut(&key) {
                    Some(slot) => merge_json(slot, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, patch) => *base = patch,
    }
}

/// `base` with `patch` merged over it, as a `T`; the error is serde's, naming the key.
pub fn overlay<T: Serialize + DeserializeOwned>(
    base: &T,
    patch: Value,
) -> Result<T, serde_json::Error> {
    let mut merged = serde_json::to_value(base)?;
    merge_json(&mut merged, patch);
    serde_json::from_value(merged)
}

fn to_value<T: Serialize>(value: &T) -> Result<Value, ConfigError> {
    serde_json::to_value(value)
        .map_err(|e| ConfigError::Invalid(format!("cannot represent the configuration: {e}")))
}

/// The configuration in force: one [`Config`] snapshot behind one lock, replaced whole when
/// anything changes (as rust-analyzer's `GlobalState` holds `Arc<Config>`). Every part that
/// reads settings — the toolbox, the approvals, the agent — holds a clone and takes the
/// snapshot when it needs it, so a change reaches all of them at once and no part has a
/// setter of its own. Only the [`Core`](crate::core::Core) replaces it.
#[derive(Debug, Clone, Default)]
pub struct Current(Arc<parking_lot::RwLock<Arc<Config>>>);

impl Current {
    /// A cell holding `config`.
    pub fn new(config: Config) -> Current {
        Current(Arc::new(parking_lot::RwLock::new(Arc::new(config))))
    }

    /// The snapshot in force now.
    pub fn get(&self) -> Arc<Config> {
        Arc::clone(&self.0.read())
    }

    /// Puts `config` in force for everything that reads it from now on. Front ends go
    /// through [`Core::set_config`](crate::core::Core::set_config), which also puts the
    /// lanes' part in force.
    pub fn replace(&self, config: Config) {
        *self.0.write() = Arc::new(config);
    }
}

impl From<Config> for Current {
    fn from(config: Config) -> Current {
        Current::new(config)
    }
}

/// The default configuration with these tool limits (for a toolbox built on its own).
impl From<ToolsConfig> for Current {
    fn from(tools: ToolsConfig) -> Current {
        Current::new(Config {
            tools,
            ..Config::default()
        })
    }
}

/// The default configuration with these approval policies (for approvals on their own).
impl From<ApprovalsConfig> for Current {
    fn from(approvals: ApprovalsConfig) -> Current {
        Current::new(Config {
            approvals,
            ..Config::default()
        })
    }
}

/// The lanes' settings from the configuration's `[lanes]` table. The lane engine knows no
/// configuration layers (it sits below them), so this lives here rather than in `lanes/`.
impl LanesConfig {
    /// Builds the settings from a partial TOML/JSON-shaped value: every key that is absent
    /// keeps the default of *its own lane*, every key that is present is used exactly.
    pub fn from_value(value: serde_json::Value) -> Result<LanesConfig, ConfigError> {
        let config = overlay(&LanesConfig::default(), value).map_err(|e| ConfigError::Layer {
            layer: "lanes".into(),
            message: e.to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn layer(source: &str, value: Value) -> Layer {
        Layer {
            source: source.into(),
            value,
        }
    }

    #[test]
    fn a_broker_carries_only_the_query_and_generate_lanes() {
        let on_broker = |lane: &str| {
            Config::from_layers(&[layer(
                "user",
                json!({"broker": {"url": "nats://127.0.0.1:4222"}, "lanes": {lane: {"mode": "external"}}}),
            )])
        };
        let config = on_broker("query").unwrap();
        assert_eq!(config.broker.url.as_deref(), Some("nats://127.0.0.1:4222"));
        assert!(on_broker("generate").is_ok());
        for lane in ["control", "execute"] {
            let error = on_broker(lane).unwrap_err().to_string();
            assert!(error.contains(&format!("lanes.{lane}.mode")), "{error}");
        }
        // Without a broker, any lane may still be external to the editor's workers.
        let local = Config::from_layers(&[layer(
            "user",
            json!({"lanes": {"execute": {"mode": "external"}}}),
        )]);
        assert!(local.is_ok());
    }

    #[test]
    fn later_layers_win_key_by_key() {
        let config = Config::from_layers(&[
            layer(
                "environment",
                json!({"lanes": {"query": {"max_concurrency": 5, "timeout_ms": 10}}}),
            ),
            layer(
                "workspace",
                json!({"lanes": {"query": {"max_concurrency": 7}}}),
            ),
        ])
        .unwrap();
        assert_eq!(config.lanes.query.max_concurrency, Some(7));
        assert_eq!(config.lanes.query.timeout_ms, Some(10));
        assert_eq!(config.lanes.generate, Config::default().lanes.generate);
    }

    #[test]
    fn errors_name_the_layer_and_the_key() {
        let err = Config::from_layers(&[layer(
            "/repo/.switchyard.toml",
            json!({"lanes": {"query": {"max_concurrency": "many"}}}),
        )])
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("/repo/.switchyard.toml: "), "{err}");
        assert!(err.contains("invalid type"), "{err}");
        let err = Config::from_layers(&[layer("editor", json!({"lane": {}}))])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `lane`"), "{err}");
    }

    #[test]
    fn environment_variables_map_to_nested_keys() {
        let value = env_layer([
            (
                "SWITCHYARD_LANES__QUERY__MAX_CONCURRENCY".to_string(),
                "5".to_string(),
            ),
            (
                "SWITCHYARD_LANES__QUERY__MODE".to_string(),
                "external".to_string(),
            ),
            ("SWITCHYARD_LOG".to_string(), "debug".to_string()),
            ("PATH".to_string(), "/bin".to_string()),
        ]);
        assert_eq!(
            value,
            json!({"lanes": {"query": {"max_concurrency": 5, "mode": "external"}}})
        );
        let config = Config::from_layers(&[layer("environment", value)]).unwrap();
        assert_eq!(config.lanes.query.max_concurrency, Some(5));
        assert_eq!(config.lanes.query.mode, crate::lanes::LaneMode::External);
    }

    #[test]
    fn toml_files_are_layers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(WORKSPACE_FILE);
        std::fs::write(&path, "[lanes.query]\nmax_concurrency = 5\n[lanes.generate.retry]\npolicy = \"fixed\"\nmax_attempts = 2\ndelay_ms = 10\n").unwrap();
        let config = Config::from_layers(&[toml_layer(&path).unwrap().unwrap()]).unwrap();
        assert_eq!(config.lanes.query.max_concurrency, Some(5));
        assert_eq!(
            config.lanes.generate.retry,
            crate::lanes::RetryPolicy::Fixed {
                max_attempts: 2,
                delay_ms: 10
            }
        );
        assert!(
            toml_layer(&dir.path().join("absent.toml"))
                .unwrap()
                .is_none()
        );
        std::fs::write(&path, "[lanes\n").unwrap();
        let err = toml_layer(&path).unwrap_err().to_string();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
    }

    #[test]
    fn llm_and_agent_sections_are_layers_and_the_key_is_never_serialized() {
        let config = Config::from_layers(&[
            layer(
                "environment",
                env_layer([("SWITCHYARD_AGENT__MAX_TURNS".to_string(), "7".to_string())]),
            ),
            layer(
                "/repo/.switchyard.toml",
                json!({
                    "llm": {"provider": "anthropic", "model": "claude", "api_key": "sk-secret", "request_timeout": "30s"},
                    "agent": {"token_budget": 0, "ensemble": {"module_timeout_ms": 5000}},
                }),
            ),
        ])
        .unwrap();
        assert_eq!(config.agent.max_turns, 7);
        assert_eq!(config.agent.token_budget, 0);
        assert_eq!(config.agent.ensemble.module_timeout_ms, 5_000);
        assert_eq!(
            config.agent.ensemble.max_modules, 16,
            "absent keys keep their defaults"
        );
        assert_eq!(config.llm.model.as_deref(), Some("claude"));
        assert_eq!(
            config.llm.api_key.as_ref().map(crate::llm::Secret::expose),
            Some("sk-secret")
        );
        assert_eq!(
            config.llm.first_byte_timeout,
            std::time::Duration::from_secs(30)
        );
        let shown = serde_json::to_string(&config).unwrap();
        assert!(!shown.contains("sk-secret"), "{shown}");

        let err = Config::from_layers(&[layer("editor", json!({"agent": {"max_turns": 0}}))])
            .unwrap_err()
            .to_string();
        assert_eq!(err, "agent.max_turns must be at least 1, got 0");
    }
}
