import { z } from "zod";
import { sessionId } from "./schemas.js";
import { defineTool } from "./define.js";

export const codingCommitTool = defineTool({
  name: "coding_commit",
  title: "Commit workspace changes",
  description:
    "Commit the changes in the session's workspace: all of them (default) or only the given paths. " +
    "In your own checkout (workspace_path without isolation), files that already had uncommitted changes when the session opened are left out unless named in paths, and listed in left_out. " +
    "Answers the commit hash and the stats exactly as git counts them; with nothing to commit it answers committed: false.",
  inputSchema: {
    session_id: sessionId,
    message: z.string().trim().min(1, { error: "message is required: the commit message" }).max(20_000),
    add_all: z.boolean().optional().describe("Stage every change, new files included (default true)"),
    paths: z.array(z.string().min(1)).max(1000).optional().describe("Commit only these paths (relative to the workspace)"),
  },
  outputSchema: {
    committed: z.boolean(),
    commit_hash: z.string().optional(),
    files_changed: z.number().int(),
    insertions: z.number().int(),
    deletions: z.number().int(),
    left_out: z.array(z.string()).optional().describe("Files (from the repository's top) with uncommitted changes from before the session opened, not committed"),
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
  async handle(args, ctx) {
    const result = await ctx.sessions.commit(args);
    const leftOut = result.left_out?.length
      ? ` Left out, because they had uncommitted changes before the session opened (name them in paths to commit them): ${result.left_out.slice(0, 20).join(", ")}${result.left_out.length > 20 ? `, and ${result.left_out.length - 20} more` : ""}.`
      : "";
    return {
      structured: result,
      text:
        (result.committed
          ? `Committed ${result.commit_hash?.slice(0, 12)}: ${result.files_changed} files changed, ${result.insertions} insertions(+), ${result.deletions} deletions(-).`
          : "Nothing to commit: the workspace has no changes (for the given paths).") + leftOut,
    };
  },
});
