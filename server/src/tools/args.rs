//! Tool arguments as a model sends them (a JSON object), read into typed values with
//! messages a model can act on: "`limit` must be a positive integer, got -3".

use serde_json::{Map, Value};

use super::ToolError;

/// A tool call's arguments, checked key by key.
pub struct Args<'a> {
    tool: &'a str,
    map: &'a Map<String, Value>,
}

impl<'a> Args<'a> {
    /// The arguments of a call to `tool`; they must be a JSON object (or null for none).
    pub fn new(tool: &'a str, value: &'a Value) -> Result<Args<'a>, ToolError> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        match value {
            Value::Object(map) => Ok(Args { tool, map }),
            Value::Null => Ok(Args {
                tool,
                map: EMPTY.get_or_init(Map::new),
            }),
            other => Err(ToolError::new(format!(
                "the arguments of `{tool}` must be a JSON object, got {}",
                kind(other)
            ))),
        }
    }

    /// Refuses keys the tool does not know, naming the ones it does.
    pub fn only(&self, known: &[&str]) -> Result<(), ToolError> {
        if let Some(unknown) = self.map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(ToolError::new(format!(
                "`{}` has no argument `{unknown}`; it takes {}",
                self.tool,
                known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(())
    }

    /// The raw value of `key`, when present and not null.
    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        self.get(key)
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// A required string.
    pub fn string(&self, key: &str) -> Result<&'a str, ToolError> {
        self.opt_string(key)?
            .ok_or_else(|| ToolError::new(format!("`{}` needs `{key}` (a string)", self.tool)))
    }

    /// An optional string.
    pub fn opt_string(&self, key: &str) -> Result<Option<&'a str>, ToolError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.wrong(key, "a string", other)),
        }
    }

    /// An optional boolean; `default` when absent.
    pub fn flag(&self, key: &str, default: bool) -> Result<bool, ToolError> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(other) => Err(self.wrong(key, "true or false", other)),
        }
    }

    /// An optional integer ≥ 1.
    pub fn opt_positive(&self, key: &str) -> Result<Option<u64>, ToolError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 => Ok(Some(n)),
                _ => Err(self.wrong(key, "a positive integer", v)),
            },
        }
    }

    /// An optional integer ≥ 0.
    pub fn opt_count(&self, key: &str) -> Result<Option<u64>, ToolError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "a non-negative integer", v)),
        }
    }

    /// An optional integer of either sign.
    pub fn opt_integer(&self, key: &str) -> Result<Option<i64>, ToolError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.wrong(key, "an integer", v)),
        }
    }

    fn wrong(&self, key: &str, want: &str, got: &Value) -> ToolError {
        let shown = match got {
            Value::String(s) => format!("{s:?}"),
            Value::Number(n) => n.to_string(),
            other => kind(other).to_string(),
        };
        ToolError::new(format!("`{key}` must be {want}, got {shown}"))
    }
}

/// What kind of JSON value `value` is, as a message names it ("a string", "an array").
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(value: Value, f: impl Fn(&Args<'_>) -> Result<(), ToolError>) -> String {
        let args = Args::new("read", &value).and_then(|a| f(&a).map(|()| a.map.len()));
        args.unwrap_err().message
    }

    #[test]
    fn bad_arguments_say_what_was_expected_and_what_came() {
        assert_eq!(
            err(json!({"limit": -3}), |a| a.opt_positive("limit").map(drop)),
            "`limit` must be a positive integer, got -3"
        );
        assert_eq!(
            err(json!({"limit": 0}), |a| a.opt_positive("limit").map(drop)),
            "`limit` must be a positive integer, got 0"
        );
        assert_eq!(
            err(json!({"path": 7}), |a| a.string("path").map(drop)),
            "`path` must be a string, got 7"
        );
        assert_eq!(
            err(json!({}), |a| a.string("path").map(drop)),
            "`read` needs `path` (a string)"
        );
        assert_eq!(
            err(json!({"pth": "x"}), |a| a.only(&["path", "offset"])),
            "`read` has no argument `pth`; it takes `path`, `offset`"
        );
        assert_eq!(
            err(json!("src"), |_| Ok(())),
            "the arguments of `read` must be a JSON object, got a string"
        );
        assert_eq!(
            err(json!({"hidden": "yes"}), |a| a
                .flag("hidden", false)
                .map(drop)),
            "`hidden` must be true or false, got \"yes\""
        );
    }

    #[test]
    fn null_means_absent() {
        let value = json!({"limit": null});
        let args = Args::new("read", &value).unwrap();
        assert_eq!(args.opt_positive("limit").unwrap(), None);
        assert!(Args::new("ls", &Value::Null).unwrap().only(&[]).is_ok());
    }
}
