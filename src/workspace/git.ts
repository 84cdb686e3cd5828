import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { UserError } from "../errors.js";
import type { ChangedFile, FileStatus } from "../model.js";
import { runBound } from "../process.js";
import type { Redactor } from "../redact.js";
import { PRISTINE_CONFIG_ENV, type GitAuth } from "./credentials.js";
import { repoRelativePath } from "./paths.js";

const STDERR_LIMIT = 2_000;
const MAX_COMMITS = 100;

// ---------------------------------------------------------------------------------------------
// Running git
// ---------------------------------------------------------------------------------------------

export class GitError extends Error {
  override readonly name = "GitError";
  constructor(
    message: string,
    /** The arguments, redacted. */
    readonly args: string[],
    readonly exitCode: number | undefined,
    /** Redacted, at most 2,000 characters. */
    readonly stderr: string,
    readonly timedOut: boolean,
    /** Redacted stdout, for commands that report on stdout (push --porcelain). */
    readonly stdout = "",
  ) {
    super(message);
  }
}

export interface GitRunOptions {
  cwd: string;
  timeoutMs?: number;
  env?: Record<string, string>;
  /** Written to git's stdin; without it stdin is closed. */
  input?: string;
  /** Stop git once its output passes this many bytes; the result then has `truncated` and that many bytes of it. */
  maxOutputBytes?: number;
  /** Run the repository's hooks: only `coding_commit` with git.run_hooks. Otherwise no hook runs. */
  runHooks?: boolean;
}

export interface GitResult {
  stdout: string;
  stderr: string;
  exitCode: number;
  /** Output stopped at maxOutputBytes (git was stopped; exitCode says nothing then). */
  truncated?: boolean;
}

export interface GitOptions {
  redactor: Redactor;
  log?: (msg: string) => void;
  /** Variables removed from git's environment (e.g. the token variable), so hooks and helpers never see them. */
  hideEnv?: string[];
}

// Inherited variables that would point git at another repository than the one we name with cwd.
const REPO_LOCATING_ENV = [
  "GIT_DIR",
  "GIT_WORK_TREE",
  "GIT_INDEX_FILE",
  "GIT_OBJECT_DIRECTORY",
  "GIT_ALTERNATE_OBJECT_DIRECTORIES",
  "GIT_COMMON_DIR",
  "GIT_NAMESPACE",
  "GIT_PREFIX",
];

/** Hooks are looked up in /dev/null/<name>, which cannot exist: none runs. */
const NO_HOOKS = ["-c", "core.hooksPath=/dev/null"];

// git runs in its own process group, held until it ends, so a timeout (or our exit, or our death) also
// ends the helpers it started (git-remote-https, ssh, index-pack), which would otherwise keep a dead
// clone's connection open.

export class Git {
  private readonly redactor: Redactor;
  private readonly log: (msg: string) => void;
  private readonly hiddenEnv: Record<string, undefined>;

  constructor(opts: GitOptions) {
    this.redactor = opts.redactor;
    this.log = opts.log ?? (() => {});
    this.hiddenEnv = Object.fromEntries([...REPO_LOCATING_ENV, ...(opts.hideEnv ?? [])].map((k) => [k, undefined]));
  }

  redact(s: string): string {
    return this.redactor.text(s);
  }

  /** Run git and return its stdout without the final newline; a non-zero exit throws GitError. */
  async run(args: string[], opts: GitRunOptions): Promise<string> {
    const result = await this.exec(args, opts);
    if (result.exitCode !== 0) throw this.failure(args, result.exitCode, result.stderr, false, result.stdout);
    return result.stdout;
  }

  /** Run git and return its exit code instead of throwing on one (for commands whose exit code is the answer). Throws GitError on timeout or when git cannot start. */
  async exec(args: string[], opts: GitRunOptions): Promise<GitResult> {
    const started = Date.now();
    // No fsmonitor program for any of coding-mcp's git: the workspace's config, which the agent can
    // write, could name one. It only ever speeds git up, so results do not change. No hook either
    // (the agent can write .git/hooks and core.hooksPath, and git runs hooks for update-ref, checkout,
    // worktree, add...), unless the owner asked for them on a commit.
    const guards = ["-c", "core.fsmonitor=false", ...(opts.runHooks ? [] : NO_HOOKS)];
    const result = await runBound("git", [...guards, ...args], {
      cwd: opts.cwd,
      // LC_ALL=C keeps messages parseable; no prompt may wait for a terminal nobody watches.
      env: { ...this.hiddenEnv, ...opts.env, GIT_TERMINAL_PROMPT: "0", LC_ALL: "C" },
      ...(opts.input !== undefined ? { input: opts.input } : {}),
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
      ...(opts.maxOutputBytes !== undefined ? { maxOutputBytes: opts.maxOutputBytes } : {}),
      // Without a timeout it is a local command on the workspace (network ones, clone and push, have one).
      brief: opts.timeoutMs === undefined,
    });
    const { stdout, stderr, timedOut } = result;
    this.log(`git ${this.redact(args.join(" "))} -> ${timedOut ? "timed out" : (result.exitCode ?? result.startError ?? "killed")} in ${Date.now() - started} ms`);
    if (timedOut) throw this.failure(args, undefined, stderr, true, stdout, opts.timeoutMs);
    if (result.truncated) return { stdout, stderr, exitCode: result.exitCode ?? 0, truncated: true };
    if (result.exitCode === undefined) throw await this.startFailure(args, opts.cwd, result.startError, stderr);
    return { stdout, stderr, exitCode: result.exitCode };
  }

