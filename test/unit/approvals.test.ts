import { describe, expect, it } from "vitest";
import { Approvals, type ElicitForm, type ElicitReply, type TaskScope } from "../../src/approvals.js";
import type { TaskEvent } from "../../src/backend.js";
import { createLogger } from "../../src/log.js";
import { PermissionPolicy, type PermissionRules } from "../../src/permissions.js";
import { Redactor } from "../../src/redact.js";

// The broker on its own, fast: the end-to-end tests (e2e-people-*.test.ts) run the same paths with
// the built server, the real OpenCode and a real MCP client.

const SECRET = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";

function broker(rules: PermissionRules, timeoutMs = 60_000) {
  return new Approvals(new PermissionPolicy(rules), timeoutMs, new Redactor([SECRET]), createLogger(new Redactor(), "error", () => undefined));
}

function scope(sessionId: string, extra: Partial<TaskScope> = {}): TaskScope & { events: TaskEvent[]; controller: AbortController } {
  const events: TaskEvent[] = [];
  const controller = new AbortController();
  return { sessionId, sessionTitle: "demo", workspacePath: "/w/repo", taskId: "task_1", signal: controller.signal, emit: (e) => events.push(e), events, controller, ...extra };
}

/** Wait until `check` answers something truthy, and answer it (bounded: about a second). */
async function eventually<T>(check: () => T, what: string): Promise<NonNullable<T>> {
  for (let i = 0; i < 200; i++) {
    const value = check();
    if (value) return value;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`still not so after 1 s: ${what}`);
}

/** Wait until the broker lists a pending request of the session (bounded). */
function pendingOf(approvals: Approvals, sessionId: string) {
  return eventually(() => {
    const p = approvals.pending(sessionId);
    return p.length ? p : undefined;
  }, `a pending request of ${sessionId}`);
}

describe("permission policy", () => {
  it("answers allow and deny kinds at once, and records who decided", async () => {
    const a = broker({ "*": "allow", edit: "deny" });
    const s = scope("cs_1");
    const task = a.forTask(s);
    expect(await task.requests.permission({ permission: "bash", patterns: ["ls"] })).toEqual({ reply: "once" });
    const denied = await task.requests.permission({ permission: "edit", patterns: ["/w/repo/src/a.ts"] });
    expect(denied.reply).toBe("reject");
    expect(denied.message).toMatch(/policy denies edit/);
    expect(await task.requests.decide({ permission: "read", patterns: [] })).toBe("once");
    expect(task.permissions.map((d) => [d.permission, d.reply, d.decided_by, d.patterns])).toEqual([
      ["bash", "once", "policy", ["ls"]],
      ["edit", "reject", "policy", ["src/a.ts"]],
      ["read", "once", "policy", []],
    ]);
    expect(s.events.filter((e) => e.type === "permission")).toHaveLength(3);
    expect(a.pending("cs_1")).toEqual([]);
  });
});

