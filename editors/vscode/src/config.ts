/**
 * The `switchyard.*` settings and their translation into the server's configuration shape.
 *
 * VS Code settings are camelCase and flat where that reads better in the settings editor;
 * the server's configuration (the same tree as `.switchyard.toml`) is snake_case:
 *
 * | VS Code setting                          | server key                      |
 * |------------------------------------------|---------------------------------|
 * | `switchyard.provider`                    | `llm.provider`                  |
 * | `switchyard.model`                       | `llm.model`                     |
 * | `switchyard.baseUrl`                     | `llm.base_url`                  |
 * | `switchyard.lanes.<lane>.maxConcurrency` | `lanes.<lane>.max_concurrency`  |
 * | `switchyard.lanes.<lane>.timeoutMs`      | `lanes.<lane>.timeout_ms`       |
 * | `switchyard.lanes.globalMaxConcurrency`  | `lanes.global_max_concurrency`  |
 * | `switchyard.approvals.<tool>`            | `approvals.<tool>`              |
 * | `switchyard.approvals.multiEdit`         | `approvals.multi_edit`          |
 * | `switchyard.review`                      | `review`                        |
 *
 * Settings left empty (`null`) are left out, so the server's other layers (environment,
 * `~/.config/switchyard/config.toml`, `.switchyard.toml`) still apply.
 *
 * API keys are not settings: they come from the environment of VS Code or from its
 * SecretStorage ("Switchyard: Set API Key"), and reach the server only through its process
 * environment (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`). They are never logged.
 */

import * as fs from "node:fs";
import * as path from "node:path";
import * as vscode from "vscode";

/** The settings section, also the `workspace/configuration` section the server asks for. */
export const SECTION = "switchyard";

/** The provider whose API key the server needs. */
export type Provider = "openai" | "anthropic";

/** A JSON object as the server expects it. */
export type Json = { [key: string]: Json } | Json[] | string | number | boolean | null;
type JsonObject = { [key: string]: Json };

/** Settings that only take effect when the server process is started again. */
export const RESTART_SETTINGS = ["switchyard.server"];

/** `fooBarBaz` → `foo_bar_baz`. */
export function snakeCase(key: string): string {
    return key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/** A copy of `value` with every object key in snake_case and every `null` left out. */
function toServerShape(value: unknown): Json | undefined {
    if (value === null || value === undefined) return undefined;
    if (Array.isArray(value)) {
        return value.map((v) => toServerShape(v) ?? null);
    }
    if (typeof value === "object") {
        const out: JsonObject = {};
        for (const [key, inner] of Object.entries(value as Record<string, unknown>)) {
            const converted = toServerShape(inner);
            if (converted !== undefined) out[snakeCase(key)] = converted;
        }
        return Object.keys(out).length > 0 ? out : undefined;
    }
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") {
        return value;
    }
    return undefined;
}

/**
 * The server's configuration from the `switchyard.*` settings of `scope` (a workspace
 * folder, or the window when absent). This is what `initializationOptions` carries and
 * what `workspace/configuration` answers for the section `switchyard`.
 */
export function serverConfig(scope?: vscode.ConfigurationScope): JsonObject {
    const config = vscode.workspace.getConfiguration(SECTION, scope);
    const out: JsonObject = {};

    const llm = toServerShape({
        provider: nonEmpty(config.get<string | null>("provider")),
        model: nonEmpty(config.get<string | null>("model")),
        baseUrl: nonEmpty(config.get<string | null>("baseUrl")),
    });
    if (llm !== undefined) out["llm"] = llm;

    const lanes = toServerShape(config.get<unknown>("lanes"));
    if (lanes !== undefined) out["lanes"] = lanes;

    // `approvals.multiEdit` is the tool `multi_edit`; anything but a policy is left out.
    const approvals: JsonObject = {};
    for (const [tool, mode] of Object.entries(
        config.get<Record<string, unknown>>("approvals") ?? {},
    )) {
        if (mode === "allow" || mode === "ask" || mode === "deny")
            approvals[snakeCase(tool)] = mode;
    }
    if (Object.keys(approvals).length > 0) out["approvals"] = approvals;

    const review = config.get<string | null>("review");
    if (review === "off" || review === "changes") out["review"] = review;

    // As written: a server's keys are the config file's, and its variable and header names
    // are the user's own, so nothing is renamed.
    const mcp = config.get<unknown>("mcpServers");
    if (
        typeof mcp === "object" &&
        mcp !== null &&
        !Array.isArray(mcp) &&
        Object.keys(mcp).length > 0
    )
        out["mcp_servers"] = mcp as JsonObject;

    return out;
}

