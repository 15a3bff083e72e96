/**
 * The palette commands. Their ids differ from the server's `workspace/executeCommand` ids
 * (`switchyard.analyze` runs `switchyard.analyzeWorkspace`): the language client registers
 * the server's ids as VS Code commands itself.
 */

import * as vscode from "vscode";
import * as lc from "vscode-languageclient/node";

import type { Chat } from "./chat";
import { type Client, errorMessage } from "./client";
import * as config from "./config";
import * as ext from "./lsp_ext";
import { capitalize, type StatusBar } from "./status";

/** What the commands share; built once in `main.ts`. */
export interface Ctx {
    readonly chat: Chat;
    readonly client: Client;
    readonly status: StatusBar;
    readonly transcript: Transcript;
    readonly docs: VirtualDocs;
    readonly secrets: vscode.SecretStorage;
    /** The agent session follow-up questions continue, once there is one. */
    sessionId: string | undefined;
    /** Requests the Cancel command cancels. */
    readonly running: Set<vscode.CancellationTokenSource>;
}

export function register(ctx: Ctx): vscode.Disposable[] {
    const commands: Record<string, (ctx: Ctx) => Promise<unknown>> = {
        "switchyard.analyze": analyze,
        "switchyard.askPrompt": ask,
        "switchyard.cancelWork": cancel,
        "switchyard.showQueueStats": showQueueStats,
        "switchyard.showDeadLetters": showDeadLetters,
        "switchyard.restartServer": restartServer,
        "switchyard.setApiKey": setApiKey,
        "switchyard.newSession": newSession,
        "switchyard.sessions": sessions,
        "switchyard.openChat": async () => vscode.commands.executeCommand("switchyard.chat.focus"),
        "switchyard.mcpServers": mcpServers,
    };
    return Object.entries(commands).map(([id, run]) =>
        vscode.commands.registerCommand(id, async () => {
            try {
                await run(ctx);
            } catch (err) {
                if (isCancellation(err)) return;
                // Logged too: a notification can be pushed out of sight by later ones.
                ctx.client.serverLog.appendLine(`[error] ${id} failed: ${errorMessage(err)}`);
                void vscode.window.showErrorMessage(`Switchyard: ${errorMessage(err)}`);
            }
        }),
    );
}

// ---- Analyze -----------------------------------------------------------------------------

async function analyze(ctx: Ctx): Promise<void> {
    const client = await ctx.client.get();
    if (client === undefined) return;
    // The extension opens the report itself (as a preview), so no `show`.
    const params: ext.AnalyzeWorkspaceParams = {};
    const result = (await withServerProgress(
        ctx,
        client,
        "Switchyard: analyzing the workspace",
        (token, cancel) =>
            client.sendRequest(
                lc.ExecuteCommandRequest.type,
                {
                    command: ext.Command.analyzeWorkspace,
                    arguments: [params],
                    workDoneToken: token,
                },
                cancel,
            ),
    )) as ext.AnalyzeWorkspaceResult | null;
    if (!result) throw new Error("the server returned no analysis");
    const report = vscode.Uri.parse(result.reportUri);
    if (await exists(report)) {
        await vscode.commands.executeCommand("markdown.showPreview", report);
    } else {
        // The server could not write the report (a read-only workspace): show what it returned.
        await ctx.docs.showPreview("analysis.md", result.markdown);
    }
}

async function exists(uri: vscode.Uri): Promise<boolean> {
    try {
        await vscode.workspace.fs.stat(uri);
        return true;
    } catch {
        return false;
    }
}

// ---- Ask ---------------------------------------------------------------------------------

async function ask(ctx: Ctx): Promise<void> {
    const prompt = await vscode.window.showInputBox({
        title: "Switchyard: Ask",
        prompt: ctx.sessionId
            ? "Continue the session (Switchyard: New Session starts over)"
            : "What should the agent do?",
        placeHolder: "e.g. add a doc comment to the function under the cursor",
        ignoreFocusOut: true,
    });
    if (!prompt?.trim()) return;
    const client = await ctx.client.get();
    if (client === undefined) return;

    const editor = vscode.window.activeTextEditor;
    const c2p = client.code2ProtocolConverter;
    const selected = editor?.document.getText(editor.selection);
    const context: ext.AskContext | undefined = editor && {
        file: c2p.asUri(editor.document.uri),
        selection: c2p.asRange(editor.selection),
        selectedText: selected ? selected : undefined,
    };
    ctx.transcript.begin(prompt);
    const result = await withServerProgress(
        ctx,
        client,
        "Switchyard: working on it",
        (token, cancel) =>
            client.sendRequest(
                ext.ask,
                { sessionId: ctx.sessionId, prompt, context, workDoneToken: token },
                cancel,
            ),
    ).catch((err: unknown) => {
        const why =
            err instanceof lc.ResponseError && err.code === lc.ErrorCodes.MethodNotFound
                ? new Error(
                      `this server has no agent (${ext.ask.method}: method not found); update switchyard`,
                  )
                : err;
        ctx.transcript.end(isCancellation(why) ? "cancelled" : `failed: ${errorMessage(why)}`);
        throw why;
    });
    ctx.sessionId = result.sessionId;
    ctx.transcript.end(result.stopMessage ?? result.stopReason);
}

