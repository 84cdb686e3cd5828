import { z } from "zod";
import type { ChangedFile, Totals } from "../model.js";

/** Input pieces and text formatting shared by several tools; the shapes themselves live in src/model.ts. */

export const sessionId = z
  .string()
  .min(1, { error: "session_id is required: use the session_id coding_open returned" })
  .describe("The session_id returned by coding_open");

export function formatChangedFiles(files: ChangedFile[], max = 12): string {
  if (files.length === 0) return "no files changed";
  const shown = files.slice(0, max).map((f) => {
    const counts = f.additions !== undefined ? ` +${f.additions} -${f.deletions ?? 0}` : "";
    return `${f.path} (${f.status}${counts})`;
  });
  return shown.join(", ") + (files.length > max ? `, and ${files.length - max} more` : "");
}

/** A session's cost in a line of text; a lower bound when some task's agent reported none. */
export function formatTotalCost(totals: Totals): string {
  return totals.unknown?.includes("cost") ? `cost at least ${totals.cost} (an agent reported none)` : `cost ${totals.cost}`;
}
