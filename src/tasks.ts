import { randomBytes } from "node:crypto";
import { ROOT_CONTEXT, context } from "@opentelemetry/api";
import type { Approvals, Elicit, TaskApprovals } from "./approvals.js";
import type { CodingBackend, RunTaskRequest, TaskEvent } from "./backend.js";
import type { Backends } from "./backends.js";
import type { ResolvedConfig } from "./config.js";
import { UserError, errorMessage } from "./errors.js";
import type { Logger } from "./log.js";
import { addToTotals, type ChangedFile, type CodeResult, type RunningTaskRecord, type SessionRecord, type TaskResult, type TaskView, type ToolCallTrace, type WorkspaceRecord } from "./model.js";
import { sandboxKey, scopeFor, type Confinement } from "./confinement/index.js";
import { sleep } from "./process.js";
import type { Records } from "./records.js";
import { owned } from "./session-change.js";
import { TaskSpan } from "./telemetry.js";
import { EMPTY_TREE, changedFiles, commitsSince, snapshotWorkingTree, treeChanges } from "./workspace/changes.js";
import { lastTreeRead, treeAfterWrites } from "./workspace/working-tree.js";
import { type Git } from "./workspace/git.js";
import { headCommit } from "./workspace/refs.js";

/**
 * Coding tasks: one at a time per session, run in the foreground (the `code` call waits) or the
 * background (`code` answers at once; `coding_status` follows it). A running task is recorded on
 * disk with its checkpoint, so a restarted coding-mcp picks it up again and follows it to its end.
 */

export interface StartTask extends Pick<RunTaskRequest, "prompt" | "model" | "agent" | "timeoutMs" | "onEvent"> {
  session: SessionRecord;
  workspace: WorkspaceRecord;
  task: string;
  /** The caller's signal (a foreground call's cancellation); a background task has none. */
  signal?: AbortSignal;
  /** How to ask the person through the client (a foreground call of a client that elicits). */
  elicit?: Elicit;
  /** The working tree as a tree object, read just now by the caller: the task's snapshot before it. */
  treeBefore?: string;
}

interface ActiveTask {
  view: TaskView;
  controller: AbortController;
  calls: Map<string, ToolCallTrace>;
  done: Promise<CodeResult>;
}

const STATUS_CALLS = 30;
const SETTLE_MS = 15_000;

export interface TaskRunnerOptions {
  /** The wait before the second attempt of a task (doubling after); 1 s. */
  retryDelayMs?: number;
  /** What confines the commands of backends that route them through it (absent: nothing is prepared). */
  confinement?: Confinement;
}

export class TaskRunner {
  private readonly active = new Map<string, ActiveTask>();
  /** Set when coding-mcp stops: tasks cut off by our own exit stay recorded as running, to be picked up again. */
  private stopping = false;

  constructor(
    private readonly config: ResolvedConfig,
    private readonly records: Records,
    private readonly backends: Backends,
    private readonly approvals: Approvals,
    private readonly git: Git,
    private readonly log: Logger,
    private readonly options: TaskRunnerOptions = {},
  ) {}

  isRunning(sessionId: string): boolean {
    return this.active.has(sessionId);
  }

  /** Refuse while a task runs; a cancelled one still winding down (abort, final trace) is waited for, briefly. */
  async refuseWhileRunning(sessionId: string, what: string): Promise<void> {
    const current = this.active.get(sessionId);
    if (current?.controller.signal.aborted) await settle(current.done);
    if (this.active.has(sessionId)) throw busy(sessionId, what);
  }

  /** Refuse a task whose commands should be confined on a machine that cannot confine them. */
  async refuseUnconfined(backend: CodingBackend): Promise<void> {
    if (backend.confinesCommands) await this.options.confinement?.assertReady();
  }

  /** Whether a session on this backend runs its commands confined: the backend routes them through the confinement, and the machine can confine. */
  async confined(backendName: string): Promise<boolean> {
    const backend = this.backends.find(backendName);
    if (!backend?.confinesCommands || !this.options.confinement) return false;
    return (await this.options.confinement.state()).confined;
  }

  /** The session's sandbox, made before its agent can run a command: keyed by the backend's session id. */
  private async prepareSandbox(backend: CodingBackend, session: SessionRecord, workspace: WorkspaceRecord): Promise<void> {
    if (backend.confinesCommands) await this.options.confinement?.prepare(sandboxKey(session.backend_session_id), scopeFor(workspace));
  }

