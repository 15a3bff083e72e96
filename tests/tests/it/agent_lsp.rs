//! The agent over LSP, end to end: `switchyard/ask` and `switchyard.ask` against the mock
//! model in both wire formats, with `switchyard/sessionUpdate` notifications (message
//! chunks, tool calls started before any finished, with lane, status and duration), work-done
//! progress, the editor's open buffer and selection in the prompt, a session continued and
//! then resumed by a restarted server, cancellation mid-stream, a 401 told plainly, and
//! `switchyard.analyzeWorkspace {llm: true}` with one module agent timing out.

use std::time::Duration;

use serde_json::{Value, json};
use switchyard::lanes::Lane;
use switchyard::lsp::ext::{
    AnalyzeWorkspace, AnalyzeWorkspaceParams, Ask, AskCommand, AskContext, AskParams, AskResult,
    Compact, CompactParams, ContentBlock, DeleteSession, DeleteSessionParams, ListSessions,
    ListSessionsParams, SessionUpdateParams, TokenUsage, ToolCallContent, ToolCallStatus, ToolKind,
    Update,
};
use switchyard_tests::lsp_client::lsp_types::notification::DidOpenTextDocument;
use switchyard_tests::lsp_client::lsp_types::{
    DidOpenTextDocumentParams, NumberOrString, ProgressParamsValue, TextDocumentItem,
    WindowClientCapabilities, WorkDoneProgress, WorkspaceClientCapabilities,
};
use switchyard_tests::lsp_client::{
    ClientOptions, Ext, LspClient, PATIENCE, ServerEvent, file_url, within,
};
use switchyard_tests::mock_model::{
    ErrorReply, MockModel, MockOptions, Response, Rule, Script, ToolCall, Usage, WindowReport,
};

const LIMIT: Duration = Duration::from_secs(90);

/// A workspace with two files, and a state directory for the sessions beside it.
struct Setup {
    root: tempfile::TempDir,
    state: tempfile::TempDir,
}

fn setup() -> Setup {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("src")).unwrap();
    std::fs::write(
        root.path().join("src/main.rs"),
        "fn main() {\n    println!(\"hello\");\n}\n",
    )
    .unwrap();
    std::fs::write(root.path().join("README.md"), "# Demo\n").unwrap();
    Setup {
        root,
        state: tempfile::tempdir().unwrap(),
    }
}

/// A client whose server talks to `model` in `provider`'s format, with work-done progress.
fn options(setup: &Setup, model: &MockModel, provider: &str) -> ClientOptions {
    let mut options = ClientOptions::new(setup.root.path());
    options.capabilities.window = Some(WindowClientCapabilities {
        work_done_progress: Some(true),
        ..WindowClientCapabilities::default()
    });
    let (url_var, url, key_var) = match provider {
        "anthropic" => (
            "ANTHROPIC_BASE_URL",
            model.anthropic_base_url(),
            "ANTHROPIC_API_KEY",
        ),
        _ => ("OPENAI_BASE_URL", model.openai_base_url(), "OPENAI_API_KEY"),
    };
    let env = [
        ("XDG_STATE_HOME", setup.state.path().display().to_string()),
        ("SWITCHYARD_PROVIDER", provider.to_string()),
        ("SWITCHYARD_MODEL", "mock-model".to_string()),
        (url_var, url),
        (key_var, "sk-lsp-key".to_string()),
        (
            "SWITCHYARD_LANES__GENERATE__RETRY__BASE_DELAY_MS",
            "10".to_string(),
        ),
        (
            "SWITCHYARD_LANES__GENERATE__RETRY__MAX_DELAY_MS",
            "50".to_string(),
        ),
    ];
    options.env = env.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    options
}

fn ask_params(prompt: &str) -> AskParams {
    AskParams {
        session_id: None,
        prompt: prompt.into(),
        context: None,
        model: None,
        provider: None,
        work_done_token: None,
    }
}

