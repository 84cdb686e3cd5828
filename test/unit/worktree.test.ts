import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { sh, throwawayGitHome, write } from "../support/git.js";
import { UserError } from "../../src/errors.js";
import { Redactor } from "../../src/redact.js";
import { stagedPaths, workingTreeDiff } from "../../src/workspace/diff.js";
import { dirtyPaths } from "../../src/workspace/working-tree.js";
import { Git } from "../../src/workspace/git.js";
import { addWorktree, checkNewBranch, inspectSourceRepository, removeWorktree } from "../../src/workspace/worktree.js";

// Worktrees and diffs against real git in throw-away repositories (with a throw-away HOME), checked
// with plain git: the owner's checkout must come out of every step byte for byte as it went in.

const git = new Git({ redactor: new Redactor([]) });
let scratch: string;
throwawayGitHome();
beforeEach(async () => {
  scratch = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), "coding-mcp-wt-")));
});
afterEach(async () => {
  await fs.rm(scratch, { recursive: true, force: true });
});

/**
 * A repository with two commits on main and work in progress of every kind: a staged change, an
 * unstaged change, an untracked file and a stash entry.
 */
async function ownerRepository(): Promise<string> {
  const repo = path.join(scratch, "owner");
  await fs.mkdir(repo);
  await sh(repo, "init", "-q", "-b", "main");
  await write(repo, "app.js", "console.log(1)\n");
  await write(repo, "lib/util.js", "export const x = 1;\n");
  await sh(repo, "add", "-A");
  await sh(repo, "commit", "-q", "-m", "first");
  await write(repo, "README.md", "# owner\n");
  await sh(repo, "add", "-A");
  await sh(repo, "commit", "-q", "-m", "second");
  await write(repo, "lib/util.js", "export const x = 2;\n");
  await sh(repo, "stash", "-q");
  await write(repo, "README.md", "# owner, staged\n");
  await sh(repo, "add", "README.md");
  await write(repo, "app.js", "console.log('work in progress')\n");
  await write(repo, "scratch.txt", "notes\n");
  return repo;
}

/** Everything of the owner's checkout a worktree must not touch, read without refreshing the index. */
async function ownerState(repo: string) {
  const files: Record<string, string> = {};
  for (const entry of await fs.readdir(repo, { recursive: true, withFileTypes: true })) {
    const full = path.join(entry.parentPath, entry.name);
    const rel = path.relative(repo, full);
    if (!entry.isFile() || rel.startsWith(".git")) continue;
    files[rel] = (await fs.readFile(full)).toString("base64");
  }
  return {
    files,
    index: (await fs.readFile(path.join(repo, ".git", "index"))).toString("base64"),
    head: await fs.readFile(path.join(repo, ".git", "HEAD"), "utf8"),
    main: await sh(repo, "rev-parse", "refs/heads/main"),
    stash: await sh(repo, "stash", "list", "--format=%H %s"),
    status: await sh(repo, "--no-optional-locks", "status", "--porcelain=v1", "--untracked-files=all"),
  };
}

function worktreeList(repo: string): Promise<string> {
  return sh(repo, "worktree", "list", "--porcelain");
}

async function expectUserError(promise: Promise<unknown>, code: string, text: RegExp): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UserError);
  expect((err as UserError).code).toBe(code);
  expect((err as UserError).message).toMatch(text);
}

