//! Shared pieces of Switchyard's end-to-end suites: locating the built binary, fixtures,
//! the mock model server and the LSP client harness.

use std::path::PathBuf;

pub mod cli;
pub mod lsp_client;
pub mod mock_model;
pub mod nats;

/// The `switchyard` binary that `cargo test` built for this workspace.
pub fn switchyard_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("SWITCHYARD_BIN") {
        return PathBuf::from(path);
    }
    let mut dir = std::env::current_exe().expect("test executable path");
    dir.pop(); // deps/
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(format!("switchyard{}", std::env::consts::EXE_SUFFIX))
}
