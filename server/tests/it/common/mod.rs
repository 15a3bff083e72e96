//! What the integration tests share. Each test file compiles its own copy and uses part of it.

pub mod tokei;
