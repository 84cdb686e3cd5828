import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { agentCommand, agentInstalled, suiteName } from "./support/agents.mjs";
import { geminiEnvFor, startFakeGemini } from "./support/fake-gemini.mjs";
import { git, sleepers, startHarness, structured, until, type Harness } from "./support/harness.js";

// Gemini CLI as a coding-mcp backend: the built coding-mcp (SDK Client over stdio) runs `gemini --acp`
// (installed by scripts/install-agents.sh, as .ci/run does) against a scripted Gemini API on loopback.
// The session mode is `default`, so Gemini CLI asks before every edit and command, and coding-mcp's
// policy answers.

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

const installed = agentInstalled("gemini");
let h: Harness;
let fake: Awaited<ReturnType<typeof startFakeGemini>>;
let session: { session_id: string; workspace_path: string; backend: string };
/** The agent's own state (its config, sessions, logs), removed afterwards. */
let home: string | undefined;
const TOKEN = `tok-${randomBytes(16).toString("hex")}`;
const sleep = sleepers();
const SCRIPT = "mkdir -p src && printf 'beta\\n' > src/b.txt && cat a.txt";

beforeAll(async () => {
  if (!installed) return;
  fake = await startFakeGemini();
  home = fs.mkdtempSync(path.join(fs.realpathSync(process.env.TMPDIR ?? "/tmp"), "gemini-home-"));
  h = await startHarness({
    config: {
      // This agent's commands cannot be confined by coding-mcp (README, "Confinement"): its protocol is tested unconfined.
      backends: { gemini: { type: "acp", command: agentCommand("gemini"), env: geminiEnvFor(fake.baseURL, home), mode: "default", sandbox: "off" } },
      default_backend: "gemini",
      permissions: { "*": "allow" },
    },
    env: { GITHUB_TOKEN: TOKEN },
  });
  fake.setScenario("three", (ctx) =>
    [
      { reasoning: "Write a.txt, then b.txt with a command.", tools: [{ name: "write", args: { filePath: `${ctx.directory}/a.txt`, content: "alpha\n" } }] },
      { tools: [{ name: "bash", args: { command: SCRIPT, description: "Write b.txt" } }] },
      { tools: [{ name: "read", args: { filePath: `${ctx.directory}/src/b.txt` } }] },
      { text: `Wrote a.txt and src/b.txt; a.txt reads: ${ctx.toolResults[1]?.trim()}; b.txt reads: ${ctx.toolResults[2]?.trim()}` },
    ][ctx.step] ?? { text: "Done." },
  );
  fake.setScenario("env", [{ tools: [{ name: "bash", args: { command: "env > env.txt", description: "Environment" } }] }, { text: "Saved." }]);
  fake.setScenario("slow", [{ tools: [{ name: "bash", args: { command: sleep.command(7), description: "Wait" } }] }, { text: "Slept." }]);
  fake.setScenario("touch", [{ tools: [{ name: "bash", args: { command: "echo again > again.txt", description: "Write again.txt" } }] }, { text: "Wrote again.txt." }]);
  session = structured(await h.call("coding_open", { title: "gemini" }));
});

