//! The editor's settings as the last configuration layers (`initializationOptions`, then
//! what `workspace/configuration` or `workspace/didChangeConfiguration` says), over the
//! layers [`Config::discover`] finds, and how a setting that cannot be put in force is
//! blamed on the layer that set it; and the question "trust this folder?" asked when the
//! workspace file was not allowed to set everything it says.

use serde_json::Value;
use tower_lsp_server::Client;
use tower_lsp_server::ls_types::{MessageActionItem, MessageType};

use crate::config::{Config, Layer};
use crate::trust::{self, Ignored};

/// The answer that trusts the folder in [`ask_trust`]'s question.
pub(crate) const TRUST: &str = "Trust this folder";
/// The answer that leaves it untrusted.
pub(crate) const NOT_NOW: &str = "Not now";

/// Tells the user what the untrusted workspace file was not allowed to set (in the log and
/// as a `window/showMessageRequest`) and asks whether to trust the folder; when they do,
/// trusts it and returns true, so the caller rebuilds the configuration.
pub(crate) async fn ask_trust(client: &Client, ignored: &Ignored) -> bool {
    let notice = format!("switchyard: {}", ignored.notice());
    tracing::warn!("{notice}");
    let actions = [TRUST, NOT_NOW]
        .map(|title| MessageActionItem {
            title: title.into(),
            properties: Default::default(),
        })
        .to_vec();
    let answer = client
        .show_message_request(MessageType::WARNING, notice, Some(actions))
        .await;
    if !matches!(answer, Ok(Some(ref item)) if item.title == TRUST) {
        return false;
    }
    let root = ignored.root.clone();
    match tokio::task::spawn_blocking(move || trust::trust_folder(&root)).await {
        Ok(Ok(root)) => {
            tracing::info!("trusted {}; reloading the configuration", root.display());
            true
        }
        Ok(Err(e)) => {
            client
                .show_message(MessageType::ERROR, format!("switchyard: {e}"))
                .await;
            false
        }
        Err(e) => {
            tracing::error!("trusting the folder failed: {e}");
            false
        }
    }
}

/// The settings section this server reads (`switchyard.*` in the editor).
pub(crate) const SECTION: &str = "switchyard";

/// Keys of the section only the editor reads (how to start the server, message tracing);
/// they are removed before the rest becomes a layer.
pub(crate) const EDITOR_ONLY: [&str; 2] = ["server", "trace"];

/// The editor's settings as a layer named `source`; `None` when they say nothing (absent,
/// `null`, not an object, or only editor-only keys).
pub(crate) fn editor_layer(source: &str, value: Option<&Value>) -> Option<Layer> {
    let Some(Value::Object(map)) = value else {
        return None;
    };
    let mut map = map.clone();
    for key in EDITOR_ONLY {
        map.remove(key);
    }
    (!map.is_empty()).then(|| Layer {
        source: source.to_string(),
        value: Value::Object(map),
    })
}

/// The `switchyard` section of pushed settings (`didChangeConfiguration`): the value under
/// `switchyard`, or the whole object when a client sends the section bare.
pub(crate) fn section(settings: &Value) -> Option<&Value> {
    match settings.get(SECTION) {
        Some(section) => Some(section),
        None if settings.is_object() => Some(settings),
        None => None,
    }
}

/// The configuration of `layers`, or what is wrong with it, blamed on the first layer
/// that cannot be put in force on top of the ones below it.
pub(crate) fn build(layers: &[Layer]) -> Result<Config, String> {
    Config::from_layers(layers).map_err(|error| blame(layers).unwrap_or_else(|| error.to_string()))
}

/// The configuration of `layers` less those that cannot be put in force, each reported.
/// What a server starting up uses: a bad editor setting must not cost the workspace file.
pub(crate) fn resolve(mut layers: Vec<Layer>) -> (Config, Vec<String>) {
    let mut errors = Vec::new();
    loop {
        match Config::from_layers(&layers) {
            Ok(config) => return (config, errors),
            Err(error) => match culprit(&layers) {
                Some((at, blamed)) => {
                    layers.remove(at);
                    errors.push(blamed);
                }
                None => {
                    errors.push(error.to_string());
                    return (Config::default(), errors);
                }
            },
        }
    }
}

fn blame(layers: &[Layer]) -> Option<String> {
    culprit(layers).map(|(_, blamed)| blamed)
}

/// The first layer whose addition breaks the configuration, and its error naming it.
fn culprit(layers: &[Layer]) -> Option<(usize, String)> {
    (0..layers.len()).find_map(|at| {
        let error = Config::from_layers(&layers[..=at]).err()?;
        let source = &layers[at].source;
        let error = if error.names_its_layer() {
            error.to_string()
        } else {
            format!("{source}: {error}")
        };
        Some((at, error))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn layer(source: &str, value: Value) -> Layer {
        Layer {
            source: source.into(),
            value,
        }
    }

    #[test]
    fn editor_only_keys_are_stripped() {
        let value = json!({"server": {"path": "/bin/x"}, "trace": {"server": "verbose"}, "lanes": {"query": {"max_concurrency": 3}}});
        let layer = editor_layer("initializationOptions", Some(&value)).unwrap();
        assert_eq!(
            layer.value,
            json!({"lanes": {"query": {"max_concurrency": 3}}})
        );
        assert!(editor_layer("x", Some(&json!({"trace": {"server": "off"}}))).is_none());
        assert!(editor_layer("x", Some(&Value::Null)).is_none());
        assert!(editor_layer("x", None).is_none());
    }

    #[test]
    fn pushed_settings_may_or_may_not_be_wrapped_in_the_section() {
        let wrapped = json!({"switchyard": {"log": {"level": "debug"}}});
        assert_eq!(section(&wrapped), Some(&json!({"log": {"level": "debug"}})));
        let bare = json!({"log": {"level": "debug"}});
        assert_eq!(section(&bare), Some(&bare));
        assert_eq!(section(&Value::Null), None);
    }

    #[test]
    fn a_bad_setting_is_blamed_on_its_layer_with_its_key() {
        let layers = [
            layer(
                "/w/.switchyard.toml",
                json!({"lanes": {"query": {"max_concurrency": 5}}}),
            ),
            layer(
                "initializationOptions",
                json!({"lanes": {"query": {"max_concurrency": 0}}}),
            ),
        ];
        let error = build(&layers).unwrap_err();
        assert_eq!(
            error,
            "initializationOptions: lanes.query.max_concurrency must be at least 1, got 0"
        );
        // At startup the bad layer is dropped and the others stay in force.
        let (config, errors) = resolve(layers.to_vec());
        assert_eq!(config.lanes.query.max_concurrency, Some(5));
        assert_eq!(errors, [error]);
        let error = build(&[layer(
            "workspace/configuration",
            json!({"lanes": {"qeury": {}}}),
        )])
        .unwrap_err();
        assert!(error.starts_with("workspace/configuration: "), "{error}");
        assert!(error.contains("qeury"), "{error}");
    }
}
