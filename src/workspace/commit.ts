import { UserError } from "../errors.js";
import { repoRelativePath } from "./paths.js";
import { parseNumstat } from "./changes.js";
import { type Git, GitError, summarize } from "./git.js";
import { repoPaths } from "./git-dir.js";
import { workspaceProgramOverrides } from "./program-overrides.js";
import { type Author, identityArgs } from "./refs.js";

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
    if (commit.exitCode === 1 && nothingToCommit(commit.stdout)) return { committed: false, files_changed: 0, insertions: 0, deletions: 0 };
    throw new UserError(
      `git commit failed: ${git.redact(summarize(commit.stderr)) || `exit ${commit.exitCode}`}`,
      "a pre-commit or commit-msg hook may have refused the commit; fix what it reports and retry",
      "commit_failed",
    );
  }
  // The hash and the stats in one run: "<hash>\0" then the numstat records.
  const tokens = (await git.run(["show", "--no-ext-diff", "--no-textconv", "--numstat", "-z", "--format=%H", "--no-show-signature", "HEAD", "--"], { cwd: dir })).split("\0");
  const stats = parseNumstat(tokens, 1);
  return {
    committed: true,
    commit_hash: tokens[0]!,
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