describe("worktrees of a caller's repository", () => {
  it("adds a worktree on a new branch from HEAD and removes it keeping the branch, never touching the owner's checkout", async () => {
    const repo = await ownerRepository();
    const before = await ownerState(repo);
    const source = await inspectSourceRepository(git, path.join(repo, "lib"));
    expect(source).toEqual({ top: repo, head: before.main, branch: "main" });

    const dirA = path.join(scratch, "base", "ws_a");
    const dirB = path.join(scratch, "base", "ws_b");
    await addWorktree(git, { repo, dir: dirA, branch: "coding-mcp/cs_a", commit: source.head, timeoutMs: 60_000 });
    await addWorktree(git, { repo, dir: dirB, branch: "coding-mcp/cs_b", commit: source.head, timeoutMs: 60_000 });

    // Each worktree: its own branch at the owner's HEAD, the committed files only, none of the work in progress.
    for (const [dir, branch] of [[dirA, "coding-mcp/cs_a"], [dirB, "coding-mcp/cs_b"]] as const) {
      expect(await sh(dir, "symbolic-ref", "--short", "HEAD")).toBe(branch);
      expect(await sh(dir, "rev-parse", "HEAD")).toBe(before.main);
      expect(await fs.readFile(path.join(dir, "app.js"), "utf8")).toBe("console.log(1)\n");
      expect(await fs.readFile(path.join(dir, "README.md"), "utf8")).toBe("# owner\n");
      await expect(fs.stat(path.join(dir, "scratch.txt"))).rejects.toThrow();
      expect(await sh(dir, "status", "--porcelain")).toBe("");
    }
    const list = await worktreeList(repo);
    expect(list).toContain(`worktree ${dirA}\n`);
    expect(list).toContain(`worktree ${dirB}\n`);
    expect(await ownerState(repo)).toEqual(before);

    // A commit in one worktree lands on its branch only.
    await write(dirA, "feature.js", "export const feature = true;\n");
    await sh(dirA, "add", "-A");
    await sh(dirA, "commit", "-q", "-m", "feature");
    const featureCommit = await sh(dirA, "rev-parse", "HEAD");
    expect(await sh(repo, "rev-parse", "refs/heads/coding-mcp/cs_a")).toBe(featureCommit);
    expect(await sh(repo, "rev-parse", "refs/heads/coding-mcp/cs_b")).toBe(before.main);

    // Removal takes the directory and git's record of it, uncommitted work included; the branch stays.
    await write(dirA, "uncommitted.txt", "lost with the worktree\n");
    expect(await removeWorktree(git, { repo, dir: dirA })).toEqual([]);
    await expect(fs.stat(dirA)).rejects.toThrow();
    expect(await worktreeList(repo)).not.toContain(dirA);
    expect(await sh(repo, "rev-parse", "refs/heads/coding-mcp/cs_a")).toBe(featureCommit);
    expect(await ownerState(repo)).toEqual(before);
  });

  it("tidies up after a worktree whose directory was deleted behind its back", async () => {
    const repo = await ownerRepository();
    const dir = path.join(scratch, "base", "ws_gone");
    await addWorktree(git, { repo, dir, branch: "gone", commit: await sh(repo, "rev-parse", "HEAD"), timeoutMs: 60_000 });
    await fs.rm(dir, { recursive: true, force: true });
    expect(await worktreeList(repo)).toContain(dir);
    expect(await removeWorktree(git, { repo, dir })).toEqual([]);
    expect(await worktreeList(repo)).not.toContain(dir);
    expect(await sh(repo, "branch", "--list", "gone")).toContain("gone");
  });

  it("refuses an existing or invalid branch, a detached HEAD and a repository without commits, leaving nothing behind", async () => {
    const repo = await ownerRepository();
    const before = await ownerState(repo);
    const branches = await sh(repo, "branch", "--list");
    const list = await worktreeList(repo);
    const dir = path.join(scratch, "base", "ws_x");

    await expectUserError(addWorktree(git, { repo, dir, branch: "main", commit: before.main, timeoutMs: 60_000 }), "branch_exists", /branch main already exists/);
    await expectUserError(checkNewBranch(git, repo, "bad..name"), "invalid_branch", /not a valid branch name/);
    await expectUserError(addWorktree(git, { repo, dir, branch: "-x", commit: before.main, timeoutMs: 60_000 }), "invalid_branch", /not a valid branch name/);
    await expect(fs.stat(dir)).rejects.toThrow();
    expect(await sh(repo, "branch", "--list")).toBe(branches);
    expect(await worktreeList(repo)).toBe(list);
    expect(await ownerState(repo)).toEqual(before);

    const detached = path.join(scratch, "detached");
    await sh(scratch, "clone", "-q", repo, detached);
    await sh(detached, "checkout", "-q", "--detach", "HEAD");
    await expectUserError(inspectSourceRepository(git, detached), "detached_head", /detached HEAD/);

    const empty = path.join(scratch, "empty");
    await sh(scratch, "init", "-q", empty);
    await expectUserError(inspectSourceRepository(git, empty), "no_commits", /no commit yet/);
  });
});

