//! Deterministic workspace analysis: which languages a workspace holds and how many lines
//! of code, comments and blanks each has, in agreement with tokei.

pub mod count;
pub mod languages;
