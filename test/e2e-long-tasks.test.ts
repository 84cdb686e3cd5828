import fs from "node:fs";
import path from "node:path";
import { LoggingMessageNotificationSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { opencodeConfigFor } from "./support/fake-model.mjs";
import { sleepers, startHarness, structured, textOf, until, type Harness } from "./support/harness.js";

// Long tasks as a person at an MCP client lives them: live progress, cancellation, timeouts,
// permission requests, OpenCode dying mid-task, and parallel sessions. Built server over stdio,
// real opencode serve, scripted fake model.

let h: Harness;

const sleep = sleepers();

function managedPid(): number {
  const pids = h.stderr.flatMap((l) => /managed OpenCode ready at \S+ \(pid (\d+)\)/.exec(l)?.[1] ?? []).map(Number);
  return pids.at(-1)!;
}

beforeAll(async () => {
  h = await startHarness({ config: { opencode: { permissions: { "*": "allow", edit: "deny" } } } });
  // OpenCode asks before bash and edit, so coding-mcp's policy has to answer.
  const config = opencodeConfigFor(h.fake.baseURL);
  config.permission = { ...config.permission, bash: "ask", edit: "ask" };
  h.env.OPENCODE_CONFIG_CONTENT = JSON.stringify(config);
  await h.restart();
  h.fake.setScenario("three", (ctx) => {
    const steps = [
      { tools: [{ name: "bash", args: { command: "printf 'alpha\\n' > a.txt", description: "Write a.txt" } }] },
      { tools: [{ name: "read", args: { filePath: `${ctx.directory}/a.txt` } }] },
      { tools: [{ name: "glob", args: { pattern: "*.txt" } }] },
      { text: "Wrote, read and found a.txt." },
    ];
    return steps[ctx.step] ?? { text: "Done." };
  });
  h.fake.setScenario("slow", [{ tools: [sleep.tool(41.5)] }, { text: "Slept." }]);
  h.fake.setScenario("slow-timeout", [{ tools: [sleep.tool(42.5)] }, { text: "Slept." }]);
  h.fake.setScenario("stall-first", [
    { delayMs: 2500, tools: [{ name: "bash", args: { command: "echo retried > r.txt", description: "Write r.txt" } }] },
    { text: "Wrote r.txt." },
  ]);
  h.fake.setScenario("slow-busy", [{ tools: [sleep.tool(44.5)] }, { text: "Slept." }]);
  h.fake.setScenario("slow-kill", [{ tools: [sleep.tool(43.5)] }, { text: "Slept." }]);
  h.fake.setScenario("overlap", [
    { tools: [{ name: "bash", args: { command: "date +%s%N > start.txt; sleep 2; date +%s%N > end.txt", description: "Timed work" } }] },
    { text: "Timed." },
  ]);
  h.fake.setScenario("denied-edit", (ctx) => {
    const steps = [
      { tools: [{ name: "bash", args: { command: "echo allowed > bash.txt", description: "Write with bash" } }] },
      { tools: [{ name: "edit", args: { filePath: `${ctx.directory}/bash.txt`, oldString: "allowed", newString: "edited" } }] },
      { text: "Tried both." },
    ];
    return steps[ctx.step] ?? { text: "Done." };
  });
});

afterAll(async () => {
  await h?.close();
});

describe("live progress", () => {
  it("reports each tool call as it starts and ends, in order, as progress and as log messages", async () => {
    const opened = structured(await h.call("coding_open", {}));
    const logs: string[] = [];
    h.client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => {
      logs.push(String(n.params.data));
    });
    await h.client.setLoggingLevel("info");
    const progress: { progress: number; total?: number; message?: string }[] = [];
    const result = structured(
      await h.call("code", { session_id: opened.session_id, task: "Three steps [[fake:three]]" }, { onprogress: (p) => progress.push(p) }),
    );
    expect(result.success).toBe(true);
    const messages = progress.map((p) => p.message ?? "");
    expect(messages[0]).toBe("task started");
    expect(messages.slice(1, -1).map((m) => m.replace(/ \(\d+(\.\d+)? m?s\)$/, ""))).toEqual([
      "▶ bash: printf 'alpha\\n' > a.txt",
      "permission bash allowed by policy: printf 'alpha\\n' > a.txt",
      "✓ bash: printf 'alpha\\n' > a.txt",
      "▶ read a.txt",
      "✓ read a.txt",
      "▶ glob *.txt",
      "✓ glob *.txt",
    ]);
    expect(fs.readFileSync(path.join(opened.workspace_path, "a.txt"), "utf8")).toBe("alpha\n");
    expect(messages.at(-1)).toBe("task finished: 3 tool calls in " + messages.at(-1)!.split(" in ")[1]);
    expect(progress.map((p) => p.progress)).toEqual(progress.map((_, i) => i + 1));
    expect(progress.at(-1)!.total).toBe(progress.length);
    expect(logs).toEqual(messages);
    expect(result.trace.permissions).toEqual([expect.objectContaining({ permission: "bash", patterns: ["printf 'alpha\\n' > a.txt"], reply: "once", decided_by: "policy" })]);
    structured(await h.call("coding_close", { session_id: opened.session_id }));
  });
});

