import fs from "node:fs/promises";
import path from "node:path";
import { UserError } from "../errors.js";
import { repoRelativePath } from "./paths.js";
import { EMPTY_TREE, parseNumstat } from "./changes.js";
import { type Git, GitError, summarize } from "./git.js";
import { repoPaths, repositoryTopOf } from "./git-dir.js";
import { workspaceGitSettings, workspaceProgramOverrides } from "./program-overrides.js";
import { readWorkingTree } from "./working-tree.js";
import { type Author, headCommit, identityArgs } from "./refs.js";

// Committing the workspace's changes as coding-mcp's author, running no program the agent named.

export interface CommitOptions {
  message: string;
  /** Stage every change first (default true); ignored when `paths` is given. */
  addAll?: boolean;
  /** Stage and commit exactly these paths (relative to the workspace, or absolute inside it). */
  paths?: string[];
  author: Author;
  /** Run the repository's hooks (pre-commit, commit-msg, ...): git.run_hooks. */
  runHooks?: boolean;
  /** A workspace coding-mcp owns: its index may be written, and a whole-tree commit needs no `git commit` (commitWholeTree). */
  owned?: boolean;
  /** The working tree as a tree object, when coding-mcp knows it without reading it (an owned workspace between tasks: lastTreeRead). */
  workingTree?: string;
}

export interface CommitResult {
  committed: boolean;
  commit_hash?: string;
  files_changed: number;
  insertions: number;
  deletions: number;
}

export async function commitChanges(git: Git, dir: string, o: CommitOptions): Promise<CommitResult> {
  if (!o.message.trim()) throw new UserError("the commit message is empty", "give a message that says what changed");
  // Validated before git runs; literal pathspecs, so ':(glob)' or '*' in a name is just a name.
  const paths = o.paths?.length ? await Promise.all(o.paths.map((p) => repoRelativePath(dir, p, "paths"))) : undefined;
  const pathArgs = paths ? ["--", ...paths] : [];
  const literal = ["--literal-pathspecs"];

  if (!paths && (o.addAll ?? true) && o.owned && !o.runHooks) {
    const whole = await commitWholeTree(git, dir, o);
    if (whole) return whole;
  }
  const overrides = await workspaceProgramOverrides(git, dir, await repoPaths(git, dir));
  if (paths || (o.addAll ?? true)) await stage(git, dir, [...overrides, ...literal, "add", "--all", ...pathArgs]);
  // The message goes through stdin, so one starting with '-' is just a message. Hooks that run do as
  // with `git commit`: the pre-commit hook also when nothing is staged. git's own exit status says
  // "nothing to commit"; -uno spares it listing untracked files then.
  // Hooks are programs in the git directory, which the agent can write: they run only when the owner says so.
  const commit = await git.exec([...identityArgs(o.author), ...overrides, ...literal, "commit", "--quiet", "--untracked-files=no", "--file=-", ...pathArgs], {
    cwd: dir,
    input: o.message,
    ...(o.runHooks && { runHooks: true }),
  });
  if (commit.exitCode !== 0) {
    if (commit.exitCode === 1 && nothingToCommit(commit.stdout)) return NOTHING_COMMITTED;
    throw new UserError(
      `git commit failed: ${git.redact(summarize(commit.stderr)) || `exit ${commit.exitCode}`}`,
      "a pre-commit or commit-msg hook may have refused the commit; fix what it reports and retry",
      "commit_failed",
    );
  }
  // The hash and the stats in one run: "<hash>\0" then the numstat records.
  const tokens = (await git.run(["show", "--no-ext-diff", "--no-textconv", "--numstat", "-z", "--format=%H", "--no-show-signature", "HEAD", "--"], { cwd: dir })).split("\0");
  return { committed: true, commit_hash: tokens[0]!, ...totals(parseNumstat(tokens, 1)) };
}

const NOTHING_COMMITTED: CommitResult = { committed: false, files_changed: 0, insertions: 0, deletions: 0 };
/** An operation in progress whose end `git commit` completes (a merge commit's second parent, ...). */
const IN_PROGRESS = ["MERGE_HEAD", "CHERRY_PICK_HEAD", "REVERT_HEAD"];

/**
 * Everything in the working tree committed without `git commit`, which would stat every file again to
 * refresh the index: the one read of the working tree gives the commit's tree, `commit-tree` and
 * `update-ref` make the commit, and the index takes just the paths that changed. Only where that is
 * all `git commit` does: a workspace coding-mcp owns, no hook to run, no signing, message cleanup or
 * encoding configured, no merge in progress. Undefined otherwise, for `git commit` to do it.
 */
