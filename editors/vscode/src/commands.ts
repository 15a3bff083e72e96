/**
 * The palette commands. Their ids differ from the server's `workspace/executeCommand` ids
 * (`switchyard.analyze` runs `switchyard.analyzeWorkspace`): the language client registers
 * the server's ids as VS Code commands itself.
 */

import * as vscode from "vscode";
import * as lc from "vscode-languageclient/node";

import { type Client, errorMessage } from "./client";
import * as config from "./config";
import * as ext from "./lsp_ext";
import { capitalize, normalizeLanes, type StatusBar } from "./status";

/** What the commands share; built once in `main.ts`. */
export interface Ctx {
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
    };
    return Object.entries(commands).map(([id, run]) =>
        vscode.commands.registerCommand(id, async () => {
            try {
                await run(ctx);
            } catch (err) {
                if (isCancellation(err)) return;
                void vscode.window.showErrorMessage(`Switchyard: ${errorMessage(err)}`);
            }
        }),
    );
}

// ---- Analyze -----------------------------------------------------------------------------

async function analyze(ctx: Ctx): Promise<void> {
    const client = await ctx.client.get();
    if (client === undefined) return;
    const result = await withServerProgress(ctx, client, "Switchyard: analyzing the workspace", (token, cancel) =>
        client.sendRequest(
            lc.ExecuteCommandRequest.type,
            { command: ext.Command.analyzeWorkspace, arguments: [], workDoneToken: token },
            cancel,
        ),
    );
    const report = asAnalyzeResult(result);
    if (report.uri !== undefined) {
        const uri = vscode.Uri.parse(report.uri);
        if (await exists(uri)) {
            await vscode.commands.executeCommand("markdown.showPreview", uri);
            return;
        }
    }
    if (report.markdown === undefined) {
        throw new Error("the server returned no analysis report");
    }
    await ctx.docs.showPreview("Analysis.md", report.markdown);
}

function asAnalyzeResult(value: unknown): ext.AnalyzeResult {
    if (typeof value === "string") {
        return /^[a-z][a-z0-9+.-]*:/i.test(value) ? { uri: value } : { markdown: value };
    }
    if (value && typeof value === "object") return value as ext.AnalyzeResult;
    return {};
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
    const context: ext.AskContext | undefined = editor && {
        textDocument: c2p.asTextDocumentIdentifier(editor.document),
        selection: c2p.asRange(editor.selection),
    };
    ctx.transcript.begin(prompt);
    const result = await withServerProgress(ctx, client, "Switchyard: working on it", (token, cancel) =>
        client.sendRequest(
            ext.ask,
            { sessionId: ctx.sessionId, prompt, context, workDoneToken: token },
            cancel,
        ),
    ).catch((err: unknown) => {
        ctx.transcript.end(isCancellation(err) ? "cancelled" : `failed: ${errorMessage(err)}`);
        throw err;
    });
    ctx.sessionId = result.sessionId;
    ctx.transcript.end(result.stopReason ?? "done");
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
            case "agent_thought_chunk":
                return; // Thoughts stay out of the transcript.
            case "tool_call": {
                this.tools.set(u.toolCallId, { title: u.title, lane: u.lane });
                this.line(`  ⚙ ${u.title}${lane(u.lane)} ${u.status ?? "pending"}`);
                return;
            }
            case "tool_call_update": {
                const known = this.tools.get(u.toolCallId);
                const title = u.title ?? known?.title ?? u.toolCallId;
                const status = u.status ?? "in_progress";
                if (status === "in_progress" && u.durationMs === undefined) return;
                const mark = status === "completed" ? "✓" : status === "failed" ? "✗" : "⚙";
                const took = u.durationMs === undefined ? "" : ` in ${formatMs(u.durationMs)}`;
                const why = u.error ? `: ${u.error}` : "";
                this.line(`  ${mark} ${title}${lane(u.lane ?? known?.lane)} ${status}${took}${why}`);
                if (status !== "in_progress" && status !== "pending") this.tools.delete(u.toolCallId);
                return;
            }
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
    void vscode.window.showInformationMessage("Switchyard: the next question starts a new session.");
}

// ---- Cancel ------------------------------------------------------------------------------

