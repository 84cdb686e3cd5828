import { describe, expect, it } from "vitest";
import { describeDecision, describePermission, permissionPlan, questionPlan, questionSummary } from "../../src/approval-forms.js";
import type { PendingRequest } from "../../src/model.js";

// The forms and words a person sees when an agent asks; pure, so checked here directly (the broker
// that routes the requests is in approvals.test.ts).

const session = { sessionId: "cs_1", sessionTitle: "demo", workspacePath: "/w/repo" };
const view = (kind: PendingRequest["kind"]): PendingRequest => ({ request_id: "req_1", kind, summary: "", asked_at: "", expires_at: "", elicited: false });

describe("the words for who decided", () => {
  it("are the same in the progress, the log and an answer that came twice", () => {
    expect((["policy", "person", "session", "timeout", "cancelled"] as const).map((by) => [describeDecision(by, "once"), describeDecision(by, "reject"), describeDecision(by)])).toEqual([
      ["allowed by policy", "denied by policy", "by the policy"],
      ["allowed by the person", "denied by the person", "by a person"],
      ["allowed (allowed earlier for the session)", "allowed (allowed earlier for the session)", "allowed for the session"],
      ["denied: nobody answered in time", "denied: nobody answered in time", "rejected: nobody answered in time"],
      ["denied: the task ended", "denied: the task ended", "rejected when the task ended"],
    ]);
    expect(describeDecision("person", "always")).toBe("allowed for the session by the person");
  });
});

describe("the permission form", () => {
  const ask = { permission: "bash", patterns: ["npm test"], metadata: { command: "npm test" } };
  const what = describePermission(ask, ask.patterns, session.workspacePath);
  const plan = permissionPlan(view("permission"), session, ask, what, 90_000);

  it("says who asks for what, where, and when it is rejected without an answer", () => {
    expect(what).toBe("run a command: npm test");
    expect(plan.form.message).toBe('The coding agent of session cs_1 ("demo") asks for permission to run a command: npm test\nWorkspace: /w/repo\nKind: bash. Without an answer it is rejected in 90 s.');
    expect(plan.timedOut).toEqual({ reply: "reject", message: "Nobody answered this request within 90 s, so it was rejected." });
  });

  it("reads a decision from the form or coding_respond, and refuses answers that do not fit", () => {
    expect(plan.fromForm({ decision: "allow_session", message: " fine " })).toEqual({ reply: "always", message: "fine" });
    expect(plan.fromRespond({ request_id: "req_1", decision: "reject" })).toEqual({ reply: "reject", message: "The person rejected this request." });
    expect(() => plan.fromRespond({ request_id: "req_1", answers: ["yes"] })).toThrow(/is a permission request, not a question/);
    expect(() => plan.fromForm({ decision: "maybe" })).toThrow(/decision must be allow, allow_session or reject/);
  });
});

describe("the question form", () => {
  it("checks answers against the options where the agent takes nothing else", () => {
    const questions = [{ question: "Which color?", options: [{ label: "Green" }, { label: "Red" }], custom: false }];
    expect(questionSummary(questions)).toBe("answer: Which color?");
    const plan = questionPlan(view("question"), session, questions, 60_000);
    expect(plan.fromRespond({ request_id: "req_1", answers: ["green"] })).toEqual([["Green"]]);
    expect(() => plan.fromRespond({ request_id: "req_1", answers: ["Blue"] })).toThrow(/"Blue" is not an option of question 1 of req_1/);
    expect(plan.fromRespond({ request_id: "req_1", decision: "reject" })).toBeUndefined();
  });
});
