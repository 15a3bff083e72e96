//! Model provider settings (`[llm]` in TOML): which wire format, where, which model, which
//! key, how long to wait; and their resolution against the conventional environment.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use reqwest::Url;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Usage;
use super::error::{LlmError, LlmErrorKind};

/// `max_tokens` sent to Anthropic, which requires one, when neither the request nor the
/// configuration sets it. OpenAI-compatible servers get no `max_tokens` unless one is set,
/// because local servers reject a value larger than what their context leaves.
pub const DEFAULT_ANTHROPIC_MAX_TOKENS: u32 = 8192;

/// The wire format a model server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// OpenAI Chat Completions: OpenAI, Ollama, llama.cpp server, vLLM, LM Studio,
    /// OpenRouter and other compatible servers.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
}

impl ProviderKind {
    /// Parses a provider name as written in configuration or `SWITCHYARD_PROVIDER`,
    /// case-insensitively. The names of OpenAI-compatible servers mean [`ProviderKind::OpenAi`].
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "openai" | "open_ai" | "openai-compatible" | "openai_compatible" | "ollama"
            | "llamacpp" | "llama.cpp" | "llama-cpp" | "vllm" | "lmstudio" | "lm-studio"
            | "openrouter" => Some(Self::OpenAi),
            "anthropic" | "claude" => Some(Self::Anthropic),
            _ => None,
        }
    }

    /// The canonical configuration name: `openai` or `anthropic`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }

    /// The environment variable conventionally holding this provider's API key.
    pub fn api_key_env(self) -> &'static str {
        match self {
            Self::OpenAi => "OPENAI_API_KEY",
            Self::Anthropic => "ANTHROPIC_API_KEY",
        }
    }

    /// The environment variable conventionally holding this provider's base URL.
    pub fn base_url_env(self) -> &'static str {
        match self {
            Self::OpenAi => "OPENAI_BASE_URL",
            Self::Anthropic => "ANTHROPIC_BASE_URL",
        }
    }

    /// The base URL used when none is configured.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Self::OpenAi => "https://api.openai.com/v1",
            Self::Anthropic => "https://api.anthropic.com",
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ProviderKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ProviderKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown provider `{name}`: expected `openai` (any OpenAI-compatible server) or `anthropic`"
            ))
        })
    }
}

/// A secret string (an API key). Its `Debug` prints `***`, it has no `Display`, and it is
/// only read through [`Secret::expose`], at the one place that puts it in a header.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself. Never log or format what this returns.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// The `[llm]` settings as the user wrote them; every field may be left out.
/// [`LlmConfig::resolve`] fills the gaps from the environment and checks the result.
///
/// Durations are written as seconds (`request_timeout = 300`, `connect_timeout = 2.5`) or
/// as a number with a unit (`"500ms"`, `"30s"`, `"2m"`, `"1h"`), and serialized as seconds.
/// Serializing never writes the API key (so the defaults can seed a layered merge, and a
/// printed configuration cannot leak it); unset fields are left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// `openai` (any OpenAI-compatible server) or `anthropic`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderKind>,
    /// Where the API lives; see the base URL table in [`crate::llm`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The model name, as the server knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The API key. Local OpenAI-compatible servers need none.
    #[serde(skip_serializing)]
    pub api_key: Option<Secret>,
    /// The most tokens one answer may have.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sampling temperature; the server's default when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Anthropic only: the tokens the model may think in before answering (extended
    /// thinking, at least 1,024); unset sends no `thinking` and leaves it to the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking_budget: Option<u32>,
    /// The longest wait for the response status and headers (the first byte), per attempt.
    /// `request_timeout` is its older name.
    #[serde(
        alias = "request_timeout",
        serialize_with = "serialize_duration",
        deserialize_with = "deserialize_duration"
    )]
    pub first_byte_timeout: Duration,
    /// The longest silence allowed between stream bytes.
    #[serde(
        serialize_with = "serialize_duration",
        deserialize_with = "deserialize_duration"
    )]
    pub idle_stream_timeout: Duration,
    /// The longest one model request may take, from its first attempt to the end of its
    /// answer, every retry and every wait between them included.
    #[serde(
        serialize_with = "serialize_duration",
        deserialize_with = "deserialize_duration"
    )]
    pub request_budget: Duration,
    /// The longest `Retry-After` waited; a provider asking for more is an error at once.
    #[serde(
        serialize_with = "serialize_duration",
        deserialize_with = "deserialize_duration"
    )]
    pub max_retry_after: Duration,
    /// The longest wait for the TCP and TLS handshake.
    #[serde(
        serialize_with = "serialize_duration",
        deserialize_with = "deserialize_duration"
    )]
    pub connect_timeout: Duration,
    /// The model's context window in tokens; when unset, what the server reports (see
    /// `Client::discover_window`), else the documented window of a known model family,
    /// else [`DEFAULT_CONTEXT_WINDOW`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
    /// Prices per model name (`[llm.pricing."gpt-4o"]`), in US dollars per million tokens;
    /// none are built in. A model without a price has no cost, only token counts.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub pricing: BTreeMap<String, Price>,
}

