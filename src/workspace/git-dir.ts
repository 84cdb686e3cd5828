import fs from "node:fs/promises";
import path from "node:path";
import { type Git } from "./git.js";

// Where a workspace's git directory and index live (fixed for a repository, so asked once), and
// reading git's own files there.

export interface RepoPaths {
  index: string;
  /** The git directory shared by all worktrees (the `.git` of the main checkout). */
  commonDir: string;
}
// Per-workspace facts kept between tasks, each map bounded to the most recently used workspaces.
export const repoPathsKnown = new Map<string, RepoPaths>();
const WORKSPACES_KEPT = 1_000;

/** Keep `value` for `dir` as the most recently used entry, forgetting the oldest beyond WORKSPACES_KEPT. */
export function remember<T>(map: Map<string, T>, dir: string, value: T): T {
  map.delete(dir);
  if (map.size >= WORKSPACES_KEPT) map.delete(map.keys().next().value!);
  map.set(dir, value);
  return value;
}

export async function repoPaths(git: Git, dir: string, fresh = false): Promise<RepoPaths> {
  const known = fresh ? undefined : repoPathsKnown.get(dir);
  if (known !== undefined) return known;
  const [index = "", commonDir = ""] = (await git.run(["rev-parse", "--path-format=absolute", "--git-path", "index", "--git-common-dir"], { cwd: dir })).split("\n");
  return remember(repoPathsKnown, dir, { index: path.resolve(dir, index), commonDir: path.resolve(dir, commonDir) });
}

const topsKnown = new Map<string, string>();

/** The top directory of the repository (of this worktree) that `dir` is in. */
export async function repositoryTopOf(git: Git, dir: string): Promise<string> {
  return topsKnown.get(dir) ?? remember(topsKnown, dir, await git.run(["rev-parse", "--show-toplevel"], { cwd: dir }));
}

export async function readIfThere(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, "utf8");
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

/** The file is not there: ENOENT, or ENOTDIR when a directory on its path is a file now (a `.git` file of a worktree). */
export function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ENOTDIR";
}
