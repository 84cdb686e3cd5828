import { randomBytes } from "node:crypto";
import {
  describeDecision,
  describePermission,
  describePermissionReply,
  permissionPlan,
  questionPlan,
  questionSummary,
  relativeTo,
  type AskingSession,
  type ElicitForm,
  type ElicitReply,
  type RespondInput,
  type WaitPlan,
} from "./approval-forms.js";
import type { PermissionAnswer, PermissionAsk, QuestionAnswer, QuestionAsk, TaskEvent, TaskRequests } from "./backend.js";
import { UserError } from "./errors.js";
import type { Logger } from "./log.js";
import type { DecidedBy, PendingRequest, PermissionDecision, QuestionDecision } from "./model.js";
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

export type { ElicitForm, ElicitReply, RespondInput };
export { describePermissionReply };

/** Ask the person through the client; `signal` withdraws the form when the request is answered elsewhere. */
export type Elicit = (form: ElicitForm, signal: AbortSignal) => Promise<ElicitReply>;

export interface TaskScope extends AskingSession {
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
        const what = describePermission(ask, patterns, scope.workspacePath);
        const view = this.newView("permission", what, { permission: ask.permission, patterns });
        const settled = await this.waitForPerson(task, permissionPlan(view, scope, ask, what, this.timeoutMs));
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
      this.log.info(`permission ${ask.permission} ${describePermissionReply(decision)}${decision.patterns.length ? `: ${decision.patterns.join(", ").slice(0, 200)}` : ""}`, {
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
        const view = this.newView("question", questionSummary(asked.questions), { questions: asked.questions });
        const settled = await this.waitForPerson(task, questionPlan(view, scope, asked.questions, this.timeoutMs));
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
          `request ${input.request_id} was already answered (${describeDecision(done.decidedBy)}, ${Math.round((Date.now() - done.at) / 1000)} s ago)`,
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

  private newView(kind: PendingRequest["kind"], summary: string, extra: Partial<PendingRequest>): PendingRequest {
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

function newRequestId(): string {
  return `req_${randomBytes(6).toString("hex")}`;
}

/** `npm *` as a regular expression: * is anything, ? one character. */
function wildcard(pattern: string): RegExp {
  return new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`, "s");
}