afterAll(async () => {
  if (!installed) return;
  if (process.env.ACP_TEST_LOG) fs.writeFileSync(process.env.ACP_TEST_LOG, h?.stderr.join("\n") ?? "");
  sleep.kill(7);
  await h?.close();
  await fake?.close();
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

describe.skipIf(!installed)(suiteName("gemini", "Gemini CLI over ACP (gemini --acp)"), () => {
  it("runs a multi-step task with progress per tool call, each permission answered by the policy, and commits it", async () => {
    expect(session.backend).toBe("gemini");
    const progress: string[] = [];
    const result = structured(
      await h.call("code", { session_id: session.session_id, task: "Three steps [[fake:three]]" }, { onprogress: (p) => progress.push(p.message ?? "") }),
    );
    expect(result.success).toBe(true);
    expect(fs.readFileSync(path.join(session.workspace_path, "a.txt"), "utf8")).toBe("alpha\n");
    expect(fs.readFileSync(path.join(session.workspace_path, "src/b.txt"), "utf8")).toBe("beta\n");
    expect(result.summary).toBe("Wrote a.txt and src/b.txt; a.txt reads: alpha; b.txt reads: beta");
    expect(result.files_changed.map((f: { path: string; status: string }) => `${f.status} ${f.path}`)).toEqual(["added a.txt", "added src/b.txt"]);
    expect(result.trace.tool_calls.map((c: { tool: string; status: string }) => `${c.tool}:${c.status}`)).toEqual(["edit:completed", "bash:completed", "read:completed"]);
    expect(result.trace.permissions).toMatchObject([
      { permission: "edit", patterns: ["a.txt"], reply: "once", decided_by: "policy" },
      { permission: "bash", patterns: [SCRIPT], reply: "once", decided_by: "policy" },
    ]);
    expect(result.trace.reasoning.join("\n")).toContain("Write a.txt");
    // Gemini CLI sends no usage but sums the turn's tokens in _meta.quota (the fake's four replies,
    // 100 in and 10 out each); it reports no cost: unknown, not 0.
    expect(result.trace.tokens).toMatchObject({ input: 400, output: 40 });
    expect(result.trace.unknown).toEqual(["cost"]);
    expect(progress.map((m) => m.replace(/ \(\d+(\.\d+)? m?s\)$/, ""))).toEqual([
      "task started",
      "▶ edit Writing to a.txt",
      "permission edit allowed by policy: a.txt",
      "✓ edit Writing to a.txt",
      `▶ bash: ${SCRIPT}`,
      `permission bash allowed by policy: ${SCRIPT}`,
      `✓ bash: ${SCRIPT}`,
      expect.stringMatching(/^▶ read .*b\.txt$/),
      expect.stringMatching(/^✓ read .*b\.txt$/),
      expect.stringMatching(/^task finished: 3 tool calls in /),
    ]);
    const commit = structured(await h.call("coding_commit", { session_id: session.session_id, message: "Add a and b" }));
    expect(commit.commit_hash).toBe(git(session.workspace_path, "rev-parse", "HEAD"));
    expect(git(session.workspace_path, "show", "--name-only", "--format=%s", "HEAD")).toBe("Add a and b\n\na.txt\nsrc/b.txt");
  });

  it("gives Gemini CLI an environment without the git token", async () => {
    const result = structured(await h.call("code", { session_id: session.session_id, task: "Show [[fake:env]]" }));
    expect(result.success).toBe(true);
    const env = fs.readFileSync(path.join(session.workspace_path, "env.txt"), "utf8");
    expect(env).toContain("GOOGLE_GEMINI_BASE_URL=");
    expect(env).not.toContain(TOKEN);
    expect(env).not.toMatch(/^GITHUB_TOKEN=/m);
  });

  it("stops the running command when the client cancels, and the session goes on", async () => {
    const controller = new AbortController();
    const call = h.call("code", { session_id: session.session_id, task: "Wait [[fake:slow]]" }, { signal: controller.signal });
    call.catch(() => undefined);
    expect(await until(() => sleep.running(7), 30_000)).toBe(true);
    controller.abort();
    await expect(call).rejects.toThrow(/abort/i);
    expect(await until(() => !sleep.running(7), 10_000)).toBe(true);
    const next = structured(await h.call("code", { session_id: session.session_id, task: "Again [[fake:touch]]" }));
    expect(next.success).toBe(true);
    expect(fs.readFileSync(path.join(session.workspace_path, "again.txt"), "utf8")).toBe("again\n");
    const closed = structured(await h.call("coding_close", { session_id: session.session_id }));
    // The cancelled task came back without _meta.quota: the session's token sum is a lower bound.
    expect(closed.totals.unknown).toEqual(["tokens", "cost"]);
    expect(closed.totals.tokens.input).toBeGreaterThanOrEqual(400);
  });
});
