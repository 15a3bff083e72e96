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

/// Writes the small workspace the agent suites share into `dir`: `src/main.rs`, a program
/// that prints `hello`, and a `README.md`.
pub fn hello_workspace(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("src")).expect("the workspace folder can be written");
    std::fs::write(
        dir.join("src/main.rs"),
        "fn main() {\n    println!(\"hello\");\n}\n",
    )
    .expect("the workspace folder can be written");
    std::fs::write(dir.join("README.md"), "# Demo\nSays hello.\n")
        .expect("the workspace folder can be written");
}
