//! Model API failures: what went wrong, whether a retry can help and how long to wait.
//!
//! This module classifies; it never retries (that is the lane engine's job).
//!
//! | failure | kind | retryable | wait |
//! |---|---|---|---|
//! | 400, 422, other 4xx | `InvalidRequest` | no | |
//! | 401 | `Auth` | no | |
//! | 402; 429 whose body says quota, credit or spend limit | `Quota` | no | |
//! | 403 | `Auth` | no | |
//! | 404 | `NotFound` | no | |
//! | 408 | `Timeout` | yes | `Retry-After` |
//! | 409 | `Server` | yes | `Retry-After` |
//! | 413 | `InvalidRequest` | no | |
//! | 429 | `RateLimited` | yes | `retry-after-ms`, `Retry-After`, else the provider's rate-limit reset headers |
//! | 500, 502, 503, 504, other 5xx except 501 and 505 | `Server` | yes | `Retry-After` |
//! | 501, 505 | `Server` | no | |
//! | 529 | `Overloaded` | yes | `Retry-After` |
//! | 3xx (redirects are not followed: a POST must not turn into a GET) | `Protocol` | no | |
//! | connection refused | `Connect` | no: nothing is listening; retrying only delays telling the user to fix the base URL or start the server | |
//! | DNS failure | `Connect` | no: the host name is wrong far more often than DNS is flaky | |
//! | TLS failure | `Connect` | no | |
//! | other connect failures (reset, unreachable) | `Connect` | yes | |
//! | connect, header or idle timeout | `Timeout` | yes | |
//! | stream ends before `[DONE]` / `message_stop` | `StreamCut` | yes | |
//! | in-stream error event | by its type, like the status it stands for | by its type | |
//! | malformed JSON or non-UTF-8 in the stream | `Protocol` | no | |
//! | cancellation | `Cancelled` | no | |
//! | missing model, bad base URL | `Config` | no | |
//!
//! Messages say what failed, at which URL, and where to fix it; they include the provider's
//! own message from the body, and never the API key (it is scrubbed even if a server echoes it).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::config::{ProviderKind, Secret};

/// What kind of failure an [`LlmError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LlmErrorKind {
    /// The configuration is incomplete or invalid (no model, a malformed base URL).
    Config,
    /// The server could not be reached (connection refused, DNS or TLS failure).
    Connect,
    /// The API key is missing, rejected or not allowed to do this (401, 403).
    Auth,
    /// The account is out of quota, credit or spend limit (402, some 429s).
    Quota,
    /// The model or the endpoint does not exist (404).
    NotFound,
    /// The server rejected the request itself (400, 413, 422, other 4xx).
    InvalidRequest,
    /// Too many requests for now (429).
    RateLimited,
    /// The provider is overloaded (529, Anthropic's `overloaded_error`).
    Overloaded,
    /// The server failed (5xx, 409) or reported a server error inside the stream.
    Server,
    /// A connect, header or idle-stream timeout.
    Timeout,
    /// The stream ended before its terminator.
    StreamCut,
    /// The server sent something other than the documented wire format.
    Protocol,
    /// The caller cancelled the request.
    Cancelled,
}

/// A failed model call, classified for the lane engine and worded for the user.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct LlmError {
    /// What kind of failure this is.
    pub kind: LlmErrorKind,
    /// What failed and where to fix it; never contains the API key.
    pub message: String,
    /// Whether the same request may succeed later.
    pub retryable: bool,
    /// How long the server asked to wait before retrying, when it said.
    pub retry_after: Option<Duration>,
    /// The HTTP status, when the failure was an HTTP error response.
    pub status: Option<u16>,
}

impl LlmError {
    /// A failure with no HTTP status and no requested wait.
    pub fn new(kind: LlmErrorKind, retryable: bool, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            retryable,
            retry_after: None,
            status: None,
        }
    }

    /// The caller cancelled the request.
    pub fn cancelled() -> Self {
        Self::new(
            LlmErrorKind::Cancelled,
            false,
            "the model request was cancelled",
        )
    }
}