async function commitWholeTree(git: Git, dir: string, o: CommitOptions): Promise<CommitResult | undefined> {
  const paths = await repoPaths(git, dir);
  const settings = await workspaceGitSettings(git, dir, paths);
  const gitDir = path.dirname(paths.index);
  const inProgress = await Promise.all(IN_PROGRESS.map((f) => fs.stat(path.join(gitDir, f)).then(() => true, () => false)));
  if (!settings.plainCommit || inProgress.some(Boolean)) return undefined;
  const message = cleanMessage(o.message);
  const read = o.workingTree !== undefined ? await knownWholeTree(git, dir, o.workingTree) : await readWholeTree(git, dir);
  if (read.changed.length === 0) return NOTHING_COMMITTED;
  const parents = read.head ? ["-p", read.head] : [];
  // The index takes the changed paths while the commit is written: staged, they are what `git add
  // --all` would have staged, whether or not HEAD then moves. (update-index takes paths from the top,
  // gone or not; `git add` would refuse a path that is neither in the index nor on disk.)
  const top = await repositoryTopOf(git, dir);
  const [numstat, commit] = await Promise.all([
    git.run(["diff-tree", "-r", "-M", "--no-ext-diff", "--no-textconv", "--numstat", "-z", read.head ?? EMPTY_TREE, read.tree], { cwd: dir }),
    git.run([...identityArgs(o.author), ...settings.overrides, "commit-tree", read.tree, ...parents, "-F", "-"], { cwd: dir, input: message }),
    git.run([...settings.overrides, "update-index", "--add", "--remove", "--replace", "-z", "--stdin"], { cwd: top, input: read.changed.map((p) => p.replace(/\/$/, "")).join("\0") + "\0" }),
  ]);
  const stats = parseNumstat(numstat.split("\0"), 0);
  if (stats.length === 0) return NOTHING_COMMITTED; // staged and put back: the tree is HEAD's
  // HEAD moves only from where the read found it; the reflog says what `git commit` says.
  const subject = message.split("\n", 1)[0]!;
  const reflog = `commit${read.head ? "" : " (initial)"}: ${subject}`;
  await git.run(["update-ref", "-m", reflog, "HEAD", commit, read.head ?? "0".repeat(commit.length)], { cwd: dir });
  return { committed: true, commit_hash: commit, ...totals(stats) };
}

interface WholeTree {
  tree: string;
  head: string | undefined;
  /** Paths (from the top) whose working-tree or staged state differs from HEAD. */
  changed: string[];
}

/** The working tree read now. */
async function readWholeTree(git: Git, dir: string): Promise<WholeTree> {
  const read = await readWorkingTree(git, dir, { owned: true });
  return { tree: read.tree, head: read.head, changed: read.dirty };
}

/**
 * The working tree coding-mcp knows without reading it (`tree`: see lastTreeRead): what differs from
 * HEAD is what the trees say, and what the index has staged otherwise (the agent's own `git add`).
 */
async function knownWholeTree(git: Git, dir: string, tree: string): Promise<WholeTree> {
  const head = await headCommit(git, dir);
  const [inTree, staged] = await Promise.all([
    head ? git.run(["diff-tree", "-r", "--no-renames", "--name-only", "-z", head, tree], { cwd: dir }) : git.run(["ls-tree", "-r", "--name-only", "-z", tree], { cwd: dir }),
    head ? git.run(["--no-optional-locks", "diff-index", "--cached", "--no-renames", "--name-only", "-z", head], { cwd: dir }) : Promise.resolve(""),
  ]);
  // A path staged but gone from disk and from the tree is staged away by `git add --all` too.
  return { tree, head, changed: [...new Set([...inTree.split("\0"), ...staged.split("\0")].filter(Boolean))] };
}

/**
 * The message as `git commit --file` leaves it (its "whitespace" cleanup): trailing blanks of each line
 * and leading and trailing empty lines removed, runs of empty lines made one, a final newline.
 */
export function cleanMessage(message: string): string {
  const lines = message.split("\n").map((line) => line.replace(/[ \t\r]+$/, ""));
  const kept: string[] = [];
  for (const line of lines) {
    if (line === "" && (kept.length === 0 || kept.at(-1) === "")) continue;
    kept.push(line);
  }
  while (kept.at(-1) === "") kept.pop();
  return kept.length ? `${kept.join("\n")}\n` : "";
}

function totals(stats: { additions?: number; deletions?: number }[]): Omit<CommitResult, "committed" | "commit_hash"> {
  return {
    files_changed: stats.length,
    insertions: stats.reduce((sum, s) => sum + (s.additions ?? 0), 0),
    deletions: stats.reduce((sum, s) => sum + (s.deletions ?? 0), 0),
  };
}

/**
 * Whether a `git commit` that exited 1 found nothing to commit: its status report (on stdout; hooks'
 * output goes to stderr) then ends with "nothing to commit", "nothing added to commit" or "no changes added to commit".
 */
function nothingToCommit(stdout: string): boolean {
  const last = stdout.trimEnd().split("\n").at(-1) ?? "";
  return /^(nothing to commit|nothing added to commit|no changes added to commit)\b/.test(last);
}

async function stage(git: Git, dir: string, args: string[]): Promise<void> {
  try {
    await git.run(args, { cwd: dir });
  } catch (err) {
    const unmatched = err instanceof GitError && /pathspec '(.*)' did not match/.exec(err.stderr);
    if (unmatched) throw new UserError(`paths: ${unmatched[1]} matches no file in the workspace`, "give paths of existing or deleted files");
    throw err;
  }
}
