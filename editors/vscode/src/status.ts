/**
 * The status bar item: the server's state and the lanes at a glance.
 *
 * While work runs it shows each busy lane, e.g. `$(sync~spin) Q 12/40 · G 1` (Query: 12 of
 * the 40 tasks of this burst finished; Generate: one model call running); when idle a quiet
 * `$(check) Switchyard`. The tooltip has every lane's figures; a click shows the queue stats.
 */

import * as vscode from "vscode";

import type { LaneCounts, LaneStatusParams } from "./lsp_ext";

/** Where the server process is. */
export type ServerState = "starting" | "running" | "stopped" | "missing";

const LANE_ORDER = ["control", "query", "execute", "generate"];

export class StatusBar implements vscode.Disposable {
    private readonly item: vscode.StatusBarItem;
    private state: ServerState = "starting";
    private stateDetail = "";
    private lanes = new Map<string, LaneCounts>();
    private deadLetters = 0;
    /** Per busy lane: the tasks already finished when it became busy. */
    private bursts = new Map<string, number>();
    /** Work-done progress the extension itself started, by token. */
    private progress = new Map<string, string>();
    /** The chat's last usage line, for the tooltip. */
    private usage = "";

    constructor() {
        this.item = vscode.window.createStatusBarItem("status", vscode.StatusBarAlignment.Left, 10);
        this.item.name = "Switchyard";
        this.render();
        this.item.show();
    }

    dispose(): void {
        this.item.dispose();
    }

    setServerState(state: ServerState, detail = ""): void {
        this.state = state;
        this.stateDetail = detail;
        if (state !== "running") {
            this.lanes.clear();
            this.bursts.clear();
        }
        this.render();
    }

    /** Takes a `switchyard/laneStatus` notification. */
    updateLanes(params: LaneStatusParams): void {
        this.deadLetters = params.deadLetters;
        for (const lane of params.lanes) {
            const finished = finishedCount(lane);
            const busy = lane.queued + lane.running > 0;
            if (busy && !this.bursts.has(lane.lane)) this.bursts.set(lane.lane, finished);
            if (!busy) this.bursts.delete(lane.lane);
            this.lanes.set(lane.lane, lane);
        }
        this.render();
    }

    /** The chat's token usage (`switchyard/sessionUpdate` of kind `usage`), for the tooltip. */
    setUsage(usage: string): void {
        this.usage = usage;
        this.render();
    }

    /** Shows (with a message) or clears (with `undefined`) a progress the extension runs. */
    setProgress(token: string, message: string | undefined): void {
        if (message === undefined) this.progress.delete(token);
        else this.progress.set(token, message);
        this.render();
    }

    private render(): void {
        const item = this.item;
        item.backgroundColor = undefined;
        item.command = "switchyard.showQueueStats";
        switch (this.state) {
            case "starting":
                item.text = "$(loading~spin) Switchyard";
                item.tooltip = "Switchyard: starting the server…";
                item.accessibilityInformation = { label: "Switchyard: starting" };
                return;
            case "stopped":
            case "missing":
                item.text = "$(error) Switchyard";
                item.tooltip = `Switchyard: ${this.stateDetail || "the server is not running"}. Click to restart.`;
                item.accessibilityInformation = { label: "Switchyard: server not running" };
                item.backgroundColor = new vscode.ThemeColor("statusBarItem.errorBackground");
                item.command = "switchyard.restartServer";
                return;
            case "running":
                break;
        }

        const parts: string[] = [];
        const spoken: string[] = [];
        for (const lane of this.sortedLanes()) {
            const start = this.bursts.get(lane.lane);
            if (start === undefined) continue;
            const letter = lane.lane.charAt(0).toUpperCase();
            const name = capitalize(lane.lane);
            const finished = finishedCount(lane) - start;
            if (finished <= 0 && lane.queued === 0) {
                parts.push(`${letter} ${lane.running}`);
                spoken.push(`${name} ${lane.running} running`);
            } else {
                const total = finished + lane.running + lane.queued;
                parts.push(`${letter} ${finished}/${total}`);
                spoken.push(`${name} ${finished} of ${total} done`);
            }
        }
        const activity = [...this.progress.values()].at(-1);
        if (parts.length > 0) {
            item.text = `$(sync~spin) ${parts.join(" · ")}`;
            item.accessibilityInformation = { label: `Switchyard: ${spoken.join(", ")}` };
        } else if (activity !== undefined) {
            item.text = `$(sync~spin) Switchyard`;
            item.accessibilityInformation = { label: `Switchyard: ${activity}` };
        } else {
            item.text = "$(check) Switchyard";
            item.accessibilityInformation = { label: "Switchyard: idle" };
        }
        item.tooltip = this.tooltip(activity);
    }

    private tooltip(activity: string | undefined): vscode.MarkdownString {
        const md = new vscode.MarkdownString(undefined, true);
        md.appendMarkdown(`**Switchyard**${activity ? ` — ${escape(activity)}` : ""}\n\n`);
        const lanes = this.sortedLanes();
        if (lanes.length === 0) {
            md.appendMarkdown("No lane activity yet.\n\n");
        } else {
            md.appendMarkdown(
                "| lane | queued | running | done | failed | cancelled | dead-lettered |\n",
            );
            md.appendMarkdown("|:--|--:|--:|--:|--:|--:|--:|\n");
            for (const l of lanes) {
                md.appendMarkdown(
                    `| ${capitalize(l.lane)} | ${l.queued} | ${l.running} | ${l.done} | ${l.failed} | ${l.cancelled} | ${l.deadLettered} |\n`,
                );
            }
            md.appendMarkdown("\n");
            if (this.deadLetters > 0) {
                md.appendMarkdown(
                    `${this.deadLetters} dead letter${this.deadLetters === 1 ? "" : "s"} kept (Switchyard: Show Dead Letters).\n\n`,
                );
            }
        }
        if (this.usage) md.appendMarkdown(`Tokens: ${escape(this.usage)}\n\n`);
        md.appendMarkdown("Click for the queue stats.");
        return md;
    }

    private sortedLanes(): LaneCounts[] {
        const rank = (lane: string) => {
            const i = LANE_ORDER.indexOf(lane);
            return i === -1 ? LANE_ORDER.length : i;
        };
        return [...this.lanes.values()].sort(
            (a, b) => rank(a.lane) - rank(b.lane) || a.lane.localeCompare(b.lane),
        );
    }
}

/** Tasks of a lane that are over, one way or another. */
function finishedCount(lane: LaneCounts): number {
    return lane.done + lane.failed + lane.cancelled;
}

export function capitalize(word: string): string {
    return word.charAt(0).toUpperCase() + word.slice(1);
}

function escape(text: string): string {
    return text.replace(/[\\`*_{}[\]()#+\-.!|<>]/g, (c) => `\\${c}`);
}
