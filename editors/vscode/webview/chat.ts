/**
 * The chat view's webview: renders the conversation the extension sends (Markdown through
 * markdown-it with raw HTML off, highlighted by highlight.js, then sanitized by DOMPurify),
 * and sends back what the user does. No remote content: the CSP allows only this script (by
 * nonce) and the extension's own stylesheet. The prompt history, the draft and which tool
 * rows are open survive the view being hidden through `getState`/`setState`; the
 * conversation itself is the extension's and is sent again when the view comes back.
 */

import DOMPurify from "dompurify";
import hljs from "highlight.js/lib/common";
import MarkdownIt from "markdown-it";

import type { ChatState, Chip, FromView, Item, SessionChoice, ToView } from "../src/chat_protocol";

interface VsCodeApi {
    postMessage(message: FromView): void;
    getState(): Saved | undefined;
    setState(state: Saved): void;
}
declare function acquireVsCodeApi(): VsCodeApi;

/** What the webview keeps across being hidden. */
interface Saved {
    history: string[];
    draft: string;
    open: string[];
    last?: ChatState;
}

const vscode = acquireVsCodeApi();
const saved: Saved = { history: [], draft: "", open: [], ...vscode.getState() };
const save = () => vscode.setState(saved);
const post = (message: FromView) => vscode.postMessage(message);

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const md = new MarkdownIt({
    html: false,
    linkify: false,
    breaks: false,
    highlight: (code, lang) => {
        const language = lang && hljs.getLanguage(lang) ? lang : undefined;
        const body = language
            ? hljs.highlight(code, { language, ignoreIllegals: true }).value
            : escapeHtml(code);
        return `<pre class="hljs"><code>${body}</code></pre>`;
    },
});
// Every fenced block gets Copy and Insert buttons above it.
const fence = md.renderer.rules.fence!;
md.renderer.rules.fence = (tokens, idx, options, env, self) => {
    const lang = escapeHtml(tokens[idx]!.info.trim().split(/\s+/)[0] ?? "");
    return (
        `<div class="code"><div class="code-bar"><span class="code-lang">${lang}</span>` +
        `<button type="button" class="code-copy" data-action="copy">Copy</button>` +
        `<button type="button" class="code-insert" data-action="insert">Insert at cursor</button></div>` +
        fence(tokens, idx, options, env, self) +
        `</div>`
    );
};

/** Model text as safe HTML: no raw HTML in the Markdown, and whatever comes out sanitized. */
function markdown(text: string): string {
    return DOMPurify.sanitize(md.render(text), {
        USE_PROFILES: { html: true },
        FORBID_TAGS: ["style", "form", "input", "textarea", "select", "img", "iframe"],
        FORBID_ATTR: ["style"],
    });
}

function el<K extends keyof HTMLElementTagNameMap>(
    tag: K,
    attrs: Record<string, string> = {},
    ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
        if (key === "class") node.className = value;
        else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
}

// ---- the page ----------------------------------------------------------------------------

const sessionSelect = el("select", { id: "session", "aria-label": "Session" });
const newButton = el("button", { type: "button", id: "new-session", title: "New session" }, "New");
const deleteButton = el(
    "button",
    { type: "button", id: "delete-session", title: "Delete this session" },
    "Delete",
);
const modelInput = el("input", {
    id: "model",
    type: "text",
    "aria-label": "Model",
    placeholder: "model",
    spellcheck: "false",
});
const providerSelect = el("select", { id: "provider", "aria-label": "Provider" });
for (const [value, label] of [
    ["", "default"],
    ["openai", "openai"],
    ["anthropic", "anthropic"],
]) {
    providerSelect.append(el("option", { value }, label!));
}
const reviewBox = el("input", { type: "checkbox", id: "review" });
const reviewLabel = el(
    "label",
    {
        for: "review",
        title: "Review every change hunk by hunk before it lands (switchyard.review)",
    },
    reviewBox,
    "Review changes",
);
const transcript = el("div", {
    id: "transcript",
    role: "log",
    "aria-live": "polite",
    "aria-label": "Conversation",
});
const chipsRow = el("div", { id: "chips", "aria-label": "Context sent with the prompt" });
const prompt = el("textarea", {
    id: "prompt",
    rows: "3",
    "aria-label": "Prompt (Enter sends, Shift+Enter is a new line, Up recalls earlier prompts)",
    placeholder: "Ask Switchyard… (Enter sends, Shift+Enter new line, ↑ history)",
});
const sendButton = el("button", { type: "button", id: "send", class: "primary" }, "Send");
const stopButton = el("button", { type: "button", id: "stop" }, "Stop");
const usageLine = el("div", { id: "usage", "aria-live": "polite" });

