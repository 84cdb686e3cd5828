import path from "node:path";
import { addTokens, emptyTokens, type CodingBackend, type TaskEvent, type TaskResult } from "./backend.js";
import type { ResolvedConfig } from "./config.js";
import { UserError, errorMessage } from "./errors.js";
import type { Logger } from "./log.js";
import { newId, type Registry, type SessionRecord, type Totals, type WorkspaceRecord } from "./registry.js";
import { buildTaskPrompt } from "./task-prompt.js";
import { changedFiles, commitsBetween, currentBranch, headCommit, snapshotWorkingTree, type ChangedFile, type Git } from "./workspace/git.js";
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
}

export interface CodeResult extends TaskResult {
  files_changed: ChangedFile[];
  commits?: { hash: string; subject: string }[];
}

export interface CloseResult {
  files_changed: ChangedFile[];
  cleaned_up: boolean;
  workspace_path: string;
  totals: Totals;
}

/** Git's empty tree: the base to diff against in a repository that has no commit yet. */
const EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

export function emptyTotals(): Totals {
  return { tasks: 0, cost: 0, tokens: emptyTokens(), duration_ms: 0 };
}

export class SessionManager {
  /** Tasks running in this process, by session: a second task on one session is refused, never interleaved. */
  private readonly running = new Map<string, { done: Promise<unknown>; cancelled: () => boolean }>();

  constructor(
    private readonly config: ResolvedConfig,
    private readonly registry: Registry,
    private readonly workspaces: WorkspaceManager,
    private readonly backend: CodingBackend,
    private readonly git: Git,
    private readonly log: Logger,
  ) {}

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
    let created = false;
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
      created = true;
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
      // Nothing half-made: a workspace created for this call goes again if the session could not open.
      if (created) await this.workspaces.remove(workspace).catch((e) => this.log.warn(`cleanup after failed open: ${errorMessage(e)}`));
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

  /** A session that exists and is open, with its live workspace; otherwise a clear error. */
  async requireOpen(sessionId: string): Promise<{ session: SessionRecord; workspace: WorkspaceRecord }> {
    const session = await this.registry.session(sessionId);
    if (!session) {
      throw new UserError(`unknown session_id "${sessionId}"`, "Use the session_id that coding_open returned; open a new session with coding_open.", "unknown_session");
    }
    if (session.state !== "open") {
      throw new UserError(`session ${sessionId} is closed`, "Open a new session with coding_open (with the same scope_id to get the same workspace back, if it was kept).", "session_closed");
    }
    const workspace = await this.registry.workspace(session.workspace_id);
    if (!workspace || workspace.removed_at) {
      throw new UserError(`the workspace of session ${sessionId} no longer exists`, "Close this session and open a new one.", "workspace_gone");
    }
    return { session, workspace };
  }

  async code(input: CodeInput, options: { signal?: AbortSignal; onEvent?: (event: TaskEvent) => void } = {}): Promise<CodeResult> {
    if (!input.task.trim()) throw new UserError("task is empty", "Describe the coding task in task, e.g. \"Add a --verbose flag to cli.py and a test for it\".");
    const { session, workspace } = await this.requireOpen(input.session_id);
    const files = await Promise.all((input.files ?? []).map((f) => repoRelativePath(workspace.path, f, "files")));
    await this.settleCancelled(session.id);
    if (this.running.has(session.id)) {
      throw new UserError(`session ${session.id} is already running a task`, "Wait for it to finish (or cancel it), or open another session for parallel work.", "session_busy");
    }
    const task = this.runTask(input, session, workspace, files, options);
    this.running.set(session.id, { done: task, cancelled: () => options.signal?.aborted ?? false });
    try {
      return await task;
    } finally {
      this.running.delete(session.id);
    }
  }

