import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { createApp, type App } from "../../src/app.js";
import type { TaskEvent } from "../../src/backend.js";
import { loadConfig } from "../../src/config.js";
import { UserError } from "../../src/errors.js";
import type { PendingRequest } from "../../src/model.js";
import { ScriptedBackend, type Script } from "../support/scripted-backend.js";

/**
 * People in the loop through the session layer, on a scripted backend: requests that wait show in
 * coding_status, coding_respond answers them, the core records each once in the trace and reports it
 * once, and a cancelled task rejects what it left open. (The end-to-end tests run the same with the
 * real OpenCode and real MCP clients.)
 */

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function setup(script: Script, permissions: Record<string, string>): Promise<{ app: App; backend: ScriptedBackend; logs: string[] }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "coding-mcp-people-"));
  const file = path.join(dir, "config.yaml");
  fs.writeFileSync(
    file,
    stringify({ workspace: { base_path: path.join(dir, "workspaces") }, git: { user_name: "Test Bot", user_email: "bot@example.test" }, limits: { task_timeout_min: 1 }, permissions }),
  );
  const logs: string[] = [];
  const log = { debug: () => undefined, info: (m: string) => logs.push(m), warn: (m: string) => logs.push(m), error: (m: string) => logs.push(m) };
  const backend = new ScriptedBackend(script);
  const app = await createApp(loadConfig({ configPath: file, env: {} }), { log, env: {}, backends: () => [backend], defaultBackend: backend.name });
  cleanups.push(async () => {
    await app.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { app, backend, logs };
}

async function pendingOf(app: App, sessionId: string): Promise<PendingRequest[]> {
  for (let i = 0; i < 200; i++) {
    const [status] = await app.sessions.status(sessionId);
    if (status?.task?.pending_requests?.length) return status.task.pending_requests;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("no pending request");
}

async function doneOf(app: App, sessionId: string) {
  for (let i = 0; i < 200; i++) {
    const [status] = await app.sessions.status(sessionId);
    if (status?.task?.state === "done") return status.task.result!;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error("task did not finish");
}

const asksThenWrites: Script = () => [
  { ask: { permission: "bash", patterns: ["npm publish"], metadata: { command: "npm publish" } } },
  { question: { questions: [{ question: "Which registry?", options: [{ label: "npm" }, { label: "github" }], custom: false }] } },
  { summary: "asked" },
];

describe("requests of a task on the session layer", () => {
  it("lists waiting requests in status, takes coding_respond's answers, and records each once", async () => {
    const { app, backend } = await setup(asksThenWrites, { "*": "allow", bash: "ask" });
    const opened = await app.sessions.open({});
    const events: TaskEvent[] = [];
    const answer = app.sessions.code({ session_id: opened.session_id, task: "publish" }, { onEvent: (e) => events.push(e) });

    const [permission] = await pendingOf(app, opened.session_id);
    expect(permission).toMatchObject({ kind: "permission", permission: "bash", patterns: ["npm publish"], summary: "run a command: npm publish", elicited: false });
    await expect(app.sessions.respond("cs_missing", { request_id: permission!.request_id, decision: "allow" })).rejects.toThrow(/unknown session_id/);
    expect(await app.sessions.respond(opened.session_id, { request_id: permission!.request_id, decision: "allow" })).toEqual({
      answered: true,
      request_id: permission!.request_id,
      kind: "permission",
    });

    const [question] = await pendingOf(app, opened.session_id);
    expect(question).toMatchObject({ kind: "question", questions: [{ question: "Which registry?" }] });
    const wrong = await app.sessions.respond(opened.session_id, { request_id: question!.request_id, answers: ["pypi"] }).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(UserError);
    expect((wrong as UserError).code).toBe("invalid_answer");
    await app.sessions.respond(opened.session_id, { request_id: question!.request_id, answers: ["github"] });

    const done = await answer;
    if (done.state !== "done") throw new Error("expected a finished task");
    expect(backend.answers).toEqual(["once", { answers: [["github"]] }]);
    expect(done.result.trace.permissions).toEqual([expect.objectContaining({ request_id: permission!.request_id, reply: "once", decided_by: "person" })]);
    expect(done.result.trace.questions).toEqual([expect.objectContaining({ request_id: question!.request_id, answers: [["github"]], decided_by: "person" })]);
    // Reported once each: the core reports, not the backend.
    expect(events.filter((e) => e.type === "request").length).toBe(2);
    expect(events.filter((e) => e.type === "permission").length).toBe(1);
    expect(events.filter((e) => e.type === "question").length).toBe(1);
    const [idle] = await app.sessions.status(opened.session_id);
    expect(idle!.task?.pending_requests).toBeUndefined();
  });

  it("a cancelled background task rejects its waiting request", async () => {
    const { app, backend } = await setup(asksThenWrites, { "*": "ask" });
    const opened = await app.sessions.open({});
    await app.sessions.code({ session_id: opened.session_id, task: "publish", background: true });
    const [p] = await pendingOf(app, opened.session_id);
    expect(await app.sessions.cancel(opened.session_id)).toEqual({ cancelled: true, state: "idle" });
    const result = await doneOf(app, opened.session_id);
    expect(backend.answers[0]).toBe("reject");
    expect(result.trace.permissions).toEqual([expect.objectContaining({ request_id: p!.request_id, reply: "reject", decided_by: "cancelled" })]);
    await expect(app.sessions.respond(opened.session_id, { request_id: p!.request_id, decision: "allow" })).rejects.toThrow(/already answered \(rejected when the task ended/);
  });

  it("answers by policy without waiting for anyone", async () => {
    const { app, backend } = await setup(asksThenWrites, { "*": "allow", bash: "deny", question: "deny" });
    const opened = await app.sessions.open({});
    const done = await app.sessions.code({ session_id: opened.session_id, task: "publish" });
    if (done.state !== "done") throw new Error("expected a finished task");
    expect(backend.answers).toEqual(["reject", { rejected: true }]);
    expect(done.result.trace.permissions).toEqual([expect.objectContaining({ reply: "reject", decided_by: "policy" })]);
    expect(done.result.trace.questions).toEqual([expect.objectContaining({ rejected: true, decided_by: "policy" })]);
  });
});
