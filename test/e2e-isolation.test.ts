import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { git, makeBareRemote, startHarness, structured, textOf, type Harness } from "./support/harness.js";

// Parallel agents on one repository, and the change as something to review, end to end: the built
// coding-mcp over stdio, the real OpenCode and the scripted model, and real git. Everything is checked
// with git itself: branches, the worktree list, what the remote received, and the owner's checkout
// (files, index, HEAD, stash, status) byte for byte.

let h: Harness;
let owner: string;
let remote: string;
let ownerBefore: OwnerState;
const TOKEN = `ghp_${"Z9".repeat(18)}`;
// Tests that run agent tasks (two at once, on shared and busy machines) get more than the default bound.
const TASK_TEST_TIMEOUT = 300_000;

beforeAll(async () => {
  h = await startHarness();
  remote = makeBareRemote(h.dir, "owner-remote.git");
  owner = fs.realpathSync(h.allowedRoot) + "/owner";
  git(h.allowedRoot, "clone", "-q", remote, owner);
  git(owner, "config", "user.name", "Owner");
  git(owner, "config", "user.email", "owner@example.test");
  fs.writeFileSync(path.join(owner, "app.js"), "console.log(1)\n");
  git(owner, "add", "app.js");
  git(owner, "commit", "-q", "-m", "app");
  // Work in progress of every kind: a stash entry, a staged and an unstaged change, an untracked scratch file.
  fs.writeFileSync(path.join(owner, "app.js"), "console.log('stashed')\n");
  git(owner, "stash", "-q");
  fs.writeFileSync(path.join(owner, "README.md"), "# demo, staged by the owner\n");
  git(owner, "add", "README.md");
  fs.writeFileSync(path.join(owner, "app.js"), "console.log('work in progress')\n");
  fs.writeFileSync(path.join(owner, "scratch.txt"), "the owner's notes\n");
  ownerBefore = ownerState(owner);
});

afterAll(async () => {
  await h?.close();
});

type OwnerState = ReturnType<typeof ownerState>;

/** What isolation must never touch in the owner's checkout, read without refreshing the index. */
function ownerState(repo: string) {
  const files: Record<string, string> = {};
  for (const entry of fs.readdirSync(repo, { recursive: true, withFileTypes: true })) {
    const full = path.join(entry.parentPath, entry.name);
    const rel = path.relative(repo, full);
    if (entry.isFile() && !rel.startsWith(".git")) files[rel] = fs.readFileSync(full).toString("base64");
  }
  return {
    files,
    index: fs.readFileSync(path.join(repo, ".git", "index")).toString("base64"),
    head: fs.readFileSync(path.join(repo, ".git", "HEAD"), "utf8"),
    main: git(repo, "rev-parse", "refs/heads/main"),
    stash: git(repo, "stash", "list", "--format=%H %s"),
    status: git(repo, "--no-optional-locks", "status", "--porcelain=v1", "--untracked-files=all"),
  };
}

/** The working tree's change against `base` as plain git shows it (through a throw-away index, untracked files included). */
function gitDiffOfWorkingTree(dir: string, base: string): string {
  const index = path.join(os.tmpdir(), `coding-mcp-test-index-${randomBytes(6).toString("hex")}`);
  const env = { ...process.env, GIT_INDEX_FILE: index };
  try {
    execFileSync("git", ["add", "-A"], { cwd: dir, env });
    return execFileSync("git", ["diff", "--cached", "-M", base], { cwd: dir, env, encoding: "utf8" });
  } finally {
    fs.rmSync(index, { force: true });
  }
}

function rawGit(dir: string, ...args: string[]): string {
  return execFileSync("git", args, { cwd: dir, encoding: "utf8" });
}

function worktreeList(): string {
  return git(owner, "worktree", "list", "--porcelain");
}

function resourceLinks(result: CallToolResult) {
  return (result.content ?? []).filter((c) => c.type === "resource_link");
}