/// Where a request went, for wording errors.
pub(crate) struct Target<'a> {
    pub provider: ProviderKind,
    pub url: &'a str,
    pub model: &'a str,
    pub key: Option<&'a Secret>,
}

impl Target<'_> {
    /// Removes the API key from text that came from elsewhere (a server, an error chain).
    pub(crate) fn scrub(&self, text: &str) -> String {
        match self.key.map(Secret::expose) {
            Some(key) if !key.is_empty() => text.replace(key, "***"),
            _ => text.to_owned(),
        }
    }
}

/// Classifies an HTTP error response. `now` is passed in so reset times can be tested.
pub(crate) fn from_status(
    target: &Target<'_>,
    status: u16,
    headers: &HeaderMap,
    body: &str,
    now: SystemTime,
) -> LlmError {
    use LlmErrorKind as K;

    let detail = ErrorDetail::parse(body);
    let url = target.url;
    let model = target.model;
    let key_env = target.provider.api_key_env();
    let base_env = target.provider.base_url_env();
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .map(str::to_ascii_lowercase)
        .unwrap_or_else(|| "error".to_owned());

    let (kind, retryable, message) = match status {
        401 if target.key.is_none() => (
            K::Auth,
            false,
            format!(
                "{url} requires an API key (401) and none is set: set {key_env} or llm.api_key"
            ),
        ),
        401 => (
            K::Auth,
            false,
            format!("the API key was rejected (401) by {url}: set {key_env} or llm.api_key"),
        ),
        402 => (
            K::Quota,
            false,
            format!(
                "the account behind the API key is out of credit (402) at {url}: check its billing"
            ),
        ),
        403 => (
            K::Auth,
            false,
            format!(
                "the API key is not allowed to use model `{model}` (403) at {url}: check the key's permissions or set another llm.model"
            ),
        ),
        404 if detail.mentions("model") => (
            K::NotFound,
            false,
            format!(
                "model `{model}` not found at {url} (404): check llm.model or SWITCHYARD_MODEL"
            ),
        ),
        404 => (
            K::NotFound,
            false,
            format!(
                "{url} was not found (404): check the base URL in llm.base_url or {base_env} and the model `{model}`"
            ),
        ),
        408 => (
            K::Timeout,
            true,
            format!("the model API at {url} timed out (408)"),
        ),
        409 => (
            K::Server,
            true,
            format!("the model API at {url} reported a conflict (409)"),
        ),
        413 => (
            K::InvalidRequest,
            false,
            format!(
                "the request is too large for {url} (413): the conversation or a tool result is too long"
            ),
        ),
        429 if detail.is_quota() => (
            K::Quota,
            false,
            format!(
                "the account behind the API key is out of quota or over its spend limit (429) at {url}: check its plan and billing"
            ),
        ),
        429 => (K::RateLimited, true, format!("rate limited (429) by {url}")),
        501 | 505 => (
            K::Server,
            false,
            format!("the model API at {url} failed ({status} {reason})"),
        ),
        529 => (
            K::Overloaded,
            true,
            format!("the model API at {url} is overloaded (529)"),
        ),
        500..=599 => (
            K::Server,
            true,
            format!("the model API at {url} failed ({status} {reason})"),
        ),
        400..=499 => (
            K::InvalidRequest,
            false,
            format!("the model API at {url} rejected the request ({status} {reason})"),
        ),
        300..=399 => {
            let to = headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("another address");
            (
                K::Protocol,
                false,
                format!(
                    "{url} redirects to {to} ({status}): set llm.base_url or {base_env} to the new address"
                ),
            )
        }
        _ => (
            K::Protocol,
            false,
            format!("unexpected HTTP status {status} from {url}"),
        ),
    };

    let said = detail.message();
    let message = if said.is_empty() {
        message
    } else {
        format!("{message}; the server said: {said}")
    };
    LlmError {
        kind,
        message: target.scrub(&message),
        retryable,
        retry_after: if retryable {
            retry_after(target.provider, status, headers, now)
        } else {
            None
        },
        status: Some(status),
    }
}

