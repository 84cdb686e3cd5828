import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { agentCommand, agentInstalled, suiteName } from "./support/agents.mjs";
import { claudeEnvFor, startFakeAnthropic } from "./support/fake-anthropic.mjs";
import { git, processRunning, startHarness, structured, until, type Harness } from "./support/harness.js";

// Claude Code as a coding-mcp backend: the built coding-mcp (SDK Client over stdio) runs
// claude-agent-acp (installed by scripts/install-agents.sh, as .ci/run does) against a scripted
// Anthropic Messages API on loopback. The session mode is `default`, so Claude Code asks before every
// edit and command, and coding-mcp's policy answers.

vi.setConfig({ testTimeout: 240_000, hookTimeout: 180_000 });

const installed = agentInstalled("claude");
let h: Harness;
let fake: Awaited<ReturnType<typeof startFakeAnthropic>>;
let session: { session_id: string; workspace_path: string; backend: string };
const RUN = String(Math.floor(Math.random() * 9000) + 1000);
const TOKEN = `tok-${randomBytes(16).toString("hex")}`;
// Claude Code refuses a plain long `sleep`, so the long command is a Python one, found by its marker argument.
const SLOW = `python3 -c "import time; time.sleep(60)" slow-${RUN}`;
const sleepRunning = () => processRunning(`slow-${RUN}`);

beforeAll(async () => {
  if (!installed) return;
  fake = await startFakeAnthropic();
  const home = fs.mkdtempSync(path.join(fs.realpathSync(process.env.TMPDIR ?? "/tmp"), "claude-home-"));
  h = await startHarness({
    config: {
      // The protocol on its own, unconfined; its confinement is tested in e2e-acp-confinement.
      backends: { claude: { type: "acp", command: agentCommand("claude"), env: claudeEnvFor(fake.baseURL, home), mode: "default", sandbox: "off" } },
      default_backend: "claude",
      permissions: { "*": "allow", external_directory: "deny" },
    },
    env: { GITHUB_TOKEN: TOKEN },
  });
  fake.setScenario("outside", [{ tools: [{ name: "write", args: { filePath: path.join(h.dir, "outside.txt"), content: "escaped\n" } }] }, { text: "Tried." }]);
  fake.setScenario("env", [{ tools: [{ name: "bash", args: { command: "env > env.txt", description: "Environment" } }] }, { text: "Saved." }]);
  fake.setScenario("slow", [{ tools: [{ name: "bash", args: { command: SLOW, description: "Wait" } }] }, { text: "Slept." }]);
  session = structured(await h.call("coding_open", { title: "claude" }));
});

afterAll(async () => {
  if (!installed) return;
  if (process.env.ACP_TEST_LOG) fs.writeFileSync(process.env.ACP_TEST_LOG, h?.stderr.join("\n") ?? "");
  try {
    execFileSync("pkill", ["-f", `slow-${RUN}`]);
  } catch {
    // none left
  }
  await h?.close();
  await fake?.close();
});

