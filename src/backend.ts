import type { PermissionDecision, PermissionReply, TaskResult, ToolCallTrace } from "./model.js";

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
  | { type: "permission"; decision: PermissionDecision }
  | { type: "retry"; attempt: number; error: string; delayMs: number }
  | { type: "finished"; result: TaskResult };

/** A permission the agent asks for mid-task: the policy's kind (bash, edit, external_directory, ...) and what it is about. */
export interface PermissionAsk {
  permission: string;
  /** Commands, paths or URLs, as the coding-mcp side sees them (workspace paths mapped back). */
  patterns: string[];
}

export interface RunTaskRequest {
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
  /** How to answer a permission request of the agent; the core decides (policy, and the person where asked). */
  decide: (ask: PermissionAsk) => Promise<PermissionReply>;
}

export interface ResumeTaskRequest {
  sessionId: string;
  directory: string;
  checkpoint?: string;
  timeoutMs: number;
  signal?: AbortSignal;
  onEvent?: (event: TaskEvent) => void;
  decide: (ask: PermissionAsk) => Promise<PermissionReply>;
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
