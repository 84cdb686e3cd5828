import { randomBytes } from "node:crypto";
import path from "node:path";
import type { PermissionAnswer, PermissionAsk, QuestionAnswer, QuestionAsk, TaskEvent, TaskRequests } from "./backend.js";
import { UserError } from "./errors.js";
import type { Logger } from "./log.js";
import type { DecidedBy, PendingRequest, PermissionDecision, PermissionReply, QuestionDecision, QuestionInfo } from "./model.js";
import { QUESTION_KIND, type PermissionPolicy } from "./permissions.js";
import type { Redactor } from "./redact.js";

/**
 * People in the loop: every permission request and question of an agent goes through here, whatever
 * the backend. The policy answers first (allow, deny); `ask` goes to a person: through the client's
 * elicitation when the task's `code` call can elicit, and in any case as a pending request that
 * coding_status lists and coding_respond answers (from any MCP connection). Nothing waits forever:
 * an unanswered request is rejected after limits.approval_timeout_sec, and a task that ends rejects
 * what it left open. Each request is answered exactly once; every answer, who gave it and how long
 * it took goes into the task's trace, its span and its progress.
 */

/** A form for the person, as MCP's `elicitation/create` (form mode) carries it. */
export interface ElicitForm {
  message: string;
  requestedSchema: { type: "object"; properties: Record<string, Record<string, unknown>>; required?: string[] };
}

export interface ElicitReply {
  action: "accept" | "decline" | "cancel";
  content?: Record<string, unknown>;
}

/** Ask the person through the client; `signal` withdraws the form when the request is answered elsewhere. */
export type Elicit = (form: ElicitForm, signal: AbortSignal) => Promise<ElicitReply>;

/** What coding_respond carries. */
export interface RespondInput {
  request_id: string;
  decision?: "allow" | "allow_session" | "reject";
  /** Per question, in order: one choice or own words, or several choices. */
  answers?: (string | string[])[];
  message?: string;
}

export interface TaskScope {
  sessionId: string;
  sessionTitle: string;
  workspacePath: string;
  taskId: string;
  /** Aborted when the task is cancelled: its open requests are rejected. */
  signal: AbortSignal;
  /** Present when the person can be asked through the client (a foreground call of a client that elicits). */
  elicit?: Elicit;
  emit: (event: TaskEvent) => void;
}

/** One task's view of the broker: what its backend calls, and what its trace records. */
export interface TaskApprovals {
  requests: TaskRequests;
  permissions: PermissionDecision[];
  questions: QuestionDecision[];
  /** The task ended: reject whatever it left open. */
  close(): void;
}

interface OpenRequest {
  view: PendingRequest;
  sessionId: string;
  /** Answer it with a person's coding_respond; throws a UserError for an answer that does not fit. */
  respond(input: RespondInput): void;
}

/** Outcome of waiting for a person. */
interface Settled<T> {
  value: T;
  decidedBy: DecidedBy;
  durationMs: number;
}

interface WaitPlan<T> {
  view: PendingRequest;
  form: ElicitForm;
  /** The person's form content; a UserError when it does not fit (the request then keeps waiting). */
  fromForm(content: Record<string, unknown>): T;
  fromRespond(input: RespondInput): T;
  declined: T;
  timedOut: T;
  cancelled: T;
}

type PermissionOutcome = { reply: PermissionReply; message?: string };

const ANSWERED_HOW: Record<DecidedBy, string> = {
  person: "by a person",
  policy: "by the policy",
  session: "allowed for the session",
  timeout: "rejected: nobody answered in time",
  cancelled: "rejected when the task ended",
};

/** How many answered request ids are remembered, to tell "already answered" from "unknown". */
const ANSWERED_KEPT = 500;

export class Approvals {
  private readonly open = new Map<string, OpenRequest>();
  private readonly answered = new Map<string, { sessionId: string; decidedBy: DecidedBy; at: number }>();
  /** Per coding session: what a person allowed "for the rest of the session", by kind. */
  private readonly sessionAllows = new Map<string, { permission: string; patterns: RegExp[] }[]>();

  constructor(
    private readonly policy: PermissionPolicy,
    private readonly timeoutMs: number,
    private readonly redactor: Redactor,
    private readonly log: Logger,
  ) {}

