import fs from "node:fs/promises";
import path from "node:path";
import type { ResolvedConfig } from "../config.js";
import { UserError } from "../errors.js";
import type { Logger } from "../log.js";
import type { WorkspaceRecord } from "../model.js";
import { setAttributes, withSpan } from "../telemetry.js";
import { authEnv, type GitCredential } from "./credentials.js";
import { cloneRepository, initRepository } from "./clone.js";
import { commitChanges } from "./commit.js";
import { type Git } from "./git.js";
import { Trash } from "./trash.js";
import { forgetWorkspace } from "./working-tree.js";
import { pushBranch } from "./push.js";
import { isInside, resolveInsideRoots } from "./paths.js";
import { validateRepoUrl } from "./remote-url.js";
import { addWorktree, deleteBranch, inspectSourceRepository, removeWorktree, type SourceRepository } from "./worktree.js";

/**
 * Workspaces on disk: managed ones under base_path (created empty or cloned, removable), and a
 * caller's own repository (adopted, never removed). Clone and push authenticate here, with the
 * config's credentials, so no token ever passes through the agent.
 */
export class WorkspaceManager {
  /** Removed workspaces go here and are deleted behind the answer (see Trash). */
  private readonly trash: Trash;

  constructor(
    private readonly config: ResolvedConfig,
    private readonly git: Git,
    private readonly log: Logger,
  ) {
    this.trash = new Trash(path.join(config.stateDir, "trash"), (m) => log.warn(m));
    this.trash.sweep();
  }

  /** Let deletions under way finish (bounded; the next start deletes what is left). */
  stop(): Promise<void> {
    return this.trash.drain();
  }

  private get author() {
    return { name: this.config.git.user_name, email: this.config.git.user_email };
  }

  private dirFor(id: string): string {
    return path.join(this.config.workspace.base_path, id);
  }

  /** A new git repository with one initial commit. */
  async createEmpty(id: string): Promise<string> {
    const dir = this.dirFor(id);
    await fs.mkdir(dir, { recursive: true });
    try {
      await initRepository(this.git, dir, this.author);
    } catch (err) {
      await fs.rm(dir, { recursive: true, force: true });
      throw err;
    }
    return dir;
  }

  async clone(id: string, options: { url: string; branch?: string; shallow?: boolean; sparsePaths?: string[]; git?: GitCredential }): Promise<string> {
    const { url } = validateRepoUrl(options.url, {
      allowInsecureHttp: this.config.git.allow_insecure_http,
      allowFileRemotes: this.config.git.allow_file_remotes,
    });
    const dir = this.dirFor(id);
    this.log.info(`cloning ${url} into ${dir}`);
    const attributes = { "coding_mcp.workspace": dir, "coding_mcp.repo_url": url, "git.branch": options.branch, "git.shallow": options.shallow ?? false };
    await withSpan("git.clone", attributes, async () =>
      cloneRepository({
        git: this.git,
        url,
        dir,
        timeoutMs: this.config.limits.clone_timeout_min * 60_000,
        auth: await authEnv(this.config, this.config.stateDir, url, options.git),
        ...(options.branch ? { branch: options.branch } : {}),
        ...(options.shallow ? { shallow: true } : {}),
        ...(options.sparsePaths ? { sparsePaths: options.sparsePaths } : {}),
      }),
    );
    return dir;
  }

  /** A caller's existing repository: inside the allowed roots (after symlinks) and a git work tree. */
  async adopt(workspacePath: string): Promise<string> {
    const roots = [this.config.workspace.base_path, ...this.config.workspace.allowed_roots];
    const real = await resolveInsideRoots(workspacePath, roots);
    const top = await this.git.run(["rev-parse", "--show-toplevel"], { cwd: real }).catch(() => undefined);
    if (!top && (await this.git.exec(["rev-parse", "--is-bare-repository"], { cwd: real }).catch(() => undefined))?.stdout === "true") {
      throw new UserError(
        `workspace_path ${workspacePath} is a bare repository (it has no working tree to work in)`,
        "Give a checkout of it instead (git clone, or git worktree add), or use repo_url to clone it into a managed workspace.",
        "bare_repository",
      );
    }
    if (!top) {
      throw new UserError(
        `workspace_path ${workspacePath} is not a git repository`,
        "Run `git init` there first, or omit workspace_path to get a new managed repository.",
        "not_a_repository",
      );
    }
    return real;
  }

