import fs from "node:fs";
import path from "node:path";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { LoggingMessageNotificationSchema, type CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHttpHarness, structured, textOf, until, type HttpHarness } from "./support/harness.js";

// People in the loop without elicitation: a client that cannot show forms starts background tasks
// whose agent needs a person; the requests wait in coding_status (task.pending_requests), are
// announced as log messages, and are answered with coding_respond, here from ANOTHER MCP session on
// the same HTTP server (the coding session is what counts). coding-mcp runs with its DEFAULT policy:
// nothing outside the workspace without a person's yes. Built server over HTTP, real opencode serve
// (whose own config allows external_directory), scripted fake model.

let h: HttpHarness;
/** Starts the tasks; declares no elicitation. */
let starter: Client;
/** Another MCP session that answers. */
let answerer: Client;
const notices: string[] = [];

async function call(client: Client, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args }, undefined, { timeout: 120_000 })) as CallToolResult;
}

interface Pending {
  request_id: string;
  kind: string;
  summary: string;
  permission?: string;
  patterns?: string[];
  questions?: { question: string; options: { label: string }[] }[];
  expires_at: string;
  elicited: boolean;
}

/** The session's pending requests, once there are `count` (bounded wait). */
async function pendingOf(sessionId: string, count = 1): Promise<Pending[]> {
  const found = await until(async () => {
    const [status] = structured(await call(answerer, "coding_status", { session_id: sessionId })).sessions;
    const pending: Pending[] = status.task?.pending_requests ?? [];
    return pending.length >= count ? pending : undefined;
  }, 90_000, 200);
  if (!found) throw new Error(`no pending request for ${sessionId} within 90 s:\n${h.stderr.slice(-30).join("\n")}`);
  return found;
}

/** The session's last task once it is done (bounded wait). */
async function finished(sessionId: string) {
  const task = await until(async () => {
    const [status] = structured(await call(answerer, "coding_status", { session_id: sessionId })).sessions;
    return status.task?.state === "done" ? status.task : undefined;
  }, 90_000, 200);
  if (!task) throw new Error(`task of ${sessionId} did not finish within 90 s`);
  return task;
}

beforeAll(async () => {
  h = await startHttpHarness({ config: { limits: { approval_timeout_sec: 120 } } });
  starter = (await h.connect("streamable")).client;
  answerer = (await h.connect("streamable")).client;
  starter.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
    notices.push(String(n.params.data));
  });
  await starter.setLoggingLevel("info");
});

afterAll(async () => {
  await h?.close();
});