document.body.append(
    el(
        "header",
        { id: "toolbar" },
        sessionSelect,
        newButton,
        deleteButton,
        el("span", { class: "spacer" }),
        modelInput,
        providerSelect,
        reviewLabel,
    ),
    transcript,
    el(
        "footer",
        {},
        chipsRow,
        prompt,
        el(
            "div",
            { class: "row" },
            usageLine,
            el("span", { class: "spacer" }),
            stopButton,
            sendButton,
        ),
    ),
);

prompt.value = saved.draft;
let historyAt = -1;
let state: ChatState | undefined;
const rendered = new Map<string, { version: number; node: HTMLElement }>();

// ---- input -------------------------------------------------------------------------------

function send(): void {
    const text = prompt.value.trim();
    if (!text || state?.running) return;
    post({ type: "send", text });
    if (saved.history.at(-1) !== text) saved.history.push(text);
    saved.history = saved.history.slice(-100);
    historyAt = -1;
    prompt.value = "";
    saved.draft = "";
    save();
}

prompt.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        send();
        return;
    }
    const onFirstLine = !prompt.value.slice(0, prompt.selectionStart).includes("\n");
    const onLastLine = !prompt.value.slice(prompt.selectionEnd).includes("\n");
    if (e.key === "ArrowUp" && onFirstLine && saved.history.length > 0) {
        e.preventDefault();
        historyAt = historyAt < 0 ? saved.history.length - 1 : Math.max(0, historyAt - 1);
        prompt.value = saved.history[historyAt] ?? "";
    } else if (e.key === "ArrowDown" && onLastLine && historyAt >= 0) {
        e.preventDefault();
        historyAt += 1;
        if (historyAt >= saved.history.length) {
            historyAt = -1;
            prompt.value = "";
        } else {
            prompt.value = saved.history[historyAt] ?? "";
        }
    }
});
prompt.addEventListener("input", () => {
    saved.draft = prompt.value;
    save();
});
sendButton.addEventListener("click", send);
stopButton.addEventListener("click", () => post({ type: "stop" }));
newButton.addEventListener("click", () => post({ type: "newSession" }));
deleteButton.addEventListener("click", () => {
    if (state?.sessionId) post({ type: "deleteSession", id: state.sessionId });
});
sessionSelect.addEventListener("change", () => {
    if (sessionSelect.value === "") post({ type: "newSession" });
    else post({ type: "selectSession", id: sessionSelect.value });
});
const setModel = () =>
    post({ type: "setModel", model: modelInput.value.trim(), provider: providerSelect.value });
modelInput.addEventListener("change", setModel);
modelInput.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
        e.preventDefault();
        setModel();
        prompt.focus();
    }
});
providerSelect.addEventListener("change", setModel);
reviewBox.addEventListener("change", () => post({ type: "setReview", on: reviewBox.checked }));

