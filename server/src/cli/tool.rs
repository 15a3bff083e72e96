//! `switchyard tool NAME 'JSON'`: one tool call through the lanes, on disk.

use std::path::PathBuf;
use std::process::ExitCode;

use switchyard::tools::{CallContext, Tool, ToolOutput};

use super::{fail, on_disk, open_core, print};

/// `switchyard tool`'s arguments.
#[derive(Debug, clap::Args)]
pub struct ToolArgs {
    /// The tool's name.
    name: String,
    /// Its arguments as a JSON object, e.g. '{"pattern": "fn main", "type": "rust"}'.
    #[arg(default_value = "{}")]
    args: String,
    /// The workspace root (default: the current directory).
    #[arg(long)]
    cwd: Option<PathBuf>,
    /// Print the structured result as JSON instead of the text a model sees.
    #[arg(long)]
    json: bool,
    /// Allow every change the approval policy does not deny, without asking.
    #[arg(long)]
    yes: bool,
    /// Show the diff of a change and write nothing.
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(a: ToolArgs) -> ExitCode {
    if Tool::from_name(&a.name).is_none() {
        return fail(
            2,
            &format!("unknown tool `{}`; the tools are {}", a.name, Tool::names()),
        );
    }
    let args: serde_json::Value = match serde_json::from_str(&a.args) {
        Ok(args) => args,
        Err(e) => return fail(2, &format!("the arguments must be a JSON object: {e}")),
    };
    let core = match open_core(a.cwd, on_disk(a.yes, a.dry_run)) {
        Ok(core) => core,
        Err(e) => return fail(2, &e),
    };
    let result = core.run_tool(&a.name, args, &CallContext::default()).await;
    if let Ok(ToolOutput::Change(change)) = &result {
        eprint!("{}", print::for_stderr(&change.diff));
    }
    match result {
        Ok(output) if a.json => match serde_json::to_string_pretty(&output) {
            Ok(text) => {
                println!("{}", print::for_stdout(&text));
                ExitCode::SUCCESS
            }
            Err(e) => fail(1, &format!("cannot print the result as JSON: {e}")),
        },
        Ok(output) => match core.toolbox() {
            Ok(toolbox) => {
                print!("{}", print::for_stdout(&toolbox.render(&output)));
                ExitCode::SUCCESS
            }
            Err(e) => fail(1, &e.to_string()),
        },
        Err(e) => fail(1, &e.message),
    }
}
