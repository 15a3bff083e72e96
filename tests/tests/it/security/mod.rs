//! The security suite (issue 11): what a repository the user did not write, and a model
//! that reads it, must not be able to do. Each area is a module.

mod bounds;
mod containment;
mod lsp_protocol;
mod model_timeouts;
mod processes;
mod terminal;
mod trust;
