/**
 * The prompt sent to the coding agent for one `code` call. Only what the caller gave goes in: no
 * credentials, no remote URLs (coding-mcp does clone and push itself).
 */
export function buildTaskPrompt(input: { task: string; context?: string; files?: string[] }): string {
  const sections = [input.task.trim()];
  if (input.context?.trim()) sections.push(`Context:\n${input.context.trim()}`);
  if (input.files?.length) {
    sections.push(`Files to look at first (relative to the workspace root):\n${input.files.map((f) => `- ${f}`).join("\n")}`);
  }
  sections.push(
    "Work only inside the workspace directory. Do not push or change git remotes or credentials: coding-mcp pushes for the caller.",
  );
  return sections.join("\n\n");
}
