import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { createApp, type App } from "../../src/app.js";
import type { CodingBackend, RunTaskRequest } from "../../src/backend.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/log.js";
import { emptyTokens, type TaskResult } from "../../src/model.js";
import { Redactor } from "../../src/redact.js";
import { Git } from "../../src/workspace/git.js";
import { WorkspaceManager } from "../../src/workspace/manager.js";

// Session rules around isolation, in process and fast: the real SessionManager, records and git, with
// a scripted backend in place of an agent (its "task" edits files as the script says). The end-to-end
// flow with the real OpenCode is test/e2e-isolation.test.ts.

let dir: string;
let app: App;
/** What the next task does in its directory. */
let script: (directory: string) => void = () => undefined;
/** When set, opening a backend session fails with it. */
let openFailure: Error | undefined;

const scriptedBackend: CodingBackend = {
  name: "opencode",
  telemetry: { agent: "scripted", prefix: "scripted" },
  confinesCommands: false,
  start: async () => undefined,
  models: async () => undefined,
  describeModel: (model) => ({ model }),
  async openSession() {
    if (openFailure) throw openFailure;
    return { id: `scripted-${Math.random().toString(36).slice(2)}` };
  },
  async runTask(request: RunTaskRequest): Promise<TaskResult> {
    script(request.directory);
    return {
      success: true,
      summary: "scripted",
      trace: { model: "scripted", provider: "test", cost: 0, tokens: emptyTokens(), duration_ms: 1, finish_reason: "stop", tool_calls: [], reasoning: [] },
    };
  },
  resumeTask: async () => {
    throw new Error("not used");
  },
  abort: async () => undefined,
  closeSession: async () => undefined,
  stop: async () => undefined,
};

function git(cwd: string, ...args: string[]): string {
  return execFileSync("git", args, { cwd, encoding: "utf8", env: { ...process.env, GIT_TERMINAL_PROMPT: "0" } });
}

const savedEnv = { HOME: process.env.HOME, GIT_CONFIG_NOSYSTEM: process.env.GIT_CONFIG_NOSYSTEM };

beforeAll(async () => {
  dir = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "coding-mcp-isolation-")));
  // Neither the user's git config nor the system's is read (coding-mcp's git inherits this process's environment).
  process.env.HOME = dir;
  process.env.GIT_CONFIG_NOSYSTEM = "1";
  const configFile = path.join(dir, "config.yaml");
  fs.writeFileSync(
    configFile,
    stringify({ workspace: { base_path: path.join(dir, "workspaces"), allowed_roots: [path.join(dir, "repos")] }, git: { user_name: "Test Bot", user_email: "bot@example.test" } }),
  );
  const env = { ...process.env, HOME: dir, GIT_CONFIG_NOSYSTEM: "1" };
  app = await createApp(loadConfig({ configPath: configFile, env }), { env, log: createLogger(new Redactor([]), "error"), backends: () => [scriptedBackend] });
});