  /** The session is closed: no command runs for it any more, and its private temp dir goes. */
  async releaseSandbox(session: SessionRecord): Promise<void> {
    await this.options.confinement?.release(sandboxKey(session.backend_session_id));
  }

  /** Start a task; the answer's `done` resolves with its result (also when it fails or is cancelled). */
  start(request: StartTask): { view: TaskView; done: Promise<CodeResult> } {
    const { session } = request;
    // Checked again here, where nothing comes between the check and the start: two calls may both have
    // passed refuseWhileRunning while their session's baseline was read.
    if (this.active.has(session.id)) throw busy(session.id, "start another task");
    const backend = this.backends.get(session.backend);
    const controller = new AbortController();
    if (request.signal) {
      if (request.signal.aborted) controller.abort();
      request.signal.addEventListener("abort", () => controller.abort(), { once: true });
    }
    const view: TaskView = { task_id: `task_${randomBytes(6).toString("hex")}`, task: request.task.slice(0, 500), state: "running", started_at: new Date().toISOString(), tool_calls: [] };
    // Started here, inside the code call's span: a background task's span stays its child after the call answered.
    const span = new TaskSpan(backend.telemetry, taskAttributes(backend, session, request.workspace, view), request.model ? backend.describeModel(request.model) : undefined);
    const done = this.launch(session, view, controller, span, (track) => {
      const emit = (event: TaskEvent) => {
        track(event);
        request.onEvent?.(event);
      };
      const approvals = this.approvals.forTask({
        sessionId: session.id,
        sessionTitle: session.title,
        workspacePath: request.workspace.path,
        taskId: view.task_id,
        signal: controller.signal,
        ...(request.elicit ? { elicit: request.elicit } : {}),
        emit,
      });
      return context.with(span.context, () => this.run(backend, request, view, controller.signal, emit, approvals));
    });
    return { view: { ...view }, done };
  }

  /**
   * Register a task as the session's running one while `execute` runs it: its tool calls are kept
   * for coding_status and its span follows its events; the slot is freed when it ends.
   */
  private launch(
    session: SessionRecord,
    view: TaskView,
    controller: AbortController,
    span: TaskSpan,
    execute: (track: (event: TaskEvent) => void) => Promise<CodeResult>,
  ): Promise<CodeResult> {
    const calls = new Map<string, ToolCallTrace>();
    const track = (event: TaskEvent) => {
      if (event.type === "tool") calls.set(event.call.call_id ?? String(calls.size), event.call);
      span.event(event);
    };
    const done = traced(span, execute(track)).finally(() => this.active.delete(session.id));
    this.active.set(session.id, { view, controller, calls, done });
    done.catch((err) => {
      const line = `task ${view.task_id} on ${session.id}: ${errorMessage(err)}`;
      if (this.stopping) this.log.info(line);
      else this.log.error(line);
    });
    return done;
  }

  /** coding-mcp is stopping: leave running tasks recorded as running (the next start follows them). */
  shutdown(): void {
    this.stopping = true;
  }

  /** Stop the session's running task; true when there was one. */
  async cancel(sessionId: string): Promise<boolean> {
    const current = this.active.get(sessionId);
    if (!current) return false;
    current.controller.abort();
    await settle(current.done);
    return true;
  }

  /** The running task of a session, or its last one with the result. */
  view(session: SessionRecord): TaskView | undefined {
    const current = this.active.get(session.id);
    if (current) {
      const pending = this.approvals.pending(session.id);
      return { ...current.view, tool_calls: [...current.calls.values()].slice(-STATUS_CALLS), ...(pending.length ? { pending_requests: pending } : {}) };
    }
    const last = session.last_task;
    if (!last?.task_id) return undefined;
    return {
      task_id: last.task_id,
      task: last.task,
      state: "done",
      started_at: last.started_at,
      ...(last.finished_at ? { finished_at: last.finished_at } : {}),
      tool_calls: last.result?.trace.tool_calls.slice(-STATUS_CALLS) ?? [],
      ...(last.result ? { result: last.result } : {}),
    };
  }

