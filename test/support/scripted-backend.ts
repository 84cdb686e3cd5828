import fs from "node:fs/promises";
import path from "node:path";
import type { CodingBackend, ModelCatalog, PermissionAsk, QuestionAnswer, QuestionAsk, ResumeTaskRequest, RunTaskRequest, TaskEvent, TaskRequests } from "../../src/backend.js";
import { emptyTokens, type PermissionReply, type TaskResult, type ToolCallTrace, type Unreported } from "../../src/model.js";

/**
 * A scripted CodingBackend for fast tests of what the tools do (sessions, tasks, records) without an
 * agent: each task follows the steps its script gives. Steps really write files into the workspace,
 * so git sees what a real agent would leave behind.
 */

export type ScriptStep =
  /** A tool call: reported started, then (after `ms`) ended; `write` puts files into the workspace first. */
  | { tool: string; input?: Record<string, unknown>; output?: string; ms?: number; error?: string; write?: Record<string, string> }
  /** A permission request, answered through the core's decide() (the core records it and reports it). */
  | { ask: PermissionAsk }
  /** Questions for the person, answered through the core's ask(). */
  | { question: QuestionAsk }
  /** Wait until the task is aborted (cancel, timeout, the backend stopped). */
  | { hang: true }
  /** Do something to the workspace directory, as an agent's command might. */
  | { run: (directory: string) => Promise<void> }
  /** End the task with the backend's failure. */
  | { fail: "agent_error" | "backend_unavailable"; message: string; retryable?: boolean }
  /** End the task with this summary (the default end is "done"). */
  | { summary: string; cost?: number; tokens?: number; unknown?: Unreported[] };

export type Script = (request: { prompt: string; model?: string; attempt: number }) => ScriptStep[];

export interface RunRecord {
  sessionId: string;
  directory: string;
  prompt: string;
  model?: string;
  agent?: string;
  aborted: boolean;
}

export class ScriptedBackend implements CodingBackend {
  readonly telemetry = { agent: "scripted", prefix: "scripted" };
  /** Tests set it to be a backend whose commands go through the confinement. */
  confinesCommands = false;
  /** Every runTask call, in order. */
  readonly runs: RunRecord[] = [];
  /** Every resumeTask call, in order. */
  readonly resumed: ResumeTaskRequest[] = [];
  readonly closed: string[] = [];
  /** What the core answered to each permission request and question, in order. */
  readonly answers: (PermissionReply | QuestionAnswer)[] = [];
  /** Answers resumeTask (default: the task was interrupted). */
  resumeWith: (request: ResumeTaskRequest) => Promise<TaskResult> = async () => failed("backend_unavailable", "interrupted", 0);
  /** Set false to be a backend that cannot choose models. */
  catalog: ModelCatalog | undefined = { available: ["fake/one", "fake/two"], default: "fake/one" };
  private sessions = 0;
  /** Aborts every running task: the backend went away. */
  private readonly stopped = new AbortController();
  private readonly attempts = new Map<string, number>();

  constructor(
    private readonly script: Script,
    readonly name = "scripted",
  ) {}

  async start(): Promise<void> {}

  async models(): Promise<ModelCatalog | undefined> {
    return this.catalog;
  }

  describeModel(model: string) {
    const [provider, name] = model.split("/");
    return { provider, model: name ?? model };
  }

  async openSession(): Promise<{ id: string }> {
    this.sessions += 1;
    return { id: `ses_scripted_${this.sessions}` };
  }

  async runTask(request: RunTaskRequest): Promise<TaskResult> {
    const run: RunRecord = { sessionId: request.sessionId, directory: request.directory, prompt: request.prompt, aborted: false, ...(request.model ? { model: request.model } : {}), ...(request.agent ? { agent: request.agent } : {}) };
    this.runs.push(run);
    const attempt = (this.attempts.get(request.prompt) ?? 0) + 1;
    this.attempts.set(request.prompt, attempt);
    await request.workspaceReady;
    const started = Date.now();
    const emit = (event: TaskEvent) => request.onEvent?.(event);
    emit({ type: "started", directory: request.directory, checkpoint: `chk_${this.runs.length}` });

    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort("timeout"), request.timeoutMs);
    const onCancel = () => abort.abort("cancelled");
    if (request.signal?.aborted) onCancel();
    request.signal?.addEventListener("abort", onCancel, { once: true });
    const calls: ToolCallTrace[] = [];
    const finish = (result: TaskResult): TaskResult => {
      clearTimeout(timer);
      request.signal?.removeEventListener("abort", onCancel);
      result.trace.tool_calls = calls;
      result.trace.duration_ms = Date.now() - started;
      emit({ type: "finished", result });
      return result;
    };

