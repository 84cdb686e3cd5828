import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { agentCommand } from "./support/agents.mjs";
import { opencodeConfigFor } from "./support/fake-model.mjs";
import { alive, git, makeBareRemote, sleepers, startHarness, structured, textOf, until, type Harness } from "./support/harness.js";

// An ACP backend end to end: the built coding-mcp (SDK Client over stdio) with a `backends` entry
// that runs OpenCode's own ACP server (`opencode acp`) against the scripted OpenAI-compatible fake.
// One coding-mcp and one agent process serve every case here, as in real use.

let h: Harness;
/** The session most cases share: one agent session, as a client working on one task after another would. */
let shared: { session_id: string; workspace_path: string; backend: string; backend_session_id: string };
const sleep = sleepers();

const TOKEN = `tok-${randomBytes(16).toString("hex")}`;
const AGENT_KEY = `acpkey-${randomBytes(12).toString("hex")}`;

/** The pid of the ACP agent, from coding-mcp's log (the newest start). */
function agentPid(): number | undefined {
  const pids = h.stderr.flatMap((l) => /ACP agent of backend "ocacp" ready \(pid (\d+)/.exec(l)?.[1] ?? []).map(Number);
  return pids.at(-1);
}

// Generous: these machines are shared, and a loaded one makes every agent step slow.
vi.setConfig({ testTimeout: 300_000, hookTimeout: 180_000 });

beforeAll(async () => {
  h = await startHarness({
    config: {
      backends: {
        ocacp: { type: "acp", command: agentCommand("opencode"), env: { ACP_TEST_KEY: "${ACP_TEST_KEY_SOURCE}" } },
        broken: { type: "acp", command: ["/nonexistent/acp-agent", "--stdio"] },
      },
      // The built-in OpenCode is not started unless asked for: nothing here uses it.
      default_backend: "ocacp",
      permissions: { "*": "allow", edit: "deny" },
    },
    env: { GITHUB_TOKEN: TOKEN, ACP_TEST_KEY_SOURCE: AGENT_KEY },
  });
  // OpenCode asks before bash and edit, so coding-mcp's policy answers over ACP.
  const config = opencodeConfigFor(h.fake.baseURL);
  config.permission = { ...config.permission, bash: "ask", edit: "ask" };
  h.env.OPENCODE_CONFIG_CONTENT = JSON.stringify(config);
  await h.restart();
  h.fake.setScenario("three", (ctx) => {
    const steps = [
      { tools: [{ name: "bash", args: { command: "printf 'alpha\\n' > a.txt", description: "Write a.txt" } }] },
      { tools: [{ name: "read", args: { filePath: `${ctx.directory}/a.txt` } }] },
      { tools: [{ name: "bash", args: { command: "mkdir -p src && printf 'beta\\n' > src/b.txt && cat a.txt", description: "Write b.txt" } }] },
      { text: "Wrote a.txt and src/b.txt." },
    ];
    return steps[ctx.step] ?? { text: "Done." };
  });
  h.fake.setScenario("denied-edit", (ctx) => {
    const steps = [
      { tools: [{ name: "bash", args: { command: "echo allowed > bash.txt", description: "Write with bash" } }] },
      { tools: [{ name: "edit", args: { filePath: `${ctx.directory}/bash.txt`, oldString: "allowed", newString: "edited" } }] },
      { text: "Tried both." },
    ];
    return steps[ctx.step] ?? { text: "Done." };
  });
  h.fake.setScenario("env", [{ tools: [{ name: "bash", args: { command: "env > env.txt; printenv ACP_TEST_KEY", description: "Environment" } }] }, { text: "Saved the environment." }]);
  h.fake.setScenario("slow-cancel", [{ tools: [sleep.tool(51.5)] }, { text: "Slept." }]);
  h.fake.setScenario("slow-timeout", [{ tools: [sleep.tool(52.5)] }, { text: "Slept." }]);
  h.fake.setScenario("slow-kill", [{ tools: [sleep.tool(53.5)] }, { text: "Slept." }]);
  h.fake.setScenario("slow-restart", [{ tools: [sleep.tool(54.5)] }, { text: "Slept." }]);
  h.fake.setScenario("touch", [{ tools: [{ name: "bash", args: { command: "echo again > again.txt", description: "Write again.txt" } }] }, { text: "Wrote again.txt." }]);
  shared = structured(await h.call("coding_open", { title: "acp shared" }));
});

/** Run the "touch" task on the shared session and check it really wrote again.txt. */
async function touch(): Promise<void> {
  fs.rmSync(path.join(shared.workspace_path, "again.txt"), { force: true });
  const result = structured(await h.call("code", { session_id: shared.session_id, task: "Again [[fake:touch]]" }));
  expect(result.success).toBe(true);
  expect(fs.readFileSync(path.join(shared.workspace_path, "again.txt"), "utf8")).toBe("again\n");
}

afterAll(async () => {
  if (process.env.ACP_TEST_LOG) fs.writeFileSync(process.env.ACP_TEST_LOG, h?.stderr.join("\n") ?? "");
  for (const s of [51.5, 52.5, 53.5, 54.5]) sleep.kill(s);
  await h?.close();
});

describe("an ACP backend (opencode acp)", () => {
  it("runs a multi-step task with progress per tool call, and the files land on disk", async () => {
    const opened = shared;
    expect(opened.backend).toBe("ocacp");
    const progress: string[] = [];
    const result = structured(
      await h.call("code", { session_id: opened.session_id, task: "Three steps [[fake:three]]" }, { onprogress: (p) => progress.push(p.message ?? "") }),
    );
    expect(result.success).toBe(true);
    expect(result.summary).toBe("Wrote a.txt and src/b.txt.");
    expect(fs.readFileSync(path.join(opened.workspace_path, "a.txt"), "utf8")).toBe("alpha\n");
    expect(fs.readFileSync(path.join(opened.workspace_path, "src/b.txt"), "utf8")).toBe("beta\n");
    expect(result.files_changed.map((f: { path: string; status: string }) => `${f.status} ${f.path}`)).toEqual(["added a.txt", "added src/b.txt"]);
    expect(progress.map((m) => m.replace(/ \(\d+(\.\d+)? m?s\)$/, ""))).toEqual([
      "task started",
      "▶ bash: printf 'alpha\\n' > a.txt",
      "permission bash allowed by policy: printf 'alpha\\n' > a.txt",
      "✓ bash: printf 'alpha\\n' > a.txt",
      "▶ read a.txt",
      "✓ read a.txt",
      "▶ bash: mkdir -p src && printf 'beta\\n' > src/b.txt && cat a.txt",
      "permission bash allowed by policy: mkdir -p src && printf 'beta\\n' > src/b.txt && cat a.txt",
      "✓ bash: mkdir -p src && printf 'beta\\n' > src/b.txt && cat a.txt",
      expect.stringMatching(/^task finished: 3 tool calls in /),
    ]);
    const calls = result.trace.tool_calls;
    expect(calls.map((c: { tool: string; status: string }) => `${c.tool}:${c.status}`)).toEqual(["bash:completed", "read:completed", "bash:completed"]);
    expect(calls[2].output_preview).toBe("alpha\n");
    expect(calls[2].input.command).toBe("mkdir -p src && printf 'beta\\n' > src/b.txt && cat a.txt");
    expect(result.trace).toMatchObject({ model: "fake-coder", provider: "fake", finish_reason: "end_turn" });
    // OpenCode reports the tokens of its last model reply only.
    expect(result.trace.tokens.input).toBeGreaterThan(0);
  });

  it("commits, pushes and closes a clone worked on over ACP", async () => {
    const remote = makeBareRemote(h.dir, "acp-flow.git");
    const opened = structured(await h.call("coding_open", { repo_url: remote }));
    const result = structured(await h.call("code", { session_id: opened.session_id, task: "Again [[fake:touch]]" }));
    expect(result.success).toBe(true);
    expect(fs.readFileSync(path.join(opened.workspace_path, "again.txt"), "utf8")).toBe("again\n");
    const commit = structured(await h.call("coding_commit", { session_id: opened.session_id, message: "Add again.txt" }));
    expect(commit.commit_hash).toBe(git(opened.workspace_path, "rev-parse", "HEAD"));
    const pushed = structured(await h.call("coding_push", { session_id: opened.session_id }));
    expect(pushed.pushed).toBe(true);
    expect(git(remote, "log", "-1", "--format=%s", "main")).toBe("Add again.txt");
    expect(git(remote, "show", "main:again.txt")).toBe("again");
    const closed = structured(await h.call("coding_close", { session_id: opened.session_id }));
    expect(closed.cleaned_up).toBe(true);
    expect(fs.existsSync(opened.workspace_path)).toBe(false);
  });

  it("answers the agent's permission requests by the policy and records them", async () => {
    const opened = shared;
    const result = structured(await h.call("code", { session_id: opened.session_id, task: "Try [[fake:denied-edit]]" }));
    // Recorded by the core (who decided, how long it took), the same way for every backend.
    expect(result.trace.permissions).toMatchObject([
      { permission: "bash", patterns: ["echo allowed > bash.txt"], reply: "once", decided_by: "policy" },
      { permission: "edit", patterns: ["bash.txt"], reply: "reject", decided_by: "policy" },
    ]);
    // bash ran, the edit was refused: the file is as bash wrote it.
    expect(fs.readFileSync(path.join(opened.workspace_path, "bash.txt"), "utf8")).toBe("allowed\n");
    expect(result.trace.tool_calls.map((c: { tool: string; status: string }) => `${c.tool}:${c.status}`)).toEqual(["bash:completed", "edit:error"]);
    // code's agent is the ACP session mode: an unknown one ends the task before any prompt, naming the agent's modes.
    // The task's own words mark its prompt: no model request, whenever it came and whatever else the
    // agent asks the model in the background (titles), ever carries them.
    const task = `Unknown mode ${Date.now()} [[fake:touch]]`;
    const badMode = structured(await h.call("code", { session_id: opened.session_id, task, agent: "nope" }));
    expect(badMode.failure).toBe("agent_error");
    expect(badMode.error).toMatch(/backend "ocacp" has no mode "nope".*build, plan/);
    expect(h.fake.requests.filter((body: unknown) => JSON.stringify(body).includes(task))).toEqual([]);
    // Control: the same words in a task with a mode the agent has do reach the model.
    expect(structured(await h.call("code", { session_id: opened.session_id, task, agent: "build" })).success).toBe(true);
    expect(h.fake.requests.filter((body: unknown) => JSON.stringify(body).includes(task)).length).toBeGreaterThan(0);
  });

  it("gives the agent an environment without the git token, and redacts its configured env values", async () => {
    const opened = shared;
    const result = structured(await h.call("code", { session_id: opened.session_id, task: "Show [[fake:env]]" }));
    expect(result.success).toBe(true);
    const env = fs.readFileSync(path.join(opened.workspace_path, "env.txt"), "utf8");
    expect(env).not.toContain(TOKEN);
    expect(env).not.toMatch(/^GITHUB_TOKEN=/m);
    // The entry's env reached the agent (with ${VAR} read from coding-mcp's environment)...
    expect(fs.readFileSync(`/proc/${agentPid()}/environ`, "utf8").split("\0")).toContain(`ACP_TEST_KEY=${AGENT_KEY}`);
    // ...but not its commands: they run confined, in the sandbox's clean environment (sandbox.mode on by default)...
    expect(env).toContain("CODING_MCP_SANDBOX=1");
    expect(env).not.toContain(AGENT_KEY);
    // ...and it is redacted from everything coding-mcp sends.
    expect(JSON.stringify(result)).not.toContain(AGENT_KEY);
    expect(h.stderr.join("\n")).not.toContain(AGENT_KEY);
  });

  it("stops the running command when the client cancels, and the session stays usable", async () => {
    const opened = shared;
    const controller = new AbortController();
    const call = h.call("code", { session_id: opened.session_id, task: "Wait [[fake:slow-cancel]]" }, { signal: controller.signal });
    call.catch(() => undefined);
    expect(await until(() => sleep.running(51.5), 60_000)).toBe(true);
    controller.abort();
    await expect(call).rejects.toThrow(/abort/i);
    expect(await until(() => !sleep.running(51.5), 10_000)).toBe(true);
    await touch();
  });

  it("times out with the partial trace, and the command is stopped", async () => {
    const opened = shared;
    const call = h.call("code", { session_id: opened.session_id, task: "Wait [[fake:slow-timeout]]", timeout_sec: 20 });
    expect(await until(() => sleep.running(52.5), 60_000)).toBe(true);
    const result = structured(await call);
    expect(result.success).toBe(false);
    expect(result.failure).toBe("timeout");
    expect(result.error).toMatch(/did not finish within 20 s/);
    expect(result.trace.tool_calls.map((c: { tool: string }) => c.tool)).toEqual(["bash"]);
    expect(await until(() => !sleep.running(52.5), 10_000)).toBe(true);
  });

  it("answers backend_unavailable when the agent dies mid-task, and starts it again for the next task", async () => {
    const opened = shared;
    const pid = agentPid()!;
    expect(alive(pid)).toBe(true);
    const call = h.call("code", { session_id: opened.session_id, task: "Wait [[fake:slow-kill]]" });
    expect(await until(() => sleep.running(53.5), 60_000)).toBe(true);
    process.kill(pid, "SIGKILL");
    const result = structured(await call);
    expect(result.success).toBe(false);
    expect(result.failure).toBe("backend_unavailable");
    expect(result.error).toMatch(/ACP agent of backend "ocacp" killed by SIGKILL/);
    expect(result.trace.tool_calls.map((c: { tool: string }) => c.tool)).toEqual(["bash"]);
    // OpenCode runs each command in a session of its own, so its crash leaves it running: end it here.
    sleep.kill(53.5);
    // The same coding session goes on with a new agent process (session/load).
    await touch();
    expect(agentPid()).not.toBe(pid);
    expect(h.stderr.some((l) => l.includes(`ACP session ${opened.backend_session_id} of backend "ocacp" loaded again`))).toBe(true);

    // Killed while idle: the next task starts it again too.
    const idlePid = agentPid()!;
    process.kill(idlePid, "SIGKILL");
    expect(await until(() => !alive(idlePid), 5_000)).toBe(true);
    await touch();
    expect(agentPid()).not.toBe(idlePid);
  });

  it("after a restart of coding-mcp, reports the running task interrupted and goes on in the same session", async () => {
    const started = structured(await h.call("code", { session_id: shared.session_id, task: "Wait [[fake:slow-restart]]", background: true }));
    expect(started.state).toBe("running");
    expect(await until(() => sleep.running(54.5), 60_000)).toBe(true);
    await h.restart();
    sleep.kill(54.5);
    const status = await until(async () => {
      const s = structured(await h.call("coding_status", { session_id: shared.session_id })).sessions[0];
      return s.state === "idle" && s.task?.result ? s : undefined;
    }, 15_000, 200);
    expect(status.task.result.failure).toBe("backend_unavailable");
    expect(status.task.result.error).toMatch(/interrupted/);
    await touch();
    const closed = structured(await h.call("coding_close", { session_id: shared.session_id }));
    expect(closed.cleaned_up).toBe(true);
    expect(closed.totals.tasks).toBeGreaterThanOrEqual(8);
  });

  it("refuses an unknown backend with the configured names, and names a command that cannot start", async () => {
    const unknown = await h.call("coding_open", { backend: "nope" });
    expect(unknown.isError).toBe(true);
    expect(textOf(unknown)).toMatch(/backend "nope" is not configured/);
    expect(textOf(unknown)).toMatch(/opencode, ocacp, broken/);
    // Models and modes are the agent's own: an unknown one is refused with what it offers.
    const badModel = await h.call("coding_open", { model: "nope/none" });
    expect(badModel.isError).toBe(true);
    expect(textOf(badModel)).toMatch(/model "nope\/none" is not offered by backend ocacp.*fake\/fake-coder/s);
    const broken = await h.call("coding_open", { backend: "broken" });
    expect(broken.isError).toBe(true);
    expect(textOf(broken)).toContain('backend "broken" (command: /nonexistent/acp-agent --stdio) could not be started: command not found: /nonexistent/acp-agent');
    expect(textOf(broken)).toContain("backends.broken.command");
    // Nothing half-made: no session record for it.
    const sessions = structured(await h.call("coding_status", {})).sessions;
    expect(sessions.every((s: { backend?: string }) => s.backend !== "broken")).toBe(true);
  });
});