  /** The caller's checkout an isolated session branches from (after adopt's checks). */
  sourceForWorktree(dir: string): Promise<SourceRepository> {
    return inspectSourceRepository(this.git, dir);
  }

  /** A new worktree of `source` under base_path on the new branch `branch`, from the checkout's HEAD. */
  async createWorktree(id: string, source: SourceRepository, branch: string): Promise<string> {
    const dir = this.dirFor(id);
    if (isInside(dir, source.top)) {
      throw new UserError(
        `workspace.base_path ${this.config.workspace.base_path} is inside the repository ${source.top}, so its worktree would show up in your checkout`,
        "Set workspace.base_path to a directory outside the repository, or open it without isolation.",
        "path_not_allowed",
      );
    }
    this.log.info(`creating worktree ${dir} of ${source.top} on branch ${branch} at ${source.head.slice(0, 12)}`);
    await withSpan("git.worktree.add", { "coding_mcp.workspace": dir, "git.branch": branch }, () =>
      addWorktree(this.git, { repo: source.top, dir, branch, commit: source.head, timeoutMs: this.config.limits.clone_timeout_min * 60_000 }),
    );
    return dir;
  }

  commit(dir: string, options: { message: string; addAll: boolean; paths?: string[]; owned?: boolean }) {
    return withSpan("git.commit", { "coding_mcp.workspace": dir }, async (span) => {
      const result = await commitChanges(this.git, dir, { ...options, author: this.author, runHooks: this.config.git.run_hooks });
      setAttributes(span, { "git.committed": result.committed, "git.commit.hash": result.commit_hash, "git.files_changed": result.files_changed });
      return result;
    });
  }

  push(dir: string, options: { remote: string; branch: string; setUpstream: boolean; git?: GitCredential }) {
    return withSpan("git.push", { "coding_mcp.workspace": dir, "git.remote": options.remote, "git.branch": options.branch }, async (span) => {
      // The URL is read from the workspace (insteadOf applied) right before the push, since the agent may
      // have edited .git/config; the token goes along only when its host is in git.token_hosts.
      const pushed = await pushBranch(this.git, dir, {
        ...options,
        timeoutMs: this.config.limits.push_timeout_min * 60_000,
        authFor: (url) => authEnv(this.config, this.config.stateDir, url, options.git),
      });
      setAttributes(span, { "coding_mcp.repo_url": pushed.url, "git.commits": pushed.commits.length });
      return { commits: pushed.commits };
    });
  }

  /**
   * Remove a managed workspace; refuses anything that is not a managed directory under base_path. A
   * worktree is removed through git (its branch stays, unless `dropBranchAt` names the commit the
   * branch must still be at: a session that never opened leaves no branch behind). Answers what could
   * not be done cleanly.
   */
  async remove(workspace: WorkspaceRecord, options: { dropBranchAt?: string } = {}): Promise<string[]> {
    const base = this.config.workspace.base_path;
    if (!workspace.managed || !isInside(workspace.path, base) || path.resolve(workspace.path) === path.resolve(base)) {
      throw new Error(`refusing to remove ${workspace.path}: not a managed workspace under ${base}`);
    }
    let problems: string[] = [];
    // Its watch and last read go first: deleting it is no change anyone needs to hear of.
    forgetWorkspace(workspace.path);
    if (workspace.isolation === "worktree" && workspace.source_repo) {
      problems = await removeWorktree(this.git, { repo: workspace.source_repo, dir: workspace.path, trash: this.trash });
      if (options.dropBranchAt && workspace.branch) {
        await deleteBranch(this.git, workspace.source_repo, workspace.branch, options.dropBranchAt).catch((err) =>
          problems.push(`could not delete branch ${workspace.branch}: ${err instanceof Error ? err.message : String(err)}`),
        );
      }
    } else if (!(await this.trash.discard(workspace.path))) {
      await fs.rm(workspace.path, { recursive: true, force: true });
    }
    this.log.info(`removed workspace ${workspace.path}`, problems.length ? { problems } : undefined);
    return problems;
  }
}
