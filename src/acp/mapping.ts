import path from "node:path";
import type { PromptResponse, RequestPermissionRequest, SessionUpdate, ToolCallContent, ToolCallUpdate, ToolKind } from "@agentclientprotocol/sdk/unstable";
import { endedWithTurn, type PermissionAsk, type TaskEvent } from "../backend.js";
import { emptyTokens, type TaskTrace, type TokenCounts, type ToolCallTrace } from "../model.js";
import { isInside } from "../path-inside.js";
import { TRACE_LIMITS, boundedCalls, boundedInput, truncate } from "../trace-limits.js";

/**
 * Turns an ACP agent's `session/update` notifications of one prompt turn into coding-mcp's task
 * events and trace: tool calls with status, title, input, bounded output and real start/end times;
 * the agent's last message as the summary; thoughts and plans as reasoning; tokens and cost where the
 * agent reports them. Pure: the caller passes each update with the time it arrived.
 */

/** What coding-mcp's permission policy calls each ACP tool kind (the policy's kinds are OpenCode's permission names). */
export const POLICY_KIND_OF: Record<ToolKind, string> = {
  execute: "bash",
  edit: "edit",
  delete: "edit",
  move: "edit",
  read: "read",
  search: "grep",
  fetch: "webfetch",
  think: "task",
  switch_mode: "switch_mode",
  other: "other",
};

/**
 * The policy's view of an agent's permission request. Any path outside the workspace makes it an
 * `external_directory` request, whatever the tool: the agent must not reach outside without a yes.
 */
export function permissionAskOf(request: Pick<RequestPermissionRequest, "toolCall">, workspace: string): PermissionAsk {
  const call = request.toolCall;
  const input = asRecord(call.rawInput);
  const paths = [...(call.locations ?? []).map((l) => l.path), ...pathsInInput(input)].filter((p): p is string => typeof p === "string" && p.length > 0);
  const outside = [...new Set(paths.map((p) => path.resolve(workspace, p)).filter((p) => !isInside(p, workspace)))];
  if (outside.length) return { permission: "external_directory", patterns: outside.slice(0, 10) };
  const kind = call.kind ?? undefined;
  const toolName = toolNameOf(call);
  const permission = kind ? (kind === "other" && toolName ? toolName : POLICY_KIND_OF[kind]) : (toolName ?? "other");
  if (kind === "execute" || input.command !== undefined) {
    const command = commandOf(input.command) ?? call.title ?? "";
    return { permission, patterns: command ? [command] : [] };
  }
  const relative = [...new Set(paths.map((p) => path.relative(workspace, path.resolve(workspace, p)) || "."))];
  return { permission, patterns: relative.slice(0, 10) };
}

/**
 * A command as the policy and the trace show it. Codex gives an argv that wraps the script in a
 * shell (`["/bin/bash", "-lc", "python3 x.py"]`): the script is what the agent asked to run.
 */
export function commandOf(command: unknown): string | undefined {
  if (typeof command === "string") return command;
  if (!Array.isArray(command) || !command.every((c) => typeof c === "string")) return undefined;
  const [shell, flag, script, ...rest] = command;
  if (shell && /(^|\/)(ba|z|da)?sh$/.test(shell) && flag && /^-l?c$/.test(flag) && script !== undefined && rest.length === 0) return script;
  return command.join(" ");
}

function pathsInInput(input: Record<string, unknown>): string[] {
  return ["file_path", "filePath", "path", "absolute_path", "notebook_path"].map((k) => input[k]).filter((v): v is string => typeof v === "string");
}

