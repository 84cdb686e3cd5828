import fs from "node:fs/promises";
import { UserError } from "../errors.js";
import { runBound } from "../process.js";
import type { Redactor } from "../redact.js";

// Running git: the one place coding-mcp starts git, with the guards every run needs.

export const STDERR_LIMIT = 2_000;

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
  /** How stdout is decoded (latin1: one character per byte, for raw objects). */
  encoding?: "utf8" | "latin1";
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

  /** A line for the debug log (what git did and why). */
  debug(msg: string): void {
    this.log(msg);
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
      ...(opts.encoding ? { encoding: opts.encoding } : {}),
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
export function summarize(stderr: string): string {
  const lines = stderr.split("\n").map((l) => l.trim()).filter(Boolean);
  const errors = lines.filter((l) => /^(fatal|error|remote):/i.test(l));
  return (errors.at(-1) ?? lines.at(-1) ?? "").slice(0, 500);
}
