import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { UserError } from "../errors.js";
import { type Git } from "./git.js";
import { readIfThere, type RepoPaths, repoPaths } from "./git-dir.js";

// Names, refs and identity: checking what callers name, reading HEAD, listing commits.

const MAX_COMMITS = 100;

export interface Author {
  name: string;
  email: string;
}

/** Author and committer for one command only; the user's own config is never written. */
export function identityArgs(author: Author): string[] {
  return ["-c", `user.name=${author.name}`, "-c", `user.email=${author.email}`];
}

export async function checkBranchName(git: Git, name: string): Promise<void> {
  const hint = "use letters, digits and / - _ . (no spaces, '..', '~^:?*[\\', '@{', leading '-' or trailing '.lock')";
  if (!name || name.startsWith("-") || name === "HEAD") {
    throw new UserError(`branch ${JSON.stringify(name)} is not a valid branch name`, hint, "invalid_branch");
  }
  // refs/heads/<name> rather than --branch, which would expand @{-1} to another branch.
  const result = await git.exec(["check-ref-format", `refs/heads/${name}`], { cwd: os.tmpdir() });
  if (result.exitCode !== 0) throw new UserError(`branch ${JSON.stringify(name)} is not a valid branch name`, hint, "invalid_branch");
}

export async function checkRemoteName(git: Git, dir: string, name: string): Promise<void> {
  const remotes = (await git.run(["remote"], { cwd: dir })).split("\n").filter(Boolean);
  if (name.startsWith("-") || !remotes.includes(name)) {
    throw new UserError(
      `remote ${JSON.stringify(name)} does not exist in ${dir}`,
      remotes.length ? `use one of: ${remotes.join(", ")}` : "the repository has no remotes; add one with git remote add",
      "no_such_remote",
    );
  }
}

/** The full hash of a caller-named commit, refusing names git could read as options. */
export function resolveCommit(git: Git, dir: string, ref: string): Promise<string> {
  return resolveObject(git, dir, ref, "commit");
}

export async function resolveObject(git: Git, dir: string, ref: string, type: "commit" | "tree"): Promise<string> {
  const result = ref.startsWith("-") ? undefined : await git.exec(["rev-parse", "--verify", "--quiet", `${ref}^{${type}}`], { cwd: dir });
  if (!result || result.exitCode !== 0) throw new UserError(`${JSON.stringify(ref)} is not a ${type} in ${dir}`, undefined, "unknown_ref");
  return result.stdout;
}

/** HEAD's hash, or undefined in a repository without commits. */
export async function headCommit(git: Git, dir: string): Promise<string | undefined> {
  const read = await repoPaths(git, dir).then(headFromRefFiles).catch(() => undefined);
  if (read !== undefined) return read;
  const result = await git.exec(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], { cwd: dir });
  return result.exitCode === 0 ? result.stdout : undefined;
}

// A branch: per-worktree refs (bisect, rewritten) and anything else unusual are left to git.
const REF_NAME = /^refs\/heads\/(?:[\w.-]+\/)*[\w.-]+$/;
const OBJECT_ID = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/;

/**
 * HEAD's commit as git's files backend stores it: HEAD names a branch (`ref: refs/heads/x`) whose hash
 * is in its loose ref file, else in `packed-refs`; or HEAD holds a hash itself. A few file reads
 * instead of a git process before and after every task. Undefined whenever git must be asked: an
 * unborn branch, reftable, a ref name git would refuse, anything unexpected. A branch hash always
 * names a commit (git refuses to point one elsewhere), so no `^{commit}` check is needed.
 */
export async function headFromRefFiles(paths: RepoPaths): Promise<string | undefined> {
  const gitDir = path.dirname(paths.index);
  let content = (await fs.readFile(path.join(gitDir, "HEAD"), "utf8")).trim();
  for (let depth = 0; depth < 5 && content.startsWith("ref: "); depth++) {
    const ref = content.slice(5).trim();
    if (!REF_NAME.test(ref) || ref.split("/").some((c) => c === "." || c === ".." || c.endsWith(".lock"))) return undefined;
    const loose = await readIfThere(path.join(paths.commonDir, ref));
    content = loose?.trim() ?? packedRef((await readIfThere(path.join(paths.commonDir, "packed-refs"))) ?? "", ref) ?? "";
  }
  return OBJECT_ID.test(content) ? content : undefined;
}

/** A ref's hash in a `packed-refs` file ("<hash> <ref>" lines; "^<hash>" lines peel the tag above). */
function packedRef(packed: string, ref: string): string | undefined {
  for (const line of packed.split("\n")) {
    if (line.endsWith(` ${ref}`) && line.length === line.indexOf(" ") + 1 + ref.length) return line.slice(0, line.indexOf(" "));
  }
  return undefined;
}

/** The checked-out branch, or undefined when HEAD is detached. */
export async function currentBranch(git: Git, dir: string): Promise<string | undefined> {
  const result = await git.exec(["symbolic-ref", "--quiet", "--short", "HEAD"], { cwd: dir });
  return result.exitCode === 0 && result.stdout ? result.stdout : undefined;
}

export interface CommitInfo {
  hash: string;
  subject: string;
}

/** `git log` of `revisions`, newest first, at most MAX_COMMITS, as parseLog reads it. */
export function logArgs(revisions: string[]): string[] {
  return ["log", `--max-count=${MAX_COMMITS}`, "--no-show-signature", "--format=%H%x09%s", ...revisions, "--"];
}

export async function logCommits(git: Git, dir: string, revisions: string[]): Promise<CommitInfo[]> {
  return parseLog(await git.run(logArgs(revisions), { cwd: dir }));
}

/** `git log --format=%H%x09%s` lines. */
export function parseLog(out: string): CommitInfo[] {
  return out
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const tab = line.indexOf("\t");
      return { hash: line.slice(0, tab), subject: line.slice(tab + 1) };
    });
}
