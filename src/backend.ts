import type { PendingRequest, PermissionDecision, PermissionReply, QuestionDecision, QuestionInfo, TaskResult, ToolCallTrace } from "./model.js";

/**
 * The coding-backend interface: the few things the core needs from a coding agent. OpenCode over
 * HTTP (src/opencode/) is the first implementation; another agent slots in beside it without
 * touching the tools, sessions or tasks. Nothing outside a backend's own folder knows which agent
 * it is: names on spans, model strings and event shapes are the backend's to choose.
 */

/** A step of a running task, reported as it happens (progress notifications, spans). */
export type TaskEvent =
  /** `checkpoint`: where the task's turn starts in the backend session, for picking it up after a restart. */
  | { type: "started"; directory: string; checkpoint?: string }
  | { type: "tool"; phase: "started" | "ended"; call: ToolCallTrace }
  /** A request of the agent waits for a person (elicitation, or coding_respond). Emitted by the core. */
  | { type: "request"; request: PendingRequest }
  /** A permission request was answered (by policy, person, timeout, ...). Emitted by the core. */
  | { type: "permission"; decision: PermissionDecision }
  /** The agent's questions were answered or refused. Emitted by the core. */
  | { type: "question"; decision: QuestionDecision }
  | { type: "retry"; attempt: number; error: string; delayMs: number }
  | { type: "finished"; result: TaskResult };

/** A permission the agent asks for mid-task: the policy's kind (bash, edit, external_directory, ...) and what it is about. */
export interface PermissionAsk {
  permission: string;
  /** Commands, paths or URLs, as the coding-mcp side sees them (workspace paths mapped back). */
  patterns: string[];
  /** A short title of what the tool call does, when the backend has one. */
  title?: string;
  /** Details the person may want (e.g. the file path behind an external_directory pattern). */
  metadata?: Record<string, unknown>;
  /** Wildcard patterns an "allow for the session" would cover (e.g. `npm *`); omitted: the patterns themselves. */
  always?: string[];
}

/** How the core answers a permission request: the reply, and what the agent is told with it (a refusal's reason). */
export interface PermissionAnswer {
  reply: PermissionReply;
  message?: string;
}

/** Questions the agent asks the person mid-task. */
export interface QuestionAsk {
  questions: QuestionInfo[];
}

/** One list of chosen labels (or the person's own words) per question, in order; or a refusal. */
export type QuestionAnswer = { answers: string[][] } | { rejected: true };

/** What the core gives every task for its requests; see RunTaskRequest. */
export interface TaskRequests {
  /** How to answer a permission request of the agent; the core decides (policy, and the person where asked). */
  decide: (ask: PermissionAsk) => Promise<PermissionReply>;
  /** The same decision with a message for the agent: a refusal with a reason lets the agent go on. */
  permission: (ask: PermissionAsk) => Promise<PermissionAnswer>;
  /** Put the agent's questions to the person; resolves with the answers, or a refusal (declined, timed out, cancelled). */
  ask: (question: QuestionAsk) => Promise<QuestionAnswer>;
}

export interface RunTaskRequest extends TaskRequests {
  /** The backend's own session id. */
  sessionId: string;
  /** The workspace directory as coding-mcp sees it. */
  directory: string;
  prompt: string;
  /** A model the backend offers (checked by the core against `models()`); omitted: the backend's default. */
  model?: string;
  /** The backend's agent or mode. */
  agent?: string;
  timeoutMs: number;
  signal?: AbortSignal;
  onEvent?: (event: TaskEvent) => void;
  /**
   * Resolves once coding-mcp has read the workspace as it is before the task and recorded the task.
   * The backend gets ready meanwhile (connections, reads) and sends the prompt only after it; when it
   * rejects, runTask rejects with that error and nothing is sent.
   */
  workspaceReady?: Promise<void>;
}

export interface ResumeTaskRequest extends TaskRequests {
  sessionId: string;
  directory: string;
  checkpoint?: string;
  timeoutMs: number;
  signal?: AbortSignal;
  onEvent?: (event: TaskEvent) => void;
}

/** The models a backend can run tasks with, as it names them, and the one it uses by default. */
export interface ModelCatalog {
  available: string[];
  default?: string;
}

/** How a backend's work appears in traces: the OpenCode backend keeps the `opencode.*` names the README documents. */
export interface TelemetryLabels {
  /** `gen_ai.agent.name`. */
  agent: string;
  /** Prefix of span and attribute names: `<prefix>.task`, `<prefix>.tool.<name>`, `<prefix>.cost`, ... */
  prefix: string;
}

export interface CodingBackend {
  /** The configured name ("opencode", or a name under `backends`), for records, logs and answers. */
  readonly name: string;
  readonly telemetry: TelemetryLabels;
  /**
   * Whether the commands its agent runs go through coding-mcp's confinement (src/confinement/),
   * in a sandbox keyed by the backend's session id. False: the backend runs them where coding-mcp
   * cannot reach (an OpenCode at a URL).
   */
  readonly confinesCommands: boolean;
  /** Make sure the backend is reachable (and started, when it is managed); throws a clear error when not. */
  start(): Promise<void>;
  /** The models it offers; undefined when it cannot choose one (a given model is then refused). */
  models(): Promise<ModelCatalog | undefined>;
  /** Split a model it offers into provider and model name, for traces. */
  describeModel(model: string): { provider?: string; model: string };
  openSession(directory: string, options: { title: string; agent?: string }): Promise<{ id: string }>;
  /** Run one whole task; resolves with a result also when the task fails, is cancelled or times out. */
  runTask(request: RunTaskRequest): Promise<TaskResult>;
  /**
   * Follow a task that was started before a restart of coding-mcp (from its checkpoint) until its turn
   * ends, and answer its result; a turn the backend no longer runs ends as interrupted.
   */
  resumeTask(request: ResumeTaskRequest): Promise<TaskResult>;
  abort(sessionId: string, directory: string): Promise<void>;
  closeSession(sessionId: string, directory: string): Promise<void>;
  stop(): Promise<void>;
}

/** The note on a call the turn ended without the agent reporting its end. */
export const UNREPORTED_END_NOTE = "the agent's turn ended without it reporting how this call ended; the output is what it sent until then";

/**
 * A call still pending or running when its turn ended, as the finished trace shows it: ended then,
 * as `unreported`, with what output it had; a call that did end is returned as it is.
 */
export function endedWithTurn(call: ToolCallTrace, turnEndedAt: number): ToolCallTrace {
  if (call.status !== "pending" && call.status !== "running") return call;
  const startedAt = call.started_at ?? turnEndedAt;
  return { ...call, status: "unreported", note: UNREPORTED_END_NOTE, duration_ms: Math.max(0, turnEndedAt - startedAt), ended_at: turnEndedAt };
}

/** A duration as people read it in an error: "500 ms", "30 s", "5 min". */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = Math.round(ms / 1000);
  return s >= 120 ? `${Math.round(s / 60)} min` : `${s} s`;
}

/** What a task that ran out of time says, the same whichever backend ran it. */
export function taskTimeoutMessage(timeoutMs: number, howStopped: "aborted" | "cancelled"): string {
  return `the task did not finish within ${formatDuration(timeoutMs)} and was ${howStopped}; the trace shows what the agent did until then. Give a larger timeout_sec (or raise limits.task_timeout_min) for longer tasks`;
}
