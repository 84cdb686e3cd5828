import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { agentCommand, agentInstalled } from "./support/agents.mjs";
import { escapeProbes, type EscapeProbes } from "./support/escape-probes.js";
import { claudeEnvFor, startFakeAnthropic } from "./support/fake-anthropic.mjs";
import { geminiEnvFor } from "./support/fake-gemini.mjs";
import { codexEnvFor } from "./support/fake-responses.mjs";
import { startHarness, structured, textOf, type Harness } from "./support/harness.js";

// What an ACP agent runs is confined under the default configuration (sandbox.mode on), checked with
// the real agents: `opencode acp` and Claude Code (claude-agent-acp), each against its scripted model,
// run one task that does ordinary work and attempts every escape of issue #22
// (./support/escape-probes.ts); each escape fails, the work is done. Agents whose commands coding-mcp
// cannot confine (Codex, Gemini CLI run their shell tool themselves and use no ACP client terminal)
// are refused under sandbox.mode on, with the way out.

/** The installed agents coding-mcp cannot confine; they only start here (initialize), the model is never asked. */
const UNCONFINED = ["codex", "gemini"].filter((agent) => agentInstalled(agent));
const claudeInstalled = agentInstalled("claude");
let anthropic: Awaited<ReturnType<typeof startFakeAnthropic>> | undefined;

vi.setConfig({ testTimeout: 240_000, hookTimeout: 180_000 });

let h: Harness;
let probes: EscapeProbes;

beforeAll(async () => {
  const dir = fs.mkdtempSync(path.join(fs.realpathSync(process.env.TMPDIR ?? "/tmp"), "acp-confinement-"));
  probes = await escapeProbes(dir);
  const unconfined: Record<string, unknown> = {};
  const agentEnv: Record<string, () => Record<string, string>> = {
    codex: () => codexEnvFor("http://127.0.0.1:9/v1", path.join(fs.mkdtempSync(path.join(dir, "codex-")), ".codex")),
    gemini: () => geminiEnvFor("http://127.0.0.1:9", fs.mkdtempSync(path.join(dir, "gemini-"))),
  };
  for (const agent of UNCONFINED) unconfined[agent] = { type: "acp", command: agentCommand(agent), env: agentEnv[agent]!() };
  if (claudeInstalled) {
    anthropic = await startFakeAnthropic();
    const claudeHome = fs.mkdtempSync(path.join(dir, "claude-"));
    unconfined.claude = { type: "acp", command: agentCommand("claude"), env: claudeEnvFor(anthropic.baseURL, claudeHome), mode: "default" };
  }
  h = await startHarness({
    config: {
      backends: { ocacp: { type: "acp", command: agentCommand("opencode") }, ...unconfined },
      default_backend: "ocacp",
      permissions: { "*": "allow" },
    },
    env: probes.env,
  });
});

afterAll(async () => {
  if (process.env.ACP_TEST_LOG) fs.writeFileSync(process.env.ACP_TEST_LOG, h?.stderr.join("\n") ?? "");
  await h?.close();
  await anthropic?.close();
  await probes?.close();
});

describe("opencode acp, confined through its shell", () => {
  it("does ordinary work while every escape fails, in one task", async () => {
    const session = structured(await h.call("coding_open", { title: "probe" }));
    const other = structured(await h.call("coding_open", { title: "other" }));
    h.fake.setScenario("probe", probes.steps(session.workspace_path, other.workspace_path));
    const result = structured(await h.call("code", { session_id: session.session_id, task: "Probe [[fake:probe]]" }));
    expect(result.success).toBe(true);
    expect(result.trace.tool_calls.map((c: { tool: string }) => c.tool)).toEqual(Array(7).fill("bash"));
    probes.check(session.workspace_path, other.workspace_path, h.fake.requests);
  });
});

describe.skipIf(!claudeInstalled)("Claude Code (claude-agent-acp), confined through CLAUDE_CODE_SHELL per session", () => {
  it("does ordinary work while every escape fails, in one task", async () => {
    const session = structured(await h.call("coding_open", { title: "probe", backend: "claude" }));
    const other = structured(await h.call("coding_open", { title: "other", backend: "claude" }));
    anthropic!.setScenario("probe", probes.steps(session.workspace_path, other.workspace_path));
    const result = structured(await h.call("code", { session_id: session.session_id, task: "Probe [[fake:probe]]" }));
    expect(result.success).toBe(true);
    expect(result.trace.tool_calls.map((c: { tool: string }) => c.tool)).toEqual(Array(7).fill("bash"));
    probes.check(session.workspace_path, other.workspace_path, anthropic!.requests);
  });
});

describe.skipIf(!UNCONFINED.length)(`${UNCONFINED.join(", ")}: not confinable, refused under sandbox.mode on`, () => {
  it.each(UNCONFINED)("%s: coding_open says why and what to do, and opens nothing", async (agent) => {
    const answer = await h.call("coding_open", { title: agent, backend: agent });
    expect(answer.isError).toBe(true);
    expect(textOf(answer)).toMatch(new RegExp(`backend "${agent}" \\(.+\\) runs the agent's commands itself, where coding-mcp cannot confine them`));
    expect(textOf(answer)).toContain(`backends.${agent}.sandbox: off`);
    const listed = structured(await h.call("coding_status", {}));
    expect(JSON.stringify(listed)).not.toContain(`"backend":"${agent}"`);
  });
});
