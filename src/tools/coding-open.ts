import { z } from "zod";
import { Isolation, Scope } from "../model.js";
import { defineTool } from "./define.js";

export const codingOpenTool = defineTool({
  name: "coding_open",
  title: "Open a coding workspace",
  description:
    "Open a coding session on a git workspace. Without workspace_path or repo_url you get a new empty managed repository; " +
    "with repo_url coding-mcp clones it (https, ssh, git@host:path) into a managed workspace; with workspace_path it uses " +
    "your existing git repository (which must be inside the configured allowed roots and is never deleted). " +
    "With workspace_path and isolation \"worktree\" the session works in a new git worktree of that repository under the managed base path, " +
    "on a new branch (branch, default coding-mcp/<session_id>) from its HEAD: your checkout is never touched and any number of sessions can work on one repository at once; " +
    "coding_close removes the worktree and keeps the branch. " +
    "Sessions with scope \"workflow\" and the same scope_id share one workspace, so later steps see earlier commits. " +
    "The session's coding agent is chosen here (backend; default: the configured default_backend) and kept for all its tasks. " +
    "Returns a session_id for code, coding_commit, coding_push and coding_close.",
  inputSchema: {
    workspace_path: z.string().min(1).optional().describe("An existing git repository to work in (inside workspace.allowed_roots)"),
    isolation: Isolation.optional().describe(
      "none (default): work in workspace_path itself; worktree: work in a new git worktree of it on a new branch, leaving your checkout untouched",
    ),
    repo_url: z.string().min(1).optional().describe("Repository to clone into a managed workspace"),
    branch: z.string().min(1).optional().describe("With repo_url: the branch to check out. With isolation worktree: the new branch to create (must not exist; default coding-mcp/<session_id>)"),
    shallow: z.boolean().optional().describe("Clone with depth 1"),
    sparse_paths: z.array(z.string().min(1)).max(200).optional().describe("Check out only these directories (sparse checkout)"),
    title: z.string().max(200).optional().describe("A title for the session, shown in OpenCode"),
    scope: Scope.optional().describe("agent (default): a workspace of its own; workflow: shared by sessions with the same scope_id"),
    scope_id: z
      .string()
      .regex(/^[A-Za-z0-9._:-]{1,128}$/, { error: "scope_id: use 1-128 letters, digits, '.', '_', ':' or '-'" })
      .optional()
      .describe("Sessions with the same scope and scope_id reuse one workspace"),
    model: z.string().optional().describe("Default model for this session's tasks, one the backend offers (OpenCode: provider/model, e.g. anthropic/claude-sonnet-4-5); checked now"),
    backend: z.string().min(1).optional().describe("The coding agent for this session: opencode, or a name configured under backends (default: default_backend)"),
  },
  outputSchema: {
    session_id: z.string(),
    workspace_id: z.string(),
    workspace_path: z.string(),
    managed: z.boolean(),
    isolation: Isolation,
    branch: z.string().optional(),
    scope: Scope,
    scope_id: z.string().optional(),
    backend: z.string(),
    backend_session_id: z.string(),
    reused_workspace: z.boolean(),
    confined: z.boolean().describe("Whether the commands the agent runs for this session are confined by the OS sandbox (false: sandbox.mode off, an OpenCode reached by URL, or a backend that runs its own commands)"),
  },
  annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: true },
  showsSessionView: true,
  async handle(args, ctx) {
    const opened = await ctx.sessions.open(args);
    const where = opened.reused_workspace
      ? "reused workspace"
      : opened.isolation === "worktree"
        ? "a new worktree of your repository"
        : opened.managed
          ? "new managed workspace"
          : "your workspace";
    return {
      structured: opened,
      text: `Opened session ${opened.session_id} (backend ${opened.backend}) on ${where} ${opened.workspace_path}${opened.branch ? ` (branch ${opened.branch})` : ""}; the agent's commands run ${opened.confined ? "confined" : "NOT confined"}.`,
    };
  },
});