/// What one model's tokens cost, in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Prompt tokens not read from the cache.
    pub input: f64,
    /// Generated tokens.
    pub output: f64,
    /// Prompt tokens read from the provider's cache; `input` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
}

impl Price {
    /// What `usage` costs at this price, in US dollars.
    pub fn cost(&self, usage: Usage) -> f64 {
        let cached = usage.cached_tokens.min(usage.input_tokens);
        let fresh = usage.input_tokens - cached;
        #[allow(clippy::cast_precision_loss)] // token counts are far below 2^52
        let dollars = fresh as f64 * self.input
            + cached as f64 * self.cached_input.unwrap_or(self.input)
            + usage.output_tokens as f64 * self.output;
        dollars / 1_000_000.0
    }
}

impl Default for LlmConfig {
    fn default() -> Self {
        Self {
            provider: None,
            base_url: None,
            model: None,
            api_key: None,
            max_tokens: None,
            temperature: None,
            thinking_budget: None,
            // Hosted streaming APIs send the headers as soon as they accept the request, and
            // local servers once the prompt is queued: a silent minute is a server that will
            // not answer.
            first_byte_timeout: Duration::from_secs(60),
            // Reasoning models can think silently for a long time between chunks; two
            // minutes of silence is still clearly a hung stream.
            idle_stream_timeout: Duration::from_secs(120),
            // The Generate lane's own limit per attempt: a request never outlives it.
            request_budget: Duration::from_secs(600),
            // A longer wait is a quota or an outage, better told than waited out silently.
            max_retry_after: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            context_window: None,
            pricing: BTreeMap::new(),
        }
    }
}

/// Settings with every gap filled and checked: what a [`super::Client`] is built from.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedLlmConfig {
    /// The wire format.
    pub provider: ProviderKind,
    /// The URL requests are posted to (base URL joined with the provider's path).
    pub endpoint: Url,
    /// The model name.
    pub model: String,
    /// The API key; `None` sends no authentication header at all.
    pub api_key: Option<Secret>,
    /// See [`LlmConfig::max_tokens`].
    pub max_tokens: Option<u32>,
    /// See [`LlmConfig::temperature`].
    pub temperature: Option<f32>,
    /// See [`LlmConfig::thinking_budget`].
    pub thinking_budget: Option<u32>,
    /// See [`LlmConfig::first_byte_timeout`].
    pub first_byte_timeout: Duration,
    /// See [`LlmConfig::idle_stream_timeout`].
    pub idle_stream_timeout: Duration,
    /// See [`LlmConfig::request_budget`].
    pub request_budget: Duration,
    /// See [`LlmConfig::max_retry_after`].
    pub max_retry_after: Duration,
    /// See [`LlmConfig::connect_timeout`].
    pub connect_timeout: Duration,
}

/// The context window assumed for a model of no known family when `llm.context_window` is
/// unset: small enough for most local servers' defaults to be within reach of it.
pub const DEFAULT_CONTEXT_WINDOW: u64 = 32_768;

/// Documented context windows of model families, by name prefix (the longest match wins).
const KNOWN_WINDOWS: &[(&str, u64)] = &[
    ("gpt-4.1", 1_047_576),
    ("gpt-4o", 128_000),
    ("gpt-4-turbo", 128_000),
    ("gpt-5", 400_000),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4", 200_000),
    ("claude", 200_000),
    ("gemini", 1_048_576),
    ("qwen2.5-coder", 32_768),
    ("llama3.1", 131_072),
    ("llama3.2", 131_072),
    ("llama3.3", 131_072),
];

