import fs from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { execa } from "execa";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { sh, throwawayGitHome, write } from "./support/git.js";
import type { ResolvedConfig } from "../src/config.js";
import { UserError } from "../src/errors.js";
import { Redactor } from "../src/redact.js";
import { authEnv, PASSWORD_VARIABLE } from "../src/workspace/credentials.js";
import { gitShowStats } from "./support/git.js";
import { changedFiles, commitsSince, EMPTY_TREE, snapshotWorkingTree } from "../src/workspace/changes.js";
import { cloneRepository, initRepository, INITIAL_COMMIT_MESSAGE } from "../src/workspace/clone.js";
import { commitChanges } from "../src/workspace/commit.js";
import { readWorkingTree } from "../src/workspace/working-tree.js";
import { Git } from "../src/workspace/git.js";
import { pushBranch } from "../src/workspace/push.js";
import { checkBranchName, currentBranch, headCommit } from "../src/workspace/refs.js";
import { isInside, repoRelativePath, resolveInsideRoots } from "../src/workspace/paths.js";
import { validateRepoUrl } from "../src/workspace/remote-url.js";

// Every test runs against real git in throw-away directories, with a throw-away HOME so neither the
// user's git config is read nor written.
const author = { name: "Test Author", email: "author@example.test" };
const SECRET = "tok_SuperSecretValue_1234567890";
const redactor = new Redactor([SECRET]);
const git = new Git({ redactor });

let scratch: string;
const homeDir = throwawayGitHome();

beforeEach(async () => {
  scratch = await fs.mkdtemp(path.join(os.tmpdir(), "coding-mcp-ws-"));
});

afterEach(async () => {
  await fs.rm(scratch, { recursive: true, force: true });
});

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(() => true, () => false);
}

/** All files under dir except .git, relative, sorted. */
async function filesOnDisk(dir: string): Promise<string[]> {
  const entries = await fs.readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .filter((p) => !p.startsWith(".git" + path.sep))
    .sort();
}

async function expectUserError(promise: Promise<unknown>, code: string, message?: RegExp): Promise<UserError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UserError);
  const ue = err as UserError;
  expect(ue.code).toBe(code);
  if (message) expect(ue.message).toMatch(message);
  return ue;
}

/** A working repo with files and a bare copy of it (branches main and feature, three commits on main). */
async function makeOrigin(): Promise<{ work: string; bare: string }> {
  const work = path.join(scratch, "origin-work");
  await fs.mkdir(work);
  await sh(work, "init", "-q", "-b", "main");
  await write(work, "root.txt", "root\n");
  await write(work, "a/b/f.txt", "f\n");
  await write(work, "a/other.txt", "other\n");
  await write(work, "c/g.txt", "g\n");
  await write(work, "c/h.txt", "h\n");
  await write(work, "st*r.txt", "star\n");
  await sh(work, "add", "-A");
  await sh(work, "commit", "-q", "-m", "one");
  await write(work, "root.txt", "root 2\n");
  await sh(work, "commit", "-q", "-am", "two");
  await write(work, "root.txt", "root 3\n");
  await sh(work, "commit", "-q", "-am", "three");
  await sh(work, "checkout", "-q", "-b", "feature");
  await write(work, "feature.txt", "feature\n");
  await sh(work, "add", "-A");
  await sh(work, "commit", "-q", "-m", "feature work");
  await sh(work, "checkout", "-q", "main");
  const bare = path.join(scratch, "origin.git");
  await sh(scratch, "clone", "-q", "--bare", work, bare);
  return { work, bare };
}

const fileRemotes = { allowInsecureHttp: false, allowFileRemotes: true };

