// The VS Code suite: the packaged extension in a real VS Code (code-server), driven through
// its UI by headless Chromium (playwright-core), against the real `switchyard` binary and
// the mock model server.
//
//   node tests/editors/vscode/run.mjs          (tests/run does this, after the cargo steps)
//
// Needs the variables tests/provision writes to env.sh: SWITCHYARD_NODE24,
// SWITCHYARD_CODE_SERVER, SWITCHYARD_CHROMIUM, SWITCHYARD_NODE_MODULES; and the binaries
// target/debug/switchyard and target/debug/mock-model (CARGO_TARGET_DIR is honoured).
// Optional: SWITCHYARD_VSCODE_PARTS=analyze,stats,ask,chat,missing (default all, in order),
// SWITCHYARD_VSCODE_KEEP=1 keeps the temporary folder.
//
// Parts:
//   analyze  "Switchyard: Analyze Workspace" from the palette opens the report as a Markdown
//            preview, and the status bar item shows the lanes.
//   stats    "Switchyard: Show Queue Stats" opens the stats as a preview; "Switchyard: Show
//            Dead Letters" lists them (or says there are none).
//   ask      "Switchyard: Ask…" on a modified, unsaved file: the mock model answers with an
//            `edit` tool call; the edit lands in the buffer, the file stays unsaved, and
//            Ctrl+Z takes the agent's edit back.
//   chat     The chat view: a typed prompt answered with streamed Markdown after one batch
//            of three parallel tool calls; an approval answered inline; review mode with
//            one hunk accepted and one rejected (the buffer holds exactly the accepted one,
//            the model is told of the other); a rewind; a new session, then the first one
//            resumed with another model; Stop; the Sessions and MCP Servers commands.
//            Assertions read the chat's own frame (found by its
//            view id) and the active editor, never every frame of the page.
//   missing  switchyard.server.path pointing nowhere: after the offered restart, an error
//            naming the missing binary, with an Install Instructions button.
// Screenshots of every step go to tests/out/vscode/. Every wait has a deadline; on failure
// the script says what it saw (screenshot, logs) and exits non-zero. Processes it starts
// are stopped by process id (code-server with its process group), also on failure.

import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../../..");
const extensionDir = path.join(repo, "editors/vscode");
const outDir = path.join(repo, "tests/out/vscode");
const targetDir = process.env.CARGO_TARGET_DIR
  ? path.resolve(repo, process.env.CARGO_TARGET_DIR)
  : path.join(repo, "target");

/** Deadlines, in milliseconds. Generous for a cold, shared two-core machine. */
const DEADLINE = {
  build: 180_000,
  codeServerUp: 60_000,
  workbench: 120_000,
  serverRunning: 60_000,
  palette: 15_000,
  analyze: 120_000,
  preview: 30_000,
  hover: 15_000,
  openFile: 30_000,
  ask: 120_000,
  undo: 15_000,
  shutdown: 5_000,
};

const STATUS_ITEM = '[id="switchyard.switchyard.status"]';
const CHAT_VIEW = "switchyard.chat";
const TYPED_LINE = "// typed by the test, not saved";
const PROMPT = "Greet people with Howdy instead of Hello.";

const log = (...args) => console.error("vscode:", ...args);

// ---- processes ---------------------------------------------------------------------------

/** Processes we started, stopped by process id (and process group) at the end. */
const started = [];

function startProcess(name, command, args, options) {
  // detached: the child leads a process group of its own, so stopping it by its id also
  // stops what it started (code-server's extension host, the language server).
  const child = spawn(command, args, { ...options, detached: true });
  started.push({ name, child, group: true });
  child.on("error", (err) => log(`${name}: ${err.message}`));
  return child;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function signal(entry, sig) {
  const pid = entry.child.pid;
  if (pid === undefined) return;
  try {
    process.kill(entry.group ? -pid : pid, sig);
  } catch {
    // Already gone.
  }
}

async function stopAll() {
  for (const entry of started.reverse()) {
    if (entry.child.stdin && !entry.child.stdin.destroyed) entry.child.stdin.end();
    signal(entry, "SIGTERM");
  }
  const deadline = Date.now() + DEADLINE.shutdown;
  while (Date.now() < deadline && started.some((e) => e.child.pid && alive(-e.child.pid))) {
    await sleep(100);
  }
  for (const entry of started) signal(entry, "SIGKILL");
  started.length = 0;
}

// A last resort if the script dies without reaching its cleanup.
process.on("exit", () => {
  for (const entry of started) signal(entry, "SIGKILL");
});
for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"]) {
  process.on(sig, () => {
    log(`${sig}: stopping`);
    void stopAll().finally(() => process.exit(130));
  });
}

function run(command, args, options = {}) {
  const result = spawnSync(command, args, {
    encoding: "utf8",
    timeout: DEADLINE.build,
    maxBuffer: 64 * 1024 * 1024,
    ...options,
  });
  if (result.status !== 0) {
    const output = `${result.stdout ?? ""}${result.stderr ?? ""}`
      .trim()
      .split("\n")
      .slice(-40)
      .join("\n");
    const why = result.error
      ? result.error.message
      : `exit status ${result.status ?? result.signal}`;
    throw new Error(`${command} ${args.join(" ")} failed (${why}):\n${output}`);
  }
  return result.stdout;
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

// ---- waiting -----------------------------------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A failure that makes waiting longer pointless. */
class Fatal extends Error {}

/**
 * Polls `probe` until it returns something truthy; throws after `ms` with `what` and the
 * last thing `describe` saw. A `Fatal` thrown by `probe` ends the wait at once; other errors
 * are retried.
 */
async function waitFor(what, ms, probe, describe = async () => "") {
  const deadline = Date.now() + ms;
  let lastError;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (err) {
      if (err instanceof Fatal) throw err;
      lastError = err;
    }
    if (Date.now() > deadline) {
      let seen = "";
      try {
        seen = await describe();
      } catch {
        // Nothing more to say.
      }
      const because = lastError ? ` (last error: ${lastError.message ?? lastError})` : "";
      throw new Error(
        `timed out after ${ms / 1000}s waiting for ${what}${because}${seen ? `; saw: ${seen}` : ""}`,
      );
    }
    await sleep(250);
  }
}

// ---- setup -------------------------------------------------------------------------------

