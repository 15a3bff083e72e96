/**
 * The extension's entry point: builds the status bar, the language client, the transcript,
 * the chat view, review mode and the commands, then starts the server.
 */

import * as vscode from "vscode";

import { Chat, VIEW_ID } from "./chat";
import { Client } from "./client";
import * as commands from "./commands";
import { Reviews } from "./review";
import { StatusBar } from "./status";

let client: Client | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
    const status = new StatusBar();
    client = new Client(context, status);
    const transcript = new commands.Transcript();
    const docs = new commands.VirtualDocs();
    const chat = new Chat(context, client, status);
    const reviews = new Reviews(chat);
    // Approvals go to the chat view while it is on screen, else to a VS Code prompt.
    client.messageRequestRouter = (params) => {
        const actions = params.actions ?? [];
        if (!chat.visible || actions.length === 0) return undefined;
        return chat
            .approve(
                params.message,
                actions.map((a) => a.title),
            )
            .then((answer) => actions.find((a) => a.title === answer) ?? null);
    };
    client.reviewHandler = (params, token) => reviews.review(params, token);
    const ctx: commands.Ctx = {
        chat,
        client,
        status,
        transcript,
        docs,
        secrets: context.secrets,
        sessionId: undefined,
        running: new Set(),
    };
    context.subscriptions.push(
        status,
        transcript,
        docs,
        vscode.workspace.registerTextDocumentContentProvider(commands.VirtualDocs.scheme, docs),
        client.onLaneStatus((params) => status.updateLanes(params)),
        // The chat's own prompts stream into the chat; the others (Ask… from the palette)
        // into the transcript.
        client.onSessionUpdate((params) => {
            if (!chat.onSessionUpdate(params)) transcript.update(params);
        }),
        chat,
        reviews,
        vscode.window.registerWebviewViewProvider(VIEW_ID, chat),
        ...commands.register(ctx),
    );
    // Not awaited: activation must not wait for the server (and a missing server is
    // reported by the client itself).
    void client.get();
}

export async function deactivate(): Promise<void> {
    await client?.dispose();
    client = undefined;
}
