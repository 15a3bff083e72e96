//! The tool table: the one place that knows every built-in tool — its name, what it is for
//! the protocols (its [`ToolKind`]), how its calls run (its [`Effect`], hence its lane and
//! whether it runs beside other calls), and what a model is told of it (description and
//! JSON Schema of its arguments).
//!
//! Everything else names a tool by [`Tool`], never by a string: approvals are keyed by it,
//! the front ends take its kind from here, the agent its lane. A name arrives as a string
//! from outside (a model, the command line, the editor) and is turned into a `Tool` once,
//! by [`Tool::from_name`].
//!
//! Tools known only at run time (an MCP server's, next) are described by the same
//! [`ToolSpec`]: their name and schema come from the server, their effect from its
//! annotations (`readOnlyHint` → [`Effect::ReadOnly`], else [`Effect::Runs`]).

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::lanes::Lane;

/// A built-in tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tool {
    /// Numbered lines of a file.
    Read,
    /// Paths matching a glob.
    Glob,
    /// Lines matching a regular expression.
    Grep,
    /// A directory listing.
    Ls,
    /// The model's plan, shown to the user.
    UpdatePlan,
    /// A whole file written.
    Write,
    /// One exact-text replacement.
    Edit,
    /// Several exact-text replacements in one file.
    MultiEdit,
    /// A file deleted.
    Delete,
    /// A file moved or renamed.
    Move,
    /// A file copied.
    Copy,
    /// A shell command.
    Bash,
}

/// What a tool call is, for the protocols: ACP's `ToolKind`, and the `kind` of our
/// `switchyard/sessionUpdate`. Editors pick icons and wording by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolKind {
    /// Reads files or directories.
    Read,
    /// Changes files.
    Edit,
    /// Deletes files.
    Delete,
    /// Moves or renames files.
    Move,
    /// Searches.
    Search,
    /// Runs a command.
    Execute,
    /// Fetches from the network.
    Fetch,
    /// Anything else.
    Other,
}

/// How a tool's calls run. The lane and parallel safety follow from it, so a change can
/// never be scheduled beside a read of the same turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Reads only: the Query lane, beside the other read-only calls of its turn.
    ReadOnly,
    /// Changes files: the Execute lane, alone, after approval, applied by the front end's
    /// applier (the editor, or atomically on disk).
    Changes,
    /// Runs something whose effects cannot be known (a process, an outside server): the
    /// Execute lane, alone, after approval.
    Runs,
}

impl Effect {
    /// The lane its calls run in.
    pub const fn lane(self) -> Lane {
        match self {
            Effect::ReadOnly => Lane::Query,
            Effect::Changes | Effect::Runs => Lane::Execute,
        }
    }

    /// Whether its calls may run beside the other calls of their turn.
    pub const fn parallel_safe(self) -> bool {
        matches!(self, Effect::ReadOnly)
    }
}

/// What a model is told about a tool, and how the engine runs its calls.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolSpec {
    /// The name a model calls it by.
    pub name: Cow<'static, str>,
    /// What it does and when to use it, for the model.
    pub description: Cow<'static, str>,
    /// JSON Schema of its arguments.
    pub parameters: Value,
    /// What it is, for the protocols.
    pub kind: ToolKind,
    /// How its calls run.
    pub effect: Effect,
}

impl ToolSpec {
    /// The lane its calls run in.
    pub fn lane(&self) -> Lane {
        self.effect.lane()
    }

    /// Whether its calls may run beside the other calls of their turn.
    pub fn parallel_safe(&self) -> bool {
        self.effect.parallel_safe()
    }
}

/// One row of the table.
struct Row {
    tool: Tool,
    name: &'static str,
    kind: ToolKind,
    effect: Effect,
    description: &'static str,
    parameters: fn() -> Value,
}