describe("isolated sessions on one repository", () => {
  let a: { session_id: string; workspace_path: string; branch: string };
  let b: { session_id: string; workspace_path: string; branch: string };

  it("lists coding_diff and the diff resource template", async () => {
    const { tools } = await h.client.listTools();
    const diff = tools.find((t) => t.name === "coding_diff");
    expect(diff?.annotations?.readOnlyHint).toBe(true);
    expect(Object.keys(diff?.inputSchema.properties ?? {})).toEqual(["session_id", "since", "paths", "max_bytes"]);
    const { resourceTemplates } = await h.client.listResourceTemplates();
    expect(resourceTemplates).toContainEqual(expect.objectContaining({ uriTemplate: "coding://sessions/{session_id}/diff", mimeType: "text/x-diff" }));
  });

  it("work in parallel, each in its own worktree and branch, without touching the owner's checkout", async () => {
    a = structured(await h.call("coding_open", { workspace_path: owner, isolation: "worktree" }));
    b = structured(await h.call("coding_open", { workspace_path: owner, isolation: "worktree", branch: "attempt-b" }));
    expect(a).toMatchObject({ isolation: "worktree", managed: true, branch: `coding-mcp/${a.session_id}` });
    expect(b).toMatchObject({ isolation: "worktree", managed: true, branch: "attempt-b" });
    for (const s of [a, b]) {
      expect(path.dirname(s.workspace_path)).toBe(h.basePath);
      expect(git(s.workspace_path, "symbolic-ref", "--short", "HEAD")).toBe(s.branch);
      expect(git(s.workspace_path, "rev-parse", "HEAD")).toBe(ownerBefore.main);
      // The owner's work in progress is not in the worktree.
      expect(fs.readFileSync(path.join(s.workspace_path, "app.js"), "utf8")).toBe("console.log(1)\n");
      expect(fs.existsSync(path.join(s.workspace_path, "scratch.txt"))).toBe(false);
    }
    const list = worktreeList();
    expect(list).toContain(`worktree ${a.workspace_path}\nHEAD ${ownerBefore.main}\nbranch refs/heads/${a.branch}`);
    expect(list).toContain(`worktree ${b.workspace_path}\nHEAD ${ownerBefore.main}\nbranch refs/heads/${b.branch}`);

    const [codeA, codeB] = await Promise.all([
      h.call("code", { session_id: a.session_id, task: "Create alpha.py that prints a greeting" }),
      h.call("code", { session_id: b.session_id, task: `Write beta.md noting the deploy key ${TOKEN}` }),
    ]);
    const resultA = structured(codeA);
    const resultB = structured(codeB);
    expect(resultA.success).toBe(true);
    expect(resultB.success).toBe(true);
    // Each task's files are its own: neither the other session's nor the owner's.
    expect(resultA.files_changed.map((f: { path: string }) => f.path)).toEqual(["alpha.py"]);
    expect(resultB.files_changed.map((f: { path: string }) => f.path)).toEqual(["beta.md"]);
    expect(fs.existsSync(path.join(a.workspace_path, "beta.md"))).toBe(false);
    expect(fs.existsSync(path.join(b.workspace_path, "alpha.py"))).toBe(false);
    // The answers link to the diff resource.
    expect(resourceLinks(codeA)).toEqual([expect.objectContaining({ uri: `coding://sessions/${a.session_id}/diff`, mimeType: "text/x-diff" })]);

    expect(ownerState(owner)).toEqual(ownerBefore);
  }, TASK_TEST_TIMEOUT);

  it("shows each session's change as a diff, as the tool and as the resource, matching git diff", async () => {
    const diffA = structured(await h.call("coding_diff", { session_id: a.session_id }));
    expect(diffA.since).toBe("open");
    expect(diffA.truncated).toBe(false);
    expect(diffA.files_changed).toEqual([{ path: "alpha.py", status: "added", additions: 1, deletions: 0 }]);
    expect(diffA.diff).toBe(gitDiffOfWorkingTree(a.workspace_path, ownerBefore.main));
    expect(diffA.diff).toContain("+++ b/alpha.py\n");

    const read = await h.client.readResource({ uri: `coding://sessions/${a.session_id}/diff` });
    expect(read.contents).toEqual([expect.objectContaining({ uri: `coding://sessions/${a.session_id}/diff`, mimeType: "text/x-diff", text: diffA.diff })]);

    // A secret the agent wrote into a file is redacted in the tool answer, its text and the resource.
    const diffB = await h.call("coding_diff", { session_id: b.session_id });
    expect(fs.readFileSync(path.join(b.workspace_path, "beta.md"), "utf8")).toContain(TOKEN);
    expect(JSON.stringify(diffB)).not.toContain(TOKEN);
    expect(structured(diffB).diff).toContain("[REDACTED]");
    const readB = await h.client.readResource({ uri: `coding://sessions/${b.session_id}/diff` });
    expect(JSON.stringify(readB)).not.toContain(TOKEN);

    // Bounded: a tiny max_bytes cuts at a line and says so.
    const cut = structured(await h.call("coding_diff", { session_id: a.session_id, max_bytes: 60 }));
    expect(cut.truncated).toBe(true);
    expect(diffA.diff.startsWith(cut.diff)).toBe(true);
    expect(Buffer.byteLength(cut.diff)).toBeLessThanOrEqual(60);

    const unknown = await h.client.readResource({ uri: "coding://sessions/cs_nope000/diff" }).then(
      () => "read",
      (e: Error) => e.message,
    );
    expect(unknown).toContain('unknown session_id "cs_nope000"');
  });

  it("commits on the session branch only, pushes it with a merge hint, and close keeps the branch", async () => {
    const commit = structured(await h.call("coding_commit", { session_id: a.session_id, message: "Add alpha.py" }));
    expect(commit.committed).toBe(true);
    expect(commit.left_out).toBeUndefined();
    expect(git(owner, "rev-parse", `refs/heads/${a.branch}`)).toBe(commit.commit_hash);
    expect(git(owner, "show", "--name-only", "--format=", commit.commit_hash)).toBe("alpha.py");
    expect(git(owner, "rev-parse", `refs/heads/${b.branch}`)).toBe(ownerBefore.main);

    // Since the session opened: the committed change, as git diff shows it; not committed yet: nothing.
    const sinceOpen = structured(await h.call("coding_diff", { session_id: a.session_id }));
    expect(sinceOpen.diff).toBe(rawGit(owner, "diff", "-M", ownerBefore.main, a.branch));
    const sinceCommit = structured(await h.call("coding_diff", { session_id: a.session_id, since: "commit" }));
    expect(sinceCommit).toMatchObject({ diff: "", files_changed: [], truncated: false, since: "commit", base: commit.commit_hash });

    const pushed = await h.call("coding_push", { session_id: a.session_id });
    const push = structured(pushed);
    expect(push).toMatchObject({ pushed: true, remote: "origin", branch: a.branch });
    expect(git(remote, "rev-parse", `refs/heads/${a.branch}`)).toBe(commit.commit_hash);
    expect(push.merge_hint).toContain(`git -C ${owner} merge ${a.branch}`);
    expect(textOf(pushed)).toContain("merge");

    const closed = structured(await h.call("coding_close", { session_id: a.session_id }));
    expect(closed.cleaned_up).toBe(true);
    expect(closed.files_changed.map((f: { path: string }) => f.path)).toEqual(["alpha.py"]);
    expect(fs.existsSync(a.workspace_path)).toBe(false);
    expect(worktreeList()).not.toContain(a.workspace_path);
    expect(git(owner, "rev-parse", `refs/heads/${a.branch}`)).toBe(commit.commit_hash);
    expect(ownerState(owner)).toEqual(ownerBefore);
  });

  it("is still known after a restart; a worktree deleted behind coding-mcp's back is reported, and close tidies up", async () => {
    await h.restart();
    const diffB = structured(await h.call("coding_diff", { session_id: b.session_id }));
    expect(diffB.files_changed.map((f: { path: string }) => f.path)).toEqual(["beta.md"]);

    fs.rmSync(b.workspace_path, { recursive: true, force: true });
    const status = structured(await h.call("coding_status", { session_id: b.session_id }));
    expect(status.sessions[0].warnings.join(" ")).toContain(`worktree of session ${b.session_id} at ${b.workspace_path} no longer exists`);
    for (const [tool, args] of [
      ["code", { task: "x" }],
      ["coding_diff", {}],
      ["coding_commit", { message: "x" }],
    ] as const) {
      const refused = await h.call(tool, { session_id: b.session_id, ...args });
      expect(refused.isError, tool).toBe(true);
      expect(textOf(refused)).toContain("no longer exists");
      expect(textOf(refused)).toContain("coding_close");
    }
    const closed = structured(await h.call("coding_close", { session_id: b.session_id }));
    expect(closed.warnings.join(" ")).toContain("no longer exists");
    expect(worktreeList()).not.toContain(b.workspace_path);
    expect(git(owner, "rev-parse", "refs/heads/attempt-b")).toBe(ownerBefore.main);
    expect(ownerState(owner)).toEqual(ownerBefore);
  });

  it("shares one worktree between the sessions of a workflow", async () => {
    const first = structured(await h.call("coding_open", { workspace_path: owner, isolation: "worktree", scope: "workflow", scope_id: "wf-iso" }));
    const second = structured(await h.call("coding_open", { workspace_path: owner, scope: "workflow", scope_id: "wf-iso" }));
    expect(second).toMatchObject({ workspace_path: first.workspace_path, branch: first.branch, isolation: "worktree", reused_workspace: true });
    const mismatch = await h.call("coding_open", { workspace_path: owner, isolation: "none", scope: "workflow", scope_id: "wf-iso" });
    expect(mismatch.isError).toBe(true);
    expect(textOf(mismatch)).toContain('isolation "worktree"');
    expect(structured(await h.call("coding_close", { session_id: first.session_id })).cleaned_up).toBe(false);
    expect(structured(await h.call("coding_close", { session_id: second.session_id })).cleaned_up).toBe(true);
    expect(fs.existsSync(first.workspace_path)).toBe(false);
    expect(git(owner, "branch", "--list", first.branch)).toContain(first.branch);
  });
});

