import { z } from "zod";

/**
 * Every shape that crosses a layer, defined once as a zod schema with its type derived from it: what
 * backends report, what tasks and sessions answer, what the tools send to clients and what the
 * registry keeps on disk. The tools' output schemas are built from these, so a change here is a
 * change clients see (the schema snapshot test shows it).
 */

export const TokenCounts = z.object({
  input: z.number(),
  output: z.number(),
  reasoning: z.number(),
  cache_read: z.number(),
  cache_write: z.number(),
});
export type TokenCounts = z.infer<typeof TokenCounts>;

/**
 * `unreported`: the turn ended while the agent had not reported how this call ended (some agents
 * drop the end of a quick command); a finished trace never holds a `pending` or `running` call.
 */
export const ToolCallStatus = z.enum(["pending", "running", "completed", "error", "unreported"]);

/** One tool call of the agent, as clients see it. */
export const ToolCall = z.object({
  tool: z.string(),
  status: ToolCallStatus,
  title: z.string().optional(),
  /** The tool's input, with long string values cut short. */
  input: z.record(z.string(), z.unknown()),
  output_preview: z.string(),
  duration_ms: z.number(),
  error: z.string().optional(),
  /** What coding-mcp itself says about the call, e.g. that the agent never reported its end. */
  note: z.string().optional(),
});
export type ToolCall = z.infer<typeof ToolCall>;

/** A tool call as the backend reports it: what clients see, plus what follows it from start to end (never sent). */
export const ToolCallTrace = ToolCall.extend({
  /** The backend's id of the call. */
  call_id: z.string().optional(),
  /** Epoch ms, when the backend reported them (for spans). */
  started_at: z.number().optional(),
  ended_at: z.number().optional(),
});
export type ToolCallTrace = z.infer<typeof ToolCallTrace>;

/** How a permission request of the agent was answered: once, for the rest of the session, or refused. */
export const PermissionReply = z.enum(["once", "always", "reject"]);
export type PermissionReply = z.infer<typeof PermissionReply>;

/**
 * Who answered a request of the agent: the configured policy, a person (elicitation or
 * coding_respond), an earlier "allow for the session" of a person, the approval timeout, or the
 * task's end (cancelled, timed out) while it waited.
 */
export const DecidedBy = z.enum(["policy", "person", "session", "timeout", "cancelled"]);
export type DecidedBy = z.infer<typeof DecidedBy>;

/** A permission request the agent made mid-task, and how it was answered. */
export const PermissionDecision = z.object({
  /** coding-mcp's id of the request (coding_respond's request_id), when it waited for a person. */
  request_id: z.string().optional(),
  /** The policy's kind: bash, edit, read, webfetch, external_directory, ... */
  permission: z.string(),
  patterns: z.array(z.string()),
  reply: PermissionReply,
  /** Absent only in records written before people could answer. */
  decided_by: DecidedBy.optional(),
  /** From the request to its answer. */
  duration_ms: z.number().optional(),
  /** What the agent was told with a refusal (or with the person's answer). */
  message: z.string().optional(),
});
export type PermissionDecision = z.infer<typeof PermissionDecision>;

export const QuestionOption = z.object({ label: z.string(), description: z.string().optional() });

/** One question of the agent to the person, with the choices it offers. */
export const QuestionInfo = z.object({
  question: z.string(),
  header: z.string().optional(),
  options: z.array(QuestionOption),
  /** Several options may be chosen. */
  multiple: z.boolean().optional(),
  /** The agent also accepts an answer in the person's own words (OpenCode's default: yes). */
  custom: z.boolean().optional(),
});
export type QuestionInfo = z.infer<typeof QuestionInfo>;

