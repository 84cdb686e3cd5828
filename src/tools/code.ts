import { z } from "zod";
import { UserError } from "../errors.js";
import { defineTool } from "./define.js";
import { TaskProgress } from "./progress.js";
import { ChangedFile, CommitRef, Trace, formatChangedFiles, sessionId } from "./schemas.js";

export const codeTool = defineTool({
  name: "code",
  title: "Run a coding task",
  description:
    "Hand a whole coding task to the OpenCode agent in the session's workspace and wait for it to finish. " +
    "The agent reads, edits and runs code there; with a progressToken you get a notification as each tool call starts and ends. Answers with success, the agent's summary, the files changed (from git), " +
    "commits the agent made, and a trace: every tool call with its status and a preview of its output, tokens, cost and model. " +
    "Commit and push afterwards with coding_commit and coding_push.",
  inputSchema: {
    session_id: sessionId,
    task: z.string().min(1, { error: "task is required: describe what the agent should do" }).max(100_000).describe("What to do, in plain words"),
    context: z.string().max(100_000).optional().describe("Background the agent should know (constraints, conventions, links)"),
    files: z.array(z.string().min(1)).max(100).optional().describe("Paths in the workspace to point the agent at"),
    model: z.string().optional().describe("provider/model for this task, e.g. anthropic/claude-sonnet-4-5"),
    agent: z.string().optional().describe("OpenCode agent to use, e.g. build or plan"),
    timeout_sec: z.number().int().min(1).max(24 * 3600).optional().describe("Abort the task after this many seconds (default limits.task_timeout_min)"),
    background: z.boolean().optional().describe("Reserved: not supported yet in this version; code waits for the result"),
  },
  outputSchema: {
    success: z.boolean(),
    summary: z.string(),
    files_changed: z.array(ChangedFile),
    trace: Trace,
    commits: z.array(CommitRef).optional(),
    error: z.string().optional(),
    failure: z.enum(["timeout", "cancelled", "agent_error", "backend_unavailable"]).optional(),
    attempts: z.number().int().optional(),
  },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
  async handle(args, ctx, extra) {
    if (args.background) {
      throw new UserError("background tasks are not supported by this version of coding-mcp", "Call code without background; it waits for the result and sends progress notifications.");
    }
    const progress = new TaskProgress(extra, ctx.redactor, () => ctx.connection.logLevel);
    let result;
    try {
      result = await ctx.sessions.code(args, { signal: extra.signal, onEvent: progress.report });
    } finally {
      await progress.drain();
    }
    const trace = result.trace;
    const { tool_calls: calls } = trace;
    const tools = calls.length ? `${calls.length} tool calls (${[...new Set(calls.map((c) => c.tool))].join(", ")})` : "no tool calls";
    const head = result.success ? `Task finished: ${result.summary || "(no summary)"}` : `Task failed: ${result.error}`;
    const tokens = trace.tokens.input + trace.tokens.output + trace.tokens.reasoning;
    return {
      structured: result,
      text:
        `${head}\nFiles changed: ${formatChangedFiles(result.files_changed)}\n` +
        `${tools}; ${tokens} tokens; cost ${trace.cost}; ${(trace.duration_ms / 1000).toFixed(1)} s; model ${trace.provider}/${trace.model}` +
        (result.commits?.length ? `\nCommits by the agent: ${result.commits.map((c) => c.hash.slice(0, 10)).join(", ")}` : ""),
    };
  },
});
