import path from "node:path";
import { emptyTokens, type CodingBackend, type TaskEvent } from "./backend.js";
import type { ResolvedConfig } from "./config.js";
import { UserError, errorMessage } from "./errors.js";
import type { Logger } from "./log.js";
import { newId, type Registry, type SessionRecord, type Totals, type WorkspaceRecord } from "./registry.js";
import { buildTaskPrompt } from "./task-prompt.js";
import { EMPTY_TREE, TaskRunner, type CodeResult, type TaskView } from "./tasks.js";
import { changedFiles, currentBranch, headCommit, type ChangedFile, type Git } from "./workspace/git.js";
import type { WorkspaceManager } from "./workspace/manager.js";
import { repoRelativePath } from "./workspace/paths.js";

/**
 * Coding sessions: a workspace plus a backend session, with their records. This is where the
 * tools' behaviour lives; the tool files only translate between MCP and these methods.
 */

export interface OpenInput {
  workspace_path?: string;
  repo_url?: string;
  branch?: string;
  shallow?: boolean;
  sparse_paths?: string[];
  title?: string;
  scope?: "agent" | "workflow";
  scope_id?: string;
  model?: string;
}

export interface OpenResult {
  session_id: string;
  workspace_id: string;
  workspace_path: string;
  managed: boolean;
  branch?: string;
  scope: "agent" | "workflow";
  scope_id?: string;
  backend_session_id: string;
  reused_workspace: boolean;
}

export interface CodeInput {
  session_id: string;
  task: string;
  context?: string;
  files?: string[];
  model?: string;
  agent?: string;
  timeout_sec?: number;
  background?: boolean;
}

export interface SessionStatus {
  session_id: string;
  state: "idle" | "running" | "closed";
  workspace_path: string;
  title: string;
  task?: TaskView;
  totals: Totals;
}

export interface CloseResult {
  files_changed: ChangedFile[];
  cleaned_up: boolean;
  workspace_path: string;
  totals: Totals;
}

export function emptyTotals(): Totals {
  return { tasks: 0, cost: 0, tokens: emptyTokens(), duration_ms: 0 };
}

export class SessionManager {
  private readonly tasks: TaskRunner;

  constructor(
    private readonly config: ResolvedConfig,
    private readonly registry: Registry,
    private readonly workspaces: WorkspaceManager,
    private readonly backend: CodingBackend,
    private readonly git: Git,
    private readonly log: Logger,
  ) {
    this.tasks = new TaskRunner(config, registry, backend, git, log);
  }

  async open(input: OpenInput): Promise<OpenResult> {
    const scope = input.scope ?? "agent";
    if (input.workspace_path && input.repo_url) {
      throw new UserError("give either workspace_path or repo_url, not both", "workspace_path opens a directory you already have; repo_url clones into a new managed workspace.");
    }
    if (scope === "workflow" && !input.scope_id) {
      throw new UserError("scope \"workflow\" needs a scope_id", "Pass the same scope_id to every coding_open of the workflow so its steps share one workspace.");
    }
    if (!input.repo_url && (input.branch || input.shallow || input.sparse_paths?.length)) {
      throw new UserError("branch, shallow and sparse_paths apply only to a clone", "Pass repo_url with them, or leave them out.");
    }

    let workspace = input.scope_id ? await this.registry.workspaceOfScope(scope, input.scope_id) : undefined;
    const reused = Boolean(workspace);
    if (workspace) {
      if (input.repo_url && workspace.repo_url !== input.repo_url) {
        throw new UserError(
          `scope_id "${input.scope_id}" already has a workspace cloned from ${workspace.repo_url ?? "nothing (an empty managed workspace)"}`,
          "Use another scope_id for another repository, or omit repo_url to reuse the workspace.",
        );
      }
      if (input.workspace_path && path.resolve(input.workspace_path) !== workspace.path) {
        throw new UserError(`scope_id "${input.scope_id}" already uses the workspace ${workspace.path}`, "Omit workspace_path to reuse it, or use another scope_id.");
      }
    } else {
      workspace = await this.createWorkspace(input, scope);
    }

    try {
      const title = input.title?.trim() || `coding-mcp: ${path.basename(workspace.path)}`;
      const agent = this.config.opencode.agent;
      const backendSession = await this.backend.openSession(workspace.path, { title, ...(agent ? { agent } : {}) });
      const record: SessionRecord = {
        id: newId("cs"),
        workspace_id: workspace.id,
        backend: this.backend.name,
        backend_session_id: backendSession.id,
        title,
        state: "open",
        created_at: new Date().toISOString(),
        base_commit: (await headCommit(this.git, workspace.path)) ?? EMPTY_TREE,
        totals: emptyTotals(),
      };
      if (input.model) record.model = input.model;
      await this.registry.saveSession(record);
      this.log.info(`opened session ${record.id} on ${workspace.path}`, { workspace: workspace.id, reused });
      const result: OpenResult = {
        session_id: record.id,
        workspace_id: workspace.id,
        workspace_path: workspace.path,
        managed: workspace.managed,
        scope,
        backend_session_id: backendSession.id,
        reused_workspace: reused,
      };
      const branch = await currentBranch(this.git, workspace.path);
      if (branch) result.branch = branch;
      if (input.scope_id) result.scope_id = input.scope_id;
      return result;
    } catch (err) {
      // Nothing half-made: a workspace created for this call goes again (from disk if managed, from the
      // registry always) if the session could not open, so no scope_id can later reuse a dead record.
      if (!reused) {
        if (workspace.managed) await this.workspaces.remove(workspace).catch((e) => this.log.warn(`cleanup after failed open: ${errorMessage(e)}`));
        workspace.removed_at = new Date().toISOString();
        await this.registry.saveWorkspace(workspace).catch(() => undefined);
      }
      throw err;
    }
  }

