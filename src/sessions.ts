import fs from "node:fs/promises";
import path from "node:path";
import type { CodingBackend, TaskEvent } from "./backend.js";
import type { Backends } from "./backends.js";
import type { ResolvedConfig } from "./config.js";
import { UserError, errorMessage } from "./errors.js";
import type { Logger } from "./log.js";
import {
  emptyTotals,
  type ChangedFile,
  type CodeAnswer,
  type DiffSince,
  type Isolation,
  type Scope,
  type SessionDiff,
  type SessionRecord,
  type SessionState,
  type SessionStatus,
  type Totals,
  type WorkspaceRecord,
} from "./model.js";
import type { Approvals, Elicit, RespondInput } from "./approvals.js";
import { LOCAL_CALLER, owns, type Caller } from "./callers/caller.js";
import type { Records } from "./records.js";
import { newId } from "./store.js";
import { buildTaskPrompt } from "./task-prompt.js";
import { TaskRunner, type TaskRunnerOptions } from "./tasks.js";
import { EMPTY_TREE } from "./workspace/changes.js";
import { type Git } from "./workspace/git.js";
import { currentBranch, headCommit } from "./workspace/refs.js";
import type { WorkspaceManager } from "./workspace/manager.js";
import { isInside, repoRelativePath } from "./workspace/paths.js";
import { SessionChanges, type CommitAnswer } from "./session-change.js";

export { DEFAULT_DIFF_BYTES, type CommitAnswer } from "./session-change.js";

/**
 * Coding sessions: a workspace plus a backend session, with their records. This is where the
 * tools' behaviour lives; the tool files only translate between MCP and these methods.
 */

export interface OpenInput {
  workspace_path?: string;
  isolation?: Isolation;
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
  isolation: Isolation;
  branch?: string;
  scope: Scope;
  scope_id?: string;
  backend: string;
  backend_session_id: string;
  reused_workspace: boolean;
  /** Whether the commands the agent runs for this session are confined (README, "Confinement"). */
  confined: boolean;
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


export interface DiffInput {
  session_id: string;
  since?: DiffSince;
  paths?: string[];
  max_bytes?: number;
}

export interface PushResult {
  pushed: boolean;
  remote: string;
  branch: string;
  commits: { hash: string; subject: string }[];
  /** An isolated session: how to review and merge its branch in the caller's repository. */
  merge_hint?: string;
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
  private readonly changes: SessionChanges;

  constructor(
    private readonly config: ResolvedConfig,
    private readonly records: Records,
    private readonly workspaces: WorkspaceManager,
    private readonly backends: Backends,
    private readonly approvals: Approvals,
    private readonly git: Git,
    private readonly log: Logger,
    taskOptions: TaskRunnerOptions = {},
  ) {
    this.tasks = new TaskRunner(config, records, backends, approvals, git, log, taskOptions);
    this.changes = new SessionChanges(git, workspaces, records.sessions, log);
  }

  /**
   * The sessions as one caller sees them: what the tools use. Every method checks ownership in
   * `requireKnown` (and `status` lists only the caller's own), so another caller's session id is
   * answered exactly like an unknown one.
   */
  as(caller: Caller) {
    return {
      open: (input: OpenInput) => this.open(input, caller),
      code: (input: CodeInput, options?: Parameters<SessionManager["code"]>[1]) => this.code(input, options, caller),
      status: (sessionId?: string) => this.status(sessionId, caller),
      cancel: (sessionId: string) => this.cancel(sessionId, caller),
      respond: (sessionId: string, input: RespondInput) => this.respond(sessionId, input, caller),
      commit: (input: Parameters<SessionManager["commit"]>[0]) => this.commit(input, caller),
      push: (input: Parameters<SessionManager["push"]>[0]) => this.push(input, caller),
      diff: (input: DiffInput) => this.diff(input, caller),
      close: (input: Parameters<SessionManager["close"]>[0]) => this.close(input, caller),
    };
  }

