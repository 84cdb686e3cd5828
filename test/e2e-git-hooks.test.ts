import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGitHttpServer, type GitHttpServer } from "./support/git-http-server.js";
import { git, makeBareRemote, startHarness, structured, type Harness } from "./support/harness.js";

// The agent can write its workspace's .git/hooks and .git/config (core.hooksPath, core.fsmonitor) with a
// plain file edit. coding-mcp's own git runs with the push token in its environment, so none of its git
// commands may run a hook there (commit hooks only with git.run_hooks, which is off here). Every hook
// githooks(5) names is planted, through core.hooksPath and through .git/hooks, each writing a marker
// outside the workspace; then every tool is driven, with and without worktree isolation and in a
// managed clone, and a push carries the token to the smart-HTTP server. No marker may appear. A
// control shows that the planted hooks do run under a plain `git commit` of the same repository.

const TOKEN = `tok_${randomBytes(18).toString("hex")}`;
const TASK_TEST_TIMEOUT = 600_000;

// githooks(5), client and server side, with git-p4's and the fsmonitor hook.
const HOOKS = [
  "applypatch-msg",
  "pre-applypatch",
  "post-applypatch",
  "pre-commit",
  "pre-merge-commit",
  "prepare-commit-msg",
  "commit-msg",
  "post-commit",
  "pre-rebase",
  "post-checkout",
  "post-merge",
  "pre-push",
  "pre-receive",
  "update",
  "proc-receive",
  "post-receive",
  "post-update",
  "reference-transaction",
  "push-to-checkout",
  "pre-auto-gc",
  "post-rewrite",
  "sendemail-validate",
  "fsmonitor-watchman",
  "p4-changelist",
  "p4-prepare-changelist",
  "p4-post-changelist",
  "p4-pre-submit",
  "post-index-change",
];

// The agent's own commit (its business, not coding-mcp's) runs no hook either, so that every marker is coding-mcp's.
const AGENT_GIT = "git -c core.hooksPath=/dev/null -c core.fsmonitor=false -c user.name=Agent -c user.email=agent@example.test";

let h: Harness;
let server: GitHttpServer;
let served: string;
let markers: string;

beforeAll(async () => {
  h = await startHarness({ env: { GITHUB_TOKEN: TOKEN }, config: { git: { token_hosts: ["127.0.0.1"] } } });
  served = path.join(h.dir, "served");
  markers = path.join(h.dir, "markers");
  fs.mkdirSync(served);
  fs.mkdirSync(markers);
  server = await startGitHttpServer({ projectRoot: served, token: TOKEN });
  // Writes the file the task names and commits it with the agent's own git.
  h.fake.setScenario("commit-it", (ctx: { directory?: string; step: number; task: string }) => {
    const file = /[\w-]+\.txt/.exec(ctx.task)![0];
    if (ctx.step === 0) return { tools: [{ name: "write", args: { filePath: `${ctx.directory}/${file}`, content: "committed by the agent\n" } }] };
    if (ctx.step === 1) {
      const command = `${AGENT_GIT} add ${file} && ${AGENT_GIT} commit -q -m 'Agent commit'`;
      return { tools: [{ name: "bash", args: { command, description: "Commit" } }] };
    }
    return { text: "Committed." };
  });
});

afterAll(async () => {
  await server?.close();
  await h?.close();
});

/** Git for the test's own checks, with no hook or fsmonitor program run (so no marker is the test's). */
function quietGit(cwd: string, ...args: string[]): string {
  return git(cwd, "-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", ...args);
}

/** A served repository (the push target, token required) and its URL. */
function servedRepo(name: string): string {
  const bare = makeBareRemote(served, `${name}.git`);
  git(bare, "config", "http.receivepack", "true");
  return `${server.baseUrl}/${name}.git`;
}

/** Every hook in `dir`, each appending its name and working directory to `marker`. */
function writeHooks(dir: string, marker: string): void {
  fs.mkdirSync(dir, { recursive: true });
  for (const hook of HOOKS) {
    fs.writeFileSync(path.join(dir, hook), `#!/bin/sh\necho "${hook} in $PWD" >> '${marker}'\nexit 0\n`, { mode: 0o755 });
  }
}

type Planting = "core.hooksPath" | ".git/hooks";

/** Plant every hook in the repository at `repo` the way the agent could; answers the marker file they write. */
function plant(repo: string, how: Planting, name: string): string {
  const marker = path.join(markers, `${name}.log`);
  const gitDir = path.resolve(repo, quietGit(repo, "rev-parse", "--git-common-dir"));
  if (how === "core.hooksPath") {
    const hooks = path.join(h.dir, `hooks-${name}`);
    writeHooks(hooks, marker);
    fs.appendFileSync(path.join(gitDir, "config"), `[core]\n\thooksPath = ${hooks}\n\tfsmonitor = ${path.join(hooks, "fsmonitor-watchman")}\n`);
  } else {
    writeHooks(path.join(gitDir, "hooks"), marker);
  }
  return marker;
}

