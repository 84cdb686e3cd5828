/**
 * The coding-backend interface: the few things the tools need from a coding agent. OpenCode over
 * HTTP (src/opencode/) is the first implementation; another agent can be added beside it without
 * touching the tools.
 */

export interface TokenCounts {
  input: number;
  output: number;
  reasoning: number;
  cache_read: number;
  cache_write: number;
}

export interface ToolCallTrace {
  tool: string;
  status: "pending" | "running" | "completed" | "error";
  title?: string;
  /** The tool's input, with long string values cut short. */
  input: Record<string, unknown>;
  output_preview: string;
  duration_ms: number;
  error?: string;
  /** The backend's id of the call, to follow it from start to end (not part of the tool output). */
  call_id?: string;
  /** Epoch ms, when the backend reported them (used for spans; not part of the tool output). */
  started_at?: number;
  ended_at?: number;
}

/** A permission request the agent made mid-task, and how coding-mcp's policy answered it. */
export interface PermissionDecision {
  permission: string;
  patterns: string[];
  reply: "once" | "reject";
}

export interface TaskTrace {
  model: string;
  provider: string;
  cost: number;
  tokens: TokenCounts;
  duration_ms: number;
  finish_reason: string;
  tool_calls: ToolCallTrace[];
  /** How many tool calls were left out of `tool_calls` to keep the answer small. */
  tool_calls_omitted?: number;
  reasoning: string[];
  permissions?: PermissionDecision[];
}

export interface TaskResult {
  success: boolean;
  summary: string;
  trace: TaskTrace;
  error?: string;
  /** Why the task ended without success, for callers that branch on it. */
  failure?: "timeout" | "cancelled" | "agent_error" | "backend_unavailable";
  /** The backend says repeating the task may succeed (e.g. a provider's transient error). */
  retryable?: boolean;
  /** How many attempts the task took (more than 1 after retries). */
  attempts?: number;
}

/** A step of a running task, reported as it happens (progress notifications, spans). */
export type TaskEvent =
  /** `checkpoint`: where the task's turn starts in the backend session, for picking it up after a restart. */
  | { type: "started"; directory: string; checkpoint?: string }
  | { type: "tool"; phase: "started" | "ended"; call: ToolCallTrace }
  | { type: "permission"; decision: PermissionDecision }
  | { type: "retry"; attempt: number; error: string; delayMs: number }
  | { type: "finished"; result: TaskResult };

export interface RunTaskRequest {
  /** The backend's own session id. */
  sessionId: string;
  /** The workspace directory as coding-mcp sees it. */
  directory: string;
  prompt: string;
  /** provider/model; omitted: the backend's default. */
  model?: string;
  agent?: string;
  timeoutMs: number;
  signal?: AbortSignal;
  onEvent?: (event: TaskEvent) => void;
}

export interface ResumeTaskRequest {
  sessionId: string;
  directory: string;
  checkpoint?: string;
  timeoutMs: number;
  signal?: AbortSignal;
  onEvent?: (event: TaskEvent) => void;
}

export interface CodingBackend {
  /** For logs and records, e.g. "opencode". */
  readonly name: string;
  /** Make sure the backend is reachable (and started, when it is managed); throws a clear error when not. */
  start(): Promise<void>;
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

export function emptyTokens(): TokenCounts {
  return { input: 0, output: 0, reasoning: 0, cache_read: 0, cache_write: 0 };
}

export function addTokens(into: TokenCounts, more: TokenCounts): TokenCounts {
  into.input += more.input;
  into.output += more.output;
  into.reasoning += more.reasoning;
  into.cache_read += more.cache_read;
  into.cache_write += more.cache_write;
  return into;
}