  forTask(scope: TaskScope): TaskApprovals {
    const permissions: PermissionDecision[] = [];
    const questions: QuestionDecision[] = [];
    const ended = new AbortController();
    const signal = AbortSignal.any([scope.signal, ended.signal]);
    const task: TaskScope = { ...scope, signal };

    const permission = async (ask: PermissionAsk): Promise<PermissionAnswer> => {
      const patterns = ask.patterns.map((p) => relativeTo(scope.workspacePath, p));
      const rule = this.policy.rule(ask.permission);
      let decision: PermissionDecision;
      if (rule === "allow") {
        decision = { permission: ask.permission, patterns, reply: "once", decided_by: "policy", duration_ms: 0 };
      } else if (rule === "deny" || signal.aborted) {
        const message = rule === "deny" ? `coding-mcp's permission policy denies ${ask.permission}` : "the task ended";
        decision = { permission: ask.permission, patterns, reply: "reject", decided_by: rule === "deny" ? "policy" : "cancelled", duration_ms: 0, message };
      } else if (this.allowedForSession(scope.sessionId, ask)) {
        decision = { permission: ask.permission, patterns, reply: "once", decided_by: "session", duration_ms: 0 };
      } else {
        const settled = await this.waitForPerson(task, this.permissionPlan(scope, ask, patterns));
        const { reply, message } = settled.value;
        if (reply === "always") this.allowForSession(scope.sessionId, ask);
        decision = {
          request_id: settled.view.request_id,
          permission: ask.permission,
          patterns,
          reply,
          decided_by: settled.decidedBy,
          duration_ms: settled.durationMs,
          ...(message ? { message } : {}),
        };
      }
      permissions.push(decision);
      scope.emit({ type: "permission", decision });
      this.log.info(`permission ${ask.permission} ${describeReply(decision)}${decision.patterns.length ? `: ${decision.patterns.join(", ").slice(0, 200)}` : ""}`, {
        session: scope.sessionId,
        task: scope.taskId,
      });
      return { reply: decision.reply, ...(decision.message ? { message: decision.message } : {}) };
    };

    const ask = async (asked: QuestionAsk): Promise<QuestionAnswer> => {
      const started = Date.now();
      const headers = asked.questions.map((q) => ({ question: q.question, ...(q.header ? { header: q.header } : {}) }));
      let decision: QuestionDecision;
      if (this.policy.rule(QUESTION_KIND) === "deny" || signal.aborted) {
        decision = {
          request_id: newRequestId(),
          questions: headers,
          rejected: true,
          decided_by: signal.aborted ? "cancelled" : "policy",
          duration_ms: Date.now() - started,
        };
      } else {
        const settled = await this.waitForPerson(task, this.questionPlan(scope, asked.questions));
        const answers = settled.value;
        decision = {
          request_id: settled.view.request_id,
          questions: headers,
          ...(answers ? { answers } : {}),
          rejected: !answers,
          decided_by: settled.decidedBy,
          duration_ms: settled.durationMs,
        };
      }
      questions.push(decision);
      scope.emit({ type: "question", decision });
      this.log.info(`question ${decision.request_id} ${decision.rejected ? "rejected" : "answered"} (${decision.decided_by})`, { session: scope.sessionId, task: scope.taskId });
      return decision.answers ? { answers: decision.answers } : { rejected: true };
    };

    return {
      requests: { permission, decide: async (a) => (await permission(a)).reply, ask },
      permissions,
      questions,
      close: () => ended.abort(),
    };
  }

  /** The requests of a session that wait for a person, oldest first. */
  pending(sessionId: string): PendingRequest[] {
    return [...this.open.values()].filter((r) => r.sessionId === sessionId).map((r) => ({ ...r.view }));
  }

  /** A person's answer through coding_respond: exactly once, and only for a request of this session. */
  respond(sessionId: string, input: RespondInput): { answered: true; request_id: string; kind: PendingRequest["kind"] } {
    const request = this.open.get(input.request_id);
    if (!request || request.sessionId !== sessionId) {
      const done = this.answered.get(input.request_id);
      if (done && done.sessionId === sessionId) {
        throw new UserError(
          `request ${input.request_id} was already answered (${ANSWERED_HOW[done.decidedBy]}, ${Math.round((Date.now() - done.at) / 1000)} s ago)`,
          "Each request is answered once; the task's trace shows the answer. coding_status lists what still waits.",
          "request_answered",
        );
      }
      if (request || done) {
        throw new UserError(
          `request ${input.request_id} is not a request of session ${sessionId}`,
          "Pass the session_id of the session whose task asked (coding_status lists each session's pending_requests).",
          "request_of_other_session",
        );
      }
      throw new UserError(
        `unknown request_id "${input.request_id}"`,
        `Use a request_id from coding_status (task.pending_requests of session ${sessionId}); requests that were answered or timed out are gone.`,
        "unknown_request",
      );
    }
    request.respond(input);
    return { answered: true, request_id: input.request_id, kind: request.view.kind };
  }

