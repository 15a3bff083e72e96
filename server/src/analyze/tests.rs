//! Unit tests of the analysis: merging, the report.
