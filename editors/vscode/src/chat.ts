/**
 * The chat view (a webview view in its own activity-bar container): the conversation with
 * the agent, streamed from `switchyard/sessionUpdate`, with tool calls as foldable rows,
 * approvals and reviews answered inline, a Stop button, the usage line, sessions, the model
 * and the context chips. The extension owns the conversation (`ChatState`); the webview
 * (`webview/chat.ts`) renders it and sends back what the user does.
 */

import * as vscode from "vscode";
import * as lc from "vscode-languageclient/node";

import type {
    ChatState,
    Chip,
    FromView,
    Item,
    ReviewHunkView,
    SessionChoice,
    ToView,
} from "./chat_protocol";
import { type Client, errorMessage } from "./client";
import * as ext from "./lsp_ext";
import type { StatusBar } from "./status";

/** The view's id, as `package.json` declares it. */
export const VIEW_ID = "switchyard.chat";

/** A change under review, as the chat shows it; answered once. */
export interface ReviewCard {
    id: string;
    file: string;
    tool: string;
    hunks: ReviewHunkView[];
    accepted: boolean[];
    /** Opens the diff again. */
    open(): void;
    /** Answers the review with the indices of the accepted hunks. */
    answer(accepted: number[]): void;
}

interface Running {
    source: vscode.CancellationTokenSource;
    sessionId: string | undefined;
}

export class Chat implements vscode.WebviewViewProvider, vscode.Disposable {
    private view: vscode.WebviewView | undefined;
    private readonly state: ChatState;
    private nextId = 0;
    private batch = 0;
    private running: Running | undefined;
    /** The model the user picked in the view, sent with every prompt until changed. */
    private picked: { model: string; provider: string } | undefined;
    private readonly approvals = new Map<string, (answer: string | undefined) => void>();
    private readonly reviews = new Map<string, ReviewCard>();
    /** What the user removed from the context: the chip's label, until it changes. */
    private readonly removed: Partial<Record<Chip["kind"], string>> = {};
    private readonly disposables: vscode.Disposable[] = [];

    constructor(
        private readonly context: vscode.ExtensionContext,
        private readonly client: Client,
        private readonly status: StatusBar,
    ) {
        const configured = vscode.workspace.getConfiguration("switchyard");
        this.state = {
            running: false,
            items: [],
            usage: "",
            chips: [],
            model: configured.get<string | null>("model") ?? "",
            provider: configured.get<string | null>("provider") ?? "",
            sessions: [],
            review: configured.get<string | null>("review") === "changes",
        };
        this.disposables.push(
            vscode.workspace.onDidChangeConfiguration((e) => {
                if (!e.affectsConfiguration("switchyard.review")) return;
                const review = vscode.workspace.getConfiguration("switchyard").get("review");
                this.state.review = review === "changes";
                this.postStatus();
            }),
            vscode.window.onDidChangeActiveTextEditor(() => this.updateChips()),
            vscode.window.onDidChangeTextEditorSelection(() => this.updateChips()),
        );
        this.updateChips();
    }

    dispose(): void {
        for (const d of this.disposables) d.dispose();
        for (const resolve of this.approvals.values()) resolve(undefined);
        this.running?.source.cancel();
    }

    /** Whether the view is on screen (approvals and reviews go to it then). */
    get visible(): boolean {
        return this.view?.visible ?? false;
    }

    resolveWebviewView(view: vscode.WebviewView): void {
        this.view = view;
        const dist = vscode.Uri.joinPath(this.context.extensionUri, "dist");
        view.webview.options = { enableScripts: true, localResourceRoots: [dist] };
        view.webview.html = this.html(view.webview, dist);
        view.webview.onDidReceiveMessage(
            (message: FromView) => void this.receive(message),
            undefined,
            this.disposables,
        );
        view.onDidChangeVisibility(() => {
            if (view.visible) this.postState();
        });
        view.onDidDispose(() => {
            if (this.view === view) this.view = undefined;
        });
    }