/** The agent's side of the conversation, in the "Switchyard" output channel. */
export class Transcript implements vscode.Disposable {
    private readonly channel = vscode.window.createOutputChannel("Switchyard");
    private atLineStart = true;
    /** Tool calls seen, for their titles and lanes when only an update arrives. */
    private readonly tools = new Map<string, { title: string; lane?: string }>();

    dispose(): void {
        this.channel.dispose();
    }

    begin(prompt: string): void {
        this.channel.show(true);
        this.line(`\n> ${prompt.replace(/\n/g, "\n> ")}\n`);
    }

    end(how: string): void {
        this.line(`— ${how}`);
    }

    /** Renders one `switchyard/sessionUpdate`. */
    update(params: ext.SessionUpdateParams): void {
        const u = params.update;
        switch (u.sessionUpdate) {
            case "agent_message_chunk":
                this.text(contentText(u.content));
                return;
            case "tool_call": {
                this.tools.set(u.toolCallId, { title: u.title, lane: u.lane });
                this.line(`  ⚙ ${u.title}${lane(u.lane)} ${u.status}`);
                return;
            }
            case "tool_call_update": {
                const known = this.tools.get(u.toolCallId);
                const title = known?.title ?? u.toolCallId;
                const mark = u.status === "completed" ? "✓" : u.status === "failed" ? "✗" : "⚙";
                const said = u.content.map((c) => contentText(c.content)).join(" ");
                const why = u.status === "failed" && said ? `: ${said}` : "";
                this.line(
                    `  ${mark} ${title}${lane(u.lane ?? known?.lane)} ${u.status} in ${formatMs(u.durationMs)}${why}`,
                );
                this.tools.delete(u.toolCallId);
                return;
            }
            case "usage":
                return; // The totals are in the answer's last line.
            case "model_retry": {
                const over = u.discardedText ? "; the answer starts over" : "";
                this.line(
                    `  ↻ model call failed (${u.error}); retry ${u.attempt + 1} of ${u.maxAttempts}${over}`,
                );
                return;
            }
            case "model_waiting":
                this.line(`  … waiting up to ${formatMs(u.upToMs)} for ${u.what}`);
                return;
            default:
                return;
        }
    }

    private text(text: string): void {
        if (!text) return;
        this.channel.append(text);
        this.atLineStart = text.endsWith("\n");
    }

    private line(text: string): void {
        this.channel.appendLine(this.atLineStart ? text : `\n${text}`);
        this.atLineStart = true;
    }
}

function contentText(content: ext.ContentBlock | undefined): string {
    if (content === undefined) return "";
    return content.type === "text" ? (content.text ?? "") : `[${content.type}]`;
}

function lane(name: string | undefined): string {
    return name ? ` [${name}]` : "";
}

