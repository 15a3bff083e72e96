/**
 * The messages between the chat view's webview and the extension, shared by both sides
 * (`chat.ts` in the extension host, `webview/chat.ts` in the webview). The extension owns the
 * conversation and sends it whole (`state`) or item by item (`item`); the webview sends what
 * the user does.
 */

/** A chip of context the prompt carries: the active file, or the selection in it. */
export interface Chip {
    kind: "file" | "selection";
    /** What the chip says: `greet.rs`, `greet.rs:3–5`. */
    label: string;
    /** The user removed it: it is not sent (until the file or selection changes). */
    removed: boolean;
}

/** One hunk of a change under review, as the review card shows it. */
export interface ReviewHunkView {
    index: number;
    /** `line 2`, `lines 4–6`, `new lines after line 3`. */
    where: string;
    /** `+2 −1`. */
    delta: string;
    /** The start of the new (or removed) text. */
    excerpt: string;
}

/** One entry of the transcript. `version` grows with each change, so the view re-renders only what changed. */
export type Item =
    | { kind: "user"; id: string; version: number; text: string; turn?: number; chips: string[] }
    | { kind: "assistant"; id: string; version: number; text: string; streaming: boolean }
    /** The model's reasoning, shown folded under "Thinking…". */
    | { kind: "thought"; id: string; version: number; text: string; streaming: boolean }
    /** The model's plan as it set it (`update_plan`), a checklist. */
    | {
          kind: "plan";
          id: string;
          version: number;
          entries: { content: string; status: string }[];
          explanation?: string;
      }
    | {
          kind: "tool";
          id: string;
          version: number;
          title: string;
          toolKind: string;
          lane?: string;
          status: string;
          durationMs?: number;
          summary: string;
          input: string;
          /** Calls that started together run in parallel: they share a batch number. */
          batch: number;
      }
    | {
          kind: "approval";
          id: string;
          version: number;
          message: string;
          actions: string[];
          answer?: string;
      }
    | {
          kind: "review";
          id: string;
          version: number;
          file: string;
          tool: string;
          hunks: ReviewHunkView[];
          /** Per hunk index: accepted. */
          accepted: boolean[];
          answer?: string;
      }
    | { kind: "notice"; id: string; version: number; text: string; error: boolean };

/** A stored session in the picker. */
export interface SessionChoice {
    id: string;
    title: string;
    turns: number;
    updatedMs: number;
}

/** Everything the view shows. */
export interface ChatState {
    sessionId?: string;
    running: boolean;
    items: Item[];
    /** The usage line: `1,200 in · 80 out · 800 cached — session 3,400 in …`. */
    usage: string;
    chips: Chip[];
    model: string;
    provider: string;
    sessions: SessionChoice[];
    /** `switchyard.review` is `changes`. */
    review: boolean;
}

/** Extension → webview. */
export type ToView =
    | { type: "state"; state: ChatState }
    | { type: "item"; item: Item }
    | {
          type: "status";
          running: boolean;
          usage: string;
          chips: Chip[];
          sessionId?: string;
          sessions: SessionChoice[];
          model: string;
          provider: string;
          review: boolean;
      }
    | { type: "focus" };

/** Webview → extension. */
export type FromView =
    | { type: "ready" }
    | { type: "send"; text: string }
    | { type: "stop" }
    | { type: "approve"; id: string; answer: string }
    | { type: "reviewToggle"; id: string; index: number; accepted: boolean }
    | { type: "reviewAnswer"; id: string; answer: "selected" | "all" | "none" }
    | { type: "reviewOpen"; id: string }
    | { type: "removeChip"; kind: "file" | "selection" }
    | { type: "newSession" }
    | { type: "selectSession"; id: string }
    | { type: "deleteSession"; id: string }
    | { type: "setModel"; model: string; provider: string }
    | { type: "setReview"; on: boolean }
    | { type: "rewind"; id: string }
    | { type: "copy"; text: string }
    | { type: "insert"; text: string }
    | { type: "openLink"; href: string };