/// Every session update received so far, in order.
fn updates(client: &mut LspClient) -> Vec<SessionUpdateParams> {
    client.drain_events();
    client
        .history
        .iter()
        .filter_map(|e| match e {
            ServerEvent::SessionUpdate(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fn text_of(updates: &[SessionUpdateParams]) -> String {
    updates
        .iter()
        .filter_map(|u| match &u.update {
            Update::AgentMessageChunk {
                content: ContentBlock::Text { text },
            } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn tool_turn(rule: fn(Response) -> Rule) -> Vec<Rule> {
    vec![
        rule(
            Response::tool_calls(vec![
                ToolCall::new("read", json!({"path": "src/main.rs"})).with_id("call_read"),
                ToolCall::new("grep", json!({"pattern": "hello"})).with_id("call_grep"),
            ])
            .with_text("Let me look."),
        )
        .turn(0),
        rule(Response::text("It prints `hello`.")).turn(1),
    ]
}

#[tokio::test]
async fn ask_streams_updates_then_answers_over_the_openai_format() {
    within(LIMIT, async {
        let setup = setup();
        let model = MockModel::start(Script::new(tool_turn(Rule::openai))).await;
        let (mut client, init) =
            LspClient::initialized(options(&setup, &model, "openai")).await;
        let methods = init.capabilities.experimental.unwrap()["switchyard"]["methods"].clone();
        assert!(methods.as_array().unwrap().contains(&json!("switchyard/ask")));

        let token = NumberOrString::String("ask-1".into());
        let result = client
            .ext_request::<Ask>(AskParams {
                work_done_token: Some(switchyard::lsp::ls_types::NumberOrString::String(
                    "ask-1".into(),
                )),
                ..ask_params("What does main print?")
            })
            .await
            .unwrap();
        assert_eq!(result.text, "It prints `hello`.");
        assert_eq!(result.stop_reason, "end_turn");
        assert_eq!((result.turns, result.tool_calls), (2, 2));
        assert!(result.usage.input_tokens > 0);

        // Every notification of the run came before the answer.
        let updates = updates(&mut client);
        assert!(updates.iter().all(|u| u.session_id == result.session_id));
        assert_eq!(text_of(&updates), "Let me look.It prints `hello`.");
        let started: Vec<usize> = positions(&updates, |u| matches!(u, Update::ToolCall { .. }));
        let finished: Vec<usize> =
            positions(&updates, |u| matches!(u, Update::ToolCallUpdate { .. }));
        assert_eq!((started.len(), finished.len()), (2, 2));
        assert!(
            started.iter().max() < finished.iter().min(),
            "both calls started before either finished"
        );
        match &updates[started[0]].update {
            Update::ToolCall {
                tool_call_id,
                title,
                kind,
                status,
                raw_input,
                lane,
            } => {
                assert_eq!(tool_call_id, "call_read");
                assert_eq!(title, "read path=src/main.rs");
                assert_eq!(*kind, ToolKind::Read);
                assert_eq!(*status, ToolCallStatus::InProgress);
                assert_eq!(raw_input, &json!({"path": "src/main.rs"}));
                assert_eq!(*lane, Some(Lane::Query));
            }
            other => panic!("{other:?}"),
        }
        for at in &finished {
            let Update::ToolCallUpdate {
                status,
                content,
                lane,
                duration_ms,
                ..
            } = &updates[*at].update
            else {
                unreachable!()
            };
            assert_eq!((*status, *lane), (ToolCallStatus::Completed, Some(Lane::Query)));
            assert!(*duration_ms < PATIENCE.as_millis() as u64);
            let [ToolCallContent::Content { content: ContentBlock::Text { text } }] = &content[..]
            else {
                panic!("{content:?}")
            };
            assert!(!text.is_empty());
        }
        assert!(
            updates
                .iter()
                .any(|u| matches!(&u.update, Update::Usage { turn, .. } if turn.input_tokens == result.usage.input_tokens))
        );

        // Work-done progress under the client's token: begin ... end with the outcome.
        let progress: Vec<WorkDoneProgress> = client
            .history
            .iter()
            .filter_map(|e| match e {
                ServerEvent::Progress(p) if p.token == token => match &p.value {
                    ProgressParamsValue::WorkDone(v) => Some(v.clone()),
                },
                _ => None,
            })
            .collect();
        let Some(WorkDoneProgress::Begin(begin)) = progress.first() else {
            panic!("{progress:?}")
        };
        assert_eq!(begin.title, "Switchyard");
        assert_eq!(begin.message.as_deref(), Some("What does main print?"));
        let Some(WorkDoneProgress::End(end)) = progress.last() else {
            panic!("{progress:?}")
        };
        assert!(
            end.message
                .as_deref()
                .unwrap()
                .starts_with("answered after 2 model calls and 2 tool calls"),
            "{end:?}"
        );
        assert!(progress.iter().any(|p| matches!(p,
            WorkDoneProgress::Report(r) if r.message.as_deref().is_some_and(|m| m.contains("generate ")))));

        // The tool results went back in call order with matching ids.
        let requests = model.requests();
        let ids: Vec<&str> = requests[1]
            .messages()
            .iter()
            .filter(|m| m["role"] == "tool")
            .map(|m| m["tool_call_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["call_read", "call_grep"]);
        assert_eq!(requests[0].header("authorization"), Some("Bearer sk-lsp-key"));
        client.shutdown_and_exit().await;
    })
    .await;
}

fn positions(updates: &[SessionUpdateParams], pick: impl Fn(&Update) -> bool) -> Vec<usize> {
    updates
        .iter()
        .enumerate()
        .filter(|(_, u)| pick(&u.update))
        .map(|(i, _)| i)
        .collect()
}

#[tokio::test]
async fn the_ask_command_over_anthropic_sees_the_open_buffer_and_selection_and_continues_the_session()
 {
    within(LIMIT, async {
        let setup = setup();
        let model = MockModel::start(Script::new(vec![
            Rule::anthropic(Response::text("That line prints a greeting.")).turn(0),
            Rule::anthropic(Response::text("To greet the user.")).turn(1),
        ]))
        .await;
        let (client, _) = LspClient::initialized(options(&setup, &model, "anthropic")).await;
        // An unsaved buffer: the prompt must quote it, not the disk.
        let path = setup.root.path().join("src/main.rs");
        client
            .server
            .notify::<DidOpenTextDocument>(DidOpenTextDocumentParams {
                text_document: TextDocumentItem {
                    uri: file_url(&path),
                    language_id: "rust".into(),
                    version: 1,
                    text: "fn main() {\n    println!(\"unsaved greeting\");\n}\n".into(),
                },
            })
            .unwrap();
        let uri = file_url(&path).as_str().parse().unwrap();
        let first = client
            .command::<AskCommand>(AskParams {
                context: Some(AskContext {
                    file: Some(uri),
                    selection: Some(switchyard::lsp::ls_types::Range {
                        start: switchyard::lsp::ls_types::Position::new(1, 0),
                        end: switchyard::lsp::ls_types::Position::new(2, 0),
                    }),
                    selected_text: None,
                }),
                ..ask_params("What does this line do?")
            })
            .await
            .unwrap();
        assert_eq!(first.text, "That line prints a greeting.");
        let system = model.requests()[0].body["system"].as_str().unwrap().to_string();
        assert!(
            system.contains("`src/main.rs` open in the editor, with lines 2-2 selected.\n```\n    println!(\"unsaved greeting\");\n```"),
            "{system}"
        );
        assert!(system.contains(&setup.root.path().canonicalize().unwrap().display().to_string()));

        let second = client
            .command::<AskCommand>(AskParams {
                session_id: Some(first.session_id.clone()),
                ..ask_params("Why?")
            })
            .await
            .unwrap();
        assert_eq!(second.session_id, first.session_id);
        assert_eq!(second.text, "To greet the user.");
        let texts: Vec<Value> = model.requests()[1]
            .messages()
            .iter()
            .map(|m| m["content"][0]["text"].clone())
            .collect();
        assert_eq!(
            texts,
            [
                json!("What does this line do?"),
                json!("That line prints a greeting."),
                json!("Why?")
            ]
        );
        client.shutdown_and_exit().await;
    })
    .await;
}

#[tokio::test]
async fn a_session_is_resumed_after_the_server_restarts() {
    within(LIMIT, async {
        let setup = setup();
        let model = MockModel::start(Script::new(vec![
            Rule::openai(Response::text("First answer.")).turn(0),
            Rule::openai(Response::text("Second answer.")).turn(1),
        ]))
        .await;
        let (client, _) = LspClient::initialized(options(&setup, &model, "openai")).await;
        let first = client
            .ext_request::<Ask>(ask_params("First question."))
            .await
            .unwrap();
        client.shutdown_and_exit().await;

        let (client, _) = LspClient::initialized(options(&setup, &model, "openai")).await;
        let second = client
            .ext_request::<Ask>(AskParams {
                session_id: Some(first.session_id.clone()),
                ..ask_params("Second question.")
            })
            .await
            .unwrap();
        assert_eq!(second.text, "Second answer.");
        let contents: Vec<Value> = model.requests()[1]
            .messages()
            .iter()
            .filter(|m| m["role"] != "system")
            .map(|m| m["content"].clone())
            .collect();
        assert_eq!(
            contents,
            [
                json!("First question."),
                json!("First answer."),
                json!("Second question.")
            ]
        );
        let unknown = client
            .ext_request::<Ask>(AskParams {
                session_id: Some("nope".into()),
                ..ask_params("Hm?")
            })
            .await
            .unwrap_err();
        assert_eq!(unknown.code.0, -32602);
        assert!(
            unknown.message.contains("no session `nope`"),
            "{}",
            unknown.message
        );
        client.shutdown_and_exit().await;
    })
    .await;
}

#[tokio::test]
async fn cancel_request_mid_stream_drops_the_model_request_and_the_session_goes_on() {
    within(LIMIT, async {
        let setup = setup();
        let model = MockModel::start(Script::new(vec![
            Rule::openai(
                Response::text("Streaming slowly. ".repeat(50))
                    .chunk_size(4)
                    .chunk_delay_ms(300),
            )
            .contains("first question"),
            Rule::openai(Response::text("Back.")).contains("second question"),
        ]))
        .await;
        let (mut client, _) = LspClient::initialized(options(&setup, &model, "openai")).await;
        let server = client.server.clone();
        let pending = tokio::spawn(async move {
            server
                .request::<Ext<Ask>>(ask_params("first question"))
                .await
        });
        let chunk = client
            .event("the first message chunk", |e| {
                matches!(e, ServerEvent::SessionUpdate(u) if matches!(u.update, Update::AgentMessageChunk { .. }))
            })
            .await;
        let ServerEvent::SessionUpdate(chunk) = chunk else {
            unreachable!()
        };
        let id = client.sent_request_id("switchyard/ask").await;
        client.cancel_request(id);
        let answer = tokio::time::timeout(PATIENCE, pending).await.unwrap().unwrap();
        match answer {
            Err(switchyard_tests::lsp_client::ClientError::Response(e)) => {
                assert_eq!(e.code.0, -32800, "{e:?}")
            }
            other => panic!("expected RequestCancelled, got {other:?}"),
        }
        model.wait_for_in_flight(0, PATIENCE).await;

        let result: AskResult = client
            .ext_request::<Ask>(AskParams {
                session_id: Some(chunk.session_id.clone()),
                ..ask_params("second question")
            })
            .await
            .unwrap();
        assert_eq!(result.text, "Back.");
        client.shutdown_and_exit().await;
    })
    .await;
}

#[tokio::test]
async fn a_401_is_a_request_failure_that_says_what_to_fix() {
    within(LIMIT, async {
        let setup = setup();
        let model = MockModel::start(Script::new(vec![
            Rule::openai(Response::error(ErrorReply::new(401))).repeat(),
        ]))
        .await;
        let (client, _) = LspClient::initialized(options(&setup, &model, "openai")).await;
        let error = client
            .ext_request::<Ask>(ask_params("hello"))
            .await
            .unwrap_err();
        assert_eq!(error.code.0, -32803);
        assert!(
            error.message.starts_with(&format!(
                "the API key was rejected (401) by {}/chat/completions: set OPENAI_API_KEY or llm.api_key",
                model.openai_base_url()
            )),
            "{}",
            error.message
        );
        assert!(!error.message.contains("sk-lsp-key"));
        assert_eq!(model.requests().len(), 1, "a 401 is not retried");
        client.shutdown_and_exit().await;
    })
    .await;
}

#[tokio::test]
async fn without_a_model_ask_says_how_to_configure_one_and_the_editor_can_set_it() {
    within(LIMIT, async {
        let setup = setup();
        let model = MockModel::start(Script::new(vec![
            Rule::openai(Response::text("Configured.")).repeat(),
        ]))
        .await;
        let mut options = options(&setup, &model, "openai");
        options.env.retain(|(key, _)| key != "SWITCHYARD_MODEL");
        options.env.push(("SWITCHYARD_MODEL".into(), String::new()));
        options.capabilities.workspace = Some(WorkspaceClientCapabilities {
            configuration: Some(true),
            ..WorkspaceClientCapabilities::default()
        });
        let (client, _) = LspClient::initialized(options).await;
        let error = client
            .ext_request::<Ask>(ask_params("hello"))
            .await
            .unwrap_err();
        assert_eq!(error.code.0, -32803);
        assert_eq!(
            error.message,
            "no model configured: set llm.model in .switchyard.toml or SWITCHYARD_MODEL"
        );
        assert!(model.requests().is_empty());

        // The editor's settings name a model: the next ask uses it.
        client.change_settings(json!({"llm": {"model": "mock-model"}}));
        let deadline = tokio::time::Instant::now() + PATIENCE;
        let answer = loop {
            match client.ext_request::<Ask>(ask_params("hello")).await {
                Ok(answer) => break answer,
                Err(e) if e.message.starts_with("no model configured") => {
                    assert!(
                        tokio::time::Instant::now() < deadline,
                        "the setting never applied"
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("{e:?}"),
            }
        };
        assert_eq!(answer.text, "Configured.");
        assert_eq!(model.requests()[0].body["model"], "mock-model");
        client.shutdown_and_exit().await;
    })
    .await;
}

#[tokio::test]
async fn analyze_workspace_with_llm_reports_module_notes_a_timeout_and_the_summary() {
    within(LIMIT, async {
        let setup = setup();
        for name in ["alpha", "beta"] {
            let dir = setup.root.path().join(name);
            std::fs::create_dir_all(dir.join("src")).unwrap();
            std::fs::write(
                dir.join("Cargo.toml"),
                format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\n"),
            )
            .unwrap();
            std::fs::write(dir.join("src/lib.rs"), format!("pub fn {name}() {{}}\n")).unwrap();
        }
        let model = MockModel::start(Script::new(vec![
            Rule::openai(Response::text("Alpha notes.")).contains("module `alpha`"),
            Rule::openai(Response::hang()).contains("module `beta`"),
            Rule::openai(Response::text("Two crates.")).contains("Write the summary"),
        ]))
        .await;
        let mut options = options(&setup, &model, "openai");
        options.env.push((
            "SWITCHYARD_AGENT__ENSEMBLE__MODULE_TIMEOUT_MS".into(),
            "1500".into(),
        ));
        let (client, _) = LspClient::initialized(options).await;
        let result = client
            .command::<AnalyzeWorkspace>(AnalyzeWorkspaceParams {
                llm: true,
                ..AnalyzeWorkspaceParams::default()
            })
            .await
            .unwrap();
        assert_eq!(result.notice, None);
        let ensemble = result.ensemble.unwrap();
        assert_eq!(ensemble["summary"], "Two crates.");
        let outcomes: Vec<(&str, &str)> = ensemble["modules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap(),
                    m["outcome"]["status"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(outcomes, [("alpha", "done"), ("beta", "timed_out")]);
        assert!(
            result.markdown.starts_with("# Workspace analysis"),
            "{}",
            result.markdown
        );
        assert!(result.markdown.contains("## Summary\n\nTwo crates.\n"));
        assert!(result.markdown.contains("### alpha (`alpha`)\n\nAlpha notes.\n"));
        let written = std::fs::read_to_string(setup.root.path().join(".switchyard/analysis.md"))
            .unwrap();
        assert_eq!(written, result.markdown);
        model.wait_for_in_flight(0, PATIENCE).await;

        // Without a provider: the analysis alone, and a notice that says why.
        let empty = MockModel::start(Script::new(vec![])).await;
        let mut options = options_without_model(&setup, &empty);
        options.root = setup.root.path().to_path_buf();
        let (client2, _) = LspClient::initialized(options).await;
        let alone = client2
            .command::<AnalyzeWorkspace>(AnalyzeWorkspaceParams {
                llm: true,
                ..AnalyzeWorkspaceParams::default()
            })
            .await
            .unwrap();
        assert_eq!(alone.ensemble, None);
        assert_eq!(
            alone.notice.as_deref(),
            Some(
                "no model provider, so no module agents: no model configured: set llm.model in .switchyard.toml or SWITCHYARD_MODEL"
            )
        );
        assert!(!alone.markdown.contains("## Summary"));
        client2.shutdown_and_exit().await;
        client.shutdown_and_exit().await;
    })
    .await;
}

fn options_without_model(setup: &Setup, model: &MockModel) -> ClientOptions {
    let mut options = options(setup, model, "openai");
    options.env.retain(|(key, _)| key != "SWITCHYARD_MODEL");
    options.env.push(("SWITCHYARD_MODEL".into(), String::new()));
    options
}

#[tokio::test]
async fn usage_is_streamed_and_answered_per_turn_and_session_and_sessions_are_listed_and_deleted() {
    within(LIMIT, async {
        let setup = setup();
        let config = setup.state.path().join("config/switchyard");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::write(
            config.join("config.toml"),
            "[llm.pricing.\"mock-model\"]\ninput = 2.0\noutput = 8.0\ncached_input = 0.5\n",
        )
        .unwrap();
        let mut cached = Response::text("First answer.");
        cached.usage = Some(Usage {
            input_tokens: 200,
            output_tokens: 100,
            cache_read_input_tokens: 800,
            cache_creation_input_tokens: 0,
        });
        let model = MockModel::start(Script::new(vec![
            Rule::openai(cached).turn(0),
            Rule::openai(Response::text("Second answer.").usage(500, 50)).turn(1),
        ]))
        .await;
        let mut options = options(&setup, &model, "openai");
        options.env.push((
            "XDG_CONFIG_HOME".into(),
            setup.state.path().join("config").display().to_string(),
        ));
        let (mut client, _) = LspClient::initialized(options).await;
        let first = client
            .ext_request::<Ask>(ask_params("First question."))
            .await
            .unwrap();
        assert_eq!(first.turn, 1);
        let expected_first = TokenUsage {
            input_tokens: 1000,
            output_tokens: 100,
            cached_tokens: 800,
            cost_usd: Some(0.0016),
        };
        assert_usage(first.usage, expected_first);
        assert_usage(first.session_usage, expected_first);
        let second = client
            .ext_request::<Ask>(AskParams {
                session_id: Some(first.session_id.clone()),
                ..ask_params("Second question.")
            })
            .await
            .unwrap();
        assert_eq!(second.turn, 2);
        assert_usage(
            second.usage,
            TokenUsage {
                input_tokens: 500,
                output_tokens: 50,
                cached_tokens: 0,
                cost_usd: Some(0.0014),
            },
        );
        let session_total = TokenUsage {
            input_tokens: 1500,
            output_tokens: 150,
            cached_tokens: 800,
            cost_usd: Some(0.003),
        };
        assert_usage(second.session_usage, session_total);
        let streamed: Vec<TokenUsage> = updates(&mut client)
            .into_iter()
            .filter_map(|u| match u.update {
                Update::Usage { session, .. } => Some(session),
                _ => None,
            })
            .collect();
        assert_eq!(streamed.len(), 2, "one `usage` update per model call");
        assert_usage(streamed[1], session_total);

        let listed = client
            .ext_request::<ListSessions>(ListSessionsParams {})
            .await
            .unwrap();
        let [summary] = &listed.sessions[..] else {
            panic!("{listed:?}")
        };
        assert_eq!(summary.session_id, first.session_id);
        assert_eq!(
            (summary.title.as_str(), summary.turns),
            ("First question.", 2)
        );
        assert_usage(summary.usage, session_total);

        client
            .ext_request::<DeleteSession>(DeleteSessionParams {
                session_id: first.session_id.clone(),
            })
            .await
            .unwrap();
        let listed = client
            .ext_request::<ListSessions>(ListSessionsParams {})
            .await
            .unwrap();
        assert!(listed.sessions.is_empty(), "{listed:?}");
        let again = client
            .ext_request::<DeleteSession>(DeleteSessionParams {
                session_id: first.session_id.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(again.code.0, -32602);
        assert!(again.message.contains("no session"), "{}", again.message);
        let resumed = client
            .ext_request::<Ask>(AskParams {
                session_id: Some(first.session_id.clone()),
                ..ask_params("Third?")
            })
            .await
            .unwrap_err();
        assert_eq!(
            resumed.code.0, -32602,
            "a deleted session cannot be resumed"
        );
        client.shutdown_and_exit().await;
    })
    .await;
}

#[tokio::test]
async fn the_compact_command_summarizes_a_session_on_demand_and_streams_the_compaction() {
    within(LIMIT, async {
        let setup = setup();
        let summarizer = "You compact the conversation of a coding agent";
        let model = MockModel::start(Script::new(vec![
            Rule::openai(Response::text("Two questions, both answered.").usage(300, 20))
                .contains(summarizer)
                .times(1),
            Rule::openai(Response::text("First answer.")).times(1),
            Rule::openai(Response::text("Second answer.")).times(1),
            Rule::openai(Response::text("Third answer.")).times(1),
        ]))
        .await;
        let (mut client, _) = LspClient::initialized(options(&setup, &model, "openai")).await;
        let first = client
            .ext_request::<Ask>(ask_params("First question."))
            .await
            .unwrap();
        let session = first.session_id.clone();
        let ask = |prompt: &str| AskParams {
            session_id: Some(session.clone()),
            ..ask_params(prompt)
        };
        client
            .ext_request::<Ask>(ask("Second question."))
            .await
            .unwrap();
        let compacted = client
            .command::<Compact>(CompactParams {
                session_id: session.clone(),
            })
            .await
            .unwrap();
        assert!(compacted.compacted, "{compacted:?}");
        assert_eq!((compacted.replaced, compacted.kept), (2, 2));
        assert_eq!(
            (compacted.usage.input_tokens, compacted.usage.output_tokens),
            (300, 20)
        );
        let streamed: Vec<(usize, usize)> = updates(&mut client)
            .into_iter()
            .filter(|u| u.session_id == session)
            .filter_map(|u| match u.update {
                Update::Compaction {
                    replaced_messages,
                    kept_messages,
                } => Some((replaced_messages, kept_messages)),
                _ => None,
            })
            .collect();
        assert_eq!(streamed, [(2, 2)]);

        let third = client
            .ext_request::<Ask>(ask("Third question."))
            .await
            .unwrap();
        assert_eq!(third.text, "Third answer.");
        assert_eq!(
            third.session_usage.input_tokens,
            compacted.session_usage.input_tokens + third.usage.input_tokens,
            "the summary counts in the session's usage"
        );
        let requests = model.requests();
        assert_eq!(requests.len(), 4);
        assert!(requests[2].raw_body.contains(summarizer));
        let sent = requests[3].messages();
        // The system prompt, the summary, the last exchange, the new prompt.
        assert_eq!(sent.len(), 5, "{sent:#?}");
        let head = sent[1]["content"].as_str().unwrap();
        assert!(
            head.contains("compacted by Switchyard") && head.contains("First question."),
            "{head}"
        );
        assert_eq!(sent[2]["content"], "Second question.");

        let unknown = client
            .command::<Compact>(CompactParams {
                session_id: "0123456789abcdef".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(unknown.code.0, -32602);
        assert!(
            unknown.message.starts_with("switchyard.compact: ")
                && unknown.message.contains("0123456789abcdef"),
            "{}",
            unknown.message
        );
        client.shutdown_and_exit().await;
    })
    .await;
}

/// Token counts equal, and costs equal to the cent's hundredth.
fn assert_usage(got: TokenUsage, want: TokenUsage) {
    let (mut a, mut b) = (got, want);
    let close = match (a.cost_usd.take(), b.cost_usd.take()) {
        (Some(x), Some(y)) => (x - y).abs() < 1e-9,
        (x, y) => x == y,
    };
    assert!(a == b && close, "got {got:?}, want {want:?}");
}

#[tokio::test]
async fn the_nearest_agents_md_to_the_open_file_applies_on_top_of_the_roots() {
    within(LIMIT, async {
        let setup = setup();
        std::fs::write(setup.root.path().join("AGENTS.md"), "Root rule.\n").unwrap();
        std::fs::write(setup.root.path().join("src/AGENTS.md"), "Source rule.\n").unwrap();
        std::fs::create_dir(setup.root.path().join("docs")).unwrap();
        std::fs::write(setup.root.path().join("docs/AGENTS.md"), "Docs rule.\n").unwrap();
        let model = MockModel::start(Script::new(vec![
            Rule::anthropic(Response::text("Noted.")).repeat(),
        ]))
        .await;
        let (client, _) = LspClient::initialized(options(&setup, &model, "anthropic")).await;
        let uri = file_url(&setup.root.path().join("src/main.rs"))
            .as_str()
            .parse()
            .unwrap();
        client
            .ext_request::<Ask>(AskParams {
                context: Some(AskContext {
                    file: Some(uri),
                    selection: None,
                    selected_text: None,
                }),
                ..ask_params("What applies here?")
            })
            .await
            .unwrap();
        client
            .ext_request::<Ask>(ask_params("And with no file open?"))
            .await
            .unwrap();
        let system = |at: usize| {
            model.requests()[at].body["system"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let with_file = system(0);
        let root = with_file
            .find("--- AGENTS.md ---\nRoot rule.")
            .expect(&with_file);
        let nearest = with_file
            .find("--- src/AGENTS.md ---\nSource rule.")
            .expect(&with_file);
        assert!(root < nearest, "{with_file}");
        assert!(!with_file.contains("Docs rule."), "{with_file}");
        let without = system(1);
        assert!(
            without.contains("Root rule.") && !without.contains("Source rule."),
            "{without}"
        );
        client.shutdown_and_exit().await;
    })
    .await;
}

#[tokio::test]
async fn rewind_restores_the_buffer_in_one_apply_edit_and_refuses_text_typed_since_unless_forced() {
    use switchyard::lsp::ext::{Rewind, RewindParams};
    use switchyard_tests::lsp_client::lsp_types::{
        ClientCapabilities, ResourceOperationKind, WorkspaceEditClientCapabilities,
    };
    within(LIMIT, async {
        let setup = setup();
        let main = setup.root.path().join("src/main.rs");
        let original = std::fs::read_to_string(&main).unwrap();
        let model = MockModel::start(Script::new(vec![
            Rule::openai(Response::tool_calls(vec![ToolCall::new(
                "edit",
                json!({"path": "src/main.rs", "old_string": "hello", "new_string": "bye"}),
            )]))
            .turn(0),
            Rule::openai(Response::text("Said bye.")).turn(1),
        ]))
        .await;
        let mut options = options(&setup, &model, "openai");
        options.capabilities = ClientCapabilities {
            workspace: Some(WorkspaceClientCapabilities {
                apply_edit: Some(true),
                workspace_edit: Some(WorkspaceEditClientCapabilities {
                    document_changes: Some(true),
                    resource_operations: Some(vec![
                        ResourceOperationKind::Create,
                        ResourceOperationKind::Rename,
                        ResourceOperationKind::Delete,
                    ]),
                    ..WorkspaceEditClientCapabilities::default()
                }),
                ..WorkspaceClientCapabilities::default()
            }),
            ..ClientCapabilities::default()
        };
        let (mut client, _) = LspClient::initialized(options).await;
        let asked = client
            .ext_request::<Ask>(ask_params("Say bye."))
            .await
            .unwrap();
        let buffer = |client: &LspClient| client.editor.lock().text(&main).map(str::to_string);
        assert_eq!(buffer(&client).unwrap(), original.replace("hello", "bye"));
        let edits = |client: &mut LspClient| {
            client.drain_events();
            client
                .history
                .iter()
                .filter(|e| matches!(e, ServerEvent::ApplyEdit(_)))
                .count()
        };
        assert_eq!(edits(&mut client), 1);

        // The user types in the buffer the agent changed: the rewind will not clobber it.
        client.editor.lock().type_text(&main, "// mine\n");
        let params = |force: bool| RewindParams {
            session_id: asked.session_id.clone(),
            turn: 1,
            only: None,
            force,
        };
        let refused = client
            .ext_request::<Rewind>(params(false))
            .await
            .unwrap_err();
        assert!(
            refused
                .message
                .contains("not rewound: src/main.rs has changed since the agent left it"),
            "{}",
            refused.message
        );
        assert_eq!(edits(&mut client), 1, "nothing was sent");

        let done = client.ext_request::<Rewind>(params(true)).await.unwrap();
        assert_eq!(done.restored, ["src/main.rs"]);
        assert!(done.conversation && done.not_restorable.is_empty());
        assert_eq!(edits(&mut client), 2, "one workspace/applyEdit");
        assert_eq!(buffer(&client).unwrap(), original);
        assert_eq!(
            std::fs::read_to_string(&main).unwrap(),
            original,
            "the server never writes"
        );
        let listed = client
            .ext_request::<ListSessions>(ListSessionsParams {})
            .await
            .unwrap();
        assert_eq!(
            listed.sessions[0].turns, 0,
            "the conversation is back at turn 1"
        );
        let again = client
            .ext_request::<Rewind>(params(false))
            .await
            .unwrap_err();
        assert_eq!(again.code.0, -32602);
        assert!(
            again.message.contains("has no turns to rewind"),
            "{}",
            again.message
        );
        client.shutdown_and_exit().await;
    })
    .await;
}

/// The tool result the model was sent in the last request matching `prompt`.
fn tool_result(model: &MockModel, prompt: &str) -> String {
    let requests = model.requests();
    let request = requests
        .iter()
        .rev()
        .find(|r| r.raw_body.contains(prompt))
        .expect("a request of the prompt");
    request
        .messages()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["content"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test]
async fn in_review_mode_only_the_hunks_the_user_accepts_land_and_the_model_is_told_the_rest() {
    within(LIMIT, async {
        let setup = setup();
        let lib = setup.root.path().join("src/lib.rs");
        let original = "fn a() -> u32 {\n    1\n}\n\nfn b() -> u32 {\n    2\n}\n";
        std::fs::write(&lib, original).unwrap();
        let proposed = original
            .replace("    1\n", "    10\n")
            .replace("    2\n", "    20\n");
        let model =
            MockModel::start(Script::new(vec![
            Rule::openai(Response::tool_calls(vec![
                ToolCall::new("write", json!({"path": "src/lib.rs", "content": proposed}))
                    .with_id("call_write"),
            ]))
            .contains("Make both bigger.")
            .turn(0),
            Rule::openai(Response::text("Made a bigger.")).contains("Make both bigger.").turn(1),
            Rule::openai(Response::tool_calls(vec![ToolCall::new(
                "edit",
                json!({"path": "src/lib.rs", "old_string": "    2\n", "new_string": "    200\n"}),
            )]))
            .contains("Make b huge.")
            .turn(0),
            Rule::openai(Response::text("Left it.")).contains("Make b huge.").turn(1),
            Rule::openai(Response::tool_calls(vec![ToolCall::new(
                "edit",
                json!({"path": "src/lib.rs", "old_string": "fn b", "new_string": "fn c"}),
            )]))
            .contains("Rename b.")
            .turn(0),
            Rule::openai(Response::text("Could not.")).contains("Rename b.").turn(1),
        ]))
            .await;
        let mut options = options(&setup, &model, "openai");
        options.capabilities.workspace = Some(WorkspaceClientCapabilities {
            apply_edit: Some(true),
            ..WorkspaceClientCapabilities::default()
        });
        options.initialization_options = Some(json!({"review": "changes"}));
        let (mut client, _) = LspClient::initialized(options).await;
        let buffer = |client: &LspClient| client.editor.lock().text(&lib).map(str::to_string);
        let events = |client: &mut LspClient| {
            client.drain_events();
            client.history.clone()
        };

        // Two hunks proposed; the user accepts the first only.
        client.editor.lock().review_answers.push_back(Ok(vec![0]));
        let asked = client
            .ext_request::<Ask>(ask_params("Make both bigger."))
            .await
            .unwrap();
        assert_eq!(asked.text, "Made a bigger.");
        let reviews: Vec<_> = events(&mut client)
            .into_iter()
            .filter_map(|e| match e {
                ServerEvent::ReviewChange(p) => Some(p),
                _ => None,
            })
            .collect();
        assert_eq!(reviews.len(), 1);
        let review = &reviews[0];
        assert_eq!(review.tool, "write");
        assert_eq!(review.call_id.as_deref(), Some("call_write"));
        assert_eq!(
            review.session_id.as_deref(),
            Some(asked.session_id.as_str())
        );
        assert_eq!(review.uri.as_str(), file_url(&lib).as_str());
        assert_eq!(
            (review.old_text.as_str(), review.new_text.as_str()),
            (original, proposed.as_str())
        );
        let hunks: Vec<_> = review
            .hunks
            .iter()
            .map(|h| {
                (
                    h.index,
                    h.old_start,
                    h.old_lines,
                    h.new_start,
                    h.new_lines,
                    h.old_text.as_str(),
                    h.new_text.as_str(),
                )
            })
            .collect();
        assert_eq!(
            hunks,
            [
                (0, 1, 1, 1, 1, "    1\n", "    10\n"),
                (1, 5, 1, 5, 1, "    2\n", "    20\n")
            ]
        );
        assert_eq!(
            buffer(&client).unwrap(),
            original.replace("    1\n", "    10\n"),
            "the buffer holds exactly the accepted hunk"
        );
        assert_eq!(
            std::fs::read_to_string(&lib).unwrap(),
            original,
            "the server never writes"
        );
        let result = tool_result(&model, "Make both bigger.");
        assert!(
            result.contains("applied 1 of 2 — hunk 1 (line 2: `10`)")
                && result.contains("Rejected, so not in the file: hunk 2 (line 6: `20`)"),
            "{result}"
        );

        // Nothing accepted: the call fails and says so.
        client.editor.lock().review_answers.push_back(Ok(vec![]));
        client
            .ext_request::<Ask>(ask_params("Make b huge."))
            .await
            .unwrap();
        let result = tool_result(&model, "Make b huge.");
        assert!(
            result.contains("the user rejected the change to `src/lib.rs`"),
            "{result}"
        );

        // An editor error is a rejection too, with why.
        client
            .editor
            .lock()
            .review_answers
            .push_back(Err("the review was closed".into()));
        client
            .ext_request::<Ask>(ask_params("Rename b."))
            .await
            .unwrap();
        let result = tool_result(&model, "Rename b.");
        assert!(
            result.contains(
                "was not applied: it was sent to the user for review, and no answer came"
            ) && result.contains("the review was closed"),
            "{result}"
        );

        assert_eq!(
            buffer(&client).unwrap(),
            original.replace("    1\n", "    10\n"),
            "rejected changes never reach the buffer"
        );
        let history = events(&mut client);
        let count = |pick: fn(&ServerEvent) -> bool| history.iter().filter(|e| pick(e)).count();
        assert_eq!(count(|e| matches!(e, ServerEvent::ReviewChange(_))), 3);
        assert_eq!(
            count(|e| matches!(e, ServerEvent::ApplyEdit(_))),
            1,
            "one workspace/applyEdit"
        );
        assert_eq!(
            count(|e| matches!(e, ServerEvent::ShowMessageRequest(_))),
            0,
            "review replaces the approval prompt"
        );
        client.shutdown_and_exit().await;
    })
    .await;
}

/// The long-session test of the CLI, through the language server: 110 turns that each read
/// a large file against a 4,000-token window that only the server's `/v1/models` reports
/// (no `llm.context_window`): no request over the window, the answer arrives, the
/// compactions stream as session updates.
#[tokio::test]
async fn a_long_lsp_session_stays_within_the_window_the_server_reports() {
    const WINDOW: u64 = 4_000;
    const READS: u32 = 110;
    within(Duration::from_secs(180), async {
        let setup = setup();
        switchyard_tests::write_big_file(setup.root.path());
        let model = MockModel::start_with(
            switchyard_tests::rereading_script(
                READS,
                "Read big.txt again and again.",
                "Final answer: a large file.",
            ),
            MockOptions {
                context_window: Some(WINDOW),
                reports_window: Some(WindowReport::Vllm),
                ..MockOptions::default()
            },
        )
        .unwrap();
        let mut options = options(&setup, &model, "openai");
        options
            .env
            .push(("SWITCHYARD_AGENT__MAX_TURNS".into(), "200".into()));
        let (mut client, _) = LspClient::initialized(options).await;
        let answer = client
            .ext_request::<Ask>(ask_params("Read big.txt until told otherwise."))
            .await
            .unwrap();
        assert_eq!(answer.text, "Final answer: a large file.");
        let compactions = updates(&mut client)
            .into_iter()
            .filter(|u| matches!(u.update, Update::Compaction { .. }))
            .count();
        let requests = model.requests();
        let summaries = switchyard_tests::summaries_within(&requests, WINDOW);
        assert!(
            summaries >= 5,
            "the summary requests are in the log: {summaries}"
        );
        assert_eq!(compactions, summaries, "each compaction streamed");
        assert_eq!(requests.len() - summaries, READS as usize + 1);
        assert!(
            model.probes().iter().any(|p| p == "GET /v1/models 200"),
            "the window was asked of the server: {:?}",
            model.probes()
        );
        client.shutdown_and_exit().await;
    })
    .await;
}

/// A server that refuses a prompt as too long (OpenAI's `context_length_exceeded`, the
/// agent believing in twice the server's window), through the language server: the
/// session compacts and retries, and the answer arrives.
#[tokio::test]
async fn a_context_length_error_compacts_and_retries_over_lsp() {
    within(LIMIT, async {
        let setup = setup();
        switchyard_tests::write_big_file(setup.root.path());
        let model = MockModel::start_with(
            switchyard_tests::rereading_script(30, "Read big.txt repeatedly.", "Done reading."),
            MockOptions {
                context_window: Some(4_000),
                ..MockOptions::default()
            },
        )
        .unwrap();
        let mut options = options(&setup, &model, "openai");
        options
            .env
            .push(("SWITCHYARD_LLM__CONTEXT_WINDOW".into(), "8000".into()));
        let (client, _) = LspClient::initialized(options).await;
        let answer = client
            .ext_request::<Ask>(ask_params("Read big.txt thirty times."))
            .await
            .unwrap();
        assert_eq!(answer.text, "Done reading.");
        let requests = model.requests();
        switchyard_tests::assert_refusals_compacted_and_retried(&requests);
        client.shutdown_and_exit().await;
    })
    .await;
}

mod thoughts;