describe("initRepository", () => {
  it("creates a repository on main with one empty commit by the given author, without touching global config", async () => {
    const dir = path.join(scratch, "new", "repo");
    await initRepository(git, dir, author);
    expect(await sh(dir, "rev-list", "--count", "HEAD")).toBe("1");
    expect(await sh(dir, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%s")).toBe(
      `Test Author <author@example.test>|Test Author <author@example.test>|${INITIAL_COMMIT_MESSAGE}`,
    );
    expect(await currentBranch(git, dir)).toBe("main");
    expect(await headCommit(git, dir)).toBe(await sh(dir, "rev-parse", "HEAD"));
    expect(await sh(dir, "ls-tree", "HEAD")).toBe("");
    expect(await exists(path.join(homeDir(), ".gitconfig"))).toBe(false);
    expect(await sh(dir, "config", "--local", "--get-regexp", "^user\\.").catch(() => "")).toBe("");
  });

  it("headCommit is undefined without commits, currentBranch undefined when detached", async () => {
    const dir = path.join(scratch, "unborn");
    await fs.mkdir(dir);
    await sh(dir, "init", "-q", "-b", "main");
    expect(await headCommit(git, dir)).toBeUndefined();
    await initRepository(git, path.join(scratch, "r"), author);
    const r = path.join(scratch, "r");
    await sh(r, "checkout", "-q", "--detach");
    expect(await currentBranch(git, r)).toBeUndefined();
  });

  it("headCommit reads HEAD as git does: loose and packed refs, detached, a chain of symbolic refs, a linked worktree", async () => {
    const dir = path.join(scratch, "heads");
    await initRepository(git, dir, author);
    const same = async (d: string) => expect(await headCommit(git, d)).toBe(await sh(d, "rev-parse", "HEAD"));
    await same(dir);
    await sh(dir, "pack-refs", "--all");
    expect(await exists(path.join(dir, ".git", "refs", "heads", "main"))).toBe(false);
    await same(dir);
    await sh(dir, "commit", "-q", "--allow-empty", "-m", "after packing"); // a loose ref newer than the packed one
    await same(dir);
    await sh(dir, "symbolic-ref", "refs/heads/alias", "refs/heads/main");
    await sh(dir, "symbolic-ref", "HEAD", "refs/heads/alias");
    await same(dir);
    await sh(dir, "checkout", "-q", "--detach", "HEAD~1");
    await same(dir);
    await sh(dir, "checkout", "-q", "main");
    const wt = path.join(scratch, "heads-wt");
    await sh(dir, "worktree", "add", "-q", "-b", "side", wt);
    await sh(wt, "commit", "-q", "--allow-empty", "-m", "on the side");
    await same(wt);
    await same(dir);
    expect(await headCommit(git, wt)).not.toBe(await headCommit(git, dir));
    // A HEAD naming something that is no branch is git's to judge (here: broken, so no commit).
    await fs.writeFile(path.join(dir, ".git", "HEAD"), "ref: refs/heads/../../config\n");
    expect(await headCommit(git, dir)).toBeUndefined();
    // Not a repository at all: no commit, as before.
    const plain = path.join(scratch, "not-a-repo");
    await fs.mkdir(plain);
    expect(await headCommit(git, plain)).toBeUndefined();
  });
});

describe("cloneRepository", () => {
  it("clones a branch and keeps exactly the given URL as origin", async () => {
    const { bare } = await makeOrigin();
    const { url } = validateRepoUrl(bare, fileRemotes);
    const dir = path.join(scratch, "clones", "one");
    await cloneRepository({ git, url, dir, branch: "feature", timeoutMs: 60_000 });
    expect(await currentBranch(git, dir)).toBe("feature");
    expect(await fs.readFile(path.join(dir, "feature.txt"), "utf8")).toBe("feature\n");
    expect(await sh(dir, "config", "--get", "remote.origin.url")).toBe(url);
    expect(await sh(dir, "rev-parse", "HEAD")).toBe(await sh(bare, "rev-parse", "feature"));
  });

  it("shallow clones have one commit", async () => {
    const { bare } = await makeOrigin();
    const dir = path.join(scratch, "shallow");
    await cloneRepository({ git, url: bare, dir, shallow: true, timeoutMs: 60_000 });
    expect(await sh(dir, "rev-list", "--count", "HEAD")).toBe("1");
    expect(await fs.readFile(path.join(dir, "root.txt"), "utf8")).toBe("root 3\n");
  });

  it("sparse clones check out only the given files and directories", async () => {
    const { bare } = await makeOrigin();
    const dir = path.join(scratch, "sparse");
    await sh(bare, "config", "uploadpack.allowFilter", "true"); // so the partial (blob-less) clone really happens
    await cloneRepository({ git, url: bare, dir, sparsePaths: ["a/b", "./c/g.txt", "st*r.txt"], timeoutMs: 60_000 });
    expect(await sh(dir, "config", "--get", "remote.origin.partialclonefilter")).toBe("blob:none");
    expect(await filesOnDisk(dir)).toEqual(["a/b/f.txt", "c/g.txt", "st*r.txt"].map((p) => p.split("/").join(path.sep)));
    // The rest is still in history, and the working tree counts as clean.
    expect(await sh(dir, "ls-tree", "-r", "--name-only", "HEAD")).toContain("c/h.txt");
    expect(await sh(dir, "status", "--porcelain")).toBe("");
    expect(await changedFiles(git, dir, "HEAD")).toEqual([]);
  });

  it("refuses sparse paths that escape the workspace before cloning", async () => {
    const { bare } = await makeOrigin();
    const dir = path.join(scratch, "sparse-bad");
    await expectUserError(cloneRepository({ git, url: bare, dir, sparsePaths: ["../x"], timeoutMs: 60_000 }), "invalid_input", /outside/);
    expect(await exists(dir)).toBe(false);
  });

  it("a missing repository is a clear error and leaves no directory", async () => {
    const dir = path.join(scratch, "missing");
    const missing = path.join(scratch, `no-such-repo-${SECRET}.git`);
    const err = await expectUserError(cloneRepository({ git, url: missing, dir, timeoutMs: 60_000 }), "auth_failed", /not found or authentication failed/);
    expect(err.message).not.toContain(SECRET);
    expect(err.hint).toMatch(/git\.token_env/);
    expect(await exists(dir)).toBe(false);
  });

  it("a missing branch is a distinct error and leaves no directory", async () => {
    const { bare } = await makeOrigin();
    const dir = path.join(scratch, "nobranch");
    await expectUserError(cloneRepository({ git, url: bare, dir, branch: "nope", timeoutMs: 60_000 }), "branch_not_found", /remote branch nope not found/);
    expect(await exists(dir)).toBe(false);
  });

  it("an unreachable host is a network error", async () => {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => server.close(() => resolve())); // now nothing listens there
    const dir = path.join(scratch, "refused");
    await expectUserError(cloneRepository({ git, url: `http://127.0.0.1:${port}/x.git`, dir, timeoutMs: 60_000 }), "network_error", /could not connect/);
    expect(await exists(dir)).toBe(false);
  });

  it("a hanging server times out, kills git and its helpers, and leaves no directory", async () => {
    const sockets: net.Socket[] = [];
    // Accepts and reads, never answers (reading lets the socket see the client's close).
    const server = net.createServer((s) => sockets.push(s.resume()));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as net.AddressInfo).port;
    const dir = path.join(scratch, "hang");
    try {
      const started = Date.now();
      const err = await expectUserError(
        cloneRepository({ git, url: `http://127.0.0.1:${port}/x.git`, dir, timeoutMs: 1_000 }),
        "timeout",
        /timed out/,
      );
      expect(err.hint).toMatch(/clone_timeout_min/);
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(await exists(dir)).toBe(false);
      // git-remote-http held the connection; killing the process group closes it.
      expect(sockets.length).toBeGreaterThan(0);
      await Promise.all(sockets.filter((s) => !s.closed).map((s) => new Promise((resolve) => s.once("close", resolve))));
    } finally {
      sockets.forEach((s) => s.destroy());
      server.close();
    }
  });

  it("refuses a non-empty destination without touching it", async () => {
    const { bare } = await makeOrigin();
    const dir = path.join(scratch, "occupied");
    await write(dir, "keep.txt", "mine\n");
    await expectUserError(cloneRepository({ git, url: bare, dir, timeoutMs: 60_000 }), "invalid_input", /not empty/);
    expect(await fs.readFile(path.join(dir, "keep.txt"), "utf8")).toBe("mine\n");
  });
});

