//! ACP types to the core's: a prompt's content blocks to the prompt text, the editor
//! context and the files it mentions; a session's `mcpServers` to MCP server settings.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use agent_client_protocol_schema::v1 as acp;

use crate::agent::AskContext;
use crate::mcp::McpServerConfig;

/// A prompt as the core takes it.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Prompt {
    /// The text the model is sent.
    pub(crate) text: String,
    /// The file the prompt is about (the first it mentions).
    pub(crate) context: AskContext,
    /// Whole files the prompt mentions, with the text the client sent for them (an embedded
    /// resource, the editor's buffer) or `None` for a link; the front end puts them in the
    /// core's buffer overlay so the tools read what the user sees.
    pub(crate) files: Vec<(PathBuf, Option<String>)>,
}

/// The prompt of `blocks`; `root` resolves relative paths. Errors name the block that
/// cannot be taken.
pub(crate) fn prompt(blocks: &[acp::ContentBlock], root: &Path) -> Result<Prompt, String> {
    let mut out = Prompt::default();
    let mut mentioned = Vec::new();
    for (i, block) in blocks.iter().enumerate() {
        match block {
            acp::ContentBlock::Text(text) => push(&mut out.text, &text.text),
            acp::ContentBlock::ResourceLink(link) => {
                let path = file_path(&link.uri, root);
                let shown = path
                    .as_ref()
                    .map_or_else(|| link.uri.clone(), |p| shown(p, root));
                push(&mut out.text, &format!("(see `{shown}`)"));
                if let Some(path) = path {
                    mentioned.push(path.clone());
                    if !has_fragment(&link.uri) {
                        out.files.push((path, None));
                    }
                }
            }
            acp::ContentBlock::Resource(resource) => match &resource.resource {
                acp::EmbeddedResourceResource::TextResourceContents(contents) => {
                    let path = file_path(&contents.uri, root);
                    let shown = path
                        .as_ref()
                        .map_or_else(|| contents.uri.clone(), |p| shown(p, root));
                    let fence = if contents.text.contains("```") {
                        "~~~~"
                    } else {
                        "```"
                    };
                    push(
                        &mut out.text,
                        &format!("`{shown}`:\n{fence}\n{}\n{fence}", contents.text),
                    );
                    if let Some(path) = path {
                        mentioned.push(path.clone());
                        if !has_fragment(&contents.uri) {
                            out.files.push((path, Some(contents.text.clone())));
                        }
                    }
                }
                _ => {
                    return Err(format!(
                        "prompt block {i} is a binary resource; switchyard takes text resources only"
                    ));
                }
            },
            acp::ContentBlock::Image(_) | acp::ContentBlock::Audio(_) => {
                return Err(format!(
                    "prompt block {i} is an image or audio; switchyard takes text, resource links and text resources (promptCapabilities says so)"
                ));
            }
            _ => {
                return Err(format!(
                    "prompt block {i} is of a kind switchyard does not know"
                ));
            }
        }
    }
    if out.text.trim().is_empty() {
        return Err("the prompt is empty".into());
    }
    out.context.open_file = mentioned.into_iter().next();
    Ok(out)
}

fn push(text: &mut String, part: &str) {
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(part);
}

fn has_fragment(uri: &str) -> bool {
    uri.contains('#')
}

/// The path of a `file:` URI (or of a plain path, which some clients send), absolute
/// under `root`; `None` for other schemes.
pub(crate) fn file_path(uri: &str, root: &Path) -> Option<PathBuf> {
    let without_fragment = uri.split('#').next().unwrap_or(uri);
    let raw = match without_fragment.strip_prefix("file://") {
        Some(rest) => rest.strip_prefix("localhost").unwrap_or(rest).to_string(),
        None if !without_fragment.contains("://") => without_fragment.to_string(),
        None => return None,
    };
    let path = PathBuf::from(percent_decode(&raw)?);
    Some(if path.is_absolute() {
        path
    } else {
        root.join(path)
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn shown(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// A session's `mcpServers` as MCP server settings, by name: stdio (`command`, `args`, `env`)
/// and streamable HTTP (`url`, `headers`); SSE, which this agent does not advertise, is
/// refused by name. A name is made fit for `mcp__<server>__<tool>` (any character but
/// letters, digits, `_` and `-` becomes `-`).
pub(crate) fn mcp_servers(
    servers: &[acp::McpServer],
) -> Result<BTreeMap<String, McpServerConfig>, String> {
    let mut out = BTreeMap::new();
    for server in servers {
        let (name, config) = match server {
            acp::McpServer::Stdio(stdio) => (
                &stdio.name,
                McpServerConfig {
                    command: Some(stdio.command.display().to_string()),
                    args: stdio.args.clone(),
                    env: stdio
                        .env
                        .iter()
                        .map(|v| (v.name.clone(), v.value.clone()))
                        .collect(),
                    ..McpServerConfig::default()
                },
            ),
            acp::McpServer::Http(http) => (
                &http.name,
                McpServerConfig {
                    url: Some(http.url.clone()),
                    headers: http
                        .headers
                        .iter()
                        .map(|h| (h.name.clone(), h.value.clone()))
                        .collect(),
                    ..McpServerConfig::default()
                },
            ),
            acp::McpServer::Sse(sse) => {
                return Err(format!(
                    "mcpServers: `{}` is an SSE server ({}); switchyard connects to MCP servers \
                     over stdio and streamable HTTP only (agentCapabilities.mcpCapabilities.sse is false)",
                    sse.name, sse.url
                ));
            }
            _ => return Err("mcpServers: a transport switchyard does not know".into()),
        };
        let mut key: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        while key.contains("__") {
            key = key.replace("__", "_");
        }
        if key.is_empty() {
            return Err("mcpServers: a server has an empty name".into());
        }
        if out.insert(key.clone(), config).is_some() {
            return Err(format!(
                "mcpServers: two servers are named `{key}`; give each its own name"
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn blocks(value: serde_json::Value) -> Vec<acp::ContentBlock> {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn text_links_and_resources_become_the_prompt_and_its_files() {
        let root = Path::new("/w");
        let p = prompt(
            &blocks(json!([
                {"type": "text", "text": "Fix the bug in"},
                {"type": "resource_link", "uri": "file:///w/src/a%20b.rs", "name": "a b.rs"},
                {"type": "resource", "resource": {"uri": "file:///w/src/c.rs", "text": "fn c() {}"}},
                {"type": "resource", "resource": {"uri": "file:///w/src/d.rs#L2:3", "text": "x"}},
            ])),
            root,
        )
        .unwrap();
        assert_eq!(
            p.text,
            "Fix the bug in\n(see `src/a b.rs`)\n`src/c.rs`:\n```\nfn c() {}\n```\n`src/d.rs`:\n```\nx\n```"
        );
        assert_eq!(p.context.open_file, Some(PathBuf::from("/w/src/a b.rs")));
        assert_eq!(
            p.files,
            [
                (PathBuf::from("/w/src/a b.rs"), None),
                (PathBuf::from("/w/src/c.rs"), Some("fn c() {}".to_string())),
            ],
            "a selection (a fragment) is not the whole buffer"
        );
        let err = prompt(
            &blocks(json!([{"type": "image", "data": "AA==", "mimeType": "image/png"}])),
            root,
        )
        .unwrap_err();
        assert!(err.starts_with("prompt block 0 is an image"), "{err}");
        assert_eq!(
            prompt(&blocks(json!([{"type": "text", "text": "  "}])), root).unwrap_err(),
            "the prompt is empty"
        );
    }
}
