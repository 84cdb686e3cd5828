import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import { type Git } from "./git.js";
import { isMissing, remember, repoPaths, repoPathsKnown, type RepoPaths } from "./git-dir.js";
import { workspaceProgramOverrides } from "./program-overrides.js";

// Reading the working tree once: `git status` finds what differs from HEAD, only those paths are
// staged into a throw-away copy of the index, and that index is written as a tree. A walk of the
// whole tree costs as much as one `git status` of the repository, whatever the number of changes.

export interface ReadOptions {
  /**
   * A workspace coding-mcp owns (managed or a worktree): its index may be written, so git's untracked
   * cache is kept in it and the refreshed stat data is written back, which makes the next read cheaper.
   * A caller's checkout is read without any lock on, or write to, its index.
   */
  owned?: boolean;
}

export interface WorkingTreeRead {
  /** The working tree's content as a tree object. */
  tree: string;
  /** Paths (from the repository's top) whose staged or working-tree state differs from HEAD, untracked files included; both sides of a staged rename. */
  dirty: string[];
}

// The last tree read in each owned workspace, by directory: nothing but the agent's tasks writes there,
// so the tree read after one task is the working tree before the next (see lastTreeRead).
const lastTrees = new Map<string, string>();

/**
 * The tree read most recently in an owned workspace by this process, while its git directory is still
 * there; undefined when there is none. Between tasks nothing writes an owned workspace (coding_commit
 * and coding_push change refs, not files), so this is the working tree as it is now, without a walk.
 */
export async function lastTreeRead(dir: string): Promise<string | undefined> {
  const tree = lastTrees.get(dir);
  const paths = repoPathsKnown.get(dir);
  if (tree === undefined || paths === undefined) return undefined;
  return (await fs.stat(paths.index).then(() => true, () => false)) ? tree : undefined;
}

/** Forget what was read in `dir` (its workspace is gone, or the caller knows it changed). */
export function forgetTreeRead(dir: string): void {
  lastTrees.delete(dir);
}

interface ReadHooks {
  /** Called once git has read the working tree (later changes are not in the tree). */
  onStaged?: () => void;
  /** The tree object is written once this settles (the scratch index alone is needed then). */
  writeTreeAfter?: Promise<unknown>;
}

/** Read the working tree once and write it as a tree (see the module's comment). */
export async function readWorkingTree(git: Git, dir: string, o: ReadOptions & ReadHooks = {}): Promise<WorkingTreeRead> {
  // A read that failed leaves no earlier tree standing in for the working tree.
  if (o.owned) forgetTreeRead(dir);
  return withStagedIndex(git, dir, o, async (env, dirty, overrides) => {
    o.onStaged?.();
    // Starting a process holds up everything else for a moment: `writeTreeAfter` lets what waits
    // for `onStaged` (the prompt) go first.
    await o.writeTreeAfter;
    // Nothing differs from HEAD: the working tree is HEAD's tree, which git need not compute from the
    // index (a fresh checkout's index has no cached trees: at 100,000 files that costs more than the read).
    const head = dirty.length === 0 ? await git.exec(["rev-parse", "--verify", "--quiet", "HEAD^{tree}"], { cwd: dir }) : undefined;
    // With the overrides too: writing the index back, git re-reads "racily clean" files through their filters.
    const tree = head?.exitCode === 0 && head.stdout ? head.stdout : await git.run([...overrides, "write-tree"], { cwd: dir, env });
    if (o.owned) remember(lastTrees, dir, tree);
    return { tree, dirty };
  });
}

/**
 * Stage the working tree into a throw-away copy of the index and run `fn` with that index and the
 * paths `git status` listed, and the `-c` options that override the filters and programs the workspace's
 * own config names: every git run that may read files needs them (status compares contents through
 * clean filters too).
 */
