import { z } from "zod";

/** Output shapes shared by several tools. */

export const sessionId = z
  .string()
  .min(1, { error: "session_id is required: use the session_id coding_open returned" })
  .describe("The session_id returned by coding_open");

export const ChangedFile = z.object({
  path: z.string(),
  status: z.enum(["added", "modified", "deleted", "renamed"]),
  additions: z.number().int().optional(),
  deletions: z.number().int().optional(),
});

export const Tokens = z.object({
  input: z.number(),
  output: z.number(),
  reasoning: z.number(),
  cache_read: z.number(),
  cache_write: z.number(),
});

export const Totals = z.object({
  tasks: z.number().int(),
  cost: z.number(),
  tokens: Tokens,
  duration_ms: z.number(),
});

export const CommitRef = z.object({ hash: z.string(), subject: z.string() });

export const ToolCall = z.object({
  tool: z.string(),
  status: z.enum(["pending", "running", "completed", "error"]),
  title: z.string().optional(),
  input: z.record(z.string(), z.unknown()),
  output_preview: z.string(),
  duration_ms: z.number(),
  error: z.string().optional(),
});

export const Trace = z.object({
  model: z.string(),
  provider: z.string(),
  cost: z.number(),
  tokens: Tokens,
  duration_ms: z.number(),
  finish_reason: z.string(),
  tool_calls: z.array(ToolCall),
  tool_calls_omitted: z.number().int().optional(),
  reasoning: z.array(z.string()),
  permissions: z.array(z.object({ permission: z.string(), patterns: z.array(z.string()), reply: z.enum(["once", "reject"]) })).optional(),
});

export function formatChangedFiles(files: z.infer<typeof ChangedFile>[], max = 12): string {
  if (files.length === 0) return "no files changed";
  const shown = files.slice(0, max).map((f) => {
    const counts = f.additions !== undefined ? ` +${f.additions} -${f.deletions ?? 0}` : "";
    return `${f.path} (${f.status}${counts})`;
  });
  return shown.join(", ") + (files.length > max ? `, and ${files.length - max} more` : "");
}

export const Failure = z.enum(["timeout", "cancelled", "agent_error", "backend_unavailable"]);

/** A finished task's answer: what `code` returns, and what coding_status shows once a task is done. */
export const CodeResult = z.object({
  success: z.boolean(),
  summary: z.string(),
  files_changed: z.array(ChangedFile),
  trace: Trace,
  commits: z.array(CommitRef).optional(),
  error: z.string().optional(),
  failure: Failure.optional(),
  attempts: z.number().int().optional(),
});

export const TaskView = z.object({
  task_id: z.string(),
  task: z.string(),
  state: z.enum(["running", "done"]),
  started_at: z.string(),
  finished_at: z.string().optional(),
  tool_calls: z.array(ToolCall),
  result: CodeResult.optional(),
});
