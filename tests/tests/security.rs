//! The security suite (issue 11): Switchyard opened on a repository it must not trust, driven
//! by a model it must not trust. One test binary; each area is a module below.

#[path = "security/model_timeouts.rs"]
mod model_timeouts;
#[path = "security/trust.rs"]
mod trust;