/// Classifies an error event inside a 200 stream: Anthropic's `event: error` or an
/// OpenAI-compatible chunk carrying `error` (OpenRouter, vLLM). Mid-stream errors are
/// nearly always transient, so unknown types are retryable.
pub(crate) fn from_stream_error(target: &Target<'_>, data: &str) -> LlmError {
    use LlmErrorKind as K;

    let detail = ErrorDetail::parse(data);
    let error_type = detail.error_type().unwrap_or_default();
    let (kind, retryable) = match error_type.as_str() {
        "overloaded_error" | "overloaded" | "529" => (K::Overloaded, true),
        "rate_limit_error" | "rate_limit_exceeded" | "429" => (K::RateLimited, true),
        "authentication_error" | "permission_error" | "invalid_api_key" | "401" | "403" => {
            (K::Auth, false)
        }
        "billing_error" | "insufficient_quota" | "402" => (K::Quota, false),
        "not_found_error" | "model_not_found" | "404" => (K::NotFound, false),
        "invalid_request_error" | "request_too_large" | "400" | "413" | "422" => {
            (K::InvalidRequest, false)
        }
        "timeout_error" | "408" | "504" => (K::Timeout, true),
        _ => (K::Server, true),
    };
    let said = detail.message();
    let said = if said.is_empty() {
        error_type.clone()
    } else {
        said
    };
    let message = if said.is_empty() {
        format!(
            "the model API at {} reported an error mid-stream",
            target.url
        )
    } else {
        format!(
            "the model API at {} reported an error mid-stream: {said}",
            target.url
        )
    };
    LlmError::new(kind, retryable, target.scrub(&message))
}

/// Classifies a failure to send the request or receive the response headers.
pub(crate) fn from_transport(target: &Target<'_>, err: &reqwest::Error) -> LlmError {
    use LlmErrorKind as K;

    let url = target.url;
    let cause = root_cause(err);
    let refused = io_error_kinds(err).any(|k| k == std::io::ErrorKind::ConnectionRefused);
    let chain = error_chain(err).to_ascii_lowercase();
    // rustls errors reach us only as text (the I/O error wrapping them hides their type).
    const TLS_WORDS: [&str; 7] = [
        "certificate",
        "corrupt message",
        "fatal alert",
        "handshake",
        "peer is incompatible",
        "peer misbehaved",
        "tls",
    ];
    let tls = err.is_connect()
        && url.starts_with("https://")
        && TLS_WORDS.iter().any(|w| chain.contains(w));

    let (kind, retryable, message) = if err.is_timeout() {
        (
            K::Timeout,
            true,
            format!("timed out connecting to the model API at {url}"),
        )
    } else if refused {
        (
            K::Connect,
            false,
            format!(
                "cannot reach the model API at {url} (connection refused): check the base URL and that the server is running"
            ),
        )
    } else if chain.contains("dns error") || chain.contains("failed to lookup address") {
        (
            K::Connect,
            false,
            format!(
                "cannot reach the model API at {url} (cannot resolve the host: {cause}): check the base URL"
            ),
        )
    } else if tls {
        (
            K::Connect,
            false,
            format!(
                "cannot reach the model API at {url} (TLS failed: {cause}): check the base URL's scheme (http:// or https://) and the server's certificate"
            ),
        )
    } else if err.is_connect() {
        (
            K::Connect,
            true,
            format!("cannot reach the model API at {url} ({cause})"),
        )
    } else {
        (
            K::Connect,
            true,
            format!("sending the request to {url} failed ({cause})"),
        )
    };
    LlmError::new(kind, retryable, target.scrub(&message))
}

fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// An error and its sources, joined with `: `.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut current = err.source();
    while let Some(next) = current {
        text.push_str(": ");
        text.push_str(&next.to_string());
        current = next.source();
    }
    text
}

fn io_error_kinds<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = std::io::ErrorKind> + 'a {
    std::iter::successors(Some(err), |&e| e.source())
        .filter_map(|e| e.downcast_ref::<std::io::Error>().map(std::io::Error::kind))
}

