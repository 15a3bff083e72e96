/**
 * Review mode (`switchyard.review: "changes"`): the server sends each change the agent
 * proposes as `switchyard/reviewChange` before it lands. The change opens in VS Code's diff
 * editor (the file as it is against a read-only document of the proposed text), and the
 * user accepts or rejects each hunk — in the chat view's review card when the view is on
 * screen, else in a multi-select picker — or the whole file with the diff editor's title
 * buttons. The answer is the indices of the accepted hunks; the server applies only those.
 */

import * as vscode from "vscode";

import type { Chat, ReviewCard } from "./chat";
import type { ReviewHunkView } from "./chat_protocol";
import * as ext from "./lsp_ext";

interface Pending {
    card: ReviewCard;
    original: vscode.Uri;
    proposed: vscode.Uri;
    title: string;
}

export class Reviews implements vscode.TextDocumentContentProvider, vscode.Disposable {
    static readonly scheme = "switchyard-review";
    private readonly contents = new Map<string, string>();
    private readonly pending = new Map<string, Pending>();
    private next = 0;
    private readonly disposables: vscode.Disposable[] = [];

    constructor(private readonly chat: Chat) {
        this.disposables.push(
            vscode.workspace.registerTextDocumentContentProvider(Reviews.scheme, this),
            vscode.commands.registerCommand("switchyard.review.acceptAll", (uri?: vscode.Uri) =>
                this.answerWhole(uri, true),
            ),
            vscode.commands.registerCommand("switchyard.review.rejectAll", (uri?: vscode.Uri) =>
                this.answerWhole(uri, false),
            ),
            vscode.commands.registerCommand("switchyard.review.chooseHunks", (uri?: vscode.Uri) => {
                const pending = this.find(uri);
                if (pending) void this.pick(pending);
            }),
        );
    }

    dispose(): void {
        for (const p of this.pending.values()) p.card.answer([]);
        for (const d of this.disposables) d.dispose();
    }

    provideTextDocumentContent(uri: vscode.Uri): string {
        return this.contents.get(uri.path) ?? "";
    }

    /** Answers one `switchyard/reviewChange`. */
    async review(
        params: ext.ReviewChangeParams,
        token: vscode.CancellationToken,
    ): Promise<ext.ReviewChangeResult> {
        const id = `review-${++this.next}`;
        const target = vscode.Uri.parse(params.uri);
        const name = target.path.split("/").pop() ?? target.path;
        const file = vscode.workspace.asRelativePath(target, false);
        const original = vscode.Uri.from({ scheme: Reviews.scheme, path: `/${id}/before/${name}` });
        const proposed = vscode.Uri.from({ scheme: Reviews.scheme, path: `/${id}/after/${name}` });
        this.contents.set(original.path, params.oldText);
        this.contents.set(proposed.path, params.newText);
        const hunks = params.hunks.map(hunkView);
        const title = `${name} ↔ Switchyard's ${params.tool} (${hunks.length} hunk${hunks.length === 1 ? "" : "s"})`;

        const accepted = await new Promise<number[]>((resolve) => {
            let done = false;
            const card: ReviewCard = {
                id,
                file,
                tool: params.tool,
                hunks,
                accepted: hunks.map(() => true),
                open: () => void this.open(pending),
                answer: (indices) => {
                    if (done) return;
                    done = true;
                    resolve(indices);
                },
            };
            const pending: Pending = { card, original, proposed, title };
            this.pending.set(id, pending);
            token.onCancellationRequested(() => card.answer([]));
            void this.open(pending).then(() => {
                if (this.chat.visible) this.chat.showReview(card);
                else void this.pick(pending);
            });
        });

        const pending = this.pending.get(id);
        this.pending.delete(id);
        if (pending) {
            this.chat.reviewDone(pending.card, accepted);
            await closeDiff(proposed);
        }
        this.contents.delete(original.path);
        this.contents.delete(proposed.path);
        return { accepted };
    }

    private async open(pending: Pending): Promise<void> {
        await vscode.commands.executeCommand(
            "vscode.diff",
            pending.original,
            pending.proposed,
            pending.title,
            { preview: false, preserveFocus: this.chat.visible },
        );
    }

    /** The hunks in a multi-select picker, all checked; Enter applies the checked ones. */
    private async pick(pending: Pending): Promise<void> {
        const { card } = pending;
        const items = card.hunks.map((h) => ({
            label: `Hunk ${h.index + 1}: ${h.where} (${h.delta})`,
            detail: h.excerpt,
            picked: card.accepted[h.index] ?? true,
            index: h.index,
        }));
        const chosen = await vscode.window.showQuickPick(items, {
            title: `Switchyard: review ${card.file} — checked hunks are applied, Escape rejects all`,
            canPickMany: true,
            ignoreFocusOut: true,
        });
        card.answer(chosen ? chosen.map((c) => c.index) : []);
    }

    private answerWhole(uri: vscode.Uri | undefined, accept: boolean): void {
        const pending = this.find(uri);
        if (!pending) return;
        pending.card.answer(accept ? pending.card.hunks.map((h) => h.index) : []);
    }

    /** The review a command is about: its document's, the active editor's, or the latest. */
    private find(uri: vscode.Uri | undefined): Pending | undefined {
        const path = (uri ?? vscode.window.activeTextEditor?.document.uri)?.path;
        const id = path?.split("/")[1];
        return (id && this.pending.get(id)) || [...this.pending.values()].at(-1);
    }
}

function hunkView(h: ext.ReviewHunk): ReviewHunkView {
    const where =
        h.oldLines === 0
            ? `new lines after line ${h.oldStart}`
            : h.oldLines === 1
              ? `line ${h.oldStart + 1}`
              : `lines ${h.oldStart + 1}–${h.oldStart + h.oldLines}`;
    const shown = (h.newLines > 0 ? h.newText : h.oldText)
        .split("\n")
        .map((l) => l.trim())
        .find((l) => l.length > 0);
    return {
        index: h.index,
        where,
        delta: `+${h.newLines} −${h.oldLines}`,
        excerpt: shown ? (h.newLines > 0 ? shown : `removes ${shown}`).slice(0, 80) : "",
    };
}

async function closeDiff(proposed: vscode.Uri): Promise<void> {
    for (const group of vscode.window.tabGroups.all) {
        for (const tab of group.tabs) {
            if (
                tab.input instanceof vscode.TabInputTextDiff &&
                tab.input.modified.toString() === proposed.toString()
            ) {
                await vscode.window.tabGroups.close(tab);
            }
        }
    }
}
