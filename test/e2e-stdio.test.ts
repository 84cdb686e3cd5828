import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { git, gitShowStats, makeBareRemote, startHarness, structured, textOf, type Harness } from "./support/harness.js";

// The five tools end to end: the SDK's real Client drives the built coding-mcp over stdio; coding-mcp
// runs the real `opencode serve`, which calls the scripted fake model; git is real throughout.

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});

afterAll(async () => {
  await h?.close();
});

describe("coding-mcp over stdio", () => {
  it("lists the tools with schemas and annotations", async () => {
    const { tools } = await h.client.listTools();
    expect(tools.map((t) => t.name)).toEqual(["coding_open", "code", "coding_commit", "coding_push", "coding_close", "coding_status", "coding_cancel", "coding_respond", "coding_diff"]);
    expect(tools.find((t) => t.name === "coding_status")?.annotations?.readOnlyHint).toBe(true);
    for (const tool of tools) {
      expect(tool.outputSchema, tool.name).toBeDefined();
      expect(tool.annotations?.title, tool.name).toBeTruthy();
    }
    expect(tools.find((t) => t.name === "code")?.inputSchema.required).toEqual(["session_id", "task"]);
  });

  it("opens a clone, codes, commits, pushes and closes", async () => {
    const remote = makeBareRemote(h.dir, "flow.git");
    const opened = structured(await h.call("coding_open", { repo_url: remote, title: "flow" }));
    expect(opened.session_id).toMatch(/^cs_/);
    expect(opened.managed).toBe(true);
    expect(opened.branch).toBe("main");
    const ws: string = opened.workspace_path;
    expect(path.dirname(ws)).toBe(h.basePath);
    expect(fs.readFileSync(path.join(ws, "README.md"), "utf8")).toBe("# demo\n");

    const progress: string[] = [];
    const codeResult = await h.call(
      "code",
      { session_id: opened.session_id, task: "Create fizzbuzz.py that prints FizzBuzz for 1 to 15, then run it" },
      { onprogress: (p) => progress.push(p.message ?? "") },
    );
    const result = structured(codeResult);
    expect(result.state).toBe("done");
    expect(result.success).toBe(true);
    expect(result.summary).toContain("fizzbuzz.py");

    // The file is really there, and files_changed matches git's own count.
    const file = fs.readFileSync(path.join(ws, "fizzbuzz.py"), "utf8");
    expect(file).toContain("FizzBuzz");
    expect(result.files_changed).toEqual([{ path: "fizzbuzz.py", status: "added", additions: file.split("\n").length - 1, deletions: 0 }]);

    // The trace covers the whole turn: both tool calls of the earlier steps, not only the last message.
    const calls = result.trace.tool_calls;
    expect(calls.map((c: { tool: string }) => c.tool)).toEqual(["write", "bash"]);
    expect(calls.every((c: { status: string }) => c.status === "completed")).toBe(true);
    expect(calls[1].output_preview).toContain("FizzBuzz");
    expect(calls[1].duration_ms).toBeGreaterThan(0);
    expect(result.trace.reasoning[0]).toContain("fizzbuzz.py");
    expect(result.trace).toMatchObject({ model: "fake-coder", provider: "fake", finish_reason: "stop" });
    // Tokens of all three steps (prompt minus cache read, as OpenCode counts input).
    expect(result.trace.tokens).toEqual({ input: 1000 + 1400 + 1600, output: 68 + 40 + 30, reasoning: 12, cache_read: 200, cache_write: 0 });
    expect(result.trace.cost).toBeGreaterThan(0);
    expect(progress.length).toBeGreaterThanOrEqual(2);
    expect(progress.at(-1)).toContain("finished");
    // The fake model got the task as the prompt.
    expect(JSON.stringify(h.fake.requests.at(-1).messages)).toContain("Create fizzbuzz.py");
    expect(textOf(codeResult)).toContain("fizzbuzz.py");

    const commit = structured(await h.call("coding_commit", { session_id: opened.session_id, message: "Add fizzbuzz" }));
    expect(commit.committed).toBe(true);
    expect(commit.commit_hash).toBe(git(ws, "rev-parse", "HEAD"));
    expect({ files_changed: commit.files_changed, insertions: commit.insertions, deletions: commit.deletions }).toEqual(gitShowStats(ws, "HEAD"));
    expect(git(ws, "log", "-1", "--format=%an <%ae>|%s")).toBe("Test Bot <bot@example.test>|Add fizzbuzz");

    const again = structured(await h.call("coding_commit", { session_id: opened.session_id, message: "nothing" }));
    expect(again).toMatchObject({ committed: false, files_changed: 0 });

    const push = structured(await h.call("coding_push", { session_id: opened.session_id }));
    expect(push).toMatchObject({ pushed: true, remote: "origin", branch: "main" });
    expect(push.commits.map((c: { hash: string }) => c.hash)).toEqual([commit.commit_hash]);
    expect(git(remote, "rev-parse", "main")).toBe(commit.commit_hash);

    const closed = structured(await h.call("coding_close", { session_id: opened.session_id }));
    expect(closed.cleaned_up).toBe(true);
    expect(fs.existsSync(ws)).toBe(false);
    expect(closed.files_changed).toEqual([{ path: "fizzbuzz.py", status: "added", additions: file.split("\n").length - 1, deletions: 0 }]);
    expect(closed.totals.tasks).toBe(1);
    expect(closed.totals.cost).toBeCloseTo(result.trace.cost, 6);
  });

  it("shares one workspace between sessions of a workflow scope", async () => {
    const first = structured(await h.call("coding_open", { scope: "workflow", scope_id: "wf-1" }));
    expect(first.reused_workspace).toBe(false);
    structured(await h.call("code", { session_id: first.session_id, task: "Write notes.md with the plan" }));
    const commit = structured(await h.call("coding_commit", { session_id: first.session_id, message: "Plan" }));

    const second = structured(await h.call("coding_open", { scope: "workflow", scope_id: "wf-1" }));
    expect(second.session_id).not.toBe(first.session_id);
    expect(second.workspace_id).toBe(first.workspace_id);
    expect(second.workspace_path).toBe(first.workspace_path);
    expect(second.reused_workspace).toBe(true);
    expect(git(second.workspace_path, "log", "-1", "--format=%H")).toBe(commit.commit_hash);

    // Another scope_id gets another workspace.
    const other = structured(await h.call("coding_open", { scope: "workflow", scope_id: "wf-2" }));
    expect(other.workspace_path).not.toBe(first.workspace_path);

    const closeFirst = structured(await h.call("coding_close", { session_id: first.session_id }));
    expect(closeFirst.cleaned_up).toBe(false); // the second session still uses it
    expect(fs.existsSync(first.workspace_path)).toBe(true);
    const closeSecond = structured(await h.call("coding_close", { session_id: second.session_id }));
    expect(closeSecond.cleaned_up).toBe(true);
    expect(fs.existsSync(first.workspace_path)).toBe(false);
    structured(await h.call("coding_close", { session_id: other.session_id }));
  });

  it("works in the caller's own repository and never deletes it", async () => {
    const repo = path.join(h.allowedRoot, "mine");
    fs.mkdirSync(repo);
    git(repo, "init", "-q", "-b", "main");
    fs.writeFileSync(path.join(repo, "app.js"), "console.log(1)\n");
    const opened = structured(await h.call("coding_open", { workspace_path: repo }));
    expect(opened.managed).toBe(false);
    expect(opened.workspace_path).toBe(fs.realpathSync(repo));
    const result = structured(await h.call("code", { session_id: opened.session_id, task: "Add hello.py" }));
    expect(result.success).toBe(true);
    const closed = structured(await h.call("coding_close", { session_id: opened.session_id }));
    expect(closed.cleaned_up).toBe(false);
    expect(fs.existsSync(path.join(repo, "hello.py"))).toBe(true);
    expect(fs.existsSync(path.join(repo, "app.js"))).toBe(true);
  });
});