  /** After a restart: follow every task that was running when coding-mcp stopped. */
  resumeAll(workspaceOf: (session: SessionRecord) => Promise<WorkspaceRecord | undefined>): void {
    for (const session of this.records.sessions.all()) {
      const running = session.running;
      if (!running || session.state !== "open" || this.active.has(session.id)) continue;
      void (async () => {
        const workspace = await workspaceOf(session);
        if (!workspace) {
          this.log.warn(`task ${running.task_id} of ${session.id} cannot be picked up: its workspace is gone`);
          return;
        }
        const backend = this.backends.find(session.backend);
        if (!backend) {
          this.log.warn(`task ${running.task_id} of ${session.id} cannot be picked up: backend "${session.backend}" is no longer configured`);
          return;
        }
        this.log.info(`picking up task ${running.task_id} of ${session.id} after a restart`);
        const controller = new AbortController();
        const view: TaskView = { task_id: running.task_id, task: running.task, state: "running", started_at: running.started_at, tool_calls: [] };
        // The call that started the task is gone with the old process: this span starts a trace of its own.
        const span = new TaskSpan(backend.telemetry, { ...taskAttributes(backend, session, workspace, view), "coding_mcp.resumed": true }, undefined, ROOT_CONTEXT);
        await this.launch(session, view, controller, span, (track) => {
          // Nobody's call is waiting for it: requests of the agent wait for coding_respond.
          const approvals = this.approvals.forTask({
            sessionId: session.id,
            sessionTitle: session.title,
            workspacePath: workspace.path,
            taskId: view.task_id,
            signal: controller.signal,
            emit: track,
          });
          // The snapshots come from the records: checked again before git uses them.
          return this.finish(session, workspace, view, running, false, approvals, () =>
            backend.resumeTask({
              sessionId: session.backend_session_id,
              directory: workspace.path,
              ...(running.checkpoint ? { checkpoint: running.checkpoint } : {}),
              timeoutMs: Math.max(1000, Date.parse(running.deadline) - Date.now()),
              signal: controller.signal,
              onEvent: track,
              ...approvals.requests,
            }),
          );
        }).catch(() => undefined); // already logged by launch
      })();
    }
  }

  private async run(
    backend: CodingBackend,
    request: StartTask,
    view: TaskView,
    signal: AbortSignal,
    onEvent: (event: TaskEvent) => void,
    approvals: TaskApprovals,
  ): Promise<CodeResult> {
    const { session, workspace } = request;
    const startedAt = performance.now();
    // The snapshot's tree object is written once the prompt is on its way (or the backend is done).
    let promptSent!: () => void;
    const sent = new Promise<void>((resolve) => (promptSent = resolve));
    const snapshot = request.treeBefore ? { staged: Promise.resolve(), tree: Promise.resolve(request.treeBefore) } : await this.snapshotBefore(workspace, sent);
    const running: RunningTaskRecord = {
      task_id: view.task_id,
      task: view.task,
      started_at: view.started_at,
      deadline: new Date(Date.now() + request.timeoutMs).toISOString(),
      head_before: EMPTY_TREE,
    };
    const record = () => this.records.sessions.update(session.id, (s) => (s.running = running));
    // The prompt waits for this, the backend's own preparation does not: git has read the working tree
    // and HEAD, and the task is recorded (a restart finds it). The snapshot's tree object is written
    // beside the agent's turn and recorded when it is there.
    let beforeMs: number | undefined;
    const workspaceReady = (async () => {
      const [head] = await Promise.all([headCommit(this.git, workspace.path), snapshot.staged, this.prepareSandbox(backend, session, workspace)]);
      running.head_before = head ?? EMPTY_TREE;
      await record();
      beforeMs = performance.now() - startedAt;
    })();
    workspaceReady.catch(() => undefined); // The backend rethrows it from runTask; a backend that failed first never asks.
    // One more write once the tree object is there: the snapshot, and the checkpoint the backend gave
    // with "started" (always before it: the tree is written once the prompt is on its way); the
    // checkpoint alone if the tree could not be written. Nothing when the task never got its prompt.
    const tree = snapshot.tree.then((written) => (running.tree_before = written));
    const recorded = Promise.allSettled([tree, workspaceReady]).then(async ([, ready]) => {
      if (ready.status === "rejected") return;
      await record().catch((err) =>
        this.log.warn(`could not record the snapshot and checkpoint of task ${view.task_id} (a restart meanwhile would count changes from HEAD and not find its turn): ${errorMessage(err)}`),
      );
    });
    // finish's own record of the result must come after that write.
    const treeBefore = recorded.then(() => tree);
    treeBefore.catch(() => undefined); // Said in the answer's warnings (finish), which reads it only when the backend ran the task.
    const execute = async () => {
      const deadline = Date.parse(running.deadline);
      let result: TaskResult;
      for (let attempt = 1; ; attempt++) {
        result = await backend.runTask({
          sessionId: session.backend_session_id,
          directory: workspace.path,
          prompt: request.prompt,
          timeoutMs: Math.max(1000, deadline - Date.now()),
          ...(request.model ? { model: request.model } : {}),
          ...(request.agent ? { agent: request.agent } : {}),
          signal,
          workspaceReady,
          ...approvals.requests,
          onEvent: (event) => {
            if (event.type === "started") setImmediate(promptSent); // the backend sends the prompt right after saying so
            // Recorded with the snapshot's tree, so a restarted coding-mcp can find this task's turn.
            if (event.type === "started" && event.checkpoint && attempt === 1) running.checkpoint = event.checkpoint;
            onEvent(event);
          },
        });
        result.attempts = attempt;
        const delayMs = (this.options.retryDelayMs ?? 1000) * 2 ** (attempt - 1);
        if (result.success || attempt >= this.config.limits.max_attempts || !worthRepeating(result) || Date.now() + delayMs >= deadline) break;
        this.log.warn(`task on ${session.id} failed (${result.error}); attempt ${attempt + 1} in ${delayMs} ms`);
        onEvent({ type: "retry", attempt: attempt + 1, error: result.error ?? "failed", delayMs });
        if (!(await sleep(delayMs, signal))) break;
      }
      return result;
    };
    return this.finish(session, workspace, view, running, true, approvals, () => execute().finally(promptSent), treeBefore, () => beforeMs);
  }

