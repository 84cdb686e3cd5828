import { z } from "zod";
import { CommitRef } from "../model.js";
import { sessionId } from "./schemas.js";
import { defineTool } from "./define.js";

export const codingPushTool = defineTool({
  name: "coding_push",
  title: "Push the workspace branch",
  description:
    "Push the session's branch to a remote (default origin, current branch). Credentials come from coding-mcp's " +
    "configuration, never from the agent. A rejected push (someone pushed first) is reported, never forced. " +
    "A session with isolation worktree pushes its own branch, and the answer says how to review and merge that branch in your repository.",
  inputSchema: {
    session_id: sessionId,
    remote: z.string().min(1).optional().describe("Remote name (default origin)"),
    branch: z.string().min(1).optional().describe("Branch to push HEAD to (default: the current branch)"),
    set_upstream: z.boolean().optional().describe("Set the branch's upstream (default true)"),
  },
  outputSchema: {
    pushed: z.boolean(),
    remote: z.string(),
    branch: z.string(),
    commits: z.array(CommitRef).optional(),
    merge_hint: z.string().optional().describe("Isolated sessions: how to review and merge the session branch locally"),
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: true },
  async handle(args, ctx) {
    const result = await ctx.sessions.push(args);
    const n = result.commits?.length ?? 0;
    return {
      structured: result,
      text: `Pushed ${result.branch} to ${result.remote}${n ? ` (${n} new commits)` : " (already up to date)"}.${result.merge_hint ? ` ${result.merge_hint}` : ""}`,
    };
  },
});