  private async createWorkspace(input: OpenInput, scope: WorkspaceRecord["scope"]): Promise<WorkspaceRecord> {
    const base = { id: newId("ws"), scope, created_at: new Date().toISOString(), ...(input.scope_id ? { scope_id: input.scope_id } : {}) };
    let record: WorkspaceRecord;
    if (input.workspace_path) {
      record = { ...base, path: await this.workspaces.adopt(input.workspace_path), managed: false };
    } else if (input.repo_url) {
      const clone = await this.workspaces.clone(base.id, {
        url: input.repo_url,
        ...(input.branch ? { branch: input.branch } : {}),
        ...(input.shallow ? { shallow: true } : {}),
        ...(input.sparse_paths?.length ? { sparsePaths: input.sparse_paths } : {}),
      });
      record = { ...base, path: clone, managed: true, repo_url: input.repo_url, ...(input.branch ? { branch: input.branch } : {}) };
    } else {
      record = { ...base, path: await this.workspaces.createEmpty(base.id), managed: true };
    }
    await this.registry.saveWorkspace(record);
    return record;
  }

  private async requireKnown(sessionId: string): Promise<SessionRecord> {
    const session = await this.registry.session(sessionId);
    if (!session) {
      throw new UserError(`unknown session_id "${sessionId}"`, "Use the session_id that coding_open returned; open a new session with coding_open.", "unknown_session");
    }
    return session;
  }

  /** A session that exists and is open, with its live workspace; otherwise a clear error. */
  async requireOpen(sessionId: string): Promise<{ session: SessionRecord; workspace: WorkspaceRecord }> {
    const session = await this.requireKnown(sessionId);
    if (session.state !== "open") {
      throw new UserError(`session ${sessionId} is closed`, "Open a new session with coding_open (with the same scope_id to get the same workspace back, if it was kept).", "session_closed");
    }
    const workspace = await this.registry.workspace(session.workspace_id);
    if (!workspace || workspace.removed_at) {
      throw new UserError(`the workspace of session ${sessionId} no longer exists`, "Close this session and open a new one.", "workspace_gone");
    }
    return { session, workspace };
  }

  async code(input: CodeInput, options: { signal?: AbortSignal; onEvent?: (event: TaskEvent) => void } = {}): Promise<CodeResult | TaskView> {
    if (!input.task.trim()) throw new UserError("task is empty", "Describe the coding task in task, e.g. \"Add a --verbose flag to cli.py and a test for it\".");
    const { session, workspace } = await this.requireOpen(input.session_id);
    const files = await Promise.all((input.files ?? []).map((f) => repoRelativePath(workspace.path, f, "files")));
    await this.tasks.refuseWhileRunning(session.id, "start another task");
    const model = input.model ?? session.model ?? this.config.opencode.model;
    const agent = input.agent ?? this.config.opencode.agent;
    const { done, ...view } = this.tasks.start({
      session,
      workspace,
      task: input.task,
      prompt: buildTaskPrompt({ task: input.task, ...(input.context ? { context: input.context } : {}), files }),
      timeoutMs: (input.timeout_sec ?? this.config.limits.task_timeout_min * 60) * 1000,
      ...(model ? { model } : {}),
      ...(agent ? { agent } : {}),
      // A background task outlives the call, so the call's cancellation does not reach it.
      ...(options.signal && !input.background ? { signal: options.signal } : {}),
      ...(options.onEvent && !input.background ? { onEvent: options.onEvent } : {}),
    });
    if (input.background) {
      done.catch(() => undefined);
      return view;
    }
    return done;
  }