  async open(input: OpenInput, caller: Caller = LOCAL_CALLER): Promise<OpenResult> {
    const scope = input.scope ?? "agent";
    const isolation = input.isolation ?? "none";
    if (input.workspace_path && input.repo_url) {
      throw new UserError("give either workspace_path or repo_url, not both", "workspace_path opens a directory you already have; repo_url clones into a new managed workspace.");
    }
    if (scope === "workflow" && !input.scope_id) {
      throw new UserError("scope \"workflow\" needs a scope_id", "Pass the same scope_id to every coding_open of the workflow so its steps share one workspace.");
    }
    if (isolation === "worktree" && !input.workspace_path) {
      throw new UserError(
        "isolation \"worktree\" needs a workspace_path",
        "Give the repository to branch from in workspace_path. A repo_url clone or a new managed workspace is already a checkout of its own; leave isolation out for those.",
      );
    }
    if (!input.repo_url && (input.shallow || input.sparse_paths?.length)) {
      throw new UserError("shallow and sparse_paths apply only to a clone", "Pass repo_url with them, or leave them out.");
    }
    if (!input.repo_url && input.branch && isolation !== "worktree") {
      throw new UserError(
        "branch applies only to a clone (the branch to check out) or to isolation \"worktree\" (the new branch to work on)",
        "Pass repo_url or isolation: \"worktree\" with it, or leave it out.",
      );
    }
    const limit = this.config.limits.per_client_sessions;
    if (this.records.sessions.all().filter((s) => s.state === "open" && owns(caller, s)).length >= limit) {
      throw new UserError(
        `you have ${limit} open coding sessions, the most one caller may hold (limits.per_client_sessions = ${limit})`,
        "Close sessions you no longer need with coding_close, then open this one again.",
        "too_many_sessions",
      );
    }
    const backend = this.backends.get(input.backend);
    // Checked before anything is created: a bad model leaves nothing behind.
    if (input.model) await this.chooseModel(backend, input.model, "coding_open");

    const sessionId = newId("cs");
    let workspace = input.scope_id ? await this.workspaceOfScope(scope, input.scope_id, caller) : undefined;
    const reused = Boolean(workspace);
    /** The commit a worktree created by this call started at: its branch goes again if the open fails. */
    let branchStart: string | undefined;
    if (workspace) {
      await this.checkReuse(workspace, input);
    } else {
      ({ record: workspace, branchStart } = await this.createWorkspace(input, scope, isolation, sessionId, caller));
    }

    try {
      const title = input.title?.trim() || `coding-mcp: ${path.basename(workspace.source_repo ?? workspace.path)}`;
      // The backend's session, HEAD, the working tree at open and the branch, side by side: nothing here
      // waits for another (a read that outlives a failed open is only wasted).
      const ws = workspace;
      const [backendSession, head, atOpen, confined, branch] = await allSettledOrThrow([
        backend.openSession(ws.path, { title }),
        headCommit(this.git, ws.path),
        this.changes.atOpen(ws, !reused),
        this.tasks.confined(backend.name),
        ws.isolation === "worktree" ? Promise.resolve(ws.branch) : currentBranch(this.git, ws.path),
      ] as const);
      const record: SessionRecord = {
        id: sessionId,
        workspace_id: workspace.id,
        backend: backend.name,
        backend_session_id: backendSession.id,
        title,
        owner: caller.id,
        state: "open",
        created_at: new Date().toISOString(),
        base_commit: head ?? EMPTY_TREE,
        ...atOpen,
        totals: emptyTotals(),
        ...(input.model ? { model: input.model } : {}),
      };
      await this.records.sessions.save(record);
      // A caller's checkout is read for the session's baseline right after this answer, not before it;
      // whatever needs the baseline first waits for that read (and a restart meanwhile reads it then).
      if (record.baseline_pending) void this.changes.baseline(record, ws).catch(() => undefined);
      this.log.info(`opened session ${record.id} on ${workspace.path}`, { workspace: workspace.id, backend: backend.name, reused, isolation: workspace.isolation ?? "none", owner: caller.id });
      return {
        session_id: record.id,
        workspace_id: workspace.id,
        workspace_path: workspace.path,
        managed: workspace.managed,
        isolation: workspace.isolation ?? "none",
        scope,
        backend: backend.name,
        backend_session_id: backendSession.id,
        reused_workspace: reused,
        confined,
        ...(branch ? { branch } : {}),
        ...(input.scope_id ? { scope_id: input.scope_id } : {}),
      };
    } catch (err) {
      // Nothing half-made: a workspace created for this call goes again (from disk if managed, from the
      // records always; a worktree's new branch too) if the session could not open, so no scope_id can
      // later reuse a dead record.
      if (!reused) await this.dropWorkspace(workspace, "after a failed open", branchStart);
      throw err;
    }
  }

