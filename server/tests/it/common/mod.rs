//! What the integration tests share. Each test file compiles its own copy and uses part of it.

#[allow(dead_code)]
pub mod tokei;
#[allow(dead_code)]
pub mod toolbox;