describe("permission requests", () => {
  it("answers each by the configured policy and records it in the trace", async () => {
    const opened = structured(await h.call("coding_open", {}));
    const result = structured(await h.call("code", { session_id: opened.session_id, task: "Try [[fake:denied-edit]]", timeout_sec: 60 }));
    expect(result.trace.permissions).toEqual([
      expect.objectContaining({ permission: "bash", patterns: ["echo allowed > bash.txt"], reply: "once", decided_by: "policy" }),
      expect.objectContaining({ permission: "edit", patterns: ["bash.txt"], reply: "reject", decided_by: "policy" }),
    ]);
    // bash ran, the edit was refused: the file is as bash wrote it.
    expect(fs.readFileSync(path.join(opened.workspace_path, "bash.txt"), "utf8")).toBe("allowed\n");
    expect(result.trace.tool_calls.map((c: { tool: string; status: string }) => `${c.tool}:${c.status}`)).toEqual(["bash:completed", "edit:error"]);
    structured(await h.call("coding_close", { session_id: opened.session_id }));
  });
});

describe("stopping a task", () => {
  it("aborts the OpenCode session when the client cancels, and the session stays usable", async () => {
    const opened = structured(await h.call("coding_open", {}));
    const controller = new AbortController();
    const call = h.call("code", { session_id: opened.session_id, task: "Wait [[fake:slow]]" }, { signal: controller.signal });
    call.catch(() => undefined);
    expect(await until(() => sleep.running(41.5), 40_000)).toBe(true);
    controller.abort();
    await expect(call).rejects.toThrow(/abort/i);
    // Within two seconds OpenCode has aborted the turn and killed the command.
    expect(await until(() => !sleep.running(41.5), 2_000)).toBe(true);
    // (This harness's policy denies edits, so the next task writes with bash.)
    const next = structured(await h.call("code", { session_id: opened.session_id, task: "Again [[fake:three]]" }));
    expect(next.success).toBe(true);
    expect(fs.readFileSync(path.join(opened.workspace_path, "a.txt"), "utf8")).toBe("alpha\n");
    structured(await h.call("coding_close", { session_id: opened.session_id }));
  });

  it("times out with the partial trace of what the agent did", async () => {
    const opened = structured(await h.call("coding_open", {}));
    const started = Date.now();
    // 20 s: a new workspace's first turn has taken over 10 s to start its command on a loaded machine.
    const call = h.call("code", { session_id: opened.session_id, task: "Wait [[fake:slow-timeout]]", timeout_sec: 20 });
    expect(await until(() => sleep.running(42.5), 20_000)).toBe(true);
    const result = structured(await call);
    expect(Date.now() - started).toBeLessThan(40_000);
    expect(result.success).toBe(false);
    expect(result.failure).toBe("timeout");
    expect(result.error).toMatch(/did not finish within 20 s/);
    expect(result.trace.tool_calls.map((c: { tool: string }) => c.tool)).toEqual(["bash"]);
    expect(await until(() => !sleep.running(42.5), 3_000)).toBe(true);
    structured(await h.call("coding_close", { session_id: opened.session_id }));
  });

  it("refuses a second task on a busy session instead of interleaving", async () => {
    const opened = structured(await h.call("coding_open", {}));
    const controller = new AbortController();
    const first = h.call("code", { session_id: opened.session_id, task: "Wait [[fake:slow-busy]]" }, { signal: controller.signal });
    first.catch(() => undefined);
    expect(await until(() => sleep.running(44.5), 40_000)).toBe(true);
    const second = await h.call("code", { session_id: opened.session_id, task: "Create x.py" });
    expect(second.isError).toBe(true);
    expect(textOf(second)).toContain("already running a task");
    controller.abort();
    await expect(first).rejects.toThrow(/abort/i);
    structured(await h.call("coding_close", { session_id: opened.session_id }));
  });
});