  private async runTask(
    input: CodeInput,
    session: SessionRecord,
    workspace: WorkspaceRecord,
    files: string[],
    options: { signal?: AbortSignal; onEvent?: (event: TaskEvent) => void },
  ): Promise<CodeResult> {
    const headBefore = (await headCommit(this.git, workspace.path)) ?? EMPTY_TREE;
    const treeBefore = await snapshotWorkingTree(this.git, workspace.path);
    const startedAt = new Date();
    const model = input.model ?? session.model ?? this.config.opencode.model;
    const agent = input.agent ?? this.config.opencode.agent;
    const timeoutMs = (input.timeout_sec ?? this.config.limits.task_timeout_min * 60) * 1000;
    const deadline = Date.now() + timeoutMs;
    const prompt = buildTaskPrompt({ task: input.task, ...(input.context ? { context: input.context } : {}), files });
    let result: TaskResult;
    for (let attempt = 1; ; attempt++) {
      result = await this.backend.runTask({
        sessionId: session.backend_session_id,
        directory: workspace.path,
        prompt,
        timeoutMs: Math.max(1000, deadline - Date.now()),
        ...(model ? { model } : {}),
        ...(agent ? { agent } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
        ...(options.onEvent ? { onEvent: options.onEvent } : {}),
      });
      result.attempts = attempt;
      const delayMs = 1000 * 2 ** (attempt - 1);
      if (result.success || attempt >= this.config.limits.max_attempts || !worthRepeating(result) || Date.now() + delayMs >= deadline) break;
      this.log.warn(`task on ${session.id} failed (${result.error}); attempt ${attempt + 1} in ${delayMs} ms`);
      options.onEvent?.({ type: "retry", attempt: attempt + 1, error: result.error ?? "failed", delayMs });
      if (!(await sleep(delayMs, options.signal))) break;
    }
    const filesChanged = await changedFiles(this.git, workspace.path, treeBefore);
    const headAfter = await headCommit(this.git, workspace.path);
    const commits = headAfter && headAfter !== headBefore ? await commitsBetween(this.git, workspace.path, headBefore === EMPTY_TREE ? undefined : headBefore, headAfter) : [];

    session.totals = addToTotals(session.totals, result);
    session.last_task = {
      started_at: startedAt.toISOString(),
      finished_at: new Date().toISOString(),
      task: input.task.slice(0, 500),
      success: result.success,
      summary: result.summary.slice(0, 1000),
      cost: result.trace.cost,
      duration_ms: result.trace.duration_ms,
      tool_calls: result.trace.tool_calls.length + (result.trace.tool_calls_omitted ?? 0),
      ...(result.error ? { error: result.error } : {}),
    };
    await this.registry.saveSession(session);
    return { ...result, files_changed: filesChanged, ...(commits.length ? { commits } : {}) };
  }

  async commit(input: { session_id: string; message: string; add_all?: boolean; paths?: string[] }) {
    const { workspace } = await this.requireOpen(input.session_id);
    await this.refuseWhileRunning(input.session_id, "commit");
    return this.workspaces.commit(workspace.path, {
      message: input.message,
      addAll: input.add_all ?? true,
      ...(input.paths ? { paths: input.paths } : {}),
    });
  }

  async push(input: { session_id: string; remote?: string; branch?: string; set_upstream?: boolean }) {
    const { workspace } = await this.requireOpen(input.session_id);
    await this.refuseWhileRunning(input.session_id, "push");
    const branch = input.branch ?? (await currentBranch(this.git, workspace.path));
    if (!branch) throw new UserError("the workspace is on a detached HEAD, so there is no current branch to push", "Pass branch to push HEAD to that branch name.");
    const remote = input.remote ?? "origin";
    const pushed = await this.workspaces.push(workspace.path, { remote, branch, setUpstream: input.set_upstream ?? true });
    return { pushed: true, remote, branch, commits: pushed.commits };
  }

  async close(input: { session_id: string; success?: boolean }): Promise<CloseResult> {
    const { session, workspace } = await this.requireOpen(input.session_id);
    await this.refuseWhileRunning(input.session_id, "close");
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

  /** A cancelled task may still be winding down (abort, final trace): what comes next waits for it, briefly. */
  private async settleCancelled(sessionId: string): Promise<void> {
    const current = this.running.get(sessionId);
    if (current?.cancelled()) {
      await Promise.race([current.done.catch(() => undefined), new Promise((r) => setTimeout(r, 15_000).unref())]);
    }
  }

  private async refuseWhileRunning(sessionId: string, what: string): Promise<void> {
    await this.settleCancelled(sessionId);
    if (this.running.has(sessionId)) {
      throw new UserError(`session ${sessionId} is running a task, so it cannot ${what} now`, "Wait for the task to finish, then try again.", "session_busy");
    }
  }
}

/**
 * Failures a new attempt may fix, as the backend judged them: OpenCode went away before the agent
 * did anything (a managed one is restarted meanwhile), or a provider error marked retryable. A task
 * whose tools already ran is not repeated: its effects would be doubled.
 */
function worthRepeating(result: TaskResult): boolean {
  return (result.failure === "backend_unavailable" || result.failure === "agent_error") && result.retryable === true;
}

/** Wait, unless the signal aborts first; true when the full time passed. */
function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const timer = setTimeout(() => resolve(true), ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve(false);
    }, { once: true });
  });
}

function addToTotals(totals: Totals, result: TaskResult): Totals {
  return {
    tasks: totals.tasks + 1,
    cost: Math.round((totals.cost + result.trace.cost) * 1e6) / 1e6,
    tokens: addTokens({ ...totals.tokens }, result.trace.tokens),
    duration_ms: totals.duration_ms + result.trace.duration_ms,
  };
}
