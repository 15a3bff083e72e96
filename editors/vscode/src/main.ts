/**
 * The extension's entry point: builds the status bar, the language client, the transcript
 * and the commands, then starts the server.
 */

import * as vscode from "vscode";

import { Client } from "./client";
import * as commands from "./commands";
import { StatusBar } from "./status";

let client: Client | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
    const status = new StatusBar();
    client = new Client(context, status);
    const transcript = new commands.Transcript();
    const docs = new commands.VirtualDocs();
    const ctx: commands.Ctx = {
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
        client.onSessionUpdate((params) => transcript.update(params)),
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