  /**
   * The working tree before the task. In a workspace coding-mcp owns, the tree read after the last task
   * is the one before this task (only tasks write there), so the prompt waits for no walk of the tree;
   * elsewhere, or when no tree was read yet, git reads it now (the prompt waits until it has).
   */
  private async snapshotBefore(workspace: WorkspaceRecord, promptSent: Promise<void>): Promise<{ staged: Promise<void>; tree: Promise<string> }> {
    const known = owned(workspace) ? await lastTreeRead(workspace.path) : undefined;
    if (known !== undefined) return { staged: Promise.resolve(), tree: Promise.resolve(known) };
    return snapshotWorkingTree(this.git, workspace.path, { writeTreeAfter: promptSent, owned: owned(workspace) });
  }

  /** What the task changed since `base`: from the files it wrote when that is all it did, else from a read of the working tree. */
  private async changesOfTask(workspace: WorkspaceRecord, base: string, trusted: boolean, written: string[] | undefined): Promise<ChangedFile[]> {
    const o = { owned: owned(workspace) };
    if (written) {
      const after = await treeAfterWrites(this.git, workspace.path, base, written, o).catch((err: unknown) => {
        this.log.debug(`reading ${workspace.path} instead of the ${written.length} files the agent wrote: ${errorMessage(err)}`);
        return undefined;
      });
      if (after !== undefined) return treeChanges(this.git, workspace.path, base, after);
    }
    return changedFiles(this.git, workspace.path, base, { trusted, ...o });
  }