  private failure(args: string[], exitCode: number | undefined, stderr: string, timedOut: boolean, stdout: string, timeoutMs?: number): GitError {
    const what = `git ${args.find((a) => !a.startsWith("-") && !a.includes("=")) ?? ""}`.trim();
    const cleanStderr = this.redact(stderr).slice(-STDERR_LIMIT);
    const message = timedOut
      ? `${what} timed out after ${Math.round((timeoutMs ?? 0) / 1000)} s`
      : `${what} failed (exit ${exitCode}): ${summarize(cleanStderr) || "no error message"}`;
    return new GitError(message, args.map((a) => this.redact(a)), exitCode, cleanStderr, timedOut, this.redact(stdout));
  }

  private async startFailure(args: string[], cwd: string, code: string | undefined, stderr: string): Promise<Error> {
    const cwdExists = await fs.stat(cwd).then((s) => s.isDirectory(), () => false);
    if (!cwdExists) return new UserError(`directory ${cwd} does not exist`, "check the workspace path", "not_found");
    if (code === "ENOENT") return new UserError("git is not installed or not on PATH", "install git (2.39 or newer) and restart coding-mcp", "git_missing");
    return this.failure(args, undefined, stderr || `git could not run (${code ?? "killed"})`, false, "");
  }
}

/** The line of git's stderr that says what went wrong: the last fatal/error line, else the last line. */
function summarize(stderr: string): string {
  const lines = stderr.split("\n").map((l) => l.trim()).filter(Boolean);
  const errors = lines.filter((l) => /^(fatal|error|remote):/i.test(l));
  return (errors.at(-1) ?? lines.at(-1) ?? "").slice(0, 500);
}

// ---------------------------------------------------------------------------------------------
// Names, refs and identity
// ---------------------------------------------------------------------------------------------

export interface Author {
  name: string;
  email: string;
}

