import { z } from "zod";
import { ChangedFile, Totals } from "../model.js";
import { formatChangedFiles, formatTotalCost, sessionId } from "./schemas.js";
import { defineTool } from "./define.js";

export const codingCloseTool = defineTool({
  name: "coding_close",
  title: "Close a coding session",
  description:
    "Close a session. A managed workspace is removed according to workspace.cleanup_policy (on_session_end: always; " +
    "on_success: unless success is false; manual: never) once no other session uses it; your own workspace_path is never deleted. " +
    "An isolated session's worktree is removed the same way (git worktree remove); its branch and commits stay in your repository. " +
    "Push first what you want to keep. Answers the files changed over the session and its totals (tasks, cost, tokens, time).",
  inputSchema: {
    session_id: sessionId,
    success: z.boolean().optional().describe("Whether the work succeeded; with cleanup_policy on_success a failed session's workspace is kept"),
  },
  outputSchema: {
    files_changed: z.array(ChangedFile),
    cleaned_up: z.boolean(),
    workspace_path: z.string(),
    totals: Totals,
    warnings: z.array(z.string()).optional(),
  },
  annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
  async handle(args, ctx) {
    const result = await ctx.sessions.close(args);
    return {
      structured: result,
      text:
        `Closed the session; workspace ${result.cleaned_up ? "removed" : `kept at ${result.workspace_path}`}. ` +
        `Changed over the session: ${formatChangedFiles(result.files_changed)}. ` +
        `${result.totals.tasks} tasks, ${formatTotalCost(result.totals)}, ${(result.totals.duration_ms / 1000).toFixed(1)} s.`,
    };
  },
});
