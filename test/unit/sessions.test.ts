import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { createApp, type App } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import type { Caller } from "../../src/callers/caller.js";
import { UserError } from "../../src/errors.js";
import type { Logger } from "../../src/log.js";
import type { CodeResult } from "../../src/model.js";
import { ScriptedBackend, type Script } from "../support/scripted-backend.js";

/**
 * What the tools do, on a scripted backend: sessions, tasks, records and workspaces with real git,
 * no agent and no build. Each test gets its own base path.
 */

interface Setup {
  app: App;
  backend: ScriptedBackend;
  dir: string;
  configFile: string;
  logs: string[];
}

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function writeConfig(dir: string, extra: Record<string, Record<string, unknown>> = {}): string {
  const config = {
    ...extra,
    workspace: { base_path: path.join(dir, "workspaces"), allowed_roots: [path.join(dir, "repos")], ...(extra.workspace ?? {}) },
    git: { user_name: "Test Bot", user_email: "bot@example.test", ...(extra.git ?? {}) },
    limits: { task_timeout_min: 1, ...(extra.limits ?? {}) },
  };
  const file = path.join(dir, "config.yaml");
  fs.writeFileSync(file, stringify(config));
  return file;
}

async function setup(
  script: Script,
  options: { config?: Record<string, Record<string, unknown>>; dir?: string; backend?: ScriptedBackend; env?: NodeJS.ProcessEnv } = {},
): Promise<Setup> {
  const dir = options.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), "coding-mcp-unit-"));
  fs.mkdirSync(path.join(dir, "repos"), { recursive: true });
  const configFile = writeConfig(dir, options.config);
  const logs: string[] = [];
  const log: Logger = {
    debug: () => undefined,
    info: (m) => logs.push(`info ${m}`),
    warn: (m) => logs.push(`warn ${m}`),
    error: (m) => logs.push(`error ${m}`),
  };
  const backend = options.backend ?? new ScriptedBackend(script);
  const app = await createApp(loadConfig({ configPath: configFile, env: {} }), { log, env: options.env ?? {}, backends: () => [backend], defaultBackend: backend.name, retryDelayMs: 50 });
  cleanups.push(async () => {
    await app.stop();
    if (!options.dir) fs.rmSync(dir, { recursive: true, force: true });
  });
  return { app, backend, dir, configFile, logs };
}

/** Poll until `check` holds (at most 10 s); answers its last value. */
async function eventually<T>(check: () => Promise<T>, holds: (value: T) => boolean): Promise<T> {
  let value = await check();
  for (let i = 0; i < 200 && !holds(value); i++) {
    await new Promise((r) => setTimeout(r, 50));
    value = await check();
  }
  return value;
}

function git(cwd: string, ...args: string[]): string {
  return execFileSync("git", args, { cwd, encoding: "utf8" }).trim();
}

async function refused(promise: Promise<unknown>): Promise<UserError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UserError);
  return err as UserError;
}

async function run(app: App, sessionId: string, task: string, extra: Record<string, unknown> = {}): Promise<CodeResult> {
  const answer = await app.sessions.code({ session_id: sessionId, task, ...extra });
  if (answer.state !== "done") throw new Error("expected a finished task");
  return answer.result;
}

const writesHello: Script = () => [{ tool: "write", input: { filePath: "hello.py" }, write: { "hello.py": "print('hi')\n" } }, { summary: "wrote hello.py", cost: 0.25, tokens: 1000 }];

