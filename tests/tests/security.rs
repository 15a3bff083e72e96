//! The security suite (issue 11): Switchyard on a repository it did not write, talking to a
//! model whose output it does not trust. One test binary; each area is a module.

#[path = "security/bounds.rs"]
mod bounds;
#[path = "security/terminal.rs"]
mod terminal;