/// The error fields of an error body in any of the shapes servers use: OpenAI
/// `{"error":{"message","type","code"}}`, Anthropic `{"type":"error","error":{"type",
/// "message","details"}}`, Ollama `{"error":"…"}`, FastAPI `{"detail":…}`, or plain text.
#[derive(Default)]
struct ErrorDetail {
    message: Option<String>,
    error_type: Option<String>,
    code: Option<String>,
    details_code: Option<String>,
    raw: String,
}

impl ErrorDetail {
    fn parse(body: &str) -> Self {
        #[derive(Deserialize)]
        struct Body {
            error: Option<serde_json::Value>,
            message: Option<String>,
            detail: Option<serde_json::Value>,
        }
        let raw = body.trim().to_owned();
        let Ok(parsed) = serde_json::from_str::<Body>(&raw) else {
            return Self {
                raw,
                ..Self::default()
            };
        };
        let text = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        };
        let mut detail = Self {
            raw,
            ..Self::default()
        };
        match parsed.error {
            Some(serde_json::Value::String(message)) => detail.message = Some(message),
            Some(serde_json::Value::Object(error)) => {
                detail.message = error.get("message").and_then(text);
                detail.error_type = error.get("type").and_then(text);
                detail.code = error.get("code").and_then(text);
                detail.details_code = error
                    .get("details")
                    .and_then(|d| d.get("error_code"))
                    .and_then(text);
            }
            _ => {}
        }
        if detail.message.is_none() {
            detail.message = parsed
                .message
                .or_else(|| parsed.detail.as_ref().and_then(text));
        }
        detail
    }

    /// The provider's message, or a short excerpt of a body that was not JSON, on one line,
    /// without a trailing period.
    fn message(&self) -> String {
        let text = match &self.message {
            Some(message) => message.clone(),
            None if self.raw.starts_with('<') => String::new(), // an HTML error page
            None => self.raw.clone(),
        };
        let mut line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if line.chars().count() > 500 {
            line = line.chars().take(500).collect::<String>() + "…";
        }
        line.trim_end_matches('.').to_owned()
    }

    /// The most specific machine-readable error type: `code` when it names one, else `type`.
    fn error_type(&self) -> Option<String> {
        self.code
            .clone()
            .filter(|c| !c.is_empty())
            .or_else(|| self.error_type.clone())
    }

    fn mentions(&self, word: &str) -> bool {
        let text = format!(
            "{} {} {}",
            self.message.as_deref().unwrap_or(&self.raw),
            self.error_type.as_deref().unwrap_or(""),
            self.code.as_deref().unwrap_or("")
        );
        text.to_ascii_lowercase().contains(word)
    }

    /// A 429 that waiting will not fix: OpenAI's quota, credit and spend-limit codes,
    /// Anthropic's `enforced_spend_limit_reached`.
    fn is_quota(&self) -> bool {
        const CODES: [&str; 6] = [
            "insufficient_quota",
            "credit_balance_exhausted",
            "organization_usage_limit_exceeded",
            "organization_spend_limit_exceeded",
            "project_spend_limit_exceeded",
            "enforced_spend_limit_reached",
        ];
        [&self.code, &self.error_type, &self.details_code]
            .into_iter()
            .flatten()
            .any(|c| CODES.contains(&c.as_str()))
    }
}

/// How long the server asked to wait: `retry-after-ms`, then `Retry-After` (seconds or an
/// HTTP date), then, for a 429, the provider's rate-limit reset headers for the limits
/// that are exhausted (the longest wait wins).
fn retry_after(
    provider: ProviderKind,
    status: u16,
    headers: &HeaderMap,
    now: SystemTime,
) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let seconds = |s: f64| {
        (s.is_finite() && s >= 0.0)
            .then(|| Duration::try_from_secs_f64(s).ok())
            .flatten()
    };

    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return seconds(ms / 1000.0);
    }
    if let Some(value) = header("retry-after") {
        if let Ok(s) = value.parse::<f64>() {
            return seconds(s);
        }
        if let Ok(at) = httpdate::parse_http_date(value) {
            return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }
    if status != 429 {
        return None;
    }
    let exhausted = |limit: &str, prefix: &str| {
        header(&format!("{prefix}-remaining-{limit}"))
            .or_else(|| header(&format!("{prefix}-{limit}-remaining")))
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|v| v <= 0.0)
    };
    match provider {
        ProviderKind::OpenAi => ["requests", "tokens"]
            .into_iter()
            .filter(|limit| exhausted(limit, "x-ratelimit"))
            .filter_map(|limit| header(&format!("x-ratelimit-reset-{limit}")))
            .filter_map(parse_go_duration)
            .max(),
        ProviderKind::Anthropic => ["requests", "tokens", "input-tokens", "output-tokens"]
            .into_iter()
            .filter(|limit| exhausted(limit, "anthropic-ratelimit"))
            .filter_map(|limit| header(&format!("anthropic-ratelimit-{limit}-reset")))
            .filter_map(parse_rfc3339)
            .map(|at| at.duration_since(now).unwrap_or(Duration::ZERO))
            .max(),
    }
}