describe("tasks on a scripted backend", () => {
  it("runs a task and reports the files git sees changed, the trace and the totals", async () => {
    const { app, backend } = await setup(writesHello);
    const opened = await app.sessions.open({});
    expect(opened.backend).toBe("scripted");
    const result = await run(app, opened.session_id, "write hello");
    expect(result.success).toBe(true);
    expect(result.summary).toBe("wrote hello.py");
    expect(result.files_changed).toEqual([{ path: "hello.py", status: "added", additions: 1, deletions: 0 }]);
    expect(result.trace.tool_calls.map((c) => c.tool)).toEqual(["write"]);
    expect(fs.readFileSync(path.join(opened.workspace_path, "hello.py"), "utf8")).toBe("print('hi')\n");
    // The backend's default model is sent explicitly, so a session never runs on a model left from an earlier prompt.
    expect(backend.runs[0]!.model).toBe("fake/one");

    await run(app, opened.session_id, "again");
    const [status] = await app.sessions.status(opened.session_id);
    expect(status!.totals.tasks).toBe(2);
    expect(status!.totals.cost).toBe(0.5);
    expect(status!.totals.tokens.input).toBe(2000);
    expect(status!.task?.state).toBe("done");
  });

  it("marks the totals' cost and tokens as lower bounds once an agent did not report them", async () => {
    const { app } = await setup(({ prompt }) => [{ summary: "ok", cost: 0.25, tokens: 100, ...(prompt.includes("silent") ? { cost: 0, unknown: ["cost" as const] } : {}) }]);
    const opened = await app.sessions.open({});
    await run(app, opened.session_id, "reports");
    expect((await app.sessions.status(opened.session_id))[0]!.totals.unknown).toBeUndefined();
    const silent = await run(app, opened.session_id, "silent");
    expect(silent.trace.unknown).toEqual(["cost"]);
    const closed = await app.sessions.close({ session_id: opened.session_id });
    expect(closed.totals).toMatchObject({ tasks: 2, cost: 0.25, unknown: ["cost"] });
  });

  it("refuses a second task, a commit and a close while one runs; cancel stops it and frees the session", async () => {
    const { app, backend } = await setup(({ prompt }) => (prompt.includes("[[hang]]") ? [{ tool: "bash", input: { command: "sleep 100" } }, { hang: true }] : writesHello({ prompt, attempt: 1 })));
    const opened = await app.sessions.open({});
    const started = await app.sessions.code({ session_id: opened.session_id, task: "[[hang]]", background: true });
    expect(started.state).toBe("running");
    for (const attempt of [
      () => app.sessions.code({ session_id: opened.session_id, task: "another" }),
      () => app.sessions.commit({ session_id: opened.session_id, message: "m" }),
      () => app.sessions.close({ session_id: opened.session_id }),
    ]) {
      expect((await refused(attempt())).code).toBe("session_busy");
    }
    const [running] = await eventually(() => app.sessions.status(opened.session_id), ([s]) => Boolean(s?.task?.tool_calls.length));
    expect(running!.state).toBe("running");
    expect(running!.task?.tool_calls.map((c) => c.tool)).toEqual(["bash"]);

    expect(await app.sessions.cancel(opened.session_id)).toEqual({ cancelled: true, state: "idle" });
    expect(backend.runs[0]!.aborted).toBe(true);
    const [after] = await app.sessions.status(opened.session_id);
    expect(after!.task?.result?.failure).toBe("cancelled");
    expect((await run(app, opened.session_id, "write hello")).success).toBe(true);
    expect(await app.sessions.cancel(opened.session_id)).toEqual({ cancelled: false, state: "idle" });
  });

  it("ends a task that outlives its timeout with failure timeout and the calls made until then", async () => {
    const { app, backend } = await setup(() => [{ tool: "read", input: { filePath: "a" } }, { hang: true }]);
    const opened = await app.sessions.open({});
    const result = await run(app, opened.session_id, "slow", { timeout_sec: 1 });
    expect(result.success).toBe(false);
    expect(result.failure).toBe("timeout");
    expect(result.trace.tool_calls.map((c) => c.tool)).toEqual(["read"]);
    expect(backend.runs[0]!.aborted).toBe(true);
  });

  it("repeats a task only when the backend says no tool ran and repeating may help", async () => {
    const flaky: Script = ({ prompt, attempt }) =>
      prompt.includes("flaky") && attempt === 1
        ? [{ fail: "backend_unavailable", message: "went away", retryable: true }]
        : prompt.includes("broken")
          ? [{ tool: "bash" }, { fail: "agent_error", message: "provider said no" }]
          : [{ summary: `attempt ${attempt}` }];
    const { app, backend } = await setup(flaky);
    const opened = await app.sessions.open({});
    const retried = await run(app, opened.session_id, "flaky");
    expect(retried).toMatchObject({ success: true, attempts: 2, summary: "attempt 2" });
    const broken = await run(app, opened.session_id, "broken");
    expect(broken).toMatchObject({ success: false, failure: "agent_error", attempts: 1 });
    expect(backend.runs.filter((r) => r.prompt.includes("broken"))).toHaveLength(1);
    expect("retryable" in broken).toBe(false);
  });

  it("answers a background task at once and shows its result in status once done", async () => {
    const { app } = await setup(() => [{ tool: "write", write: { "bg.txt": "x\n" }, ms: 200 }, { summary: "background done" }]);
    const opened = await app.sessions.open({});
    const answer = await app.sessions.code({ session_id: opened.session_id, task: "bg", background: true });
    if (answer.state !== "running") throw new Error("expected a running task");
    expect(answer.task.task_id).toMatch(/^task_/);
    const [status] = await eventually(() => app.sessions.status(opened.session_id), ([s]) => s?.state !== "running");
    expect(status!.state).toBe("idle");
    expect(status!.task).toMatchObject({ task_id: answer.task.task_id, state: "done", result: { success: true, summary: "background done" } });
    expect(status!.task?.result?.files_changed).toEqual([{ path: "bg.txt", status: "added", additions: 1, deletions: 0 }]);
  });

  it("after a restart follows a task that was running from its checkpoint, and records its result", async () => {
    const first = await setup(() => [{ tool: "bash" }, { hang: true }]);
    const opened = await first.app.sessions.open({});
    await first.app.sessions.code({ session_id: opened.session_id, task: "long", background: true });
    await eventually(() => first.app.records.sessions.get(opened.session_id), (s) => Boolean(s?.running?.checkpoint && s.running.tree_before));
    await first.app.stop(); // coding-mcp stops; the task stays recorded as running

    const backend = new ScriptedBackend(() => []);
    backend.resumeWith = async (request) => {
      await fs.promises.writeFile(path.join(request.directory, "resumed.txt"), "after restart\n");
      return { success: true, summary: "finished after the restart", trace: { model: "one", provider: "fake", cost: 0.1, tokens: { input: 1, output: 1, reasoning: 0, cache_read: 0, cache_write: 0 }, duration_ms: 5, finish_reason: "stop", tool_calls: [], reasoning: [] } };
    };
    const second = await setup(() => [], { dir: first.dir, backend });
    const [status] = await eventually(() => second.app.sessions.status(opened.session_id), ([s]) => s?.task?.state === "done");
    expect(backend.resumed[0]).toMatchObject({ sessionId: opened.backend_session_id, checkpoint: "chk_1" });
    expect(status!.task?.result).toMatchObject({ success: true, summary: "finished after the restart", files_changed: [{ path: "resumed.txt", status: "added" }] });
    const record = await second.app.records.sessions.get(opened.session_id);
    expect(record?.running).toBeUndefined();
  });

  it("after a restart counts from HEAD, and says so, when the task's snapshot had not been recorded yet", async () => {
    const first = await setup(() => [{ tool: "bash" }, { hang: true }]);
    const opened = await first.app.sessions.open({});
    await fs.promises.writeFile(path.join(opened.workspace_path, "left-from-before.txt"), "x\n");
    await first.app.sessions.code({ session_id: opened.session_id, task: "long", background: true });
    await eventually(() => first.app.records.sessions.get(opened.session_id), (s) => Boolean(s?.running?.checkpoint && s.running.tree_before));
    await first.app.stop();
    // As if coding-mcp had died between the prompt and recording the snapshot's tree.
    await first.app.records.sessions.update(opened.session_id, (s) => void delete s.running!.tree_before);

    const backend = new ScriptedBackend(() => []);
    backend.resumeWith = async () => ({ success: true, summary: "done", trace: { model: "one", provider: "fake", cost: 0, tokens: { input: 1, output: 1, reasoning: 0, cache_read: 0, cache_write: 0 }, duration_ms: 5, finish_reason: "stop", tool_calls: [], reasoning: [] } });
    const second = await setup(() => [], { dir: first.dir, backend });
    const [status] = await eventually(() => second.app.sessions.status(opened.session_id), ([s]) => s?.task?.state === "done");
    expect(status!.task?.result?.files_changed).toEqual([{ path: "left-from-before.txt", status: "added", additions: 1, deletions: 0 }]);
    expect(status!.task?.result?.warnings?.join(" ")).toMatch(/counts from the commit the task started on/);
  });

  it("sends no prompt when git cannot take the snapshot before the task, and says why", async () => {
    const { app } = await setup(() => [{ tool: "write", write: { "should-not-exist.txt": "x\n" } }, { summary: "wrote" }]);
    const opened = await app.sessions.open({});
    await fs.promises.rm(path.join(opened.workspace_path, ".git"), { recursive: true });
    await expect(run(app, opened.session_id, "write it")).rejects.toThrow(/git|repository/i);
    expect(fs.existsSync(path.join(opened.workspace_path, "should-not-exist.txt"))).toBe(false);
    expect((await app.records.sessions.get(opened.session_id))?.running).toBeUndefined();
  });

  it("says in the answer when git could not list the changes, instead of reporting none", async () => {
    const { app, logs } = await setup(() => [{ run: async (dir) => fs.promises.rm(path.join(dir, ".git"), { recursive: true }) }, { summary: "removed .git" }]);
    const opened = await app.sessions.open({});
    const result = await run(app, opened.session_id, "vandalise");
    expect(result.files_changed).toEqual([]);
    expect(result.warnings?.[0]).toMatch(/files_changed is incomplete: git could not list the changes/);
    expect(logs.some((l) => l.startsWith("warn") && l.includes("files_changed is incomplete"))).toBe(true);
  });
});