describe("a session in the owner's own checkout", () => {
  it("commits what the session changed and leaves the owner's earlier work out, saying so", async () => {
    const plain = path.join(fs.realpathSync(h.allowedRoot), "plain");
    git(h.allowedRoot, "clone", "-q", remote, plain);
    fs.writeFileSync(path.join(plain, "README.md"), "# demo, edited by the owner\n");
    fs.writeFileSync(path.join(plain, "scratch.txt"), "the owner's notes\n");
    const headBefore = git(plain, "rev-parse", "HEAD");

    const opened = structured(await h.call("coding_open", { workspace_path: plain }));
    expect(opened).toMatchObject({ isolation: "none", managed: false, workspace_path: plain });
    expect(structured(await h.call("code", { session_id: opened.session_id, task: "Create gamma.py that prints a greeting" })).success).toBe(true);

    // Before committing: since the session opened shows only the session's file; the owner's edits are not the session's.
    const review = structured(await h.call("coding_diff", { session_id: opened.session_id }));
    expect(review.files_changed.map((f: { path: string }) => f.path)).toEqual(["gamma.py"]);
    const pending = structured(await h.call("coding_diff", { session_id: opened.session_id, since: "commit" }));
    expect(pending.files_changed.map((f: { path: string }) => f.path)).toEqual(["gamma.py"]);
    expect(pending.left_out.sort()).toEqual(["README.md", "scratch.txt"]);
    expect(pending.diff).not.toContain("edited by the owner");

    const committed = await h.call("coding_commit", { session_id: opened.session_id, message: "Add gamma.py" });
    const commit = structured(committed);
    expect(commit.committed).toBe(true);
    expect(commit.left_out.sort()).toEqual(["README.md", "scratch.txt"]);
    expect(textOf(committed)).toContain("Left out");
    expect(git(plain, "rev-parse", "HEAD^")).toBe(headBefore);
    expect(git(plain, "show", "--name-only", "--format=", "HEAD")).toBe("gamma.py");
    // The owner's work in progress is as it was: still uncommitted, byte for byte.
    expect(fs.readFileSync(path.join(plain, "README.md"), "utf8")).toBe("# demo, edited by the owner\n");
    expect(fs.readFileSync(path.join(plain, "scratch.txt"), "utf8")).toBe("the owner's notes\n");
    expect(rawGit(plain, "status", "--porcelain=v1", "--untracked-files=all")).toBe(" M README.md\n?? scratch.txt\n");

    // Named in paths, an owner's file is committed after all.
    const named = structured(await h.call("coding_commit", { session_id: opened.session_id, message: "Notes", paths: ["scratch.txt"] }));
    expect(named.committed).toBe(true);
    expect(named.left_out).toEqual(["README.md"]);
    expect(git(plain, "show", "--name-only", "--format=", "HEAD")).toBe("scratch.txt");
    structured(await h.call("coding_close", { session_id: opened.session_id }));
  }, TASK_TEST_TIMEOUT);
});

