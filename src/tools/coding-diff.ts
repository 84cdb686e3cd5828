import { z } from "zod";
import { DiffSince, SessionDiff } from "../model.js";
import { DEFAULT_DIFF_BYTES } from "../sessions.js";
import { defineTool } from "./define.js";
import { formatChangedFiles, sessionId } from "./schemas.js";

export const codingDiffTool = defineTool({
  name: "coding_diff",
  title: "Show a session's change as a diff",
  description:
    "Read what the session changed, as a unified diff, before you commit or push it. since \"open\" (default): everything since the session opened, " +
    "committed or not; since \"commit\": only what is not committed yet (in your own checkout, files that had uncommitted changes before the session " +
    "opened are left out, as coding_commit leaves them out). Renames show as renames, binary files are named, not dumped. At most max_bytes " +
    `(default ${DEFAULT_DIFF_BYTES}), cut at a line (truncated: true). The same diff is the resource coding://sessions/{session_id}/diff. Changes nothing.`,
  inputSchema: {
    session_id: sessionId,
    since: DiffSince.optional().describe("open (default): since the session opened; commit: only what is not committed yet"),
    paths: z.array(z.string().min(1)).max(1000).optional().describe("Only these files or directories (relative to the workspace)"),
    max_bytes: z.number().int().min(1).max(10_000_000).optional().describe(`Cut the diff after this many bytes (default ${DEFAULT_DIFF_BYTES})`),
  },
  outputSchema: SessionDiff.shape,
  annotations: { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false },
  async handle(args, ctx) {
    const result = await ctx.sessions.diff(args);
    const what = result.since === "open" ? "since the session opened" : "not committed yet";
    const head =
      `Changes ${what}: ${formatChangedFiles(result.files_changed)}.` +
      (result.truncated ? ` The diff is cut at ${args.max_bytes ?? DEFAULT_DIFF_BYTES} bytes; raise max_bytes or pass paths for the rest.` : "") +
      (result.left_out?.length ? ` Left out (uncommitted before the session opened): ${result.left_out.join(", ")}.` : "");
    return { structured: result, text: result.diff ? `${head}\n\n${result.diff}` : head };
  },
});