impl LlmConfig {
    /// The context window of `model`: `llm.context_window`, else its family's documented
    /// one, else [`DEFAULT_CONTEXT_WINDOW`].
    pub fn context_window(&self, model: &str) -> u64 {
        if let Some(window) = self.context_window {
            return window;
        }
        let name = model
            .rsplit('/')
            .next()
            .unwrap_or(model)
            .to_ascii_lowercase();
        KNOWN_WINDOWS
            .iter()
            .filter(|(prefix, _)| name.starts_with(prefix))
            .max_by_key(|(prefix, _)| prefix.len())
            .map_or(DEFAULT_CONTEXT_WINDOW, |(_, window)| *window)
    }

    /// Checks what cannot be checked by type: prices are finite and not negative, a thinking
    /// budget is one Anthropic accepts.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(budget) = self.thinking_budget {
            if budget < 1024 {
                return Err(format!(
                    "llm.thinking_budget is {budget}; Anthropic needs at least 1024 tokens"
                ));
            }
            if let Some(max) = self.max_tokens.filter(|max| budget >= *max) {
                return Err(format!(
                    "llm.thinking_budget ({budget}) must be below llm.max_tokens ({max}): the answer comes out of the same tokens"
                ));
            }
        }
        for (model, price) in &self.pricing {
            let prices = [Some(price.input), Some(price.output), price.cached_input];
            if prices
                .into_iter()
                .flatten()
                .any(|p| !p.is_finite() || p < 0.0)
            {
                return Err(format!(
                    "llm.pricing.\"{model}\": prices are US dollars per million tokens, 0 or more"
                ));
            }
        }
        Ok(())
    }

    /// What `usage` of `model` costs in US dollars, when `[llm.pricing]` prices it.
    pub fn cost(&self, model: &str, usage: Usage) -> Option<f64> {
        self.pricing.get(model).map(|price| price.cost(usage))
    }

    /// Fills what the configuration leaves unset from the environment (`env` looks a
    /// variable up; empty values count as unset) and checks the result.
    ///
    /// - provider: `provider`, else `SWITCHYARD_PROVIDER`, else `anthropic` when only
    ///   Anthropic variables are set, else `openai`;
    /// - model: `model`, else `SWITCHYARD_MODEL`; there is no default model;
    /// - base URL: `base_url`, else `OPENAI_BASE_URL` / `ANTHROPIC_BASE_URL` (the chosen
    ///   provider's), else `https://api.openai.com/v1` / `https://api.anthropic.com`;
    /// - API key: `api_key`, else `OPENAI_API_KEY` / `ANTHROPIC_API_KEY`, else none.
    pub fn resolve(
        &self,
        env: &impl Fn(&str) -> Option<String>,
    ) -> Result<ResolvedLlmConfig, LlmError> {
        let var = |name: &str| {
            env(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };

        let provider = match self.provider {
            Some(provider) => provider,
            None => match var("SWITCHYARD_PROVIDER") {
                Some(name) => ProviderKind::parse(&name).ok_or_else(|| {
                    config_error(format!(
                        "unknown provider `{name}` in SWITCHYARD_PROVIDER: expected `openai` or `anthropic`"
                    ))
                })?,
                None => {
                    let anthropic = var("ANTHROPIC_API_KEY").is_some()
                        || var("ANTHROPIC_BASE_URL").is_some();
                    let openai =
                        var("OPENAI_API_KEY").is_some() || var("OPENAI_BASE_URL").is_some();
                    if anthropic && !openai {
                        ProviderKind::Anthropic
                    } else {
                        ProviderKind::OpenAi
                    }
                }
            },
        };

        let model = self
            .model
            .as_deref()
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .map(str::to_owned)
            .or_else(|| var("SWITCHYARD_MODEL"))
            .ok_or_else(|| {
                config_error(
                    "no model configured: set llm.model in .switchyard.toml or SWITCHYARD_MODEL",
                )
            })?;

        let (base_url, origin) = match self.base_url.as_deref().map(str::trim) {
            Some(url) if !url.is_empty() => (url.to_owned(), "llm.base_url"),
            _ => match var(provider.base_url_env()) {
                Some(url) => (url, provider.base_url_env()),
                None => (
                    provider.default_base_url().to_owned(),
                    "the default base URL",
                ),
            },
        };
        let endpoint = endpoint(provider, &base_url).map_err(|why| {
            config_error(format!(
                "invalid base URL `{base_url}` from {origin}: {why}"
            ))
        })?;

        let api_key = self
            .api_key
            .clone()
            .filter(|k| !k.expose().trim().is_empty())
            .or_else(|| var(provider.api_key_env()).map(Secret::new));

        Ok(ResolvedLlmConfig {
            provider,
            endpoint,
            model,
            api_key,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            thinking_budget: self.thinking_budget,
            first_byte_timeout: self.first_byte_timeout,
            idle_stream_timeout: self.idle_stream_timeout,
            request_budget: self.request_budget,
            max_retry_after: self.max_retry_after,
            connect_timeout: self.connect_timeout,
        })
    }
}