describe("changedFiles", () => {
  async function fixture(): Promise<{ dir: string; base: string }> {
    const dir = path.join(scratch, "changes");
    await initRepository(git, dir, author);
    await write(dir, ".gitignore", "ignored.log\n");
    await write(dir, "modified.txt", "one\ntwo\nthree\n");
    await write(dir, "deleted.txt", "gone\n");
    await write(dir, "rename-me.txt", Array.from({ length: 20 }, (_, i) => `line ${i}\n`).join(""));
    await write(dir, "image.bin", Buffer.from([0, 1, 2, 3, 0, 255]));
    await sh(dir, "add", "-A");
    await sh(dir, "commit", "-q", "-m", "base");
    return { dir, base: await sh(dir, "rev-parse", "HEAD") };
  }

  it("reports committed, staged, unstaged and untracked changes with git's counts", async () => {
    const { dir, base } = await fixture();
    await write(dir, "committed.txt", "a\nb\n");
    await sh(dir, "add", "committed.txt");
    await sh(dir, "commit", "-q", "-m", "after base");
    await write(dir, "modified.txt", "one\n2\nthree\nfour\n"); // unstaged: +2 -1
    await fs.rm(path.join(dir, "deleted.txt"));
    await sh(dir, "mv", "rename-me.txt", "renamed.txt"); // staged rename
    await write(dir, "image.bin", Buffer.from([0, 9, 9, 9, 0, 255])); // binary change
    await write(dir, "new file.txt", "x\ny\nz"); // untracked, no final newline
    await write(dir, "ünï cödé/tab\there.txt", "u\n");
    await write(dir, "new.bin", Buffer.from([0, 0, 0]));
    await write(dir, "ignored.log", "noise\n");
    const indexBefore = await sh(dir, "diff", "--cached", "--name-status");

    const changes = await changedFiles(git, dir, base);
    const byPath = Object.fromEntries(changes.map((c) => [c.path, c]));
    expect(Object.keys(byPath).sort()).toEqual(
      ["committed.txt", "deleted.txt", "image.bin", "modified.txt", "new file.txt", "new.bin", "renamed.txt", "ünï cödé/tab\there.txt"].sort(),
    );
    expect(byPath["committed.txt"]).toEqual({ path: "committed.txt", status: "added", additions: 2, deletions: 0 });
    expect(byPath["modified.txt"]).toEqual({ path: "modified.txt", status: "modified", additions: 2, deletions: 1 });
    expect(byPath["deleted.txt"]).toEqual({ path: "deleted.txt", status: "deleted", additions: 0, deletions: 1 });
    expect(byPath["renamed.txt"]).toEqual({ path: "renamed.txt", status: "renamed", additions: 0, deletions: 0 });
    expect(byPath["image.bin"]).toEqual({ path: "image.bin", status: "modified" });
    expect(byPath["new file.txt"]).toEqual({ path: "new file.txt", status: "added", additions: 3, deletions: 0 });
    expect(byPath["ünï cödé/tab\there.txt"]).toEqual({ path: "ünï cödé/tab\there.txt", status: "added", additions: 1, deletions: 0 });
    expect(byPath["new.bin"]).toEqual({ path: "new.bin", status: "added" });

    // The real index is untouched and no scratch index is left behind.
    expect(await sh(dir, "diff", "--cached", "--name-status")).toBe(indexBefore);
    expect((await fs.readdir(path.join(dir, ".git"))).filter((f) => f.includes("coding-mcp"))).toEqual([]);
    expect(await changedFiles(git, dir, "HEAD").then((c) => c.map((x) => x.path))).not.toContain("committed.txt");
  });

  it("is empty for a clean tree and accepts the empty tree as base", async () => {
    const { dir } = await fixture();
    expect(await changedFiles(git, dir, "HEAD")).toEqual([]);
    const all = await changedFiles(git, dir, "4b825dc642cb6eb9a060e54bf8d69288fbee4904");
    expect(all.map((c) => c.path).sort()).toEqual([".gitignore", "deleted.txt", "image.bin", "modified.txt", "rename-me.txt"]);
    await expectUserError(changedFiles(git, dir, "--output=/tmp/x"), "unknown_ref");
    await expectUserError(changedFiles(git, dir, "no-such-ref"), "unknown_ref");
  });

  it("measures from a snapshot tree: renames with their line counts, new files, nothing from before it", async () => {
    const { dir } = await fixture();
    await write(dir, "modified.txt", "work from before\n");
    const before = await snapshotWorkingTree(git, dir).tree;
    await fs.mkdir(path.join(dir, "moved"));
    await sh(dir, "mv", "rename-me.txt", "moved/renamed.txt");
    await fs.appendFile(path.join(dir, "moved/renamed.txt"), "one more\n");
    await write(dir, "brand new.txt", "n\n");
    const changes = await changedFiles(git, dir, before, { trusted: true });
    expect(changes.sort((a, b) => a.path.localeCompare(b.path))).toEqual([
      { path: "brand new.txt", status: "added", additions: 1, deletions: 0 },
      { path: "moved/renamed.txt", status: "renamed", additions: 1, deletions: 0 },
    ]);
    expect(await changedFiles(git, dir, await snapshotWorkingTree(git, dir).tree)).toEqual([]);
  });

  it("snapshots the working tree as it was when staged, whatever changes while the tree object is written", async () => {
    const { dir } = await fixture();
    const snapshot = snapshotWorkingTree(git, dir);
    await snapshot.staged;
    await write(dir, "after.txt", "written once git had read the tree\n");
    const tree = await snapshot.tree;
    expect(await sh(dir, "ls-tree", "--name-only", tree)).not.toContain("after.txt");
    expect(await changedFiles(git, dir, tree, { trusted: true })).toEqual([{ path: "after.txt", status: "added", additions: 1, deletions: 0 }]);
  });

  it("leaves the real index's bytes alone when the snapshot stages changes", async () => {
    const { dir } = await fixture();
    await write(dir, "modified.txt", "changed\n");
    await write(dir, "untracked.txt", "u\n");
    const index = path.join(dir, ".git", "index");
    const [bytes, stat] = [await fs.readFile(index), await fs.stat(index)];
    const tree = await snapshotWorkingTree(git, dir).tree;
    expect(await sh(dir, "ls-tree", "--name-only", tree)).toContain("untracked.txt");
    expect((await changedFiles(git, dir, "HEAD")).map((c) => c.path).sort()).toEqual(["modified.txt", "untracked.txt"]);
    expect(await fs.readFile(index)).toEqual(bytes);
    expect((await fs.stat(index)).mtimeMs).toBe(stat.mtimeMs);
    expect((await fs.readdir(path.join(dir, ".git"))).filter((f) => f.includes("coding-mcp"))).toEqual([]);
  });

  it("runs no fsmonitor program named in the workspace's config", async () => {
    const { dir } = await fixture();
    const marker = path.join(scratch, "fsmonitor-ran");
    await write(scratch, "fsmonitor.sh", `#!/bin/sh\necho ran >> '${marker}'\n`);
    await fs.chmod(path.join(scratch, "fsmonitor.sh"), 0o755);
    await sh(dir, "config", "core.fsmonitor", path.join(scratch, "fsmonitor.sh"));
    await write(dir, "new.txt", "n\n");
    const tree = await snapshotWorkingTree(git, dir).tree;
    expect((await changedFiles(git, dir, tree)).length).toBe(0);
    expect((await changedFiles(git, dir, "HEAD")).map((c) => c.path)).toEqual(["new.txt"]);
    expect(await exists(marker)).toBe(false);
  });

  it("works in a repository without commits, and follows a directory whose repository was replaced", async () => {
    const dir = path.join(scratch, "unborn");
    await fs.mkdir(dir);
    await sh(dir, "init", "-q", "-b", "main");
    expect(await changedFiles(git, dir, EMPTY_TREE)).toEqual([]); // no index file yet
    await write(dir, "first.txt", "1\n2\n");
    expect(await changedFiles(git, dir, EMPTY_TREE)).toEqual([{ path: "first.txt", status: "added", additions: 2, deletions: 0 }]);
    expect(await commitsSince(git, dir, undefined)).toEqual([]);

    // The same directory becomes a worktree of another repository: its index is elsewhere now.
    const other = path.join(scratch, "other");
    await initRepository(git, other, author);
    await write(other, "theirs.txt", "t\n");
    await sh(other, "add", "-A");
    await sh(other, "commit", "-q", "-m", "theirs");
    await fs.rm(dir, { recursive: true });
    await sh(other, "worktree", "add", "-q", "-b", "wt", dir);
    await write(dir, "in-worktree.txt", "w\n");
    expect(await changedFiles(git, dir, "HEAD")).toEqual([{ path: "in-worktree.txt", status: "added", additions: 1, deletions: 0 }]);
  });
});

