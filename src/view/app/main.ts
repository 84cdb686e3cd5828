/**
 * The session view, running in the host's sandboxed iframe. It learns the session from the tool
 * call it is shown with (code's or coding_status's session_id, coding_open's answer), then follows
 * it with coding_status (once a second while a task runs) and reads the change with coding_diff.
 * Everything it does is a call of one of coding-mcp's tools through the host, so answers are
 * redacted and checked as for any other client. All text is set as text (dom.ts).
 */
import { App, applyDocumentTheme, applyHostStyleVariables } from "@modelcontextprotocol/ext-apps";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import type { PendingRequest, SessionDiff, SessionStatus, TaskView } from "../../model.js";
import { parseUnifiedDiff, type DiffFile } from "./diff.js";
import { byId, fill, h, seconds } from "./dom.js";

const POLL_MS = 1000;
/** A file's diff longer than this starts collapsed. */
const COLLAPSE_LINES = 200;

const app = new App({ name: "coding-mcp session view", version: "1.0.0" }, {}, { autoResize: true });

let sessionId: string | undefined;
let current: SessionStatus | undefined;
let pollTimer: ReturnType<typeof setTimeout> | undefined;
/** The diff shown is of the task (or commit) this names; another one reads it again. */
let diffOf: string | undefined;

async function call(name: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
  const result: CallToolResult = await app.callServerTool({ name, arguments: args });
  const text = result.content.flatMap((c) => (c.type === "text" ? [c.text] : [])).join("\n");
  // The tool's own words: what was wrong and what to do.
  if (result.isError) throw new Error(text || `${name} failed`);
  return result.structuredContent ?? {};
}

function showError(err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  fill(byId("error"), message);
  byId("error").hidden = false;
}

function clearError(): void {
  byId("error").hidden = true;
}

/** Run a steering action: buttons stay disabled until it answered; the status is read again at once. */
async function act(buttons: HTMLButtonElement[], action: () => Promise<unknown>): Promise<void> {
  for (const b of buttons) b.disabled = true;
  clearError();
  try {
    await action();
  } catch (err) {
    showError(err);
  } finally {
    for (const b of buttons) b.disabled = false;
  }
  await refresh();
}

// ----------------------------------------------------------------------------------------------
// Following the session
// ----------------------------------------------------------------------------------------------

function follow(id: string): void {
  if (id === sessionId) return;
  sessionId = id;
  diffOf = undefined;
  void refresh();
}

async function refresh(): Promise<void> {
  if (!sessionId) return;
  clearTimeout(pollTimer);
  try {
    const { sessions } = (await call("coding_status", { session_id: sessionId })) as { sessions?: SessionStatus[] };
    const status = sessions?.[0];
    if (status) {
      current = status;
      render(status);
      const diffKey = status.task?.state === "running" ? undefined : `${status.task?.task_id ?? "none"}:${status.task?.finished_at ?? ""}`;
      if (diffKey && diffKey !== diffOf) {
        diffOf = diffKey;
        await loadDiff();
      }
    }
  } catch (err) {
    showError(err);
  }
  // One chain of polls, however many refreshes (a poll, an action's) overlapped.
  clearTimeout(pollTimer);
  if (current?.task?.state === "running") pollTimer = setTimeout(() => void refresh(), POLL_MS);
}

async function loadDiff(): Promise<void> {
  if (!sessionId) return;
  const diff = (await call("coding_diff", { session_id: sessionId })) as unknown as SessionDiff;
  renderDiff(diff);
}

// ----------------------------------------------------------------------------------------------
// Rendering
// ----------------------------------------------------------------------------------------------