// Buttons inside rendered items, by their data attributes.
transcript.addEventListener("click", (e) => {
    const target = (e.target as HTMLElement).closest<HTMLElement>("[data-action]");
    if (!target) {
        const link = (e.target as HTMLElement).closest<HTMLAnchorElement>("a[href]");
        if (link) {
            e.preventDefault();
            post({ type: "openLink", href: link.getAttribute("href") ?? "" });
        }
        return;
    }
    const id = target.closest<HTMLElement>("[data-item]")?.dataset["item"] ?? "";
    const action = target.dataset["action"];
    const code = () => target.closest(".code")?.querySelector("pre code")?.textContent ?? "";
    switch (action) {
        case "copy":
            post({ type: "copy", text: code() });
            target.textContent = "Copied";
            setTimeout(() => (target.textContent = "Copy"), 1500);
            return;
        case "insert":
            post({ type: "insert", text: code() });
            return;
        case "approve":
            post({ type: "approve", id, answer: target.dataset["answer"] ?? "" });
            return;
        case "rewind":
            post({ type: "rewind", id });
            return;
        case "review-open":
            post({ type: "reviewOpen", id });
            return;
        case "review-selected":
        case "review-all":
        case "review-none":
            post({
                type: "reviewAnswer",
                id,
                answer:
                    action === "review-all"
                        ? "all"
                        : action === "review-none"
                          ? "none"
                          : "selected",
            });
            return;
        case "chip":
            return;
    }
});
transcript.addEventListener("change", (e) => {
    const box = e.target as HTMLInputElement;
    if (box.dataset["hunk"] === undefined) return;
    const id = box.closest<HTMLElement>("[data-item]")?.dataset["item"] ?? "";
    post({ type: "reviewToggle", id, index: Number(box.dataset["hunk"]), accepted: box.checked });
});
transcript.addEventListener(
    "toggle",
    (e) => {
        const details = e.target as HTMLDetailsElement;
        const id = details.closest<HTMLElement>("[data-item]")?.dataset["item"];
        if (!id) return;
        saved.open = saved.open.filter((o) => o !== id);
        if (details.open) saved.open.push(id);
        save();
    },
    true,
);
chipsRow.addEventListener("click", (e) => {
    const target = (e.target as HTMLElement).closest<HTMLElement>("[data-chip]");
    if (target) post({ type: "removeChip", kind: target.dataset["chip"] as Chip["kind"] });
});

// ---- rendering ---------------------------------------------------------------------------

