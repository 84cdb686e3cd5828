/**
 * The bounds of a task's trace, the same for every backend, so that an answer fits a client's
 * context window: how many calls, how long an input string, an output preview, a summary.
 */

export const TRACE_LIMITS = {
  toolCalls: 60,
  inputString: 300,
  outputPreview: 400,
  reasoningEntries: 6,
  reasoningChars: 600,
  summaryChars: 4000,
} as const;

export function truncate(text: string, max: number): string {
  if (text.length <= max) return text;
  return `${text.slice(0, max)}… [${text.length - max} more chars]`;
}

/** A tool call's input with every string (after `mapPath`) and every nested value cut to TRACE_LIMITS.inputString. */
export function boundedInput(input: Record<string, unknown> | undefined, mapPath: (p: string) => string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(input ?? {})) {
    if (typeof value === "string") out[key] = truncate(mapPath(value), TRACE_LIMITS.inputString);
    else if (value === null || typeof value === "number" || typeof value === "boolean") out[key] = value;
    else out[key] = truncate(JSON.stringify(value) ?? "", TRACE_LIMITS.inputString);
  }
  return out;
}

/**
 * At most TRACE_LIMITS.toolCalls calls: the first and the last halves are kept (the start shows the
 * approach, the end the outcome), and how many were left out between them.
 */
export function boundedCalls<T>(calls: T[]): { kept: T[]; omitted: number } {
  const omitted = Math.max(0, calls.length - TRACE_LIMITS.toolCalls);
  if (!omitted) return { kept: calls, omitted };
  return { kept: [...calls.slice(0, TRACE_LIMITS.toolCalls / 2), ...calls.slice(-TRACE_LIMITS.toolCalls / 2)], omitted };
}