function render(s: SessionStatus): void {
  const task = s.task;
  const state = task ? (task.state === "running" ? (task.pending_requests?.length ? "waiting" : "running") : task.result?.success ? "done" : "failed") : s.state;
  const stateLabel: Record<string, string> = { running: "running", waiting: "waiting for you", done: "finished", failed: "failed", idle: "idle", closed: "closed" };
  fill(byId("title"), s.title || s.session_id);
  const badge = byId("state");
  badge.dataset.state = state;
  fill(badge, stateLabel[state] ?? state);
  byId("app").dataset.state = state;

  fill(byId("task"), task ? task.task : "No task yet.");
  const started = task ? Date.parse(task.started_at) : undefined;
  const ended = task?.finished_at ? Date.parse(task.finished_at) : Date.now();
  const trace = task?.result?.trace;
  const unknown = new Set(trace?.unknown ?? []);
  fill(
    byId("figures"),
    ...[
      started !== undefined ? `elapsed ${seconds(ended - started)}` : undefined,
      task ? `${task.tool_calls.length} tool calls` : undefined,
      trace ? `tokens ${unknown.has("tokens") ? "unknown" : trace.tokens.input + trace.tokens.output + trace.tokens.reasoning}` : undefined,
      trace ? `cost ${unknown.has("cost") ? "unknown" : `$${trace.cost.toFixed(4)}`}` : undefined,
      trace?.model ? `model ${trace.provider}/${trace.model}` : undefined,
      s.confined ? "commands sandboxed" : "commands not sandboxed",
      `session total: ${s.totals.tasks} ${s.totals.tasks === 1 ? "task" : "tasks"}, $${s.totals.cost.toFixed(4)}`,
    ]
      .filter((f): f is string => Boolean(f))
      .map((f) => h("span", {}, f)),
  );
  const outcome = byId("outcome");
  outcome.hidden = !task?.result;
  if (task?.result) fill(outcome, task.result.success ? task.result.summary || "(no summary)" : `Failed: ${task.result.error ?? "unknown error"}`);

  byId<HTMLButtonElement>("cancel").hidden = task?.state !== "running";
  renderPending(task?.state === "running" ? (task.pending_requests ?? []) : []);
  renderTimeline(task?.state === "running" ? task.tool_calls : (task?.result?.trace.tool_calls ?? task?.tool_calls ?? []));
  renderDecisions(task);
  byId("commit-box").hidden = s.state !== "idle";
  if (task?.state === "running") fill(byId("files-empty"), "Shown when the task has ended.");
}

function renderTimeline(calls: TaskView["tool_calls"]): void {
  const list = byId("timeline");
  // Items are kept (with their open previews) and updated in place; a call's index is its identity.
  calls.forEach((c, i) => {
    let item = list.children[i] as HTMLLIElement | undefined;
    if (!item) {
      item = h("li", { class: "call" }, h("div", { class: "call-head" }), h("details", {}, h("summary", {}, "output"), h("pre", { class: "preview" })));
      list.append(item);
    }
    item.dataset.status = c.status;
    fill(
      item.querySelector(".call-head")!,
      h("span", { class: "tool" }, c.tool),
      h("span", { class: "call-title" }, c.title ?? ""),
      h("span", { class: "status", attrs: { "data-status": c.status } }, c.status),
      h("span", { class: "duration" }, c.duration_ms ? seconds(c.duration_ms) : ""),
    );
    const preview = [c.error ? `error: ${c.error}` : "", c.output_preview].filter(Boolean).join("\n");
    const details = item.querySelector("details")!;
    details.hidden = !preview;
    fill(item.querySelector("pre")!, preview);
  });
  while (list.children.length > calls.length) list.lastElementChild!.remove();
  byId("timeline-empty").hidden = calls.length > 0;
}

function renderPending(pending: PendingRequest[]): void {
  const box = byId("pending");
  const ids = new Set(pending.map((p) => p.request_id));
  for (const card of [...box.children] as HTMLElement[]) if (!ids.has(card.dataset.request ?? "")) card.remove();
  for (const p of pending) {
    if (box.querySelector(`[data-request="${CSS.escape(p.request_id)}"]`)) continue;
    box.append(p.kind === "permission" ? permissionCard(p) : questionCard(p));
  }
  box.hidden = pending.length === 0;
}

function permissionCard(p: PendingRequest): HTMLElement {
  const buttons: HTMLButtonElement[] = [];
  const message = h("input", { class: "message", attrs: { type: "text", placeholder: "Message to the agent (optional)", "aria-label": "Message to the agent" } });
  const button = (label: string, decision: "allow" | "allow_session" | "reject", cls: string) => {
    const b = h("button", { class: cls, attrs: { "data-decision": decision } }, label);
    b.addEventListener("click", () =>
      void act(buttons, () => call("coding_respond", { session_id: sessionId, request_id: p.request_id, decision, ...(message.value.trim() ? { message: message.value.trim() } : {}) })),
    );
    buttons.push(b);
    return b;
  };
  return h(
    "div",
    { class: "card request", attrs: { "data-request": p.request_id, "data-kind": "permission" } },
    h("div", { class: "ask" }, "The agent asks to ", p.summary),
    p.patterns?.length ? h("ul", { class: "patterns" }, ...p.patterns.map((pattern) => h("li", {}, h("code", {}, pattern)))) : null,
    h("div", { class: "expires" }, `Rejected unless answered by ${new Date(p.expires_at).toLocaleTimeString()}`),
    message,
    h("div", { class: "actions" }, button("Allow once", "allow", "primary"), button("Allow for this session", "allow_session", ""), button("Reject", "reject", "danger")),
  );
}