describe("requests that wait for coding_respond", () => {
  it("two sessions asking at once: each answer reaches its own request, from another MCP session", async () => {
    const outside = path.join(h.dir, "outside");
    fs.mkdirSync(outside, { recursive: true });
    const a = structured(await call(starter, "coding_open", {}));
    const b = structured(await call(starter, "coding_open", {}));
    const targetA = path.join(outside, "a", "from-a.txt");
    const targetB = path.join(outside, "b", "from-b.txt");
    fs.mkdirSync(path.dirname(targetA));
    fs.mkdirSync(path.dirname(targetB));
    for (const [s, target] of [[a, targetA], [b, targetB]] as const) {
      const started = structured(await call(starter, "code", { session_id: s.session_id, task: `Write ${target} [[fake:outside]]`, background: true }));
      expect(started.state).toBe("running");
    }
    const [pa] = await pendingOf(a.session_id);
    const [pb] = await pendingOf(b.session_id);
    expect(pa).toMatchObject({
      kind: "permission",
      permission: "external_directory",
      patterns: [`${path.dirname(targetA)}/*`],
      summary: `reach outside its workspace: ${path.dirname(targetA)}/* (${targetA})`,
      elicited: false,
    });
    expect(pb!.patterns).toEqual([`${path.dirname(targetB)}/*`]);
    expect(pa!.request_id).not.toBe(pb!.request_id);
    expect(textOf(await call(answerer, "coding_status", { session_id: a.session_id }))).toContain(`waiting for a person: ${pa!.request_id}`);

    // A request answered through the wrong session is refused, and stays pending.
    const wrong = await call(answerer, "coding_respond", { session_id: b.session_id, request_id: pa!.request_id, decision: "allow" });
    expect(wrong.isError).toBe(true);
    expect(textOf(wrong)).toContain(`request ${pa!.request_id} is not a request of session ${b.session_id}`);

    expect(structured(await call(answerer, "coding_respond", { session_id: a.session_id, request_id: pa!.request_id, decision: "allow" }))).toEqual({
      answered: true,
      request_id: pa!.request_id,
      kind: "permission",
    });
    structured(await call(answerer, "coding_respond", { session_id: b.session_id, request_id: pb!.request_id, decision: "reject", message: "Stay in your workspace" }));

    const doneA = await finished(a.session_id);
    const doneB = await finished(b.session_id);
    expect(fs.readFileSync(targetA, "utf8")).toBe("written from outside the workspace\n");
    expect(fs.existsSync(targetB)).toBe(false);
    expect(doneA.result.trace.permissions).toEqual([expect.objectContaining({ request_id: pa!.request_id, reply: "once", decided_by: "person" })]);
    expect(doneB.result.trace.permissions).toEqual([expect.objectContaining({ request_id: pb!.request_id, reply: "reject", decided_by: "person", message: "Stay in your workspace" })]);

    // Exactly once: a second answer, and an unknown id, are clear errors.
    const twice = await call(answerer, "coding_respond", { session_id: a.session_id, request_id: pa!.request_id, decision: "reject" });
    expect(twice.isError).toBe(true);
    expect(textOf(twice)).toMatch(new RegExp(`request ${pa!.request_id} was already answered \\(by a person`));
    const unknown = await call(answerer, "coding_respond", { session_id: a.session_id, request_id: "req_000000000000", decision: "allow" });
    expect(unknown.isError).toBe(true);
    expect(textOf(unknown)).toContain('unknown request_id "req_000000000000"');

    // The client that started the tasks was told, though its calls had long answered.
    expect(notices).toContainEqual(expect.stringMatching(new RegExp(`^waiting for a person \\(permission ${pa!.request_id}\\): reach outside its workspace`)));
    for (const s of [a, b]) structured(await call(starter, "coding_close", { session_id: s.session_id }));
  }, 300_000);

  it("answers a question of a background task with coding_respond", async () => {
    const s = structured(await call(starter, "coding_open", {}));
    structured(await call(starter, "code", { session_id: s.session_id, task: "Ask [[fake:question]]", background: true }));
    const [p] = await pendingOf(s.session_id);
    expect(p).toMatchObject({
      kind: "question",
      summary: "answer: Which color should the button be?",
      questions: [expect.objectContaining({ question: "Which color should the button be?", options: [expect.objectContaining({ label: "Green" }), expect.objectContaining({ label: "Red" })] })],
    });
    const bad = await call(answerer, "coding_respond", { session_id: s.session_id, request_id: p!.request_id, decision: "allow" });
    expect(textOf(bad)).toContain("is a question");
    structured(await call(answerer, "coding_respond", { session_id: s.session_id, request_id: p!.request_id, answers: ["red"] }));
    const done = await finished(s.session_id);
    expect(done.result.summary).toBe("The person chose: Red");
    expect(done.result.trace.questions).toEqual([expect.objectContaining({ answers: [["Red"]], decided_by: "person" })]);
    structured(await call(starter, "coding_close", { session_id: s.session_id }));
  }, 240_000);

  it("a cancelled task rejects its pending requests", async () => {
    const s = structured(await call(starter, "coding_open", {}));
    const target = path.join(h.dir, "outside-cancel", "never.txt");
    fs.mkdirSync(path.dirname(target), { recursive: true });
    structured(await call(starter, "code", { session_id: s.session_id, task: `Write ${target} [[fake:outside]]`, background: true }));
    const [p] = await pendingOf(s.session_id);
    expect(structured(await call(starter, "coding_cancel", { session_id: s.session_id })).cancelled).toBe(true);
    const done = await finished(s.session_id);
    expect(done.result.trace.permissions).toEqual([expect.objectContaining({ request_id: p!.request_id, reply: "reject", decided_by: "cancelled" })]);
    expect(fs.existsSync(target)).toBe(false);
    const late = await call(answerer, "coding_respond", { session_id: s.session_id, request_id: p!.request_id, decision: "allow" });
    expect(textOf(late)).toMatch(/already answered \(rejected when the task ended/);
    structured(await call(starter, "coding_close", { session_id: s.session_id }));
  }, 240_000);
});
