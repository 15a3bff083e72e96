//! The security suite (issue 11): one test binary, one module per area.

#[path = "security/containment.rs"]
mod containment;
