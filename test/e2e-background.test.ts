import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sleepers, startHarness, structured, until, type Harness } from "./support/harness.js";
import { useOwnOpencode, type OpencodeServer } from "./support/opencode-server.js";

// Tasks longer than a client will wait: code with background: true, followed with coding_status and
// stopped with coding_cancel; and a background task picked up again after coding-mcp restarts. Here
// coding-mcp uses an OpenCode the test runs itself (OPENCODE_URL), which outlives coding-mcp's restart.

let h: Harness;
let opencode: OpencodeServer;
const sleep = sleepers();

async function status(sessionId: string) {
  return structured(await h.call("coding_status", { session_id: sessionId })).sessions[0];
}

beforeAll(async () => {
  h = await startHarness();
  opencode = await useOwnOpencode(h);
  h.fake.setScenario("bg", (ctx) => {
    const steps = [
      { tools: [{ name: "bash", args: { command: `${sleep.command("2.")} && echo done > bg.txt`, description: "Work a while" } }] },
      { text: "Background work done." },
    ];
    return steps[ctx.step] ?? { text: "Done." };
  });
  h.fake.setScenario("bg-long", [{ tools: [{ name: "bash", args: { command: sleep.command("45."), description: "Work long" } }] }, { text: "Slept." }]);
  h.fake.setScenario("bg-restart", (ctx) => {
    const steps = [
      { tools: [{ name: "bash", args: { command: `${sleep.command("4.")} && echo survived > restart.txt`, description: "Work across a restart" } }] },
      { text: "Finished across the restart." },
    ];
    return steps[ctx.step] ?? { text: "Done." };
  });
});

afterAll(async () => {
  await opencode?.stop();
  await h?.close();
});

describe("background tasks", () => {
  it("answers at once, shows the task running with its tool calls, then its result", async () => {
    const opened = structured(await h.call("coding_open", {}));
    // This OpenCode was started by the test (opencode.url), not by coding-mcp: its commands are not confined, and the answers say so.
    expect(opened.confined).toBe(false);
    const answer = structured(await h.call("code", { session_id: opened.session_id, task: "Work [[fake:bg]]", background: true }));
    expect(answer.state).toBe("running");
    // Answered while the task still runs: the call did not wait for it.
    expect((await status(opened.session_id)).state).toBe("running");
    expect(answer.task_id).toMatch(/^task_/);
    expect(answer.success).toBeUndefined();

    const running = await until(async () => {
      const s = await status(opened.session_id);
      return s.state === "running" && s.task?.tool_calls.length ? s : undefined;
    }, 30_000);
    expect(running?.task.task_id).toBe(answer.task_id);
    expect(running?.task.tool_calls[0].tool).toBe("bash");

    const done = await until(async () => {
      const s = await status(opened.session_id);
      return s.state === "idle" && s.task?.state === "done" ? s : undefined;
    }, 30_000);
    expect(done?.task.result.success).toBe(true);
    expect(done?.task.result.summary).toBe("Background work done.");
    expect(done?.task.result.files_changed.map((f: { path: string }) => f.path)).toEqual(["bg.txt"]);
    expect(done?.totals.tasks).toBe(1);
    expect(done?.confined).toBe(false);
    expect(fs.readFileSync(path.join(opened.workspace_path, "bg.txt"), "utf8")).toBe("done\n");

    // All open sessions without a session_id.
    const all = structured(await h.call("coding_status", {}));
    expect(all.sessions.map((s: { session_id: string }) => s.session_id)).toContain(opened.session_id);
    structured(await h.call("coding_close", { session_id: opened.session_id }));
  });

  it("stops a background task with coding_cancel, and the session stays usable", async () => {
    const opened = structured(await h.call("coding_open", {}));
    structured(await h.call("code", { session_id: opened.session_id, task: "Long [[fake:bg-long]]", background: true }));
    expect(await until(() => sleep.running("45."), 40_000)).toBe(true);
    const cancelled = structured(await h.call("coding_cancel", { session_id: opened.session_id }));
    expect(cancelled).toEqual({ cancelled: true, state: "idle" });
    expect(await until(() => !sleep.running("45."), 2_000)).toBe(true);
    const s = await status(opened.session_id);
    expect(s.task.result.failure).toBe("cancelled");
    const again = structured(await h.call("coding_cancel", { session_id: opened.session_id }));
    expect(again.cancelled).toBe(false);
    const next = structured(await h.call("code", { session_id: opened.session_id, task: "Create next.py" }));
    expect(next.success).toBe(true);
    structured(await h.call("coding_close", { session_id: opened.session_id }));
  });

  it("picks a running task up again after coding-mcp restarts, and follows it to its result", async () => {
    const opened = structured(await h.call("coding_open", {}));
    const answer = structured(await h.call("code", { session_id: opened.session_id, task: "Survive [[fake:bg-restart]]", background: true }));
    expect(await until(() => sleep.running("4."), 40_000)).toBe(true);

    await h.restart();

    const resumed = await status(opened.session_id);
    expect(resumed.state).toBe("running");
    expect(resumed.task.task_id).toBe(answer.task_id);
    const done = await until(async () => {
      const s = await status(opened.session_id);
      return s.task?.state === "done" ? s : undefined;
    }, 30_000);
    expect(done?.task.result.success).toBe(true);
    expect(done?.task.result.summary).toBe("Finished across the restart.");
    expect(done?.task.result.files_changed.map((f: { path: string }) => f.path)).toEqual(["restart.txt"]);
    expect(fs.readFileSync(path.join(opened.workspace_path, "restart.txt"), "utf8")).toBe("survived\n");
    structured(await h.call("coding_close", { session_id: opened.session_id }));
  });
});
