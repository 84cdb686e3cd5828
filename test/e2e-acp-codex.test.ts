import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { agentCommand, agentInstalled, suiteName } from "./support/agents.mjs";
import { codexEnvFor, startFakeResponses } from "./support/fake-responses.mjs";
import { git, processRunning, sleepers, startHarness, structured, until, type Harness } from "./support/harness.js";

// Codex as a coding-mcp backend: the built coding-mcp (SDK Client over stdio) runs codex-acp
// (installed by scripts/install-agents.sh, as .ci/run does) against a scripted OpenAI Responses API
// on loopback. CODEX_HOME/config.toml says approval_policy = "untrusted", so Codex asks before every
// edit and every command that is not read-only, and coding-mcp's policy answers.

vi.setConfig({ testTimeout: 120_000, hookTimeout: 120_000 });

const installed = agentInstalled("codex");
let h: Harness;
let fake: Awaited<ReturnType<typeof startFakeResponses>>;
let session: { session_id: string; workspace_path: string; backend: string };
/** The agent's own state (its config, sessions, logs), removed afterwards. */
let home: string | undefined;
const TOKEN = `tok-${randomBytes(16).toString("hex")}`;
const sleep = sleepers();

beforeAll(async () => {
  if (!installed) return;
  fake = await startFakeResponses();
  home = fs.mkdtempSync(path.join(fs.realpathSync(process.env.TMPDIR ?? "/tmp"), "codex-home-"));
  h = await startHarness({
    config: {
      // This agent's commands cannot be confined by coding-mcp (README, "Confinement"): its protocol is tested unconfined.
      backends: { codex: { type: "acp", command: agentCommand("codex"), env: codexEnvFor(fake.baseURL, path.join(home, ".codex"), { approvalPolicy: "untrusted" }), sandbox: "off" } },
      default_backend: "codex",
      permissions: { "*": "allow", external_directory: "deny" },
    },
    env: { GITHUB_TOKEN: TOKEN },
  });
  fake.setScenario("three", (ctx) =>
    [
      { reasoning: "Write a.txt, then b.txt with a command.", tools: [{ name: "write", args: { filePath: `${ctx.directory}/a.txt`, content: "alpha\n" } }] },
      { tools: [{ name: "bash", args: { command: "mkdir -p src && printf 'beta\\n' > src/b.txt && cat a.txt" } }] },
      { text: `Wrote a.txt and src/b.txt; a.txt reads: ${/Output:\n([\s\S]*)/.exec(ctx.toolResults.at(-1) ?? "")?.[1]?.trim()}` },
    ][ctx.step] ?? { text: "Done." },
  );
  fake.setScenario("outside", [{ tools: [{ name: "write", args: { filePath: path.join(h.dir, "outside.txt"), content: "escaped\n" } }] }, { text: "Tried." }]);
  fake.setScenario("env", [{ tools: [{ name: "bash", args: { command: "env > env.txt" } }] }, { text: "Saved." }]);
  // exec_command hands a command still running after yield_time_ms back to the model and lets it run on: wait the longest it allows.
  fake.setScenario("slow", [{ tools: [{ name: "bash", args: { command: sleep.command(6), timeout: 30_000 } }] }, { text: "Slept." }]);
  fake.setScenario("touch", [{ tools: [{ name: "bash", args: { command: "echo again > again.txt" } }] }, { text: "Wrote again.txt." }]);
  session = structured(await h.call("coding_open", { title: "codex" }));
});

afterAll(async () => {
  if (!installed) return;
  if (process.env.ACP_TEST_LOG) fs.writeFileSync(process.env.ACP_TEST_LOG, h?.stderr.join("\n") ?? "");
  sleep.kill(6);
  await h?.close();
  await fake?.close();
  if (home) fs.rmSync(home, { recursive: true, force: true });
});

