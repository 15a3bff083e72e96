//! The end-to-end suites: the real `switchyard` binary over stdio (LSP, the CLI), the mock
//! model server as a separate process, real files. One binary; each area is a module.
//! Shared setup lives in the `switchyard_tests` library (`tests/src/`). Where a test goes:
//! `tests/README.md`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod agent_acp;
mod agent_cli;
mod agent_loop;
mod agent_lsp;
mod lsp_analyze;
mod lsp_config;
mod lsp_documents;
mod lsp_edits;
mod lsp_lanes;
mod lsp_lifecycle;
mod lsp_robustness;
mod mcp;
mod mock_model;
mod nats;
mod security;
