import fs from "node:fs/promises";
import path from "node:path";
import { UserError } from "../errors.js";
import { type GitAuth } from "./credentials.js";
import { repoRelativePath } from "./paths.js";
import { type Git, GitError } from "./git.js";
import { type Author, checkBranchName, identityArgs } from "./refs.js";
import { classify, remoteFailure } from "./remote-failure.js";

// Creating workspaces: a new repository, or a clone of a remote one.

export const INITIAL_COMMIT_MESSAGE = "Initial commit (coding-mcp)";

/** A new repository on branch main with one empty commit, so every workspace has a HEAD to diff against. */
export async function initRepository(git: Git, dir: string, author: Author): Promise<void> {
  await fs.mkdir(dir, { recursive: true });
  await git.run(["init", "--quiet", "-b", "main"], { cwd: dir });
  await git.run([...identityArgs(author), "commit", "--quiet", "--allow-empty", "--file=-"], { cwd: dir, input: INITIAL_COMMIT_MESSAGE });
}

export interface CloneOptions {
  git: Git;
  /** Already checked by validateRepoUrl. */
  url: string;
  dir: string;
  branch?: string;
  shallow?: boolean;
  sparsePaths?: string[];
  timeoutMs: number;
  auth?: GitAuth;
}

export async function cloneRepository(o: CloneOptions): Promise<void> {
  const { git } = o;
  if (o.branch !== undefined) await checkBranchName(git, o.branch);
  const sparse = await sparsePatterns(o.dir, o.sparsePaths ?? []);
  const existed = await emptyOrMissing(o.dir);
  await fs.mkdir(path.dirname(o.dir), { recursive: true });

  const deadline = Date.now() + o.timeoutMs;
  const env = o.auth?.env;
  const configArgs = o.auth?.configArgs ?? [];
  // --no-local: a local path goes through the normal transport, so --depth and --filter apply to it
  // too and nothing is hard-linked from (or followed through symlinks in) the source repository.
  const args = [...configArgs, "clone", "--no-local"];
  if (o.branch !== undefined) args.push("--branch", o.branch);
  if (o.shallow) args.push("--depth", "1");
  if (sparse) args.push("--sparse", "--filter=blob:none");
  args.push("--", o.url, o.dir);
  try {
    await git.run(args, { cwd: path.dirname(o.dir), timeoutMs: o.timeoutMs, ...(env && { env }) });
    if (sparse) {
      // Non-cone patterns read from stdin: exactly the given files and directories, nothing parsed as an option.
      const sparseArgs = [...configArgs, "sparse-checkout", "set", "--no-cone", "--stdin"];
      await git.run(sparseArgs, { cwd: o.dir, input: sparse, timeoutMs: Math.max(1, deadline - Date.now()), ...(env && { env }) });
    }
  } catch (err) {
    await removeHalfMade(o.dir, existed);
    throw cloneError(git, err, o);
  }
}

/** sparse_paths as anchored, escaped non-cone patterns (one per line), or undefined for a full checkout. */
async function sparsePatterns(dir: string, paths: string[]): Promise<string | undefined> {
  if (paths.length === 0) return undefined;
  const relative = await Promise.all(paths.map((p) => repoRelativePath(dir, p, "sparse_paths")));
  if (relative.includes(".")) return undefined;
  return relative.map((p) => "/" + p.replace(/[\\*?[\]!#\s]/g, "\\$&")).join("\n") + "\n";
}

/** True when `dir` exists (and is empty); a non-empty directory is refused before git runs, so a failed clone never touches its contents. */
async function emptyOrMissing(dir: string): Promise<boolean> {
  const entries = await fs.readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return undefined;
    throw new UserError(`cannot clone into ${dir}: ${err.code === "ENOTDIR" ? "it is a file" : err.message}`);
  });
  if (entries?.length) throw new UserError(`cannot clone into ${dir}: the directory is not empty`, "choose a new or empty directory");
  return entries !== undefined;
}

async function removeHalfMade(dir: string, existed: boolean): Promise<void> {
  if (!existed) {
    await fs.rm(dir, { recursive: true, force: true });
    return;
  }
  // git clone only accepts an empty existing directory: empty it again.
  const entries = await fs.readdir(dir).catch(() => [] as string[]);
  await Promise.all(entries.map((e) => fs.rm(path.join(dir, e), { recursive: true, force: true })));
}

function cloneError(git: Git, err: unknown, o: CloneOptions): unknown {
  if (!(err instanceof GitError)) return err;
  const what = `cloning ${git.redact(o.url)} failed`;
  if (err.timedOut) {
    return new UserError(
      `cloning ${git.redact(o.url)} timed out after ${Math.round(o.timeoutMs / 60_000)} min`,
      "raise limits.clone_timeout_min, or clone less with shallow: true or sparse_paths",
      "timeout",
    );
  }
  if (classify(err.stderr) === "branch") {
    return new UserError(
      `remote branch ${o.branch} not found in ${git.redact(o.url)}`,
      "check the branch name, or omit branch to clone the default branch",
      "branch_not_found",
    );
  }
  return remoteFailure(git, err, what, o.url, o.auth);
}