describe("commitsSince", () => {
  it("lists the commits made since a HEAD, newest first, and checks refs it did not read itself", async () => {
    const dir = path.join(scratch, "since");
    await initRepository(git, dir, author);
    const start = await sh(dir, "rev-parse", "HEAD");
    expect(await commitsSince(git, dir, start, { trusted: true })).toEqual([]);
    await sh(dir, "commit", "-q", "--allow-empty", "-m", "one");
    await sh(dir, "commit", "-q", "--allow-empty", "-m", "two");
    const [two, one] = (await sh(dir, "log", "-2", "--format=%H")).split("\n");
    expect(await commitsSince(git, dir, start, { trusted: true })).toEqual([
      { hash: two, subject: "two" },
      { hash: one, subject: "one" },
    ]);
    expect((await commitsSince(git, dir, undefined)).map((c) => c.subject)).toEqual(["two", "one", INITIAL_COMMIT_MESSAGE]);
    // Moved back: nothing new.
    await sh(dir, "reset", "-q", "--hard", start);
    expect(await commitsSince(git, dir, one, { trusted: true })).toEqual([]);
    await expectUserError(commitsSince(git, dir, "--all"), "unknown_ref");
    await expectUserError(commitsSince(git, dir, "0".repeat(40)), "unknown_ref");
  });
});