function questionCard(p: PendingRequest): HTMLElement {
  const buttons: HTMLButtonElement[] = [];
  const readers: (() => string[])[] = [];
  const questions = (p.questions ?? []).map((q, qi) => {
    const name = `${p.request_id}-${qi}`;
    const choices = q.options.map((o) =>
      h(
        "label",
        { class: "choice" },
        h("input", { attrs: { type: q.multiple ? "checkbox" : "radio", name, value: o.label } }),
        h("span", {}, o.label),
        o.description ? h("span", { class: "muted" }, ` ${o.description}`) : null,
      ),
    );
    const own = q.custom !== false ? h("input", { class: "own", attrs: { type: "text", placeholder: "Or your own answer", "aria-label": "Your own answer" } }) : null;
    readers.push(() => {
      const typed = own?.value.trim();
      if (typed) return [typed];
      return choices.flatMap((c) => {
        const input = c.querySelector("input")!;
        return input.checked ? [input.value] : [];
      });
    });
    return h("fieldset", {}, h("legend", {}, q.header ? `${q.header}: ${q.question}` : q.question), ...choices, own);
  });
  const send = h("button", { class: "primary", attrs: { "data-decision": "answer" } }, "Answer");
  const dismiss = h("button", { class: "danger", attrs: { "data-decision": "reject" } }, "Dismiss");
  buttons.push(send, dismiss);
  send.addEventListener("click", () => {
    const answers = readers.map((read) => read());
    const missing = answers.findIndex((a) => a.length === 0);
    if (missing >= 0) return showError(`Choose or type an answer to question ${missing + 1} first.`);
    void act(buttons, () => call("coding_respond", { session_id: sessionId, request_id: p.request_id, answers: answers.map((a) => (a.length === 1 ? a[0] : a)) }));
  });
  dismiss.addEventListener("click", () => void act(buttons, () => call("coding_respond", { session_id: sessionId, request_id: p.request_id, decision: "reject" })));
  return h(
    "div",
    { class: "card request", attrs: { "data-request": p.request_id, "data-kind": "question" } },
    h("div", { class: "ask" }, "The agent asks you"),
    ...questions,
    h("div", { class: "actions" }, send, dismiss),
  );
}

function renderDecisions(task: TaskView | undefined): void {
  const trace = task?.result?.trace;
  const reply = { once: "allowed once", always: "allowed for the session", reject: "rejected" } as const;
  const items = [
    ...(trace?.permissions ?? []).map((d) =>
      h(
        "li",
        { attrs: { "data-reply": d.reply } },
        h("span", { class: "tool" }, d.permission),
        h("span", {}, ` ${d.patterns.join(", ")}: `),
        h("strong", {}, reply[d.reply]),
        h("span", { class: "muted" }, ` by ${d.decided_by ?? "policy"}${d.duration_ms !== undefined ? ` after ${seconds(d.duration_ms)}` : ""}`),
        d.message ? h("div", { class: "muted" }, `“${d.message}”`) : null,
      ),
    ),
    ...(trace?.questions ?? []).map((q) =>
      h(
        "li",
        { attrs: { "data-reply": q.rejected ? "reject" : "answered" } },
        h("span", { class: "tool" }, "question"),
        h("span", {}, ` ${q.questions.map((x) => x.question).join(" / ")}: `),
        h("strong", {}, q.rejected ? "dismissed" : (q.answers ?? []).map((a) => a.join(", ")).join(" / ")),
        h("span", { class: "muted" }, ` by ${q.decided_by} after ${seconds(q.duration_ms)}`),
      ),
    ),
  ];
  fill(byId("decisions"), ...items);
  byId("decisions-section").hidden = items.length === 0;
}