describe("models and backends", () => {
  it("refuses a model the backend does not offer, naming the ones it does, and never sticks to it", async () => {
    const { app, backend, dir } = await setup(writesHello);
    const bad = await refused(app.sessions.open({ model: "nope/missing" }));
    expect(bad.message).toContain('model "nope/missing" is not offered by backend scripted');
    expect(bad.hint).toContain("fake/one, fake/two");
    expect(fs.readdirSync(path.join(dir, "workspaces")).filter((n) => !n.startsWith("."))).toEqual([]);

    const opened = await app.sessions.open({ model: "fake/two" });
    await refused(app.sessions.code({ session_id: opened.session_id, task: "x", model: "nope/missing" }));
    expect(backend.runs).toHaveLength(0);
    await run(app, opened.session_id, "x");
    expect(backend.runs.at(-1)!.model).toBe("fake/two");
    await run(app, opened.session_id, "y", { model: "fake/one" });
    expect(backend.runs.at(-1)!.model).toBe("fake/one");
    await run(app, opened.session_id, "z");
    expect(backend.runs.at(-1)!.model).toBe("fake/two");
  });

  it("refuses a model where the backend cannot choose one, and runs without one otherwise", async () => {
    const backend = new ScriptedBackend(writesHello);
    backend.catalog = undefined;
    const { app } = await setup(writesHello, { backend });
    expect((await refused(app.sessions.open({ model: "fake/one" }))).message).toContain("cannot choose a model");
    const opened = await app.sessions.open({});
    await run(app, opened.session_id, "x");
    expect(backend.runs[0]!.model).toBeUndefined();
  });

  it("refuses an unknown backend with the configured names", async () => {
    const { app } = await setup(writesHello);
    const err = await refused(app.sessions.open({ backend: "claude" }));
    expect(err.message).toBe('backend "claude" is not configured');
    expect(err.hint).toContain("Use one of: scripted");
  });
});