  /** Run (or follow) the task, then add what git says changed, and record the result with the session. */
  private async finish(
    session: SessionRecord,
    workspace: WorkspaceRecord,
    view: TaskView,
    running: RunningTaskRecord,
    /** head_before and tree_before are this process's own reads, not checked again. */
    trusted: boolean,
    approvals: TaskApprovals,
    execute: () => Promise<TaskResult>,
    /** The snapshot taken before the task, when it is still being written (else running.tree_before). */
    treeBefore?: Promise<string>,
    /** How long coding-mcp's own work before the prompt took (snapshot, record), for the timing line; part of the turn's time. */
    beforeMs?: () => number | undefined,
  ): Promise<CodeResult> {
    const agentStartedAt = performance.now();
    let result: TaskResult;
    try {
      result = await execute();
    } finally {
      // Nothing of this task may wait on after it: what it left open is rejected.
      approvals.close();
    }
    // The core decided every request, so the core's record of them is the trace's.
    if (approvals.permissions.length) result.trace.permissions = approvals.permissions;
    if (approvals.questions.length) result.trace.questions = approvals.questions;
    if (this.stopping) throw new Error(`task ${view.task_id} left running: coding-mcp is stopping`);
    const warnings: string[] = [];
    const agentEndedAt = performance.now();
    // The agent's own account of what it wrote, where it is complete, spares a walk of the working tree
    // (only from this process's own run, with the snapshot it took; not after retries, whose failed
    // attempts give no account).
    const written = trusted && (result.attempts ?? 1) === 1 ? result.files_written : undefined;
    const [filesChanged, commits] = await Promise.all([
      baseOfChanges(running, treeBefore, warnings)
        .then((base) => this.changesOfTask(workspace, base, trusted, written))
        .catch((err) => {
        // Said in the answer: an empty list would read as "the agent changed nothing".
        warnings.push(`files_changed is incomplete: git could not list the changes (${errorMessage(err)})`);
        return [];
      }),
      commitsSince(this.git, workspace.path, running.head_before === EMPTY_TREE ? undefined : running.head_before, { trusted }).catch((err) => {
        warnings.push(`commits is incomplete: git could not list the agent's commits (${errorMessage(err)})`);
        return [];
      }),
    ]);
    for (const warning of warnings) this.log.warn(`task ${view.task_id} on ${session.id}: ${warning}`);
    const { retryable: _retryable, files_written: _written, ...answer } = result;
    const code: CodeResult = { ...answer, files_changed: filesChanged, ...(commits.length ? { commits } : {}), ...(warnings.length ? { warnings } : {}) };
    const finishedAt = new Date().toISOString();
    const gitEndedAt = performance.now();
    await this.records.sessions.update(session.id, (record) => {
      record.totals = addToTotals(record.totals, result);
      delete record.running;
      record.last_task = {
        task_id: view.task_id,
        started_at: view.started_at,
        finished_at: finishedAt,
        task: view.task,
        success: result.success,
        summary: result.summary.slice(0, 1000),
        cost: result.trace.cost,
        duration_ms: result.trace.duration_ms,
        tool_calls: result.trace.tool_calls.length + (result.trace.tool_calls_omitted ?? 0),
        ...(result.error ? { error: result.error } : {}),
        result: code,
      };
    });
    // Where a task's time went, coding-mcp's own share apart from the agent's (npm run bench reads it).
    const ms = (x: number) => Math.round(x * 10) / 10;
    const before = beforeMs?.();
    this.log.debug(
      `task ${view.task_id} timing: ${before === undefined ? "" : `before ${ms(before)} ms (beside the backend's preparation), `}turn ${ms(agentEndedAt - agentStartedAt)} ms (from the task's start), ` +
        `changes ${ms(gitEndedAt - agentEndedAt)} ms, record ${ms(performance.now() - gitEndedAt)} ms`,
    );
    return code;
  }
}

function busy(sessionId: string, what: string): UserError {
  return new UserError(
    `session ${sessionId} is already running a task, so it cannot ${what} now`,
    "Wait for it to finish (coding_status shows it), cancel it with coding_cancel, or open another session for parallel work.",
    "session_busy",
  );
}

/**
 * What the task's changes are measured against: the snapshot before it. A task picked up after a
 * restart whose snapshot was not recorded yet (coding-mcp stopped within milliseconds of the prompt)
 * is measured from HEAD as it was, and the answer says so.
 */
async function baseOfChanges(running: RunningTaskRecord, treeBefore: Promise<string> | undefined, warnings: string[]): Promise<string> {
  if (treeBefore) return treeBefore;
  if (running.tree_before) return running.tree_before;
  warnings.push("files_changed counts from the commit the task started on: coding-mcp stopped before its snapshot of the workspace was recorded, so changes left from before the task are included");
  return running.head_before;
}

/**
 * Failures a new attempt may fix, as the backend judged them: the backend went away before the agent
 * did anything (a managed one is restarted meanwhile), or a provider error marked retryable. A task
 * whose tools already ran is not repeated: its effects would be doubled.
 */
function worthRepeating(result: TaskResult): boolean {
  return (result.failure === "backend_unavailable" || result.failure === "agent_error") && result.retryable === true;
}

/** Wait for a cancelled task to wind down, at most SETTLE_MS. */
async function settle(done: Promise<unknown>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([done.catch(() => undefined), new Promise((r) => (timer = setTimeout(r, SETTLE_MS)))]);
  clearTimeout(timer);
}

function taskAttributes(backend: CodingBackend, session: SessionRecord, workspace: WorkspaceRecord, view: TaskView) {
  const prefix = backend.telemetry.prefix;
  return {
    [`${prefix}.session_id`]: session.backend_session_id,
    [`${prefix}.workspace`]: workspace.path,
    "coding_mcp.backend": backend.name,
    "coding_mcp.session_id": session.id,
    "coding_mcp.task_id": view.task_id,
    // The caller that owns the session (records from before callers: the local user).
    "enduser.id": session.owner ?? "local",
  };
}

/** End the task's span with its result (or its failure). */
function traced(span: TaskSpan, done: Promise<CodeResult>): Promise<CodeResult> {
  return done.then(
    (result) => {
      span.end(result, result.files_changed.length);
      return result;
    },
    (err: unknown) => {
      span.fail(err);
      throw err;
    },
  );
}