/// Every built-in tool, read-only first; the order models and users are shown them in.
const TABLE: [Row; 12] = [
    Row {
        tool: Tool::Read,
        name: "read",
        kind: ToolKind::Read,
        effect: Effect::ReadOnly,
        description: "Read a text file as numbered lines (1-based, like `cat -n`). Use `offset` (a 1-based line number; \
                      negative counts from the end: -100 is the last 100 lines) and `limit` to read a window of a \
                      long file. Open editor buffers are read with their unsaved changes.",
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "File path, relative to the workspace root or absolute inside it"},
                    "offset": {"type": "integer", "description": "First line to show (1-based); negative counts from the end"},
                    "limit": {"type": "integer", "minimum": 1, "description": "Most lines to show"}
                },
                "required": ["path"],
                "additionalProperties": false
            })
        },
    },
    Row {
        tool: Tool::Glob,
        name: "glob",
        kind: ToolKind::Search,
        effect: Effect::ReadOnly,
        description: "List files whose path matches a glob, sorted by path. A pattern without `/` matches file \
                      names at any depth (`*.rs`); with `/` it matches the path below `path` (`src/**/*.rs`, \
                      where `**` crosses directories). Files ignored by .gitignore/.ignore and hidden files are \
                      left out unless asked for.",
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "pattern": {"type": "string", "description": "Glob, e.g. `*.toml` or `src/**/*.rs`"},
                    "path": {"type": "string", "description": "Directory to search, relative to the workspace root (default: the root)"},
                    "include_ignored": {"type": "boolean", "description": "Also list files that ignore files exclude"},
                    "include_hidden": {"type": "boolean", "description": "Also list hidden files and directories"},
                    "limit": {"type": "integer", "minimum": 1, "description": "Most paths to return"}
                },
                "required": ["pattern"],
                "additionalProperties": false
            })
        },
    },
    Row {
        tool: Tool::Grep,
        name: "grep",
        kind: ToolKind::Search,
        effect: Effect::ReadOnly,
        description: "Search file contents with a regular expression (ripgrep syntax and behaviour: .gitignore \
                      respected, hidden and binary files skipped). `output`: `content` (path:line:text, the \
                      default), `files` (paths with a match) or `count` (matching lines per file). Narrow with \
                      `path`, `glob` (e.g. `*.rs`) or `type` (e.g. `rust`, `py`).",
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "pattern": {"type": "string", "description": "Regular expression (or text, with fixed_string)"},
                    "path": {"type": "string", "description": "File or directory to search (default: the workspace root)"},
                    "glob": {"type": "string", "description": "Only files matching this glob, e.g. `*.rs` or `src/**/*.ts`"},
                    "type": {"type": "string", "description": "Only files of this type, e.g. rust, py, js, ts, go, c, cpp, java"},
                    "case_insensitive": {"type": "boolean"},
                    "smart_case": {"type": "boolean", "description": "Case-insensitive unless the pattern has an uppercase letter"},
                    "fixed_string": {"type": "boolean", "description": "Treat the pattern as literal text"},
                    "multiline": {"type": "boolean", "description": "Let a match span lines"},
                    "context": {"type": "integer", "minimum": 0, "description": "Lines of context around each match"},
                    "output": {"type": "string", "enum": ["content", "files", "count"]},
                    "max_results": {"type": "integer", "minimum": 1, "description": "Stop after this many matching lines (files, in files/count output)"}
                },
                "required": ["pattern"],
                "additionalProperties": false
            })
        },
    },
    Row {
        tool: Tool::Ls,
        name: "ls",
        kind: ToolKind::Read,
        effect: Effect::ReadOnly,
        description: "List a directory: entries with kind and size, directories first. `depth` 1 (the default) \
                      lists the directory's own entries; more descends. Ignored and hidden entries are left out \
                      unless asked for.",
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "Directory, relative to the workspace root (default: the root)"},
                    "depth": {"type": "integer", "minimum": 1, "description": "How many levels to list (default 1)"},
                    "include_ignored": {"type": "boolean", "description": "Also list entries that ignore files exclude"},
                    "include_hidden": {"type": "boolean", "description": "Also list hidden entries"},
                    "limit": {"type": "integer", "minimum": 1, "description": "Most entries to return"}
                },
                "additionalProperties": false
            })
        },
    },
    Row {
        tool: Tool::UpdatePlan,
        name: "update_plan",
        kind: ToolKind::Other,
        effect: Effect::ReadOnly,
        description: "Keep a short plan of a multi-step task and show it to the user: send the whole plan each \
                      time (it replaces the last one), one step `in_progress` at most, and mark steps `completed` as \
                      you finish them. Skip it for a task of one or two steps. It changes no file.",
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "plan": {
                        "type": "array",
                        "description": "The steps, in order",
                        "items": {
                            "type": "object",
                            "properties": {
                                "step": {"type": "string", "description": "What the step is, in a few words"},
                                "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]}
                            },
                            "required": ["step", "status"],
                            "additionalProperties": false
                        }
                    },
                    "explanation": {"type": "string", "description": "Why the plan changed, in a sentence"}
                },
                "required": ["plan"],
                "additionalProperties": false
            })
        },
    },
    Row {
        tool: Tool::Write,
        name: "write",
        kind: ToolKind::Edit,
        effect: Effect::Changes,
        description: "Create a file, or replace a file's whole content. Prefer `edit` for changing part of an existing file.",
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "File path, relative to the workspace root"},
                    "content": {"type": "string", "description": "The complete new content"}
                },
                "required": ["path", "content"],
                "additionalProperties": false
            })
        },
    },
    Row {
        tool: Tool::Edit,
        name: "edit",
        kind: ToolKind::Edit,
        effect: Effect::Changes,
        description: "Replace exact text in a file. `old_string` must match the file (as the user sees it, unsaved changes \
                      included) exactly, whitespace and all, and occur once — or pass `replace_all`. Read the file first.",
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "old_string": {"type": "string", "description": "The exact text to replace"},
                    "new_string": {"type": "string", "description": "What replaces it"},
                    "replace_all": {"type": "boolean", "description": "Replace every occurrence"}
                },
                "required": ["path", "old_string", "new_string"],
                "additionalProperties": false
            })
        },
    },
    Row {
        tool: Tool::MultiEdit,
        name: "multi_edit",
        kind: ToolKind::Edit,
        effect: Effect::Changes,
        description: "Several exact-text replacements in one file, applied in order (each to the result of the one before), \
                      all or none.",
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "edits": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "properties": {
                                "old_string": {"type": "string"},
                                "new_string": {"type": "string"},
                                "replace_all": {"type": "boolean"}
                            },
                            "required": ["old_string", "new_string"],
                            "additionalProperties": false
                        }
                    }
                },
                "required": ["path", "edits"],
                "additionalProperties": false
            })
        },
    },
    Row {
        tool: Tool::Delete,
        name: "delete",
        kind: ToolKind::Delete,
        effect: Effect::Changes,
        description: "Delete a file.",
        parameters: || {
            json!({
                "type": "object",
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
                "additionalProperties": false
            })
        },
    },
    Row {
        tool: Tool::Move,
        name: "move",
        kind: ToolKind::Move,
        effect: Effect::Changes,
        description: "Move or rename a file. `to` must not exist yet.",
        parameters: || {
            json!({
                "type": "object",
                "properties": {"from": {"type": "string"}, "to": {"type": "string"}},
                "required": ["from", "to"],
                "additionalProperties": false
            })
        },
    },
    Row {
        tool: Tool::Copy,
        name: "copy",
        kind: ToolKind::Edit,
        effect: Effect::Changes,
        description: "Copy a text file to a new path. `to` must not exist yet.",
        parameters: || {
            json!({
                "type": "object",
                "properties": {"from": {"type": "string"}, "to": {"type": "string"}},
                "required": ["from", "to"],
                "additionalProperties": false
            })
        },
    },
    Row {
        tool: Tool::Bash,
        name: "bash",
        kind: ToolKind::Execute,
        effect: Effect::Runs,
        description: "Run a shell command (bash -c) in the workspace root and return its exit code and output. \
                      It times out after `timeout_ms` (default 2 minutes). Processes it leaves running \
                      are ended with it. Prefer the read-only tools for reading and searching files.",
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "command": {"type": "string"},
                    "timeout_ms": {"type": "integer", "minimum": 1, "description": "Kill the command after this long"}
                },
                "required": ["command"],
                "additionalProperties": false
            })
        },
    },
];