function formatMs(ms: number): string {
    return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

function renderItem(item: Item): HTMLElement {
    switch (item.kind) {
        case "user": {
            const rewind = item.turn
                ? el(
                      "button",
                      {
                          type: "button",
                          class: "rewind",
                          "data-action": "rewind",
                          title: `Take the session and its changes back to before turn ${item.turn}`,
                      },
                      "Rewind to here",
                  )
                : "";
            const chips = item.chips.length
                ? el(
                      "div",
                      { class: "sent-chips" },
                      ...item.chips.map((c) => el("span", { class: "chip" }, c)),
                  )
                : "";
            return el(
                "div",
                { class: "msg user", "data-item": item.id },
                el("div", { class: "who" }, "You", rewind),
                el("div", { class: "text" }, item.text),
                chips,
            );
        }
        case "assistant": {
            const body = el("div", { class: "markdown" });
            body.innerHTML = markdown(item.text);
            return el(
                "div",
                {
                    class: `msg assistant${item.streaming ? " streaming" : ""}`,
                    "data-item": item.id,
                },
                body,
            );
        }
        case "thought": {
            // Folded: the reasoning is there for who wants it, the answer is what counts.
            const details = el("details", {
                class: `thought${item.streaming ? " streaming" : ""}`,
                "data-item": item.id,
            });
            details.open = saved.open.includes(item.id);
            details.append(
                el("summary", {}, "Thinking…"),
                el("div", { class: "thought-text" }, item.text),
            );
            return details;
        }
        case "plan": {
            const marks: Record<string, string> = {
                completed: "✓",
                in_progress: "▸",
                pending: "○",
            };
            return el(
                "div",
                { class: "plan", "data-item": item.id, role: "group", "aria-label": "Plan" },
                el("div", { class: "label" }, "Plan"),
                el(
                    "ul",
                    {},
                    ...item.entries.map((e) =>
                        el(
                            "li",
                            { class: `step ${e.status}`, "data-status": e.status },
                            el(
                                "span",
                                { class: "mark", "aria-label": e.status },
                                marks[e.status] ?? "○",
                            ),
                            el("span", { class: "content" }, e.content),
                        ),
                    ),
                ),
                item.explanation ? el("div", { class: "explanation" }, item.explanation) : "",
            );
        }
        case "tool": {
            const details = el("details", {
                class: `tool ${item.status}`,
                "data-item": item.id,
                "data-batch": String(item.batch),
            });
            details.open = saved.open.includes(item.id);
            const icon =
                item.status === "completed"
                    ? "✓"
                    : item.status === "failed"
                      ? "✗"
                      : item.status === "cancelled"
                        ? "⊘"
                        : "⋯";
            details.append(
                el(
                    "summary",
                    {},
                    el("span", { class: "status", "aria-label": item.status }, icon),
                    el("span", { class: "title" }, item.title),
                    item.lane ? el("span", { class: "lane" }, item.lane) : "",
                    el("span", { class: "state" }, item.status.replace("_", " ")),
                    item.durationMs !== undefined
                        ? el("span", { class: "duration" }, formatMs(item.durationMs))
                        : "",
                ),
                el(
                    "div",
                    { class: "tool-body" },
                    el("div", { class: "label" }, "input"),
                    el("pre", {}, item.input),
                ),
                item.summary
                    ? el(
                          "div",
                          { class: "tool-body" },
                          el("div", { class: "label" }, "output"),
                          el("pre", {}, item.summary),
                      )
                    : "",
            );
            return details;
        }
        case "approval": {
            const buttons = item.answer
                ? el("div", { class: "answered" }, `Answered: ${item.answer}`)
                : el(
                      "div",
                      { class: "buttons" },
                      ...item.actions.map((action, i) =>
                          el(
                              "button",
                              {
                                  type: "button",
                                  class: i === 0 ? "primary" : "",
                                  "data-action": "approve",
                                  "data-answer": action,
                              },
                              action,
                          ),
                      ),
                  );
            return el(
                "div",
                {
                    class: "card approval",
                    "data-item": item.id,
                    role: "group",
                    "aria-label": "Approval",
                },
                el("div", { class: "text" }, item.message),
                buttons,
            );
        }
        case "review": {
            const rows = item.hunks.map((h) => {
                const box = el("input", {
                    type: "checkbox",
                    id: `${item.id}-h${h.index}`,
                    "data-hunk": String(h.index),
                });
                box.checked = item.accepted[h.index] ?? false;
                box.disabled = item.answer !== undefined;
                return el(
                    "li",
                    {},
                    box,
                    el(
                        "label",
                        { for: `${item.id}-h${h.index}` },
                        `Hunk ${h.index + 1} · ${h.where} · ${h.delta}`,
                        h.excerpt ? el("code", {}, h.excerpt) : "",
                    ),
                );
            });
            const actions = item.answer
                ? el("div", { class: "answered" }, item.answer)
                : el(
                      "div",
                      { class: "buttons" },
                      el(
                          "button",
                          { type: "button", class: "primary", "data-action": "review-selected" },
                          "Apply selected",
                      ),
                      el("button", { type: "button", "data-action": "review-all" }, "Accept all"),
                      el("button", { type: "button", "data-action": "review-none" }, "Reject all"),
                      el("button", { type: "button", "data-action": "review-open" }, "Show diff"),
                  );
            return el(
                "div",
                {
                    class: "card review",
                    "data-item": item.id,
                    role: "group",
                    "aria-label": `Review of ${item.file}`,
                },
                el("div", { class: "text" }, `Review: ${item.tool} ${item.file}`),
                el("ul", { class: "hunks" }, ...rows),
                actions,
            );
        }
        case "notice":
            return el(
                "div",
                { class: `notice${item.error ? " error" : ""}`, "data-item": item.id },
                item.text,
            );
    }
}

function putItem(item: Item, before?: Node | null): void {
    const known = rendered.get(item.id);
    if (known && known.version === item.version) return;
    const node = renderItem(item);
    node.dataset["kind"] = item.kind;
    if (known) known.node.replaceWith(node);
    else transcript.insertBefore(node, before ?? null);
    rendered.set(item.id, { version: item.version, node });
}

function renderItems(items: Item[]): void {
    const ids = new Set(items.map((i) => i.id));
    for (const [id, entry] of rendered) {
        if (!ids.has(id)) {
            entry.node.remove();
            rendered.delete(id);
        }
    }
    for (const item of items) putItem(item);
    // Keep the DOM in the conversation's order.
    for (const item of items) transcript.append(rendered.get(item.id)!.node);
}

function renderChips(chips: Chip[]): void {
    chipsRow.replaceChildren(
        ...chips
            .filter((c) => !c.removed)
            .map((c) =>
                el(
                    "span",
                    { class: `chip ${c.kind}` },
                    `${c.kind === "file" ? "File" : "Selection"}: ${c.label}`,
                    el(
                        "button",
                        {
                            type: "button",
                            class: "chip-remove",
                            "data-chip": c.kind,
                            "aria-label": `Remove ${c.kind} ${c.label} from the context`,
                        },
                        "×",
                    ),
                ),
            ),
    );
}

function renderSessions(sessions: SessionChoice[], current?: string): void {
    const options = [el("option", { value: "" }, "New session")];
    let found = false;
    for (const s of sessions) {
        found ||= s.id === current;
        options.push(
            el(
                "option",
                { value: s.id },
                `${s.title || s.id} (${s.turns} turn${s.turns === 1 ? "" : "s"})`,
            ),
        );
    }
    if (current && !found) options.push(el("option", { value: current }, "This session"));
    sessionSelect.replaceChildren(...options);
    sessionSelect.value = current ?? "";
    deleteButton.disabled = !current;
}

function renderStatus(s: Omit<Extract<ToView, { type: "status" }>, "type">): void {
    document.body.classList.toggle("running", s.running);
    sendButton.disabled = s.running;
    stopButton.disabled = !s.running;
    stopButton.hidden = !s.running;
    usageLine.textContent = s.usage;
    renderChips(s.chips);
    renderSessions(s.sessions, s.sessionId);
    if (document.activeElement !== modelInput) modelInput.value = s.model;
    providerSelect.value = s.provider;
    reviewBox.checked = s.review;
}

function stickToBottom(run: () => void): void {
    const atBottom = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 40;
    run();
    if (atBottom) transcript.scrollTop = transcript.scrollHeight;
}

window.addEventListener("message", (event: MessageEvent<ToView>) => {
    const message = event.data;
    switch (message.type) {
        case "state":
            state = message.state;
            saved.last = state;
            save();
            stickToBottom(() => renderItems(state!.items));
            renderStatus(state);
            return;
        case "item": {
            if (!state) return;
            const at = state.items.findIndex((i) => i.id === message.item.id);
            if (at >= 0) state.items[at] = message.item;
            else state.items.push(message.item);
            stickToBottom(() => putItem(message.item));
            return;
        }
        case "status":
            if (state) Object.assign(state, message);
            renderStatus(message);
            return;
        case "focus":
            prompt.focus();
            return;
    }
});

// Until the extension answers, show what was there when the view was hidden.
if (saved.last) {
    state = saved.last;
    renderItems(state.items);
    renderStatus(state);
}
post({ type: "ready" });