describe.skipIf(!installed)(suiteName("codex", "Codex over ACP (codex-acp)"), () => {
  it("runs a multi-step task with progress per tool call, each permission answered by the policy, and commits it", async () => {
    expect(session.backend).toBe("codex");
    const progress: string[] = [];
    const result = structured(
      await h.call("code", { session_id: session.session_id, task: "Three steps [[fake:three]]" }, { onprogress: (p) => progress.push(p.message ?? "") }),
    );
    expect(result.success).toBe(true);
    expect(fs.readFileSync(path.join(session.workspace_path, "a.txt"), "utf8")).toBe("alpha\n");
    expect(fs.readFileSync(path.join(session.workspace_path, "src/b.txt"), "utf8")).toBe("beta\n");
    expect(result.summary).toBe("Wrote a.txt and src/b.txt; a.txt reads: alpha");
    expect(result.files_changed.map((f: { path: string; status: string }) => `${f.status} ${f.path}`)).toEqual(["added a.txt", "added src/b.txt"]);
    // codex-acp 0.16.0 now and then never reports the end of a quick command (no tool_call_update
    // "completed"): the call then ends with the turn as "unreported", says so, and keeps what output came.
    const [edit, bash] = result.trace.tool_calls;
    expect(result.trace.tool_calls).toHaveLength(2);
    expect(`${edit.tool}:${edit.status}`).toBe("edit:completed");
    expect(bash.tool).toBe("bash");
    if (bash.status === "completed") expect(bash.output_preview).toContain("alpha");
    else expect(bash).toMatchObject({ status: "unreported", note: expect.stringContaining("without it reporting how this call ended") });
    // The shell Codex wraps a command in (/bin/bash -lc) is not part of what it asked to run.
    expect(bash.input.command).toBe("mkdir -p src && printf 'beta\\n' > src/b.txt && cat a.txt");
    expect(result.trace.permissions).toMatchObject([
      { permission: "edit", patterns: ["a.txt"], reply: "once", decided_by: "policy" },
      { permission: "bash", patterns: ["mkdir -p src && printf 'beta\\n' > src/b.txt && cat a.txt"], reply: "once", decided_by: "policy" },
    ]);
    expect(result.trace.reasoning[0]).toContain("Write a.txt");
    // Codex reports neither the turn's tokens (no usage in the prompt result) nor a cost: unknown, not 0.
    expect(result.trace.unknown).toEqual(["tokens", "cost"]);
    // Durations vary: each "(12 ms)" is left out, at the line's end or before what it says about the call.
    expect(progress.map((m) => m.replace(/ \(\d+(?:\.\d+)? m?s\)(: |$)/, "$1"))).toEqual([
      "task started",
      expect.stringMatching(/^▶ edit Edit .*a\.txt$/),
      "permission edit allowed by policy: a.txt",
      expect.stringMatching(/^✓ edit Edit .*a\.txt$/),
      "▶ bash: mkdir -p src && printf 'beta\\n' > src/b.txt && cat a.txt",
      "permission bash allowed by policy: mkdir -p src && printf 'beta\\n' > src/b.txt && cat a.txt",
      `${bash.status === "completed" ? "✓" : "?"} bash: mkdir -p src && printf 'beta\\n' > src/b.txt && cat a.txt${bash.status === "completed" ? "" : `: ${bash.note}`}`,
      expect.stringMatching(/^task finished: 2 tool calls in /),
    ]);
    const commit = structured(await h.call("coding_commit", { session_id: session.session_id, message: "Add a and b" }));
    expect(commit.commit_hash).toBe(git(session.workspace_path, "rev-parse", "HEAD"));
    expect(git(session.workspace_path, "show", "--name-only", "--format=%s", "HEAD")).toBe("Add a and b\n\na.txt\nsrc/b.txt");
  });

  it("refuses a write outside the workspace (external_directory denied by the policy)", async () => {
    const result = structured(await h.call("code", { session_id: session.session_id, task: "Escape [[fake:outside]]" }));
    expect(result.trace.permissions).toMatchObject([{ permission: "external_directory", patterns: [path.join(h.dir, "outside.txt")], reply: "reject", decided_by: "policy" }]);
    expect(fs.existsSync(path.join(h.dir, "outside.txt"))).toBe(false);
    // Codex's only way to refuse ("abort") ends the whole turn, so the task fails and says why.
    expect(result.success).toBe(false);
    expect(result.failure).toBe("agent_error");
    expect(result.error).toBe(`the agent ended its turn with "cancelled" after its external_directory request (${path.join(h.dir, "outside.txt")}) was rejected`);
  });

  it("gives Codex an environment without the git token", async () => {
    const result = structured(await h.call("code", { session_id: session.session_id, task: "Show [[fake:env]]" }));
    expect(result.success).toBe(true);
    const env = fs.readFileSync(path.join(session.workspace_path, "env.txt"), "utf8");
    expect(env).toContain("CODEX_HOME=");
    expect(env).not.toContain(TOKEN);
    expect(env).not.toMatch(/^GITHUB_TOKEN=/m);
  });

  it("stops the command Codex leaves running after a cancel, and the session goes on", async () => {
    const controller = new AbortController();
    const call = h.call("code", { session_id: session.session_id, task: "Wait [[fake:slow]]" }, { signal: controller.signal });
    call.catch(() => undefined);
    // The sleep itself, not the login shell still starting it (a cancel then stops the shell).
    const sleeping = () => processRunning(`^${sleep.command(6)}$`);
    expect(await until(sleeping, 30_000)).toBe(true);
    controller.abort();
    await expect(call).rejects.toThrow(/abort/i);
    // Codex answers the cancel at once but its command runs on: coding-mcp stops the agent with it.
    expect(await until(() => h.stderr.some((l) => /backend "codex" left a command running after the cancel; stopping the agent/.test(l)), 15_000)).toBe(true);
    expect(await until(() => !sleeping() && !sleep.running(6), 10_000)).toBe(true);
    const next = structured(await h.call("code", { session_id: session.session_id, task: "Again [[fake:touch]]" }));
    expect(next.success).toBe(true);
    expect(fs.readFileSync(path.join(session.workspace_path, "again.txt"), "utf8")).toBe("again\n");
    const closed = structured(await h.call("coding_close", { session_id: session.session_id }));
    expect(closed.totals.unknown).toEqual(["tokens", "cost"]);
  });
});