describe("confinement in the answers", () => {
  it("says a session is confined only when its backend routes commands through the sandbox, sandbox.mode is on and the machine confines", async () => {
    const confinedOn = async (mode: "on" | "off", confinesCommands: boolean) => {
      const backend = new ScriptedBackend(writesHello);
      backend.confinesCommands = confinesCommands;
      // bubblewrap is looked up on PATH.
      const { app } = await setup(writesHello, { backend, config: { sandbox: { mode } }, env: { PATH: process.env.PATH } });
      const opened = await app.sessions.open({});
      const [status] = await app.sessions.status(opened.session_id);
      return [opened.confined, status!.confined];
    };
    // This machine confines (bubblewrap, as the confinement tests use it).
    expect(await confinedOn("on", true)).toEqual([true, true]);
    expect(await confinedOn("off", true)).toEqual([false, false]);
    expect(await confinedOn("on", false)).toEqual([false, false]);
  });
});

describe("closing and cleaning up", () => {
  it("removes a managed workspace on close, keeps it under manual or a failed on_success", async () => {
    for (const [policy, success, removed] of [
      ["on_session_end", false, true],
      ["on_success", true, true],
      ["on_success", false, false],
      ["manual", true, false],
    ] as const) {
      const { app, backend } = await setup(writesHello, { config: { workspace: { cleanup_policy: policy } } });
      const opened = await app.sessions.open({});
      await run(app, opened.session_id, "write");
      const closed = await app.sessions.close({ session_id: opened.session_id, success });
      expect({ policy, success, removed: closed.cleaned_up }).toEqual({ policy, success, removed });
      expect(fs.existsSync(opened.workspace_path)).toBe(!removed);
      expect(closed.files_changed.map((f) => f.path)).toEqual(["hello.py"]);
      expect(closed.totals.tasks).toBe(1);
      expect(backend.closed).toEqual(removed ? [opened.backend_session_id] : []);
      expect((await refused(app.sessions.code({ session_id: opened.session_id, task: "x" }))).code).toBe("session_closed");
    }
  });

  it("keeps a workflow's workspace until its last session closes, and never deletes a caller's repository", async () => {
    const { app, dir } = await setup(writesHello);
    const a = await app.sessions.open({ scope: "workflow", scope_id: "wf-1" });
    const b = await app.sessions.open({ scope: "workflow", scope_id: "wf-1" });
    expect(b.workspace_path).toBe(a.workspace_path);
    expect(b.reused_workspace).toBe(true);
    expect((await app.sessions.close({ session_id: a.session_id })).cleaned_up).toBe(false);
    expect((await app.sessions.close({ session_id: b.session_id })).cleaned_up).toBe(true);
    expect(fs.existsSync(a.workspace_path)).toBe(false);

    const own = path.join(dir, "repos", "own");
    fs.mkdirSync(own);
    git(own, "init", "-q", "-b", "main");
    const opened = await app.sessions.open({ workspace_path: own });
    await run(app, opened.session_id, "write");
    const closed = await app.sessions.close({ session_id: opened.session_id });
    expect(closed.cleaned_up).toBe(false);
    expect(fs.readFileSync(path.join(own, "hello.py"), "utf8")).toBe("print('hi')\n");
  });
});