function formatMs(ms: number): string {
    return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

async function newSession(ctx: Ctx): Promise<void> {
    ctx.sessionId = undefined;
    void vscode.window.showInformationMessage(
        "Switchyard: the next question starts a new session.",
    );
}

// ---- Sessions and MCP servers ------------------------------------------------------------

interface SessionItem extends vscode.QuickPickItem {
    sessionId?: string;
}

const DELETE_BUTTON: vscode.QuickInputButton = {
    iconPath: new vscode.ThemeIcon("trash"),
    tooltip: "Delete",
};

/** The stored sessions in a picker: a new one, or one to resume in the chat view; a button deletes. */
async function sessions(ctx: Ctx): Promise<void> {
    const pick = vscode.window.createQuickPick<SessionItem>();
    pick.title = "Switchyard: Sessions";
    pick.placeholder = "Resume a session in the chat, or start a new one";
    const load = async () => {
        pick.busy = true;
        const list = await ctx.chat.refreshSessions();
        pick.items = [
            { label: "$(add) New session" },
            ...list.map((s) => ({
                sessionId: s.id,
                label: s.title || s.id,
                description: `${plural(s.turns, "turn")} · ${new Date(s.updatedMs).toLocaleString()}`,
                buttons: [DELETE_BUTTON],
            })),
        ];
        pick.busy = false;
    };
    pick.onDidTriggerItemButton(async (e) => {
        if (!e.item.sessionId) return;
        await ctx.chat.deleteSession(e.item.sessionId);
        await load();
    });
    pick.onDidAccept(async () => {
        const item = pick.selectedItems[0];
        pick.hide();
        await vscode.commands.executeCommand("switchyard.chat.focus");
        await ctx.chat.openSession(item?.sessionId);
    });
    pick.onDidHide(() => pick.dispose());
    pick.show();
    await load();
}

interface McpItem extends vscode.QuickPickItem {
    server: ext.McpServerStatus;
}

/** The MCP servers and their state in a picker; picking one shows its tools. */
async function mcpServers(ctx: Ctx): Promise<void> {
    const client = await ctx.client.get();
    if (client === undefined) return;
    const params: ext.McpStatusParams = {};
    const status = (await client.sendRequest(lc.ExecuteCommandRequest.type, {
        command: ext.Command.mcpStatus,
        arguments: [params],
    })) as ext.McpStatusResult | null;
    const servers = status?.servers ?? [];
    if (servers.length === 0) {
        void vscode.window.showInformationMessage(
            "Switchyard: no MCP servers are configured ([mcp_servers.NAME] in the configuration).",
        );
        return;
    }
    const icon: Record<string, string> = {
        running: "$(pass-filled)",
        failed: "$(error)",
        starting: "$(loading~spin)",
        idle: "$(circle-outline)",
        disabled: "$(circle-slash)",
    };
    const picked = await vscode.window.showQuickPick<McpItem>(
        servers.map((server) => ({
            server,
            label: `${icon[server.state] ?? ""} ${server.name}`,
            description: `${server.state} · ${plural(server.tools.length, "tool")}${server.restarts ? ` · ${plural(server.restarts, "restart")}` : ""}`,
            detail: server.lastError ?? undefined,
        })),
        { title: "Switchyard: MCP Servers", placeHolder: "Pick a server to see its tools" },
    );
    if (!picked) return;
    const s = picked.server;
    const out = [
        `# MCP server \`${s.name}\``,
        "",
        `State: **${s.state}**, restarts: ${s.restarts}`,
        "",
    ];
    if (s.lastError) out.push(`Last error: ${s.lastError}`, "");
    out.push("| tool | read-only | destructive | description |", "|:--|:--|:--|:--|");
    for (const t of s.tools) {
        const description = (t.description ?? "").replace(/\|/g, "\\|").replace(/\n/g, " ");
        out.push(
            `| \`${t.name}\` | ${t.readOnly ? "yes" : "no"} | ${t.destructive ? "yes" : "no"} | ${description} |`,
        );
    }
    await ctx.docs.showPreview(`mcp-${s.name}.md`, out.join("\n") + "\n");
}

// ---- Cancel ------------------------------------------------------------------------------

async function cancel(ctx: Ctx): Promise<void> {
    // The extension's own requests are cancelled with $/cancelRequest, which stops their
    // work on the server too; with none running, everything the server runs is cancelled.
    if (ctx.running.size > 0) {
        for (const source of ctx.running) source.cancel();
        vscode.window.setStatusBarMessage("Switchyard: cancelled", 3000);
        return;
    }
    const client = await ctx.client.get();
    if (client === undefined) return;
    const params: ext.CancelParams = {};
    const result = (await client.sendRequest(lc.ExecuteCommandRequest.type, {
        command: ext.Command.cancel,
        arguments: [params],
    })) as ext.CancelResult | null;
    const tasks = result?.tasks ?? 0;
    const commands = result?.commands ?? 0;
    vscode.window.setStatusBarMessage(
        tasks + commands === 0
            ? "Switchyard: nothing to cancel"
            : `Switchyard: cancelled ${plural(tasks, "task")} and ${plural(commands, "command")}`,
        4000,
    );
}

function plural(n: number, what: string): string {
    return `${n} ${what}${n === 1 ? "" : "s"}`;
}

// ---- Queue stats and dead letters --------------------------------------------------------

async function showQueueStats(ctx: Ctx): Promise<void> {
    const client = await ctx.client.get();
    if (client === undefined) return;
    const params: ext.NoParams = {};
    const stats = (await client.sendRequest(lc.ExecuteCommandRequest.type, {
        command: ext.Command.queueStats,
        arguments: [params],
    })) as ext.MetricsSnapshot | null;
    if (!stats) throw new Error("the server returned no queue stats");
    await ctx.docs.showPreview("queue-stats.md", renderQueueStats(stats));
}

function renderQueueStats(stats: ext.MetricsSnapshot): string {
    const out = ["# Switchyard queue stats", "", `_${new Date().toLocaleString()}_`, ""];
    out.push(
        "| lane | max | queued | running | submitted | completed | failed | timed out | cancelled | retried | dead-lettered |",
    );
    out.push("|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for (const l of stats.lanes) {
        const max = l.config.max_concurrency ?? "∞";
        out.push(
            `| ${capitalize(l.lane)} | ${max} | ${l.queued} | ${l.running} | ${l.submitted} | ${l.completed} | ${l.failed} | ${l.timedOut} | ${l.cancelled} | ${l.retried} | ${l.deadLettered} |`,
        );
    }
    const ms = (us: number) => (us / 1000).toFixed(us < 10_000 ? 2 : 0);
    out.push("", "## Latency (ms)", "");
    out.push(
        "| lane | waits | wait p50 | wait p90 | wait p99 | runs | run p50 | run p90 | run p99 | run max |",
    );
    out.push("|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    for (const l of stats.lanes) {
        const w = l.queueWait;
        const r = l.runTime;
        out.push(
            `| ${capitalize(l.lane)} | ${w.count} | ${ms(w.p50Us)} | ${ms(w.p90Us)} | ${ms(w.p99Us)} | ${r.count} | ${ms(r.p50Us)} | ${ms(r.p90Us)} | ${ms(r.p99Us)} | ${ms(r.maxUs)} |`,
        );
    }
    out.push("", "## Overall", "");
    out.push(
        `- running now: ${stats.globalRunning} (cap: ${stats.globalMaxConcurrency ?? "none"})`,
    );
    out.push(
        `- dead letters: ${stats.deadLetters} of ${stats.deadLetterCapacity} kept, ${stats.deadLettersEvicted} evicted (Switchyard: Show Dead Letters)`,
    );
    for (const [name, value] of Object.entries(stats.counters)) out.push(`- \`${name}\`: ${value}`);
    return out.join("\n") + "\n";
}

interface DeadLetterItem extends vscode.QuickPickItem {
    letter: ext.DeadLetter;
}

const RETRY_BUTTON: vscode.QuickInputButton = {
    iconPath: new vscode.ThemeIcon("debug-restart"),
    tooltip: "Retry",
};

async function showDeadLetters(ctx: Ctx): Promise<void> {
    const client = await ctx.client.get();
    if (client === undefined) return;
    const load = async (): Promise<DeadLetterItem[]> => {
        const params: ext.NoParams = {};
        const letters = ((await client.sendRequest(lc.ExecuteCommandRequest.type, {
            command: ext.Command.deadLetters,
            arguments: [params],
        })) ?? []) as ext.DeadLetter[];
        return letters.map((letter) => ({
            letter,
            label: `$(error) ${capitalize(letter.lane)}: ${letter.name}`,
            description: [
                `#${letter.id}`,
                plural(letter.attempts, "attempt"),
                new Date(letter.failedAtMs).toLocaleString(),
                letter.session ?? undefined,
            ]
                .filter(Boolean)
                .join(" · "),
            detail: letter.error,
            buttons: [RETRY_BUTTON],
        }));
    };

    const items = await load();
    if (items.length === 0) {
        void vscode.window.showInformationMessage("Switchyard: no dead letters.");
        return;
    }
    const pick = vscode.window.createQuickPick<DeadLetterItem>();
    pick.title = "Switchyard: Dead Letters";
    pick.placeholder = "Enter or the retry button replays a task";
    pick.matchOnDetail = true;
    pick.items = items;
    const retry = async (item: DeadLetterItem) => {
        pick.busy = true;
        try {
            const params: ext.RetryDeadLetterParams = { id: item.letter.id };
            const result = (await client.sendRequest(lc.ExecuteCommandRequest.type, {
                command: ext.Command.retryDeadLetter,
                arguments: [params],
            })) as ext.RetryDeadLetterResult | null;
            vscode.window.setStatusBarMessage(
                `Switchyard: retrying ${item.letter.name} as task ${result?.taskId ?? "?"}`,
                4000,
            );
            pick.items = await load();
            if (pick.items.length === 0) pick.hide();
        } catch (err) {
            ctx.client.serverLog.appendLine(
                `[error] retrying dead letter ${item.letter.id} failed: ${errorMessage(err)}`,
            );
            void vscode.window.showErrorMessage(`Switchyard: retry failed: ${errorMessage(err)}`);
        } finally {
            pick.busy = false;
        }
    };
    pick.onDidTriggerItemButton((e) => void retry(e.item));
    pick.onDidAccept(() => {
        const item = pick.selectedItems[0];
        if (item) void retry(item);
    });
    pick.onDidHide(() => pick.dispose());
    pick.show();
}

// ---- Server and key management -----------------------------------------------------------

async function restartServer(ctx: Ctx): Promise<void> {
    const client = await ctx.client.restart();
    if (client) vscode.window.setStatusBarMessage("Switchyard: server restarted", 3000);
}

async function setApiKey(ctx: Ctx): Promise<void> {
    const configured = config.configuredProvider();
    const providers: config.Provider[] =
        configured === "anthropic" ? ["anthropic", "openai"] : ["openai", "anthropic"];
    const picked = await vscode.window.showQuickPick(
        providers.map((p) => ({ label: p, description: config.API_KEY_ENV[p], provider: p })),
        { title: "Switchyard: Set API Key", placeHolder: "Which provider's key?" },
    );
    if (!picked) return;
    const key = await vscode.window.showInputBox({
        title: `Switchyard: ${picked.provider} API key`,
        prompt: "Kept in VS Code's secret storage and passed to the server as an environment variable. Empty removes it.",
        password: true,
        ignoreFocusOut: true,
    });
    if (key === undefined) return;
    await config.storeApiKey(ctx.secrets, picked.provider, key.trim());
    const choice = await vscode.window.showInformationMessage(
        `Switchyard: ${key.trim() ? "stored" : "removed"} the ${picked.provider} API key. Restart the server to use it?`,
        "Restart",
    );
    if (choice === "Restart") await ctx.client.restart();
}

// ---- helpers -----------------------------------------------------------------------------

/**
 * Runs a server request with a cancellable notification that shows the server's
 * `$/progress` on a token of our own, mirrored in the status bar. Cancelling (here or with
 * the Cancel command) sends `$/cancelRequest`.
 */
async function withServerProgress<T>(
    ctx: Ctx,
    client: lc.LanguageClient,
    title: string,
    run: (token: string, cancel: vscode.CancellationToken) => Promise<T>,
): Promise<T> {
    const token = `switchyard/${Date.now()}/${Math.random().toString(36).slice(2)}`;
    return vscode.window.withProgress(
        { location: vscode.ProgressLocation.Notification, title, cancellable: true },
        async (progress, cancelled) => {
            const source = new vscode.CancellationTokenSource();
            const forward = cancelled.onCancellationRequested(() => source.cancel());
            ctx.running.add(source);
            let done = 0;
            const listener = client.onProgress(lc.WorkDoneProgress.type, token, (value) => {
                if (value.kind === "end") return;
                const step =
                    value.percentage === undefined
                        ? undefined
                        : Math.max(0, value.percentage - done);
                if (value.percentage !== undefined) done = Math.max(done, value.percentage);
                progress.report({ message: value.message, increment: step });
                ctx.status.setProgress(token, value.message ?? title);
            });
            ctx.status.setProgress(token, title.replace(/^Switchyard: /, ""));
            try {
                return await run(token, source.token);
            } finally {
                listener.dispose();
                forward.dispose();
                ctx.running.delete(source);
                source.dispose();
                ctx.status.setProgress(token, undefined);
            }
        },
    );
}

function isCancellation(err: unknown): boolean {
    return (
        (err instanceof lc.ResponseError && err.code === lc.LSPErrorCodes.RequestCancelled) ||
        err instanceof vscode.CancellationError
    );
}

/** Read-only Markdown documents under `switchyard:`, shown as previews. */
export class VirtualDocs implements vscode.TextDocumentContentProvider, vscode.Disposable {
    static readonly scheme = "switchyard";
    private readonly contents = new Map<string, string>();
    private readonly changes = new vscode.EventEmitter<vscode.Uri>();
    readonly onDidChange = this.changes.event;

    provideTextDocumentContent(uri: vscode.Uri): string {
        return this.contents.get(uri.path) ?? "";
    }

    async showPreview(name: string, markdown: string): Promise<void> {
        const uri = vscode.Uri.from({ scheme: VirtualDocs.scheme, path: `/${name}` });
        this.contents.set(uri.path, markdown);
        this.changes.fire(uri);
        await vscode.commands.executeCommand("markdown.showPreview", uri);
    }

    dispose(): void {
        this.changes.dispose();
    }
}