describe.skipIf(!installed)(suiteName("claude", "Claude Code over ACP (claude-agent-acp)"), () => {
  it("writes and runs a file with progress per tool call, each permission answered by the policy", async () => {
    expect(session.backend).toBe("claude");
    const progress: string[] = [];
    const result = structured(
      await h.call("code", { session_id: session.session_id, task: "Create fizzbuzz.py and run it" }, { onprogress: (p) => progress.push(p.message ?? "") }),
    );
    expect(result.success).toBe(true);
    const file = fs.readFileSync(path.join(session.workspace_path, "fizzbuzz.py"), "utf8");
    expect(file).toContain("FizzBuzz");
    expect(result.files_changed).toEqual([{ path: "fizzbuzz.py", status: "added", additions: file.split("\n").length - 1, deletions: 0 }]);
    expect(result.trace.tool_calls.map((c: { tool: string; status: string }) => `${c.tool}:${c.status}`)).toEqual(["write:completed", "bash:completed"]);
    expect(result.trace.tool_calls[1].output_preview).toContain("FizzBuzz");
    expect(result.trace.permissions).toMatchObject([
      { permission: "edit", patterns: ["fizzbuzz.py"], reply: "once", decided_by: "policy" },
      { permission: "bash", patterns: ["python3 fizzbuzz.py | head -n 15"], reply: "once", decided_by: "policy" },
    ]);
    expect(result.summary).toMatch(/^Created fizzbuzz.py and checked it: 1 \/ 2 \/ Fizz/);
    // Claude Code reports the whole turn's tokens and the cost.
    expect(result.trace.tokens.input).toBeGreaterThan(0);
    expect(result.trace.cost).toBeGreaterThan(0);
    expect(result.trace.reasoning[0]).toContain("fizzbuzz.py");
    expect(progress.map((m) => m.replace(/ \(\d+(\.\d+)? m?s\)$/, ""))).toEqual([
      "task started",
      expect.stringMatching(/^▶ write /),
      "permission edit allowed by policy: fizzbuzz.py",
      expect.stringMatching(/^✓ write /),
      "▶ bash: python3 fizzbuzz.py | head -n 15",
      "permission bash allowed by policy: python3 fizzbuzz.py | head -n 15",
      "✓ bash: python3 fizzbuzz.py | head -n 15",
      expect.stringMatching(/^task finished: 2 tool calls in /),
    ]);
    const commit = structured(await h.call("coding_commit", { session_id: session.session_id, message: "Add fizzbuzz" }));
    expect(commit.commit_hash).toBe(git(session.workspace_path, "rev-parse", "HEAD"));
    expect(git(session.workspace_path, "show", "--name-only", "--format=%s", "HEAD")).toBe("Add fizzbuzz\n\nfizzbuzz.py");
  });

  it("refuses a write outside the workspace (external_directory denied by the policy)", async () => {
    const result = structured(await h.call("code", { session_id: session.session_id, task: "Escape [[fake:outside]]" }));
    expect(result.trace.permissions).toMatchObject([{ permission: "external_directory", patterns: [path.join(h.dir, "outside.txt")], reply: "reject", decided_by: "policy" }]);
    expect(fs.existsSync(path.join(h.dir, "outside.txt"))).toBe(false);
    expect(result.trace.tool_calls.map((c: { tool: string; status: string }) => `${c.tool}:${c.status}`)).toEqual(["write:error"]);
  });

  it("gives Claude Code an environment without the git token", async () => {
    const result = structured(await h.call("code", { session_id: session.session_id, task: "Show [[fake:env]]" }));
    expect(result.success).toBe(true);
    const env = fs.readFileSync(path.join(session.workspace_path, "env.txt"), "utf8");
    expect(env).toContain("ANTHROPIC_BASE_URL=");
    expect(env).not.toContain(TOKEN);
    expect(env).not.toMatch(/^GITHUB_TOKEN=/m);
  });

  it("stops the running command when the client cancels, and the session goes on", async () => {
    const controller = new AbortController();
    const call = h.call("code", { session_id: session.session_id, task: "Wait [[fake:slow]]" }, { signal: controller.signal });
    call.catch(() => undefined);
    expect(await until(sleepRunning, 60_000)).toBe(true);
    controller.abort();
    await expect(call).rejects.toThrow(/abort/i);
    expect(await until(() => !sleepRunning(), 10_000)).toBe(true);
    fs.rmSync(path.join(session.workspace_path, "fizzbuzz.py"));
    const next = structured(await h.call("code", { session_id: session.session_id, task: "Create fizzbuzz.py again" }));
    expect(next.success).toBe(true);
    expect(fs.existsSync(path.join(session.workspace_path, "fizzbuzz.py"))).toBe(true);
    const closed = structured(await h.call("coding_close", { session_id: session.session_id }));
    expect(closed.totals.cost).toBeGreaterThan(0);
  });
});