describe("records on disk", () => {
  it("skips and logs a record that does not parse, and still serves the others", async () => {
    const first = await setup(writesHello);
    const opened = await first.app.sessions.open({});
    await first.app.stop();
    const sessionsDir = path.join(first.dir, "workspaces", ".coding-mcp", "sessions");
    fs.writeFileSync(path.join(sessionsDir, "cs_broken0001.json"), "{ not json");
    fs.writeFileSync(path.join(sessionsDir, "cs_broken0002.json"), JSON.stringify({ id: "cs_broken0002", state: "open" }));

    const second = await setup(writesHello, { dir: first.dir });
    expect(second.logs.filter((l) => l.startsWith("warn") && l.includes("cs_broken000"))).toHaveLength(2);
    expect((await second.app.sessions.status()).map((s) => s.session_id)).toEqual([opened.session_id]);
  });

  it("hands out copies: changing an answer does not change the record", async () => {
    const { app } = await setup(writesHello);
    const opened = await app.sessions.open({});
    const record = (await app.records.sessions.get(opened.session_id))!;
    record.state = "closed";
    expect((await app.records.sessions.get(opened.session_id))!.state).toBe("open");
  });
});

describe("callers", () => {
  const caller = (name: string): Caller => ({ id: `client:${name}`, git: { kind: "none", why: "test" }, scopes: [] });
  const errorOf = (p: Promise<unknown>, id: string) => p.then(() => "answered", (err: Error) => err.message.split(id).join("<id>"));

  it("keeps each caller's sessions to itself: a foreign id is an unknown one, lists and scopes are per caller, and limits.per_client_sessions bounds each", async () => {
    const { app } = await setup(() => [{ summary: "done" }], { config: { limits: { per_client_sessions: 1 } } });
    const alice = app.sessions.as(caller("alice"));
    const bob = app.sessions.as(caller("bob"));
    const a = await alice.open({ scope: "workflow", scope_id: "w1" });
    const unknown = "cs_000000000000000000000000";
    for (const attempt of [
      (id: string) => bob.status(id),
      (id: string) => bob.diff({ session_id: id }),
      (id: string) => bob.close({ session_id: id }),
      (id: string) => bob.code({ session_id: id, task: "x" }),
      (id: string) => bob.cancel(id),
      (id: string) => bob.commit({ session_id: id, message: "x" }),
    ]) {
      expect(await errorOf(attempt(a.session_id), a.session_id)).toBe(await errorOf(attempt(unknown), unknown));
      expect(await errorOf(attempt(a.session_id), a.session_id)).toContain('unknown session_id "<id>"');
    }
    expect(await bob.status()).toEqual([]);
    expect((await alice.status()).map((s) => s.session_id)).toEqual([a.session_id]);
    const b = await bob.open({ scope: "workflow", scope_id: "w1" });
    expect(b.reused_workspace).toBe(false);
    expect(b.workspace_path).not.toBe(a.workspace_path);
    await expect(alice.open({})).rejects.toThrow(/limits.per_client_sessions = 1/);
    // A third caller cannot open a session inside alice's managed workspace: it does not exist to them.
    await expect(app.sessions.as(caller("carol")).open({ workspace_path: a.workspace_path })).rejects.toThrow(`workspace_path ${a.workspace_path} does not exist`);
    expect((await app.records.sessions.get(a.session_id))?.owner).toBe("client:alice");
  });
});
