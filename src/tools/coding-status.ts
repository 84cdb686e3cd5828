import { z } from "zod";
import { defineTool } from "./define.js";
import { SessionStatus } from "../model.js";
import { formatTotalCost } from "./schemas.js";

export const codingStatusTool = defineTool({
  name: "coding_status",
  title: "Show coding sessions and their tasks",
  description:
    "Show a session (or, without session_id, every open session): whether it is idle, running a task or closed; the running " +
    "task's tool calls so far and its requests that wait for a person (pending_requests: answer them with coding_respond), or the last task's result " +
    "once it is done; and the session's totals (tasks, cost, tokens, time). " +
    "Use it to follow a task started with code background: true.",
  inputSchema: {
    session_id: z.string().min(1).optional().describe("A session_id from coding_open; omit for all open sessions"),
  },
  outputSchema: {
    sessions: z.array(SessionStatus),
  },
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  showsSessionView: true,
  async handle(args, ctx) {
    const sessions = await ctx.sessions.status(args.session_id);
    const lines = sessions.map((s) => {
      const t = s.task;
      const task = !t
        ? "no task yet"
        : t.state === "running"
          ? `running ${t.task_id} (${t.tool_calls.length} tool calls so far)` +
            (t.pending_requests?.length
              ? `; waiting for a person: ${t.pending_requests.map((r) => `${r.request_id} (${r.kind}: ${r.summary.slice(0, 120)})`).join("; ")}: answer with coding_respond`
              : "")
          : `last task ${t.task_id} ${t.result?.success ? "succeeded" : `failed: ${t.result?.error ?? "unknown"}`}`;
      return `${s.session_id}: ${s.state}${s.confined ? "" : " (commands NOT confined)"}; ${task}; ${s.totals.tasks} tasks, ${formatTotalCost(s.totals)}${s.warnings?.length ? `; warning: ${s.warnings.join("; ")}` : ""}`;
    });
    return { structured: { sessions }, text: lines.join("\n") || "No open sessions." };
  },
});
