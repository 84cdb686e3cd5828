import { addTokens, emptyTokens, type TaskTrace, type ToolCallTrace, type TokenCounts } from "../model.js";
import { TRACE_LIMITS, boundedCalls, boundedInput, truncate } from "../trace-limits.js";
import type { OpencodeMessage, OpencodePart } from "./client.js";

/**
 * Builds a task's trace from the WHOLE turn: every assistant message whose parent is the task's
 * user message (each step of OpenCode's agent loop is its own message), not only the last one the
 * synchronous prompt returns. Everything is bounded so an answer fits a client's context window.
 */

/** The assistant messages of one turn, in order. */
export function turnMessages(messages: OpencodeMessage[], userMessageId: string): OpencodeMessage[] {
  return messages.filter((m) => m.info.role === "assistant" && m.info.parentID === userMessageId);
}

export function toolCallOf(part: OpencodePart, mapPath: (p: string) => string = (p) => p): ToolCallTrace | undefined {
  if (part.type !== "tool" || !part.state) return undefined;
  const state = part.state;
  const start = state.time?.start;
  const end = state.time?.end;
  const call: ToolCallTrace = {
    tool: part.tool ?? "unknown",
    status: state.status,
    input: boundedInput(state.input, mapPath),
    output_preview: truncate(mapPath(state.output ?? ""), TRACE_LIMITS.outputPreview),
    duration_ms: start && end ? Math.max(0, end - start) : 0,
  };
  if (part.callID) call.call_id = part.callID;
  if (state.title) call.title = truncate(mapPath(state.title), 200);
  if (state.error) call.error = truncate(mapPath(state.error), TRACE_LIMITS.outputPreview);
  if (start) call.started_at = start;
  if (end) call.ended_at = end;
  return call;
}

export interface TurnSummary {
  trace: TaskTrace;
  summary: string;
  /** The agent's own error, e.g. a provider failure or MessageAbortedError. */
  error?: { name: string; message: string; retryable?: boolean };
}

export function summarizeTurn(turn: OpencodeMessage[], durationMs: number, mapPath: (p: string) => string = (p) => p): TurnSummary {
  const tokens: TokenCounts = emptyTokens();
  const toolCalls: ToolCallTrace[] = [];
  const reasoning: string[] = [];
  let cost = 0;
  let summary = "";
  let error: TurnSummary["error"];
  for (const message of turn) {
    const info = message.info;
    cost += info.cost ?? 0;
    if (info.tokens) {
      addTokens(tokens, {
        input: info.tokens.input ?? 0,
        output: info.tokens.output ?? 0,
        reasoning: info.tokens.reasoning ?? 0,
        cache_read: info.tokens.cache?.read ?? 0,
        cache_write: info.tokens.cache?.write ?? 0,
      });
    }
    if (info.error) {
      error = { name: info.error.name, message: String(info.error.data?.message ?? info.error.name) };
      if (info.error.data?.isRetryable === true) error.retryable = true;
    }
    const texts: string[] = [];
    for (const part of message.parts) {
      const call = toolCallOf(part, mapPath);
      if (call) toolCalls.push(call);
      else if (part.type === "reasoning" && part.text) reasoning.push(truncate(part.text, TRACE_LIMITS.reasoningChars));
      else if (part.type === "text" && part.text && !part.synthetic) texts.push(part.text);
    }
    // The summary is the text of the last step that said something.
    if (texts.length) summary = texts.join("\n");
  }
  const last = turn.at(-1)?.info;
  const { kept: keptCalls, omitted } = boundedCalls(toolCalls);
  const trace: TaskTrace = {
    model: last?.modelID ?? "",
    provider: last?.providerID ?? "",
    cost: Math.round(cost * 1e6) / 1e6,
    tokens,
    duration_ms: durationMs,
    finish_reason: error ? "error" : (last?.finish ?? "unknown"),
    tool_calls: keptCalls,
    reasoning: reasoning.slice(-TRACE_LIMITS.reasoningEntries),
  };
  if (omitted) trace.tool_calls_omitted = omitted;
  return { trace, summary: truncate(mapPath(summary), TRACE_LIMITS.summaryChars), ...(error ? { error } : {}) };
}
