//! Containment: nothing a tool does reaches outside the workspace, even while a directory
//! inside it is swapped with a link to outside (`renameat2(RENAME_EXCHANGE)` in a tight
//! loop, by a Python helper) as thousands of tool calls of every kind run — in process
//! through the toolbox for the bulk, and through the real `switchyard tool` CLI. Beside it:
//! a `.switchyard` that links out makes the analysis report fail instead of writing
//! outside, deleting a FIFO answers at once, and a new file gets the umask's mode.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchyard::approvals::{Approvals, ApprovalsConfig, Prompter};
use switchyard::documents::Documents;
use switchyard::edits::Applier;
use switchyard::lanes::{Lanes, LanesConfig};
use switchyard::lsp::ext::{AnalyzeWorkspace, AnalyzeWorkspaceParams};
use switchyard::tools::{
    CallContext, Mutations, ToolError, ToolOutput, Toolbox, ToolsConfig, Workspace,
};
use switchyard_tests::lsp_client::{ClientOptions, LspClient, within};
use switchyard_tests::switchyard_bin;

/// What only the outside holds: its content and a name.
const SECRET: &str = "OUTSIDE-SECRET-CONTENT";
const SECRET_NAME: &str = "secret-only";

/// Swaps two paths with `renameat2(RENAME_EXCHANGE)` until killed, touching `ready` once
/// it has swapped.
const SWAPPER: &str = r#"
import ctypes, os, platform, sys
libc = ctypes.CDLL(None, use_errno=True)
SYS_RENAMEAT2 = {"x86_64": 316, "aarch64": 276}[platform.machine()]
AT_FDCWD, RENAME_EXCHANGE = -100, 2
a, b, ready = (os.fsencode(p) for p in sys.argv[1:4])
swaps = 0
while True:
    if libc.syscall(SYS_RENAMEAT2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE) != 0:
        sys.exit("renameat2 failed: errno %d" % ctypes.get_errno())
    swaps += 1
    if swaps == 1000:
        open(ready, "w").close()
"#;

/// Kills the swapper (by its PID) when the test ends, however it ends.
struct Swapper(Child);

impl Drop for Swapper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `ws/` (the workspace, with `d/` the directory that gets swapped) beside `outside/`
/// (what `ws/swap`, a link, points at), each with baits of the same names.
struct Stage {
    dir: tempfile::TempDir,
}

impl Stage {
    fn new(calls: usize) -> Stage {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(ws.join("d")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(ws.join("d/inside.txt"), "inside text\n").unwrap();
        std::fs::write(ws.join("d/shared.txt"), "shared text\n").unwrap();
        std::fs::write(outside.join("inside.txt"), format!("{SECRET}\n")).unwrap();
        std::fs::write(outside.join("shared.txt"), "shared text\n").unwrap();
        std::fs::write(
            outside.join(format!("{SECRET_NAME}.txt")),
            format!("{SECRET}\n"),
        )
        .unwrap();
        // Baits: what a delete, move or overwrite that escaped would change.
        for i in 0..calls {
            for name in [format!("tmp-{i}.txt"), format!("moved-{i}.txt")] {
                std::fs::write(outside.join(name), format!("{SECRET} bait\n")).unwrap();
            }
        }
        std::os::unix::fs::symlink(&outside, ws.join("swap")).unwrap();
        Stage { dir }
    }

    fn ws(&self) -> PathBuf {
        self.dir.path().join("ws")
    }

    fn outside(&self) -> PathBuf {
        self.dir.path().join("outside")
    }

    /// Every file outside, with its content.
    fn outside_files(&self) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(self.outside())
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect()
    }

