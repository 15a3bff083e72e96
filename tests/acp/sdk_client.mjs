// An ACP client built on the official TypeScript SDK's ClientSideConnection, driving
// `switchyard acp` through one scenario and printing what it observed as one JSON object
// on stdout (tests/tests/agent_acp.rs asserts on it).
//
//   node sdk_client.mjs SCENARIO ROOT [SESSION_ID]
//
// Environment: SWITCHYARD_BIN (the agent), SWITCHYARD_ACP_MODULES (node_modules holding
// @agentclientprotocol/sdk); the model settings are inherited by the agent.
//
// Scenarios:
//   buffers  the client serves an unsaved buffer of src/main.rs through fs/read_text_file
//            (honouring line/limit), receives the agent's edit through fs/write_text_file
//            into that buffer and allows it once; then prompts again in the session (the
//            agent greps and reads again). Other files: not found, except src/locked.rs,
//            which the client refuses with an internal error;
//   cancel   sends session/cancel after the first streamed chunk, then prompts again;
//   load     loads SESSION_ID, after writing garbage lines to the agent's stdin;
//   terminal lets the agent run bash in a client terminal (terminal/*).

import { spawn, spawnSync } from "node:child_process";
import { Readable, Writable } from "node:stream";
import { pathToFileURL } from "node:url";
import path from "node:path";

const [scenario, root, loadId] = process.argv.slice(2);
const acp = await import(
  pathToFileURL(
    path.join(process.env.SWITCHYARD_ACP_MODULES, "@agentclientprotocol/sdk/dist/acp.js"),
  ).href
);

const agent = spawn(process.env.SWITCHYARD_BIN, ["acp"], {
  cwd: root,
  stdio: ["pipe", "pipe", "inherit"],
});
const guard = setTimeout(() => {
  console.error(`sdk_client: ${scenario} did not finish in 60 s`);
  agent.kill();
  process.exit(3);
}, 60_000);

const seen = {
  scenario,
  updates: [],
  permissions: [],
  reads: [],
  writes: [],
  terminals: [],
  stops: [],
  errors: [],
};
// The client's buffers: unsaved text that differs from the disk.
const buffers = new Map([
  [path.join(root, "src/main.rs"), 'fn main() {\n    println!("hello from the unsaved buffer");\n}\n'],
]);
let onChunk = () => {};
const terminals = new Map();

class Client {
  async requestPermission(params) {
    seen.permissions.push({
      toolCallId: params.toolCall.toolCallId,
      title: params.toolCall.title,
      options: params.options.map((o) => o.kind),
    });
    return { outcome: { outcome: "selected", optionId: "allow-once" } };
  }
  async sessionUpdate(params) {
    seen.updates.push(params.update);
    if (params.update.sessionUpdate === "agent_message_chunk") onChunk();
  }
  async readTextFile(params) {
    seen.reads.push({ path: params.path, line: params.line ?? null, limit: params.limit ?? null });
    if (params.path === path.join(root, "src/locked.rs")) {
      throw acp.RequestError.internalError(undefined, "src/locked.rs is locked by the user");
    }
    const text = buffers.get(params.path);
    if (text === undefined) throw acp.RequestError.resourceNotFound(params.path);
    // As Zed does: lines from `line` (1-based), at most `limit` of them.
    const lines = text.split(/(?<=\n)/);
    const from = (params.line ?? 1) - 1;
    const to = params.limit == null ? lines.length : from + params.limit;
    return { content: lines.slice(from, to).join("") };
  }
  async writeTextFile(params) {
    seen.writes.push({ path: params.path, content: params.content });
    buffers.set(params.path, params.content);
    return {};
  }
  async createTerminal(params) {
    const id = `term-${terminals.size + 1}`;
    // The client runs the command its own way; here, to its end, in the given cwd.
    const run = spawnSync(params.command, params.args ?? [], {
      cwd: params.cwd ?? root,
      encoding: "utf8",
    });
    terminals.set(id, {
      output: (run.stdout ?? "") + (run.stderr ?? ""),
      exitStatus: { exitCode: run.status, signal: run.signal },
    });
    seen.terminals.push({ command: params.command, args: params.args ?? [], cwd: params.cwd });
    return { terminalId: id };
  }
  async terminalOutput(params) {
    const t = terminals.get(params.terminalId);
    return { output: t.output, truncated: false, exitStatus: t.exitStatus };
  }
  async waitForTerminalExit(params) {
    return terminals.get(params.terminalId).exitStatus;
  }
  async killTerminal() {
    return {};
  }
  async releaseTerminal(params) {
    seen.terminals.push({ released: params.terminalId });
    return {};
  }
}

const stream = acp.ndJsonStream(Writable.toWeb(agent.stdin), Readable.toWeb(agent.stdout));
const connection = new acp.ClientSideConnection(() => new Client(), stream);

const init = await connection.initialize({
  protocolVersion: acp.PROTOCOL_VERSION,
  clientCapabilities: {
    fs: { readTextFile: scenario === "buffers", writeTextFile: scenario === "buffers" },
    terminal: scenario === "terminal",
  },
});
seen.protocolVersion = init.protocolVersion;

const text = (t) => ({ type: "text", text: t });

if (scenario === "buffers") {
  const { sessionId } = await connection.newSession({ cwd: root, mcpServers: [] });
  seen.sessionId = sessionId;
  const answer = await connection.prompt({
    sessionId,
    prompt: [
      text("Change the greeting in"),
      {
        type: "resource_link",
        uri: pathToFileURL(path.join(root, "src/main.rs")).href,
        name: "main.rs",
      },
    ],
  });
  seen.stops.push(answer.stopReason);
  seen.readsInFirstPrompt = seen.reads.length;
  const again = await connection.prompt({ sessionId, prompt: [text("Where is the greeting now?")] });
  seen.stops.push(again.stopReason);
} else if (scenario === "cancel") {
  const { sessionId } = await connection.newSession({ cwd: root, mcpServers: [] });
  seen.sessionId = sessionId;
  let cancelled = false;
  onChunk = () => {
    if (!cancelled) {
      cancelled = true;
      connection.cancel({ sessionId });
    }
  };
  const first = await connection.prompt({ sessionId, prompt: [text("first prompt")] });
  seen.stops.push(first.stopReason);
  seen.chunksBeforeCancel = seen.updates.filter(
    (u) => u.sessionUpdate === "agent_message_chunk",
  ).length;
  onChunk = () => {};
  const second = await connection.prompt({ sessionId, prompt: [text("second prompt")] });
  seen.stops.push(second.stopReason);
} else if (scenario === "load") {
  // Garbage first: the agent answers it with errors the SDK cannot match to a request,
  // and goes on serving.
  agent.stdin.write("{this is not json\n");
  agent.stdin.write('{"jsonrpc":"2.0","id":99,"method":"session/unknown","params":{}}\n');
  try {
    await connection.loadSession({ sessionId: "no-such-session", cwd: root, mcpServers: [] });
  } catch (e) {
    seen.errors.push({ code: e.code, message: e.message });
  }
  await connection.loadSession({ sessionId: loadId, cwd: root, mcpServers: [] });
  seen.loaded = true;
} else if (scenario === "terminal") {
  const { sessionId } = await connection.newSession({ cwd: root, mcpServers: [] });
  const answer = await connection.prompt({ sessionId, prompt: [text("run the tests")] });
  seen.stops.push(answer.stopReason);
} else {
  throw new Error(`unknown scenario ${scenario}`);
}

clearTimeout(guard);
console.log(JSON.stringify(seen));
agent.stdin.end();
agent.kill();
process.exit(0);