fn config_error(message: impl Into<String>) -> LlmError {
    LlmError::new(LlmErrorKind::Config, false, message)
}

/// Joins a base URL with the provider's path, following the table in [`crate::llm`].
fn endpoint(provider: ProviderKind, base_url: &str) -> Result<Url, String> {
    let mut url = Url::parse(base_url).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "expected http:// or https://, not {}://",
            url.scheme()
        ));
    }
    if url.cannot_be_a_base() || url.host_str().is_none() {
        return Err("expected an http:// or https:// URL with a host".to_owned());
    }
    let path = url.path().trim_end_matches('/').to_owned();
    let path = match provider {
        ProviderKind::OpenAi if path.ends_with("/chat/completions") => path,
        ProviderKind::OpenAi if path.is_empty() => "/v1/chat/completions".to_owned(),
        ProviderKind::OpenAi => format!("{path}/chat/completions"),
        ProviderKind::Anthropic if path.ends_with("/v1/messages") => path,
        ProviderKind::Anthropic if path.ends_with("/v1") => format!("{path}/messages"),
        ProviderKind::Anthropic => format!("{path}/v1/messages"),
    };
    url.set_path(&path);
    Ok(url)
}

/// A duration for a message: `3600 s`, `0.25 s`.
pub(crate) fn show(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

/// Writes a duration as seconds, which [`deserialize_duration`] reads back.
fn serialize_duration<S: Serializer>(d: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(d.as_secs_f64())
}

/// Reads a duration written as seconds (integer or fraction) or as a number with a unit.
fn deserialize_duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Seconds(f64),
        Text(String),
    }
    let seconds = match Raw::deserialize(deserializer)? {
        Raw::Seconds(s) => Some(s),
        Raw::Text(text) => parse_duration_text(&text),
    };
    seconds
        .filter(|s| s.is_finite() && *s >= 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| {
            serde::de::Error::custom(
                "invalid duration: expected seconds (30, 2.5) or a number with a unit (\"500ms\", \"30s\", \"2m\", \"1h\")",
            )
        })
}