export async function withStagedIndex<T>(git: Git, dir: string, o: ReadOptions, fn: (env: Record<string, string>, dirty: string[], overrides: string[]) => Promise<T>): Promise<T> {
  const paths = await currentRepoPaths(git, dir);
  const overrides = await workspaceProgramOverrides(git, dir, paths);
  const entries = await statusEntries(git, dir, overrides, o);
  const dirty = [...new Set(entries.map((entry) => entry.slice(3)))];
  // An owned workspace's index keeps git's cached trees, so the scratch copy's write-tree computes only
  // the directories of the paths staged below (a fresh checkout's index has none: at 100,000 files
  // computing them all costs more than the read). Nothing to do when they are there; a conflicted
  // index has none to keep, which changes nothing.
  if (o.owned && dirty.length) await git.exec([...overrides, "write-tree"], { cwd: dir });
  // "D " is gone from the index and from disk already: the copy of the index has nothing to stage for it.
  const toStage = [...new Set(entries.filter((entry) => !entry.startsWith("D ")).map((entry) => entry.slice(3)))];
  const scratch = `${paths.index}.coding-mcp-${randomBytes(6).toString("hex")}`;
  try {
    // Without an index (nothing was ever staged) the scratch index starts empty.
    await copyIndex(paths.index, scratch);
    const env = { GIT_INDEX_FILE: scratch };
    if (toStage.length) {
      // Only the listed paths: git reads no directory off their way. Literal pathspecs from the top
      // (status answers from there, `dir` may be below it), NUL-separated on stdin.
      const add = [...overrides, "add", "--all", "--ignore-errors", "--pathspec-from-file=-", "--pathspec-file-nul"];
      await git.run(add, { cwd: dir, env, input: toStage.map((p) => `:(top,literal)${p}`).join("\0") });
    }
    return await fn(env, dirty, overrides);
  } finally {
    await Promise.all([scratch, `${scratch}.lock`].map((f) => removeIfThere(f)));
  }
}

/**
 * Paths (from the repository's top) whose staged or working-tree state differs from HEAD, untracked
 * files included (ignored ones not); both sides of a staged rename. Submodules count when their commit
 * changed, not for what is inside them.
 */
export async function dirtyPaths(git: Git, dir: string, o: ReadOptions = {}): Promise<string[]> {
  const overrides = await workspaceProgramOverrides(git, dir, await currentRepoPaths(git, dir));
  return [...new Set((await statusEntries(git, dir, overrides, o)).map((entry) => entry.slice(3)))];
}

/** `git status` porcelain v1 entries ("XY path"), paths always from the top of the repository. */
async function statusEntries(git: Git, dir: string, overrides: string[], o: ReadOptions): Promise<string[]> {
  // The untracked cache only in an owned workspace's index (a caller's config and index stay as they are).
  const access = o.owned ? ["-c", "core.untrackedCache=true"] : ["--no-optional-locks"];
  const args = [...overrides, ...access, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames", "--ignore-submodules=dirty"];
  return (await git.run(args, { cwd: dir })).split("\0").filter(Boolean);
}

/** Where the index is, asked again when it is not where it was (the directory may hold another repository now). */
async function currentRepoPaths(git: Git, dir: string): Promise<RepoPaths> {
  const wasKnown = repoPathsKnown.has(dir);
  const paths = await repoPaths(git, dir);
  if (!wasKnown || (await fs.stat(paths.index).then(() => true, () => false))) return paths;
  return repoPaths(git, dir, true);
}

/**
 * `scratch` as a copy of the index, with its times; false when there is no index (nothing staged ever).
 * A hard link is the copy when the file system allows: git never writes an index in place (it writes
 * `<file>.lock` and renames it over the file), so the real index's file stays as it was, and the
 * link costs nothing whatever the index's size.
 */
async function copyIndex(index: string, scratch: string): Promise<boolean> {
  try {
    try {
      await fs.link(index, scratch);
      return true;
    } catch (err) {
      if (isMissing(err)) throw err;
    }
    await fs.copyFile(index, scratch);
    // Keep the index's mtime: git re-reads files changed in the same second as the index was written
    // ("racily clean" entries) only when it can compare against the index's real time.
    const { atime, mtime } = await fs.stat(index);
    await fs.utimes(scratch, atime, mtime);
    return true;
  } catch (err) {
    if (!isMissing(err)) throw err;
    return false;
  }
}

/** Remove a file unless it (or the directory it was in) is gone already. */
async function removeIfThere(file: string): Promise<void> {
  try {
    await fs.rm(file, { force: true });
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
}