/** Questions the agent asked mid-task, and their answers (one list of chosen labels or own words per question), or their refusal. */
export const QuestionDecision = z.object({
  request_id: z.string(),
  questions: z.array(QuestionInfo.pick({ question: true, header: true })),
  answers: z.array(z.array(z.string())).optional(),
  rejected: z.boolean(),
  decided_by: DecidedBy,
  duration_ms: z.number(),
});
export type QuestionDecision = z.infer<typeof QuestionDecision>;

/** A request of the agent waiting for a person: answer it with coding_respond. */
export const PendingRequest = z.object({
  request_id: z.string(),
  kind: z.enum(["permission", "question"]),
  /** What is asked, in one line (as the elicitation message says it). */
  summary: z.string(),
  /** kind permission: the policy's kind and its patterns (commands, workspace-relative paths, URLs). */
  permission: z.string().optional(),
  patterns: z.array(z.string()).optional(),
  /** kind question: the questions with their options. */
  questions: z.array(QuestionInfo).optional(),
  asked_at: z.string(),
  /** When it is rejected if nobody answers (limits.approval_timeout_sec). */
  expires_at: z.string(),
  /** Whether the person was also asked through the client's elicitation. */
  elicited: z.boolean(),
});
export type PendingRequest = z.infer<typeof PendingRequest>;

/** Figures an agent may not report (Codex gives no tokens, most agents no cost). */
export const Unreported = z.enum(["tokens", "cost"]);
export type Unreported = z.infer<typeof Unreported>;

export const TaskTrace = z.object({
  model: z.string(),
  provider: z.string(),
  cost: z.number(),
  tokens: TokenCounts,
  duration_ms: z.number(),
  finish_reason: z.string(),
  /** Parsed as ToolCall: the fields that follow a call from start to end are never sent or stored. */
  tool_calls: z.array(ToolCall),
  /** How many tool calls were left out of `tool_calls` to keep the answer small. */
  tool_calls_omitted: z.number().int().optional(),
  reasoning: z.array(z.string()),
  permissions: z.array(PermissionDecision).optional(),
  questions: z.array(QuestionDecision).optional(),
  /** What the agent did not report: those figures read 0 above and are unknown, not zero. */
  unknown: z.array(Unreported).optional(),
});
export type TaskTrace = z.infer<typeof TaskTrace>;

/** Why a task ended without success, for callers that branch on it. */
export const Failure = z.enum(["timeout", "cancelled", "agent_error", "backend_unavailable"]);
export type Failure = z.infer<typeof Failure>;

/** What a backend answers for one task. */
export const TaskResult = z.object({
  success: z.boolean(),
  summary: z.string(),
  trace: TaskTrace,
  error: z.string().optional(),
  failure: Failure.optional(),
  /** The backend says repeating the task may succeed (e.g. a provider's transient error). Not sent to clients. */
  retryable: z.boolean().optional(),
  /** How many attempts the task took (more than 1 after retries). */
  attempts: z.number().int().optional(),
  /**
   * Every file the agent's tools wrote (absolute paths), when its own events account for all it could
   * have changed (no command, subagent or unknown tool ran); absent otherwise. Not sent to clients:
   * git then reads only these files instead of the whole working tree.
   */
  files_written: z.array(z.string()).optional(),
});
export type TaskResult = z.infer<typeof TaskResult>;

export const FileStatus = z.enum(["added", "modified", "deleted", "renamed"]);
export type FileStatus = z.infer<typeof FileStatus>;

export const ChangedFile = z.object({
  path: z.string(),
  status: FileStatus,
  additions: z.number().int().optional(),
  deletions: z.number().int().optional(),
});
export type ChangedFile = z.infer<typeof ChangedFile>;

export const CommitRef = z.object({ hash: z.string(), subject: z.string() });
export type CommitRef = z.infer<typeof CommitRef>;