impl Tool {
    /// Every built-in tool, in the table's order.
    pub fn all() -> impl ExactSizeIterator<Item = Tool> + Clone {
        TABLE.iter().map(|row| row.tool)
    }

    /// The tool a model, the command line or the editor calls `name`.
    pub fn from_name(name: &str) -> Option<Tool> {
        TABLE
            .iter()
            .find(|row| row.name == name)
            .map(|row| row.tool)
    }

    /// Every tool's name, `, `-separated, for messages ("the tools are read, glob, …").
    pub fn names() -> String {
        TABLE
            .iter()
            .map(|row| row.name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn row(self) -> &'static Row {
        // The table is in declaration order; `table_is_in_declaration_order` checks it.
        &TABLE[self as usize]
    }

    /// The name a model calls it by.
    pub fn name(self) -> &'static str {
        self.row().name
    }

    /// What it is, for the protocols.
    pub fn kind(self) -> ToolKind {
        self.row().kind
    }

    /// How its calls run.
    pub fn effect(self) -> Effect {
        self.row().effect
    }

    /// The lane its calls run in.
    pub fn lane(self) -> Lane {
        self.effect().lane()
    }

    /// What a model is told of it.
    pub fn spec(self) -> ToolSpec {
        let row = self.row();
        ToolSpec {
            name: Cow::Borrowed(row.name),
            description: Cow::Borrowed(row.description),
            parameters: (row.parameters)(),
            kind: row.kind,
            effect: row.effect,
        }
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_in_declaration_order() {
        for (i, row) in TABLE.iter().enumerate() {
            assert_eq!(row.tool as usize, i, "{} is out of place", row.name);
        }
    }

    #[test]
    fn names_round_trip_and_match_serde() {
        for tool in Tool::all() {
            assert_eq!(Tool::from_name(tool.name()), Some(tool));
            assert_eq!(serde_json::to_value(tool).unwrap(), json!(tool.name()));
        }
        assert_eq!(Tool::from_name("format_disk"), None);
    }

    #[test]
    fn schemas_are_objects_that_refuse_unknown_arguments() {
        for tool in Tool::all() {
            let spec = tool.spec();
            assert_eq!(spec.parameters["type"], "object", "{tool}");
            assert_eq!(spec.parameters["additionalProperties"], false, "{tool}");
        }
    }

    #[test]
    fn only_read_only_tools_run_beside_others() {
        for tool in Tool::all() {
            let read_only = tool.effect() == Effect::ReadOnly;
            assert_eq!(tool.spec().parallel_safe(), read_only, "{tool}");
            assert_eq!(tool.lane() == Lane::Query, read_only, "{tool}");
        }
    }
}
