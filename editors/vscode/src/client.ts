/**
 * Owns the language client: finds and starts `switchyard lsp`, hands it the settings in the
 * server's shape, routes the custom notifications, restarts it.
 */

import * as vscode from "vscode";
import * as lc from "vscode-languageclient/node";

import * as config from "./config";
import * as ext from "./lsp_ext";
import type { StatusBar } from "./status";

/** Where to send users whose server binary is missing. */
export const INSTALL_URL =
    "https://github.com/switchyard-dev/switchyard/blob/main/editors/vscode/README.md#installing-the-server";

export class Client implements vscode.Disposable {
    /** The server's own log (`window/logMessage`, stderr). */
    readonly serverLog = vscode.window.createOutputChannel("Switchyard Language Server");
    private readonly traceLog = vscode.window.createOutputChannel("Switchyard LSP Trace");
    private readonly laneStatusEmitter = new vscode.EventEmitter<ext.LaneStatusParams>();
    private readonly sessionUpdateEmitter = new vscode.EventEmitter<ext.SessionUpdateParams>();
    /** Every lane status notification. */
    readonly onLaneStatus = this.laneStatusEmitter.event;
    /** Every session update notification. */
    readonly onSessionUpdate = this.sessionUpdateEmitter.event;

    /**
     * Answers `window/showMessageRequest` first (the chat view, when it is on screen);
     * `undefined` from it, or no router, leaves the question to a VS Code prompt.
     */
    messageRequestRouter:
        | ((
              params: lc.ShowMessageRequestParams,
          ) => Promise<lc.MessageActionItem | null> | undefined)
        | undefined;
    /** Answers `switchyard/reviewChange` (review mode). */
    reviewHandler:
        | ((
              params: ext.ReviewChangeParams,
              token: vscode.CancellationToken,
          ) => Promise<ext.ReviewChangeResult>)
        | undefined;

    private client: lc.LanguageClient | undefined;
    /** The start in flight, so concurrent callers share it. */
    private starting: Promise<lc.LanguageClient | undefined> | undefined;
    private readonly disposables: vscode.Disposable[] = [];

    constructor(
        private readonly context: vscode.ExtensionContext,
        private readonly status: StatusBar,
    ) {
        this.disposables.push(
            vscode.workspace.onDidChangeConfiguration((e) => this.configurationChanged(e)),
        );
    }

    /** The running client, starting it if needed; `undefined` if it cannot start. */
    async get(): Promise<lc.LanguageClient | undefined> {
        if (this.client?.isRunning()) return this.client;
        this.starting ??= this.start().finally(() => (this.starting = undefined));
        return this.starting;
    }

    /** Stops the server (if running) and starts a fresh one with the current settings. */
    async restart(): Promise<lc.LanguageClient | undefined> {
        await this.stop();
        return this.get();
    }

    async stop(): Promise<void> {
        const client = this.client;
        this.client = undefined;
        if (client === undefined) return;
        try {
            await client.dispose(2000);
        } catch (err) {
            this.serverLog.appendLine(`stopping the server failed: ${String(err)}`);
        }
        this.status.setServerState("stopped", "the server was stopped");
    }

    async dispose(): Promise<void> {
        await this.stop();
        for (const d of this.disposables) d.dispose();
        this.laneStatusEmitter.dispose();
        this.sessionUpdateEmitter.dispose();
        this.serverLog.dispose();
        this.traceLog.dispose();
    }