function asRecord(value: unknown): Record<string, unknown> {
  return value && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

/** The agent's own name for a tool where it tells it (Claude Code's `_meta`, the non-standard `name`). */
function toolNameOf(call: Pick<ToolCallUpdate, "_meta" | "name">): string | undefined {
  const meta = asRecord(asRecord(call._meta).claudeCode);
  const name = typeof meta.toolName === "string" ? meta.toolName : typeof call.name === "string" ? call.name : undefined;
  return name ? name.toLowerCase() : undefined;
}

/** The text of a tool call's content: text blocks as they are, diffs as a one-line note. */
function contentText(content: ToolCallContent[] | null | undefined): string {
  return (content ?? [])
    .map((c) => {
      if (c.type === "content") return c.content.type === "text" ? c.content.text : `[${c.content.type}]`;
      if (c.type === "diff") return `[diff ${c.path}]`;
      return `[terminal ${c.terminalId}]`;
    })
    .join("\n");
}

function rawOutputText(raw: unknown): string {
  if (typeof raw === "string") return raw;
  const record = asRecord(raw);
  for (const key of ["output", "stdout", "content", "error"]) if (typeof record[key] === "string") return record[key];
  return raw === undefined || raw === null ? "" : (JSON.stringify(raw) ?? "");
}

const STATUS_ORDER = { pending: 0, in_progress: 1, completed: 2, failed: 2 } as const;

interface CallState {
  id: string;
  tool: string;
  kind?: ToolKind;
  title?: string;
  status: "pending" | "in_progress" | "completed" | "failed";
  input: Record<string, unknown>;
  content: string;
  rawOutput: unknown;
  firstSeen: number;
  startedAt?: number;
  endedAt?: number;
  reported?: "started" | "ended";
  /** The turn ended before the agent reported this call's end. */
  unreported?: boolean;
}

interface Segment {
  kind: "message" | "thought";
  id?: string;
  text: string;
}

export interface TurnOutcome {
  trace: TaskTrace;
  summary: string;
  /** The `ended` events of calls the turn ended without the agent reporting their end (emit them before the result). */
  ended: TaskEvent[];
}

/**
 * One prompt turn as it happens. `update` takes each session/update in order and answers the task
 * events it produces (a tool call once as it starts, once as it ends); `finish` builds the trace.
 */
export class AcpTurn {
  private readonly calls = new Map<string, CallState>();
  private readonly segments: Segment[] = [];
  private plan?: string;
  private cost?: number;
  private model?: string;

  constructor(
    private readonly options: {
      /** The session's cumulative cost when the turn started (usage_update costs are per session). */
      costBefore?: number;
      /** provider/model or model, when known from the session's config options. */
      model?: string;
      /** Paths as coding-mcp shows them (e.g. relative to nothing: identity). */
      mapPath?: (p: string) => string;
    } = {},
  ) {
    if (options.model) this.model = options.model;
  }

  /** The session's cumulative cost so far (for the next turn's costBefore). */
  get sessionCost(): number | undefined {
    return this.cost ?? this.options.costBefore;
  }

  update(update: SessionUpdate, now: number): TaskEvent[] {
    switch (update.sessionUpdate) {
      case "tool_call":
      case "tool_call_update":
        return this.toolCall(update, now);
      case "agent_message_chunk":
      case "agent_thought_chunk": {
        const kind = update.sessionUpdate === "agent_message_chunk" ? "message" : "thought";
        if (update.content.type !== "text") return [];
        const last = this.segments.at(-1);
        const id = update.messageId ?? undefined;
        if (last && last.kind === kind && (last.id === id || !id || !last.id)) last.text += update.content.text;
        else this.segments.push({ kind, ...(id ? { id } : {}), text: update.content.text });
        return [];
      }
      case "plan":
        this.plan = update.entries.map((e) => `[${e.status === "completed" ? "x" : e.status === "in_progress" ? "~" : " "}] ${e.content}`).join("\n");
        return [];
      case "usage_update": {
        if (update.cost && typeof update.cost.amount === "number") this.cost = update.cost.amount;
        const model = asRecord(update._meta)["_claude/model"];
        if (typeof model === "string") this.model = model;
        return [];
      }
      default:
        return [];
    }
  }

  /**
   * A permission request names the tool call it is about, sometimes before the agent announced that
   * call as running: the call is taken as started then, so that its start is reported before the answer.
   */
  permissionAsked(toolCall: ToolCallUpdate, now: number): TaskEvent[] {
    // Its content is what the person is asked (Codex: "Proposed Amendment: ... Available Decisions"), not the call's output.
    return this.toolCall({ ...toolCall, content: undefined, rawOutput: undefined, sessionUpdate: "tool_call_update" }, now, true);
  }

  private toolCall(update: Extract<SessionUpdate, { sessionUpdate: "tool_call" | "tool_call_update" }>, now: number, asked = false): TaskEvent[] {
    let call = this.calls.get(update.toolCallId);
    if (!call) {
      // The first sight of a call; an agent may send an update (or a permission request) before its tool_call.
      const title = update.title ?? undefined;
      const named = toolNameOf(update);
      call = {
        id: update.toolCallId,
        // OpenCode titles a new call with its tool's name (`bash`, `write`); Claude Code says it in _meta.
        tool: named ?? (title && /^[a-z_]+$/.test(title) ? title : update.kind ? POLICY_KIND_OF[update.kind] : "tool"),
        status: "pending",
        input: {},
        content: "",
        rawOutput: undefined,
        firstSeen: now,
      };
      this.calls.set(call.id, call);
    }
    if (update.kind) call.kind = update.kind;
    if (update.title) call.title = update.title;
    // Merged: a permission request repeats only part of the input (OpenCode: the command alone).
    const input = { ...asRecord(update.rawInput) };
    if (Array.isArray(input.command)) input.command = commandOf(input.command) ?? input.command;
    if (Object.keys(input).length) call.input = { ...call.input, ...input };
    if (update.content?.length) call.content = contentText(update.content);
    if (update.rawOutput !== undefined) call.rawOutput = update.rawOutput;
    // Only forward: a permission request says "pending" about a call that may already run.
    if (update.status && STATUS_ORDER[update.status] > STATUS_ORDER[call.status]) call.status = update.status;

    const events: TaskEvent[] = [];
    const ended = call.status === "completed" || call.status === "failed";
    // A call has started once the agent runs it, asks to run it (Gemini CLI sends no input and no
    // in_progress before it asks), or once its input is known (Claude Code never says in_progress).
    const started = asked || ended || call.status === "in_progress" || Object.keys(call.input).some((k) => k !== "cwd");
    if (started && !call.reported) {
      call.startedAt = now;
      call.reported = "started";
      events.push({ type: "tool", phase: "started", call: this.trace(call) });
    }
    if (ended && call.reported !== "ended") {
      call.endedAt = now;
      call.reported = "ended";
      events.push({ type: "tool", phase: "ended", call: this.trace(call) });
    }
    return events;
  }

  private trace(call: CallState): ToolCallTrace {
    const mapPath = this.options.mapPath ?? ((p: string) => p);
    const output = call.content || rawOutputText(call.rawOutput);
    const started = call.startedAt ?? call.firstSeen;
    const trace: ToolCallTrace = {
      tool: call.tool,
      status: call.status === "completed" ? "completed" : call.status === "failed" ? "error" : call.status === "in_progress" || call.reported ? "running" : "pending",
      input: boundedInput(call.input, mapPath),
      output_preview: truncate(mapPath(output), TRACE_LIMITS.outputPreview),
      duration_ms: call.endedAt ? Math.max(0, call.endedAt - started) : 0,
      call_id: call.id,
      started_at: started,
    };
    // A title that only repeats the tool's name says nothing.
    if (call.title && call.title !== call.tool) trace.title = truncate(mapPath(call.title), 200);
    if (call.status === "failed") trace.error = truncate(mapPath(output || "the tool call failed"), TRACE_LIMITS.outputPreview);
    if (call.endedAt) trace.ended_at = call.endedAt;
    return call.unreported ? endedWithTurn(trace, call.endedAt ?? started) : trace;
  }

  /** Tool calls that started but did not end (e.g. a command still running when the turn was cancelled). */
  unfinished(kind?: ToolKind): ToolCallTrace[] {
    return [...this.calls.values()].filter((c) => c.reported === "started" && (!kind || c.kind === kind)).map((c) => this.trace(c));
  }

  /** Every tool call seen, in the order they appeared. */
  toolCalls(): ToolCallTrace[] {
    return [...this.calls.values()].filter((c) => c.reported).map((c) => this.trace(c));
  }

  /** The turn is over: a call it started and the agent never ended ends now, as `unreported`. */
  private endUnreported(now: number): TaskEvent[] {
    const events: TaskEvent[] = [];
    for (const call of this.calls.values()) {
      if (call.reported !== "started") continue;
      call.reported = "ended";
      call.endedAt = now;
      call.unreported = true;
      events.push({ type: "tool", phase: "ended", call: this.trace(call) });
    }
    return events;
  }

  finish(response: PromptResponse | undefined, durationMs: number, now = Date.now()): TurnOutcome {
    const ended = this.endUnreported(now);
    const { kept, omitted } = boundedCalls(this.toolCalls());
    const reasoning = this.segments.filter((s) => s.kind === "thought" && s.text.trim()).map((s) => truncate(s.text, TRACE_LIMITS.reasoningChars));
    if (this.plan) reasoning.push(truncate(`Plan:\n${this.plan}`, TRACE_LIMITS.reasoningChars));
    const summary = this.segments.filter((s) => s.kind === "message" && s.text.trim()).at(-1)?.text ?? "";
    const tokens: TokenCounts = emptyTokens();
    const usage = response?.usage;
    // Gemini CLI sends no `usage`; it sums the turn's tokens in `_meta.quota.token_count` instead.
    const quota = asRecord(asRecord(asRecord(response?._meta).quota).token_count);
    const quotaKnown = !usage && typeof quota.input_tokens === "number" && typeof quota.output_tokens === "number";
    if (usage) {
      tokens.input = usage.inputTokens ?? 0;
      tokens.output = usage.outputTokens ?? 0;
      tokens.reasoning = usage.thoughtTokens ?? 0;
      tokens.cache_read = usage.cachedReadTokens ?? 0;
      tokens.cache_write = usage.cachedWriteTokens ?? 0;
    } else if (quotaKnown) {
      tokens.input = quota.input_tokens as number;
      tokens.output = quota.output_tokens as number;
    }
    const costKnown = this.cost !== undefined;
    const cost = costKnown ? Math.max(0, this.cost! - (this.options.costBefore ?? 0)) : 0;
    const slash = this.model?.indexOf("/") ?? -1;
    const trace: TaskTrace = {
      model: this.model ? (slash > 0 ? this.model.slice(slash + 1) : this.model) : "",
      provider: this.model && slash > 0 ? this.model.slice(0, slash) : "",
      cost: Math.round(cost * 1e6) / 1e6,
      tokens,
      duration_ms: durationMs,
      finish_reason: response?.stopReason ?? "unknown",
      tool_calls: kept,
      reasoning: reasoning.slice(-TRACE_LIMITS.reasoningEntries),
    };
    if (omitted) trace.tool_calls_omitted = omitted;
    const unknown = [...(usage || quotaKnown ? [] : ["tokens" as const]), ...(costKnown ? [] : ["cost" as const])];
    if (unknown.length) trace.unknown = unknown;
    const mapPath = this.options.mapPath ?? ((p: string) => p);
    return { trace, summary: truncate(mapPath(summary), TRACE_LIMITS.summaryChars), ended };
  }
}