describe("the changes in a checkout", () => {
  it("lists dirty paths from the repository's top without touching the index", async () => {
    const repo = await ownerRepository();
    await sh(repo, "mv", "lib/util.js", "lib/renamed.js");
    await fs.rm(path.join(repo, "app.js"));
    const index = await fs.readFile(path.join(repo, ".git", "index"));
    const paths = await dirtyPaths(git, path.join(repo, "lib"));
    expect(paths.sort()).toEqual(["README.md", "app.js", "lib/renamed.js", "lib/util.js", "scratch.txt"]);
    expect((await stagedPaths(git, path.join(repo, "lib"))).sort()).toEqual(["README.md", "lib/renamed.js", "lib/util.js"]);
    expect(await fs.readFile(path.join(repo, ".git", "index"))).toEqual(index);
  });

  it("diffs the working tree against a commit exactly as git diff does: renames, binary files, untracked files", async () => {
    const repo = await ownerRepository();
    const base = await sh(repo, "rev-parse", "HEAD");
    const body = Array.from({ length: 40 }, (_, i) => `line ${i}`).join("\n") + "\n";
    await write(repo, "lib/big.txt", body);
    await sh(repo, "add", "lib/big.txt");
    await sh(repo, "commit", "-q", "-m", "big");
    const withBig = await sh(repo, "rev-parse", "HEAD");
    await fs.rename(path.join(repo, "lib", "big.txt"), path.join(repo, "lib", "moved.txt"));
    await write(repo, "lib/moved.txt", body + "one more\n");
    await write(repo, "image.bin", Buffer.from([0, 1, 2, 3, 0, 255, 0, 10]));
    const index = await fs.readFile(path.join(repo, ".git", "index"));

    const result = await workingTreeDiff(git, repo, { base: withBig, maxBytes: 1_000_000 });
    expect(await fs.readFile(path.join(repo, ".git", "index"))).toEqual(index);
    expect(result.truncated).toBe(false);
    expect(result.diff).toContain("rename from lib/big.txt\nrename to lib/moved.txt\n");
    expect(result.diff).toContain("Binary files /dev/null and b/image.bin differ\n");
    expect(result.files).toContainEqual({ path: "lib/moved.txt", status: "renamed", additions: 1, deletions: 0 });
    expect(result.files).toContainEqual({ path: "image.bin", status: "added" });
    expect(result.files).toContainEqual({ path: "scratch.txt", status: "added", additions: 1, deletions: 0 });

    // What git itself says once everything is staged (this changes the test repository's index, which is fine now).
    await sh(repo, "add", "-A");
    expect(result.diff).toBe((await sh(repo, "diff", "--cached", "-M", withBig)) + "\n");

    // Against an older base, a path filter, and a file left out.
    const filtered = await workingTreeDiff(git, repo, { base, paths: ["lib"], leaveOut: (f) => f.path === "lib/moved.txt", maxBytes: 1_000_000 });
    expect(filtered.files).toEqual([]);
    expect(filtered.leftOut).toEqual(["lib/moved.txt"]);
    expect(filtered.diff).toBe("");
    const onlyReadme = await workingTreeDiff(git, repo, { base, paths: ["README.md"], maxBytes: 1_000_000 });
    expect(onlyReadme.diff).toBe((await sh(repo, "diff", "--cached", base, "--", "README.md")) + "\n");
  });

  it("cuts a long diff at a line boundary within max_bytes", async () => {
    const repo = await ownerRepository();
    await write(repo, "long.txt", Array.from({ length: 2000 }, (_, i) => `a fairly long line number ${i} with ünïcödé`).join("\n") + "\n");
    const full = await workingTreeDiff(git, repo, { base: "HEAD", maxBytes: 10_000_000 });
    const cut = await workingTreeDiff(git, repo, { base: "HEAD", maxBytes: 5_000 });
    expect(full.truncated).toBe(false);
    expect(cut.truncated).toBe(true);
    expect(Buffer.byteLength(cut.diff)).toBeLessThanOrEqual(5_000);
    expect(Buffer.byteLength(cut.diff)).toBeGreaterThan(4_800);
    expect(cut.diff.endsWith("\n")).toBe(true);
    expect(full.diff.startsWith(cut.diff)).toBe(true);
    expect(cut.files).toEqual(full.files);
  });
});
