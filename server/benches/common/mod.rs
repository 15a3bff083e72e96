//! What the benches share: criterion's median of a benchmark, read back from its output
//! folder, so each bench can print ratios against a baseline measured in the same run.

use std::path::Path;

/// The median time of `group/function` in nanoseconds, from the estimates criterion wrote
/// under `dir`; `None` when that benchmark did not run.
pub fn median_ns(dir: &Path, group: &str, function: &str) -> Option<f64> {
    let path = dir
        .join(group)
        .join(function)
        .join("new")
        .join("estimates.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}