/// OpenAI's reset durations: `"1s"`, `"6m0s"`, `"20ms"`, `"1h2m3.5s"`.
fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0_f64;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Anthropic's reset times: RFC 3339, e.g. `2024-06-01T12:00:30Z`, `…30.5+02:00`.
fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let text = text.trim();
    let number = |s: &str| s.parse::<i64>().ok();
    let (date, time) = text.split_once(['T', 't', ' '])?;
    let mut date = date.splitn(3, '-');
    let (year, month, day) = (
        number(date.next()?)?,
        number(date.next()?)?,
        number(date.next()?)?,
    );
    let zone_at = time.find(['Z', 'z', '+', '-'])?;
    let (clock, zone) = time.split_at(zone_at);
    let mut clock = clock.splitn(3, ':');
    let (hour, minute) = (number(clock.next()?)?, number(clock.next()?)?);
    let second: f64 = clock.next()?.parse().ok()?;
    let offset = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (h, m) = zone[1..].split_once(':')?;
            sign * (number(h)? * 3600 + number(m)? * 60)
        }
    };
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + hour * 3600 + minute * 60 - offset;
    let secs = u64::try_from(secs).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs) + Duration::try_from_secs_f64(second).ok()?)
}

#[cfg(test)]
mod tests {
    use reqwest::header::{HeaderName, HeaderValue};

    use super::*;

    const KEY: &str = "sk-test-0123456789abcdef";

    fn key() -> Secret {
        Secret::new(KEY)
    }

