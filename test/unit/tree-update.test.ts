import { execFileSync } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Redactor } from "../../src/redact.js";
import { Git } from "../../src/workspace/git.js";
import { treeWithPaths } from "../../src/workspace/tree-update.js";
import { readWorkingTree } from "../../src/workspace/working-tree.js";
import { throwawayGitHome } from "../support/git.js";

// The tree coding-mcp writes for a working tree must be the very tree git itself writes after
// `git add --all`: same ids, whatever the shape of the change. Each case is checked both through
// the read coding-mcp does after `git status` and through the paths an agent's own events name.

const git = new Git({ redactor: new Redactor([]) });
let dir: string;
throwawayGitHome();

function sh(cwd: string, ...args: string[]): string {
  return execFileSync("git", args, { cwd, encoding: "utf8", env: { ...process.env, GIT_AUTHOR_NAME: "T", GIT_AUTHOR_EMAIL: "t@x", GIT_COMMITTER_NAME: "T", GIT_COMMITTER_EMAIL: "t@x" } }).trim();
}

async function write(rel: string, content: string | Buffer, mode?: number): Promise<void> {
  const file = path.join(dir, rel);
  await fs.mkdir(path.dirname(file), { recursive: true });
  await fs.writeFile(file, content);
  if (mode !== undefined) await fs.chmod(file, mode);
}

/** What git itself stores for the working tree: a copy of the index, `git add --all`, `git write-tree`. */
async function gitsOwnTree(): Promise<string> {
  const index = path.join(dir, ".git", "index-expected");
  await fs.copyFile(path.join(dir, ".git", "index"), index).catch(() => undefined);
  const env = { ...process.env, GIT_INDEX_FILE: index };
  execFileSync("git", ["add", "--all"], { cwd: dir, env });
  const tree = execFileSync("git", ["write-tree"], { cwd: dir, env, encoding: "utf8" }).trim();
  await fs.rm(index);
  return tree;
}

beforeEach(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "coding-mcp-tree-"));
  sh(dir, "init", "-q", "-b", "main");
  await write(".gitignore", "*.log\nbuild/\n");
  await write("README.md", "# r\n");
  await write("a", "file named a\n");
  await write("a.b/x.txt", "sorts after a/ and before a0\n");
  await write("a0", "a0\n");
  await write("src/deep/er/one.txt", "one\n");
  await write("src/deep/er/two.txt", "two\n");
  await write("src/deep-note.txt", "sorts before the directory src/deep\n");
  await write("src/lonely/only.txt", "the only file in its directory\n");
  await write("src/run.sh", "#!/bin/sh\necho run\n", 0o755);
  await write("tracked.log", "tracked although ignored\n");
  await write("ünï cödé/tab\there.txt", "unicode\n");
  sh(dir, "add", "--all");
  sh(dir, "add", "--force", "tracked.log");
  sh(dir, "commit", "-q", "-m", "base");
});