  /** Open sessions (or the one asked for) with their running or last task. */
  async status(sessionId?: string): Promise<SessionStatus[]> {
    const sessions = sessionId ? [await this.requireKnown(sessionId)] : this.registry.allSessions().filter((s) => s.state === "open");
    return Promise.all(
      sessions.map(async (session: SessionRecord) => {
        const workspace = await this.registry.workspace(session.workspace_id);
        const task = this.tasks.view(session);
        const state: SessionStatus["state"] = session.state === "closed" ? "closed" : this.tasks.isRunning(session.id) ? "running" : "idle";
        return {
          session_id: session.id,
          state,
          workspace_path: workspace?.path ?? "",
          title: session.title,
          ...(task ? { task } : {}),
          totals: session.totals,
        };
      }),
    );
  }

  async cancel(sessionId: string): Promise<{ cancelled: boolean; state: "idle" | "running" | "closed" }> {
    const session = await this.requireKnown(sessionId);
    const cancelled = await this.tasks.cancel(session.id);
    return { cancelled, state: session.state === "closed" ? "closed" : this.tasks.isRunning(session.id) ? "running" : "idle" };
  }

  /** coding-mcp is stopping: running tasks are left to be picked up by the next start. */
  shutdown(): void {
    this.tasks.shutdown();
  }

  /** After a restart: follow the tasks that were running when coding-mcp stopped. */
  resumeTasks(): void {
    this.tasks.resumeAll(async (session) => {
      const workspace = await this.registry.workspace(session.workspace_id);
      return workspace && !workspace.removed_at ? workspace : undefined;
    });
  }

  async commit(input: { session_id: string; message: string; add_all?: boolean; paths?: string[] }) {
    const { workspace } = await this.requireOpen(input.session_id);
    await this.tasks.refuseWhileRunning(input.session_id, "commit");
    return this.workspaces.commit(workspace.path, {
      message: input.message,
      addAll: input.add_all ?? true,
      ...(input.paths ? { paths: input.paths } : {}),
    });
  }

  async push(input: { session_id: string; remote?: string; branch?: string; set_upstream?: boolean }) {
    const { workspace } = await this.requireOpen(input.session_id);
    await this.tasks.refuseWhileRunning(input.session_id, "push");
    const branch = input.branch ?? (await currentBranch(this.git, workspace.path));
    if (!branch) throw new UserError("the workspace is on a detached HEAD, so there is no current branch to push", "Pass branch to push HEAD to that branch name.");
    const remote = input.remote ?? "origin";
    const pushed = await this.workspaces.push(workspace.path, { remote, branch, setUpstream: input.set_upstream ?? true });
    return { pushed: true, remote, branch, commits: pushed.commits };
  }

  async close(input: { session_id: string; success?: boolean }): Promise<CloseResult> {
    const { session, workspace } = await this.requireOpen(input.session_id);
    await this.tasks.refuseWhileRunning(input.session_id, "close");
    const filesChanged = await changedFiles(this.git, workspace.path, session.base_commit).catch(() => []);
    session.state = "closed";
    session.closed_at = new Date().toISOString();
    await this.registry.saveSession(session);

    const others = (await this.registry.openSessionsOf(workspace.id)).filter((s) => s.id !== session.id);
    const policy = this.config.workspace.cleanup_policy;
    const policyAllows = policy === "on_session_end" || (policy === "on_success" && input.success !== false);
    let cleanedUp = false;
    if (workspace.managed && policyAllows && others.length === 0) {
      await this.workspaces.remove(workspace);
      workspace.removed_at = new Date().toISOString();
      await this.registry.saveWorkspace(workspace);
      cleanedUp = true;
      // The agent's session only makes sense with its workspace; a kept workspace keeps it for inspection.
      await this.backend
        .closeSession(session.backend_session_id, workspace.path)
        .catch((err) => this.log.warn(`could not delete backend session ${session.backend_session_id}: ${errorMessage(err)}`));
    }
    this.log.info(`closed session ${session.id}`, { cleaned_up: cleanedUp, policy, other_open_sessions: others.length });
    return { files_changed: filesChanged, cleaned_up: cleanedUp, workspace_path: workspace.path, totals: session.totals };
  }
}