    /// Starts swapping `ws/d` and `ws/swap` and waits until it is under way.
    fn swap(&self) -> Swapper {
        let ready = self.dir.path().join("ready");
        let child = Command::new("python3")
            .arg("-c")
            .arg(SWAPPER)
            .arg(self.ws().join("d"))
            .arg(self.ws().join("swap"))
            .arg(&ready)
            .spawn()
            .expect("python3 runs the swapper");
        let mut swapper = Swapper(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready.exists() {
            if let Some(status) = swapper.0.try_wait().unwrap() {
                panic!("the swapper ended before swapping: {status}");
            }
            assert!(Instant::now() < deadline, "the swapper did not start");
            std::thread::yield_now();
        }
        swapper
    }

    /// The calls of round `i`: every tool, through `d/`.
    fn round(&self, i: usize) -> Vec<(&'static str, Value)> {
        vec![
            ("read", json!({"path": "d/inside.txt"})),
            ("grep", json!({"pattern": "text|SECRET", "path": "d"})),
            ("grep", json!({"pattern": "SECRET"})),
            ("glob", json!({"pattern": "**/*.txt"})),
            ("glob", json!({"pattern": "d/*"})),
            ("ls", json!({"path": "d"})),
            ("ls", json!({"path": ".", "depth": 3})),
            (
                "write",
                json!({"path": format!("d/tmp-{i}.txt"), "content": "new\n"}),
            ),
            (
                "write",
                json!({"path": "d/shared.txt", "content": format!("round {i}\n")}),
            ),
            (
                "edit",
                json!({"path": "d/inside.txt", "old_string": "text", "new_string": "text"
                    .repeat(1 + i % 2)}),
            ),
            (
                "copy",
                json!({"from": "d/inside.txt", "to": format!("d/copy-{i}.txt")}),
            ),
            (
                "move",
                json!({"from": format!("d/tmp-{i}.txt"), "to": format!("d/moved-{i}.txt")}),
            ),
            ("delete", json!({"path": format!("d/moved-{i}.txt")})),
            ("delete", json!({"path": format!("d/tmp-{i}.txt")})),
        ]
    }
}

/// A leak in a tool's output: outside content or an outside-only name.
fn leak(output: &str) -> bool {
    output.contains(SECRET) || output.contains(SECRET_NAME)
}

#[test]
fn a_directory_swapped_with_a_link_out_never_lets_a_tool_reach_outside() {
    const ROUNDS: usize = 250;
    const CLI_ROUNDS: usize = 4;
    let stage = Stage::new(ROUNDS + CLI_ROUNDS);
    let before = stage.outside_files();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let lanes = Lanes::with_runtime(LanesConfig::default(), runtime.handle().clone()).unwrap();
    let toolbox = Toolbox::new(
        Workspace::new([stage.ws()]).unwrap(),
        lanes,
        Documents::new(),
        ToolsConfig::default(),
    );
    toolbox.set_mutations(Mutations {
        applier: Applier::Disk { dry_run: false },
        approvals: Arc::new(Approvals::new(
            ApprovalsConfig::default(),
            Prompter::AllowAll,
        )),
    });

    let swapper = stage.swap();
    let mut calls = 0;
    let mut leaks = Vec::new();
    let mut saw_link = false;
    for i in 0..ROUNDS {
        // Counts a call and keeps its output if it shows what is outside.
        let mut check = |call: String, out: Result<ToolOutput, ToolError>| {
            let text = match out {
                Ok(out) => toolbox.render(&out),
                Err(e) => e.message,
            };
            calls += 1;
            if leak(&text) {
                leaks.push(format!("{call}: {text}"));
            }
        };
        for (tool, args) in stage.round(i) {
            let out = runtime.block_on(toolbox.run(tool, args.clone(), &CallContext::default()));
            check(format!("{tool} {args}"), out);
        }
        // The searches of the round again as one batch, sharing one walk (fused): both a
        // walk of calls that walk alike and one of calls that start in different places.
        let searches: Vec<(String, Value)> = stage
            .round(i)
            .into_iter()
            .filter(|(tool, _)| matches!(*tool, "grep" | "glob"))
            .map(|(tool, args)| (tool.to_string(), args))
            .collect();
        let together = if i % 2 == 0 {
            searches
        } else {
            // Only those over the whole workspace: one class, the ordinary parallel walk.
            searches
                .into_iter()
                .filter(|(_, args)| args.get("path").is_none())
                .collect()
        };
        let outs = runtime.block_on(toolbox.run_batch(together.clone(), &CallContext::default()));
        for ((tool, args), out) in together.iter().zip(outs) {
            check(format!("fused {tool} {args}"), out);
        }
        saw_link |= std::fs::symlink_metadata(stage.ws().join("d"))
            .is_ok_and(|m| m.file_type().is_symlink());
    }
    // The real CLI, under the same swapping.
    for i in ROUNDS..ROUNDS + CLI_ROUNDS {
        for (tool, args) in stage.round(i) {
            let out = Command::new(switchyard_bin())
                .args(["tool", tool, &args.to_string(), "--yes", "--cwd"])
                .arg(stage.ws())
                .stdin(Stdio::null())
                .output()
                .unwrap();
            calls += 1;
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if leak(&text) {
                leaks.push(format!("cli {tool} {args}: {text}"));
            }
        }
    }
    drop(swapper);
    assert!(calls >= 3_000, "{calls} calls");
    assert!(saw_link, "the swap was never seen: the test proves nothing");
    let shown: Vec<String> = leaks
        .iter()
        .take(3)
        .map(|l| l.chars().take(300).collect())
        .collect();
    assert!(
        leaks.is_empty(),
        "{} of {calls} outputs show outside content or names, e.g. {shown:#?}",
        leaks.len()
    );
    let after = stage.outside_files();
    let changed: Vec<&String> = before
        .keys()
        .chain(after.keys())
        .filter(|name| before.get(*name) != after.get(*name))
        .collect();
    assert_eq!(
        changed,
        Vec::<&String>::new(),
        "files created, changed or deleted outside the workspace"
    );
}

#[tokio::test]
async fn a_report_folder_linking_out_fails_the_analysis_and_writes_nothing_outside() {
    within(Duration::from_secs(90), async {
        let dir = tempfile::tempdir().unwrap();
        let ws = dir.path().join("ws");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(ws.join("src")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(ws.join("src/lib.rs"), "pub fn f() {}\n").unwrap();
        std::os::unix::fs::symlink(&outside, ws.join(".switchyard")).unwrap();
        let (client, _) = LspClient::initialized(ClientOptions::new(&ws)).await;
        let err = client
            .command::<AnalyzeWorkspace>(AnalyzeWorkspaceParams::default())
            .await
            .unwrap_err();
        assert!(
            err.message.contains(".switchyard") && err.message.contains("outside the workspace"),
            "{}",
            err.message
        );
        let written: Vec<_> = std::fs::read_dir(&outside).unwrap().collect();
        assert!(written.is_empty(), "written outside: {written:?}");
    })
    .await;
}

/// Runs the CLI, failing the test if it has not answered within `limit` (it is killed).
fn run_within(command: &mut Command, limit: Duration) -> std::process::Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not answer within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn deleting_a_fifo_answers_at_once_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("mkfifo")
        .arg(dir.path().join("pipe"))
        .status()
        .unwrap();
    assert!(status.success());
    for flag in ["--yes", "--dry-run"] {
        let out = run_within(
            Command::new(switchyard_bin())
                .args(["tool", "delete", r#"{"path": "pipe"}"#, flag, "--cwd"])
                .arg(dir.path()),
            Duration::from_secs(20),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{flag}: {stderr}");
        assert!(
            stderr.contains("`pipe` is a FIFO (named pipe)"),
            "{flag}: {stderr}"
        );
        assert!(dir.path().join("pipe").exists());
    }
}

#[test]
fn a_new_file_gets_the_umask_default_mode() {
    let dir = tempfile::tempdir().unwrap();
    for (umask, mode) in [("022", 0o644), ("027", 0o640)] {
        let name = format!("new-{umask}.txt");
        let args = json!({"path": name, "content": "hello\n"}).to_string();
        let script = "umask \"$1\"; shift; exec \"$@\"";
        let out = run_within(
            Command::new("sh")
                .args(["-c", script, "sh", umask])
                .arg(switchyard_bin())
                .args(["tool", "write", &args, "--yes", "--cwd"])
                .arg(dir.path()),
            Duration::from_secs(20),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta = std::fs::metadata(dir.path().join(&name)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "umask {umask}");
    }
}