    private html(webview: vscode.Webview, dist: vscode.Uri): string {
        const nonce = [...crypto.getRandomValues(new Uint8Array(18))]
            .map((b) => b.toString(16).padStart(2, "0"))
            .join("");
        const script = webview.asWebviewUri(vscode.Uri.joinPath(dist, "chat.js"));
        const style = webview.asWebviewUri(vscode.Uri.joinPath(dist, "chat.css"));
        const csp = [
            "default-src 'none'",
            `style-src ${webview.cspSource}`,
            `script-src 'nonce-${nonce}'`,
            `font-src ${webview.cspSource}`,
            `img-src ${webview.cspSource}`,
        ].join("; ");
        return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${style.toString()}">
<title>Switchyard</title>
</head>
<body data-view="${VIEW_ID}">
<script nonce="${nonce}" src="${script.toString()}"></script>
</body>
</html>`;
    }

    // ---- from the webview ----------------------------------------------------------------

    private async receive(message: FromView): Promise<void> {
        try {
            await this.handle(message);
        } catch (err) {
            this.notice(errorMessage(err), true);
        }
    }

    private async handle(message: FromView): Promise<void> {
        switch (message.type) {
            case "ready":
                this.postState();
                void this.refreshSessions();
                return;
            case "send":
                return this.send(message.text);
            case "stop":
                return this.stop();
            case "approve": {
                const resolve = this.approvals.get(message.id);
                if (resolve) resolve(message.answer);
                return;
            }
            case "reviewToggle": {
                const card = this.reviews.get(message.id);
                if (!card) return;
                card.accepted[message.index] = message.accepted;
                this.updateReviewItem(card);
                return;
            }
            case "reviewAnswer": {
                const card = this.reviews.get(message.id);
                if (!card) return;
                const all = card.hunks.map((h) => h.index);
                const accepted =
                    message.answer === "all"
                        ? all
                        : message.answer === "none"
                          ? []
                          : all.filter((i) => card.accepted[i]);
                card.answer(accepted);
                return;
            }
            case "reviewOpen":
                this.reviews.get(message.id)?.open();
                return;
            case "removeChip": {
                const chip = this.state.chips.find((c) => c.kind === message.kind);
                if (chip) this.removed[message.kind] = chip.label;
                this.updateChips();
                return;
            }
            case "newSession":
                return this.openSession(undefined);
            case "selectSession":
                return this.openSession(message.id);
            case "deleteSession":
                return this.deleteSession(message.id);
            case "setModel":
                this.picked = { model: message.model, provider: message.provider };
                this.state.model = message.model;
                this.state.provider = message.provider;
                this.postStatus();
                return;
            case "setReview":
                await vscode.workspace
                    .getConfiguration("switchyard")
                    .update(
                        "review",
                        message.on ? "changes" : "off",
                        vscode.ConfigurationTarget.Global,
                    );
                return;
            case "rewind":
                return this.rewind(message.id);
            case "copy":
                await vscode.env.clipboard.writeText(message.text);
                return;
            case "insert":
                return this.insert(message.text);
            case "openLink": {
                const uri = vscode.Uri.parse(message.href);
                if (["http", "https"].includes(uri.scheme)) await vscode.env.openExternal(uri);
                return;
            }
        }
    }

    // ---- asking --------------------------------------------------------------------------

    /** Sends a prompt in the current session (a new one when there is none). */
    async send(text: string): Promise<void> {
        if (this.running) return;
        const client = await this.client.get();
        if (client === undefined) {
            this.notice("the Switchyard server is not running", true);
            return;
        }
        const context = this.askContext(client);
        const user: Extract<Item, { kind: "user" }> = {
            kind: "user",
            id: this.id(),
            version: 0,
            text,
            chips: this.state.chips.filter((c) => !c.removed).map((c) => c.label),
        };
        this.push(user);
        const source = new vscode.CancellationTokenSource();
        this.running = { source, sessionId: this.state.sessionId };
        this.state.running = true;
        this.batch += 1;
        this.postStatus();
        const params: ext.AskParams = {
            sessionId: this.state.sessionId,
            prompt: text,
            context,
        };
        if (this.picked?.model) {
            params.model = this.picked.model;
            if (this.picked.provider === "openai" || this.picked.provider === "anthropic")
                params.provider = this.picked.provider;
        }
        try {
            const result = await client.sendRequest(ext.ask, params, source.token);
            this.state.sessionId = result.sessionId;
            user.turn = result.turn;
            this.update(user);
            this.endStreaming();
            const last = this.state.items.at(-1);
            if (last?.kind === "assistant") {
                last.streaming = false;
                if (!last.text.trim()) last.text = result.text;
                this.update(last);
            } else if (result.text.trim()) {
                this.push({
                    kind: "assistant",
                    id: this.id(),
                    version: 0,
                    text: result.text,
                    streaming: false,
                });
            }
            if (result.stopReason !== "end_turn") {
                this.notice(result.stopMessage ?? `stopped: ${result.stopReason}`, false);
            }
            this.setUsage(result.usage, result.sessionUsage);
        } catch (err) {
            this.endStreaming();
            const cancelled =
                err instanceof lc.ResponseError && err.code === lc.LSPErrorCodes.RequestCancelled;
            this.notice(cancelled ? "Stopped." : `Failed: ${errorMessage(err)}`, !cancelled);
        } finally {
            source.dispose();
            this.running = undefined;
            this.state.running = false;
            for (const resolve of this.approvals.values()) resolve(undefined);
            this.postStatus();
            this.saveTranscript();
            void this.refreshSessions();
        }
    }

    private async stop(): Promise<void> {
        const running = this.running;
        if (!running) return;
        const client = await this.client.get();
        const id = running.sessionId ?? this.state.sessionId;
        if (client && id) {
            const params: ext.CancelParams = { id };
            await client
                .sendRequest(lc.ExecuteCommandRequest.type, {
                    command: ext.Command.cancel,
                    arguments: [params],
                })
                .catch(() => undefined);
        }
        // The request itself too (`$/cancelRequest`), for a run whose session is not known yet.
        running.source.cancel();
    }

    private askContext(client: lc.LanguageClient): ext.AskContext | undefined {
        const editor = vscode.window.activeTextEditor ?? vscode.window.visibleTextEditors[0];
        const file = this.state.chips.find((c) => c.kind === "file" && !c.removed);
        if (!editor || !file) return undefined;
        const c2p = client.code2ProtocolConverter;
        const context: ext.AskContext = { file: c2p.asUri(editor.document.uri) };
        const selection = this.state.chips.find((c) => c.kind === "selection" && !c.removed);
        if (selection && !editor.selection.isEmpty) {
            context.selection = c2p.asRange(editor.selection);
            context.selectedText = editor.document.getText(editor.selection);
        }
        return context;
    }

    /**
     * Takes one `switchyard/sessionUpdate`; false when it is not of the chat's running
     * prompt (a palette Ask's, say).
     */
    onSessionUpdate(params: ext.SessionUpdateParams): boolean {
        const running = this.running;
        if (!running) return false;
        if (running.sessionId === undefined) running.sessionId = params.sessionId;
        if (running.sessionId !== params.sessionId) return false;
        this.show(params.update);
        return true;
    }

    private show(u: ext.SessionUpdate): void {
        switch (u.sessionUpdate) {
            case "agent_thought_chunk": {
                const text = u.content.type === "text" ? u.content.text : "";
                const last = this.state.items.at(-1);
                if (last?.kind === "thought" && last.streaming) {
                    last.text += text;
                    this.update(last);
                } else {
                    this.endStreaming();
                    this.push({
                        kind: "thought",
                        id: this.id(),
                        version: 0,
                        text,
                        streaming: true,
                    });
                }
                return;
            }
            case "plan":
                this.endStreaming();
                this.push({
                    kind: "plan",
                    id: this.id(),
                    version: 0,
                    entries: u.entries.map((e) => ({ content: e.content, status: e.status })),
                    explanation: u.explanation,
                });
                return;
            case "agent_message_chunk": {
                const text = u.content.type === "text" ? u.content.text : "";
                const last = this.state.items.at(-1);
                if (last?.kind === "assistant" && last.streaming) {
                    last.text += text;
                    this.update(last);
                } else {
                    this.endStreaming();
                    this.push({
                        kind: "assistant",
                        id: this.id(),
                        version: 0,
                        text,
                        streaming: true,
                    });
                }
                this.batch += 1;
                return;
            }
            case "tool_call":
                this.endStreaming();
                this.push({
                    kind: "tool",
                    id: `tool:${u.toolCallId}`,
                    version: 0,
                    title: u.title,
                    toolKind: u.kind,
                    lane: u.lane,
                    status: u.status,
                    summary: "",
                    input: JSON.stringify(u.rawInput, null, 2) ?? "",
                    batch: this.batch,
                });
                return;
            case "tool_call_update": {
                const item = this.state.items.find((i) => i.id === `tool:${u.toolCallId}`);
                if (item?.kind !== "tool") return;
                item.status = u.status;
                item.durationMs = u.durationMs;
                item.lane = u.lane ?? item.lane;
                item.summary = u.content
                    .map((c) => (c.content.type === "text" ? c.content.text : ""))
                    .join("\n");
                this.update(item);
                this.batch += 1;
                return;
            }
            case "usage":
                this.setUsage(u.turn, u.session);
                return;
            case "model_retry":
                this.notice(
                    `The model call failed (${u.error}); retry ${u.attempt + 1} of ${u.maxAttempts}.`,
                    false,
                );
                return;
            case "model_waiting":
                this.notice(`Waiting up to ${formatMs(u.upToMs)} for ${u.what}.`, false);
                return;
            case "compaction":
                this.notice(
                    `The older conversation was summarized (${u.replacedMessages} messages).`,
                    false,
                );
                return;
        }
    }

    private setUsage(turn: ext.TokenUsage, session: ext.TokenUsage): void {
        const n = (x: number) => x.toLocaleString("en-US");
        const cost = (u: ext.TokenUsage) =>
            u.costUsd === undefined ? "" : ` · $${u.costUsd.toFixed(4)}`;
        this.state.usage =
            `This turn ${n(turn.inputTokens)} in · ${n(turn.outputTokens)} out` +
            (turn.cachedTokens ? ` (${n(turn.cachedTokens)} cached)` : "") +
            cost(turn) +
            ` — session ${n(session.inputTokens)} in · ${n(session.outputTokens)} out${cost(session)}`;
        this.status.setUsage(this.state.usage);
        this.postStatus();
    }

    // ---- approvals and reviews -----------------------------------------------------------

    /**
     * Shows an approval question in the view and waits for its answer (`undefined`: the
     * run ended without one, which the server counts as a rejection).
     */
    async approve(message: string, actions: string[]): Promise<string | undefined> {
        const item: Extract<Item, { kind: "approval" }> = {
            kind: "approval",
            id: this.id(),
            version: 0,
            message,
            actions,
        };
        this.push(item);
        this.reveal();
        const answer = await new Promise<string | undefined>((resolve) =>
            this.approvals.set(item.id, resolve),
        );
        this.approvals.delete(item.id);
        item.answer = answer ?? "no answer (rejected)";
        this.update(item);
        return answer;
    }

    /** Shows a review card; `card.answer` closes it. */
    showReview(card: ReviewCard): void {
        this.reviews.set(card.id, card);
        this.push({
            kind: "review",
            id: card.id,
            version: 0,
            file: card.file,
            tool: card.tool,
            hunks: card.hunks,
            accepted: [...card.accepted],
        });
        this.reveal();
    }

    /** Marks a review card answered. */
    reviewDone(card: ReviewCard, accepted: number[]): void {
        this.reviews.delete(card.id);
        const item = this.state.items.find((i) => i.id === card.id);
        if (item?.kind !== "review") return;
        item.accepted = card.hunks.map((h) => accepted.includes(h.index));
        item.answer =
            accepted.length === 0
                ? "Rejected."
                : accepted.length === card.hunks.length
                  ? "Accepted."
                  : `Applied hunk${accepted.length === 1 ? "" : "s"} ${accepted.map((i) => i + 1).join(", ")} of ${card.hunks.length}.`;
        this.update(item);
    }

    private updateReviewItem(card: ReviewCard): void {
        const item = this.state.items.find((i) => i.id === card.id);
        if (item?.kind !== "review") return;
        item.accepted = [...card.accepted];
        this.update(item);
    }

    // ---- sessions, rewind ----------------------------------------------------------------

    /** Lists the stored sessions for the picker. */
    async refreshSessions(): Promise<SessionChoice[]> {
        const client = await this.client.get();
        if (!client) return [];
        try {
            const result = await client.sendRequest(ext.listSessions, {});
            this.state.sessions = result.sessions.map((s) => ({
                id: s.sessionId,
                title: s.title,
                turns: s.turns,
                updatedMs: s.updatedMs,
            }));
        } catch (err) {
            this.notice(`cannot list the sessions: ${errorMessage(err)}`, true);
        }
        this.postStatus();
        return this.state.sessions;
    }

    /** Switches to a stored session (its transcript, when this window kept it), or a new one. */
    async openSession(id: string | undefined): Promise<void> {
        if (this.running) {
            this.notice("Stop the running prompt before switching sessions.", true);
            this.postStatus();
            return;
        }
        this.saveTranscript();
        this.state.sessionId = id;
        this.state.usage = "";
        const kept = id ? this.context.workspaceState.get<Item[]>(transcriptKey(id)) : undefined;
        this.state.items = kept ?? [];
        if (id && !kept) {
            const s = this.state.sessions.find((x) => x.id === id);
            this.notice(
                `Resumed “${s?.title ?? id}” (${s?.turns ?? "?"} turns); its earlier messages were not kept in this window.`,
                false,
            );
        }
        this.postState();
        this.reveal();
    }

    async deleteSession(id: string): Promise<void> {
        const client = await this.client.get();
        if (!client) return;
        await client.sendRequest(ext.deleteSession, { sessionId: id });
        await this.context.workspaceState.update(transcriptKey(id), undefined);
        if (this.state.sessionId === id) await this.openSession(undefined);
        await this.refreshSessions();
    }

    private async rewind(itemId: string): Promise<void> {
        const at = this.state.items.findIndex((i) => i.id === itemId);
        const item = this.state.items[at];
        if (item?.kind !== "user" || !item.turn || !this.state.sessionId || this.running) return;
        const client = await this.client.get();
        if (!client) return;
        const params: ext.RewindParams = { sessionId: this.state.sessionId, turn: item.turn };
        let result: ext.RewindResult;
        try {
            result = await client.sendRequest(ext.rewind, params);
        } catch (err) {
            this.notice(`Rewind failed: ${errorMessage(err)}`, true);
            return;
        }
        this.state.items = this.state.items.slice(0, at);
        const restored = result.restored.length
            ? `restored ${result.restored.join(", ")}`
            : "no file to restore";
        const not = result.notRestorable.length ? `; ${result.notRestorable.join("; ")}` : "";
        this.notice(`Rewound to before turn ${result.turn}: ${restored}${not}.`, false);
        this.postState();
        this.saveTranscript();
        void this.refreshSessions();
    }

    private saveTranscript(): void {
        const id = this.state.sessionId;
        if (!id) return;
        // Reviews and approvals are answered by now, or were never going to be.
        void this.context.workspaceState.update(transcriptKey(id), this.state.items.slice(-500));
    }

    // ---- context, editing ----------------------------------------------------------------

    private updateChips(): void {
        const editor = vscode.window.activeTextEditor;
        const chips: Chip[] = [];
        if (editor && ["file", "untitled"].includes(editor.document.uri.scheme)) {
            const name = vscode.workspace.asRelativePath(editor.document.uri, false);
            chips.push(chip("file", name, this.removed));
            const s = editor.selection;
            if (!s.isEmpty) {
                const end =
                    s.end.character === 0 && s.end.line > s.start.line
                        ? s.end.line
                        : s.end.line + 1;
                const lines =
                    end > s.start.line + 1 ? `${s.start.line + 1}–${end}` : `${s.start.line + 1}`;
                chips.push(chip("selection", `${name}:${lines}`, this.removed));
            }
        } else if (vscode.window.activeTextEditor === undefined && this.state.chips.length > 0) {
            // Focus moved to a view (this one): keep the chips of the last editor.
            return;
        }
        this.state.chips = chips;
        this.postStatus();
    }

    private async insert(text: string): Promise<void> {
        const editor = vscode.window.activeTextEditor ?? vscode.window.visibleTextEditors[0];
        if (!editor) {
            void vscode.window.showWarningMessage("Switchyard: no editor to insert into.");
            return;
        }
        await editor.edit((edit) => {
            for (const s of editor.selections) edit.replace(s, text);
        });
    }

    // ---- plumbing ------------------------------------------------------------------------

    private id(): string {
        this.nextId += 1;
        return `i${Date.now().toString(36)}-${this.nextId}`;
    }

    private push(item: Item): void {
        this.state.items.push(item);
        this.post({ type: "item", item });
    }

    private update(item: Item): void {
        item.version += 1;
        this.post({ type: "item", item });
    }

    private endStreaming(): void {
        const last = this.state.items.at(-1);
        if ((last?.kind === "assistant" || last?.kind === "thought") && last.streaming) {
            last.streaming = false;
            this.update(last);
        }
    }

    private notice(text: string, error: boolean): void {
        this.push({ kind: "notice", id: this.id(), version: 0, text, error });
    }

    private reveal(): void {
        if (this.view && !this.view.visible) this.view.show(true);
    }

    private post(message: ToView): void {
        void this.view?.webview.postMessage(message);
    }

    private postState(): void {
        this.post({ type: "state", state: this.state });
    }

    private postStatus(): void {
        const s = this.state;
        this.post({
            type: "status",
            running: s.running,
            usage: s.usage,
            chips: s.chips,
            sessionId: s.sessionId,
            sessions: s.sessions,
            model: s.model,
            provider: s.provider,
            review: s.review,
        });
    }
}

function chip(
    kind: Chip["kind"],
    label: string,
    removed: Partial<Record<Chip["kind"], string>>,
): Chip {
    if (removed[kind] !== undefined && removed[kind] !== label) delete removed[kind];
    return { kind, label, removed: removed[kind] === label };
}

function transcriptKey(sessionId: string): string {
    return `switchyard.chat.transcript.${sessionId}`;
}

function formatMs(ms: number): string {
    return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}
