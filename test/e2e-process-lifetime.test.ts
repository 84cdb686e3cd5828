import fs from "node:fs";
import path from "node:path";
import { randomInt } from "node:crypto";
import type { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { afterEach, describe, expect, it } from "vitest";
import { agentCommand } from "./support/agents.mjs";
import { alive, startHarness, structured, until, type Harness } from "./support/harness.js";

// Nothing coding-mcp starts may outlive it, however it dies: here it is SIGKILLed (a crashing host,
// the OOM killer), which runs none of its exit code. The built server over stdio, the real OpenCode.

let h: Harness | undefined;
afterEach(async () => {
  await h?.close();
  h = undefined;
});

function codingMcpPid(harness: Harness): number {
  const pid = (harness.client.transport as StdioClientTransport).pid;
  if (!pid) throw new Error("coding-mcp is not running");
  return pid;
}

function managedPids(harness: Harness): number[] {
  return harness.stderr.flatMap((line) => {
    const m = /managed OpenCode ready at \S+ \(pid (\d+)\)/.exec(line);
    return m ? [Number(m[1])] : [];
  });
}

/** Processes whose command line contains `text` (from /proc). */
function processesWith(text: string): number[] {
  return fs.readdirSync("/proc").flatMap((name) => {
    if (!/^\d+$/.test(name)) return [];
    try {
      return fs.readFileSync(path.join("/proc", name, "cmdline"), "utf8").replaceAll("\0", " ").includes(text) ? [Number(name)] : [];
    } catch {
      return [];
    }
  });
}

function childrenOf(pid: number): number[] {
  return fs.readdirSync("/proc").flatMap((name) => {
    if (!/^\d+$/.test(name)) return [];
    try {
      const stat = fs.readFileSync(path.join("/proc", name, "stat"), "utf8");
      return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === pid ? [Number(name)] : [];
    } catch {
      return [];
    }
  });
}

describe.skipIf(process.platform !== "linux")("a coding-mcp killed with SIGKILL", () => {
  it("takes its managed OpenCode and the agent's running command with it", async () => {
    h = await startHarness();
    // A command the agent started that would run for minutes: OpenCode runs it in a session of its own.
    const marker = `299.${randomInt(100_000, 999_999)}`;
    h.fake.setScenario("sleeper", [{ tools: [{ name: "bash", args: { command: `sleep ${marker}`, description: "wait" } }] }]);
    const opened = structured(await h.call("coding_open", {}));
    structured(await h.call("code", { session_id: opened.session_id, task: "Wait [[fake:sleeper]]", background: true }));
    const [opencode] = managedPids(h);
    expect(opencode).toBeDefined();
    const command = await until(() => processesWith(`sleep ${marker}`)[0], 120_000, 200);
    const status = () => h!.call("coding_status", { session_id: opened.session_id }).then((r) => JSON.stringify(r.structuredContent));
    expect(command, command ? "" : `the agent's command did not start; coding_status: ${await status()}`).toBeDefined();

    process.kill(codingMcpPid(h), "SIGKILL");

    expect(await until(() => !alive(opencode!), 15_000)).toBe(true);
    expect(await until(() => processesWith(`sleep ${marker}`).length === 0, 15_000)).toBe(true);
  });

  it("takes its ACP agent and the command the agent is running with it", async () => {
    // `opencode acp` gets the harness's environment: its OpenCode config points at the fake model.
    h = await startHarness({ config: { backends: { ocacp: { type: "acp", command: agentCommand("opencode") } }, default_backend: "ocacp" } });
    const marker = `298.${randomInt(100_000, 999_999)}`;
    h.fake.setScenario("sleeper", [{ tools: [{ name: "bash", args: { command: `sleep ${marker}`, description: "wait" } }] }]);
    const opened = structured(await h.call("coding_open", {}));
    structured(await h.call("code", { session_id: opened.session_id, task: "Wait [[fake:sleeper]]", background: true }));
    const command = await until(() => processesWith(`sleep ${marker}`)[0], 120_000, 200);
    expect(command, "the agent's command did not start").toBeDefined();
    const agent = Number(h.stderr.flatMap((l) => /ACP agent of backend "ocacp" ready \(pid (\d+)/.exec(l)?.[1] ?? []).at(-1));
    expect(alive(agent)).toBe(true);

    process.kill(codingMcpPid(h), "SIGKILL");

    expect(await until(() => !alive(agent), 15_000)).toBe(true);
    expect(await until(() => processesWith(`sleep ${marker}`).length === 0, 15_000)).toBe(true);
  });

  it("whose watchdog died too: the next coding-mcp on the same state stops the OpenCode it left", async () => {
    h = await startHarness();
    structured(await h.call("coding_open", {}));
    const [opencode] = managedPids(h);
    expect(opencode).toBeDefined();
    const first = codingMcpPid(h);
    const watchdogs = childrenOf(first).filter((pid) => processesWith("coding-mcp-watchdog").includes(pid));
    expect(watchdogs).toHaveLength(1);
    const pidFile = path.join(h.basePath, ".coding-mcp", "opencode", `${first}.json`);
    expect(JSON.parse(fs.readFileSync(pidFile, "utf8"))).toMatchObject({ pid: opencode, owner: first });

    process.kill(watchdogs[0]!, "SIGKILL");
    process.kill(first, "SIGKILL");
    expect(await until(() => !alive(first), 10_000)).toBe(true);
    expect(alive(opencode!)).toBe(true); // left behind: nothing of the first coding-mcp runs any more

    await h.restart();
    expect(await until(() => !alive(opencode!), 30_000)).toBe(true);
    expect(h.stderr.some((l) => l.includes(`stopped the OpenCode (pid ${opencode})`))).toBe(true);
    expect(fs.existsSync(pidFile)).toBe(false);
    // The new one works, with an OpenCode of its own.
    structured(await h.call("coding_open", {}));
    expect(managedPids(h)).toHaveLength(2);
  });
});
