//! Switchyard: a coding agent behind the Language Server Protocol.
//!
//! The core is plain Rust: [`lanes`] schedules every piece of work, the tools read the
//! workspace through it, and [`core::Core`] assembles them once; the front ends (the CLI in
//! `main.rs` and `cli/`, the language server in `lsp`) translate between their protocol and
//! the core's methods. `docs/architecture.md` has the map.

pub mod acp;
pub mod agent;
pub mod analyze;
pub mod approvals;
pub mod broker;
pub mod config;
pub mod core;
pub mod documents;
pub mod edits;
pub mod lanes;
pub mod llm;
pub mod lsp;
pub mod mcp;
pub mod read_cache;
pub mod tools;
pub mod trust;
