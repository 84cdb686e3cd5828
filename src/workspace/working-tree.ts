import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { errorMessage } from "../errors.js";
import { withTimeout } from "../process.js";
import { type Git } from "./git.js";
import { isMissing, remember, repoPaths, repoPathsKnown, repositoryTopOf, type RepoPaths } from "./git-dir.js";
import { workspaceGitSettings, type WorkspaceGitSettings } from "./program-overrides.js";
import { ChangeWatch } from "./change-watch.js";
import { treeWithPaths } from "./tree-update.js";

// Reading the working tree once: `git status` finds what differs from HEAD, and the tree is HEAD's tree
// with only those paths written in (tree-update.ts). A walk of the whole tree costs as much as one
// `git status` of the repository, whatever the number of changes; after a task whose tools only wrote
// files, not even that (treeAfterWrites).

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
  /** The commit HEAD was when git compared with it; undefined before the first commit. */
  head: string | undefined;
  /** What `git status` said of each path ("XY path", porcelain v1's letters). */
  status: string[];
}

// The last tree read in each owned workspace, by directory, with where its ChangeWatch stood when the
// read began: while nothing has changed since, that tree is the working tree (see lastTreeRead).
const lastTrees = new Map<string, { tree: string; mark: number | undefined }>();
// Owned workspaces watched for changes, the most recently read ones (each watch holds a watch per directory).
const watches = new Map<string, ChangeWatch>();
const WATCHED_WORKSPACES = 16;

/** The change watch of an owned workspace, started at its first read. */
function watchOf(dir: string): ChangeWatch {
  const known = watches.get(dir);
  if (known) {
    watches.delete(dir);
    watches.set(dir, known); // the most recently used last
    return known;
  }
  if (watches.size >= WATCHED_WORKSPACES) {
    const [oldest, watch] = watches.entries().next().value!;
    watch.close();
    watches.delete(oldest);
  }
  const watch = new ChangeWatch(dir);
  watches.set(dir, watch);
  return watch;
}

/** How long a read waits for a new watch to cover the workspace before it goes on unwatched. */
const WATCH_READY_MS = 5_000;

/**
 * Watch an owned workspace for changes from now on (coding_open starts it, so that it is in place by
 * the first read); a read starts it anyway.
 */
export function watchWorkspace(dir: string): void {
  watchOf(dir);
}

/** Where the workspace's watch stands, taken when a read begins (undefined: changes cannot be told). */
async function markOf(dir: string, o: ReadOptions): Promise<number | undefined> {
  if (!o.owned) return undefined;
  const watch = watchOf(dir);
  await withTimeout(watch.ready, WATCH_READY_MS, "").catch(() => undefined);
  return watch.mark();
}

/**
 * The tree read most recently in an owned workspace by this process, when nothing in the workspace has
 * changed since that read began (its ChangeWatch saw no event: no task, no edit by hand) and its git
 * directory is still there: the working tree as it is now, without a walk. Undefined otherwise.
 */
export async function lastTreeRead(dir: string): Promise<string | undefined> {
  const last = lastTrees.get(dir);
  const paths = repoPathsKnown.get(dir);
  if (last === undefined || paths === undefined || !watches.get(dir)?.unchangedSince(last.mark)) return undefined;
  return (await fs.stat(paths.index).then(() => true, () => false)) ? last.tree : undefined;
}

/** Forget what was read in `dir`: a read begins, and one that fails leaves no earlier tree standing. */
function forgetTreeRead(dir: string): void {
  lastTrees.delete(dir);
}

/** Forget all that is known of the workspace in `dir`: it is being removed (a new one may come to the same path). */
export function forgetWorkspace(dir: string): void {
  lastTrees.delete(dir);
  untrackedCacheAdded.delete(dir);
  watches.get(dir)?.close();
  watches.delete(dir);
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
  const mark = await markOf(dir, o);
  const paths = await currentRepoPaths(git, dir);
  const settings = await workspaceGitSettings(git, dir, paths);
  // HEAD's tree, asked beside the status: most reads find nothing changed, and the tree is the answer then.
  const headTree = git.exec(["rev-parse", "HEAD", "HEAD^{tree}"], { cwd: dir }).then((r) => (r.exitCode === 0 ? r.stdout.split("\n") : []), () => []);
  const { entries, head } = await statusEntries(git, dir, settings.overrides, o);
  const dirty = [...new Set(entries.map((entry) => entry.slice(3)))];
  const tree = await treeOfWorkingTree(git, dir, { head, headTree, dirty, entries, settings, paths, ...o });
  if (o.owned) remember(lastTrees, dir, { tree, mark });
  return { tree, dirty, head, status: entries };
}

