import path from "node:path";
import type { CodingBackend, TaskEvent } from "./backend.js";
import type { Backends } from "./backends.js";
import type { ResolvedConfig } from "./config.js";
import { UserError, errorMessage } from "./errors.js";
import type { Logger } from "./log.js";
import { emptyTotals, type ChangedFile, type CodeAnswer, type Scope, type SessionRecord, type SessionState, type TaskView, type Totals, type WorkspaceRecord } from "./model.js";
import type { Approvals, Elicit, RespondInput } from "./approvals.js";
import type { Records } from "./records.js";
import { newId } from "./store.js";
import { buildTaskPrompt } from "./task-prompt.js";
import { TaskRunner } from "./tasks.js";
import { EMPTY_TREE, changedFiles, currentBranch, headCommit, type Git } from "./workspace/git.js";
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
  scope?: Scope;
  scope_id?: string;
  model?: string;
  backend?: string;
}

export interface OpenResult {
  session_id: string;
  workspace_id: string;
  workspace_path: string;
  managed: boolean;
  branch?: string;
  scope: Scope;
  scope_id?: string;
  backend: string;
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
  state: SessionState;
  backend: string;
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
  warnings?: string[];
}

export class SessionManager {
  private readonly tasks: TaskRunner;

  constructor(
    private readonly config: ResolvedConfig,
    private readonly records: Records,
    private readonly workspaces: WorkspaceManager,
    private readonly backends: Backends,
    private readonly approvals: Approvals,
    private readonly git: Git,
    private readonly log: Logger,
  ) {
    this.tasks = new TaskRunner(config, records, backends, approvals, git, log);
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
    const backend = this.backends.get(input.backend);
    // Checked before anything is created: a bad model leaves nothing behind.
    if (input.model) await this.chooseModel(backend, input.model, "coding_open");

    let workspace = input.scope_id ? await this.workspaceOfScope(scope, input.scope_id) : undefined;
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
      const backendSession = await backend.openSession(workspace.path, { title });
      const record: SessionRecord = {
        id: newId("cs"),
        workspace_id: workspace.id,
        backend: backend.name,
        backend_session_id: backendSession.id,
        title,
        state: "open",
        created_at: new Date().toISOString(),
        base_commit: (await headCommit(this.git, workspace.path)) ?? EMPTY_TREE,
        totals: emptyTotals(),
        ...(input.model ? { model: input.model } : {}),
      };
      await this.records.sessions.save(record);
      this.log.info(`opened session ${record.id} on ${workspace.path}`, { workspace: workspace.id, backend: backend.name, reused });
      const branch = await currentBranch(this.git, workspace.path);
      return {
        session_id: record.id,
        workspace_id: workspace.id,
        workspace_path: workspace.path,
        managed: workspace.managed,
        scope,
        backend: backend.name,
        backend_session_id: backendSession.id,
        reused_workspace: reused,
        ...(branch ? { branch } : {}),
        ...(input.scope_id ? { scope_id: input.scope_id } : {}),
      };
    } catch (err) {
      // Nothing half-made: a workspace created for this call goes again (from disk if managed, from the
      // records always) if the session could not open, so no scope_id can later reuse a dead record.
      if (!reused) await this.dropWorkspace(workspace, "after a failed open");
      throw err;
    }
  }

  /**
   * The model a task runs with: one the caller named, checked against what the backend offers, or the
   * backend's default, sent explicitly so a session never inherits the model of an earlier (failed) prompt.
   */
  private async chooseModel(backend: CodingBackend, requested: string | undefined, tool: string): Promise<string | undefined> {
    const catalog = await backend.models();
    if (!catalog) {
      if (requested) {
        throw new UserError(`backend ${backend.name} cannot choose a model, so model "${requested}" cannot be used`, `Leave model out of ${tool}; the agent uses its own.`, "unknown_model");
      }
      return undefined;
    }
    if (requested === undefined) return catalog.default;
    if (catalog.available.includes(requested)) return requested;
    const shown = catalog.available.slice(0, 30).join(", ") + (catalog.available.length > 30 ? `, and ${catalog.available.length - 30} more` : "");
    throw new UserError(
      `model "${requested}" is not offered by backend ${backend.name}`,
      `Use one of: ${shown || "(none configured)"}; or leave model out for the default${catalog.default ? ` (${catalog.default})` : ""}.`,
      "unknown_model",
    );
  }

  private async createWorkspace(input: OpenInput, scope: Scope): Promise<WorkspaceRecord> {
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
    await this.records.workspaces.save(record);
    return record;
  }

  /** Remove a managed workspace from disk and mark its record removed. */
  private async dropWorkspace(workspace: WorkspaceRecord, why: string): Promise<void> {
    if (workspace.managed) await this.workspaces.remove(workspace).catch((e) => this.log.warn(`could not remove ${workspace.path} ${why}: ${errorMessage(e)}`));
    await this.records.workspaces
      .update(workspace.id, (w) => (w.removed_at = new Date().toISOString()))
      .catch((e) => this.log.warn(`could not record workspace ${workspace.id} as removed ${why}: ${errorMessage(e)}`));
  }

  /** The live workspace of a scope (read fresh: another coding-mcp process may have created it). */
  private async workspaceOfScope(scope: Scope, scopeId: string): Promise<WorkspaceRecord | undefined> {
    return (await this.records.workspaces.refresh()).find((w) => w.scope === scope && w.scope_id === scopeId && !w.removed_at);
  }

  /** Open sessions on a workspace, other processes' included. */
  private async openSessionsOf(workspaceId: string): Promise<SessionRecord[]> {
    return (await this.records.sessions.refresh()).filter((s) => s.workspace_id === workspaceId && s.state === "open");
  }

  private async requireKnown(sessionId: string): Promise<SessionRecord> {
    const session = await this.records.sessions.get(sessionId);
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
    const workspace = await this.records.workspaces.get(session.workspace_id);
    if (!workspace || workspace.removed_at) {
      throw new UserError(`the workspace of session ${sessionId} no longer exists`, "Close this session and open a new one.", "workspace_gone");
    }
    return { session, workspace };
  }

  /**
   * `onEvent` follows the task (a background task's too: its requests for a person are announced);
   * `elicit` asks the person through the calling client, for a foreground task only.
   */
  async code(input: CodeInput, options: { signal?: AbortSignal; onEvent?: (event: TaskEvent) => void; elicit?: Elicit } = {}): Promise<CodeAnswer> {
    if (!input.task.trim()) throw new UserError("task is empty", "Describe the coding task in task, e.g. \"Add a --verbose flag to cli.py and a test for it\".");
    const { session, workspace } = await this.requireOpen(input.session_id);
    const backend = this.backends.get(session.backend);
    const files = await Promise.all((input.files ?? []).map((f) => repoRelativePath(workspace.path, f, "files")));
    await this.tasks.refuseWhileRunning(session.id, "start another task");
    const model = await this.chooseModel(backend, input.model ?? session.model, "code");
    const { view, done } = this.tasks.start({
      session,
      workspace,
      task: input.task,
      prompt: buildTaskPrompt({ task: input.task, ...(input.context ? { context: input.context } : {}), files }),
      timeoutMs: (input.timeout_sec ?? this.config.limits.task_timeout_min * 60) * 1000,
      ...(model ? { model } : {}),
      ...(input.agent ? { agent: input.agent } : {}),
      // A background task outlives the call, so the call's cancellation does not reach it.
      ...(options.signal && !input.background ? { signal: options.signal } : {}),
      ...(options.onEvent ? { onEvent: options.onEvent } : {}),
      ...(options.elicit && !input.background ? { elicit: options.elicit } : {}),
    });
    if (input.background) {
      done.catch(() => undefined); // logged by the task runner
      return { state: "running", task: view };
    }
    return { state: "done", result: await done };
  }

  /** Open sessions (or the one asked for) with their running or last task. */
  async status(sessionId?: string): Promise<SessionStatus[]> {
    const sessions = sessionId ? [await this.requireKnown(sessionId)] : this.records.sessions.all().filter((s) => s.state === "open");
    return Promise.all(
      sessions.map(async (session) => {
        const workspace = await this.records.workspaces.get(session.workspace_id);
        const task = this.tasks.view(session);
        return {
          session_id: session.id,
          state: this.stateOf(session),
          backend: session.backend,
          workspace_path: workspace?.path ?? "",
          title: session.title,
          ...(task ? { task } : {}),
          totals: session.totals,
        };
      }),
    );
  }

  private stateOf(session: SessionRecord): SessionState {
    return session.state === "closed" ? "closed" : this.tasks.isRunning(session.id) ? "running" : "idle";
  }

  async cancel(sessionId: string): Promise<{ cancelled: boolean; state: SessionState }> {
    const session = await this.requireKnown(sessionId);
    const cancelled = await this.tasks.cancel(session.id);
    return { cancelled, state: this.stateOf(session) };
  }

  /** A person's answer to a request of the session's running task (coding_respond). */
  async respond(sessionId: string, input: RespondInput) {
    const session = await this.requireKnown(sessionId);
    return this.approvals.respond(session.id, input);
  }

  /** coding-mcp is stopping: running tasks are left to be picked up by the next start. */
  shutdown(): void {
    this.tasks.shutdown();
  }

  /** After a restart: follow the tasks that were running when coding-mcp stopped. */
  resumeTasks(): void {
    this.tasks.resumeAll(async (session) => {
      const workspace = await this.records.workspaces.get(session.workspace_id);
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
    const warnings: string[] = [];
    const filesChanged = await changedFiles(this.git, workspace.path, session.base_commit).catch((err) => {
      warnings.push(`files_changed is incomplete: git could not list the session's changes (${errorMessage(err)})`);
      this.log.warn(`closing ${session.id}: ${warnings.at(-1)}`);
      return [];
    });
    const closed = await this.records.sessions.update(session.id, (s) => {
      s.state = "closed";
      s.closed_at = new Date().toISOString();
    });

    const others = (await this.openSessionsOf(workspace.id)).filter((s) => s.id !== session.id);
    const policy = this.config.workspace.cleanup_policy;
    const policyAllows = policy === "on_session_end" || (policy === "on_success" && input.success !== false);
    let cleanedUp = false;
    if (workspace.managed && policyAllows && others.length === 0) {
      await this.workspaces.remove(workspace);
      await this.records.workspaces.update(workspace.id, (w) => (w.removed_at = new Date().toISOString()));
      cleanedUp = true;
      // The agent's session only makes sense with its workspace; a kept workspace keeps it for inspection.
      await this.backends
        .find(session.backend)
        ?.closeSession(session.backend_session_id, workspace.path)
        .catch((err) => this.log.warn(`could not delete backend session ${session.backend_session_id}: ${errorMessage(err)}`));
    }
    this.approvals.forgetSession(session.id);
    this.log.info(`closed session ${session.id}`, { cleaned_up: cleanedUp, policy, other_open_sessions: others.length });
    return { files_changed: filesChanged, cleaned_up: cleanedUp, workspace_path: workspace.path, totals: closed.totals, ...(warnings.length ? { warnings } : {}) };
  }
}