// Both ways a commit is made: in a caller's checkout with `git commit`, and in a workspace coding-mcp
// owns, where the whole working tree is committed from one read of it (commitWholeTree).
// Owned, it is committed from a read of the working tree, or from the tree coding-mcp already knows (known).
describe.each([{ owned: false, known: false }, { owned: true, known: false }, { owned: true, known: true }])("commitChanges (owned: $owned, known tree: $known)", ({ owned, known }) => {
  const commit = async (dir: string, o: Omit<Parameters<typeof commitChanges>[2], "owned">) =>
    commitChanges(git, dir, { ...o, owned, ...(known ? { workingTree: (await readWorkingTree(git, dir, { owned: true })).tree } : {}) });

  async function repo(): Promise<string> {
    const dir = path.join(scratch, "commit");
    await initRepository(git, dir, author);
    await write(dir, "keep.txt", "1\n2\n3\n");
    await write(dir, "drop.txt", "x\n");
    await sh(dir, "add", "-A");
    await sh(dir, "commit", "-q", "-m", "base");
    return dir;
  }

  it("stages everything and reports git show's stats, binary files included", async () => {
    const dir = await repo();
    await write(dir, "keep.txt", "1\ntwo\n3\n4\n");
    await fs.rm(path.join(dir, "drop.txt"));
    await write(dir, "sub dir/new.txt", "a\nb\nc\n");
    await write(dir, "blob.bin", Buffer.from([0, 1, 0, 2]));
    const result = await commit(dir, { message: "-m looks like an option\n\nbody", author });
    expect(result.committed).toBe(true);
    expect(result.commit_hash).toBe(await sh(dir, "rev-parse", "HEAD"));
    const { committed: _, commit_hash: __, ...stats } = result;
    expect(stats).toEqual(gitShowStats(dir, result.commit_hash!));
    expect(stats).toEqual({ files_changed: 4, insertions: 5, deletions: 2 });
    expect(await sh(dir, "log", "-1", "--format=%B")).toBe("-m looks like an option\n\nbody\n");
    expect(await sh(dir, "log", "-1", "--format=%an <%ae>|%cn <%ce>")).toBe("Test Author <author@example.test>|Test Author <author@example.test>");
    expect(await sh(dir, "status", "--porcelain")).toBe("");
  });

  it("commits exactly the given paths and leaves the rest uncommitted", async () => {
    const dir = await repo();
    await write(dir, "keep.txt", "changed\n");
    await write(dir, "a.txt", "a\n");
    await write(dir, "b.txt", "b\n");
    await sh(dir, "add", "b.txt"); // staged beforehand, but not named: must stay out of the commit
    const result = await commit(dir, { message: "only a and drop", paths: ["a.txt", path.join(dir, "drop.txt")], author, addAll: true });
    // drop.txt exists unchanged: nothing to stage for it; only a.txt is new.
    expect(await sh(dir, "show", "--name-status", "--format=", "HEAD")).toBe("A\ta.txt");
    expect(result).toMatchObject({ committed: true, files_changed: 1, insertions: 1, deletions: 0 });
    expect((await sh(dir, "status", "--porcelain")).split("\n").sort()).toEqual(["A  b.txt", " M keep.txt"].sort());
  });

  it("returns committed:false when there is nothing to commit", async () => {
    const dir = await repo();
    const head = await sh(dir, "rev-parse", "HEAD");
    expect(await commit(dir, { message: "nothing", author })).toEqual({ committed: false, files_changed: 0, insertions: 0, deletions: 0 });
    await write(dir, "untracked.txt", "u\n");
    expect((await commit(dir, { message: "nothing staged", addAll: false, author })).committed).toBe(false);
    expect(await sh(dir, "rev-parse", "HEAD")).toBe(head);
  });

  it("refuses escaping paths, option-like paths and empty messages before anything is staged", async () => {
    const dir = await repo();
    await write(dir, "keep.txt", "changed\n");
    const head = await sh(dir, "rev-parse", "HEAD");
    for (const p of ["../outside.txt", "/etc/passwd", "-f", "a/../../x"]) {
      await expectUserError(commit(dir, { message: "m", paths: ["keep.txt", p], author }), "invalid_input");
    }
    await expectUserError(commit(dir, { message: "  \n", author }), "invalid_input", /empty/);
    await expectUserError(commit(dir, { message: "m", paths: ["nope.txt"], author }), "invalid_input", /matches no file/);
    expect(await sh(dir, "diff", "--cached", "--name-only")).toBe("");
    expect(await sh(dir, "rev-parse", "HEAD")).toBe(head);
  });

  it("runs no hook unless asked (the agent can write them); with run_hooks a failing pre-commit hook is a clear error", async () => {
    const dir = await repo();
    const ran = path.join(scratch, "planted-hook-ran");
    for (const hook of ["pre-commit", "prepare-commit-msg", "commit-msg", "post-commit"]) {
      await write(dir, `.git/hooks/${hook}`, `#!/bin/sh\necho ${hook} >> '${ran}'\n`);
      await fs.chmod(path.join(dir, `.git/hooks/${hook}`), 0o755);
    }
    await write(dir, "keep.txt", "changed\n");
    expect(await commit(dir, { message: "m", author })).toMatchObject({ committed: true });
    expect(await exists(ran)).toBe(false);
    await write(dir, ".git/hooks/pre-commit", "#!/bin/sh\necho 'lint failed: fix foo' >&2\nexit 1\n");
    await write(dir, "keep.txt", "changed again\n");
    await expectUserError(commit(dir, { message: "m", author, runHooks: true }), "commit_failed", /lint failed/);
  });

  it("runs no filter or signing program named by the workspace's config, and keeps the ones set outside it", async () => {
    const dir = await repo();
    const ran = path.join(scratch, "planted-program-ran");
    await write(scratch, "planted.sh", `#!/bin/sh\necho "$0 $*" >> '${ran}'\ncat\n`);
    await fs.chmod(path.join(scratch, "planted.sh"), 0o755);
    const planted = path.join(scratch, "planted.sh");
    // A filter set up outside the workspace (as `git lfs install` does in ~/.gitconfig) still runs.
    const globalConfig = path.join(scratch, "global.gitconfig");
    await write(scratch, "global.gitconfig", `[filter "upper"]\n\tclean = tr a-z A-Z\n`);
    process.env.GIT_CONFIG_GLOBAL = globalConfig;
    try {
      await write(dir, ".gitattributes", "*.txt filter=evil\n*.dat filter=upper\n*.md filter=late\n");
      await write(dir, "shout.dat", "quiet\n");
      // What coding-mcp learnt before the agent wrote its config must not be reused after.
      expect((await changedFiles(git, dir, "HEAD")).length).toBe(2);
      await sh(dir, "config", "filter.evil.clean", planted);
      await sh(dir, "config", "filter.evil.process", planted);
      await sh(dir, "config", "filter.evil.required", "true");
      await sh(dir, "config", "gpg.program", planted);
      await sh(dir, "config", "commit.gpgSign", "false");
      // An include from .git/config of a file in the workspace counts as the workspace's, also when it is written later.
      await sh(dir, "config", "include.path", "../included.cfg");
      for (let i = 0; i < 2; i++) expect((await changedFiles(git, dir, "HEAD")).length).toBe(2);
      await write(dir, "included.cfg", `[filter "late"]\n\tclean = ${planted}\n`);
      await write(dir, "keep.txt", "changed\n");
      await write(dir, "notes.md", "n\n");
      const files = await changedFiles(git, dir, "HEAD");
      expect(files.map((f) => f.path).sort()).toEqual([".gitattributes", "included.cfg", "keep.txt", "notes.md", "shout.dat"]);
      const result = await commit(dir, { message: "m", author });
      expect(result).toMatchObject({ committed: true });
      expect(await sh(dir, "show", "HEAD:shout.dat")).toBe("QUIET");
      expect(await sh(dir, "show", "HEAD:keep.txt")).toBe("changed");
    } finally {
      delete process.env.GIT_CONFIG_GLOBAL;
    }
    expect(await exists(ran)).toBe(false);
  });

  it("a refusing commit-msg hook: clear error, no commit, the changes stay staged as after git add", async () => {
    const dir = await repo();
    const head = await sh(dir, "rev-parse", "HEAD");
    await write(dir, ".git/hooks/commit-msg", "#!/bin/sh\necho 'message must name a ticket' >&2\nexit 1\n");
    await fs.chmod(path.join(dir, ".git/hooks/commit-msg"), 0o755);
    await write(dir, "keep.txt", "changed\n");
    await expectUserError(commit(dir, { message: "m", author, runHooks: true }), "commit_failed", /ticket/);
    expect(await sh(dir, "rev-parse", "HEAD")).toBe(head);
    expect(await sh(dir, "diff", "--cached", "--name-only")).toBe("keep.txt");
  });

  it("nothing to commit is committed:false also with a passing pre-commit hook, for paths without changes, and with only unstaged changes", async () => {
    const dir = await repo();
    const head = await sh(dir, "rev-parse", "HEAD");
    const ran = path.join(scratch, "pre-commit-ran");
    await write(dir, ".git/hooks/pre-commit", `#!/bin/sh\necho checked; echo ran >> '${ran}'\n`);
    await fs.chmod(path.join(dir, ".git/hooks/pre-commit"), 0o755);
    const nothing = { committed: false, files_changed: 0, insertions: 0, deletions: 0 };
    expect(await commit(dir, { message: "nothing", author, runHooks: true })).toEqual(nothing);
    await write(dir, "keep.txt", "changed\n");
    expect(await commit(dir, { message: "unchanged path", paths: ["drop.txt"], author, runHooks: true })).toEqual(nothing);
    expect(await commit(dir, { message: "nothing staged", addAll: false, author, runHooks: true })).toEqual(nothing);
    expect(await sh(dir, "rev-parse", "HEAD")).toBe(head);
    expect(await exists(ran)).toBe(true); // as with git commit, the hook runs before git finds nothing to commit
    const result = await commit(dir, { message: "now", author });
    expect(result).toMatchObject({ committed: true, files_changed: 1, insertions: 1, deletions: 3 });
  });

  it("commits renames as one file with their line counts", async () => {
    const dir = await repo();
    await write(dir, "long.txt", Array.from({ length: 30 }, (_, i) => `line ${i}\n`).join(""));
    await commit(dir, { message: "long", author });
    await fs.rename(path.join(dir, "long.txt"), path.join(dir, "moved.txt"));
    await fs.appendFile(path.join(dir, "moved.txt"), "line 30\n");
    const result = await commit(dir, { message: "move", author });
    expect(await sh(dir, "show", "--name-status", "--format=", "HEAD")).toMatch(/^R\d+\tlong.txt\tmoved.txt$/);
    expect(result).toMatchObject({ committed: true, files_changed: 1, insertions: 1, deletions: 0 });
    expect(result.commit_hash).toBe(await sh(dir, "rev-parse", "HEAD"));
  });

  it("makes the first commit of a repository without commits", async () => {
    const dir = path.join(scratch, "unborn");
    await fs.mkdir(dir);
    await sh(dir, "init", "-q", "-b", "main");
    expect(await commit(dir, { message: "nothing yet", author })).toMatchObject({ committed: false });
    await write(dir, "a.txt", "a\nb\n");
    await write(dir, "b.bin", Buffer.from([0, 1, 2]));
    const result = await commit(dir, { message: "root", author });
    expect(result).toEqual({ committed: true, commit_hash: await sh(dir, "rev-parse", "HEAD"), files_changed: 2, insertions: 2, deletions: 0 });
    expect(await sh(dir, "log", "--format=%s")).toBe("root");
  });

  it("leaves the message, the reflog and the index as git commit does; signing, a merge in progress and message cleanup settings still go through git commit", async () => {
    const dir = await repo();
    await write(dir, "keep.txt", "changed\n");
    await write(dir, "new.txt", "new\n");
    await fs.rm(path.join(dir, "drop.txt"));
    const message = "\n\n  Subject with trailing blanks  \t\n\n\n\nbody line\n# kept, as git commit --file keeps it\n\n";
    const result = await commit(dir, { message, author });
    expect(await sh(dir, "log", "-1", "--format=%B")).toBe((await execa("git", ["stripspace"], { input: message, stripFinalNewline: false })).stdout);
    expect(await sh(dir, "reflog", "-1", "--format=%gs")).toBe("commit: Subject with trailing blanks");
    expect(await sh(dir, "status", "--porcelain")).toBe("");
    expect(await sh(dir, "diff", "--cached", "--stat", "HEAD")).toBe("");
    expect(result.commit_hash).toBe(await sh(dir, "rev-parse", "HEAD"));
    // Signing configured (here with a program that refuses): git commit signs, so git commit runs.
    await sh(dir, "config", "commit.gpgSign", "true");
    await sh(dir, "config", "--global", "gpg.program", "false");
    await write(dir, "keep.txt", "signed\n");
    await expectUserError(commit(dir, { message: "signed", author }), "commit_failed");
    await sh(dir, "config", "commit.gpgSign", "false");
    // A merge in progress: the commit takes both parents, as git commit makes it.
    await sh(dir, "commit", "-q", "-am", "before merge");
    await sh(dir, "checkout", "-q", "-b", "side", "HEAD~1");
    await write(dir, "side.txt", "side\n");
    await sh(dir, "add", "side.txt");
    await sh(dir, "commit", "-q", "-m", "side");
    await sh(dir, "checkout", "-q", "-");
    await sh(dir, "merge", "-q", "--no-commit", "--no-ff", "side");
    await commit(dir, { message: "merged", author });
    expect((await sh(dir, "log", "-1", "--format=%P")).split(" ")).toHaveLength(2);
  });

  it("repoRelativePath normalises paths inside the root", async () => {
    expect(await repoRelativePath(scratch, "./a//b/", "paths")).toBe("a/b");
    expect(await repoRelativePath(scratch, path.join(scratch, "x"), "paths")).toBe("x");
    expect(await repoRelativePath(scratch, ".", "paths")).toBe(".");
  });
});

