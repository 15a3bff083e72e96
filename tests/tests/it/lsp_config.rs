//! The editor's settings as configuration: `initializationOptions`, `workspace/configuration`
//! and `workspace/didChangeConfiguration` over `.switchyard.toml`; lane limits change live;
//! a bad setting is shown with its source and key and the previous configuration stays.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard::lanes::{Lane, MetricsSnapshot};
use switchyard::lsp::ext::{NoParams, QueueStats};
use switchyard_tests::lsp_client::lsp_types::notification::DidChangeConfiguration;
use switchyard_tests::lsp_client::lsp_types::{
    DidChangeConfigurationClientCapabilities, DidChangeConfigurationParams, MessageType,
    WorkspaceClientCapabilities,
};
use switchyard_tests::lsp_client::{ClientOptions, LspClient, PATIENCE, ServerEvent, within};

const LIMIT: Duration = Duration::from_secs(60);

async fn stats(client: &LspClient) -> MetricsSnapshot {
    client
        .command::<QueueStats>(NoParams {})
        .await
        .unwrap()
        .metrics
}

fn max_concurrency(stats: &MetricsSnapshot, lane: Lane) -> Option<usize> {
    stats.lane(lane).config.max_concurrency
}

/// Polls the stats until `ok` holds (configuration changes apply asynchronously).
async fn until(client: &LspClient, what: &str, ok: impl Fn(&MetricsSnapshot) -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        if ok(&stats(client).await) {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "never saw {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pulling(root: &std::path::Path, settings: Value) -> ClientOptions {
    let mut options = ClientOptions::new(root);
    options.capabilities.workspace = Some(WorkspaceClientCapabilities {
        configuration: Some(true),
        did_change_configuration: Some(DidChangeConfigurationClientCapabilities {
            dynamic_registration: Some(true),
        }),
        ..WorkspaceClientCapabilities::default()
    });
    options.settings = settings;
    options
}

async fn error_shown(client: &mut LspClient) -> String {
    let ServerEvent::ShowMessage(shown) = client
        .event(
            "an error shown to the user",
            |e| matches!(e, ServerEvent::ShowMessage(m) if m.typ == MessageType::ERROR),
        )
        .await
    else {
        unreachable!()
    };
    shown.message
}

#[tokio::test]
async fn editor_settings_are_the_last_layer_over_the_workspace_file() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(".switchyard.toml"),
            "[lanes.query]\nmax_concurrency = 7\n[lanes.generate]\nmax_concurrency = 5\n",
        )
        .unwrap();
        let mut options = ClientOptions::new(dir.path());
        options.initialization_options = Some(json!({
            "lanes": {"query": {"max_concurrency": 3}},
            // The editor's own keys are not configuration and are not refused.
            "server": {"path": "/opt/switchyard"},
            "trace": {"server": "verbose"},
        }));
        let (mut client, _) = LspClient::initialized(options).await;
        let stats = stats(&client).await;
        assert_eq!(max_concurrency(&stats, Lane::Query), Some(3));
        assert_eq!(max_concurrency(&stats, Lane::Generate), Some(5));
        client.drain_events();
        assert!(
            !client
                .history
                .iter()
                .any(|e| matches!(e, ServerEvent::ShowMessage(_))),
            "{:?}",
            client.history
        );
        client.shutdown_and_exit().await;
    })
    .await;
}

#[tokio::test]
async fn pulled_settings_apply_and_change_lane_limits_live() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let options = pulling(
            dir.path(),
            json!({"lanes": {"query": {"max_concurrency": 6}}}),
        );
        let (mut client, _) = LspClient::initialized(options).await;
        let ServerEvent::RegisterCapability(registered) = client
            .event("a registration for configuration changes", |e| {
                matches!(e, ServerEvent::RegisterCapability(_))
            })
            .await
        else {
            unreachable!()
        };
        assert_eq!(
            registered.registrations[0].method,
            "workspace/didChangeConfiguration"
        );
        let ServerEvent::Configuration(asked) = client
            .event("a workspace/configuration request", |e| {
                matches!(e, ServerEvent::Configuration(_))
            })
            .await
        else {
            unreachable!()
        };
        assert_eq!(asked.items[0].section.as_deref(), Some("switchyard"));
        until(&client, "the pulled query limit", |s| {
            max_concurrency(s, Lane::Query) == Some(6)
        })
        .await;

        // A live change of the limits.
        client.change_settings(
            json!({"lanes": {"query": {"max_concurrency": 9}, "execute": {"max_concurrency": 2}}}),
        );
        until(&client, "the changed limits", |s| {
            max_concurrency(s, Lane::Query) == Some(9)
                && max_concurrency(s, Lane::Execute) == Some(2)
        })
        .await;

        // A bad value is shown with its source and key; the previous configuration stays.
        client.change_settings(json!({"lanes": {"query": {"max_concurrency": 0}}}));
        let message = error_shown(&mut client).await;
        assert!(message.contains("workspace/configuration"), "{message}");
        assert!(message.contains("lanes.query.max_concurrency"), "{message}");
        assert!(
            message.contains("keeping the previous configuration"),
            "{message}"
        );
        let stats = stats(&client).await;
        assert_eq!(max_concurrency(&stats, Lane::Query), Some(9));
        assert_eq!(max_concurrency(&stats, Lane::Execute), Some(2));

        // An unknown key is refused the same way.
        client.change_settings(json!({"lanes": {"qeury": {"max_concurrency": 4}}}));
        let message = error_shown(&mut client).await;
        assert!(message.contains("qeury"), "{message}");
        client.shutdown_and_exit().await;
    })
    .await;
}

#[tokio::test]
async fn pushed_settings_apply_when_the_client_cannot_be_asked() {
    within(LIMIT, async {
        let dir = tempfile::tempdir().unwrap();
        let (client, _) = LspClient::initialized(ClientOptions::new(dir.path())).await;
        client
            .server
            .notify::<DidChangeConfiguration>(DidChangeConfigurationParams {
                settings: json!({"switchyard": {"lanes": {"generate": {"max_concurrency": 11}}}}),
            })
            .unwrap();
        until(&client, "the pushed limit", |s| {
            max_concurrency(s, Lane::Generate) == Some(11)
        })
        .await;
        // A bad initialization option is reported too, and the rest stays in force.
        client.shutdown_and_exit().await;
        let mut options = ClientOptions::new(dir.path());
        options.initialization_options =
            Some(json!({"lanes": {"query": {"max_concurrency": "many"}}}));
        let (mut client, _) = LspClient::initialized(options).await;
        let message = error_shown(&mut client).await;
        assert!(message.contains("initializationOptions"), "{message}");
        assert!(message.contains("invalid type"), "{message}");
        let stats = stats(&client).await;
        assert!(
            max_concurrency(&stats, Lane::Query) >= Some(16),
            "the default stays"
        );
        client.shutdown_and_exit().await;
    })
    .await;
}
