//! The security suite (issue 11): what a repository the user did not write, and a model
//! that reads it, must not be able to do. One test binary; each area is a module in
//! `security/`.

#[path = "security/bounds.rs"]
mod bounds;
#[path = "security/containment.rs"]
mod containment;
#[path = "security/lsp_protocol.rs"]
mod lsp_protocol;
#[path = "security/model_timeouts.rs"]
mod model_timeouts;
#[path = "security/processes.rs"]
mod processes;
#[path = "security/terminal.rs"]
mod terminal;
#[path = "security/trust.rs"]
mod trust;