/// `"500ms"`, `"30s"`, `"2m"`, `"1h"` or a bare number of seconds, in seconds.
fn parse_duration_text(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit.trim() {
        "" | "s" | "sec" | "secs" => 1.0,
        "ms" => 0.001,
        "m" | "min" | "mins" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    Some(number * scale)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name: &str| vars.get(name).cloned()
    }

    fn with_model() -> LlmConfig {
        LlmConfig {
            model: Some("m".into()),
            ..LlmConfig::default()
        }
    }

    #[test]
    fn openai_is_the_default_and_needs_no_key() {
        let r = with_model().resolve(&env(&[])).unwrap();
        assert_eq!(r.provider, ProviderKind::OpenAi);
        assert_eq!(
            r.endpoint.as_str(),
            "https://api.openai.com/v1/chat/completions"
        );
        assert_eq!(r.api_key, None);
    }

    #[test]
    fn environment_fills_gaps_only() {
        let vars = env(&[
            ("OPENAI_API_KEY", "sk-env"),
            ("OPENAI_BASE_URL", "http://localhost:8080/v1/"),
            ("SWITCHYARD_MODEL", "env-model"),
        ]);
        let r = LlmConfig::default().resolve(&vars).unwrap();
        assert_eq!(r.model, "env-model");
        assert_eq!(r.api_key.as_ref().map(Secret::expose), Some("sk-env"));
        assert_eq!(
            r.endpoint.as_str(),
            "http://localhost:8080/v1/chat/completions"
        );

        let cfg = LlmConfig {
            model: Some("file-model".into()),
            base_url: Some("http://10.0.0.1:9000/v1".into()),
            api_key: Some(Secret::new("sk-file")),
            ..LlmConfig::default()
        };
        let r = cfg.resolve(&vars).unwrap();
        assert_eq!(r.model, "file-model");
        assert_eq!(r.api_key.as_ref().map(Secret::expose), Some("sk-file"));
        assert_eq!(
            r.endpoint.as_str(),
            "http://10.0.0.1:9000/v1/chat/completions"
        );
    }

    #[test]
    fn provider_comes_from_config_then_env_then_which_keys_exist() {
        let only_anthropic = env(&[("ANTHROPIC_API_KEY", "sk-ant")]);
        let r = with_model().resolve(&only_anthropic).unwrap();
        assert_eq!(r.provider, ProviderKind::Anthropic);
        assert_eq!(r.endpoint.as_str(), "https://api.anthropic.com/v1/messages");
        assert_eq!(r.api_key.as_ref().map(Secret::expose), Some("sk-ant"));

        let both = env(&[("ANTHROPIC_API_KEY", "a"), ("OPENAI_API_KEY", "o")]);
        assert_eq!(
            with_model().resolve(&both).unwrap().provider,
            ProviderKind::OpenAi
        );

        let forced = env(&[
            ("SWITCHYARD_PROVIDER", "Anthropic"),
            ("OPENAI_API_KEY", "o"),
        ]);
        let r = with_model().resolve(&forced).unwrap();
        assert_eq!(r.provider, ProviderKind::Anthropic);
        assert_eq!(r.api_key, None, "the OpenAI key is never sent to Anthropic");

        let cfg = LlmConfig {
            provider: Some(ProviderKind::OpenAi),
            ..with_model()
        };
        assert_eq!(cfg.resolve(&forced).unwrap().provider, ProviderKind::OpenAi);

        let bad = env(&[("SWITCHYARD_PROVIDER", "gemini")]);
        let err = with_model().resolve(&bad).unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::Config);
        assert_eq!(
            err.message,
            "unknown provider `gemini` in SWITCHYARD_PROVIDER: expected `openai` or `anthropic`"
        );
    }

    #[test]
    fn a_model_is_required() {
        let err = LlmConfig::default()
            .resolve(&env(&[("SWITCHYARD_MODEL", "  ")]))
            .unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::Config);
        assert!(!err.retryable);
        assert_eq!(
            err.message,
            "no model configured: set llm.model in .switchyard.toml or SWITCHYARD_MODEL"
        );
    }

    #[test]
    fn base_urls_join_with_paths() {
        let cases = [
            (
                ProviderKind::OpenAi,
                "https://api.openai.com/v1",
                "https://api.openai.com/v1/chat/completions",
            ),
            (
                ProviderKind::OpenAi,
                "https://api.openai.com/v1/",
                "https://api.openai.com/v1/chat/completions",
            ),
            (
                ProviderKind::OpenAi,
                "http://localhost:11434",
                "http://localhost:11434/v1/chat/completions",
            ),
            (
                ProviderKind::OpenAi,
                "http://localhost:11434/",
                "http://localhost:11434/v1/chat/completions",
            ),
            (
                ProviderKind::OpenAi,
                "https://openrouter.ai/api/v1",
                "https://openrouter.ai/api/v1/chat/completions",
            ),
            (
                ProviderKind::OpenAi,
                "http://h/v1/chat/completions",
                "http://h/v1/chat/completions",
            ),
            (
                ProviderKind::OpenAi,
                "http://h/openai?api-version=1",
                "http://h/openai/chat/completions?api-version=1",
            ),
            (
                ProviderKind::Anthropic,
                "https://api.anthropic.com",
                "https://api.anthropic.com/v1/messages",
            ),
            (
                ProviderKind::Anthropic,
                "https://api.anthropic.com/",
                "https://api.anthropic.com/v1/messages",
            ),
            (
                ProviderKind::Anthropic,
                "http://proxy:8080/v1",
                "http://proxy:8080/v1/messages",
            ),
            (
                ProviderKind::Anthropic,
                "http://proxy/anthropic/",
                "http://proxy/anthropic/v1/messages",
            ),
            (
                ProviderKind::Anthropic,
                "http://proxy/v1/messages",
                "http://proxy/v1/messages",
            ),
        ];
        for (provider, base, want) in cases {
            assert_eq!(
                endpoint(provider, base).unwrap().as_str(),
                want,
                "{provider} {base}"
            );
        }
    }

    #[test]
    fn bad_base_urls_say_where_they_came_from() {
        let cfg = LlmConfig {
            base_url: Some("localhost:8080".into()),
            ..with_model()
        };
        let err = cfg.resolve(&env(&[])).unwrap_err();
        assert_eq!(err.kind, LlmErrorKind::Config);
        assert_eq!(
            err.message,
            "invalid base URL `localhost:8080` from llm.base_url: expected http:// or https://, not localhost://"
        );

        let err = with_model()
            .resolve(&env(&[("OPENAI_BASE_URL", "not a url")]))
            .unwrap_err();
        assert!(
            err.message
                .starts_with("invalid base URL `not a url` from OPENAI_BASE_URL: "),
            "{}",
            err.message
        );
    }

    #[test]
    fn toml_keys_are_snake_case_and_durations_flexible() {
        let cfg: LlmConfig = toml::from_str(
            r#"
            provider = "ollama"
            base_url = "http://localhost:11434/v1"
            model = "qwen3"
            api_key = "sk-secret-value"
            max_tokens = 4096
            temperature = 0.2
            request_timeout = 90
            idle_stream_timeout = "1.5m"
            request_budget = "5m"
            max_retry_after = "30s"
            connect_timeout = "500ms"
            "#,
        )
        .unwrap();
        assert_eq!(cfg.provider, Some(ProviderKind::OpenAi));
        assert_eq!(cfg.max_tokens, Some(4096));
        assert_eq!(
            cfg.first_byte_timeout,
            Duration::from_secs(90),
            "request_timeout is first_byte_timeout's older name"
        );
        assert_eq!(cfg.request_budget, Duration::from_secs(300));
        assert_eq!(cfg.max_retry_after, Duration::from_secs(30));
        assert_eq!(cfg.idle_stream_timeout, Duration::from_secs(90));
        assert_eq!(cfg.connect_timeout, Duration::from_millis(500));
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("sk-secret-value"), "{debug}");
        assert!(debug.contains("api_key: Some(***)"), "{debug}");

        let defaults: LlmConfig = toml::from_str("").unwrap();
        assert_eq!(defaults, LlmConfig::default());

        let err = toml::from_str::<LlmConfig>("modle = \"x\"").unwrap_err();
        assert!(err.to_string().contains("unknown field `modle`"), "{err}");
        let err = toml::from_str::<LlmConfig>("provider = \"gemini\"").unwrap_err();
        assert!(
            err.to_string().contains("unknown provider `gemini`"),
            "{err}"
        );
        let err = toml::from_str::<LlmConfig>("connect_timeout = \"soon\"").unwrap_err();
        assert!(err.to_string().contains("invalid duration"), "{err}");
        let err = toml::from_str::<LlmConfig>("connect_timeout = -1").unwrap_err();
        assert!(err.to_string().contains("invalid duration"), "{err}");
    }

    #[test]
    fn serializing_round_trips_everything_but_the_key() {
        let cfg = LlmConfig {
            provider: Some(ProviderKind::Anthropic),
            model: Some("claude".into()),
            api_key: Some(Secret::new("sk-ant-secret")),
            max_tokens: Some(1000),
            connect_timeout: Duration::from_millis(2500),
            ..LlmConfig::default()
        };
        let value = serde_json::to_value(&cfg).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "provider": "anthropic",
                "model": "claude",
                "max_tokens": 1000,
                "first_byte_timeout": 60.0,
                "idle_stream_timeout": 120.0,
                "request_budget": 600.0,
                "max_retry_after": 60.0,
                "connect_timeout": 2.5,
            })
        );
        let back: LlmConfig = serde_json::from_value(value).unwrap();
        assert_eq!(
            back,
            LlmConfig {
                api_key: None,
                ..cfg
            }
        );
        let defaults = serde_json::to_value(LlmConfig::default()).unwrap();
        assert_eq!(
            serde_json::from_value::<LlmConfig>(defaults).unwrap(),
            LlmConfig::default()
        );
    }

    #[test]
    fn resolved_config_never_prints_the_key() {
        let r = with_model()
            .resolve(&env(&[("OPENAI_API_KEY", "sk-live-abcdef")]))
            .unwrap();
        let debug = format!("{r:?}");
        assert!(!debug.contains("sk-live-abcdef"), "{debug}");
    }
}