    fn openai(key: &Secret) -> Target<'_> {
        Target {
            provider: ProviderKind::OpenAi,
            url: "https://api.openai.com/v1/chat/completions",
            model: "gpt-test",
            key: Some(key),
        }
    }

    fn anthropic(key: &Secret) -> Target<'_> {
        Target {
            provider: ProviderKind::Anthropic,
            url: "https://api.anthropic.com/v1/messages",
            model: "gpt-test",
            key: Some(key),
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                )
            })
            .collect()
    }

    fn now() -> SystemTime {
        // 2024-06-01T12:00:00Z
        UNIX_EPOCH + Duration::from_secs(1_717_243_200)
    }

    fn classify(t: &Target<'_>, status: u16, hs: &[(&str, &str)], body: &str) -> LlmError {
        let err = from_status(t, status, &headers(hs), body, now());
        assert!(!err.message.contains(KEY), "key leaked: {}", err.message);
        assert_eq!(err.status, Some(status));
        err
    }

    #[test]
    fn openai_401_says_which_variable_to_set() {
        let k = key();
        let body = r#"{"error":{"message":"Incorrect API key provided: sk-test-0123456789abcdef. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        let err = classify(&openai(&k), 401, &[], body);
        assert_eq!(err.kind, LlmErrorKind::Auth);
        assert!(!err.retryable);
        assert_eq!(
            err.message,
            "the API key was rejected (401) by https://api.openai.com/v1/chat/completions: set OPENAI_API_KEY or llm.api_key; the server said: Incorrect API key provided: ***. You can find your API key at https://platform.openai.com/account/api-keys"
        );
    }

    #[test]
    fn a_401_without_a_key_says_none_is_set() {
        let k = key();
        let t = Target {
            key: None,
            ..anthropic(&k)
        };
        let body = r#"{"type":"error","error":{"type":"authentication_error","message":"x-api-key header is required"},"request_id":"req_011"}"#;
        let err = classify(&t, 401, &[], body);
        assert_eq!(
            err.message,
            "https://api.anthropic.com/v1/messages requires an API key (401) and none is set: set ANTHROPIC_API_KEY or llm.api_key; the server said: x-api-key header is required"
        );
    }

    #[test]
    fn not_found_tells_model_from_endpoint() {
        let k = key();
        let body = r#"{"error":{"message":"The model `gpt-test` does not exist or you do not have access to it.","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#;
        let err = classify(&openai(&k), 404, &[], body);
        assert_eq!(err.kind, LlmErrorKind::NotFound);
        assert!(!err.retryable);
        assert!(
            err.message.starts_with(
                "model `gpt-test` not found at https://api.openai.com/v1/chat/completions (404): check llm.model or SWITCHYARD_MODEL; the server said: The model `gpt-test` does not exist"
            ),
            "{}",
            err.message
        );

        let ollama = classify(
            &openai(&k),
            404,
            &[],
            r#"{"error":"model \"llama9\" not found, try pulling it first"}"#,
        );
        assert!(
            ollama.message.starts_with("model `gpt-test` not found"),
            "{}",
            ollama.message
        );

        let plain = classify(&openai(&k), 404, &[], "404 page not found\n");
        assert_eq!(
            plain.message,
            "https://api.openai.com/v1/chat/completions was not found (404): check the base URL in llm.base_url or OPENAI_BASE_URL and the model `gpt-test`; the server said: 404 page not found"
        );
        let html = classify(
            &openai(&k),
            404,
            &[],
            "<html><body><h1>Not Found</h1></body></html>",
        );
        assert!(!html.message.contains("<html>"), "{}", html.message);
    }

    #[test]
    fn client_errors_are_not_retryable_and_carry_the_provider_message() {
        let k = key();
        let body = r#"{"type":"error","error":{"type":"invalid_request_error","message":"messages: roles must alternate between \"user\" and \"assistant\""},"request_id":"req_1"}"#;
        let err = classify(&anthropic(&k), 400, &[("retry-after", "5")], body);
        assert_eq!(err.kind, LlmErrorKind::InvalidRequest);
        assert!(!err.retryable);
        assert_eq!(
            err.retry_after, None,
            "a wait means nothing when a retry cannot help"
        );
        assert_eq!(
            err.message,
            "the model API at https://api.anthropic.com/v1/messages rejected the request (400 bad request); the server said: messages: roles must alternate between \"user\" and \"assistant\""
        );

        let vllm = r#"{"detail":[{"loc":["body","messages"],"msg":"field required","type":"value_error.missing"}]}"#;
        let err = classify(&openai(&k), 422, &[], vllm);
        assert_eq!(err.kind, LlmErrorKind::InvalidRequest);
        assert!(
            err.message
                .contains("(422 unprocessable entity); the server said: [{"),
            "{}",
            err.message
        );

        let err = classify(
            &anthropic(&k),
            413,
            &[],
            r#"{"type":"error","error":{"type":"request_too_large","message":"Request exceeds the maximum allowed number of bytes."}}"#,
        );
        assert_eq!(err.kind, LlmErrorKind::InvalidRequest);
        assert!(!err.retryable);

        let err = classify(
            &anthropic(&k),
            403,
            &[],
            r#"{"type":"error","error":{"type":"permission_error","message":"Your API key does not have permission to use the specified resource."}}"#,
        );
        assert_eq!(err.kind, LlmErrorKind::Auth);
        assert!(
            err.message
                .starts_with("the API key is not allowed to use model `gpt-test` (403)"),
            "{}",
            err.message
        );
    }

    #[test]
    fn rate_limits_honour_retry_after_in_every_form() {
        let k = key();
        let body = r#"{"error":{"message":"Rate limit reached for gpt-test in organization org-1 on tokens per min (TPM): Limit 30000, Used 30000. Please try again in 1.2s.","type":"tokens","param":null,"code":"rate_limit_exceeded"}}"#;
        let err = classify(&openai(&k), 429, &[("retry-after", "7")], body);
        assert_eq!(err.kind, LlmErrorKind::RateLimited);
        assert!(err.retryable);
        assert_eq!(err.retry_after, Some(Duration::from_secs(7)));
        assert!(err.message.starts_with("rate limited (429) by https://api.openai.com/v1/chat/completions; the server said: Rate limit reached"), "{}", err.message);

        let err = classify(
            &openai(&k),
            429,
            &[("retry-after-ms", "1500"), ("retry-after", "7")],
            body,
        );
        assert_eq!(err.retry_after, Some(Duration::from_millis(1500)));

        let err = classify(
            &openai(&k),
            429,
            &[("retry-after", "Sat, 01 Jun 2024 12:00:42 GMT")],
            body,
        );
        assert_eq!(err.retry_after, Some(Duration::from_secs(42)));
        let err = classify(
            &openai(&k),
            429,
            &[("retry-after", "Sat, 01 Jun 2024 11:00:00 GMT")],
            body,
        );
        assert_eq!(
            err.retry_after,
            Some(Duration::ZERO),
            "a date in the past means now"
        );

        let err = classify(
            &openai(&k),
            429,
            &[
                ("x-ratelimit-remaining-requests", "4999"),
                ("x-ratelimit-reset-requests", "12ms"),
                ("x-ratelimit-remaining-tokens", "0"),
                ("x-ratelimit-reset-tokens", "6m0s"),
            ],
            body,
        );
        assert_eq!(err.retry_after, Some(Duration::from_secs(360)));

        let err = classify(
            &anthropic(&k),
            429,
            &[
                ("anthropic-ratelimit-requests-remaining", "0"),
                ("anthropic-ratelimit-requests-reset", "2024-06-01T12:00:30Z"),
                ("anthropic-ratelimit-tokens-remaining", "0"),
                (
                    "anthropic-ratelimit-tokens-reset",
                    "2024-06-01T14:00:45+02:00",
                ),
                ("anthropic-ratelimit-input-tokens-remaining", "100"),
                (
                    "anthropic-ratelimit-input-tokens-reset",
                    "2024-06-01T12:05:00Z",
                ),
            ],
            r#"{"type":"error","error":{"type":"rate_limit_error","message":"Number of request tokens has exceeded your per-minute rate limit"}}"#,
        );
        assert_eq!(err.kind, LlmErrorKind::RateLimited);
        assert_eq!(err.retry_after, Some(Duration::from_secs(45)));

        let err = classify(
            &openai(&k),
            429,
            &[],
            r#"{"error":{"message":"slow down"}}"#,
        );
        assert!(err.retryable);
        assert_eq!(err.retry_after, None);
    }

    #[test]
    fn quota_429s_are_not_retryable() {
        let k = key();
        let openai_quota = r#"{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}"#;
        let err = classify(&openai(&k), 429, &[("retry-after", "1")], openai_quota);
        assert_eq!(err.kind, LlmErrorKind::Quota);
        assert!(!err.retryable);
        assert_eq!(err.retry_after, None);

        let anthropic_cap = r#"{"type":"error","error":{"type":"rate_limit_error","message":"You have reached your specified API usage limits.","details":{"error_code":"enforced_spend_limit_reached"}}}"#;
        let err = classify(&anthropic(&k), 429, &[], anthropic_cap);
        assert_eq!(err.kind, LlmErrorKind::Quota);
        assert!(!err.retryable);

        let err = classify(
            &anthropic(&k),
            402,
            &[],
            r#"{"type":"error","error":{"type":"billing_error","message":"Your credit balance is too low"}}"#,
        );
        assert_eq!(err.kind, LlmErrorKind::Quota);
        assert!(!err.retryable);
    }

    #[test]
    fn server_errors_are_retryable() {
        let k = key();
        for status in [500, 502, 503, 504, 520] {
            let err = classify(
                &openai(&k),
                status,
                &[("retry-after", "2")],
                "upstream connect error",
            );
            assert_eq!(err.kind, LlmErrorKind::Server, "{status}");
            assert!(err.retryable, "{status}");
            assert_eq!(err.retry_after, Some(Duration::from_secs(2)), "{status}");
        }
        let err = classify(&openai(&k), 503, &[], "");
        assert_eq!(
            err.message,
            "the model API at https://api.openai.com/v1/chat/completions failed (503 service unavailable)"
        );

        let overloaded = r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_2"}"#;
        let err = classify(&anthropic(&k), 529, &[], overloaded);
        assert_eq!(err.kind, LlmErrorKind::Overloaded);
        assert!(err.retryable);
        assert_eq!(
            err.message,
            "the model API at https://api.anthropic.com/v1/messages is overloaded (529); the server said: Overloaded"
        );

        let err = classify(&openai(&k), 501, &[], "");
        assert!(!err.retryable);
        let err = classify(&openai(&k), 408, &[], "");
        assert_eq!(err.kind, LlmErrorKind::Timeout);
        assert!(err.retryable);
    }

    #[test]
    fn redirects_are_reported_not_followed() {
        let k = key();
        let err = classify(
            &openai(&k),
            301,
            &[("location", "https://api.example.com/v1/chat/completions")],
            "",
        );
        assert_eq!(err.kind, LlmErrorKind::Protocol);
        assert!(!err.retryable);
        assert_eq!(
            err.message,
            "https://api.openai.com/v1/chat/completions redirects to https://api.example.com/v1/chat/completions (301): set llm.base_url or OPENAI_BASE_URL to the new address"
        );
    }

    #[test]
    fn stream_errors_classify_by_type() {
        let k = key();
        let err = from_stream_error(
            &anthropic(&k),
            r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
        );
        assert_eq!(err.kind, LlmErrorKind::Overloaded);
        assert!(err.retryable);
        assert_eq!(err.status, None);
        assert_eq!(
            err.message,
            "the model API at https://api.anthropic.com/v1/messages reported an error mid-stream: Overloaded"
        );

        let err = from_stream_error(
            &anthropic(&k),
            r#"{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}"#,
        );
        assert_eq!(err.kind, LlmErrorKind::InvalidRequest);
        assert!(!err.retryable);

        let openrouter = r#"{"id":"gen-1","object":"chat.completion.chunk","error":{"code":502,"message":"Provider returned error"},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}"#;
        let err = from_stream_error(&openai(&k), openrouter);
        assert_eq!(err.kind, LlmErrorKind::Server);
        assert!(err.retryable);
        assert!(
            err.message.ends_with("mid-stream: Provider returned error"),
            "{}",
            err.message
        );
    }

    #[test]
    fn transport_errors_never_include_the_key() {
        let k = key();
        let t = openai(&k);
        assert_eq!(
            t.scrub(&format!("bearer {KEY} failed")),
            "bearer *** failed"
        );
    }

    #[test]
    fn duration_and_date_parsers() {
        assert_eq!(parse_go_duration("1s"), Some(Duration::from_secs(1)));
        assert_eq!(parse_go_duration("6m0s"), Some(Duration::from_secs(360)));
        assert_eq!(parse_go_duration("20ms"), Some(Duration::from_millis(20)));
        assert_eq!(
            parse_go_duration("1h2m3.5s"),
            Some(Duration::from_millis(3_723_500))
        );
        assert_eq!(parse_go_duration("soon"), None);
        assert_eq!(parse_go_duration(""), None);

        assert_eq!(parse_rfc3339("2024-06-01T12:00:00Z"), Some(now()));
        assert_eq!(parse_rfc3339("2024-06-01T14:00:00+02:00"), Some(now()));
        assert_eq!(parse_rfc3339("2024-06-01T11:30:00-00:30"), Some(now()));
        assert_eq!(
            parse_rfc3339("2024-06-01T12:00:00.250Z"),
            Some(now() + Duration::from_millis(250))
        );
        assert_eq!(
            parse_rfc3339("2000-03-01T00:00:00Z"),
            Some(UNIX_EPOCH + Duration::from_secs(951_868_800))
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