  /**
   * Wait for a person: the request is listed as pending (and announced), put to the client as a form
   * when it can elicit, and settled by whichever comes first: the form, coding_respond, the approval
   * timeout, or the task's end. Later answers find it gone.
   */
  private waitForPerson<T>(scope: TaskScope, plan: WaitPlan<T>): Promise<Settled<T> & { view: PendingRequest }> {
    const { view } = plan;
    const started = Date.now();
    return new Promise((resolve) => {
      const withdraw = new AbortController();
      let done = false;
      const finish = (value: T, decidedBy: DecidedBy): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        scope.signal.removeEventListener("abort", onEnd);
        withdraw.abort();
        this.open.delete(view.request_id);
        this.remember(view.request_id, scope.sessionId, decidedBy);
        resolve({ value, decidedBy, durationMs: Date.now() - started, view });
      };
      const timer = setTimeout(() => finish(plan.timedOut, "timeout"), this.timeoutMs);
      // The task that waits keeps the process busy; this timer alone must not hold up an exit.
      timer.unref();
      const onEnd = () => finish(plan.cancelled, "cancelled");
      scope.signal.addEventListener("abort", onEnd, { once: true });

      this.open.set(view.request_id, {
        view,
        sessionId: scope.sessionId,
        respond: (input) => finish(plan.fromRespond(input), "person"),
      });
      if (scope.elicit) view.elicited = true;
      scope.emit({ type: "request", request: { ...view } });
      this.log.info(
        `${view.kind} ${view.request_id} waits for a person${scope.elicit ? " (asked through the client)" : ""}: ${view.summary}; ` +
          `answer with coding_respond, else it is rejected at ${view.expires_at}`,
        { session: scope.sessionId, task: scope.taskId },
      );
      if (scope.signal.aborted) onEnd();

      if (scope.elicit && !done) {
        scope.elicit(this.redactor.value<ElicitForm>(plan.form), withdraw.signal).then(
          (reply) => {
            if (done) return;
            if (reply.action !== "accept") return finish(plan.declined, "person");
            try {
              finish(plan.fromForm(reply.content ?? {}), "person");
            } catch (err) {
              view.elicited = false;
              this.log.warn(`${view.kind} ${view.request_id}: the form's answer does not fit (${(err as Error).message}); it waits for coding_respond`);
            }
          },
          (err: unknown) => {
            if (done) return;
            view.elicited = false;
            this.log.warn(`${view.kind} ${view.request_id}: asking through the client failed (${(err as Error).message}); it waits for coding_respond`);
          },
        );
      }
    });
  }

  private permissionPlan(scope: TaskScope, ask: PermissionAsk, patterns: string[]): WaitPlan<PermissionOutcome> {
    const what = describePermission(ask, patterns, scope.workspacePath);
    const view = this.newView(scope, "permission", what, { permission: ask.permission, patterns });
    const seconds = Math.round(this.timeoutMs / 1000);
    const outcome = (decision: string | undefined, message: string | undefined): PermissionOutcome => {
      const note = message?.trim() || undefined;
      switch (decision) {
        case "allow":
          return { reply: "once", ...(note ? { message: note } : {}) };
        case "allow_session":
          return { reply: "always", ...(note ? { message: note } : {}) };
        case "reject":
          return { reply: "reject", message: note ?? "The person rejected this request." };
        default:
          throw new UserError(
            `request ${view.request_id} is a permission request: decision must be allow, allow_session or reject`,
            "Pass decision (and optionally message, passed to the agent).",
            "invalid_answer",
          );
      }
    };
    return {
      view,
      form: {
        message:
          `The coding agent of session ${scope.sessionId} ("${scope.sessionTitle}") asks for permission to ${what}\n` +
          `Workspace: ${scope.workspacePath}\nKind: ${ask.permission}. Without an answer it is rejected in ${seconds} s.`,
        requestedSchema: {
          type: "object",
          properties: {
            decision: {
              type: "string",
              title: "Your decision",
              oneOf: [
                { const: "allow", title: "Allow once" },
                { const: "allow_session", title: "Allow for the rest of this session" },
                { const: "reject", title: "Reject" },
              ],
            },
            message: { type: "string", title: "Message to the agent (optional)", description: "E.g. why you rejected it, or what to do instead" },
          },
          required: ["decision"],
        },
      },
      fromForm: (content) => outcome(typeof content.decision === "string" ? content.decision : undefined, typeof content.message === "string" ? content.message : undefined),
      fromRespond: (input) => {
        if (input.answers) {
          throw new UserError(`request ${view.request_id} is a permission request, not a question`, "Pass decision (allow, allow_session or reject) instead of answers.", "invalid_answer");
        }
        return outcome(input.decision, input.message);
      },
      declined: { reply: "reject", message: "The person declined this request." },
      timedOut: { reply: "reject", message: `Nobody answered this request within ${seconds} s, so it was rejected.` },
      cancelled: { reply: "reject", message: "The task ended before anyone answered." },
    };
  }

  private questionPlan(scope: TaskScope, questions: QuestionInfo[]): WaitPlan<string[][] | undefined> {
    const summary = questions.map((q) => q.question).join(" / ");
    const view = this.newView(scope, "question", `answer: ${summary}`, { questions });
    const seconds = Math.round(this.timeoutMs / 1000);
    const properties: Record<string, Record<string, unknown>> = {};
    const required: string[] = [];
    questions.forEach((q, i) => {
      const key = `answer_${i + 1}`;
      const title = q.header || (questions.length > 1 ? `Question ${i + 1}` : "Your answer");
      const choices = q.options.map((o) => ({ const: o.label, title: o.description ? `${o.label}: ${o.description}` : o.label }));
      if (choices.length) {
        properties[key] = q.multiple
          ? { type: "array", title, description: q.question, items: { anyOf: choices } }
          : { type: "string", title, description: q.question, oneOf: choices };
        if (q.custom === false) required.push(key);
      }
      if (q.custom !== false) {
        properties[`${key}_own`] = { type: "string", title: choices.length ? `${title}: or in your own words` : title, description: q.question };
        if (!choices.length) required.push(`${key}_own`);
      }
    });
    return {
      view,
      form: {
        message:
          `The coding agent of session ${scope.sessionId} ("${scope.sessionTitle}") asks you:\n` +
          questions.map((q, i) => `${questions.length > 1 ? `${i + 1}. ` : ""}${q.question}`).join("\n") +
          `\nWithout an answer the question is dismissed in ${seconds} s.`,
        requestedSchema: { type: "object", properties, ...(required.length ? { required } : {}) },
      },
      fromForm: (content) =>
        questions.map((q, i) => {
          const chosen = content[`answer_${i + 1}`];
          const own = content[`answer_${i + 1}_own`];
          const list = [...(Array.isArray(chosen) ? chosen : chosen === undefined || chosen === "" ? [] : [chosen]).map(String)];
          if (typeof own === "string" && own.trim()) list.push(own.trim());
          return list;
        }),
      fromRespond: (input) => {
        if (input.decision === "reject") return undefined;
        if (input.decision) {
          throw new UserError(`request ${view.request_id} is a question: pass answers, or decision "reject" to dismiss it`, "answers holds one entry per question, in order.", "invalid_answer");
        }
        return checkAnswers(view.request_id, questions, input.answers);
      },
      declined: undefined,
      timedOut: undefined,
      cancelled: undefined,
    };
  }

  private newView(scope: TaskScope, kind: PendingRequest["kind"], summary: string, extra: Partial<PendingRequest>): PendingRequest {
    const now = Date.now();
    return {
      request_id: newRequestId(),
      kind,
      summary: this.redactor.text(summary).slice(0, 500),
      ...extra,
      asked_at: new Date(now).toISOString(),
      expires_at: new Date(now + this.timeoutMs).toISOString(),
      elicited: false,
    };
  }

  private allowedForSession(sessionId: string, ask: PermissionAsk): boolean {
    const allows = this.sessionAllows.get(sessionId)?.filter((a) => a.permission === ask.permission);
    if (!allows?.length) return false;
    return ask.patterns.every((p) => allows.some((a) => a.patterns.some((re) => re.test(p))));
  }

  private allowForSession(sessionId: string, ask: PermissionAsk): void {
    const list = this.sessionAllows.get(sessionId) ?? [];
    list.push({ permission: ask.permission, patterns: (ask.always?.length ? ask.always : ask.patterns).map(wildcard) });
    this.sessionAllows.set(sessionId, list);
  }

  /** The session is closed: what was allowed for it goes. */
  forgetSession(sessionId: string): void {
    this.sessionAllows.delete(sessionId);
  }

  private remember(requestId: string, sessionId: string, decidedBy: DecidedBy): void {
    this.answered.set(requestId, { sessionId, decidedBy, at: Date.now() });
    if (this.answered.size > ANSWERED_KEPT) this.answered.delete(this.answered.keys().next().value!);
  }
}