    try {
      for (const step of this.script({ prompt: request.prompt, ...(request.model ? { model: request.model } : {}), attempt })) {
        if (abort.signal.aborted) break;
        if ("tool" in step) {
          const call: ToolCallTrace = { tool: step.tool, status: "running", input: step.input ?? {}, output_preview: "", duration_ms: 0, call_id: `call_${calls.length + 1}`, started_at: Date.now() };
          emit({ type: "tool", phase: "started", call: { ...call } });
          for (const [file, content] of Object.entries(step.write ?? {})) {
            await fs.mkdir(path.dirname(path.join(request.directory, file)), { recursive: true });
            await fs.writeFile(path.join(request.directory, file), content);
          }
          if (step.ms) await wait(step.ms, abort.signal);
          const ended: ToolCallTrace = { ...call, status: step.error ? "error" : "completed", output_preview: step.output ?? "", ended_at: Date.now(), duration_ms: Date.now() - call.started_at! };
          if (step.error) ended.error = step.error;
          calls.push(ended);
          emit({ type: "tool", phase: "ended", call: ended });
        } else if ("ask" in step) {
          this.answers.push(await request.decide(step.ask));
        } else if ("question" in step) {
          this.answers.push(await request.ask(step.question));
        } else if ("hang" in step) {
          await wait(Number.POSITIVE_INFINITY, AbortSignal.any([abort.signal, this.stopped.signal]));
        } else if ("run" in step) {
          await step.run(request.directory);
        } else if ("fail" in step) {
          const result = failed(step.fail, step.message, calls.length);
          if (step.retryable) result.retryable = true;
          return finish(result);
        } else {
          return finish({ success: true, summary: step.summary, trace: { ...trace(step.cost ?? 0.01, step.tokens ?? 100, request.model), ...(step.unknown ? { unknown: step.unknown } : {}) } });
        }
      }
      if (this.stopped.signal.aborted && !abort.signal.aborted) return finish(failed("backend_unavailable", "the backend stopped", calls.length));
      if (abort.signal.aborted) {
        run.aborted = true;
        const why = abort.signal.reason === "timeout" ? "timeout" : "cancelled";
        return finish({ ...failed(why, why === "timeout" ? "the task did not finish in time" : "the task was cancelled", calls.length), failure: why });
      }
      return finish({ success: true, summary: "done", trace: trace(0.01, 100, request.model) });
    } finally {
      clearTimeout(timer);
    }
  }

  resumeTask(request: ResumeTaskRequest): Promise<TaskResult> {
    this.resumed.push(request);
    return this.resumeWith(request);
  }

  async abort(): Promise<void> {}

  async closeSession(sessionId: string): Promise<void> {
    this.closed.push(sessionId);
  }

  async stop(): Promise<void> {
    this.stopped.abort();
  }
}

function trace(cost: number, tokens: number, model?: string): TaskResult["trace"] {
  const [provider, name] = (model ?? "fake/one").split("/");
  return {
    model: name ?? "",
    provider: provider ?? "",
    cost,
    tokens: { ...emptyTokens(), input: tokens, output: Math.round(tokens / 10) },
    duration_ms: 0,
    finish_reason: "stop",
    tool_calls: [],
    reasoning: [],
  };
}

function failed(failure: TaskResult["failure"], message: string, _calls: number): TaskResult {
  return { success: false, summary: "", error: message, failure, trace: { ...trace(0, 0), finish_reason: failure ?? "error" } };
}

/** Resolve after `ms`, or as soon as the signal aborts. */
function wait(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = Number.isFinite(ms) ? setTimeout(resolve, ms) : undefined;
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });
}

/** A backend's request answerers that allow every permission and decline every question (for backend tests without a core). */
export const allowEverything: TaskRequests = {
  decide: async () => "once",
  permission: async () => ({ reply: "once" }),
  ask: async () => ({ rejected: true }),
};