function nonEmpty(value: string | null | undefined): string | undefined {
    const trimmed = value?.trim();
    return trimmed ? trimmed : undefined;
}

/** The configured provider, if any (used to pick which API key to hand over). */
export function configuredProvider(): Provider | undefined {
    const value = vscode.workspace.getConfiguration(SECTION).get<string | null>("provider");
    return value === "openai" || value === "anthropic" ? value : undefined;
}

/** How to start the server, once the binary has been found. */
export interface ServerCommand {
    command: string;
    args: string[];
}

/** Why the server could not be started. */
export class ServerNotFound extends Error {
    constructor(readonly configured: string) {
        super(
            configured === "switchyard"
                ? "cannot find the server: `switchyard` is not on PATH"
                : `cannot find the server at \`${configured}\` (switchyard.server.path)`,
        );
    }

    /** What to do about it. */
    get advice(): string {
        return this.configured === "switchyard"
            ? "Install it with `cargo install --path server`, or set switchyard.server.path to the binary."
            : "Install it with `cargo install --path server`, or fix the setting.";
    }
}

/**
 * Resolves `switchyard.server.path`: a bare name on `PATH` (as the extension host sees it),
 * an absolute path, or a path relative to the first workspace folder (with `~` expanded).
 */
export function serverCommand(env: NodeJS.ProcessEnv): ServerCommand {
    const config = vscode.workspace.getConfiguration(SECTION);
    const configured = (config.get<string>("server.path") ?? "").trim() || "switchyard";
    const extraArgs = config.get<string[]>("server.extraArgs") ?? [];
    const found = findExecutable(configured, env);
    if (found === undefined) throw new ServerNotFound(configured);
    return { command: found, args: ["lsp", ...extraArgs] };
}

function findExecutable(configured: string, env: NodeJS.ProcessEnv): string | undefined {
    let name = configured;
    if (name === "~" || name.startsWith("~/")) {
        name = path.join(env["HOME"] ?? "", name.slice(1));
    }
    if (name.includes("/") || name.includes(path.sep)) {
        const folder = vscode.workspace.workspaceFolders?.[0];
        const absolute =
            path.isAbsolute(name) || folder === undefined
                ? path.resolve(name)
                : path.resolve(folder.uri.fsPath, name);
        return isExecutable(absolute) ? absolute : undefined;
    }
    for (const dir of (env["PATH"] ?? "").split(path.delimiter)) {
        if (!dir) continue;
        const candidate = path.join(dir, name);
        if (isExecutable(candidate)) return candidate;
        if (process.platform === "win32" && isExecutable(`${candidate}.exe`))
            return `${candidate}.exe`;
    }
    return undefined;
}

function isExecutable(file: string): boolean {
    try {
        if (!fs.statSync(file).isFile()) return false;
        fs.accessSync(file, fs.constants.X_OK);
        return true;
    } catch {
        return false;
    }
}

// ---- API keys ----------------------------------------------------------------------------

/** The environment variable that carries each provider's API key to the server. */
export const API_KEY_ENV: Record<Provider, string> = {
    openai: "OPENAI_API_KEY",
    anthropic: "ANTHROPIC_API_KEY",
};

function secretKey(provider: Provider): string {
    return `switchyard.apiKey.${provider}`;
}

/** Stores (or, with an empty key, forgets) a provider's API key in SecretStorage. */
export async function storeApiKey(
    secrets: vscode.SecretStorage,
    provider: Provider,
    key: string,
): Promise<void> {
    if (key) await secrets.store(secretKey(provider), key);
    else await secrets.delete(secretKey(provider));
}

/**
 * The server process's environment: the extension host's, with the API keys kept in
 * SecretStorage added. A key stored in VS Code wins over one inherited from the environment,
 * since the user set it here on purpose.
 */
export async function serverEnv(secrets: vscode.SecretStorage): Promise<NodeJS.ProcessEnv> {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const provider of Object.keys(API_KEY_ENV) as Provider[]) {
        const stored = await secrets.get(secretKey(provider));
        if (stored) env[API_KEY_ENV[provider]] = stored;
    }
    return env;
}