/** A finished task's answer: what `code` returns, and what coding_status shows once a task is done. */
export const CodeResult = TaskResult.omit({ retryable: true, files_written: true }).extend({
  files_changed: z.array(ChangedFile),
  /** Commits the agent made during the task. */
  commits: z.array(CommitRef).optional(),
  /** Something went wrong around the task that makes part of this answer incomplete (e.g. git could not list the changes). */
  warnings: z.array(z.string()).optional(),
});
export type CodeResult = z.infer<typeof CodeResult>;

/** What coding_status shows of a task: while it runs, its tool calls so far; once done, its result. */
export const TaskView = z.object({
  task_id: z.string(),
  task: z.string(),
  state: z.enum(["running", "done"]),
  started_at: z.string(),
  finished_at: z.string().optional(),
  tool_calls: z.array(ToolCall),
  /** While it runs: the agent's requests that wait for a person (answer with coding_respond). */
  pending_requests: z.array(PendingRequest).optional(),
  result: CodeResult.optional(),
});
export type TaskView = z.infer<typeof TaskView>;

/** What `code` answers: the finished task, or (background) the task that was started. */
export type CodeAnswer = { state: "done"; result: CodeResult } | { state: "running"; task: TaskView };

export const Totals = z.object({
  tasks: z.number().int(),
  cost: z.number(),
  tokens: TokenCounts,
  duration_ms: z.number(),
  /** Figures some task's agent did not report: the sums leave those tasks out, so they are lower bounds. */
  unknown: z.array(Unreported).optional(),
});
export type Totals = z.infer<typeof Totals>;

export const Scope = z.enum(["agent", "workflow"]);
export type Scope = z.infer<typeof Scope>;

export const SessionState = z.enum(["idle", "running", "closed"]);
export type SessionState = z.infer<typeof SessionState>;

/** One session as coding_status shows it (and the session view reads it). */
export const SessionStatus = z.object({
  session_id: z.string(),
  state: SessionState,
  backend: z.string(),
  workspace_path: z.string(),
  title: z.string(),
  confined: z.boolean().describe("Whether the commands the agent runs for this session are confined by the OS sandbox"),
  task: TaskView.optional(),
  totals: Totals,
  /** Something is wrong with the session's workspace (e.g. its directory was deleted outside coding-mcp). */
  warnings: z.array(z.string()).optional(),
});
export type SessionStatus = z.infer<typeof SessionStatus>;

/** none: the session works in the directory it was given; worktree: in a new git worktree of it, on a branch of its own. */
export const Isolation = z.enum(["none", "worktree"]);
export type Isolation = z.infer<typeof Isolation>;

/** What coding_diff measures from: the session's start (committed or not), or the last commit (what is not committed yet). */
export const DiffSince = z.enum(["open", "commit"]);
export type DiffSince = z.infer<typeof DiffSince>;

/** A session's change as a unified diff: what coding_diff answers and the diff resource holds. */
export const SessionDiff = z.object({
  /** Unified diff (git's format: renames as renames, binary files named, not dumped), at most max_bytes. */
  diff: z.string(),
  files_changed: z.array(ChangedFile),
  /** The diff was cut at a line boundary to stay within max_bytes. */
  truncated: z.boolean(),
  since: DiffSince,
  /** The commit (or tree) the diff starts from. */
  base: z.string(),
  /** Files in the caller's checkout that had uncommitted changes before the session opened, changed now, and so not shown (name them in paths to see them). */
  left_out: z.array(z.string()).optional(),
});
export type SessionDiff = z.infer<typeof SessionDiff>;

// ---------------------------------------------------------------------------------------------
// Records kept on disk
// ---------------------------------------------------------------------------------------------

/** A session's last task, with its whole (bounded) answer for coding_status after the fact. */
export const TaskRecord = z.object({
  task_id: z.string().optional(),
  started_at: z.string(),
  finished_at: z.string().optional(),
  task: z.string(),
  success: z.boolean().optional(),
  summary: z.string().optional(),
  error: z.string().optional(),
  cost: z.number(),
  duration_ms: z.number(),
  tool_calls: z.number(),
  result: CodeResult.optional(),
});
export type TaskRecord = z.infer<typeof TaskRecord>;

