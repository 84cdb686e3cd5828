import { z } from "zod";
import { defineTool } from "./define.js";
import type { Elicit } from "../approvals.js";
import { TaskProgress, backgroundNotices } from "./progress.js";
import { CodeResult } from "../model.js";
import { diffResourceLink } from "../resources/diff.js";
import { formatChangedFiles, sessionId } from "./schemas.js";

export const codeTool = defineTool({
  name: "code",
  title: "Run a coding task",
  description:
    "Hand a whole coding task to the session's coding agent (the backend chosen at coding_open) in its workspace and wait for it to finish. " +
    "The agent reads, edits and runs code there; with a progressToken you get a notification as each tool call starts and ends. Answers with success, the agent's summary, the files changed (from git), " +
    "commits the agent made, and a trace: every tool call with its status and a preview of its output, tokens, cost and model. " +
    "The answer links (resource_link) to the session's diff, coding://sessions/{session_id}/diff; read it, or call coding_diff, to review the change. " +
    "Commit and push afterwards with coding_commit and coding_push.",
  inputSchema: {
    session_id: sessionId,
    task: z.string().min(1, { error: "task is required: describe what the agent should do" }).max(100_000).describe("What to do, in plain words"),
    context: z.string().max(100_000).optional().describe("Background the agent should know (constraints, conventions, links)"),
    files: z.array(z.string().min(1)).max(100).optional().describe("Paths in the workspace to point the agent at"),
    model: z.string().optional().describe("A model the session's backend offers (OpenCode: provider/model, e.g. anthropic/claude-sonnet-4-5); checked before the task starts"),
    agent: z.string().optional().describe("The backend's agent or mode: OpenCode's build or plan, or an ACP agent's session mode (e.g. Claude Code's default, acceptEdits, plan)"),
    timeout_sec: z.number().int().min(1).max(24 * 3600).optional().describe("Abort the task after this many seconds (default limits.task_timeout_min)"),
    background: z.boolean().optional().describe("Answer at once with a task_id and run the task in the background; follow it with coding_status"),
  },
  outputSchema: {
    // "done" with the result fields below; "running" (background: true) with task_id only.
    state: z.enum(["running", "done"]),
    task_id: z.string().optional(),
    ...CodeResult.partial().shape,
  },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: true },
  showsSessionView: true,
  async handle(args, ctx, extra) {
    const progress = new TaskProgress(extra, ctx.redactor, () => ctx.connection.logLevel);
    const { connection } = ctx;
    // The agent's requests for a person go to this client as forms when it can show them (foreground only).
    const elicit: Elicit | undefined =
      !args.background && connection.elicit && connection.canElicit?.()
        ? (form, signal) => connection.elicit!(form, { relatedRequestId: extra.requestId, signal })
        : undefined;
    let answer;
    try {
      answer = await ctx.sessions.code(args, {
        signal: extra.signal,
        onEvent: args.background ? backgroundNotices(connection, ctx.redactor) : progress.report,
        ...(elicit ? { elicit } : {}),
      });
    } finally {
      await progress.drain();
    }
    // The change stays readable (and reviewable before a commit) at the session's diff resource.
    const links = [diffResourceLink(args.session_id)];
    if (answer.state === "running") {
      return {
        links,
        structured: { state: "running" as const, task_id: answer.task.task_id },
        text: `Task ${answer.task.task_id} started in the background. Follow it with coding_status (session_id ${args.session_id}); stop it with coding_cancel.`,
      };
    }
    const { result } = answer;
    const trace = result.trace;
    const { tool_calls: calls } = trace;
    const tools = calls.length ? `${calls.length} tool calls (${[...new Set(calls.map((c) => c.tool))].join(", ")})` : "no tool calls";
    const head = result.success ? `Task finished: ${result.summary || "(no summary)"}` : `Task failed: ${result.error}`;
    const unknown = new Set(trace.unknown);
    const tokens = unknown.has("tokens") ? "unknown" : trace.tokens.input + trace.tokens.output + trace.tokens.reasoning;
    const cost = unknown.has("cost") ? "unknown" : trace.cost;
    return {
      links,
      structured: { state: "done" as const, ...result },
      text:
        `${head}\nFiles changed: ${formatChangedFiles(result.files_changed)}\n` +
        `${tools}; tokens ${tokens}; cost ${cost}; ${(trace.duration_ms / 1000).toFixed(1)} s; model ${trace.provider}/${trace.model}` +
        (result.commits?.length ? `\nCommits by the agent: ${result.commits.map((c) => c.hash.slice(0, 10)).join(", ")}` : "") +
        (result.warnings?.length ? `\nWarning: ${result.warnings.join("; ")}` : "") +
        `\nReview the change with coding_diff or the resource ${links[0]!.uri}.`,
    };
  },
});