function markerText(marker: string): string {
  return fs.existsSync(marker) ? fs.readFileSync(marker, "utf8") : "";
}

/** Every tool on one open session: two tasks (one commits through the agent's bash), diff, commit, push with the token, status, close. */
async function driveEveryTool(sessionId: string, workspace: string, pushBranch: string, pushedTo: string): Promise<void> {
  const committed = structured(await h.call("code", { session_id: sessionId, task: `Commit ${pushBranch}.txt [[fake:commit-it]]` }));
  expect(committed.success).toBe(true);
  expect(committed.commits?.map((c: { subject: string }) => c.subject)).toEqual(["Agent commit"]);
  const written = structured(await h.call("code", { session_id: sessionId, task: `Create ${pushBranch}.py` }));
  expect(written.files_changed.map((f: { path: string }) => f.path)).toEqual([`${pushBranch}.py`]);
  const diff = structured(await h.call("coding_diff", { session_id: sessionId }));
  expect(diff.diff).toContain(`+++ b/${pushBranch}.py`);
  const commit = structured(await h.call("coding_commit", { session_id: sessionId, message: "Add feature" }));
  expect(commit.committed).toBe(true);
  expect(quietGit(workspace, "log", "-1", "--format=%s")).toBe("Add feature");
  const pushed = structured(await h.call("coding_push", { session_id: sessionId, branch: pushBranch }));
  expect(pushed.pushed).toBe(true);
  // The remote received the commit.
  expect(git(pushedTo, "rev-parse", `refs/heads/${pushBranch}`)).toBe(commit.commit_hash);
  const status = structured(await h.call("coding_status", { session_id: sessionId }));
  expect(status.sessions[0].session_id).toBe(sessionId);
  structured(await h.call("coding_close", { session_id: sessionId }));
}

describe.each<Planting>(["core.hooksPath", ".git/hooks"])("hooks planted through %s", (how) => {
  const name = how === "core.hooksPath" ? "hookspath" : "dotgit";
  let repo: string;
  let marker: string;
  let url: string;

  beforeAll(() => {
    url = servedRepo(`caller-${name}`);
    repo = path.join(h.allowedRoot, `caller-${name}`);
    git(h.allowedRoot, "init", "-q", "-b", "main", repo);
    git(repo, "config", "user.name", "Owner");
    git(repo, "config", "user.email", "owner@example.test");
    fs.writeFileSync(path.join(repo, "README.md"), "# caller\n");
    git(repo, "add", "README.md");
    git(repo, "commit", "-q", "-m", "start");
    git(repo, "remote", "add", "origin", url);
    marker = plant(repo, how, name);
  });

  it("run under a plain git commit of the repository (the control)", () => {
    fs.writeFileSync(path.join(repo, "control.txt"), "control\n");
    git(repo, "add", "control.txt");
    git(repo, "commit", "-q", "-m", "control");
    const ran = markerText(marker);
    for (const hook of ["pre-commit", "prepare-commit-msg", "commit-msg", "post-commit", "reference-transaction", "post-index-change"]) expect(ran).toContain(`${hook} in ${repo}`);
    if (how === "core.hooksPath") expect(ran).toContain("fsmonitor-watchman");
    fs.rmSync(marker);
  });

  it("never run under coding-mcp's git, without isolation", async () => {
    const opened = structured(await h.call("coding_open", { workspace_path: repo }));
    await driveEveryTool(opened.session_id, repo, `plain-${name}`, path.join(served, `caller-${name}.git`));
    expect(markerText(marker)).toBe("");
  }, TASK_TEST_TIMEOUT);

  it("never run under coding-mcp's git, in a worktree session", async () => {
    const opened = structured(await h.call("coding_open", { workspace_path: repo, isolation: "worktree" }));
    expect(opened.isolation).toBe("worktree");
    await driveEveryTool(opened.session_id, opened.workspace_path, `worktree-${name}`, path.join(served, `caller-${name}.git`));
    expect(fs.existsSync(opened.workspace_path)).toBe(false);
    expect(markerText(marker)).toBe("");
  }, TASK_TEST_TIMEOUT);

  it("never run under coding-mcp's git, in a managed clone the agent planted them in", async () => {
    const cloned = servedRepo(`managed-${name}`);
    const opened = structured(await h.call("coding_open", { repo_url: cloned }));
    const managedMarker = plant(opened.workspace_path, how, `managed-${name}`);
    await driveEveryTool(opened.session_id, opened.workspace_path, `managed-${name}`, path.join(served, `managed-${name}.git`));
    expect(markerText(managedMarker)).toBe("");
  }, TASK_TEST_TIMEOUT);
});