afterEach(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

describe("treeWithPaths", () => {
  it("writes the tree git writes: edits, new files in new directories, deletions that empty a directory, modes, unicode, ignore rules", async () => {
    await write("src/deep/er/one.txt", "one, edited\n");
    await write("src/new/dir/three.txt", "three\n");
    await write("a.b/y.txt", "beside x\n");
    await write("0first.txt", "sorts first\n");
    await fs.rm(path.join(dir, "src/lonely/only.txt"));
    await fs.chmod(path.join(dir, "src/run.sh"), 0o644);
    await fs.chmod(path.join(dir, "src/deep/er/two.txt"), 0o755);
    await write("ünï cödé/tab\there.txt", "unicode, edited\n");
    await write("tracked.log", "tracked, edited\n");
    await write("fresh.log", "untracked and ignored: left out\n");
    await write("build/out.js", "ignored directory: left out\n");
    // Staged, then put back as it was: nothing to see.
    await write("README.md", "# staged\n");
    sh(dir, "add", "README.md");
    await write("README.md", "# r\n");

    const expected = await gitsOwnTree();
    const read = await readWorkingTree(git, dir);
    expect(read.tree).toBe(expected);
    expect(read.dirty).not.toContain("fresh.log");

    const touched = ["src/deep/er/one.txt", "src/new/dir/three.txt", "a.b/y.txt", "0first.txt", "src/lonely/only.txt", "src/run.sh", "src/deep/er/two.txt", "ünï cödé/tab\there.txt", "tracked.log", "fresh.log", "build/out.js", "README.md"];
    const head = sh(dir, "rev-parse", "HEAD");
    expect(await treeWithPaths(git, dir, head, touched, { overrides: [], fromAgent: true })).toBe(expected);
    // The working tree's own files are untouched, the index too.
    expect(sh(dir, "diff", "--cached", "--name-only")).toBe("README.md");
  });

  it("answers the base's tree when the named paths hold what they held, and names no untracked ignored file", async () => {
    const head = sh(dir, "rev-parse", "HEAD");
    const base = sh(dir, "rev-parse", "HEAD^{tree}");
    await write("skipped.log", "ignored\n");
    await write(":magic.log", "ignored, whatever its name\n");
    expect(await treeWithPaths(git, dir, head, ["README.md", "src/run.sh", "skipped.log", ":magic.log"], { overrides: [], fromAgent: true })).toBe(base);
  });

  it("declines what only a walk reads exactly, and the read through the index still writes git's tree", async () => {
    const head = sh(dir, "rev-parse", "HEAD");
    const cases: [string, () => Promise<void>, string[]][] = [
      ["a symlink", () => fs.symlink("README.md", path.join(dir, "link")), ["link"]],
      ["a file where a directory was", async () => {
        await fs.rm(path.join(dir, "src/deep"), { recursive: true });
        await write("src/deep", "now a file\n");
      }, ["src/deep", "src/deep/er/one.txt", "src/deep/er/two.txt"]],
      ["a directory where a file was", async () => {
        await fs.rm(path.join(dir, "a"));
        await write("a/inside.txt", "a is a directory now\n");
      }, ["a", "a/inside.txt"]],
      ["a nested repository", async () => {
        await write("vendor/lib/x.txt", "x\n");
        sh(path.join(dir, "vendor/lib"), "init", "-q");
        sh(path.join(dir, "vendor/lib"), "add", "x.txt");
        sh(path.join(dir, "vendor/lib"), "commit", "-q", "-m", "nested");
      }, ["vendor/lib/x.txt"]],
      ["a rule file the agent wrote", () => write(".gitignore", "*.log\n"), [".gitignore"]],
      ["a path inside .git", () => write(".git/info/exclude", "x\n"), [".git/info/exclude"]],
    ];
    for (const [what, change, touched] of cases) {
      await change();
      expect(await treeWithPaths(git, dir, head, touched, { overrides: [], fromAgent: true }), what).toBeUndefined();
      expect((await readWorkingTree(git, dir)).tree, what).toBe(await gitsOwnTree());
      sh(dir, "reset", "-q", "--hard");
      sh(dir, "clean", "-qfdx", "-e", "!.git");
    }
  });

  it("follows git's settings: core.fileMode off and a sparse checkout are read through the index", async () => {
    sh(dir, "config", "core.fileMode", "false");
    await fs.chmod(path.join(dir, "src/run.sh"), 0o644);
    await write("src/deep/er/one.txt", "one, edited\n");
    expect((await readWorkingTree(git, dir)).tree).toBe(await gitsOwnTree());
    sh(dir, "config", "core.fileMode", "true");
    sh(dir, "sparse-checkout", "set", "src");
    await write("src/deep/er/two.txt", "two, edited\n");
    expect((await readWorkingTree(git, dir)).tree).toBe(await gitsOwnTree());
  });

  it("declines a directory that is reached through a symlink", async () => {
    await fs.symlink("src", path.join(dir, "via"));
    sh(dir, "add", "via");
    sh(dir, "commit", "-q", "-m", "link");
    await write("src/deep/er/one.txt", "edited through the link\n");
    const head = sh(dir, "rev-parse", "HEAD");
    expect(await treeWithPaths(git, dir, head, ["via/deep/er/one.txt"], { overrides: [], fromAgent: true })).toBeUndefined();
  });

  it("reads a repository whose directory is below the top, and one whose tree a status lists many paths of", async () => {
    for (let i = 0; i < 300; i++) await write(`gen/d${i % 7}/f${i}.txt`, `file ${i}\n`);
    await fs.rm(path.join(dir, "src/deep"), { recursive: true });
    const expected = await gitsOwnTree();
    expect((await readWorkingTree(git, path.join(dir, "src"))).tree).toBe(expected);
  });
});