async function cancel(ctx: Ctx): Promise<void> {
    // Our own requests first ($/cancelRequest), then whatever the server still runs for them.
    for (const source of ctx.running) source.cancel();
    const client = await ctx.client.get();
    if (client === undefined) return;
    const params: ext.CancelParams = ctx.sessionId ? { sessionId: ctx.sessionId } : {};
    await client.sendRequest(lc.ExecuteCommandRequest.type, {
        command: ext.Command.cancel,
        arguments: [params],
    });
    vscode.window.setStatusBarMessage("Switchyard: cancelled", 3000);
}

// ---- Queue stats and dead letters --------------------------------------------------------

async function showQueueStats(ctx: Ctx): Promise<void> {
    const client = await ctx.client.get();
    if (client === undefined) return;
    const stats = (await client.sendRequest(lc.ExecuteCommandRequest.type, {
        command: ext.Command.queueStats,
        arguments: [],
    })) as ext.QueueStats | null;
    await ctx.docs.showPreview("Queue Stats.md", renderQueueStats(stats ?? { lanes: [] }));
}

function renderQueueStats(stats: ext.QueueStats): string {
    const lanes = normalizeLanes(stats);
    const out = ["# Switchyard queue stats", ""];
    out.push(`_${new Date().toLocaleString()}_`, "");
    if (lanes.length === 0) {
        out.push("No lanes reported.");
        return out.join("\n");
    }
    out.push("| lane | max | queued | running | done | failed | retried | dead-lettered |");
    out.push("|:--|--:|--:|--:|--:|--:|--:|--:|");
    for (const l of lanes) {
        const max = l.maxConcurrency === undefined ? "" : l.maxConcurrency === null ? "∞" : String(l.maxConcurrency);
        out.push(
            `| ${capitalize(l.lane)} | ${max} | ${l.queued} | ${l.running} | ${l.done} | ${l.failed} | ${l.retried ?? ""} | ${l.deadLettered} |`,
        );
    }
    const timed = lanes.filter((l) => l.queueWaitMs || l.runMs);
    if (timed.length > 0) {
        out.push("", "## Latency (ms)", "");
        out.push("| lane | wait p50 | wait p90 | wait p99 | run p50 | run p90 | run p99 |");
        out.push("|:--|--:|--:|--:|--:|--:|--:|");
        const f = (v: number | undefined) => (v === undefined ? "" : String(Math.round(v * 10) / 10));
        for (const l of timed) {
            const w = l.queueWaitMs ?? {};
            const r = l.runMs ?? {};
            out.push(
                `| ${capitalize(l.lane)} | ${f(w.p50)} | ${f(w.p90)} | ${f(w.p99)} | ${f(r.p50)} | ${f(r.p90)} | ${f(r.p99)} |`,
            );
        }
    }
    if (stats.deadLetters !== undefined) {
        out.push("", `Dead letters kept: ${stats.deadLetters} (Switchyard: Show Dead Letters).`);
    }
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
        const answer = (await client.sendRequest(lc.ExecuteCommandRequest.type, {
            command: ext.Command.deadLetters,
            arguments: [],
        })) as ext.DeadLetters | ext.DeadLetter[] | null;
        const letters = Array.isArray(answer) ? answer : (answer?.deadLetters ?? []);
        return letters.map((letter) => ({
            letter,
            label: `$(error) ${capitalize(letter.lane)}: ${letter.task ?? `task ${letter.id}`}`,
            description: [
                letter.attempts === undefined ? undefined : `${letter.attempts} attempt${letter.attempts === 1 ? "" : "s"}`,
                letter.failedAt,
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
            await client.sendRequest(lc.ExecuteCommandRequest.type, {
                command: ext.Command.retryDeadLetter,
                arguments: [params],
            });
            vscode.window.setStatusBarMessage(`Switchyard: retrying ${item.letter.task ?? item.letter.id}`, 3000);
            pick.items = await load();
            if (pick.items.length === 0) pick.hide();
        } catch (err) {
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
    const providers: config.Provider[] = configured === "anthropic" ? ["anthropic", "openai"] : ["openai", "anthropic"];
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
                const step = value.percentage === undefined ? undefined : Math.max(0, value.percentage - done);
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
        (err instanceof vscode.CancellationError)
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
