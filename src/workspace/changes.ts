import { UserError } from "../errors.js";
import type { ChangedFile, FileStatus } from "../model.js";
import { type Git, summarize } from "./git.js";
import { repoPaths } from "./git-dir.js";
import { type CommitInfo, headCommit, headFromRefFiles, logArgs, parseLog, resolveCommit, resolveObject } from "./refs.js";
import { readWorkingTree, type ReadOptions } from "./working-tree.js";

// Snapshots and changes: what differs from a snapshot or commit, read through a throw-away index,
// and the commits a task made.

/** Git's empty tree: the base to diff against in a repository that has no commit yet. */
export const EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

interface Numstat {
  path: string;
  additions?: number;
  deletions?: number;
}

export interface SinceOptions extends ReadOptions {
  /**
   * `sinceRef` is a hash coding-mcp itself produced (a snapshot tree, HEAD as it read it) or already
   * verified, so it is not checked again. Refs from callers or records are checked.
   */
  trusted?: boolean;
}

/**
 * Everything that differs between `sinceRef` (a commit or tree; default: the empty tree) and the working tree: committed,
 * staged, unstaged and untracked-but-not-ignored. The working tree is read once (readWorkingTree) and
 * written as a tree; git compares the two trees, detecting renames and counting lines (binary files
 * have no counts), skipping every directory that did not change. The real index is left alone.
 */
export async function changedFiles(git: Git, dir: string, sinceRef?: string, o: SinceOptions = {}): Promise<ChangedFile[]> {
  // The base is checked while the working tree is read: neither waits for the other.
  const base =
    sinceRef === undefined ? emptyTree(git, dir) : o.trusted ? Promise.resolve(sinceRef) : resolveObject(git, dir, sinceRef, "tree");
  base.catch(() => undefined); // Handled below; reading may fail first.
  const { tree } = await readWorkingTree(git, dir, o);
  return treeChanges(git, dir, await base, tree);
}

/** What differs between two trees (or commits), renames detected, with line counts. */
export async function treeChanges(git: Git, dir: string, from: string, to: string, pathspecs: string[] = []): Promise<ChangedFile[]> {
  if (from === to) return [];
  return parseRawAndNumstat(await git.run(["diff-tree", "-r", "--no-ext-diff", "--no-textconv", "--raw", "--numstat", "-z", "-M", from, to, "--", ...pathspecs], { cwd: dir }));
}

/**
 * The working tree as it is now (untracked files included, ignored ones not), as a tree object. Taken
 * before and after a task, the two trees tell what the task changed, apart from work left from before.
 * `staged` resolves once git has read the working tree (later changes are not in the snapshot), so
 * the agent may start then; `tree` resolves when the tree object is written (once `writeTreeAfter`
 * has settled), which needs only the scratch index and so goes on beside the agent.
 */
export function snapshotWorkingTree(git: Git, dir: string, o: ReadOptions & { writeTreeAfter?: Promise<unknown> } = {}): { staged: Promise<void>; tree: Promise<string> } {
  let markStaged!: () => void;
  const staged = new Promise<void>((resolve) => (markStaged = resolve));
  const tree = readWorkingTree(git, dir, { ...o, ...(o.writeTreeAfter ? { writeTreeAfter: o.writeTreeAfter } : {}), onStaged: markStaged }).then((read) => read.tree);
  const stagedOrFailed = Promise.race([staged, tree.then(() => undefined)]);
  stagedOrFailed.catch(() => undefined); // The failure is `tree`'s too, for callers that only want the tree.
  return { staged: stagedOrFailed, tree };
}

/**
 * Commits reachable from HEAD but not from `since` (HEAD's hash before; none: every commit), newest
 * first, at most 100; none when HEAD has no commit. One git run when `since` is trusted.
 */
export async function commitsSince(git: Git, dir: string, since: string | undefined, o: SinceOptions = {}): Promise<CommitInfo[]> {
  // HEAD where it was: nothing to list (most tasks commit nothing), seen without a git run.
  if (since !== undefined && (await repoPaths(git, dir).then(headFromRefFiles).catch(() => undefined)) === since) return [];
  const not = since === undefined ? [] : ["--not", o.trusted ? since : await resolveCommit(git, dir, since)];
  const result = await git.exec(logArgs(["HEAD", ...not]), { cwd: dir });
  if (result.exitCode === 0) return parseLog(result.stdout);
  if ((await headCommit(git, dir)) === undefined) return []; // No commit yet: git log has nothing to start from.
  throw new UserError(`git log failed: ${git.redact(summarize(result.stderr))}`, undefined, "git_failed");
}

async function emptyTree(git: Git, dir: string): Promise<string> {
  return git.run(["hash-object", "-t", "tree", "/dev/null"], { cwd: dir });
}

const STATUS_BY_LETTER: Record<string, FileStatus> = { A: "added", C: "added", D: "deleted", R: "renamed" };

/** `git diff --raw --numstat -z`: raw records (":modes hashes STATUS\0path\0[path\0]") then numstat records. */
export function parseRawAndNumstat(out: string): ChangedFile[] {
  const tokens = out.split("\0");
  const changes: ChangedFile[] = [];
  let i = 0;
  while (i < tokens.length && tokens[i]!.startsWith(":")) {
    const letter = tokens[i]!.split(" ")[4]?.[0] ?? "M";
    const twoPaths = letter === "R" || letter === "C";
    changes.push({ path: tokens[i + (twoPaths ? 2 : 1)]!, status: STATUS_BY_LETTER[letter] ?? "modified" });
    i += twoPaths ? 3 : 2;
  }
  const counts = new Map(parseNumstat(tokens, i).map((n) => [n.path, n]));
  return changes.map((c) => {
    const n = counts.get(c.path);
    return n?.additions === undefined ? c : { ...c, additions: n.additions, deletions: n.deletions };
  });
}

/** `--numstat -z` records from `tokens[start]`: "add\tdel\tpath" or, for a rename, "add\tdel\t" then old and new path. Binary files count "-". */
export function parseNumstat(tokens: string[], start: number): Numstat[] {
  const result: Numstat[] = [];
  for (let i = start; i < tokens.length; i++) {
    const match = /^\n*(\d+|-)\t(\d+|-)\t([\s\S]*)$/.exec(tokens[i]!);
    if (!match) continue; // The empty token after the final NUL, or a separator line.
    let file = match[3]!;
    if (file === "") {
      file = tokens[i + 2] ?? "";
      i += 2;
    }
    const binary = match[1] === "-";
    result.push(binary ? { path: file } : { path: file, additions: Number(match[1]), deletions: Number(match[2]) });
  }
  return result;
}
