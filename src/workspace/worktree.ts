import fs from "node:fs/promises";
import { UserError, errorMessage } from "../errors.js";
import { GitError, type Git } from "./git.js";
import type { Trash } from "./trash.js";
import { checkBranchName, currentBranch, headCommit } from "./refs.js";

/**
 * Isolated checkouts: a git worktree of a caller's repository on a new branch of its own, so several
 * sessions can work on one repository at once without touching the caller's checkout (its HEAD,
 * branch, index, working tree and stash). `git worktree add` writes only the new branch ref and the
 * worktree's administrative files under the repository's .git/worktrees.
 */

export interface SourceRepository {
  /** The top directory of the caller's checkout. */
  top: string;
  /** The commit the worktree starts from: the checkout's HEAD. */
  head: string;
  /** The branch checked out there. */
  branch: string;
}

/** The caller's checkout a worktree is made from: a non-bare repository with a commit on a checked-out branch. */
export async function inspectSourceRepository(git: Git, dir: string): Promise<SourceRepository> {
  const top = await git.run(["rev-parse", "--show-toplevel"], { cwd: dir });
  const head = await headCommit(git, top);
  if (!head) {
    throw new UserError(`${top} has no commit yet, so there is nothing to start a worktree from`, "Commit something first, or open it without isolation.", "no_commits");
  }
  const branch = await currentBranch(git, top);
  if (!branch) {
    throw new UserError(
      `${top} has a detached HEAD (no branch checked out, e.g. during a rebase or bisect)`,
      "Check out a branch there first (git switch <branch>), or open it without isolation.",
      "detached_head",
    );
  }
  return { top, head, branch };
}

export async function branchExists(git: Git, repo: string, branch: string): Promise<boolean> {
  const result = await git.exec(["show-ref", "--verify", "--quiet", `refs/heads/${branch}`], { cwd: repo });
  return result.exitCode === 0;
}

/** Refuse a session branch name that is not valid or already exists in the repository. */
export async function checkNewBranch(git: Git, repo: string, branch: string): Promise<void> {
  await checkBranchName(git, branch);
  if (await branchExists(git, repo, branch)) {
    throw new UserError(`branch ${branch} already exists in ${repo}`, "Name a new branch, or leave branch out for one named after the session.", "branch_exists");
  }
}

export interface AddWorktreeOptions {
  /** The caller's repository (any directory of it). */
  repo: string;
  /** Where the worktree goes; must not exist yet. */
  dir: string;
  /** The new branch, checked with checkNewBranch. */
  branch: string;
  /** The commit it starts from. */
  commit: string;
  timeoutMs: number;
}

/** A new worktree of `repo` at `dir` on a new branch from `commit`. On failure nothing of it is left (directory, admin files, branch). */
export async function addWorktree(git: Git, o: AddWorktreeOptions): Promise<void> {
  await checkNewBranch(git, o.repo, o.branch);
  if (await fs.lstat(o.dir).then(() => true, () => false)) throw new Error(`cannot create a worktree at ${o.dir}: it already exists`);
  try {
    await git.run(["worktree", "add", "--quiet", "--no-track", "-b", o.branch, "--", o.dir, o.commit], { cwd: o.repo, timeoutMs: o.timeoutMs });
  } catch (err) {
    await removeWorktree(git, { repo: o.repo, dir: o.dir }).catch(() => undefined);
    await deleteBranch(git, o.repo, o.branch, o.commit).catch(() => undefined);
    if (err instanceof GitError) throw new UserError(`could not create a worktree of ${o.repo}: ${err.message}`, undefined, "git_failed");
    throw err;
  }
}

/**
 * Remove the worktree at `dir` (its directory, uncommitted changes included, and its admin files);
 * the branch and its commits stay. Works when the directory or the repository is already gone.
 * Answers what could not be done, for the caller to report.
 */
export async function removeWorktree(git: Git, o: { repo: string; dir: string; trash?: Trash }): Promise<string[]> {
  const problems: string[] = [];
  const repoExists = await isDirectory(o.repo);
  // Into the trash, when there is one: the directory is gone at once and its files go behind; git then
  // forgets the worktree (prune) as it does for one deleted by hand.
  const discarded = o.trash !== undefined && (await o.trash.discard(o.dir));
  if (!discarded && repoExists && (await isDirectory(o.dir))) {
    // --force: a session's worktree is removed with what is left in it, as a managed workspace is.
    const removed = await git.exec(["worktree", "remove", "--force", "--", o.dir], { cwd: o.repo }).catch((err: unknown) => ({ exitCode: -1, stderr: errorMessage(err) }));
    if (removed.exitCode !== 0) problems.push(`git worktree remove failed (${git.redact(removed.stderr.trim().split("\n").at(-1) ?? "")}); the directory was deleted instead`);
  }
  // Whatever git left (or could not remove, e.g. a worktree with submodules) goes; then git forgets the worktree.
  if (!discarded) await fs.rm(o.dir, { recursive: true, force: true });
  if (repoExists) {
    const pruned = await git.exec(["worktree", "prune"], { cwd: o.repo }).catch((err: unknown) => ({ exitCode: -1, stderr: errorMessage(err) }));
    if (pruned.exitCode !== 0) problems.push(`git worktree prune failed in ${o.repo}: ${git.redact(pruned.stderr.trim())}`);
  } else {
    problems.push(`the repository ${o.repo} no longer exists, so only the worktree directory was removed`);
  }
  return problems;
}

/** Delete a branch coding-mcp created, only while it still points at `expected` (no commit of anyone's on it). */
export async function deleteBranch(git: Git, repo: string, branch: string, expected: string): Promise<void> {
  await git.run(["update-ref", "-d", `refs/heads/${branch}`, expected], { cwd: repo });
}

async function isDirectory(p: string): Promise<boolean> {
  return fs.stat(p).then((s) => s.isDirectory(), () => false);
}
