import { UserError } from "../errors.js";
import type { ChangedFile } from "../model.js";
import { treeChanges } from "./changes.js";
import { type Git, summarize } from "./git.js";
import { resolveObject } from "./refs.js";
import { readWorkingTree, type ReadOptions } from "./working-tree.js";

// Reviewing changes: the session's change as a unified diff, and the paths an owner already changed.

// Read-only looks at a checkout take no lock on, nor refresh, the owner's index (and, like all of
// coding-mcp's git, run no fsmonitor program).
const READ_ONLY = ["--no-optional-locks"];
// A diff in git's standard form whatever the config says, with no external diff or textconv program run.
const PLAIN_DIFF = ["--no-color", "--no-ext-diff", "--no-textconv", "--no-relative", "--src-prefix=a/", "--dst-prefix=b/"];

/** A path from the top of the repository as a pathspec that matches exactly that path, from any directory. */
function topPathspec(p: string, exclude = false): string {
  return `:(top,${exclude ? "exclude," : ""}literal)${p}`;
}

/** The repository's top directory (of this worktree). */
export function repositoryTop(git: Git, dir: string): Promise<string> {
  return git.run(["rev-parse", "--show-toplevel"], { cwd: dir });
}

/** Where `dir` lies below the repository's top: "" at the top, else "sub/dir/". */
export function repositoryPrefix(git: Git, dir: string): Promise<string> {
  return git.run(["rev-parse", "--show-prefix"], { cwd: dir });
}

/** Paths (from the repository's top) with staged changes. */
export async function stagedPaths(git: Git, dir: string): Promise<string[]> {
  const out = await git.run([...READ_ONLY, "diff", "--cached", "--name-only", "-z", "--no-renames", "--no-relative"], { cwd: dir });
  return out.split("\0").filter(Boolean);
}

export interface WorkingTreeDiffOptions extends ReadOptions {
  /** The commit or tree to diff from; `checked`: git has confirmed it is a tree already (it need not be resolved again). May still be being looked up. */
  base: string | Promise<{ ref: string; checked: boolean }>;
  /** Only these paths (from the repository's top; directories match what is below them); none: everything. */
  paths?: string[];
  /** The working tree as a tree object, when the caller knows it without a read (see lastTreeRead). */
  workingTree?: string;
  /** Files to leave out of the diff; they are answered in `leftOut`. */
  leaveOut?: (file: ChangedFile) => boolean;
  maxBytes: number;
}

export interface WorkingTreeDiff {
  /** Unified diff, cut at a line boundary to at most maxBytes bytes. */
  diff: string;
  files: ChangedFile[];
  leftOut: string[];
  truncated: boolean;
}

/**
 * What differs between `base` and the working tree (committed, staged, unstaged and untracked-but-not-
 * ignored), as git's unified diff: renames shown as renames, binary files named ("Binary files ... differ")
 * rather than dumped. Like changedFiles, it reads the working tree once into a throw-away copy of the
 * index and compares trees; the real index is left alone.
 */
export async function workingTreeDiff(git: Git, dir: string, o: WorkingTreeDiffOptions): Promise<WorkingTreeDiff> {
  const given = typeof o.base === "string" ? { ref: o.base, checked: false } : o.base;
  const resolving = Promise.resolve(given).then((b) => (b.checked ? b.ref : resolveObject(git, dir, b.ref, "tree")));
  resolving.catch(() => undefined); // Handled below; reading may fail first.
  const include = (o.paths ?? []).map((p) => topPathspec(p));
  const tree = o.workingTree ?? (await readWorkingTree(git, dir, o.owned ? { owned: true } : {})).tree;
  const base = await resolving;
  // One byte more than fits: enough to know the diff was longer, without holding a huge one in memory.
  const patch = (exclude: string[]) =>
    git.exec(["diff-tree", "-r", "-p", "-M", ...PLAIN_DIFF, base, tree, "--", ...include, ...exclude], { cwd: dir, maxOutputBytes: o.maxBytes + 1 });
  // Without a leave-out rule the patch needs nothing from the list of files: both at once.
  const early = o.leaveOut ? undefined : patch([]);
  early?.catch(() => undefined); // awaited below unless listing the files failed
  const all = await treeChanges(git, dir, base, tree, include);
  const leftOut = o.leaveOut ? all.filter(o.leaveOut) : [];
  const files = all.filter((f) => !leftOut.includes(f));
  if (files.length === 0) return { diff: "", files, leftOut: leftOut.map((f) => f.path), truncated: false };
  const result = await (early ?? patch(leftOut.map((f) => topPathspec(f.path, true))));
  if (!result.truncated && result.exitCode !== 0) throw new UserError(`git diff failed: ${git.redact(summarize(result.stderr))}`, undefined, "git_failed");
  // git's output ends with a newline, which exec strips.
  const bounded = boundAtLine(result.truncated ? result.stdout : result.stdout + "\n", o.maxBytes);
  return { diff: bounded.text, files, leftOut: leftOut.map((f) => f.path), truncated: bounded.cut || Boolean(result.truncated) };
}

/** `text` cut to at most `maxBytes` UTF-8 bytes, at the end of a line. */
function boundAtLine(text: string, maxBytes: number): { text: string; cut: boolean } {
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= maxBytes) return { text, cut: false };
  const lastNewline = bytes.subarray(0, maxBytes).lastIndexOf(0x0a);
  return { text: lastNewline < 0 ? "" : bytes.subarray(0, lastNewline + 1).toString("utf8"), cut: true };
}