/** The person's answers, one per question, checked against the options where the agent accepts nothing else. */
function checkAnswers(requestId: string, questions: QuestionInfo[], answers: RespondInput["answers"]): string[][] {
  const hint = `answers holds one entry per question, in order: a string (an option's label, or your own words where allowed) or a list of labels where several may be chosen.`;
  if (!answers) throw new UserError(`request ${requestId} is a question: pass answers (or decision "reject" to dismiss it)`, hint, "invalid_answer");
  if (answers.length !== questions.length) {
    throw new UserError(`request ${requestId} has ${questions.length} question(s), but ${answers.length} answer(s) were given`, hint, "invalid_answer");
  }
  return questions.map((q, i) => {
    const entry = answers[i]!;
    const given = (Array.isArray(entry) ? entry : [entry]).map((a) => a.trim()).filter(Boolean);
    if (given.length > 1 && !q.multiple) throw new UserError(`question ${i + 1} of ${requestId} takes one answer, got ${given.length}`, hint, "invalid_answer");
    return given.map((a) => {
      const option = q.options.find((o) => o.label.toLowerCase() === a.toLowerCase());
      if (option) return option.label;
      if (q.custom === false) {
        throw new UserError(
          `"${a}" is not an option of question ${i + 1} of ${requestId}`,
          `Choose one of: ${q.options.map((o) => o.label).join(", ")}.`,
          "invalid_answer",
        );
      }
      return a;
    });
  });
}