    private async start(): Promise<lc.LanguageClient | undefined> {
        if (this.client !== undefined) {
            // A client that stopped on its own (crashed too often): replace it.
            await this.stop();
        }
        this.status.setServerState("starting");
        const env = await config.serverEnv(this.context.secrets);
        let server: config.ServerCommand;
        try {
            server = config.serverCommand(env);
        } catch (err) {
            if (!(err instanceof config.ServerNotFound)) throw err;
            this.status.setServerState("missing", err.message);
            this.serverLog.appendLine(`[error] ${err.message}`);
            void showServerNotFound(err);
            return undefined;
        }
        // The command line only: the environment carries API keys and is never logged.
        this.serverLog.appendLine(`starting ${server.command} ${server.args.join(" ")}`);

        const executable: lc.Executable = {
            command: server.command,
            args: server.args,
            // No `transport`: with `TransportKind.stdio` the client appends `--stdio` to the
            // arguments, which `switchyard lsp` does not take. Stdio is the default anyway.
            options: { env, cwd: vscode.workspace.workspaceFolders?.[0]?.uri.fsPath },
        };
        const clientOptions: lc.LanguageClientOptions = {
            // Every buffer, so the agent reads what the user sees, unsaved text included.
            documentSelector: [{ scheme: "file" }, { scheme: "untitled" }],
            initializationOptions: config.serverConfig(),
            outputChannel: this.serverLog,
            traceOutputChannel: this.traceLog,
            revealOutputChannelOn: lc.RevealOutputChannelOn.Never,
            progressOnInitialization: true,
            middleware: {
                workspace: {
                    configuration: async (params, token, next) => {
                        const answer = await next(params, token);
                        if (answer instanceof lc.ResponseError) return answer;
                        return params.items.map((item, i) =>
                            item.section === config.SECTION
                                ? config.serverConfig(
                                      item.scopeUri ? vscode.Uri.parse(item.scopeUri) : undefined,
                                  )
                                : answer[i],
                        );
                    },
                },
            },
        };
        const client = new lc.LanguageClient(
            "switchyard",
            "Switchyard",
            { run: executable, debug: executable },
            clientOptions,
        );
        client.onDidChangeState((e) => {
            if (this.client !== client) return;
            if (e.newState === lc.State.Running) this.status.setServerState("running");
            else if (e.newState === lc.State.Starting) this.status.setServerState("starting");
            else this.status.setServerState("stopped", "the server stopped");
        });
        client.onNotification(ext.laneStatus, (params) => this.laneStatusEmitter.fire(params));
        // Registered before the start, so they take the place of the client's own handler.
        client.onRequest(lc.ShowMessageRequest.type, async (params) => {
            const routed = this.messageRequestRouter?.(params);
            if (routed !== undefined) return routed;
            const show =
                params.type === lc.MessageType.Error
                    ? vscode.window.showErrorMessage
                    : params.type === lc.MessageType.Warning
                      ? vscode.window.showWarningMessage
                      : vscode.window.showInformationMessage;
            return (await show(params.message, ...(params.actions ?? []))) ?? null;
        });
        client.onRequest(ext.reviewChange, (params, token) =>
            this.reviewHandler
                ? this.reviewHandler(params, token)
                : new lc.ResponseError(lc.ErrorCodes.MethodNotFound, "review is not available"),
        );
        client.onNotification(ext.sessionUpdate, (params) =>
            this.sessionUpdateEmitter.fire(params),
        );
        this.client = client;
        try {
            await client.start();
        } catch (err) {
            this.serverLog.appendLine(`[error] the server failed to start: ${errorMessage(err)}`);
            this.status.setServerState("stopped", "the server failed to start");
            const choice = await vscode.window.showErrorMessage(
                `Switchyard: the server failed to start: ${errorMessage(err)}`,
                "Show Log",
            );
            if (choice === "Show Log") this.serverLog.show();
            return undefined;
        }
        return client;
    }

    private configurationChanged(e: vscode.ConfigurationChangeEvent): void {
        if (!e.affectsConfiguration(config.SECTION)) return;
        if (config.RESTART_SETTINGS.some((s) => e.affectsConfiguration(s))) {
            void vscode.window
                .showInformationMessage(
                    "Switchyard: restart the server to use the new server settings?",
                    "Restart",
                )
                .then((choice) => (choice === "Restart" ? this.restart() : undefined));
            return;
        }
        const client = this.client;
        if (!client?.isRunning()) return;
        // Push the new settings; a server that prefers to pull asks with
        // `workspace/configuration` and gets the same answer.
        void client
            .sendNotification(lc.DidChangeConfigurationNotification.type, {
                settings: { [config.SECTION]: config.serverConfig() },
            })
            .catch((err: unknown) =>
                this.serverLog.appendLine(`didChangeConfiguration failed: ${String(err)}`),
            );
    }
}

async function showServerNotFound(err: config.ServerNotFound): Promise<void> {
    const choice = await vscode.window.showErrorMessage(
        `Switchyard: ${err.message}. ${err.advice}`,
        "Install Instructions",
        "Open Settings",
    );
    if (choice === "Install Instructions") {
        await vscode.env.openExternal(vscode.Uri.parse(INSTALL_URL));
    } else if (choice === "Open Settings") {
        await vscode.commands.executeCommand(
            "workbench.action.openSettings",
            "switchyard.server.path",
        );
    }
}

/** A readable message for an error from the client or the server. */
export function errorMessage(err: unknown): string {
    if (err instanceof lc.ResponseError) return err.message;
    if (err instanceof Error) return err.message;
    return String(err);
}
