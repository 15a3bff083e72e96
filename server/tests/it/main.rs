//! The `switchyard` crate's integration tests: the library as a caller uses it, and the
//! binary where a test needs no mock model. One binary (one link, one process start);
//! each area is a module. Where a test goes: `tests/README.md`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod analyze;
mod analyze_cli;
mod cli;
mod common;
mod count_vs_tokei;
mod fused_search;
mod grep_vs_rg;
