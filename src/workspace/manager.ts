import fs from "node:fs/promises";
import path from "node:path";
import type { ResolvedConfig } from "../config.js";
import { UserError } from "../errors.js";
import type { Logger } from "../log.js";
import type { WorkspaceRecord } from "../registry.js";
import { setAttributes, withSpan } from "../telemetry.js";
import { authEnv } from "./credentials.js";
import { cloneRepository, commitChanges, initRepository, pushBranch, type Git } from "./git.js";
import { isInside, resolveInsideRoots } from "./paths.js";
import { validateRepoUrl } from "./remote-url.js";

/**
 * Workspaces on disk: managed ones under base_path (created empty or cloned, removable), and a
 * caller's own repository (adopted, never removed). Clone and push authenticate here, with the
 * config's credentials, so no token ever passes through the agent.
 */
export class WorkspaceManager {
  constructor(
    private readonly config: ResolvedConfig,
    private readonly git: Git,
    private readonly log: Logger,
  ) {}

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

  async clone(id: string, options: { url: string; branch?: string; shallow?: boolean; sparsePaths?: string[] }): Promise<string> {
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
        auth: await authEnv(this.config, this.config.stateDir, url),
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
    if (!top) {
      throw new UserError(
        `workspace_path ${workspacePath} is not a git repository`,
        "Run `git init` there first, or omit workspace_path to get a new managed repository.",
        "not_a_repository",
      );
    }
    return real;
  }

  commit(dir: string, options: { message: string; addAll: boolean; paths?: string[] }) {
    return withSpan("git.commit", { "coding_mcp.workspace": dir }, async (span) => {
      const result = await commitChanges(this.git, dir, { ...options, author: this.author });
      setAttributes(span, { "git.committed": result.committed, "git.commit.hash": result.commit_hash, "git.files_changed": result.files_changed });
      return result;
    });
  }

  push(dir: string, options: { remote: string; branch: string; setUpstream: boolean }) {
    return withSpan("git.push", { "coding_mcp.workspace": dir, "git.remote": options.remote, "git.branch": options.branch }, async (span) => {
      // The URL is read from the workspace (insteadOf applied) right before the push, since the agent may
      // have edited .git/config; the token goes along only when its host is in git.token_hosts.
      const pushed = await pushBranch(this.git, dir, {
        ...options,
        timeoutMs: this.config.limits.push_timeout_min * 60_000,
        authFor: (url) => authEnv(this.config, this.config.stateDir, url),
      });
      setAttributes(span, { "coding_mcp.repo_url": pushed.url, "git.commits": pushed.commits.length });
      return { commits: pushed.commits };
    });
  }

  /** Remove a managed workspace; refuses anything that is not a managed directory under base_path. */
  async remove(workspace: WorkspaceRecord): Promise<void> {
    const base = this.config.workspace.base_path;
    if (!workspace.managed || !isInside(workspace.path, base) || path.resolve(workspace.path) === path.resolve(base)) {
      throw new Error(`refusing to remove ${workspace.path}: not a managed workspace under ${base}`);
    }
    await fs.rm(workspace.path, { recursive: true, force: true });
    this.log.info(`removed workspace ${workspace.path}`);
  }
}