function requireEnv(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: run tests/provision and source the env.sh it prints (tests/run does)`,
    );
  }
  return value;
}

function requireFile(file, hint) {
  if (!fs.existsSync(file)) throw new Error(`${file} does not exist: ${hint}`);
  return file;
}

/**
 * `npm ci` when node_modules is missing or was installed from another lockfile, then the
 * format check, the typecheck and the package.
 */
function packageExtension(toolEnv) {
  const lock = fs.readFileSync(path.join(extensionDir, "package-lock.json"));
  const want = createHash("sha256").update(lock).digest("hex");
  const stamp = path.join(extensionDir, "node_modules/.switchyard-lock-sha256");
  const have = fs.existsSync(stamp) ? fs.readFileSync(stamp, "utf8").trim() : "";
  const npmOptions = { cwd: extensionDir, env: toolEnv };
  if (have !== want) {
    log("npm ci (editors/vscode)");
    run("npm", ["ci", "--no-audit", "--no-fund"], npmOptions);
    fs.writeFileSync(stamp, `${want}\n`);
  }
  log("prettier --check");
  run("npm", ["run", "--silent", "format:check"], npmOptions);
  log("tsc --noEmit");
  run("npm", ["run", "--silent", "typecheck"], npmOptions);
  log("vsce package");
  const vsix = path.join(extensionDir, "switchyard.vsix");
  fs.rmSync(vsix, { force: true });
  run("npm", ["run", "--silent", "package"], npmOptions);
  return requireFile(vsix, "vsce package did not write it");
}

/** Starts `mock-model` with the ask script; resolves to its base URL. */
async function startMockModel(tmp) {
  const binary = requireFile(
    path.join(targetDir, "debug/mock-model"),
    "build it with `cargo build --workspace --bins`",
  );
  const child = startProcess(
    "mock-model",
    binary,
    [
      "--script",
      path.join(here, "mock-ask-edit.json"),
      "--record",
      path.join(tmp, "mock-requests.jsonl"),
      "--port-file",
      path.join(tmp, "mock-port"),
      "--max-lifetime-secs",
      "900",
    ],
    { stdio: ["pipe", "pipe", "pipe"] },
  );
  started.at(-1).group = false;
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  return new Promise((resolve, reject) => {
    let stdout = "";
    const timer = setTimeout(
      () => reject(new Error(`mock-model did not start in 10s: ${stderr}`)),
      10_000,
    );
    child.stdout.on("data", (data) => {
      stdout += data;
      const match = /^listening (http:\/\/\S+)/m.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`mock-model exited with ${code}: ${stderr}`));
    });
  });
}

// ---- the workbench -----------------------------------------------------------------------

class Workbench {
  constructor(page, shots, userData) {
    this.page = page;
    this.shots = shots;
    this.userData = userData;
    this.logOffset = 0;
  }

  /** The extension's log ("Switchyard Language Server" output channel), as VS Code writes it. */
  extensionLog() {
    const [file] = findFiles(path.join(this.userData, "logs"), (n) =>
      n.endsWith("-Switchyard Language Server.log"),
    );
    return file ? fs.readFileSync(file, "utf8") : "";
  }

  /** From here on, `failIfExtensionError` looks only at new log lines. */
  markLog() {
    this.logOffset = this.extensionLog().length;
  }

  async screenshot(name) {
    const file = path.join(outDir, `${name}.png`);
    await this.page.screenshot({ path: file, timeout: 15_000 });
    this.shots.push(path.relative(repo, file));
    log(`screenshot ${path.relative(repo, file)}`);
    return file;
  }

  /** The status bar item's text, spoken label and icons. */
  async statusItem() {
    return this.page.locator(STATUS_ITEM).evaluate((el) => ({
      text: el.innerText.trim(),
      label: (el.querySelector("[aria-label]") ?? el).getAttribute("aria-label") ?? "",
      icons: [...el.querySelectorAll(".codicon")].map((i) =>
        [...i.classList].filter((c) => c.startsWith("codicon-")).join(" "),
      ),
    }));
  }

  /** The notification toasts on screen: `[error] message` for errors, else the message. */
  async notifications() {
    return this.page.locator(".notifications-toasts .notification-toast").evaluateAll((els) =>
      els.map((el) => {
        const message = (el.querySelector(".notification-list-item-message") ?? el).innerText;
        const error = el.querySelector(".codicon-error") ? "[error] " : "";
        return `${error}${message.replace(/\s+/g, " ").trim()}`;
      }),
    );
  }

  /**
   * Errors the extension reported (a "Switchyard: ..." error toast, or an `[error]` line in its
   * log, since later notifications can push a toast out of sight): waiting longer is pointless.
   */
  async failIfExtensionError() {
    const errors = (await this.notifications()).filter((n) => n.startsWith("[error] Switchyard: "));
    const logged = this.extensionLog()
      .slice(this.logOffset)
      .split("\n")
      .filter((line) => line.startsWith("[error] "));
    if (errors.length + logged.length > 0) {
      throw new Fatal(`the extension said: ${[...errors, ...logged].join(" | ")}`);
    }
  }

  /**
   * Opens the quick input with `key` and types `text` into it. Keys pressed while a webview
   * (a Markdown preview) has focus reach the workbench, but focus goes back to the webview
   * and the quick input closes again; so focus leaves any webview first, and a quick input
   * that closed before it could be typed into is opened again.
   */
  async quickInput(key, text) {
    const page = this.page;
    const input = page.locator(".quick-input-widget .quick-input-box input");
    for (let attempt = 1; ; attempt++) {
      await page.evaluate(() => {
        if (document.activeElement instanceof HTMLElement) document.activeElement.blur();
      });
      await page.keyboard.press(key);
      try {
        await input.waitFor({ state: "visible", timeout: DEADLINE.palette / 3 });
        await input.fill(text, { timeout: DEADLINE.palette / 3 });
        return;
      } catch (err) {
        if (attempt === 3)
          throw new Error(
            `the quick input (${key}) did not stay open: ${err.message.split("\n")[0]}`,
          );
        await page.keyboard.press("Escape");
      }
    }
  }

  /** Runs a command by its palette title. */
  async runCommand(title) {
    await this.quickInput("F1", `>${title}`);
    const row = this.page
      .locator(".quick-input-widget .monaco-list-row", { hasText: title })
      .first();
    await row.waitFor({ state: "visible", timeout: DEADLINE.palette });
    await row.click();
  }

  /** Opens a workspace file with Quick Open. */
  async openFile(relative) {
    await this.quickInput("Control+P", relative);
    const name = path.basename(relative);
    const row = this.page
      .locator(".quick-input-widget .monaco-list-row", { hasText: name })
      .first();
    await row.waitFor({ state: "visible", timeout: DEADLINE.palette });
    await row.click();
    await this.tab(name).waitFor({ state: "visible", timeout: DEADLINE.openFile });
  }

  tab(name) {
    return this.page.locator(".part.editor .tabs-container .tab", { hasText: name }).first();
  }

  /** The text of the visible editor showing `name`, lines in order. */
  async editorText() {
    return this.page
      .locator(
        ".part.editor .editor-group-container.active .editor-instance .monaco-editor .view-lines",
      )
      .first()
      .evaluate((el) =>
        [...el.querySelectorAll(".view-line")]
          .map((line) => ({ top: parseFloat(line.style.top) || 0, text: line.textContent ?? "" }))
          .sort((a, b) => a.top - b.top)
          .map((line) => line.text.replace(/\u00a0/g, " "))
          .join("\n"),
      );
  }

  async focusEditor() {
    await this.page
      .locator(
        ".part.editor .editor-group-container.active .editor-instance .monaco-editor .view-lines",
      )
      .first()
      .click();
  }

  /** The title of the active tab of the active editor group. */
  async activeTabTitle() {
    const tab = this.page
      .locator(".part.editor .editor-group-container.active .tabs-container .tab.active")
      .first();
    return (await tab.isVisible()) ? (await tab.innerText()).trim() : "";
  }

  /**
   * The text of the webview (a Markdown preview) the active editor group shows: the one
   * webview iframe that is visible and lies over that group. Webviews of hidden editors and
   * of other groups (an earlier preview, say) are not looked at.
   */
  async activeWebviewText() {
    const group = await this.page
      .locator(".part.editor .editor-group-container.active .editor-container")
      .first()
      .boundingBox();
    if (!group) return "";
    for (const handle of await this.page.locator("iframe.webview").elementHandles()) {
      const shown = await handle.evaluate((el) =>
        el.checkVisibility({ visibilityProperty: true, opacityProperty: true }),
      );
      const box = shown ? await handle.boundingBox() : null;
      if (!box || box.width < 10 || box.height < 10) continue;
      const inside =
        box.x >= group.x - 2 &&
        box.y >= group.y - 2 &&
        box.x + box.width <= group.x + group.width + 2 &&
        box.y + box.height <= group.y + group.height + 2;
      if (!inside) continue;
      const outer = await handle.contentFrame();
      const inner = outer?.childFrames()[0];
      if (!inner) continue;
      return inner.evaluate(() => document.body?.innerText ?? "");
    }
    return "";
  }

  /** The chat view's own frame: the webview whose page says it is the view `switchyard.chat`. */
  async chatFrame() {
    for (const frame of this.page.frames()) {
      if (frame === this.page.mainFrame()) continue;
      try {
        const view = await frame.evaluate(() => document.body?.dataset.view ?? "");
        if (view === CHAT_VIEW) return frame;
      } catch {
        // A frame that went away or is not ready.
      }
    }
    return undefined;
  }
}

// ---- the parts ---------------------------------------------------------------------------

async function analyzePart(wb, workspace) {
  const page = wb.page;
  // Record every state of the status bar item while the analysis runs.
  await page.evaluate((selector) => {
    const seen = (window.__switchyardStatus = []);
    const record = () => {
      const el = document.querySelector(selector);
      if (!el) return;
      const icon = [...el.querySelectorAll(".codicon")].map((i) => i.className).join(" ");
      const entry = `${icon.includes("spin") ? "[spin] " : ""}${el.innerText.trim()}`;
      if (seen.at(-1) !== entry) seen.push(entry);
    };
    new MutationObserver(record).observe(
      document.querySelector(".part.statusbar") ?? document.body,
      {
        subtree: true,
        childList: true,
        characterData: true,
        attributes: true,
      },
    );
    record();
  }, STATUS_ITEM);

  await wb.runCommand("Switchyard: Analyze Workspace");
  const reportFile = path.join(workspace, ".switchyard/analysis.md");
  const tab = page
    .locator(".part.editor .tabs-container .tab", { hasText: /Preview analysis\.md/i })
    .first();
  await waitFor(
    "the Markdown preview of the report (a tab 'Preview analysis.md')",
    DEADLINE.analyze,
    async () => {
      await wb.failIfExtensionError();
      return tab.isVisible();
    },
    async () =>
      `tabs: ${await tabTitles(page)}; notifications: ${(await wb.notifications()).join(" | ")}`,
  );

  // The preview shows the report: its first heading (from the file when the server wrote
  // one), or at least some text.
  let heading;
  if (fs.existsSync(reportFile)) {
    heading = /^#+\s+(.+)$/m.exec(fs.readFileSync(reportFile, "utf8"))?.[1]?.trim();
    log(
      `report written to ${path.relative(workspace, reportFile)}${heading ? `, first heading "${heading}"` : ""}`,
    );
  } else {
    log(
      "the server wrote no .switchyard/analysis.md; expecting the returned Markdown in the preview",
    );
  }
  await waitFor(
    heading ? `the active preview to show "${heading}"` : "the active preview to show the report",
    DEADLINE.preview,
    async () => {
      if (!/Preview analysis\.md/i.test(await wb.activeTabTitle())) return false;
      const text = await wb.activeWebviewText();
      return heading ? text.includes(heading) : text.trim().length > 20;
    },
    async () =>
      `active tab: ${await wb.activeTabTitle()}; it shows: ${(await wb.activeWebviewText()).slice(0, 200)}`,
  );
  await wb.screenshot("02-analyze-preview");

  // The status bar: idle again, and its tooltip has the lanes with the work counted.
  const seen = await page.evaluate(() => window.__switchyardStatus);
  log(`status bar states during the analysis: ${JSON.stringify(seen)}`);
  const busy = seen.filter((s) => /\b[CQEG] \d+(\/\d+)?\b/.test(s));
  await waitFor(
    "the status bar item to be idle",
    DEADLINE.preview,
    async () => (await wb.statusItem()).label === "Switchyard: idle",
    async () => JSON.stringify(await wb.statusItem()),
  );
  await page.locator(STATUS_ITEM).hover();
  const hover = page
    .locator(".workbench-hover, .monaco-hover")
    .filter({ hasText: "Switchyard" })
    .first();
  const tooltip = await waitFor(
    "the status bar tooltip with the lanes",
    DEADLINE.hover,
    async () => {
      if (!(await hover.isVisible())) return false;
      const text = (await hover.innerText()).replace(/\s+/g, " ");
      return /Query \d+ \d+ \d+/.test(text) ? text : false;
    },
    async () => ((await hover.isVisible()) ? await hover.innerText() : "no hover"),
  );
  await wb.screenshot("03-status-lanes");
  await page.mouse.move(700, 300);
  const query = /Query (\d+) (\d+) (\d+) (\d+) (\d+)/.exec(tooltip);
  const done = query ? Number(query[3]) : 0;
  if (done === 0) {
    throw new Error(
      `the status bar tooltip counts no finished Query task after the analysis: ${tooltip}`,
    );
  }
  return `preview opened${heading ? ` ("${heading}")` : ""}; tooltip: ${tooltip}; busy states seen: ${
    busy.length ? busy.join(", ") : "none (the lanes finished between two notifications)"
  }`;
}

async function statsPart(wb) {
  const page = wb.page;
  await wb.runCommand("Switchyard: Show Queue Stats");
  // What the user sees: the active tab is the stats preview, and the webview over the
  // active editor shows the stats (not the analysis, not text of a hidden frame).
  await waitFor(
    "the queue stats preview in the active editor",
    DEADLINE.preview,
    async () => {
      await wb.failIfExtensionError();
      if (!/Preview queue-stats\.md/i.test(await wb.activeTabTitle())) return false;
      const text = await wb.activeWebviewText();
      return text.includes("Switchyard queue stats") && /Query/.test(text);
    },
    async () =>
      `active tab: ${await wb.activeTabTitle()}; it shows: ${(await wb.activeWebviewText()).slice(0, 200)}; tabs: ${await tabTitles(page)}; notifications: ${(await wb.notifications()).join(" | ")}`,
  );
  const shownStats = await wb.activeWebviewText();
  if (shownStats.includes("Workspace analysis")) {
    throw new Error(
      `the queue stats tab shows the workspace analysis: ${shownStats.slice(0, 200)}`,
    );
  }
  await wb.screenshot("04-queue-stats");

  await wb.runCommand("Switchyard: Show Dead Letters");
  const picker = page.locator(".quick-input-widget .quick-input-title", {
    hasText: "Switchyard: Dead Letters",
  });
  const shown = await waitFor(
    "the dead letters (a picker, or a message that there are none)",
    DEADLINE.preview,
    async () => {
      await wb.failIfExtensionError();
      if (await picker.isVisible()) return "picker";
      if ((await wb.notifications()).some((n) => n.includes("Switchyard: no dead letters")))
        return "none";
      return false;
    },
    async () => `notifications: ${(await wb.notifications()).join(" | ")}`,
  );
  await wb.screenshot("05-dead-letters");
  if (shown === "picker") await page.keyboard.press("Escape");
  return `queue stats preview opened; dead letters: ${shown === "none" ? "none, as the message says" : "listed"}`;
}

async function askPart(wb, workspace) {
  const page = wb.page;
  const file = path.join(workspace, "src/greet.rs");
  const onDisk = fs.readFileSync(file, "utf8");

  await wb.openFile("src/greet.rs");
  await waitFor("greet.rs in the editor", DEADLINE.openFile, async () =>
    (await wb.editorText()).includes("Hello, {name}!"),
  );
  await wb.focusEditor();
  await page.keyboard.press("Control+End");
  await page.keyboard.type(`\n${TYPED_LINE}`);
  const dirtyTab = page
    .locator(".part.editor .tabs-container .tab.dirty", { hasText: "greet.rs" })
    .first();
  await waitFor(
    "greet.rs to be modified",
    DEADLINE.openFile,
    async () => (await dirtyTab.isVisible()) && (await wb.editorText()).includes(TYPED_LINE),
  );
  await wb.screenshot("06-ask-typed");

  await wb.runCommand("Switchyard: Ask…");
  const title = page.locator(".quick-input-widget .quick-input-title", {
    hasText: "Switchyard: Ask",
  });
  await title.waitFor({ state: "visible", timeout: DEADLINE.palette });
  await page.locator(".quick-input-widget .quick-input-box input").fill(PROMPT);
  await page.keyboard.press("Enter");

  // The edit arrives through workspace/applyEdit. An approval prompt
  // (window/showMessageRequest) is answered with its Allow button.
  let approvals = 0;
  await waitFor(
    "the agent's edit (Howdy) in the editor",
    DEADLINE.ask,
    async () => {
      const allow = page
        .locator(".notifications-toasts .notification-toast .monaco-button", {
          hasText: /^\s*(Allow|Approve|Yes)/i,
        })
        .first();
      if (await allow.isVisible()) {
        approvals += 1;
        log(`approval prompt: ${(await wb.notifications()).join(" | ")}`);
        await allow.click();
      }
      await wb.failIfExtensionError();
      return (await wb.editorText()).includes("Howdy, {name}!");
    },
    async () =>
      `editor: ${JSON.stringify(await wb.editorText())}; notifications: ${(await wb.notifications()).join(" | ")}; transcript: ${JSON.stringify(await transcript(page))}`,
  );
  const edited = await wb.editorText();
  if (!edited.includes(TYPED_LINE)) {
    throw new Error(
      `the agent's edit lost the unsaved text; the editor shows: ${JSON.stringify(edited)}`,
    );
  }
  if (!(await dirtyTab.isVisible()))
    throw new Error("greet.rs is not dirty after the agent's edit");
  if (fs.readFileSync(file, "utf8") !== onDisk) {
    throw new Error(
      "the agent's edit was written to disk: in LSP mode edits must stay in the buffer",
    );
  }
  await waitFor(
    "the final answer in the Switchyard output channel",
    DEADLINE.ask,
    async () => (await transcript(page)).includes("Changed the greeting to Howdy."),
    async () => JSON.stringify(await transcript(page)),
  );
  await wb.screenshot("07-ask-edited");

  await wb.tab("greet.rs").click();
  await wb.focusEditor();
  await page.keyboard.press("Control+Z");
  await waitFor(
    "Ctrl+Z to take the agent's edit back",
    DEADLINE.undo,
    async () => {
      const text = await wb.editorText();
      return (
        text.includes("Hello, {name}!") && !text.includes("Howdy") && text.includes(TYPED_LINE)
      );
    },
    async () => JSON.stringify(await wb.editorText()),
  );
  await wb.screenshot("08-ask-undone");
  return `edit applied to the unsaved buffer (dirty, disk untouched), ${approvals} approval prompt(s), undone with Ctrl+Z; model requests: ${modelRequests(workspace)}`;
}