describe("bad input for isolation is answered clearly and leaves nothing behind", () => {
  it.each([
    ["not a git repository", () => mkdir("not-git"), {}, "is not a git repository"],
    ["a bare repository", () => initRepo("bare.git", ["init", "-q", "--bare"]), {}, "is a bare repository"],
    ["a detached HEAD", () => detachedClone(), {}, "detached HEAD"],
    ["a branch that exists", () => owner, { branch: "main" }, "branch main already exists"],
    ["an invalid branch name", () => owner, { branch: "bad..name" }, "not a valid branch name"],
    ["a path outside the allowed roots", () => fs.mkdtempSync(path.join(h.dir, "outside-")), {}, "outside the allowed roots"],
  ])("%s", async (_what, makePath, extra, message) => {
    const workspacePath = makePath();
    const before = { base: fs.readdirSync(h.basePath).sort(), records: records(), branches: git(owner, "branch", "--list"), worktrees: worktreeList(), owner: ownerState(owner) };
    const result = await h.call("coding_open", { workspace_path: workspacePath, isolation: "worktree", ...extra });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toContain(message);
    expect({ base: fs.readdirSync(h.basePath).sort(), records: records(), branches: git(owner, "branch", "--list"), worktrees: worktreeList(), owner: ownerState(owner) }).toEqual(before);
  });

  it("isolation without workspace_path", async () => {
    const result = await h.call("coding_open", { isolation: "worktree" });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toContain('isolation "worktree" needs a workspace_path');
  });

  function mkdir(name: string): string {
    const dir = path.join(h.allowedRoot, name);
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  }

  function initRepo(name: string, args: string[]): string {
    const dir = mkdir(name);
    git(dir, ...args);
    return dir;
  }

  function detachedClone(): string {
    const dir = path.join(h.allowedRoot, "detached");
    git(h.allowedRoot, "clone", "-q", remote, dir);
    git(dir, "checkout", "-q", "--detach", "HEAD");
    return dir;
  }

  /** Workspace records that are not marked removed. */
  function records(): string[] {
    const dir = path.join(h.basePath, ".coding-mcp", "workspaces");
    return fs
      .readdirSync(dir)
      .filter((n) => !JSON.parse(fs.readFileSync(path.join(dir, n), "utf8")).removed_at)
      .sort();
  }
});