describe("bad input gets a clear error and changes nothing", () => {
  const unknown = "cs_doesnotexist";

  function workspacesOnDisk(): string[] {
    return fs.readdirSync(h.basePath).filter((n) => !n.startsWith("."));
  }

  it.each([
    ["code", { session_id: unknown, task: "x" }],
    ["coding_commit", { session_id: unknown, message: "x" }],
    ["coding_push", { session_id: unknown }],
    ["coding_close", { session_id: unknown }],
  ])("%s with an unknown session", async (tool, args) => {
    const before = workspacesOnDisk();
    const result = await h.call(tool, args);
    expect(result.isError).toBe(true);
    expect(textOf(result)).toContain(`unknown session_id "${unknown}"`);
    expect(textOf(result)).toContain("coding_open");
    expect(workspacesOnDisk()).toEqual(before);
  });

  it("refuses a workspace_path outside the allowed roots", async () => {
    const outside = fs.mkdtempSync(path.join(h.dir, "outside-"));
    git(outside, "init", "-q");
    const before = workspacesOnDisk();
    const result = await h.call("coding_open", { workspace_path: outside });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toContain("outside the allowed roots");
    expect(textOf(result)).toContain("workspace.allowed_roots");
    expect(workspacesOnDisk()).toEqual(before);
    expect(fs.readdirSync(outside)).toEqual([".git"]);
  });

  it("refuses a symlink that leads out of the allowed roots", async () => {
    const outside = fs.mkdtempSync(path.join(h.dir, "escape-"));
    const link = path.join(h.allowedRoot, "sneaky");
    fs.symlinkSync(outside, link);
    const result = await h.call("coding_open", { workspace_path: link });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toContain("outside the allowed roots");
  });

  it("refuses a task that is missing or empty", async () => {
    const opened = structured(await h.call("coding_open", {}));
    const requestsBefore = h.fake.requests.length;
    const missing = await h.call("code", { session_id: opened.session_id });
    expect(missing.isError).toBe(true);
    expect(textOf(missing)).toMatch(/task/);
    const blank = await h.call("code", { session_id: opened.session_id, task: "   " });
    expect(blank.isError).toBe(true);
    expect(textOf(blank)).toContain("task is empty");
    // Nothing reached the agent: the session's next task is its first, so the model sees one user message.
    // (A refused prompt sent anyway would be in the session's history, or be a model call of its own.)
    const next = structured(await h.call("code", { session_id: opened.session_id, task: "Write notes.md" }));
    expect(next.success).toBe(true);
    const calls = h.fake.requests.slice(requestsBefore).filter((body: { tools?: unknown[] }) => body.tools?.length);
    expect(calls.length).toBeGreaterThan(0);
    for (const body of calls) {
      const users = (body.messages as { role: string; content: unknown }[]).filter((m) => m.role === "user");
      expect(users).toHaveLength(1);
      expect(JSON.stringify(users[0]!.content)).toContain("Write notes.md");
    }
    structured(await h.call("coding_close", { session_id: opened.session_id }));
  });

  it("refuses every tool on a closed session", async () => {
    const opened = structured(await h.call("coding_open", {}));
    structured(await h.call("coding_close", { session_id: opened.session_id }));
    for (const [tool, args] of [
      ["code", { task: "x" }],
      ["coding_commit", { message: "x" }],
      ["coding_push", {}],
      ["coding_close", {}],
    ] as const) {
      const result = await h.call(tool, { session_id: opened.session_id, ...args });
      expect(result.isError, tool).toBe(true);
      expect(textOf(result), tool).toContain("is closed");
    }
  });

  it("refuses a transport helper URL and creates nothing", async () => {
    const marker = path.join(h.dir, "pwned");
    const before = workspacesOnDisk();
    const result = await h.call("coding_open", { repo_url: `ext::sh -c touch% ${marker}` });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toContain("repo_url");
    expect(fs.existsSync(marker)).toBe(false);
    expect(workspacesOnDisk()).toEqual(before);
  });

  it("refuses a files entry outside the workspace before running anything", async () => {
    const opened = structured(await h.call("coding_open", {}));
    const requestsBefore = h.fake.requests.length;
    const result = await h.call("code", { session_id: opened.session_id, task: "look", files: ["../../etc/passwd"] });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toContain("outside the workspace");
    expect(h.fake.requests.length).toBe(requestsBefore);
    structured(await h.call("coding_close", { session_id: opened.session_id }));
  });
});

describe("restart", () => {
  it("keeps a session usable across a restart of coding-mcp between code calls", async () => {
    const opened = structured(await h.call("coding_open", { title: "restart" }));
    const first = structured(await h.call("code", { session_id: opened.session_id, task: "Create one.py" }));
    expect(first.success).toBe(true);

    await h.restart();

    const second = structured(await h.call("code", { session_id: opened.session_id, task: "Create two.py" }));
    expect(second.success).toBe(true);
    // Only the second task's turn is in its trace.
    expect(second.trace.tool_calls.map((c: { input: { filePath?: string } }) => c.input.filePath).filter(Boolean)).toEqual([
      path.join(opened.workspace_path, "two.py"),
    ]);
    expect(second.files_changed.map((f: { path: string }) => f.path)).toEqual(["two.py"]);
    const closed = structured(await h.call("coding_close", { session_id: opened.session_id }));
    expect(closed.totals.tasks).toBe(2);
    expect(closed.files_changed.map((f: { path: string }) => f.path).sort()).toEqual(["one.py", "two.py"]);
  });
});