/**
 * The working tree after writes to `files` only (absolute paths; nothing else changed it since `before`,
 * a tree read of it), without a walk: `before` with those files as they are now. Undefined when that
 * cannot be told exactly (see treeWithPaths), and the working tree is to be read instead.
 */
export async function treeAfterWrites(git: Git, dir: string, before: string, files: string[], o: ReadOptions = {}): Promise<string | undefined> {
  const last = lastTrees.get(dir);
  const beforeMark = last?.tree === before ? last.mark : undefined;
  if (o.owned) forgetTreeRead(dir);
  const mark = await markOf(dir, o);
  const [top, settings] = await Promise.all([repositoryTopOf(git, dir), currentRepoPaths(git, dir).then((paths) => workspaceGitSettings(git, dir, paths))]);
  if (!settings.plainWorkingTree) return undefined;
  const fromTop: string[] = [];
  for (const file of files) {
    // Through the real directories: a write through a symlinked directory changed the file it leads to.
    const real = path.join(await fs.realpath(path.dirname(file)).catch(() => path.dirname(file)), path.basename(file));
    const relative = path.relative(top, real);
    if (relative.startsWith("..") || path.isAbsolute(relative)) continue; // outside the repository: not in its tree
    fromTop.push(relative.split(path.sep).join("/"));
  }
  const tree = fromTop.length ? await treeWithPaths(git, top, before, fromTop, { overrides: settings.overrides, fromAgent: true }) : before;
  // The tree stands for the working tree later only if the watch saw nothing change since the tree
  // before was read but these files and the directories made for them (a person's edit meanwhile, which
  // the agent's account cannot know of, is then read at the next need).
  if (tree !== undefined && o.owned) remember(lastTrees, dir, { tree, mark: onlyWritten(dir, files, watches.get(dir)?.changedSince(beforeMark)) ? mark : undefined });
  return tree;
}

/** Whether every path in `changed` is one of `files` or a directory on the way to one, below `dir`. */
function onlyWritten(dir: string, files: string[], changed: string[] | undefined): boolean {
  if (changed === undefined) return false;
  const allowed = new Set<string>();
  for (const file of files) {
    for (let p = file; p.length > dir.length && p.startsWith(dir + path.sep); p = path.dirname(p)) allowed.add(p);
  }
  return changed.every((p) => allowed.has(p));
}

/**
 * The working tree as a tree object, from what `git status` listed: HEAD's tree with the listed paths
 * as they are on disk (treeWithPaths, whose cost follows the number of changes), or, for what only
 * the index can carry exactly (submodules, symlinks, a sparse checkout...), a throw-away copy of the
 * index with the listed paths staged.
 */
async function treeOfWorkingTree(
  git: Git,
  dir: string,
  o: ReadOptions & ReadHooks & { head: string | undefined; headTree: Promise<string[]>; dirty: string[]; entries: string[]; settings: WorkspaceGitSettings; paths: RepoPaths },
): Promise<string> {
  // Nothing differs from HEAD: the working tree is HEAD's tree (that of the commit status compared with).
  if (o.dirty.length === 0 && o.head) {
    o.onStaged?.();
    const [commit, tree] = await o.headTree;
    return commit === o.head && tree ? tree : git.run(["rev-parse", `${o.head}^{tree}`], { cwd: dir });
  }
  if (o.head && o.settings.plainWorkingTree) {
    const top = await repositoryTopOf(git, dir);
    let read = false;
    const onRead = () => {
      read = true;
      o.onStaged?.();
    };
    const tree = await treeWithPaths(git, top, o.head, o.dirty, { overrides: o.settings.overrides, onRead }).catch((err: unknown) => {
      // Once the files were read the prompt may have gone: a read now could see the agent's first
      // changes, so the failure stands (it declines, if it does, before reading anything).
      if (read) throw err;
      git.debug(`reading ${dir} through a copy of its index: ${errorMessage(err)}`);
      return undefined;
    });
    if (tree !== undefined) return tree;
  }
  return treeFromIndexCopy(git, dir, o);
}

