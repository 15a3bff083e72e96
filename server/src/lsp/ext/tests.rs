//! Keeps `docs/protocol.md` and this module from drifting apart: every name on one side is on
//! the other, under the right heading, and every example round-trips through the types.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Kind, catalog, command_argument};

const REFERENCE: &str = include_str!("../../../../docs/protocol.md");
const SOURCE: &str = include_str!("../ext.rs");

/// One `### \`name\`` section of the reference.
#[derive(Debug, Default)]
struct Section {
    kind: Option<Kind>,
    params: Option<String>,
    result: Option<String>,
}

fn sections(markdown: &str) -> BTreeMap<String, Section> {
    let mut sections = BTreeMap::new();
    let mut group = None;
    let mut current: Option<String> = None;
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        if let Some(heading) = line.strip_prefix("## ") {
            group = match heading.trim() {
                "Commands" => Some(Kind::Command),
                "Requests" => Some(Kind::Request),
                "Notifications" => Some(Kind::Notification),
                "Requests to the client" => Some(Kind::ClientRequest),
                _ => None,
            };
            current = None;
        } else if let Some(name) = line
            .strip_prefix("### `")
            .and_then(|rest| rest.strip_suffix('`'))
        {
            assert!(
                !sections.contains_key(name),
                "docs/protocol.md documents `{name}` twice"
            );
            sections.insert(
                name.to_string(),
                Section {
                    kind: group,
                    ..Section::default()
                },
            );
            current = Some(name.to_string());
        } else if let Some(info) = line.strip_prefix("```json ") {
            let mut body = String::new();
            for line in lines.by_ref() {
                if line.starts_with("```") {
                    break;
                }
                body.push_str(line);
                body.push('\n');
            }
            let Some(section) = current.as_ref().and_then(|name| sections.get_mut(name)) else {
                continue;
            };
            match info.trim() {
                "params" => section.params = Some(body),
                "result" => section.result = Some(body),
                other => panic!("unknown example kind `{other}` in docs/protocol.md"),
            }
        }
    }
    sections
}

/// Every `const NAME`/`const METHOD` in ext.rs: what the catalog must list.
fn declared_names(source: &str) -> BTreeSet<String> {
    source
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix("const NAME: &'static str = \"")
                .or_else(|| line.strip_prefix("const METHOD: &'static str = \""))?;
            rest.strip_suffix("\";").map(str::to_string)
        })
        .collect()
}

fn parse(name: &str, what: &str, text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| {
        panic!("docs/protocol.md: the {what} example of `{name}` is not JSON: {e}")
    })
}

#[test]
fn the_catalog_lists_every_method_and_command_declared_here() {
    let listed: BTreeSet<String> = catalog().iter().map(|e| e.name.to_string()).collect();
    let declared = declared_names(SOURCE);
    assert!(!declared.is_empty());
    assert_eq!(
        listed, declared,
        "ext::catalog() and the NAME/METHOD constants of ext.rs disagree"
    );
}

#[test]
fn the_reference_documents_exactly_the_catalog() {
    let documented = sections(REFERENCE);
    let listed: BTreeSet<&str> = catalog().iter().map(|e| e.name).collect();
    let missing: Vec<_> = listed
        .iter()
        .filter(|name| !documented.contains_key(**name))
        .collect();
    let stale: Vec<_> = documented
        .keys()
        .filter(|name| !listed.contains(name.as_str()))
        .collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "docs/protocol.md is out of date: undocumented {missing:?}, documented but not in ext.rs {stale:?}"
    );
}

#[test]
fn every_example_round_trips_through_its_types() {
    let documented = sections(REFERENCE);
    for entry in catalog() {
        let name = entry.name;
        let Some(section) = documented.get(name) else {
            continue; // reported by the_reference_documents_exactly_the_catalog
        };
        assert_eq!(
            section.kind,
            Some(entry.kind),
            "docs/protocol.md: `{name}` is under the wrong heading"
        );
        let params = section
            .params
            .as_deref()
            .unwrap_or_else(|| panic!("docs/protocol.md: `{name}` has no ```json params example"));
        let mut params = parse(name, "params", params);
        if entry.kind == Kind::Command {
            let Value::Array(arguments) = params else {
                panic!(
                    "docs/protocol.md: the params of command `{name}` must be its arguments array"
                );
            };
            params = command_argument(arguments)
                .unwrap_or_else(|e| panic!("docs/protocol.md: `{name}`: {e}"));
        }
        let back = (entry.params)(params.clone())
            .unwrap_or_else(|e| panic!("docs/protocol.md: the params of `{name}` do not fit: {e}"));
        assert_eq!(
            back, params,
            "docs/protocol.md: the params of `{name}` do not round-trip"
        );
        match (entry.result, section.result.as_deref()) {
            (Some(check), Some(result)) => {
                let result = parse(name, "result", result);
                let back = check(result.clone()).unwrap_or_else(|e| {
                    panic!("docs/protocol.md: the result of `{name}` does not fit: {e}")
                });
                assert_eq!(
                    back, result,
                    "docs/protocol.md: the result of `{name}` does not round-trip"
                );
            }
            (Some(_), None) => panic!("docs/protocol.md: `{name}` has no ```json result example"),
            (None, Some(_)) => {
                panic!("docs/protocol.md: notification `{name}` has a result example")
            }
            (None, None) => {}
        }
    }
}

#[test]
fn the_checks_catch_a_drifted_example() {
    // The parser and the round trip are what stand between the page and the code: make sure
    // they notice a renamed field and a missing section.
    let page = "## Commands\n\n### `switchyard.retryDeadLetter`\n\n```json params\n[{\"deadLetter\": 3}]\n```\n";
    let parsed = sections(page);
    let section = &parsed["switchyard.retryDeadLetter"];
    assert_eq!(section.kind, Some(Kind::Command));
    let entry = catalog()
        .into_iter()
        .find(|e| e.name == "switchyard.retryDeadLetter")
        .unwrap();
    let Value::Array(arguments) = parse("x", "params", section.params.as_deref().unwrap()) else {
        unreachable!()
    };
    assert!((entry.params)(command_argument(arguments).unwrap()).is_err());
    assert!(!parsed.contains_key("switchyard.queueStats"));
}
