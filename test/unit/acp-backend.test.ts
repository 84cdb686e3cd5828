import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { allowEverything } from "../support/scripted-backend.js";
import { AcpBackend } from "../../src/acp/backend.js";
import type { Logger } from "../../src/log.js";

// The ACP backend's fault handling against scripted misbehaving agents (test/support/scripted-acp-agent.mjs):
// a hung agent, one that crashes mid-task, one that never answers, and a command that does not exist.
// The real agents are driven in the e2e-acp-*.test.ts files.

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "support", "scripted-acp-agent.mjs");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "acp-backend-test-"));
const lines: string[] = [];
const log: Logger = {
  debug: (m) => lines.push(m),
  info: (m) => lines.push(m),
  warn: (m) => lines.push(m),
  error: (m) => lines.push(m),
};
const started: AcpBackend[] = [];

// Short bounds keep the fault cases fast; the real defaults are seconds, not milliseconds.
function backend(command: string[], name = "scripted", startupTimeoutMs = 3_000): AcpBackend {
  const b = new AcpBackend({ name, command, env: process.env, cwd: dir, log, startupTimeoutMs, cancelGraceMs: 200 });
  started.push(b);
  return b;
}

const task = (b: AcpBackend, sessionId: string) =>
  b.runTask({ sessionId, directory: dir, prompt: "do it", timeoutMs: 400, ...allowEverything });

const readyPids = (name: string) => lines.flatMap((l) => new RegExp(`ACP agent of backend "${name}" ready \\(pid (\\d+)`).exec(l)?.[1] ?? []).map(Number);

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

afterAll(async () => {
  await Promise.all(started.map((b) => b.stop()));
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("ACP backend faults", () => {
  it("ends a task of a hung agent with backend_unavailable, stops it, and starts it again for the next task", async () => {
    const b = backend([process.execPath, SCRIPT, "hang"], "hung");
    const { id } = await b.openSession(dir, { title: "t" });
    const result = await task(b, id);
    expect(result.success).toBe(false);
    expect(result.failure).toBe("backend_unavailable");
    expect(result.error).toMatch(/did not answer session\/cancel within 200 ms; it was stopped/);
    const [first] = readyPids("hung");
    expect(alive(first!)).toBe(false);
    // The next task gets a new agent process (and, without session/load, a fresh agent session).
    const again = await task(b, id);
    expect(again.failure).toBe("backend_unavailable");
    expect(lines.filter((l) => l.startsWith("hung: prompt for"))).toHaveLength(2);
    expect(readyPids("hung")).toHaveLength(2);
    expect(lines.some((l) => l.includes(`agent session ${id} continues as`))).toBe(true);
  });

  it("ends a task with backend_unavailable when the agent crashes, saying how it ended", async () => {
    const b = backend([process.execPath, SCRIPT, "crash"], "crashing");
    const { id } = await b.openSession(dir, { title: "t" });
    const events: string[] = [];
    const result = await b.runTask({ sessionId: id, directory: dir, prompt: "do it", timeoutMs: 30_000, ...allowEverything, onEvent: (e) => events.push(e.type) });
    expect(result.failure).toBe("backend_unavailable");
    expect(result.error).toMatch(/ACP agent of backend "crashing" exited with code 7/);
    // No tool ran: the core may repeat the task.
    expect(result.retryable).toBe(true);
    expect(events).toEqual(["started", "finished"]);
  });

  it("names the backend and the command when the agent never answers initialize", async () => {
    const b = backend([process.execPath, SCRIPT, "silent"], "silent", 800);
    await expect(b.openSession(dir, { title: "t" })).rejects.toThrow(/backend "silent" \(command: .*scripted-acp-agent.mjs silent\) could not be started: .*did not answer initialize within 800 ms/);
    expect(readyPids("silent")).toHaveLength(0);
  });

  it("refuses a mode or a model the agent does not offer, before any prompt", async () => {
    const b = backend([process.execPath, SCRIPT, "hang"], "plain");
    const { id } = await b.openSession(dir, { title: "t" });
    // No model config option: the core refuses any model for this backend.
    expect(await b.models()).toBeUndefined();
    const result = await b.runTask({ sessionId: id, directory: dir, prompt: "do it", agent: "plan", timeoutMs: 30_000, ...allowEverything });
    expect(result.failure).toBe("agent_error");
    expect(result.error).toMatch(/backend "plain" offers no modes, so agent "plan" cannot be selected/);
    expect(lines.some((l) => l.startsWith(`plain: prompt for`))).toBe(false);
  });

  it("says which rejected request an agent ended its turn after (Codex ends the whole turn on a rejection)", async () => {
    const b = backend([process.execPath, SCRIPT, "abort"], "aborting");
    const { id } = await b.openSession(dir, { title: "t" });
    const result = await b.runTask({ sessionId: id, directory: dir, prompt: "edit", timeoutMs: 5_000, ...allowEverything, decide: async () => "reject" });
    expect(result.failure).toBe("agent_error");
    expect(result.error).toBe('the agent ended its turn with "cancelled" after its external_directory request (/etc/hosts) was rejected');
    const allowed = await b.runTask({ sessionId: id, directory: dir, prompt: "edit", timeoutMs: 5_000, ...allowEverything });
    expect(allowed.success).toBe(true);
  });

  it("names the backend and the command when it cannot start", async () => {
    const b = backend(["/nonexistent/agent-binary", "acp"], "missing");
    await expect(b.start()).rejects.toThrow('the ACP agent of backend "missing" (command: /nonexistent/agent-binary acp) could not be started: command not found: /nonexistent/agent-binary');
  });
});
