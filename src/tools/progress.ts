import { setImmediate as nextTurn } from "node:timers/promises";
import type { LoggingLevel } from "@modelcontextprotocol/sdk/types.js";
import { describePermissionReply } from "../approvals.js";
import type { TaskEvent } from "../backend.js";
import type { ToolCallTrace } from "../model.js";
import type { Redactor } from "../redact.js";
import type { ConnectionState, ToolExtra } from "./define.js";

/**
 * Turns a running task's events into what the client sees while it waits: MCP progress
 * notifications (when it sent a progressToken) and MCP log messages (when it set a log level).
 * Every message is redacted and sent at once; sends are chained, so a burst of tool calls is neither
 * reordered nor lost (a gap between them only made each message late: the 25 ms pacing this had was
 * most of the event-to-notification latency the benchmark measures).
 */

const SEVERITY: LoggingLevel[] = ["debug", "info", "notice", "warning", "error", "critical", "alert", "emergency"];

/** A short line for a tool call: a command, else its title, else the file or pattern it works on. */
export function describeCall(call: ToolCallTrace): string {
  const input = call.input;
  const str = (value: unknown) => (typeof value === "string" ? value : "");
  const detail = call.tool === "bash" ? `: ${str(input.command) || call.title || ""}` : ` ${call.title || str(input.filePath) || str(input.path) || str(input.pattern)}`;
  const text = `${call.tool}${detail}`.trim();
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}

function seconds(ms: number): string {
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

export function describeEvent(event: TaskEvent): string {
  switch (event.type) {
    case "started":
      return "task started";
    case "tool":
      if (event.phase === "started") return `▶ ${describeCall(event.call)}`;
    {
      // ? : the turn ended without the agent saying how the call ended.
      const mark = event.call.status === "error" ? "✗" : event.call.status === "unreported" ? "?" : "✓";
      const said = event.call.error ?? event.call.note;
      return `${mark} ${describeCall(event.call)} (${seconds(event.call.duration_ms)})${said ? `: ${said.slice(0, 200)}` : ""}`;
    }
    case "request": {
      const r = event.request;
      const how = r.elicited ? "asking the person" : "waiting for a person";
      return `${how} (${r.kind} ${r.request_id}): ${r.summary.slice(0, 200)}; answer with coding_respond before ${r.expires_at}`;
    }
    case "permission":
      return `permission ${event.decision.permission} ${describePermissionReply(event.decision)}${event.decision.patterns.length ? `: ${event.decision.patterns.join(", ").slice(0, 120)}` : ""}`;
    case "question": {
      const d = event.decision;
      const by = d.decided_by === "person" ? "by the person" : d.decided_by === "timeout" ? "(nobody answered in time)" : d.decided_by === "policy" ? "by policy" : "(the task ended)";
      return d.rejected
        ? `question dismissed ${by}: ${d.questions.map((q) => q.question).join(" / ").slice(0, 120)}`
        : `question answered ${by}: ${(d.answers ?? []).map((a) => a.join(", ")).join(" / ").slice(0, 120)}`;
    }
    case "retry":
      return `attempt ${event.attempt} in ${seconds(event.delayMs)} after: ${event.error.slice(0, 200)}`;
    case "finished": {
      const r = event.result;
      const calls = r.trace.tool_calls.length + (r.trace.tool_calls_omitted ?? 0);
      return r.success
        ? `task finished: ${calls} tool calls in ${seconds(r.trace.duration_ms)}`
        : `task ended without success: ${r.error ?? r.trace.finish_reason}`;
    }
  }
}

function levelOf(event: TaskEvent): LoggingLevel {
  if (event.type === "finished" && !event.result.success) return "warning";
  // A request waiting for a person is the one message someone has to act on.
  return event.type === "request" ? "notice" : "info";
}

/**
 * For a background task, whose call has answered: a request that waits for a person is announced as a
 * log message on the connection that started the task (when it set a log level); coding_status lists it too.
 */
export function backgroundNotices(connection: ConnectionState, redactor: Redactor): (event: TaskEvent) => void {
  return (event) => {
    if (event.type !== "request" || !connection.notify) return;
    const min = connection.logLevel;
    if (min === undefined || SEVERITY.indexOf(levelOf(event)) < SEVERITY.indexOf(min)) return;
    const data = redactor.text(describeEvent(event));
    connection.notify({ method: "notifications/message", params: { level: levelOf(event), logger: "coding-mcp", data } }).catch(() => undefined);
  };
}

export class TaskProgress {
  private readonly token: string | number | undefined;
  private queue: Promise<void> = Promise.resolve();
  private count = 0;
  private workspace?: string;

  constructor(
    private readonly extra: ToolExtra,
    private readonly redactor: Redactor,
    /** The level the client asked for with logging/setLevel, if it did. */
    private readonly logLevel: () => LoggingLevel | undefined,
  ) {
    this.token = extra._meta?.progressToken;
  }

  /** Whether anyone listens: without a progress token or log level, events are not turned into messages. */
  get active(): boolean {
    return this.token !== undefined || this.logLevel() !== undefined;
  }

  report = (event: TaskEvent): void => {
    if (!this.active) return;
    if (event.type === "started") this.workspace = event.directory + "/";
    // Paths inside the workspace read better relative to it.
    const message = this.redactor.text(describeEvent(event)).split(this.workspace ?? "\0").join("");
    const done = event.type === "finished";
    const level = levelOf(event);
    this.count += 1;
    const progress = this.count;
    this.queue = this.queue.then(async () => {
      if (this.token !== undefined) {
        await this.extra
          .sendNotification({ method: "notifications/progress", params: { progressToken: this.token, progress, ...(done ? { total: progress } : {}), message } })
          .catch(() => undefined);
      }
      const min = this.logLevel();
      if (min !== undefined && SEVERITY.indexOf(level) >= SEVERITY.indexOf(min)) {
        await this.extra
          .sendNotification({ method: "notifications/message", params: { level, logger: "coding-mcp", data: message } })
          .catch(() => undefined);
      }
    });
  };

  /** Wait until every message is out, and let the event loop turn once so the last one is not read together with the result. */
  async drain(): Promise<void> {
    await this.queue;
    await nextTurn();
  }
}