function renderDiff(diff: SessionDiff): void {
  const files = parseUnifiedDiff(diff.diff);
  fill(
    byId("files"),
    ...diff.files_changed.map((f) =>
      h(
        "li",
        { attrs: { "data-status": f.status } },
        h("span", { class: "file-status" }, f.status),
        h("span", { class: "path" }, f.path),
        f.additions !== undefined ? h("span", { class: "add" }, ` +${f.additions}`) : null,
        f.deletions !== undefined ? h("span", { class: "del" }, ` −${f.deletions}`) : null,
      ),
    ),
  );
  fill(byId("files-empty"), "None.");
  byId("files-empty").hidden = diff.files_changed.length > 0;
  fill(byId("diff"), ...files.map(fileDiff));
  const note = byId("diff-note");
  note.hidden = !diff.truncated;
  fill(note, "The diff is cut short here; call coding_diff with a larger max_bytes or with paths for the rest.");
}

function fileDiff(f: DiffFile): HTMLElement {
  const body = f.binary
    ? h("div", { class: "muted binary" }, "Binary file: not shown")
    : h(
        "pre",
        { class: "lines" },
        ...f.lines.map((l) => h("span", { class: `line ${l.kind}` }, l.text, "\n")),
      );
  const details = h(
    "details",
    { class: "file", attrs: { "data-path": f.path } },
    h(
      "summary",
      {},
      h("span", { class: "file-status" }, f.status),
      h("span", { class: "path" }, f.from ? `${f.from} → ${f.path}` : f.path),
      f.binary ? h("span", { class: "muted" }, " binary") : h("span", { class: "add" }, ` +${f.additions}`),
      f.binary ? null : h("span", { class: "del" }, ` −${f.deletions}`),
      f.lines.length > COLLAPSE_LINES ? h("span", { class: "muted" }, ` (${f.lines.length} lines, collapsed)`) : null,
    ),
    body,
  );
  details.open = f.lines.length <= COLLAPSE_LINES;
  return details;
}

// ----------------------------------------------------------------------------------------------
// Steering: cancel and commit (answers to requests are on their cards)
// ----------------------------------------------------------------------------------------------

const cancelButton = byId<HTMLButtonElement>("cancel");
cancelButton.addEventListener("click", () => void act([cancelButton], () => call("coding_cancel", { session_id: sessionId })));

const commitButton = byId<HTMLButtonElement>("commit");
// A click, not a form submission: hosts' sandboxes may not allow forms.
commitButton.addEventListener("click", () => {
  const message = byId<HTMLTextAreaElement>("commit-message").value.trim();
  if (!message) return showError("Write a commit message first.");
  void act([commitButton], async () => {
    const result = await call("coding_commit", { session_id: sessionId, message });
    fill(
      byId("commit-result"),
      result.committed
        ? `Committed ${String(result.commit_hash).slice(0, 12)}: ${String(result.files_changed)} files changed, +${String(result.insertions)} −${String(result.deletions)}`
        : "Nothing to commit: the workspace has no changes.",
    );
    diffOf = undefined;
  });
});

// ----------------------------------------------------------------------------------------------
// The host: theme, the tool call the view is shown with
// ----------------------------------------------------------------------------------------------

function applyHostContext(ctx: ReturnType<App["getHostContext"]>): void {
  if (ctx?.theme) applyDocumentTheme(ctx.theme);
  if (ctx?.styles?.variables) applyHostStyleVariables(ctx.styles.variables);
}

function sessionOf(value: unknown): string | undefined {
  const v = value as { session_id?: unknown; sessions?: { session_id?: unknown; state?: string }[] } | undefined;
  if (typeof v?.session_id === "string") return v.session_id;
  const sessions = v?.sessions ?? [];
  const chosen = sessions.find((s) => s.state === "running") ?? sessions[0];
  return typeof chosen?.session_id === "string" ? chosen.session_id : undefined;
}

app.ontoolinput = (params) => {
  const id = sessionOf(params.arguments);
  if (id) follow(id);
};
app.ontoolresult = (result) => {
  const id = sessionOf(result.structuredContent);
  if (id) follow(id);
  else if (sessionId) void refresh();
};
app.onhostcontextchanged = (ctx) => applyHostContext(ctx);

await app.connect();
applyHostContext(app.getHostContext());