/** The mock model's recorded requests, parsed. */
function recordedRequests(workspace) {
  const record = path.join(path.dirname(workspace), "mock-requests.jsonl");
  if (!fs.existsSync(record)) return [];
  return fs
    .readFileSync(record, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((line) => JSON.parse(line));
}

/** Sends a prompt from the chat's prompt box with Enter. */
async function sendChat(chat, text) {
  const box = chat.locator("#prompt");
  await box.fill(text);
  await box.press("Enter");
}

/** Waits until the chat has no prompt running and its last answer says `text`. */
async function chatAnswered(wb, chat, text, what) {
  await waitFor(
    what,
    DEADLINE.ask,
    async () => {
      await wb.failIfExtensionError();
      const running = await chat.evaluate(() => document.body.classList.contains("running"));
      const answers = await chat.locator(".msg.assistant:not(.streaming)").allInnerTexts();
      return !running && answers.some((a) => a.includes(text));
    },
    async () =>
      `chat shows: ${JSON.stringify((await chat.locator("#transcript").innerText()).slice(-400))}`,
  );
}

async function chatPart(wb, workspace) {
  const page = wb.page;
  await wb.runCommand("Switchyard: Open Chat");
  const chat = await waitFor("the chat view's webview", DEADLINE.openFile, () => wb.chatFrame());
  await chat.locator("#prompt").waitFor({ state: "visible", timeout: DEADLINE.openFile });
  const said = [];

  // 1. A prompt typed in the box: three read-only calls run as one batch, then the answer
  // streams in as Markdown.
  await chat.evaluate(() => {
    window.__streaming = 0;
    new MutationObserver(() => {
      if (document.querySelector(".msg.assistant.streaming")) window.__streaming += 1;
    }).observe(document.getElementById("transcript"), {
      subtree: true,
      childList: true,
      characterData: true,
    });
  });
  await sendChat(chat, "CHAT-A: explain the greeting");
  await chatAnswered(wb, chat, "The greeting", "the Markdown answer to CHAT-A");
  const answer = chat.locator(".msg.assistant", { hasText: "The greeting" }).last();
  const shown = await answer.evaluate((el) => ({
    heading: el.querySelector("h2")?.textContent ?? "",
    bold: el.querySelector("strong")?.textContent ?? "",
    items: el.querySelectorAll("li").length,
    keywords: el.querySelectorAll("pre code .hljs-keyword").length,
    buttons: [...el.querySelectorAll(".code-bar button")].map((b) => b.textContent),
    unsafe: el.querySelectorAll("script, img, [onerror]").length,
    pwned: window.__pwned === true,
    streamed: window.__streaming,
  }));
  if (
    shown.heading !== "The greeting" ||
    shown.bold !== "Hello" ||
    shown.items !== 2 ||
    shown.keywords === 0 ||
    shown.buttons.join(",") !== "Copy,Insert at cursor"
  ) {
    throw new Error(`the answer is not rendered as Markdown: ${JSON.stringify(shown)}`);
  }
  if (shown.unsafe > 0 || shown.pwned) {
    throw new Error(`the model's HTML reached the page: ${JSON.stringify(shown)}`);
  }
  if (shown.streamed === 0) throw new Error("the answer was never seen streaming");
  const rows = await chat.locator("details.tool").evaluateAll((els) =>
    els.map((el) => ({
      title: el.querySelector(".title")?.textContent ?? "",
      lane: el.querySelector(".lane")?.textContent ?? "",
      state: el.querySelector(".state")?.textContent ?? "",
      batch: el.dataset.batch,
    })),
  );
  const batch = new Set(rows.map((r) => r.batch));
  if (
    rows.length !== 3 ||
    batch.size !== 1 ||
    !rows.every((r) => r.lane === "query" && r.state === "completed")
  ) {
    throw new Error(`expected one batch of three completed Query calls: ${JSON.stringify(rows)}`);
  }
  await chat.locator("details.tool summary").first().click();
  await chat.locator("details.tool[open] .tool-body pre").first().waitFor({ state: "visible" });
  await wb.screenshot("10-chat-answer");
  said.push(
    `Markdown answer streamed (${shown.streamed} streaming updates, ${shown.keywords} highlighted keywords, HTML of the model inert), one batch of ${rows.map((r) => r.title.split(" ")[0]).join("+")} completed on the query lane`,
  );

  // 2. An approval, answered in the view (not a VS Code prompt).
  await sendChat(chat, "CHAT-B: say more in the doc comment");
  const allow = chat.locator('.card.approval button[data-answer="Allow"]');
  await waitFor("the approval card in the chat", DEADLINE.ask, async () => {
    await wb.failIfExtensionError();
    return allow.isVisible();
  });
  const toasts = await wb.notifications();
  if (toasts.some((n) => n.includes("Switchyard wants to"))) {
    throw new Error(`the approval also went to a VS Code prompt: ${toasts.join(" | ")}`);
  }
  await wb.screenshot("11-chat-approval");
  await allow.click();
  await chatAnswered(wb, chat, "The doc comment says more now.", "the answer to CHAT-B");
  const answered = await chat.locator(".card.approval .answered").last().innerText();
  if (!answered.includes("Allow")) throw new Error(`the approval card says: ${answered}`);
  said.push("approval answered inline with Allow");

  // 3. Review mode: the change opens as a diff; the user keeps the first hunk only.
  // Turned on from the chat's toolbar, which sets `switchyard.review`; the server says when
  // the new configuration is in force.
  const updates = () => (wb.extensionLog().match(/configuration updated/g) ?? []).length;
  const before = updates();
  await chat.locator("#review").check();
  await waitFor(
    "the server to take switchyard.review",
    DEADLINE.preview,
    async () => updates() > before,
  );
  const numbersFile = path.join(workspace, "src/numbers.rs");
  const numbers = fs.readFileSync(numbersFile, "utf8");
  await sendChat(chat, "CHAT-C: bump both numbers");
  const hunkBoxes = chat.locator(".card.review input[data-hunk]");
  await waitFor("the review card with two hunks", DEADLINE.ask, async () => {
    await wb.failIfExtensionError();
    return (await hunkBoxes.count()) === 2;
  });
  await waitFor(
    "the diff editor of the proposed change",
    DEADLINE.openFile,
    async () => /numbers\.rs ↔ Switchyard's write/.test(await wb.activeTabTitle()),
    async () => `active tab: ${await wb.activeTabTitle()}`,
  );
  await wb.screenshot("12-chat-review");
  await chat.locator('.card.review input[data-hunk="1"]').uncheck();
  await chat.locator('.card.review button[data-action="review-selected"]').click();
  await chatAnswered(wb, chat, "Bumped what you accepted.", "the answer to CHAT-C");
  const reviewed = await chat.locator(".card.review .answered").last().innerText();
  if (!reviewed.includes("Applied hunk 1 of 2"))
    throw new Error(`the review card says: ${reviewed}`);
  const kept = numbers.replace("FIRST: u32 = 1;", "FIRST: u32 = 10;");
  await wb.openFile("src/numbers.rs");
  await waitFor(
    "numbers.rs to hold exactly the accepted hunk",
    DEADLINE.openFile,
    async () => (await wb.editorText()).trimEnd() === kept.trimEnd(),
    async () => JSON.stringify(await wb.editorText()),
  );
  if (fs.readFileSync(numbersFile, "utf8") !== numbers) {
    throw new Error("the reviewed change was written to disk: it must stay in the buffer");
  }
  const told = recordedRequests(workspace).find(
    (r) =>
      r.raw_body.includes("CHAT-C") && r.raw_body.includes("Rejected, so not in the file: hunk 2"),
  );
  if (!told) throw new Error("the mock model was not told that hunk 2 was rejected");
  await wb.screenshot("13-chat-reviewed");
  said.push("review: hunk 1 of 2 applied to the buffer, the model told hunk 2 was rejected");

  // 4. Rewind to before the reviewed prompt: the buffer goes back, the messages go away.
  await chat
    .locator(".msg.user", { hasText: "CHAT-C" })
    .locator('button[data-action="rewind"]')
    .click();
  await waitFor(
    "the rewind to restore numbers.rs and drop the later messages",
    DEADLINE.ask,
    async () =>
      (await chat.locator(".notice", { hasText: "Rewound to before turn 3" }).count()) > 0 &&
      (await chat.locator(".msg.user", { hasText: "CHAT-C" }).count()) === 0 &&
      (await wb.editorText()).trimEnd() === numbers.trimEnd(),
    async () =>
      `editor: ${JSON.stringify(await wb.editorText())}; chat: ${JSON.stringify((await chat.locator("#transcript").innerText()).slice(-300))}`,
  );
  await wb.screenshot("14-chat-rewound");
  said.push("rewound turn 3 (numbers.rs restored)");

  // 5. A new session, then back to the first one with another model.
  await chat.locator("#new-session").click();
  await waitFor(
    "an empty conversation",
    DEADLINE.preview,
    async () => (await chat.locator(".msg").count()) === 0,
  );
  await sendChat(chat, "CHAT-D: a fresh start");
  await chatAnswered(wb, chat, "A fresh session.", "the answer to CHAT-D");
  // The active file went with the prompt as its context chip; removed, it does not.
  const withFile = recordedRequests(workspace).find((r) => r.raw_body.includes("CHAT-D"));
  if (!withFile?.raw_body.includes("The user has `src/numbers.rs` open in the editor")) {
    throw new Error("the active file's chip did not reach the prompt's context");
  }
  await chat.locator('#chips button[data-chip="file"]').click();
  await waitFor(
    "the file chip to go",
    DEADLINE.preview,
    async () => (await chat.locator("#chips .chip").count()) === 0,
  );
  await sendChat(chat, "CHAT-G: no file this time");
  await chatAnswered(wb, chat, "Without the file, then.", "the answer to CHAT-G");
  const withoutFile = recordedRequests(workspace).find((r) => r.raw_body.includes("CHAT-G"));
  if (!withoutFile || withoutFile.raw_body.includes("open in the editor")) {
    throw new Error("a removed context chip still reached the prompt");
  }
  // The model's reasoning folded under "Thinking…", its plan as a checklist.
  await sendChat(chat, "CHAT-T: think and plan");
  await chatAnswered(wb, chat, "Thought it through.", "the answer to CHAT-T");
  const thoughts = await chat.locator("details.thought").evaluateAll((els) =>
    els.map((el) => ({
      summary: el.querySelector("summary")?.textContent ?? "",
      text: el.querySelector(".thought-text")?.textContent ?? "",
      open: el.open,
      streaming: el.classList.contains("streaming"),
    })),
  );
  const wanted = ["Two steps: look, then answer.", "Now answer."];
  if (
    thoughts.length !== 2 ||
    !thoughts.every((t, i) => t.summary === "Thinking…" && t.text === wanted[i]) ||
    thoughts.some((t) => t.open || t.streaming)
  ) {
    throw new Error(`expected two folded thoughts: ${JSON.stringify(thoughts)}`);
  }
  if (await chat.locator("details.thought .thought-text").first().isVisible()) {
    throw new Error("a folded thought shows its text");
  }
  const steps = await chat
    .locator(".plan li")
    .evaluateAll((els) =>
      els.map((el) => `${el.dataset.status}:${el.querySelector(".content")?.textContent}`),
    );
  if (steps.join(",") !== "completed:Look at greet.rs,in_progress:Answer") {
    throw new Error(`the plan's checklist shows: ${JSON.stringify(steps)}`);
  }
  await chat.locator("details.thought summary").first().click();
  await chat.locator("details.thought[open] .thought-text").first().waitFor({ state: "visible" });
  await wb.screenshot("15-chat-thoughts-and-plan");
  said.push("two thoughts folded under Thinking… (one opened on click), the plan as a checklist");
  await wb.screenshot("15-chat-new-session");
  const first = await waitFor("the first session in the picker", DEADLINE.preview, async () => {
    const options = await chat
      .locator("#session option")
      .evaluateAll((els) => els.map((o) => ({ value: o.value, text: o.textContent ?? "" })));
    return options.find((o) => o.text.includes("CHAT-A"));
  });
  await chat.locator("#session").selectOption(first.value);
  await waitFor(
    "the first session's conversation back in the view",
    DEADLINE.preview,
    async () => (await chat.locator(".msg.user", { hasText: "CHAT-A" }).count()) === 1,
  );
  await chat.locator("#model").fill("mock-bigger");
  await chat.locator("#model").press("Enter");
  await sendChat(chat, "CHAT-E: and once more");
  await chatAnswered(wb, chat, "Still here, in the first session.", "the answer to CHAT-E");
  await wb.screenshot("16-chat-resumed");
  const requests = recordedRequests(workspace);
  const fresh = requests.find((r) => r.raw_body.includes("CHAT-D"));
  const resumed = requests.find((r) => r.raw_body.includes("CHAT-E"));
  if (!fresh || fresh.raw_body.includes("CHAT-A")) {
    throw new Error("the new session's request carried the first session's history");
  }
  if (
    !resumed ||
    !resumed.raw_body.includes("CHAT-A") ||
    !resumed.raw_body.includes("CHAT-B") ||
    resumed.raw_body.includes("CHAT-C") ||
    resumed.raw_body.includes("CHAT-D")
  ) {
    throw new Error(
      "the resumed session's request does not carry exactly its history (CHAT-A and CHAT-B, the rewound CHAT-C gone)",
    );
  }
  if (resumed.body?.model !== "mock-bigger") {
    throw new Error(`the resumed prompt went to model ${resumed.body?.model}, not mock-bigger`);
  }
  said.push(
    "new session (the file chip sent as context, then removed and not sent), then the first resumed with its history and the model mock-bigger",
  );

  // 6. Stop: a model that never answers, stopped from the view.
  await sendChat(chat, "CHAT-F: take your time");
  const stop = chat.locator("#stop");
  await waitFor("the Stop button while the prompt runs", DEADLINE.preview, () => stop.isVisible());
  await stop.click();
  await waitFor(
    "the prompt to stop",
    DEADLINE.ask,
    async () =>
      !(await chat.evaluate(() => document.body.classList.contains("running"))) &&
      (await chat.locator(".notice", { hasText: "Stopped." }).count()) > 0,
    async () => JSON.stringify((await chat.locator("#transcript").innerText()).slice(-300)),
  );
  await wb.screenshot("17-chat-stopped");
  said.push("Stop ended a prompt the model never answered");

  // 7. From the palette: Sessions lists the stored ones; MCP Servers says there are none.
  await wb.runCommand("Switchyard: Sessions");
  await page
    .locator(".quick-input-widget .monaco-list-row", { hasText: "CHAT-A" })
    .first()
    .waitFor({ state: "visible", timeout: DEADLINE.palette });
  await wb.screenshot("18-sessions-picker");
  await page.keyboard.press("Escape");
  await wb.runCommand("Switchyard: MCP Servers");
  await waitFor("the MCP servers' answer", DEADLINE.preview, async () => {
    await wb.failIfExtensionError();
    return (await wb.notifications()).some((n) => n.includes("no MCP servers are configured"));
  });
  said.push("the Sessions picker lists them; MCP Servers says none are configured");
  return said.join("; ");
}

async function missingServerPart(wb) {
  const page = wb.page;
  // The user points the extension at a binary that is not there: the extension offers a
  // restart, then says what is missing and offers the install instructions.
  const missing = path.join(path.dirname(wb.userData), "no-such-dir/switchyard");
  fs.writeFileSync(
    path.join(wb.userData, "Machine/settings.json"),
    `${JSON.stringify({ "switchyard.server.path": missing }, null, 2)}\n`,
  );
  const restart = page
    .locator(".notifications-toasts .notification-toast", { hasText: "restart the server" })
    .locator(".monaco-button", { hasText: "Restart" })
    .first();
  const prompted = await waitFor("the offer to restart the server", DEADLINE.hover, () =>
    restart.isVisible(),
  ).catch(() => false);
  if (prompted) await restart.click();
  else await wb.runCommand("Switchyard: Restart Server");
  const error = page.locator(".notifications-toasts .notification-toast", {
    hasText: "Switchyard: cannot find the server",
  });
  await waitFor(
    "the missing-server error with its Install Instructions button",
    DEADLINE.serverRunning,
    async () =>
      (await error.isVisible()) &&
      (await error.locator(".monaco-button", { hasText: "Install Instructions" }).isVisible()) &&
      /not running/.test((await wb.statusItem()).label),
    async () =>
      `notifications: ${(await wb.notifications()).join(" | ")}; status: ${JSON.stringify(await wb.statusItem())}`,
  );
  await wb.screenshot("09-missing-server");
  return `${prompted ? "restart offered on the settings change; " : "restarted from the palette; "}error: ${(
    await error.locator(".notification-list-item-message").innerText()
  ).trim()}`;
}

/** What the mock model was asked: `POST /v1/chat/completions turn 0 → rule 0, ...`. */
function modelRequests(workspace) {
  const record = path.join(path.dirname(workspace), "mock-requests.jsonl");
  if (!fs.existsSync(record)) return "none";
  const lines = fs.readFileSync(record, "utf8").split("\n").filter(Boolean);
  if (lines.length === 0) return "none";
  return lines
    .map((line) => {
      const r = JSON.parse(line);
      return `${r.method} ${r.path} turn ${r.turn} → ${r.status} (${r.rule === null || r.rule === undefined ? "no rule" : `rule ${r.rule}`})`;
    })
    .join(", ");
}

/** What the Switchyard output channel shows (the panel's editor). */
async function transcript(page) {
  const lines = page.locator(".part.panel .monaco-editor .view-lines").first();
  if (!(await lines.isVisible())) return "";
  return (await lines.innerText()).replace(/\u00a0/g, " ");
}

async function tabTitles(page) {
  return (await page.locator(".part.editor .tabs-container .tab").allInnerTexts())
    .map((t) => t.trim())
    .join(", ");
}

// ---- main --------------------------------------------------------------------------------

function tail(file, lines = 40) {
  try {
    return fs.readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return `(no ${file})`;
  }
}

function findFiles(dir, test, found = []) {
  let entries = [];
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return found;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) findFiles(full, test, found);
    else if (test(entry.name)) found.push(full);
  }
  return found;
}