describe("asking a person through coding_respond", () => {
  it("waits, lists the request, takes exactly one answer and refuses wrong ones clearly", async () => {
    const a = broker({ "*": "allow", bash: "ask" });
    const one = a.forTask(scope("cs_1"));
    const answer = one.requests.permission({ permission: "bash", patterns: ["rm -rf build && npm publish"], metadata: { command: "rm -rf build && npm publish" } });
    const [pending] = await pendingOf(a, "cs_1");
    expect(pending).toMatchObject({ kind: "permission", permission: "bash", patterns: ["rm -rf build && npm publish"], summary: "run a command: rm -rf build && npm publish", elicited: false });
    expect(() => a.respond("cs_2", { request_id: pending!.request_id, decision: "allow" })).toThrow(/is not a request of session cs_2/);
    expect(() => a.respond("cs_1", { request_id: "req_nope", decision: "allow" })).toThrow(/unknown request_id "req_nope"/);
    expect(() => a.respond("cs_1", { request_id: pending!.request_id })).toThrow(/decision must be allow, allow_session or reject/);
    expect(a.respond("cs_1", { request_id: pending!.request_id, decision: "reject", message: "not today" })).toEqual({ answered: true, request_id: pending!.request_id, kind: "permission" });
    expect(await answer).toEqual({ reply: "reject", message: "not today" });
    expect(() => a.respond("cs_1", { request_id: pending!.request_id, decision: "allow" })).toThrow(/already answered \(by a person/);
    expect(one.permissions[0]).toMatchObject({ request_id: pending!.request_id, reply: "reject", decided_by: "person", message: "not today" });
    expect(a.pending("cs_1")).toEqual([]);
  });

  it("remembers allow_session for that session only", async () => {
    const a = broker({ "*": "allow", bash: "ask" });
    const first = a.forTask(scope("cs_1"));
    const asked = first.requests.permission({ permission: "bash", patterns: ["npm test"], always: ["npm *"] });
    const [p] = await pendingOf(a, "cs_1");
    a.respond("cs_1", { request_id: p!.request_id, decision: "allow_session" });
    expect((await asked).reply).toBe("always");
    // Same session, covered by the remembered pattern: no person needed.
    expect((await first.requests.permission({ permission: "bash", patterns: ["npm run build"] })).reply).toBe("once");
    expect(first.permissions.at(-1)?.decided_by).toBe("session");
    // Another session is asked again.
    const other = a.forTask(scope("cs_2"));
    void other.requests.permission({ permission: "bash", patterns: ["npm run build"] });
    expect((await pendingOf(a, "cs_2")).length).toBe(1);
    other.close();
  });

  it("rejects after the approval timeout, and when the task is cancelled or ends", async () => {
    const a = broker({ "*": "ask" }, 200);
    const timed = a.forTask(scope("cs_1"));
    expect(await timed.requests.permission({ permission: "webfetch", patterns: ["https://example.com"] })).toMatchObject({ reply: "reject", message: expect.stringMatching(/Nobody answered/) });
    expect(timed.permissions[0]?.decided_by).toBe("timeout");

    const b = broker({ "*": "ask" });
    const s = scope("cs_1");
    const cancelled = b.forTask(s);
    const waiting = cancelled.requests.permission({ permission: "edit", patterns: ["a.txt"] });
    await pendingOf(b, "cs_1");
    s.controller.abort();
    expect((await waiting).reply).toBe("reject");
    expect(cancelled.permissions[0]?.decided_by).toBe("cancelled");

    const ended = b.forTask(scope("cs_3"));
    const question = ended.requests.ask({ questions: [{ question: "Which?", options: [{ label: "A" }] }] });
    await pendingOf(b, "cs_3");
    ended.close();
    expect(await question).toEqual({ rejected: true });
    expect(b.pending("cs_3")).toEqual([]);
  });
});

describe("asking a person through elicitation", () => {
  it("sends a form naming the session and what is asked, redacted, and takes its answer", async () => {
    const a = broker({ "*": "allow", bash: "ask" });
    const forms: ElicitForm[] = [];
    const task = a.forTask(scope("cs_1", { elicit: async (form) => (forms.push(form), { action: "accept", content: { decision: "allow" } }) }));
    expect((await task.requests.permission({ permission: "bash", patterns: [`curl -H 'Authorization: token ${SECRET}' x`] })).reply).toBe("once");
    expect(forms[0]!.message).toMatch(/session cs_1 \("demo"\) asks for permission to run a command: curl/);
    expect(forms[0]!.message).not.toContain(SECRET);
    expect(forms[0]!.requestedSchema.properties.decision).toMatchObject({ oneOf: [{ const: "allow" }, { const: "allow_session" }, { const: "reject" }] });
    expect(task.permissions[0]).toMatchObject({ decided_by: "person", reply: "once" });
  });

  it("rejects on decline, and falls back to coding_respond when the client fails", async () => {
    const a = broker({ "*": "ask" });
    const declined = a.forTask(scope("cs_1", { elicit: async () => ({ action: "decline" }) }));
    expect((await declined.requests.permission({ permission: "bash", patterns: ["ls"] })).reply).toBe("reject");
    const failing = a.forTask(scope("cs_2", { elicit: async () => Promise.reject(new Error("client gone")) }));
    const answer = failing.requests.permission({ permission: "bash", patterns: ["ls"] });
    // The failed form is withdrawn: the request waits for coding_respond alone.
    const [p] = await eventually(() => (a.pending("cs_2")[0]?.elicited === false ? a.pending("cs_2") : undefined), "the request no longer counts as asked through the client");
    a.respond("cs_2", { request_id: p!.request_id, decision: "allow" });
    expect((await answer).reply).toBe("once");
  });

  it("maps a question's options to single or multiple choice with own words, and reads the answers back", async () => {
    const a = broker({ "*": "allow" });
    let form: ElicitForm | undefined;
    let reply: ElicitReply = { action: "accept", content: { answer_1: "Green", answer_2: ["Tests"], answer_2_own: "and docs" } };
    const task = a.forTask(scope("cs_1", { elicit: async (f) => ((form = f), reply) }));
    const answers = await task.requests.ask({
      questions: [
        { question: "Which color?", header: "Color", options: [{ label: "Green", description: "calm" }, { label: "Red" }], custom: false },
        { question: "What else?", options: [{ label: "Tests" }, { label: "Lint" }], multiple: true, custom: true },
      ],
    });
    expect(answers).toEqual({ answers: [["Green"], ["Tests", "and docs"]] });
    expect(form!.requestedSchema).toEqual({
      type: "object",
      properties: {
        answer_1: { type: "string", title: "Color", description: "Which color?", oneOf: [{ const: "Green", title: "Green: calm" }, { const: "Red", title: "Red" }] },
        answer_2: { type: "array", title: "Question 2", description: "What else?", items: { anyOf: [{ const: "Tests", title: "Tests" }, { const: "Lint", title: "Lint" }] } },
        answer_2_own: { type: "string", title: "Question 2: or in your own words", description: "What else?" },
      },
      required: ["answer_1"],
    });
    expect(task.questions[0]).toMatchObject({ answers: [["Green"], ["Tests", "and docs"]], rejected: false, decided_by: "person" });
    reply = { action: "cancel" };
    expect(await task.requests.ask({ questions: [{ question: "Sure?", options: [{ label: "Yes" }] }] })).toEqual({ rejected: true });
  });

  it("checks coding_respond's answers against the question", async () => {
    const a = broker({ "*": "allow" });
    const task = a.forTask(scope("cs_1"));
    const asked = task.requests.ask({ questions: [{ question: "Which color?", options: [{ label: "Green" }, { label: "Red" }], custom: false }] });
    const [p] = await pendingOf(a, "cs_1");
    expect(p).toMatchObject({ kind: "question", summary: "answer: Which color?" });
    expect(() => a.respond("cs_1", { request_id: p!.request_id, answers: ["Blue"] })).toThrow(
      expect.objectContaining({ message: expect.stringMatching(/"Blue" is not an option of question 1/), hint: "Choose one of: Green, Red." }),
    );
    expect(() => a.respond("cs_1", { request_id: p!.request_id, answers: ["Green", "Red"] })).toThrow(/has 1 question\(s\), but 2 answer\(s\)/);
    expect(() => a.respond("cs_1", { request_id: p!.request_id, decision: "allow" })).toThrow(/is a question/);
    a.respond("cs_1", { request_id: p!.request_id, answers: ["green"] });
    expect(await asked).toEqual({ answers: [["Green"]] });
  });

  it("refuses questions at once when the policy denies them", async () => {
    const a = broker({ "*": "allow", question: "deny" });
    const task = a.forTask(scope("cs_1"));
    expect(await task.requests.ask({ questions: [{ question: "Which?", options: [] }] })).toEqual({ rejected: true });
    expect(task.questions[0]?.decided_by).toBe("policy");
  });
});
