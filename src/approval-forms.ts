import path from "node:path";
import type { PermissionAsk } from "./backend.js";
import { UserError } from "./errors.js";
import type { DecidedBy, PendingRequest, PermissionDecision, PermissionReply, QuestionInfo } from "./model.js";

/**
 * What a person is shown and answers when an agent asks (src/approvals.ts routes the requests):
 * the elicitation forms for a permission request and for questions, what each answer (a form, a
 * coding_respond, a decline, the timeout, the task's end) means for the agent, and the words for
 * what the agent wants and who decided. Pure: no timers, no state.
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

/** What coding_respond carries. */
export interface RespondInput {
  request_id: string;
  decision?: "allow" | "allow_session" | "reject";
  /** Per question, in order: one choice or own words, or several choices. */
  answers?: (string | string[])[];
  message?: string;
}

/** The session a request comes from, as the forms name it. */
export interface AskingSession {
  sessionId: string;
  sessionTitle: string;
  workspacePath: string;
}

/** How a request waits for a person: its form, and what each way it can be settled answers the agent. */
export interface WaitPlan<T> {
  view: PendingRequest;
  form: ElicitForm;
  /** The person's form content; a UserError when it does not fit (the request then keeps waiting). */
  fromForm(content: Record<string, unknown>): T;
  fromRespond(input: RespondInput): T;
  declined: T;
  timedOut: T;
  cancelled: T;
}

export type PermissionOutcome = { reply: PermissionReply; message?: string };

/** The wait for a person's answer to a permission request: its form, and what each way of answering means. */
export function permissionPlan(view: PendingRequest, session: AskingSession, ask: PermissionAsk, what: string, timeoutMs: number): WaitPlan<PermissionOutcome> {
  const seconds = Math.round(timeoutMs / 1000);
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
        `The coding agent of session ${session.sessionId} ("${session.sessionTitle}") asks for permission to ${what}\n` +
        `Workspace: ${session.workspacePath}\nKind: ${ask.permission}. Without an answer it is rejected in ${seconds} s.`,
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

/** What a pending question shows in coding_status and the log. */
export function questionSummary(questions: QuestionInfo[]): string {
return `answer: ${questions.map((q) => q.question).join(" / ")}`;
}

/** The wait for a person's answers to the agent's questions: the form, and what each way of answering means. */
export function questionPlan(view: PendingRequest, session: AskingSession, questions: QuestionInfo[], timeoutMs: number): WaitPlan<string[][] | undefined> {
  const seconds = Math.round(timeoutMs / 1000);
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
        `The coding agent of session ${session.sessionId} ("${session.sessionTitle}") asks you:\n` +
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

/** A path inside the workspace, relative to it; anything else as it is. */
export function relativeTo(workspace: string, pattern: string): string {
  const root = workspace.endsWith(path.sep) ? workspace : workspace + path.sep;
  if (pattern === workspace) return ".";
  return pattern.startsWith(root) ? pattern.slice(root.length) : pattern;
}

/** What the agent wants, in words a person reads at a glance. */
export function describePermission(ask: PermissionAsk, patterns: string[], workspace: string): string {
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

/**
 * Who or what decided a request, in words: with a permission's reply for the log and the progress
 * ("allowed by policy", "denied: nobody answered in time"), without one for an answer that already
 * came ("by a person", "rejected when the task ended"). The one place these words are made.
 */
export function describeDecision(decidedBy: DecidedBy, reply?: PermissionReply): string {
  const verb = reply === undefined ? undefined : reply === "reject" ? "denied" : reply === "always" ? "allowed for the session" : "allowed";
  switch (decidedBy) {
    case "policy":
      return verb ? `${verb} by policy` : "by the policy";
    case "person":
      return verb ? `${verb} by the person` : "by a person";
    case "session":
      return verb ? "allowed (allowed earlier for the session)" : "allowed for the session";
    case "timeout":
      return `${verb ? "denied:" : "rejected:"} nobody answered in time`;
    case "cancelled":
      return verb ? "denied: the task ended" : "rejected when the task ended";
    default:
      return verb ?? decidedBy;
  }
}

/** A permission decision's answer in words, as the progress and the log show it. */
export function describePermissionReply(decision: Pick<PermissionDecision, "decided_by" | "reply">): string {
  return decision.decided_by ? describeDecision(decision.decided_by, decision.reply) : decision.reply === "reject" ? "denied" : decision.reply === "always" ? "allowed for the session" : "allowed";
}