function newRequestId(): string {
  return `req_${randomBytes(6).toString("hex")}`;
}

/** A path inside the workspace, relative to it; anything else as it is. */
function relativeTo(workspace: string, pattern: string): string {
  const root = workspace.endsWith(path.sep) ? workspace : workspace + path.sep;
  if (pattern === workspace) return ".";
  return pattern.startsWith(root) ? pattern.slice(root.length) : pattern;
}

/** What the agent wants, in words a person reads at a glance. */
function describePermission(ask: PermissionAsk, patterns: string[], workspace: string): string {
  const list = patterns.join(", ") || "(nothing named)";
  const meta = ask.metadata ?? {};
  switch (ask.permission) {
    case "bash":
      return `run a command: ${typeof meta.command === "string" ? meta.command : list}`;
    case "edit":
    case "write":
      return `change files: ${list}`;
    case "read":
      return `read: ${list}`;
    case "external_directory": {
      const file = typeof meta.filepath === "string" ? relativeTo(workspace, meta.filepath) : undefined;
      return `reach outside its workspace: ${list}${file && !patterns.includes(file) ? ` (${file})` : ""}`;
    }
    case "webfetch":
    case "websearch":
      return `${ask.permission === "webfetch" ? "fetch" : "search the web for"}: ${list}`;
    case "doom_loop":
      return `repeat the same tool call once more (it looks stuck in a loop): ${list}`;
    default:
      return `use ${ask.permission}: ${list}`;
  }
}

function describeReply(decision: PermissionDecision): string {
  const verb = decision.reply === "reject" ? "denied" : decision.reply === "always" ? "allowed for the session" : "allowed";
  switch (decision.decided_by) {
    case "policy":
      return `${verb} by policy`;
    case "person":
      return `${verb} by the person`;
    case "session":
      return "allowed (allowed earlier for the session)";
    case "timeout":
      return "denied: nobody answered in time";
    case "cancelled":
      return "denied: the task ended";
    default:
      return verb;
  }
}

export { describeReply as describePermissionReply };

/** `npm *` as a regular expression: * is anything, ? one character. */
function wildcard(pattern: string): RegExp {
  return new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`, "s");
}
