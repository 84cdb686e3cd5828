import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll } from "vitest";

/** Plain git for test assertions: what a user would run to check coding-mcp's work. */

/** Run git and return its trimmed stdout. */
export function git(cwd: string, ...args: string[]): string {
  return execFileSync("git", args, { cwd, encoding: "utf8", env: { ...process.env, GIT_TERMINAL_PROMPT: "0" } }).trim();
}

/** A bare repository with one commit on main (README.md), to clone from and push to. */
export function makeBareRemote(dir: string, name = "remote.git"): string {
  const bare = path.join(dir, name);
  const seed = path.join(dir, `${name}-seed`);
  git(dir, "init", "-q", "--bare", "-b", "main", bare);
  git(dir, "init", "-q", "-b", "main", seed);
  fs.writeFileSync(path.join(seed, "README.md"), "# demo\n");
  git(seed, "add", "-A");
  git(seed, "-c", "user.name=Seed", "-c", "user.email=seed@example.test", "commit", "-q", "-m", "seed");
  git(seed, "push", "-q", bare, "main");
  fs.rmSync(seed, { recursive: true, force: true });
  return bare;
}

/** Files, insertions and deletions of a commit as `git show --numstat` reports them. */
export function gitShowStats(cwd: string, ref: string): { files_changed: number; insertions: number; deletions: number } {
  const lines = git(cwd, "show", "--numstat", "--format=", ref).split("\n").filter(Boolean);
  let insertions = 0;
  let deletions = 0;
  for (const line of lines) {
    const [a, d] = line.split("\t");
    insertions += a === "-" ? 0 : Number(a);
    deletions += d === "-" ? 0 : Number(d);
  }
  return { files_changed: lines.length, insertions, deletions };
}

const FIXTURE_IDENTITY = { GIT_AUTHOR_NAME: "Fixture", GIT_AUTHOR_EMAIL: "f@x", GIT_COMMITTER_NAME: "Fixture", GIT_COMMITTER_EMAIL: "f@x" };

/** Plain git with a fixed identity, independent of the code under test (async, for fixtures built in tests). */
export async function sh(cwd: string, ...args: string[]): Promise<string> {
  const { execa } = await import("execa");
  return (await execa("git", args, { cwd, env: FIXTURE_IDENTITY })).stdout;
}

/** Write a file below `dir`, creating its directories. */
export async function write(dir: string, rel: string, content: string | Buffer): Promise<void> {
  await fs.promises.mkdir(path.dirname(path.join(dir, rel)), { recursive: true });
  await fs.promises.writeFile(path.join(dir, rel), content);
}

/**
 * A throw-away HOME for the calling test file, and no system or XDG git config: neither the user's git
 * config is read nor written, by the tests' git or coding-mcp's. Answers the HOME (once beforeAll ran).
 */
export function throwawayGitHome(): () => string {
  let home = "";
  const saved = { HOME: process.env.HOME, GIT_CONFIG_NOSYSTEM: process.env.GIT_CONFIG_NOSYSTEM, XDG_CONFIG_HOME: process.env.XDG_CONFIG_HOME };
  beforeAll(() => {
    home = fs.mkdtempSync(path.join(os.tmpdir(), "coding-mcp-home-"));
    process.env.HOME = home;
    process.env.GIT_CONFIG_NOSYSTEM = "1";
    delete process.env.XDG_CONFIG_HOME;
  });
  afterAll(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    fs.rmSync(home, { recursive: true, force: true });
  });
  return () => home;
}