/** Author and committer for one command only; the user's own config is never written. */
function identityArgs(author: Author): string[] {
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

async function resolveObject(git: Git, dir: string, ref: string, type: "commit" | "tree"): Promise<string> {
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
async function headFromRefFiles(paths: RepoPaths): Promise<string | undefined> {
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

async function readIfThere(file: string): Promise<string | undefined> {
  try {
    return await fs.readFile(file, "utf8");
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
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
function logArgs(revisions: string[]): string[] {
  return ["log", `--max-count=${MAX_COMMITS}`, "--no-show-signature", "--format=%H%x09%s", ...revisions, "--"];
}

async function logCommits(git: Git, dir: string, revisions: string[]): Promise<CommitInfo[]> {
  return parseLog(await git.run(logArgs(revisions), { cwd: dir }));
}

/** `git log --format=%H%x09%s` lines. */
function parseLog(out: string): CommitInfo[] {
  return out
    .split("\n")
    .filter(Boolean)
    .map((line) => {
      const tab = line.indexOf("\t");
      return { hash: line.slice(0, tab), subject: line.slice(tab + 1) };
    });
}

// ---------------------------------------------------------------------------------------------
// Creating workspaces
// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------
// Remote failures
// ---------------------------------------------------------------------------------------------

type RemoteFailure = "branch" | "access" | "hostkey" | "network" | "other";

const FAILURE_PATTERNS: [RemoteFailure, RegExp][] = [
  ["branch", /remote branch .* not found|couldn't find remote ref/i],
  ["hostkey", /host key verification failed/i],
  [
    "network",
    /could not resolve host|could not resolve hostname|failed to connect|couldn't connect|connection refused|connection timed out|network is unreachable|no route to host|name or service not known|temporary failure in name resolution|connection reset|ssl_connect/i,
  ],
  [
    "access",
    /not found|does not exist|authentication failed|could not read (username|password)|terminal prompts disabled|permission denied|invalid username or password|access denied|returned error: 40[134]|not appear to be a git repository|could not read from remote repository/i,
  ],
];

function classify(stderr: string): RemoteFailure {
  return FAILURE_PATTERNS.find(([, re]) => re.test(stderr))?.[0] ?? "other";
}

function authHint(auth: GitAuth | undefined): string {
  const variable = auth?.tokenEnv ?? "the variable named by git.token_env";
  if (auth?.withheldFrom) {
    return `the token in ${variable} is sent only to the hosts in git.token_hosts, and ${auth.withheldFrom} is not one of them; add it there if you trust it with the token`;
  }
  return auth?.hasToken
    ? `check the URL, and that the token in ${variable} can access this repository`
    : `check the URL; for a private repository set a token in ${variable} (git.token_env) or git.ssh_key_path for ssh`;
}

function remoteFailure(git: Git, err: GitError, what: string, url: string, auth: GitAuth | undefined): UserError {
  const u = git.redact(url);
  const detail = summarize(err.stderr);
  switch (classify(err.stderr)) {
    case "access":
      return new UserError(`${what}: repository ${u} not found or authentication failed (${detail})`, authHint(auth), "auth_failed");
    case "hostkey":
      return new UserError(
        `${what}: the ssh host key of ${u} could not be verified (${detail})`,
        "add the host's key to ~/.ssh/known_hosts after checking its fingerprint",
        "host_key_unknown",
      );
    case "network":
      return new UserError(`${what}: could not connect to the host of ${u} (${detail})`, "check the URL, the network and any proxy settings", "network_error");
    default:
      return new UserError(`${what}: ${detail || err.message}`, undefined, "git_failed");
  }
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

// ---------------------------------------------------------------------------------------------
// Changes, commits and pushes
// ---------------------------------------------------------------------------------------------

/** Git's empty tree: the base to diff against in a repository that has no commit yet. */
export const EMPTY_TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";

interface Numstat {
  path: string;
  additions?: number;
  deletions?: number;
}

export interface SinceOptions {
  /**
   * `sinceRef` is a hash coding-mcp itself produced (a snapshot tree, HEAD as it read it) or already
   * verified, so it is not checked again. Refs from callers or records are checked.
   */
  trusted?: boolean;
}

/**
 * Everything that differs between `sinceRef` (a commit or tree; default: the empty tree) and the working tree: committed,
 * staged, unstaged and untracked-but-not-ignored. Git itself detects renames and counts lines (binary
 * files have no counts) in a few git runs whatever the number of files, and the real index is left alone.
 */
export async function changedFiles(git: Git, dir: string, sinceRef?: string, o: SinceOptions = {}): Promise<ChangedFile[]> {
  // The base is checked while the working tree is staged: neither waits for the other.
  const base =
    sinceRef === undefined ? emptyTree(git, dir) : o.trusted ? Promise.resolve(sinceRef) : resolveObject(git, dir, sinceRef, "tree");
  base.catch(() => undefined); // Handled below; staging may fail first.
  return withWorkingTreeIndex(git, dir, async (env) =>
    parseRawAndNumstat(await git.run(["diff", "--cached", "--no-ext-diff", "--no-textconv", "--raw", "--numstat", "-z", "-M", await base, "--"], { cwd: dir, env })),
  );
}

/**
 * The working tree as it is now (untracked files included, ignored ones not), as a tree object. Taken
 * before and after a task, the two trees tell what the task changed, apart from work left from before.
 * `staged` resolves once git has read the working tree (later changes are not in the snapshot), so
 * the agent may start then; `tree` resolves when the tree object is written (once `writeTreeAfter`
 * has settled), which needs only the scratch index and so goes on beside the agent.
 */
export function snapshotWorkingTree(git: Git, dir: string, o: { writeTreeAfter?: Promise<unknown> } = {}): { staged: Promise<void>; tree: Promise<string> } {
  let markStaged!: () => void;
  const staged = new Promise<void>((resolve) => (markStaged = resolve));
  const tree = withWorkingTreeIndex(git, dir, async (env) => {
    markStaged();
    // Starting a process holds up everything else for a moment: `writeTreeAfter` lets what waits
    // for `staged` (the prompt) go first.
    await o.writeTreeAfter;
    return git.run(["write-tree"], { cwd: dir, env });
  });
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

// ---------------------------------------------------------------------------------------------
// Reviewing changes
// ---------------------------------------------------------------------------------------------

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

/**
 * Paths (from the repository's top) whose staged or working-tree state differs from HEAD, untracked
 * files included (ignored ones not); both sides of a staged rename. Read-only: the index is not refreshed.
 */
export async function dirtyPaths(git: Git, dir: string): Promise<string[]> {
  const out = await git.run([...READ_ONLY, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames"], { cwd: dir });
  // Porcelain v1 entries are "XY path", paths always from the top of the repository.
  return [...new Set(out.split("\0").filter(Boolean).map((entry) => entry.slice(3)))];
}

/** Paths (from the repository's top) with staged changes. */
export async function stagedPaths(git: Git, dir: string): Promise<string[]> {
  const out = await git.run([...READ_ONLY, "diff", "--cached", "--name-only", "-z", "--no-renames", "--no-relative"], { cwd: dir });
  return out.split("\0").filter(Boolean);
}

export interface WorkingTreeDiffOptions {
  /** The commit or tree to diff from. */
  base: string;
  /** Only these paths (from the repository's top; directories match what is below them); none: everything. */
  paths?: string[];
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
 * rather than dumped. Like changedFiles, it reads a throw-away copy of the index; the real one is left alone.
 */
export async function workingTreeDiff(git: Git, dir: string, o: WorkingTreeDiffOptions): Promise<WorkingTreeDiff> {
  const resolving = resolveObject(git, dir, o.base, "tree");
  resolving.catch(() => undefined); // Handled below; staging may fail first.
  const include = (o.paths ?? []).map((p) => topPathspec(p));
  return withWorkingTreeIndex(git, dir, async (env) => {
    const base = await resolving;
    const raw = await git.run([...READ_ONLY, "diff", "--cached", "--no-ext-diff", "--no-textconv", "--raw", "--numstat", "-z", "-M", "--no-relative", base, "--", ...include], { cwd: dir, env });
    const all = parseRawAndNumstat(raw);
    const leftOut = o.leaveOut ? all.filter(o.leaveOut) : [];
    const files = all.filter((f) => !leftOut.includes(f));
    if (files.length === 0) return { diff: "", files, leftOut: leftOut.map((f) => f.path), truncated: false };
    const exclude = leftOut.map((f) => topPathspec(f.path, true));
    const args = [...READ_ONLY, "diff", "--cached", "-M", ...PLAIN_DIFF, base, "--", ...include, ...exclude];
    // One byte more than fits: enough to know the diff was longer, without holding a huge one in memory.
    const result = await git.exec(args, { cwd: dir, env, maxOutputBytes: o.maxBytes + 1 });
    if (!result.truncated && result.exitCode !== 0) throw new UserError(`git diff failed: ${git.redact(summarize(result.stderr))}`, undefined, "git_failed");
    // git's output ends with a newline, which exec strips.
    const bounded = boundAtLine(result.truncated ? result.stdout : result.stdout + "\n", o.maxBytes);
    return { diff: bounded.text, files, leftOut: leftOut.map((f) => f.path), truncated: bounded.cut || Boolean(result.truncated) };
  });
}

/** `text` cut to at most `maxBytes` UTF-8 bytes, at the end of a line. */
function boundAtLine(text: string, maxBytes: number): { text: string; cut: boolean } {
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= maxBytes) return { text, cut: false };
  const lastNewline = bytes.subarray(0, maxBytes).lastIndexOf(0x0a);
  return { text: lastNewline < 0 ? "" : bytes.subarray(0, lastNewline + 1).toString("utf8"), cut: true };
}

// Where each workspace's index and git directory live: fixed for a repository, so asked once.
interface RepoPaths {
  index: string;
  /** The git directory shared by all worktrees (the `.git` of the main checkout). */
  commonDir: string;
}
// Per-workspace facts kept between tasks, each map bounded to the most recently used workspaces.
const repoPathsKnown = new Map<string, RepoPaths>();
const programOverridesKnown = new Map<string, { files: string[]; signature: string; args: string[] }>();
const WORKSPACES_KEPT = 1_000;

/** Keep `value` for `dir` as the most recently used entry, forgetting the oldest beyond WORKSPACES_KEPT. */
function remember<T>(map: Map<string, T>, dir: string, value: T): T {
  map.delete(dir);
  if (map.size >= WORKSPACES_KEPT) map.delete(map.keys().next().value!);
  map.set(dir, value);
  return value;
}

async function repoPaths(git: Git, dir: string, fresh = false): Promise<RepoPaths> {
  const known = fresh ? undefined : repoPathsKnown.get(dir);
  if (known !== undefined) return known;
  const [index = "", commonDir = ""] = (await git.run(["rev-parse", "--path-format=absolute", "--git-path", "index", "--git-common-dir"], { cwd: dir })).split("\n");
  return remember(repoPathsKnown, dir, { index: path.resolve(dir, index), commonDir: path.resolve(dir, commonDir) });
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

/** The file is not there: ENOENT, or ENOTDIR when a directory on its path is a file now (a `.git` file of a worktree). */
function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === "ENOENT" || code === "ENOTDIR";
}

// Config keys that name a program git runs while staging (clean/smudge filters) or committing
// (signing), and the value each gets back when a file in the workspace set it: the one set outside the
// workspace (your `git lfs install` in ~/.gitconfig keeps working), else none or git's default program.
const PROGRAM_KEYS = /^(filter\..+\.(clean|smudge|process|required)|gpg\.program|gpg\.(ssh|x509|openpgp)\.program)$/;
const NEUTRAL_VALUE: Record<string, string> = { "gpg.program": "gpg", "gpg.openpgp.program": "gpg", "gpg.ssh.program": "ssh-keygen", "gpg.x509.program": "gpgsm" };

/**
 * `-c` options that undo every program-naming key (PROGRAM_KEYS) set by a config file inside the
 * workspace or its git directory: `.git/config`, `config.worktree`, or a file there it includes. The
 * agent can write those; a filter or signing program it named there would otherwise run in
 * coding-mcp's own `git add` and `git commit`, outside any permission a person gave the agent.
 *
 * The answer is kept per workspace while no file it came from (nor any config file git would read,
 * nor HEAD, which `includeIf "onbranch:"` looks at) has changed: a stat of a few files instead of a
 * git process before every add.
 */
async function workspaceProgramOverrides(git: Git, dir: string, paths: RepoPaths): Promise<string[]> {
  const known = programOverridesKnown.get(dir);
  const watched = [...new Set([...standardConfigFiles(paths), ...(known?.files ?? [])])];
  const before = await filesSignature(watched);
  if (known && known.signature === before) return known.args;

  const listing = await git.exec(["config", "--show-origin", "-z", "--get-regexp", "^(filter|gpg)\\.|^include\\.path$|^includeif\\..*\\.path$"], { cwd: dir });
  if (listing.exitCode !== 0 && listing.exitCode !== 1) throw new UserError(`git config failed: ${git.redact(summarize(listing.stderr))}`, undefined, "git_failed");
  const inside = (file: string) => [dir, paths.commonDir].some((root) => file === root || file.startsWith(root + path.sep));
  const trusted = new Map<string, string>();
  const untrusted = new Set<string>();
  const files = new Set(watched);
  // -z records: "file:<path>\0<key>\n<value>\0" (the value part without "\n" when the key has none). Exit 1: no such key.
  const fields = listing.exitCode === 0 ? listing.stdout.split("\0") : [];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const origin = fields[i]!;
    const [key = "", value = ""] = fields[i + 1]!.split(/\n(.*)/s);
    const file = origin.startsWith("file:") ? path.resolve(dir, origin.slice(5)) : "";
    if (file) files.add(file);
    if (key.startsWith("include")) {
      // Watched too, so a file included from now on, or written later, is seen.
      if (file) files.add(path.resolve(path.dirname(file), value.replace(/^~(?=\/)/, os.homedir())));
      continue;
    }
    if (!PROGRAM_KEYS.test(key)) continue;
    if (file && inside(file)) untrusted.add(key);
    else trusted.set(key, value);
  }
  const args = [...untrusted].flatMap((key) => ["-c", `${key}=${trusted.get(key) ?? NEUTRAL_VALUE[key] ?? (key.endsWith(".required") ? "false" : "")}`]);
  // Kept only when every file it came from was watched before git read them (none changed unseen since).
  const complete = [...files].every((f) => watched.includes(f));
  remember(programOverridesKnown, dir, { files: [...files], signature: complete ? before : "", args });
  return args;
}

/** The config files git reads for a repository (whether they exist or not), and its HEAD. */
function standardConfigFiles(paths: RepoPaths): string[] {
  const gitDir = path.dirname(paths.index);
  const xdg = process.env.XDG_CONFIG_HOME || path.join(os.homedir(), ".config");
  return [
    path.join(paths.commonDir, "config"),
    path.join(gitDir, "config.worktree"),
    path.join(gitDir, "HEAD"),
    process.env.GIT_CONFIG_GLOBAL || path.join(os.homedir(), ".gitconfig"),
    path.join(xdg, "git", "config"),
    process.env.GIT_CONFIG_SYSTEM || "/etc/gitconfig",
  ];
}

/** What changes when a file is written, replaced, created or removed. */
async function filesSignature(files: string[]): Promise<string> {
  const stats = await Promise.all(files.map((f) => fs.stat(f, { bigint: true }).then((s) => `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`, () => "-")));
  return stats.join("|");
}

/** Stage the whole working tree into a throw-away copy of the index and run `fn` with that index. */
async function withWorkingTreeIndex<T>(git: Git, dir: string, fn: (env: Record<string, string>) => Promise<T>): Promise<T> {
  const wasKnown = repoPathsKnown.has(dir);
  let paths = await repoPaths(git, dir);
  let scratch = `${paths.index}.coding-mcp-${randomBytes(6).toString("hex")}`;
  try {
    if (!(await copyIndex(paths.index, scratch)) && wasKnown) {
      // No index where it was: the directory may hold another repository now, so ask git again.
      const asked = await repoPaths(git, dir, true);
      if (asked.index !== paths.index) {
        [paths, scratch] = [asked, `${asked.index}.coding-mcp-${randomBytes(6).toString("hex")}`];
        await copyIndex(paths.index, scratch);
      }
    }
    // Without an index (nothing was ever staged) the scratch index starts empty.
    const env = { GIT_INDEX_FILE: scratch };
    await git.run([...(await workspaceProgramOverrides(git, dir, paths)), "add", "--all", "--ignore-errors"], { cwd: dir, env });
    return await fn(env);
  } finally {
    await Promise.all([scratch, `${scratch}.lock`].map((f) => removeIfThere(f)));
  }
}

async function emptyTree(git: Git, dir: string): Promise<string> {
  return git.run(["hash-object", "-t", "tree", "/dev/null"], { cwd: dir });
}

const STATUS_BY_LETTER: Record<string, FileStatus> = { A: "added", C: "added", D: "deleted", R: "renamed" };

/** `git diff --raw --numstat -z`: raw records (":modes hashes STATUS\0path\0[path\0]") then numstat records. */
function parseRawAndNumstat(out: string): ChangedFile[] {
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
function parseNumstat(tokens: string[], start: number): Numstat[] {
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

export interface PushOptions {
  remote: string;
  branch: string;
  setUpstream: boolean;
  timeoutMs: number;
  /** The authentication for a push to `url`, asked for once the URL the remote pushes to is known. */
  authFor?: (url: string) => Promise<GitAuth>;
}

export interface PushResult {
  /** The commits the remote did not have, as far as the remote-tracking refs tell (at most 100). */
  commits: CommitInfo[];
  /** The URL pushed to (the remote's push URL, insteadOf applied). */
  url: string;
}

/** A push about to run: what goes where, with which authentication. */
interface PushPlan extends PushOptions {
  url: string;
  auth: GitAuth | undefined;
  /** refs/heads/<branch> when the workspace has that branch, else HEAD. */
  source: string;
}

/**
 * Push the local branch `branch` (or, when there is none, HEAD) to refs/heads/<branch> on `remote`.
 *
 * A push that carries the token does not run in the workspace, whose config the agent can write: it
 * runs from a scratch repository with a config coding-mcp wrote, which borrows the workspace's objects
 * (see pushFromScratch). A push without the token is the owner's own business and runs in the
 * workspace, as `git push` would.
 */
export async function pushBranch(git: Git, dir: string, o: PushOptions): Promise<PushResult> {
  await checkRemoteName(git, dir, o.remote);
  await checkBranchName(git, o.branch);
  const local = `refs/heads/${o.branch}`;
  const source = (await git.exec(["rev-parse", "--verify", "--quiet", local], { cwd: dir })).exitCode === 0 ? local : "HEAD";
  const { url, auth } = await pushTarget(git, dir, o);
  const commits = await unpushedCommits(git, dir, o.remote, o.branch, source);
  const plan: PushPlan = { ...o, url, auth, source };
  if (auth?.hasToken) await pushFromScratch(git, dir, plan);
  else await pushInWorkspace(git, dir, plan);
  return { commits, url };
}

/**
 * The one URL the remote pushes to, and its authentication. git pushes to every push URL a remote has,
 * so a remote with several is refused when the token would go along: it goes to exactly one URL.
 */
async function pushTarget(git: Git, dir: string, o: PushOptions): Promise<{ url: string; auth: GitAuth | undefined }> {
  const listed = await git.exec(["remote", "get-url", "--push", "--all", "--", o.remote], { cwd: dir });
  const urls = listed.exitCode === 0 ? listed.stdout.split("\n").filter(Boolean) : [];
  const auths = o.authFor ? await Promise.all(urls.map((u) => o.authFor!(u))) : [];
  if (urls.length > 1 && auths.some((a) => a.hasToken)) {
    const pushUrls = await git.exec(["config", "--get-all", `remote.${o.remote}.pushurl`], { cwd: dir });
    const key = pushUrls.exitCode === 0 && pushUrls.stdout ? `remote.${o.remote}.pushurl` : `remote.${o.remote}.url`;
    const remove =
      key.endsWith(".pushurl")
        ? `\`git -C ${dir} config --unset-all ${key}\` (then \`git remote set-url --push ${o.remote} <url>\` if it needs a push URL of its own)`
        : `\`git -C ${dir} remote set-url --delete ${o.remote} <url>\` for each URL but one`;
    throw new UserError(
      `remote ${o.remote} pushes to ${urls.length} URLs (${key} is set ${urls.length} times: ${urls.map((u) => git.redact(u)).join(", ")}); ` +
        "a push that carries the token goes to exactly one URL, so nothing was pushed",
      `keep only the URL to push to: ${remove}`,
      "push_refused",
    );
  }
  if (urls.length === 0) throw new UserError(`remote ${o.remote} has no URL`, `set one with \`git -C ${dir} remote set-url ${o.remote} <url>\``, "push_refused");
  return { url: urls[0]!, auth: auths[0] };
}

/** The token-less push: plain `git push` in the workspace, with the owner's (and the agent's) config. */
async function pushInWorkspace(git: Git, dir: string, p: PushPlan): Promise<void> {
  const args = [...(p.auth?.configArgs ?? []), "push", "--porcelain", ...(p.setUpstream ? ["--set-upstream"] : []), "--", p.remote, `${p.source}:refs/heads/${p.branch}`];
  const result = await runPush(git, args, { cwd: dir, ...(p.auth && { env: p.auth.env }) }, p);
  if (result.exitCode !== 0) throw await pushError(git, dir, p, result);
}

/**
 * The push that carries the token. The commit is resolved in the workspace by a token-less rev-parse;
 * the network step runs in a new bare repository under the state directory whose config coding-mcp
 * wrote, whose objects/info/alternates points at the workspace's objects, and which reads no system or
 * global config (PRISTINE_CONFIG_ENV). The URL is passed explicitly. So no proxy, TLS setting,
 * credential helper, askpass, header, hook or include the agent wrote is in play, without a list of
 * such keys to keep up to date. Afterwards the workspace gets, by local token-less commands, what a
 * plain push records: the remote-tracking ref and, when asked for, the upstream.
 */
async function pushFromScratch(git: Git, dir: string, p: PushPlan): Promise<void> {
  const auth = p.auth!;
  const commit = await resolveCommit(git, dir, p.source);
  const scratch = await scratchRepository(git, dir, auth.scratchDir!);
  try {
    const args = [...auth.configArgs, "push", "--porcelain", "--", p.url, `${commit}:refs/heads/${p.branch}`];
    const result = await runPush(git, args, { cwd: scratch, env: { ...auth.env, GIT_DIR: scratch } }, p);
    if (result.exitCode !== 0) throw await pushError(git, dir, p, result);
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
  await recordPush(git, dir, p, commit);
}

/**
 * After a push from the scratch repository, what `git push [-u]` would have recorded in the workspace.
 * The push has landed by then, so like git this bookkeeping does not fail it: a ref or config git will
 * not write (say, an odd hand-made remote name) is skipped.
 */
async function recordPush(git: Git, dir: string, p: PushPlan, commit: string): Promise<void> {
  await git.exec(["update-ref", "-m", `push to ${p.remote}`, `refs/remotes/${p.remote}/${p.branch}`, commit], { cwd: dir });
  if (!p.setUpstream) return;
  const localBranch = p.source === "HEAD" ? await currentBranch(git, dir) : p.branch;
  if (localBranch === undefined) return; // A detached HEAD has no branch to track anything, as with git push -u.
  const remote = await git.exec(["config", `branch.${localBranch}.remote`, p.remote], { cwd: dir });
  if (remote.exitCode === 0) await git.exec(["config", `branch.${localBranch}.merge`, `refs/heads/${p.branch}`], { cwd: dir });
}

/** A bare repository under `parent` that sees the workspace's objects (and its shallow boundary) and nothing else of it. */
async function scratchRepository(git: Git, dir: string, parent: string): Promise<string> {
  const [objects, shallow, format] = await Promise.all([
    git.run(["rev-parse", "--git-path", "objects"], { cwd: dir }).then((p) => path.resolve(dir, p)),
    git.run(["rev-parse", "--git-path", "shallow"], { cwd: dir }).then((p) => path.resolve(dir, p)),
    git.run(["rev-parse", "--show-object-format"], { cwd: dir }),
  ]);
  if (/[\n\r]/.test(objects)) throw new UserError(`the workspace's git directory ${JSON.stringify(objects)} has a line break in its path`, "move the repository", "push_refused");
  await fs.mkdir(parent, { recursive: true, mode: 0o700 });
  const scratch = await fs.mkdtemp(path.join(parent, "push-"));
  try {
    // --template= copies no template (no hooks, whatever templateDir says).
    await git.run(["init", "--quiet", "--bare", "--template=", `--object-format=${format}`, scratch], { cwd: scratch, env: { ...PRISTINE_CONFIG_ENV } });
    await fs.mkdir(path.join(scratch, "objects", "info"), { recursive: true });
    await fs.writeFile(path.join(scratch, "objects", "info", "alternates"), `${objects}\n`);
    // A shallow workspace (shallow: true) pushes from its shallow history: git needs to know where it ends.
    await fs.copyFile(shallow, path.join(scratch, "shallow")).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err;
    });
  } catch (err) {
    await fs.rm(scratch, { recursive: true, force: true });
    throw err;
  }
  return scratch;
}

async function runPush(git: Git, args: string[], run: GitRunOptions, p: PushPlan): Promise<GitResult> {
  try {
    return await git.exec(args, { ...run, timeoutMs: p.timeoutMs });
  } catch (err) {
    if (err instanceof GitError && err.timedOut) {
      throw new UserError(
        `pushing to ${p.remote} timed out after ${Math.round(p.timeoutMs / 60_000)} min`,
        "raise limits.push_timeout_min, or check the network",
        "timeout",
      );
    }
    throw err;
  }
}

async function unpushedCommits(git: Git, dir: string, remote: string, branch: string, source: string): Promise<CommitInfo[]> {
  const tracking = `refs/remotes/${remote}/${branch}`;
  const known = (await git.exec(["rev-parse", "--verify", "--quiet", `${tracking}^{commit}`], { cwd: dir })).exitCode === 0;
  return logCommits(git, dir, known ? [`${tracking}..${source}`] : [source, "--not", `--remotes=${remote}`]);
}

// Settings a push from the workspace would use for its connection, and a push with the token ignores.
const CONNECTION_SETTINGS = "^(https?|credential)\\.|^core\\.(askpass|sshcommand|gitproxy)$|^remote\\..*\\.(proxy|proxyauthmethod)$";

/**
 * The connection settings in the workspace's config (its own, global, system and included files) that a
 * push with the token left out, for the hint of a failed push. Names only: values may hold secrets.
 */
async function ignoredSettings(git: Git, dir: string): Promise<{ key: string; file: string }[]> {
  const result = await git.exec(["config", "--show-origin", "--name-only", "--get-regexp", CONNECTION_SETTINGS], { cwd: dir });
  if (result.exitCode !== 0) return [];
  const lines = new Set(result.stdout.split("\n").filter((line) => line.startsWith("file:")));
  return [...lines].map((line) => {
    const tab = line.indexOf("\t");
    return { file: line.slice("file:".length, tab), key: line.slice(tab + 1) };
  });
}

function ignoredHint(dir: string, ignored: { key: string; file: string }[]): string {
  const names = ignored.map((s) => `${s.key} (${s.file})`).join(", ");
  const removals = ignored.slice(0, 3).map((s) => `\`git -C ${dir} config --file ${s.file} --unset-all ${s.key}\``).join(", ");
  return (
    `a push with the token uses no git config of the workspace or the user, so it ignored ${names}. ` +
    "For a proxy or a CA bundle set HTTPS_PROXY / NO_PROXY / GIT_SSL_CAINFO in coding-mcp's environment instead, " +
    `and remove what you did not write: ${removals}`
  );
}

async function pushError(git: Git, dir: string, p: PushPlan, result: GitResult): Promise<UserError> {
  const where = `${p.remote}/${p.branch}`;
  // Porcelain status lines: "!\t<src>:<dst>\t[rejected] (non-fast-forward)" or "[remote rejected] (reason)".
  const refLine = result.stdout.split("\n").find((l) => l.startsWith("!\t")) ?? "";
  const summary = git.redact(refLine.split("\t")[2] ?? "");
  if (/^\[rejected\]/.test(summary)) {
    return new UserError(
      `push to ${where} was rejected: the remote branch has commits this workspace does not have ${summary.replace("[rejected]", "").trim()}`,
      "fetch and rebase or merge the remote branch first, or push to a new branch",
      "push_rejected",
    );
  }
  if (/^\[remote rejected\]/.test(summary)) {
    return new UserError(`the remote refused the push to ${where}: ${summary}`, "check the remote's branch protection and hooks", "push_rejected");
  }
  const err = new GitError("git push failed", [], result.exitCode, git.redact(result.stderr).slice(-STDERR_LIMIT), false);
  const failure = remoteFailure(git, err, `pushing to ${where} failed`, p.url, p.auth);
  const ignored = p.auth?.hasToken && ["network_error", "auth_failed"].includes(failure.code) ? await ignoredSettings(git, dir) : [];
  if (ignored.length === 0) return failure;
  return new UserError(failure.message, `${failure.hint ?? ""}; ${ignoredHint(dir, ignored)}`, failure.code);
}