async function main() {
  const node24 = requireEnv("SWITCHYARD_NODE24");
  const codeServer = requireEnv("SWITCHYARD_CODE_SERVER");
  const chromiumPath = requireEnv("SWITCHYARD_CHROMIUM");
  const nodeModules = requireEnv("SWITCHYARD_NODE_MODULES");
  const parts = (process.env.SWITCHYARD_VSCODE_PARTS ?? "analyze,stats,ask,chat,missing")
    .split(",")
    .map((p) => p.trim());
  const server = requireFile(
    path.join(targetDir, "debug/switchyard"),
    "build it with `cargo build --workspace --bins`",
  );

  fs.rmSync(outDir, { recursive: true, force: true });
  fs.mkdirSync(outDir, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "switchyard-vscode-"));
  log(`temporary folder ${tmp}`);
  const dirs = {
    bin: path.join(tmp, "bin"),
    extensions: path.join(tmp, "extensions"),
    userData: path.join(tmp, "user-data"),
    xdg: path.join(tmp, "xdg"),
    workspace: path.join(tmp, "workspace"),
  };
  for (const dir of Object.values(dirs)) fs.mkdirSync(dir, { recursive: true });
  fs.symlinkSync(server, path.join(dirs.bin, "switchyard"));
  fs.cpSync(path.join(here, "fixture"), dirs.workspace, { recursive: true });

  // Node 24 first, so npm, vsce and code-server all run on it.
  const node24Dir = path.dirname(node24);
  const toolEnv = { ...process.env, PATH: `${node24Dir}:${process.env.PATH}` };
  const results = Object.fromEntries(parts.map((p) => [p, { ok: false, detail: "not run" }]));
  const shots = [];
  const versions = {};
  const codeServerLog = path.join(tmp, "code-server.log");
  let browser;
  let failed = false;

  try {
    const vsix = packageExtension(toolEnv);
    const codeServerVersion = run(codeServer, ["--version"], { env: toolEnv })
      .trim()
      .split("\n")
      .at(-1);
    versions["code-server"] = codeServerVersion;
    versions.vscode = /with Code (\S+)/.exec(codeServerVersion)?.[1] ?? "?";
    versions.node = run(node24, ["--version"]).trim();

    let mockUrl;
    if (parts.includes("ask") || parts.includes("chat")) {
      try {
        mockUrl = await startMockModel(tmp);
        log(`mock model at ${mockUrl}`);
      } catch (err) {
        for (const part of ["ask", "chat"]) {
          if (results[part])
            results[part] = { ok: false, detail: `the mock model did not start: ${err.message}` };
        }
      }
    }

    // User settings: a quiet workbench, nothing that saves files behind our back, and the
    // model pointed at the mock.
    const settings = {
      "workbench.startupEditor": "none",
      "workbench.secondarySideBar.defaultVisibility": "hidden",
      "workbench.tips.enabled": false,
      "workbench.enableExperiments": false,
      "workbench.welcomePage.walkthroughs.openOnInstall": false,
      "security.workspace.trust.enabled": false,
      "telemetry.telemetryLevel": "off",
      "update.mode": "none",
      "extensions.autoCheckUpdates": false,
      "extensions.autoUpdate": false,
      "extensions.ignoreRecommendations": true,
      "files.autoSave": "off",
      "git.enabled": false,
      "chat.disableAIFeatures": true,
      "editor.quickSuggestions": { other: "off", comments: "off", strings: "off" },
      "editor.suggestOnTriggerCharacters": false,
      "editor.wordBasedSuggestions": "off",
      "editor.hover.enabled": false,
      "workbench.hover.delay": 200,
      ...(mockUrl
        ? {
            "switchyard.provider": "openai",
            "switchyard.baseUrl": `${mockUrl}/v1`,
            "switchyard.model": "mock",
          }
        : {}),
    };
    fs.mkdirSync(path.join(dirs.userData, "User"), { recursive: true });
    fs.writeFileSync(
      path.join(dirs.userData, "User/settings.json"),
      `${JSON.stringify(settings, null, 2)}\n`,
    );
    // The server by absolute path: code-server gives the extension host the environment of
    // a login shell, whose profile resets PATH, so the temporary bin folder on PATH alone
    // does not reach it. The setting is machine-scoped, so it goes in the remote (machine)
    // settings, as a code-server user would set it.
    fs.mkdirSync(path.join(dirs.userData, "Machine"), { recursive: true });
    fs.writeFileSync(
      path.join(dirs.userData, "Machine/settings.json"),
      `${JSON.stringify({ "switchyard.server.path": path.join(dirs.bin, "switchyard") }, null, 2)}\n`,
    );

    // code-server and everything it starts (the extension host, `switchyard lsp`) see only
    // this environment: temporary XDG folders, our switchyard first on PATH, a dummy key.
    const serverEnv = {};
    for (const [key, value] of Object.entries(process.env)) {
      if (/^(SWITCHYARD_|OPENAI_|ANTHROPIC_|VSCODE_)/.test(key)) continue;
      serverEnv[key] = value;
    }
    Object.assign(serverEnv, {
      PATH: `${dirs.bin}:${node24Dir}:${process.env.PATH}`,
      XDG_CONFIG_HOME: path.join(dirs.xdg, "config"),
      XDG_DATA_HOME: path.join(dirs.xdg, "data"),
      XDG_STATE_HOME: path.join(dirs.xdg, "state"),
      XDG_CACHE_HOME: path.join(dirs.xdg, "cache"),
      OPENAI_API_KEY: "sk-mock-not-a-secret",
      RUST_BACKTRACE: "1",
    });
    const common = ["--extensions-dir", dirs.extensions, "--user-data-dir", dirs.userData];
    log(`installing ${path.relative(repo, vsix)} into code-server`);
    run(codeServer, ["--install-extension", vsix, ...common], { env: serverEnv });

    const port = await freePort();
    const config = path.join(tmp, "code-server.yaml");
    fs.writeFileSync(config, `bind-addr: 127.0.0.1:${port}\nauth: none\ncert: false\n`);
    const logFd = fs.openSync(codeServerLog, "a");
    startProcess(
      "code-server",
      codeServer,
      [
        "--auth",
        "none",
        "--bind-addr",
        `127.0.0.1:${port}`,
        "--config",
        config,
        "--disable-telemetry",
        "--disable-update-check",
        "--disable-workspace-trust",
        "--disable-getting-started-override",
        "--ignore-last-opened",
        ...common,
      ],
      { env: serverEnv, stdio: ["ignore", logFd, logFd] },
    );
    fs.closeSync(logFd);
    const base = `http://127.0.0.1:${port}`;
    await waitFor(
      `code-server at ${base}`,
      DEADLINE.codeServerUp,
      async () => (await fetch(`${base}/healthz`)).ok,
    );
    log(`code-server up at ${base}`);

    const require = createRequire(path.join(nodeModules, "noop.js"));
    const { chromium } = require("playwright-core");
    browser = await chromium.launch({
      executablePath: chromiumPath,
      headless: true,
      timeout: 60_000,
      args: [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    });
    versions.chromium = browser.version();
    const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
    const page = await context.newPage();
    page.setDefaultTimeout(30_000);
    const consoleErrors = [];
    page.on("console", (msg) => {
      if (msg.type() === "error") consoleErrors.push(msg.text().slice(0, 300));
    });
    page.on("pageerror", (err) => consoleErrors.push(String(err).slice(0, 300)));
    const wb = new Workbench(page, shots, dirs.userData);

    await page.goto(`${base}/?folder=${encodeURIComponent(dirs.workspace)}`, {
      waitUntil: "domcontentloaded",
      timeout: DEADLINE.workbench,
    });
    await page
      .locator(".monaco-workbench .part.statusbar")
      .waitFor({ state: "visible", timeout: DEADLINE.workbench });
    await page.locator(STATUS_ITEM).waitFor({ state: "visible", timeout: DEADLINE.workbench });
    await waitFor(
      "the language server to be running (status bar item idle)",
      DEADLINE.serverRunning,
      async () => {
        const item = await wb.statusItem();
        if (/not running/.test(item.label)) {
          // What the server wrote to stderr (`error: ...`, a panic) says why; the client's
          // own lines only that it stopped.
          const lines = [...new Set(wb.extensionLog().split("\n"))];
          const said = [
            ...lines.filter((l) => /^error:|panicked/.test(l)),
            ...lines.filter((l) => /^\[Error/.test(l)),
          ]
            .slice(0, 3)
            .join(" / ");
          throw new Fatal(`the server is not running; the extension's log says: ${said}`);
        }
        return item.label === "Switchyard: idle";
      },
      async () =>
        `${JSON.stringify(await wb.statusItem())}; notifications: ${(await wb.notifications()).join(" | ")}`,
    );
    await wb.screenshot("01-workbench");

    const partRunners = {
      analyze: analyzePart,
      stats: statsPart,
      ask: askPart,
      chat: chatPart,
      missing: missingServerPart,
    };
    for (const part of parts) {
      if (results[part].detail !== "not run") continue; // Failed in setup already.
      const runner = partRunners[part];
      if (!runner) {
        results[part] = {
          ok: false,
          detail: `no such part (parts: ${Object.keys(partRunners).join(", ")})`,
        };
        continue;
      }
      log(`--- ${part}`);
      wb.markLog();
      const start = Date.now();
      try {
        const detail = await runner(wb, dirs.workspace);
        results[part] = {
          ok: true,
          detail: `${detail} (${((Date.now() - start) / 1000).toFixed(1)}s)`,
        };
      } catch (err) {
        let shot = "";
        try {
          shot = path.relative(repo, await wb.screenshot(`fail-${part}`));
        } catch {
          // The page may be gone.
        }
        const asked = ["ask", "chat"].includes(part)
          ? `; model requests: ${modelRequests(dirs.workspace)}`
          : "";
        results[part] = {
          ok: false,
          detail: `${err.message}${asked}${shot ? ` [screenshot ${shot}]` : ""}`,
        };
        // Close whatever the failure left open before the next part.
        await page.keyboard.press("Escape").catch(() => {});
      }
    }
    if (Object.values(results).some((r) => !r.ok) && consoleErrors.length > 0) {
      log(`browser console errors (last 10):\n  ${consoleErrors.slice(-10).join("\n  ")}`);
    }
  } catch (err) {
    failed = true;
    log(`setup failed: ${err.stack ?? err}`);
    for (const result of Object.values(results)) {
      if (result.detail === "not run") result.detail = `not run: setup failed: ${err.message}`;
    }
  } finally {
    if (browser) await browser.close().catch(() => {});
    await stopAll();
  }

  if (failed || Object.values(results).some((r) => !r.ok)) {
    log(`code-server log (last lines of ${codeServerLog}):\n${tail(codeServerLog, 30)}`);
    for (const file of findFiles(dirs.userData, (n) => /Switchyard|exthost\.log/.test(n))) {
      log(`${path.relative(tmp, file)} (last lines):\n${tail(file, 30)}`);
    }
  }
  console.log("\nVS Code suite");
  for (const [key, value] of Object.entries(versions)) console.log(`  ${key}: ${value}`);
  for (const [part, result] of Object.entries(results)) {
    console.log(`  ${result.ok ? "PASS" : "FAIL"} ${part}: ${result.detail}`);
  }
  if (shots.length > 0) console.log(`  screenshots: ${shots.join(", ")}`);
  const ok = !failed && Object.values(results).every((r) => r.ok);
  if (ok && !process.env.SWITCHYARD_VSCODE_KEEP) fs.rmSync(tmp, { recursive: true, force: true });
  else console.log(`  temporary folder kept: ${tmp}`);
  process.exitCode = ok ? 0 : 1;
}

await main();