describe("pushBranch", () => {
  async function setup() {
    const { bare } = await makeOrigin();
    const dir = path.join(scratch, "pusher");
    await cloneRepository({ git, url: bare, dir, timeoutMs: 60_000 });
    return { bare, dir };
  }
  const push = { remote: "origin", setUpstream: true, timeoutMs: 60_000 };

  it("pushes new commits, reports them and sets the upstream", async () => {
    const { bare, dir } = await setup();
    await write(dir, "pushed.txt", "p\n");
    const { commit_hash } = await commitChanges(git, dir, { message: "to push", author });
    const result = await pushBranch(git, dir, { ...push, branch: "main" });
    expect(result.commits).toEqual([{ hash: commit_hash, subject: "to push" }]);
    expect(await sh(scratch, `--git-dir=${bare}`, "log", "-1", "--format=%H %s", "main")).toBe(`${commit_hash} to push`);
    expect(await sh(dir, "rev-parse", "--abbrev-ref", "main@{upstream}")).toBe("origin/main");
    expect(await commitsSince(git, dir, "origin/main")).toEqual([]);
  });

  it("pushes HEAD to a new remote branch", async () => {
    const { bare, dir } = await setup();
    await write(dir, "x.txt", "x\n");
    const { commit_hash } = await commitChanges(git, dir, { message: "new branch work", author });
    const result = await pushBranch(git, dir, { ...push, branch: "coding-mcp/task-1", setUpstream: false });
    expect(result.commits.map((c) => c.hash)).toEqual([commit_hash]);
    expect(await sh(scratch, `--git-dir=${bare}`, "rev-parse", "refs/heads/coding-mcp/task-1")).toBe(commit_hash);
  });

  it("rejects a non-fast-forward push with a distinct error", async () => {
    const { bare, dir } = await setup();
    const other = path.join(scratch, "other");
    await cloneRepository({ git, url: bare, dir: other, timeoutMs: 60_000 });
    await write(other, "theirs.txt", "t\n");
    await commitChanges(git, other, { message: "theirs", author });
    await pushBranch(git, other, { ...push, branch: "main" });
    const remoteHead = await sh(scratch, `--git-dir=${bare}`, "rev-parse", "main");

    await write(dir, "mine.txt", "m\n");
    await commitChanges(git, dir, { message: "mine", author });
    const err = await expectUserError(pushBranch(git, dir, { ...push, branch: "main" }), "push_rejected", /rejected/);
    expect(err.hint).toMatch(/rebase|new branch/);
    expect(await sh(scratch, `--git-dir=${bare}`, "rev-parse", "main")).toBe(remoteHead);
  });

  it("refuses bad branch and remote names before pushing", async () => {
    const { bare, dir } = await setup();
    await write(dir, "x.txt", "x\n");
    await commitChanges(git, dir, { message: "x", author });
    const refsBefore = await sh(scratch, `--git-dir=${bare}`, "for-each-ref");
    for (const branch of ["-f", "a..b", "--upload-pack=x", "HEAD", "has space", "@{-1}", ""]) {
      await expectUserError(pushBranch(git, dir, { ...push, branch }), "invalid_branch");
      await expectUserError(checkBranchName(git, branch), "invalid_branch");
    }
    for (const remote of ["nope", "--upload-pack=touch /tmp/x", "-v"]) {
      await expectUserError(pushBranch(git, dir, { ...push, remote, branch: "main" }), "no_such_remote");
    }
    expect(await sh(scratch, `--git-dir=${bare}`, "for-each-ref")).toBe(refsBefore);
  });

  it("an unreachable remote is a network error", async () => {
    const { dir } = await setup();
    await sh(dir, "remote", "add", "dead", "http://127.0.0.1:9/x.git");
    await expectUserError(pushBranch(git, dir, { ...push, remote: "dead", branch: "main" }), "network_error");
  });

  /** The auth a push to a token host gets; the push itself goes to the local bare repository. */
  async function tokenAuth() {
    const auth = await authEnv(authConfig({ token: SECRET }), path.join(scratch, "state"), "https://github.com/o/r.git");
    expect(auth.hasToken).toBe(true);
    return auth;
  }

  it("with a token, pushes from a scratch repository: no hook or config of the workspace is used", async () => {
    const { bare, dir } = await setup();
    const marker = path.join(scratch, "hook-ran");
    await write(dir, ".git/hooks/pre-push", `#!/bin/sh\nenv > '${marker}'\n`);
    await fs.chmod(path.join(dir, ".git/hooks/pre-push"), 0o755);
    // A credential helper the push would run (and hand the token to) if it read the workspace's config.
    await sh(dir, "config", "credential.helper", `!f() { env > '${marker}'; }; f`);
    await write(dir, "x.txt", "x\n");
    const { commit_hash } = await commitChanges(git, dir, { message: "x", author });
    const configBefore = await fs.readFile(path.join(dir, ".git/config"), "utf8");
    const auth = await tokenAuth();
    const result = await pushBranch(git, dir, { ...push, branch: "task", authFor: async () => auth });
    expect(result).toEqual({ commits: [{ hash: commit_hash, subject: "x" }], url: bare });
    expect(await sh(scratch, `--git-dir=${bare}`, "rev-parse", "task")).toBe(commit_hash);
    expect(await exists(marker)).toBe(false);
    // What a plain git push -u records, and nothing else: the remote-tracking ref and the upstream of the pushed branch (HEAD's).
    expect(await sh(dir, "rev-parse", "refs/remotes/origin/task")).toBe(commit_hash);
    expect(await sh(dir, "rev-parse", "--abbrev-ref", "main@{upstream}")).toBe("origin/task");
    const configAfter = await fs.readFile(path.join(dir, ".git/config"), "utf8");
    expect(configAfter.replace(/\[branch "main"\][^[]*/, "")).toBe(configBefore.replace(/\[branch "main"\][^[]*/, ""));
    // The scratch repository is gone.
    expect(await fs.readdir(path.join(scratch, "state", "scratch"))).toEqual([]);
  });

  it("with a token, pushes from a shallow clone and from a partial (sparse) clone", async () => {
    const { bare } = await makeOrigin();
    const auth = await tokenAuth();
    const cases: [string, { shallow?: boolean; sparsePaths?: string[] }][] = [["shallow", { shallow: true }], ["sparse", { sparsePaths: ["a"] }]];
    for (const [name, options] of cases) {
      const dir = path.join(scratch, name);
      await cloneRepository({ git, url: bare, dir, timeoutMs: 60_000, ...options });
      await write(dir, `a/${name}.txt`, `${name}\n`);
      const { commit_hash } = await commitChanges(git, dir, { message: name, author });
      await pushBranch(git, dir, { ...push, branch: name, authFor: async () => auth });
      expect(await sh(scratch, `--git-dir=${bare}`, "rev-parse", name), name).toBe(commit_hash);
      expect(await sh(scratch, `--git-dir=${bare}`, "fsck", "--connectivity-only", "--no-progress"), name).toBe("");
    }
  });

  it("with a token, refuses a remote with several push URLs before anything is pushed", async () => {
    const { bare, dir } = await setup();
    const other = path.join(scratch, "other.git");
    await sh(scratch, "init", "-q", "--bare", other);
    await sh(dir, "config", "remote.origin.pushurl", bare);
    await sh(dir, "config", "--add", "remote.origin.pushurl", other);
    await write(dir, "x.txt", "x\n");
    await commitChanges(git, dir, { message: "x", author });
    const refsBefore = await sh(scratch, `--git-dir=${bare}`, "for-each-ref");
    const auth = await tokenAuth();
    const err = await expectUserError(pushBranch(git, dir, { ...push, branch: "main", authFor: async () => auth }), "push_refused", /remote\.origin\.pushurl is set 2 times/);
    expect(err.hint).toContain(`git -C ${dir} config --unset-all remote.origin.pushurl`);
    expect(await sh(scratch, `--git-dir=${bare}`, "for-each-ref")).toBe(refsBefore);
    expect(await sh(scratch, `--git-dir=${other}`, "for-each-ref")).toBe("");
    // Without the token it is the owner's own push, to every URL, as git does it.
    await pushBranch(git, dir, { ...push, branch: "main" });
    expect(await sh(scratch, `--git-dir=${other}`, "rev-parse", "main")).toBe(await sh(dir, "rev-parse", "HEAD"));
  });

  it("a failed push with the token names the connection settings it ignored", async () => {
    const { dir } = await setup();
    await sh(dir, "remote", "add", "dead", "http://127.0.0.1:9/x.git");
    await sh(dir, "config", "http.proxy", "http://127.0.0.1:9");
    await sh(dir, "config", "remote.dead.proxy", "http://127.0.0.1:9");
    const auth = await tokenAuth();
    const err = await expectUserError(pushBranch(git, dir, { ...push, remote: "dead", branch: "main", authFor: async () => auth }), "network_error");
    expect(err.hint).toContain("http.proxy (.git/config)");
    expect(err.hint).toContain("remote.dead.proxy (.git/config)");
    expect(err.hint).toMatch(/HTTPS_PROXY/);
    expect(err.hint).toContain(`git -C ${dir} config --file .git/config --unset-all http.proxy`);
  });
});

function authConfig(o: { token?: string; sshKey?: string }): Pick<ResolvedConfig, "git" | "secrets"> {
  return {
    git: {
      token_env: "GITHUB_TOKEN",
      username: "x-access-token",
      token_hosts: ["github.com"],
      allow_insecure_http: false,
      run_hooks: false,
      allow_file_remotes: false,
      user_name: "coding-mcp",
      user_email: "coding-mcp@localhost",
      shared_token: false,
      ...(o.sshKey ? { ssh_key_path: o.sshKey } : {}),
    },
    secrets: o.token ? { gitToken: o.token } : {},
  };
}

describe("authEnv", () => {
  it("hands git the token through GIT_ASKPASS only, overriding the user's credential helper", async () => {
    const stateDir = path.join(scratch, "state dir"); // a space, to prove git runs the helper without a shell
    const auth = await authEnv(authConfig({ token: SECRET }), stateDir, "https://github.com/o/r.git");
    expect(auth.configArgs).toEqual(["-c", "credential.helper=", "-c", "core.hooksPath=/dev/null"]);
    expect(auth.env[PASSWORD_VARIABLE]).toBe(SECRET);
    // No system or global config either: the agent can write ~/.gitconfig.
    expect(auth.env).toMatchObject({ GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null" });
    const script = auth.env.GIT_ASKPASS!;
    expect(isInside(script, stateDir)).toBe(true);
    expect((await fs.stat(script)).mode & 0o777).toBe(0o700);
    expect(await fs.readFile(script, "utf8")).not.toContain(SECRET);

    // A repository whose own helper would answer with something else.
    const dir = path.join(scratch, "cred");
    await initRepository(git, dir, author);
    await sh(dir, "config", "credential.helper", "!f() { echo username=wrong; echo password=wrong; }; f");
    await sh(dir, "config", "credential.https://example.com.helper", "!f() { echo username=wrong2; echo password=wrong2; }; f");
    await sh(dir, "config", "credential.https://github.com.helper", "!f() { echo username=wrong2; echo password=wrong2; }; f");
    const fill = (host: string) =>
      execa("git", [...auth.configArgs, "credential", "fill"], {
        cwd: dir,
        env: { ...auth.env, GIT_TERMINAL_PROMPT: "0" },
        input: `protocol=https\nhost=${host}\n\n`,
        reject: false,
      });
    const out = await fill("github.com");
    expect(out.stdout).toContain("username=x-access-token");
    expect(out.stdout).toContain(`password=${SECRET}`);
    // Asked about any other host (a redirect elsewhere, a proxy wanting a password), askpass answers nothing.
    for (const host of ["evil.example", "github.com.evil.example", "github.com:8443", "proxy.example:3128"]) {
      const other = await fill(host);
      expect(other.exitCode, host).not.toBe(0);
      expect(other.stdout + other.stderr, host).not.toContain(SECRET);
    }
  });

  it("withholds the token from hosts outside git.token_hosts", async () => {
    for (const url of ["https://evil.example/o/r.git", "https://github.com.evil.example/o/r.git", "http://127.0.0.1:8080/r.git"]) {
      const auth = await authEnv(authConfig({ token: SECRET }), path.join(scratch, "s3"), url);
      expect(auth.hasToken, url).toBe(false);
      expect(JSON.stringify(auth), url).not.toContain(SECRET);
      expect(auth.withheldFrom, url).toBe(new URL(url).hostname);
    }
    const ssh = await authEnv(authConfig({ token: SECRET }), path.join(scratch, "s3"), "git@github.com:o/r.git");
    expect(ssh.hasToken).toBe(false);
    expect(JSON.stringify(ssh)).not.toContain(SECRET);
  });

  it("uses the ssh key with host keys still checked, and nothing without credentials", async () => {
    const withKey = await authEnv(authConfig({ sshKey: "/keys/it's key" }), path.join(scratch, "s"), "git@github.com:o/r.git");
    expect(withKey.env).toEqual({ GIT_SSH_COMMAND: "ssh -i '/keys/it'\\''s key' -o IdentitiesOnly=yes -o BatchMode=yes" });
    expect(withKey.env.GIT_SSH_COMMAND).not.toMatch(/StrictHostKeyChecking/);
    const none = await authEnv(authConfig({}), path.join(scratch, "s2"), "https://github.com/o/r.git");
    expect(none.env).toEqual({});
    expect(none.configArgs).toEqual([]);
    expect(await exists(path.join(scratch, "s2"))).toBe(false);
  });
});

describe("validateRepoUrl", () => {
  const strict = { allowInsecureHttp: false, allowFileRemotes: false };
  const accepted: [string, string][] = [
    ["https://github.com/o/r.git", "https"],
    ["https://github.com:443/o/r", "https"],
    ["ssh://git@github.com/o/r.git", "ssh"],
    ["ssh://git@[::1]:2222/o/r.git", "ssh"],
    ["git@github.com:o/r.git", "scp"],
    ["github.com:o/r.git", "scp"],
    ["http://127.0.0.1:8080/x.git", "http"],
    ["http://127.5.6.7/x.git", "http"],
    ["http://localhost/x.git", "http"],
    ["http://[::1]:3000/x.git", "http"],
  ];
  it.each(accepted)("accepts %s", (url, kind) => {
    expect(validateRepoUrl(url, strict)).toEqual({ kind, url });
  });

  const refused: [string, RegExp][] = [
    ["ext::sh -c touch% /tmp/pwned", /whitespace/],
    ["ext::sh", /remote helper/],
    ["fd::17", /remote helper/],
    ["foo::bar", /remote helper/],
    ["-oProxyCommand=x", /starts with '-'/],
    ["--upload-pack=touch", /starts with '-'/],
    ["ssh://-oProxyCommand=x/r", /host/],
    ["http://example.com/x.git", /plain http/],
    ["git://example.com/x.git", /git:\/\//],
    ["file:///tmp/x", /file:\/\//],
    ["/tmp/x", /local path/],
    ["./x", /local path/],
    ["ftp://example.com/x", /unsupported scheme/],
    ["https://github.com/o/r.git\n", /control/],
    ["https://github.com/o r.git", /whitespace/],
    ["", /empty/],
    ["file:/tmp/x", /:\/\//],
    ["https:github.com/x", /:\/\//],
  ];
  it.each(refused)("refuses %j", (url, message) => {
    const call = () => validateRepoUrl(url, strict);
    expect(call).toThrow(UserError);
    expect(call).toThrow(message);
  });

  it.each([
    `https://user:${SECRET}@github.com/o/r.git`,
    `https://${SECRET}@github.com/o/r.git`,
    `ssh://git:${SECRET}@github.com/o/r.git`,
    `git:${SECRET}@github.com:o/r.git`,
  ])("refuses credentials in %s without echoing them", (url) => {
    let err: unknown;
    try {
      validateRepoUrl(url, strict);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(UserError);
    expect((err as UserError).message).toMatch(/credentials/);
    expect(`${(err as UserError).message} ${(err as UserError).hint}`).not.toContain(SECRET);
  });

  it("allows insecure transports and local repositories only when configured", () => {
    expect(validateRepoUrl("http://example.com/x.git", { allowInsecureHttp: true, allowFileRemotes: false }).kind).toBe("http");
    expect(validateRepoUrl("git://example.com/x.git", { allowInsecureHttp: true, allowFileRemotes: false }).kind).toBe("git");
    expect(validateRepoUrl("file:///tmp/x", fileRemotes)).toEqual({ kind: "file", url: "file:///tmp/x" });
    expect(validateRepoUrl("/tmp/x", fileRemotes)).toEqual({ kind: "file", url: "/tmp/x" });
    expect(validateRepoUrl("rel/repo", fileRemotes)).toEqual({ kind: "file", url: path.resolve("rel/repo") });
    expect(() => validateRepoUrl("ext::sh", { allowInsecureHttp: true, allowFileRemotes: true })).toThrow(UserError);
  });
});

describe("paths", () => {
  it("isInside compares path segments", () => {
    expect(isInside("/a/b", "/a/b")).toBe(true);
    expect(isInside("/a/b/c", "/a/b")).toBe(true);
    expect(isInside("/a/bc", "/a/b")).toBe(false);
    expect(isInside("/a", "/a/b")).toBe(false);
    expect(isInside("/a/b/../c", "/a/b")).toBe(false);
    expect(isInside("/a/b/..foo", "/a/b")).toBe(true);
  });

  it("resolveInsideRoots accepts directories inside a root and refuses the rest", async () => {
    const root = path.join(scratch, "root");
    const sibling = path.join(scratch, "root2"); // shares the prefix, is not inside
    await fs.mkdir(path.join(root, "proj"), { recursive: true });
    await fs.mkdir(sibling);
    await fs.writeFile(path.join(root, "file.txt"), "");
    await fs.symlink(sibling, path.join(root, "escape"));
    await fs.symlink(path.join(root, "proj"), path.join(scratch, "link-in"));
    const realRoot = await fs.realpath(root);

    expect(await resolveInsideRoots(path.join(root, "proj"), [root])).toBe(path.join(realRoot, "proj"));
    expect(await resolveInsideRoots(root, [root])).toBe(realRoot);
    expect(await resolveInsideRoots(path.join(scratch, "link-in"), [root])).toBe(path.join(realRoot, "proj"));
    const outside = await expectUserError(resolveInsideRoots(sibling, [root]), "path_not_allowed", /outside the allowed roots/);
    expect(outside.hint).toMatch(/workspace\.allowed_roots/);
    await expectUserError(resolveInsideRoots(path.join(root, "escape"), [root]), "path_not_allowed");
    await expectUserError(resolveInsideRoots(path.join(root, "missing"), [root]), "not_found", /does not exist/);
    await expectUserError(resolveInsideRoots(path.join(root, "file.txt"), [root]), "invalid_input", /not a directory/);
    await expectUserError(resolveInsideRoots("relative/dir", [root]), "invalid_input", /absolute/);
    await expectUserError(resolveInsideRoots(root, [path.join(scratch, "no-such-root")]), "path_not_allowed");
  });
});