/**
 * The paths `git status` listed (`entries`) staged into a throw-away copy of the index (`paths.index`),
 * written as a tree. The overrides go to add and write-tree: they hash contents through clean filters
 * (writing the index back, git re-reads "racily clean" files through them too).
 */
async function treeFromIndexCopy(
  git: Git,
  dir: string,
  o: ReadHooks & { paths: RepoPaths; entries: string[]; settings: WorkspaceGitSettings },
): Promise<string> {
  const { paths, entries } = o;
  const overrides = o.settings.overrides;
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
    o.onStaged?.();
    // Starting a process holds up everything else for a moment: `writeTreeAfter` lets what waits
    // for `onStaged` (the prompt) go first.
    await o.writeTreeAfter;
    return await git.run([...overrides, "write-tree"], { cwd: dir, env });
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
  const { overrides } = await workspaceGitSettings(git, dir, await currentRepoPaths(git, dir));
  return [...new Set((await statusEntries(git, dir, overrides, o)).entries.map((entry) => entry.slice(3)))];
}

interface StatusRead {
  /** "XY path" as porcelain v1 says it (" " where v2 says "."), paths from the top of the repository. */
  entries: string[];
  /** The commit status compared with; undefined before the first commit. */
  head: string | undefined;
}

/** What `git status` lists, and HEAD as it saw it (so the two always go together, whatever moves meanwhile). */
async function statusEntries(git: Git, dir: string, overrides: string[], o: ReadOptions): Promise<StatusRead> {
  const args = [...overrides, ...untrackedCacheArgs(dir, o), "status", "--porcelain=v2", "--branch", "--no-ahead-behind", "-z", "--untracked-files=all", "--no-renames", "--ignore-submodules=dirty"];
  return parseStatusV2(await git.run(args, { cwd: dir, ...(o.owned ? { env: { GIT_FORCE_UNTRACKED_CACHE: "1" } } : {}) }));
}

const untrackedCacheAdded = new Map<string, true>();

/**
 * git's untracked cache, in an owned workspace's index only (a caller's config and index stay as they
 * are): it spares reading every directory for new files. `core.untrackedCache=true` adds it, but also
 * makes every status rewrite the whole index, so it is given once per workspace; after that the cache
 * is kept, and GIT_FORCE_UNTRACKED_CACHE has git write the index only when the cache changed. git uses
 * the cache only for the untracked-files mode the config names, hence status.showUntrackedFiles.
 */
function untrackedCacheArgs(dir: string, o: ReadOptions): string[] {
  if (!o.owned) return ["--no-optional-locks"];
  const mode = untrackedCacheAdded.has(dir) ? "keep" : "true";
  remember(untrackedCacheAdded, dir, true);
  return ["-c", `core.untrackedCache=${mode}`, "-c", "status.showUntrackedFiles=all"];
}

/** Porcelain v2 records (-z): "# branch.oid <commit>", "1 XY <6 fields> path", "u XY <8 fields> path", "? path". */
export function parseStatusV2(out: string): StatusRead {
  const entries: string[] = [];
  let head: string | undefined;
  for (const record of out.split("\0")) {
    if (record.startsWith("# branch.oid ")) {
      const oid = record.slice("# branch.oid ".length);
      head = /^[0-9a-f]{40,64}$/.test(oid) ? oid : undefined; // "(initial)": no commit yet
    } else if (record.startsWith("1 ") || record.startsWith("u ")) {
      const fields = record.startsWith("1 ") ? 8 : 10;
      const parts = record.split(" ");
      entries.push(`${parts[1]!.replace(/\./g, " ")} ${parts.slice(fields).join(" ")}`);
    } else if (record.startsWith("? ")) {
      entries.push(`?? ${record.slice(2)}`);
    }
  }
  return { entries, head };
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