describe("faults and parallel work", () => {
  it("answers within seconds when OpenCode dies mid-task, and the next task works", async () => {
    const opened = structured(await h.call("coding_open", {}));
    const pid = managedPid();
    const call = h.call("code", { session_id: opened.session_id, task: "Wait [[fake:slow-kill]]" });
    expect(await until(() => sleep.running(43.5), 40_000)).toBe(true);
    const killedAt = Date.now();
    process.kill(pid, "SIGKILL");
    const result = structured(await call);
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    expect(result.success).toBe(false);
    expect(result.failure).toBe("backend_unavailable");
    expect(result.error).toMatch(/cannot reach the OpenCode server/);
    // What the agent did before OpenCode died is the partial trace; with a tool already run, no retry.
    expect(result.trace.tool_calls.map((c: { tool: string }) => c.tool)).toEqual(["bash"]);
    expect(result.attempts).toBe(1);
    // OpenCode starts each command in a session of its own, so a crash leaves it running: end it here.
    sleep.kill(43.5);
    const next = structured(await h.call("code", { session_id: opened.session_id, task: "Create recovered.py" }));
    expect(next.success).toBe(true);
    expect(managedPid()).not.toBe(pid);
    structured(await h.call("coding_close", { session_id: opened.session_id }));
  });

  it("repeats a task once OpenCode is back when it died before the agent did anything", async () => {
    const opened = structured(await h.call("coding_open", {}));
    const pid = managedPid();
    const seen = h.fake.requests.length;
    const call = h.call("code", { session_id: opened.session_id, task: "Slow start [[fake:stall-first]]" });
    const asked = () => h.fake.requests.slice(seen).some((r: { messages: unknown[] }) => JSON.stringify(r.messages).includes("[[fake:stall-first]]"));
    expect(await until(asked, 15_000)).toBe(true);
    process.kill(pid, "SIGKILL");
    const result = structured(await call);
    expect(result.success).toBe(true);
    expect(result.attempts).toBe(2);
    expect(fs.readFileSync(path.join(opened.workspace_path, "r.txt"), "utf8")).toBe("retried\n");
    expect(managedPid()).not.toBe(pid);
    structured(await h.call("coding_close", { session_id: opened.session_id }));
  });

  it("runs tasks of two sessions at the same time", async () => {
    const a = structured(await h.call("coding_open", {}));
    const b = structured(await h.call("coding_open", {}));
    const [ra, rb] = await Promise.all([
      h.call("code", { session_id: a.session_id, task: "Timed [[fake:overlap]]" }),
      h.call("code", { session_id: b.session_id, task: "Timed [[fake:overlap]]" }),
    ]);
    expect(structured(ra).success).toBe(true);
    expect(structured(rb).success).toBe(true);
    const window = (dir: string) => ["start.txt", "end.txt"].map((f) => BigInt(fs.readFileSync(path.join(dir, f), "utf8").trim()));
    const [aStart, aEnd] = window(a.workspace_path);
    const [bStart, bEnd] = window(b.workspace_path);
    // Each sleeps 2 s; the two windows overlap, so neither waited for the other.
    expect(aStart! < bEnd! && bStart! < aEnd!).toBe(true);
    for (const s of [a, b]) structured(await h.call("coding_close", { session_id: s.session_id }));
  });
});