  /** A scope's existing workspace may be reused only by a coding_open that asks for the same thing. */
  private async checkReuse(workspace: WorkspaceRecord, input: OpenInput): Promise<void> {
    const scopeId = input.scope_id;
    if (input.repo_url && workspace.repo_url !== input.repo_url) {
      throw new UserError(
        `scope_id "${scopeId}" already has a workspace cloned from ${workspace.repo_url ?? "nothing (an empty managed workspace)"}`,
        "Use another scope_id for another repository, or omit repo_url to reuse the workspace.",
      );
    }
    const isolation = workspace.isolation ?? "none";
    if (input.isolation && input.isolation !== isolation) {
      throw new UserError(`scope_id "${scopeId}" already has a workspace with isolation "${isolation}"`, `Omit isolation (or pass "${isolation}") to reuse it, or use another scope_id.`);
    }
    if (input.workspace_path) {
      const given = await fs.realpath(input.workspace_path).catch(() => path.resolve(input.workspace_path!));
      const own = workspace.source_repo ?? workspace.path;
      if (given !== own) throw new UserError(`scope_id "${scopeId}" already uses the workspace ${own}`, "Omit workspace_path to reuse it, or use another scope_id.");
    }
    if (isolation === "worktree" && input.branch && input.branch !== workspace.branch) {
      throw new UserError(`scope_id "${scopeId}" already works on branch ${workspace.branch}`, "Omit branch to reuse its worktree, or use another scope_id for another branch.");
    }
    if (!(await isDirectory(workspace.path))) {
      throw new UserError(`the workspace of scope_id "${scopeId}" at ${workspace.path} no longer exists (deleted outside coding-mcp)`, "Close the scope's open sessions with coding_close, then open it again.", "workspace_gone");
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

  private async createWorkspace(
    input: OpenInput,
    scope: Scope,
    isolation: Isolation,
    sessionId: string,
    caller: Caller,
  ): Promise<{ record: WorkspaceRecord; branchStart?: string }> {
    const base = { id: newId("ws"), scope, owner: caller.id, created_at: new Date().toISOString(), ...(input.scope_id ? { scope_id: input.scope_id } : {}) };
    let record: WorkspaceRecord;
    let branchStart: string | undefined;
    if (input.workspace_path && isolation === "worktree") {
      const source = await this.workspaces.sourceForWorktree(await this.adopt(input.workspace_path, caller));
      const branch = input.branch ?? `coding-mcp/${sessionId}`;
      const dir = await this.workspaces.createWorktree(base.id, source, branch);
      branchStart = source.head;
      record = { ...base, path: dir, managed: true, isolation, source_repo: source.top, branch };
    } else if (input.workspace_path) {
      record = { ...base, path: await this.adopt(input.workspace_path, caller), managed: false };
    } else if (input.repo_url) {
      const clone = await this.workspaces.clone(base.id, {
        url: input.repo_url,
        git: caller.git,
        ...(input.branch ? { branch: input.branch } : {}),
        ...(input.shallow ? { shallow: true } : {}),
        ...(input.sparse_paths?.length ? { sparsePaths: input.sparse_paths } : {}),
      });
      record = { ...base, path: clone, managed: true, repo_url: input.repo_url, ...(input.branch ? { branch: input.branch } : {}) };
    } else {
      record = { ...base, path: await this.workspaces.createEmpty(base.id), managed: true };
    }
    try {
      await this.records.workspaces.save(record);
    } catch (err) {
      await this.dropWorkspace(record, "after its record could not be written", branchStart);
      throw err;
    }
    return { record, ...(branchStart ? { branchStart } : {}) };
  }

  /**
   * Remove a managed workspace from disk and mark its record removed. With `dropBranchAt`, a worktree's
   * branch goes too while it still points there (a session that never opened leaves nothing behind).
   */
  private async dropWorkspace(workspace: WorkspaceRecord, why: string, dropBranchAt?: string): Promise<void> {
    if (workspace.managed) {
      await this.workspaces
        .remove(workspace, dropBranchAt ? { dropBranchAt } : {})
        .then((problems) => problems.forEach((p) => this.log.warn(`removing ${workspace.path} ${why}: ${p}`)))
        .catch((e) => this.log.warn(`could not remove ${workspace.path} ${why}: ${errorMessage(e)}`));
    }
    await this.markRemoved(workspace).catch((e) => this.log.warn(`could not record workspace ${workspace.id} as removed ${why}: ${errorMessage(e)}`));
  }

  /** Record that a workspace's directory is gone (removed by coding-mcp, or deleted outside it). */
  private async markRemoved(workspace: WorkspaceRecord): Promise<void> {
    await this.records.workspaces.update(workspace.id, (w) => (w.removed_at = new Date().toISOString()));
  }

  /** The caller's live workspace of a scope (read fresh: another coding-mcp process may have created it). */
  private async workspaceOfScope(scope: Scope, scopeId: string, caller: Caller): Promise<WorkspaceRecord | undefined> {
    return (await this.records.workspaces.refresh()).find((w) => w.scope === scope && w.scope_id === scopeId && !w.removed_at && owns(caller, w));
  }

  /**
   * A caller's own directory. One inside (or around) another caller's managed workspace is answered
   * as if it did not exist: base_path is an allowed root, and one caller must not reach into another's work.
   */
  private async adopt(workspacePath: string, caller: Caller): Promise<string> {
    const real = await this.workspaces.adopt(workspacePath);
    const foreign = this.records.workspaces.all().some((w) => w.managed && !w.removed_at && !owns(caller, w) && (isInside(real, w.path) || isInside(w.path, real)));
    if (foreign) throw new UserError(`workspace_path ${workspacePath} does not exist`, "create the directory first or give an existing one", "not_found");
    return real;
  }

  /** Open sessions on a workspace, other processes' included. */
  private async openSessionsOf(workspaceId: string): Promise<SessionRecord[]> {
    return (await this.records.sessions.refresh()).filter((s) => s.workspace_id === workspaceId && s.state === "open");
  }

  /** The one ownership check: another caller's session is answered exactly like an unknown id. */
  private async requireKnown(sessionId: string, caller: Caller): Promise<SessionRecord> {
    const session = await this.records.sessions.get(sessionId);
    if (!session || !owns(caller, session)) {
      throw new UserError(`unknown session_id "${sessionId}"`, "Use the session_id that coding_open returned; open a new session with coding_open.", "unknown_session");
    }
    return session;
  }

  /**
   * A session that exists and is open, with its live workspace; otherwise a clear error. A workspace
   * whose directory was deleted outside coding-mcp is refused too, unless `allowMissingDirectory`
   * (coding_close, which tidies up after it).
   */
  async requireOpen(sessionId: string, caller: Caller, options: { allowMissingDirectory?: boolean } = {}): Promise<{ session: SessionRecord; workspace: WorkspaceRecord }> {
    const session = await this.requireKnown(sessionId, caller);
    if (session.state !== "open") {
      throw new UserError(`session ${sessionId} is closed`, "Open a new session with coding_open (with the same scope_id to get the same workspace back, if it was kept).", "session_closed");
    }
    const workspace = await this.records.workspaces.get(session.workspace_id);
    if (!workspace || workspace.removed_at) {
      throw new UserError(`the workspace of session ${sessionId} no longer exists`, "Close this session and open a new one.", "workspace_gone");
    }
    if (!options.allowMissingDirectory && !(await isDirectory(workspace.path))) {
      throw new UserError(missingWorkspace(sessionId, workspace), missingWorkspaceHint(workspace), "workspace_gone");
    }
    return { session, workspace };
  }

  /**
   * `onEvent` follows the task (a background task's too: its requests for a person are announced);
   * `elicit` asks the person through the calling client, for a foreground task only.
   */
  async code(
    input: CodeInput,
    options: { signal?: AbortSignal; onEvent?: (event: TaskEvent) => void; elicit?: Elicit } = {},
    caller: Caller = LOCAL_CALLER,
  ): Promise<CodeAnswer> {
    if (!input.task.trim()) throw new UserError("task is empty", "Describe the coding task in task, e.g. \"Add a --verbose flag to cli.py and a test for it\".");
    const { session, workspace } = await this.requireOpen(input.session_id, caller);
    const backend = this.backends.get(session.backend);
    const files = await Promise.all((input.files ?? []).map((f) => repoRelativePath(workspace.path, f, "files")));
    await this.tasks.refuseWhileRunning(session.id, "start another task");
    const taskLimit = this.config.limits.per_client_tasks;
    if (this.records.sessions.all().filter((s) => owns(caller, s) && this.tasks.isRunning(s.id)).length >= taskLimit) {
      throw new UserError(
        `you have ${taskLimit} tasks running, the most one caller may run at once (limits.per_client_tasks = ${taskLimit})`,
        "Wait for one to finish (coding_status) or stop one with coding_cancel, then call code again.",
        "too_many_tasks",
      );
    }
    const model = await this.chooseModel(backend, input.model ?? session.model, "code");
    await this.tasks.refuseUnconfined(backend);
    // The session's baseline first (see coding_open); read by this very call (after a restart), it is the
    // task's snapshot of the working tree before it too.
    const { session: current, fresh } = await this.changes.baseline(session, workspace);
    const { view, done } = this.tasks.start({
      session: current,
      workspace,
      ...(fresh ? { treeBefore: fresh } : {}),
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
  async status(sessionId?: string, caller: Caller = LOCAL_CALLER): Promise<SessionStatus[]> {
    const sessions = sessionId ? [await this.requireKnown(sessionId, caller)] : this.records.sessions.all().filter((s) => s.state === "open" && owns(caller, s));
    return Promise.all(
      sessions.map(async (session) => {
        const workspace = await this.records.workspaces.get(session.workspace_id);
        const task = this.tasks.view(session);
        const gone = session.state === "open" && workspace && !workspace.removed_at && !(await isDirectory(workspace.path));
        return {
          session_id: session.id,
          state: this.stateOf(session),
          backend: session.backend,
          workspace_path: workspace?.path ?? "",
          title: session.title,
          confined: await this.tasks.confined(session.backend),
          ...(task ? { task } : {}),
          totals: session.totals,
          ...(gone ? { warnings: [`${missingWorkspace(session.id, workspace)}. ${missingWorkspaceHint(workspace)}`] } : {}),
        };
      }),
    );
  }

  private stateOf(session: SessionRecord): SessionState {
    return session.state === "closed" ? "closed" : this.tasks.isRunning(session.id) ? "running" : "idle";
  }

  async cancel(sessionId: string, caller: Caller = LOCAL_CALLER): Promise<{ cancelled: boolean; state: SessionState }> {
    const session = await this.requireKnown(sessionId, caller);
    const cancelled = await this.tasks.cancel(session.id);
    return { cancelled, state: this.stateOf(session) };
  }

  /** A person's answer to a request of the session's running task (coding_respond). */
  async respond(sessionId: string, input: RespondInput, caller: Caller = LOCAL_CALLER) {
    const session = await this.requireKnown(sessionId, caller);
    try {
      return this.approvals.respond(session.id, input);
    } catch (err) {
      // "Not a request of this session" helps a caller who mixed up two of its own sessions, but
      // must not tell one caller that another's request exists: to them it is an unknown id.
      if (err instanceof UserError && err.code === "request_of_other_session" && !this.hasPendingRequest(caller, input.request_id)) {
        throw new UserError(
          `unknown request_id "${input.request_id}"`,
          `Use a request_id from coding_status (task.pending_requests of session ${sessionId}); requests that were answered or timed out are gone.`,
          "unknown_request",
        );
      }
      throw err;
    }
  }

  private hasPendingRequest(caller: Caller, requestId: string): boolean {
    return this.records.sessions.all().some((s) => owns(caller, s) && this.approvals.pending(s.id).some((r) => r.request_id === requestId));
  }

  /** coding-mcp is stopping: running tasks are left to be picked up by the next start. */
  shutdown(): void {
    this.tasks.shutdown();
  }

  /** After a restart: follow the tasks that were running when coding-mcp stopped. */
  resumeTasks(): void {
    this.tasks.resumeAll(async (session) => {
      const workspace = await this.records.workspaces.get(session.workspace_id);
      return workspace && !workspace.removed_at && (await isDirectory(workspace.path)) ? workspace : undefined;
    });
  }

  /**
   * Commit in the session's workspace. In a caller's own checkout, files that already had uncommitted
   * changes when the session opened are left out (and listed) unless `paths` names them: the session
   * commits its own change, never the owner's work in progress.
   */
  async commit(input: { session_id: string; message: string; add_all?: boolean; paths?: string[] }, caller: Caller = LOCAL_CALLER): Promise<CommitAnswer> {
    const { session, workspace } = await this.requireOpen(input.session_id, caller);
    await this.tasks.refuseWhileRunning(input.session_id, "commit");
    return this.changes.commit(session, workspace, input);
  }

  async push(input: { session_id: string; remote?: string; branch?: string; set_upstream?: boolean }, caller: Caller = LOCAL_CALLER): Promise<PushResult> {
    const { workspace } = await this.requireOpen(input.session_id, caller);
    await this.tasks.refuseWhileRunning(input.session_id, "push");
    const isolated = workspace.isolation === "worktree" && workspace.source_repo && workspace.branch;
    // An isolated session pushes its own branch, wherever the agent moved the worktree's HEAD.
    const branch = input.branch ?? (isolated ? workspace.branch : await currentBranch(this.git, workspace.path));
    if (!branch) throw new UserError("the workspace is on a detached HEAD, so there is no current branch to push", "Pass branch to push HEAD to that branch name.");
    const remote = input.remote ?? "origin";
    const hint = isolated ? mergeHint(workspace.source_repo!, workspace.branch!) : undefined;
    const pushed = await this.workspaces.push(workspace.path, { remote, branch, setUpstream: input.set_upstream ?? true, git: caller.git }).catch((err: unknown) => {
      if (hint && err instanceof UserError && err.code === "no_such_remote") throw new UserError(err.message, `${err.hint}. ${hint}`, err.code);
      throw err;
    });
    return { pushed: true, remote, branch, commits: pushed.commits, ...(hint ? { merge_hint: `${hint} It is on ${remote} as ${branch} too, for a pull request.` } : {}) };
  }

  /** The session's change as a unified diff: since it opened (committed or not), or what is not committed yet. */
  async diff(input: DiffInput, caller: Caller = LOCAL_CALLER): Promise<SessionDiff> {
    const { session, workspace } = await this.requireOpen(input.session_id, caller);
    // Between tasks, what was read of a workspace coding-mcp owns still stands for it; not while one runs.
    return this.changes.diff(session, workspace, input, { betweenTasks: !this.tasks.isRunning(session.id) });
  }

  async close(input: { session_id: string; success?: boolean }, caller: Caller = LOCAL_CALLER): Promise<CloseResult> {
    const { session, workspace } = await this.requireOpen(input.session_id, caller, { allowMissingDirectory: true });
    await this.tasks.refuseWhileRunning(input.session_id, "close");
    const warnings: string[] = [];
    const missing = !(await isDirectory(workspace.path));
    if (missing) warnings.push(`${missingWorkspace(session.id, workspace)}, so files_changed is empty`);
    const others = (await this.openSessionsOf(workspace.id)).filter((s) => s.id !== session.id);
    const policy = this.config.workspace.cleanup_policy;
    const policyAllows = policy === "on_session_end" || (policy === "on_success" && input.success !== false);
    // A directory deleted outside coding-mcp is tidied up whatever the policy (for a worktree: git forgets it; the branch stays).
    const removing = workspace.managed && (policyAllows || missing) && others.length === 0;
    const changes = missing ? { files: [] } : await this.changes.atClose(session, workspace, { removing });
    if (changes.warning) warnings.push(changes.warning);
    const closed = await this.records.sessions.update(session.id, (s) => {
      s.state = "closed";
      s.closed_at = new Date().toISOString();
    });

    let cleanedUp = false;
    if (removing) {
      warnings.push(...(await this.workspaces.remove(workspace)));
      await this.markRemoved(workspace);
      cleanedUp = !missing;
      // The agent's session only makes sense with its workspace; a kept workspace keeps it for inspection.
      await this.backends
        .find(session.backend)
        ?.closeSession(session.backend_session_id, workspace.path)
        .catch((err) => this.log.warn(`could not delete backend session ${session.backend_session_id}: ${errorMessage(err)}`));
    }
    this.approvals.forgetSession(session.id);
    await this.tasks.releaseSandbox(session).catch((err) => this.log.warn(`could not remove the sandbox of ${session.id}: ${errorMessage(err)}`));
    this.log.info(`closed session ${session.id}`, { cleaned_up: cleanedUp, policy, other_open_sessions: others.length });
    return { files_changed: changes.files, cleaned_up: cleanedUp, workspace_path: workspace.path, totals: closed.totals, ...(warnings.length ? { warnings } : {}) };
  }
}

/** Like Promise.all, but a failure is thrown only once every one has settled: nothing still runs on a workspace the caller then removes. */
async function allSettledOrThrow<T extends readonly unknown[]>(promises: T): Promise<{ -readonly [K in keyof T]: Awaited<T[K]> }> {
  const settled = await Promise.allSettled(promises);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === "rejected");
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<unknown>).value) as { -readonly [K in keyof T]: Awaited<T[K]> };
}

async function isDirectory(p: string): Promise<boolean> {
  return fs.stat(p).then((st) => st.isDirectory(), () => false);
}

function missingWorkspace(sessionId: string, workspace: WorkspaceRecord): string {
  const what = workspace.isolation === "worktree" ? "worktree" : "workspace";
  return `the ${what} of session ${sessionId} at ${workspace.path} no longer exists (it was deleted outside coding-mcp)`;
}

function missingWorkspaceHint(workspace: WorkspaceRecord): string {
  const branch = workspace.isolation === "worktree" && workspace.branch ? ` Its branch ${workspace.branch} stays in ${workspace.source_repo} unless it was deleted too.` : "";
  return `Close the session with coding_close (it tidies up after the directory) and open a new one.${branch}`;
}

/** A path or name as one shell word. */
function shellWord(s: string): string {
  return /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`;
}

/** How the owner reviews and merges an isolated session's branch in their own repository. */
function mergeHint(repo: string, branch: string): string {
  const r = shellWord(repo);
  const b = shellWord(branch);
  return `The branch ${branch} is in your repository ${repo} already: review it with \`git -C ${r} diff HEAD...${b}\`, merge it with \`git -C ${r} merge ${b}\`.`;
}