afterAll(async () => {
  await app?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
  for (const [k, v] of Object.entries(savedEnv)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

beforeEach(() => {
  script = () => undefined;
  openFailure = undefined;
});

/** A repository in the allowed roots with two committed files and a README. */
function repository(name: string): string {
  const repo = path.join(dir, "repos", name);
  fs.mkdirSync(path.join(repo, "src"), { recursive: true });
  git(repo, "init", "-q", "-b", "main");
  git(repo, "config", "user.name", "Owner");
  git(repo, "config", "user.email", "owner@example.test");
  fs.writeFileSync(path.join(repo, "README.md"), "# repo\n");
  fs.writeFileSync(path.join(repo, "src", "app.js"), "console.log(1)\n");
  fs.writeFileSync(path.join(repo, "src", "old.js"), "old\n");
  git(repo, "add", "-A");
  git(repo, "commit", "-q", "-m", "init");
  return repo;
}

describe("isolated sessions", () => {
  it("leave nothing behind when the session cannot open: no worktree, no branch, no directory, no live record", async () => {
    const repo = repository("failing");
    const branches = git(repo, "branch", "--list");
    const worktrees = git(repo, "worktree", "list", "--porcelain");
    const base = fs.readdirSync(app.config.workspace.base_path).sort();
    openFailure = new Error("the backend is down");
    await expect(app.sessions.open({ workspace_path: repo, isolation: "worktree", branch: "wip" })).rejects.toThrow("the backend is down");
    expect(git(repo, "branch", "--list")).toBe(branches);
    expect(git(repo, "worktree", "list", "--porcelain")).toBe(worktrees);
    expect(fs.readdirSync(app.config.workspace.base_path).sort()).toEqual(base);
    expect((await app.records.workspaces.refresh()).filter((w) => !w.removed_at && w.source_repo === repo)).toEqual([]);
    // The same branch name can be used right away.
    openFailure = undefined;
    const opened = await app.sessions.open({ workspace_path: repo, isolation: "worktree", branch: "wip" });
    expect(opened.branch).toBe("wip");
    await app.sessions.close({ session_id: opened.session_id });
  });

  it("refuse a worktree that would land inside the caller's repository", async () => {
    const repo = repository("holds-base");
    const config = { ...app.config, workspace: { ...app.config.workspace, base_path: path.join(repo, "workspaces") } };
    const manager = new WorkspaceManager(config, new Git({ redactor: new Redactor([]) }), createLogger(new Redactor([]), "error"));
    const source = await manager.sourceForWorktree(repo);
    await expect(manager.createWorktree("ws_inside", source, "inside")).rejects.toThrow(/is inside the repository/);
    expect(git(repo, "branch", "--list")).toBe("* main\n");
    expect(git(repo, "status", "--porcelain")).toBe("");
  });

  it("push without a remote says the branch is already in the caller's repository", async () => {
    const repo = repository("no-remote");
    const opened = await app.sessions.open({ workspace_path: repo, isolation: "worktree" });
    const err = await app.sessions.push({ session_id: opened.session_id }).then(
      () => undefined,
      (e: { message: string; hint?: string }) => e,
    );
    expect(err?.message).toContain('remote "origin" does not exist');
    expect(err?.hint).toContain(`git -C ${repo} merge ${opened.branch}`);
    await app.sessions.close({ session_id: opened.session_id });
  });
});

describe("a session in the caller's own checkout", () => {
  it("commits only its own change: the owner's staged, unstaged and untracked work stays as it was", async () => {
    const repo = repository("own");
    fs.writeFileSync(path.join(repo, "README.md"), "# repo, staged by the owner\n");
    git(repo, "add", "README.md");
    fs.writeFileSync(path.join(repo, "src", "app.js"), "console.log('owner wip')\n");
    fs.writeFileSync(path.join(repo, "notes.txt"), "owner's notes\n");
    const head = git(repo, "rev-parse", "HEAD").trim();

    // Opened on a subdirectory: paths given relative to it, answers from the repository's top.
    const opened = await app.sessions.open({ workspace_path: path.join(repo, "src") });
    script = (directory) => {
      fs.writeFileSync(path.join(directory, "new.js"), "export const added = 1;\n");
      fs.rmSync(path.join(directory, "old.js"));
      fs.appendFileSync(path.join(directory, "app.js"), "console.log('agent')\n");
    };
    const answer = await app.sessions.code({ session_id: opened.session_id, task: "edit" });
    expect(answer.state).toBe("done");

    const pending = await app.sessions.diff({ session_id: opened.session_id, since: "commit" });
    expect(pending.files_changed.map((f) => f.path).sort()).toEqual(["src/new.js", "src/old.js"]);
    expect(pending.left_out?.sort()).toEqual(["README.md", "notes.txt", "src/app.js"]);
    expect(pending.diff).not.toContain("owner");
    // Since the session opened: the agent's line in app.js shows, the owner's earlier edit does not.
    const sinceOpen = await app.sessions.diff({ session_id: opened.session_id });
    expect(sinceOpen.files_changed.map((f) => f.path).sort()).toEqual(["src/app.js", "src/new.js", "src/old.js"]);
    expect(sinceOpen.diff).toContain("+console.log('agent')\n");
    expect(sinceOpen.diff).not.toContain("-console.log(1)");

    const commit = await app.sessions.commit({ session_id: opened.session_id, message: "agent change" });
    expect(commit.committed).toBe(true);
    expect(commit.left_out?.sort()).toEqual(["README.md", "notes.txt", "src/app.js"]);
    expect(git(repo, "rev-parse", "HEAD^").trim()).toBe(head);
    expect(git(repo, "show", "--name-status", "--format=", "HEAD")).toBe("A\tsrc/new.js\nD\tsrc/old.js\n");
    // The owner's staged change is still staged, the rest still uncommitted, byte for byte.
    expect(git(repo, "status", "--porcelain=v1", "--untracked-files=all")).toBe("M  README.md\n M src/app.js\n?? notes.txt\n");
    expect(git(repo, "diff", "--cached", "--name-only")).toBe("README.md\n");
    expect(fs.readFileSync(path.join(repo, "README.md"), "utf8")).toBe("# repo, staged by the owner\n");
    expect(fs.readFileSync(path.join(repo, "src", "app.js"), "utf8")).toBe("console.log('owner wip')\nconsole.log('agent')\n");

    // Nothing of the session's own is left: a second commit has nothing to do, and says what it left out.
    const again = await app.sessions.commit({ session_id: opened.session_id, message: "again" });
    expect(again).toMatchObject({ committed: false, left_out: ["README.md", "src/app.js", "notes.txt"] });
    // Named (relative to the workspace), an owner's file is committed.
    const named = await app.sessions.commit({ session_id: opened.session_id, message: "app", paths: ["app.js"] });
    expect(named.committed).toBe(true);
    expect(git(repo, "show", "--name-only", "--format=", "HEAD")).toBe("src/app.js\n");
    expect(named.left_out?.sort()).toEqual(["README.md", "notes.txt"]);
    await app.sessions.close({ session_id: opened.session_id });
  });
});