/** A task in progress, recorded so a restarted coding-mcp can follow it to its end. */
export const RunningTaskRecord = z.object({
  task_id: z.string(),
  task: z.string(),
  started_at: z.string(),
  deadline: z.string(),
  /** Where the task's turn starts in the backend session. */
  checkpoint: z.string().optional(),
  head_before: z.string(),
  /** The working tree before the task; written beside the agent's turn, so absent for its first milliseconds. */
  tree_before: z.string().optional(),
});
export type RunningTaskRecord = z.infer<typeof RunningTaskRecord>;

export const WorkspaceRecord = z.object({
  id: z.string(),
  path: z.string(),
  /** Created by coding-mcp under base_path (and so removable); false for a caller's own directory. */
  managed: z.boolean(),
  repo_url: z.string().optional(),
  /** The branch cloned, or (isolation worktree) the session branch created for the worktree. */
  branch: z.string().optional(),
  /** Absent in records written before isolation existed: "none". */
  isolation: Isolation.optional(),
  /** isolation worktree: the top directory of the caller's repository the worktree belongs to. */
  source_repo: z.string().optional(),
  scope: Scope,
  scope_id: z.string().optional(),
  /** The caller that opened it (src/callers/caller.ts); absent in records from before callers: the local user. */
  owner: z.string().optional(),
  created_at: z.string(),
  removed_at: z.string().optional(),
});
export type WorkspaceRecord = z.infer<typeof WorkspaceRecord>;

export const SessionRecord = z.object({
  id: z.string(),
  workspace_id: z.string(),
  /** The configured backend's name ("opencode", or a name under `backends`). */
  backend: z.string(),
  backend_session_id: z.string(),
  title: z.string(),
  /** The caller that opened it (src/callers/caller.ts); absent in records from before callers: the local user. */
  owner: z.string().optional(),
  model: z.string().optional(),
  agent: z.string().optional(),
  state: z.enum(["open", "closed"]),
  created_at: z.string(),
  closed_at: z.string().optional(),
  /** HEAD when the session opened: what coding_close's files_changed is measured against. */
  base_commit: z.string(),
  /** The working tree when the session opened, as a tree object: what coding_diff measures from (absent in old records: base_commit). */
  tree_at_open: z.string().optional(),
  /** In a caller's own checkout (no isolation): paths (from the repository's top) with uncommitted changes when the session opened; coding_commit leaves them out. */
  dirty_at_open: z.array(z.string()).optional(),
  /**
   * In a caller's own checkout: tree_at_open and dirty_at_open are not read yet. coding_open starts
   * their read once it has answered, so that it costs no walk of the working tree; whatever needs them
   * waits for it (after a restart, reads them).
   */
  baseline_pending: z.boolean().optional(),
  last_task: TaskRecord.optional(),
  running: RunningTaskRecord.optional(),
  totals: Totals,
});
export type SessionRecord = z.infer<typeof SessionRecord>;

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

export function emptyTotals(): Totals {
  return { tasks: 0, cost: 0, tokens: emptyTokens(), duration_ms: 0 };
}

/** The totals after one more task. */
export function addToTotals(totals: Totals, result: TaskResult): Totals {
  return {
    tasks: totals.tasks + 1,
    cost: Math.round((totals.cost + result.trace.cost) * 1e6) / 1e6,
    tokens: addTokens({ ...totals.tokens }, result.trace.tokens),
    duration_ms: totals.duration_ms + result.trace.duration_ms,
    ...unknownIn(totals.unknown, result.trace.unknown),
  };
}

function unknownIn(...lists: (Unreported[] | undefined)[]): { unknown?: Unreported[] } {
  const all = Unreported.options.filter((figure) => lists.some((l) => l?.includes(figure)));
  return all.length ? { unknown: all } : {};
}
