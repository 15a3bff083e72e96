//! Model timeouts (issue 11, item 7): a model server that never answers ends in a clear error
//! within `llm.request_budget`, after a bounded number of attempts, saying what was waited
//! for; a `Retry-After` beyond `llm.max_retry_after` (or beyond what the budget has left) is
//! a clear error at once, not a silent wait. Budgets are set small; nothing here measures
//! wall-clock time.

use switchyard_tests::mock_model::{ErrorReply, MockModel, Response, Rule, Script};

use super::trust::{Home, Output};

fn ask(home: &Home, model: &MockModel, env: &[(&str, &str)]) -> Output {
    let mut command = home.command(Some(model), &["ask", "--cwd"]);
    command.arg(home.root.path()).arg("Anything?");
    for (key, value) in env {
        command.env(key, value);
    }
    super::trust::run(command)
}

#[test]
fn a_server_that_never_sends_headers_fails_within_the_budget_after_few_attempts() {
    let home = Home::new();
    // Headers after ten minutes: never, for this test.
    let model = MockModel::start_with(
        Script::new(vec![
            Rule::openai(Response::text("late").delay_ms(600_000)).repeat(),
        ]),
        Default::default(),
    )
    .unwrap();
    let out = ask(
        &home,
        &model,
        &[
            ("SWITCHYARD_LLM__FIRST_BYTE_TIMEOUT", "0.3"),
            ("SWITCHYARD_LLM__REQUEST_BUDGET", "1"),
            // More attempts than the budget allows: the budget must be what ends it.
            ("SWITCHYARD_LANES__GENERATE__RETRY__MAX_ATTEMPTS", "100"),
        ],
    );
    assert_eq!(out.code, Some(1), "stdout: {}", out.stdout);
    let url = format!("{}/chat/completions", model.openai_base_url());
    assert!(
        out.stderr.contains(&format!(
            "the model API at {url} did not finish answering within 1 s (llm.request_budget), retries included"
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!(
            "waiting up to 0.3 s for the first byte of the answer from {url}"
        )),
        "what is awaited is said: {}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("sent no response headers within 0.3 s (llm.first_byte_timeout); retrying"),
        "{}",
        out.stderr
    );
    // 0.3 s per attempt within 1 s: at most four attempts (the last one cut by the budget).
    let attempts = model.requests().len();
    assert!((2..=4).contains(&attempts), "{attempts} attempts");
}

#[test]
fn a_retry_after_beyond_the_cap_is_a_clear_error_without_waiting() {
    let home = Home::new();
    let model = MockModel::start_with(
        switchyard_tests::rate_limited_then(3600, "never reached"),
        Default::default(),
    )
    .unwrap();
    let out = ask(&home, &model, &[]);
    assert_eq!(out.code, Some(1), "stdout: {}", out.stdout);
    assert!(
        out.stderr.contains(
            "the provider asked to wait 3600 s, more than the 60 s allowed by llm.max_retry_after"
        ),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("retrying"), "{}", out.stderr);
    assert_eq!(model.requests().len(), 1);
}

#[test]
fn a_retry_after_beyond_the_budget_left_is_a_clear_error_without_waiting() {
    let home = Home::new();
    let model = MockModel::start_with(
        Script::new(vec![
            Rule::openai(Response::error(ErrorReply::new(503).retry_after(30))),
            Rule::openai(Response::text("never reached")),
        ]),
        Default::default(),
    )
    .unwrap();
    let out = ask(
        &home,
        &model,
        &[
            ("SWITCHYARD_LLM__REQUEST_BUDGET", "5"),
            ("SWITCHYARD_LLM__MAX_RETRY_AFTER", "120"),
        ],
    );
    assert_eq!(out.code, Some(1), "stdout: {}", out.stdout);
    assert!(
        out.stderr
            .contains("the provider asked to wait 30 s, more than the"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("left of this request's llm.request_budget"),
        "{}",
        out.stderr
    );
    assert_eq!(model.requests().len(), 1);
}

#[test]
fn a_retry_after_within_the_cap_is_announced_then_waited() {
    let home = Home::new();
    let model = MockModel::start_with(
        Script::new(vec![
            Rule::openai(Response::error(ErrorReply::new(429).retry_after(1))),
            Rule::openai(Response::text("Worth the wait.")),
        ]),
        Default::default(),
    )
    .unwrap();
    let out = ask(&home, &model, &[]);
    assert_eq!(out.code, Some(0), "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "Worth the wait.\n");
    assert!(
        out.stderr.contains(
            "switchyard: waiting up to 1 s for the end of the wait the provider asked for (Retry-After) before attempt 2"
        ),
        "{}",
        out.stderr
    );
    assert_eq!(model.requests().len(), 2);
}

#[tokio::test]
async fn the_editor_is_told_what_the_model_call_waits_for() {
    use switchyard::lsp::ext::{Ask, AskParams, Update};
    use switchyard_tests::lsp_client::{ClientOptions, LspClient, ServerEvent, within};

    within(std::time::Duration::from_secs(90), async {
        let root = tempfile::tempdir().unwrap();
        let model = MockModel::start(Script::new(vec![
            Rule::openai(Response::error(ErrorReply::new(429).retry_after(1))),
            Rule::openai(Response::text("Worth the wait.")),
        ]))
        .await;
        let mut options = ClientOptions::new(root.path());
        options.env = [
            ("SWITCHYARD_PROVIDER", "openai".to_string()),
            ("SWITCHYARD_MODEL", "mock-model".to_string()),
            ("OPENAI_BASE_URL", model.openai_base_url()),
            ("OPENAI_API_KEY", super::trust::KEY.to_string()),
            ("SWITCHYARD_AGENT__PERSIST_SESSIONS", "false".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let (mut client, _) = LspClient::initialized(options).await;
        let params = AskParams {
            session_id: None,
            prompt: "Anything?".into(),
            context: None,
            model: None,
            provider: None,
            work_done_token: None,
        };
        let answer = client.ext_request::<Ask>(params).await.unwrap();
        assert_eq!(answer.text, "Worth the wait.");
        client.drain_events();
        let waits: Vec<(String, u64)> = client
            .history
            .iter()
            .filter_map(|e| match e {
                ServerEvent::SessionUpdate(p) => match &p.update {
                    Update::ModelWaiting { what, up_to_ms } => Some((what.clone(), *up_to_ms)),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        assert_eq!(
            waits,
            [(
                "the end of the wait the provider asked for (Retry-After) before attempt 2"
                    .to_string(),
                1000
            )]
        );
        client.shutdown_and_exit().await;
    })
    .await;
}
