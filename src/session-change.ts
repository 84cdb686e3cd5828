import path from "node:path";
import { errorMessage } from "./errors.js";
import type { Logger } from "./log.js";
import type { ChangedFile, DiffSince, SessionDiff, SessionRecord, WorkspaceRecord } from "./model.js";
import { changedFiles, EMPTY_TREE, treeChanges } from "./workspace/changes.js";
import type { CommitResult } from "./workspace/commit.js";
import { repositoryPrefix, repositoryTop, stagedPaths, workingTreeDiff } from "./workspace/diff.js";
import type { Git } from "./workspace/git.js";
import type { WorkspaceManager } from "./workspace/manager.js";
import type { Collection } from "./store.js";
import { repoRelativePath } from "./workspace/paths.js";
import { headCommit } from "./workspace/refs.js";
import { dirtyPaths, forgetWorkspace, lastTreeRead, readWorkingTree, watchWorkspace } from "./workspace/working-tree.js";

/**
 * A session's change: what it is measured against (the working tree and HEAD at open), what it
 * commits and shows (in a caller's own checkout, never the owner's work in progress from before the
 * session opened: the leave-out rule), and what it changed at close.
 */

/** How much of a diff coding_diff and the diff resource answer unless asked for another bound. */
export const DEFAULT_DIFF_BYTES = 200_000;

export interface CommitAnswer extends CommitResult {
  /** Files with uncommitted changes from before the session opened, not committed (name them in paths to commit them). */
  left_out?: string[];
}

/** A workspace coding-mcp owns (managed, or a worktree it made): only its tasks write there, and its index may be written. */
export function owned(workspace: WorkspaceRecord): boolean {
  return workspace.managed;
}

export class SessionChanges {
  /** Baselines being read, by session: one read however many calls need it at once. */
  private readonly reading = new Map<string, Promise<{ session: SessionRecord; fresh?: string }>>();

  constructor(
    private readonly git: Git,
    private readonly workspaces: WorkspaceManager,
    private readonly sessions: Collection<SessionRecord>,
    private readonly log: Logger,
  ) {}

  /**
   * What the session's change is measured against: the working tree as it is now (as a tree object) and,
   * in a caller's own checkout, the files that already had uncommitted changes (coding_commit leaves them out).
   * A managed workspace created by this very call is a clean checkout of HEAD: base_commit says it all;
   * one reused has the tree read after its last task. A caller's checkout is read by `baseline`, which
   * coding_open starts once it has answered.
   */
  async atOpen(workspace: WorkspaceRecord, created: boolean): Promise<Pick<SessionRecord, "tree_at_open" | "dirty_at_open" | "baseline_pending">> {
    if (!workspace.managed) return { baseline_pending: true };
    // Changes in a workspace coding-mcp owns are watched from now on: its reads can then be trusted until one.
    watchWorkspace(workspace.path);
    if (created) return {};
    try {
      const known = await lastTreeRead(workspace.path);
      return { tree_at_open: known ?? (await readWorkingTree(this.git, workspace.path, { owned: true })).tree };
    } catch (err) {
      this.log.warn(`could not snapshot ${workspace.path} at open; coding_diff will measure from HEAD: ${errorMessage(err)}`);
      return {};
    }
  }

  /**
   * The session with its baseline (tree_at_open, dirty_at_open) read, when it was still to be read
   * (baseline_pending): the read coding_open started, or, after a restart, one now; `fresh`: the tree
   * read by this very call, which is also the working tree now.
   */
  baseline(session: SessionRecord, workspace: WorkspaceRecord): Promise<{ session: SessionRecord; fresh?: string }> {
    if (!session.baseline_pending) return Promise.resolve({ session });
    const under = this.reading.get(session.id);
    if (under) return under.then(({ session: read }) => ({ session: read }));
    const reading = this.readBaseline(session, workspace).finally(() => this.reading.delete(session.id));
    this.reading.set(session.id, reading);
    return reading;
  }

  private async readBaseline(session: SessionRecord, workspace: WorkspaceRecord): Promise<{ session: SessionRecord; fresh?: string }> {
    let baseline: Pick<SessionRecord, "tree_at_open" | "dirty_at_open">;
    let fresh: string | undefined;
    try {
      const { tree, dirty } = await readWorkingTree(this.git, workspace.path);
      baseline = { tree_at_open: tree, dirty_at_open: dirty };
      fresh = tree;
    } catch (err) {
      this.log.warn(`could not snapshot ${workspace.path}; coding_diff will measure from HEAD: ${errorMessage(err)}`);
      // The owner's work in progress must still stay out of the session's commits.
      baseline = { dirty_at_open: await dirtyPaths(this.git, workspace.path) };
    }
    const updated = await this.sessions.update(session.id, (s) => {
      delete s.baseline_pending;
      Object.assign(s, baseline);
    });
    return { session: updated, ...(fresh ? { fresh } : {}) };
  }

  /**
   * The working tree at open when git still has it (an unreferenced tree may be pruned by gc after weeks), else the commit at open.
   * `checked`: git has just confirmed it is a tree, so it need not be checked again.
   */
  private async baseOf(session: SessionRecord, dir: string): Promise<{ base: string; checked: boolean }> {
    const tree = session.tree_at_open;
    if (tree && !tree.startsWith("-") && (await this.git.exec(["cat-file", "-e", `${tree}^{tree}`], { cwd: dir })).exitCode === 0) return { base: tree, checked: true };
    return { base: session.base_commit, checked: false };
  }

  /** In a caller's own checkout, the files that had uncommitted changes when the session opened; undefined when there are none. */
  private dirtyAtOpen(session: SessionRecord, workspace: WorkspaceRecord): Set<string> | undefined {
    return workspace.managed || !session.dirty_at_open?.length ? undefined : new Set(session.dirty_at_open);
  }

  /** Commit in the session's workspace, under the leave-out rule (see leftOutBy). */
  async commit(opened: SessionRecord, workspace: WorkspaceRecord, input: { message: string; add_all?: boolean; paths?: string[] }): Promise<CommitAnswer> {
    const { session } = await this.baseline(opened, workspace);
    const dir = workspace.path;
    const dirtyAtOpen = this.dirtyAtOpen(session, workspace);
    if (!dirtyAtOpen) {
      // Commits are refused while a task runs: the last read of an owned workspace stands for it while nothing changed there.
      const known = owned(workspace) ? await lastTreeRead(dir) : undefined;
      return this.workspaces.commit(dir, {
        message: input.message,
        addAll: input.add_all ?? true,
        owned: owned(workspace),
        ...(known ? { workingTree: known } : {}),
        ...(input.paths ? { paths: input.paths } : {}),
      });
    }
    const [top, named, changedNow] = await Promise.all([repositoryTop(this.git, dir), this.pathsFromTop(dir, input.paths), dirtyPaths(this.git, dir)]);
    const leftOut = changedNow.filter(leftOutBy(dirtyAtOpen, named));
    const ownPaths = named ?? ((input.add_all ?? true) ? changedNow : await stagedPaths(this.git, dir)).filter((p) => !dirtyAtOpen.has(p));
    const result: CommitResult = ownPaths.length
      ? await this.workspaces.commit(top, { message: input.message, addAll: true, paths: ownPaths.map((p) => path.join(top, p)) })
      : { committed: false, files_changed: 0, insertions: 0, deletions: 0 };
    if (leftOut.length) this.log.info(`commit in ${session.id} left out ${leftOut.length} files changed before the session opened`);
    return { ...result, ...(leftOut.length ? { left_out: leftOut } : {}) };
  }

  /**
   * The session's change as a unified diff: since it opened (committed or not), or what is not committed
   * yet. `betweenTasks`: no task of the session runs, so in a workspace coding-mcp owns the tree read
   * last stands for the working tree while nothing changed there (lastTreeRead).
   */
  async diff(opened: SessionRecord, workspace: WorkspaceRecord, input: { since?: DiffSince; paths?: string[]; max_bytes?: number }, o: { betweenTasks: boolean }): Promise<SessionDiff> {
    const { session, fresh } = await this.baseline(opened, workspace);
    const dir = workspace.path;
    const since = input.since ?? "open";
    const named = await this.pathsFromTop(dir, input.paths);
    // The base is looked up while the working tree is read.
    const baseRead = since === "open" ? this.baseOf(session, dir).then(({ base, checked }) => ({ ref: base, checked })) : headCommit(this.git, dir).then((h) => ({ ref: h ?? EMPTY_TREE, checked: false }));
    baseRead.catch(() => undefined); // awaited below
    // What is not committed yet, in a caller's checkout, is measured like coding_commit commits: the owner's earlier work stays out.
    const dirtyAtOpen = since === "commit" ? this.dirtyAtOpen(session, workspace) : undefined;
    const leftOutRule = dirtyAtOpen && leftOutBy(dirtyAtOpen, named);
    // The baseline just read is the working tree now too (a diff of nothing, read once); between tasks,
    // an owned workspace's last read stands for it.
    const known = fresh ?? (o.betweenTasks && owned(workspace) ? await lastTreeRead(dir) : undefined);
    const result = await workingTreeDiff(this.git, dir, {
      base: baseRead,
      owned: owned(workspace),
      ...(known ? { workingTree: known } : {}),
      ...(named ? { paths: named } : {}),
      ...(leftOutRule ? { leaveOut: (f: ChangedFile) => leftOutRule(f.path) } : {}),
      maxBytes: input.max_bytes ?? DEFAULT_DIFF_BYTES,
    });
    return {
      diff: result.diff,
      files_changed: result.files,
      truncated: result.truncated,
      since,
      base: (await baseRead).ref,
      ...(result.leftOut.length ? { left_out: result.leftOut } : {}),
    };
  }

  /**
   * Everything the session changed, at close. An owned workspace about to be removed is not read again
   * while the tree read last stands for it (lastTreeRead: nothing changed there since).
   */
  async atClose(opened: SessionRecord, workspace: WorkspaceRecord, o: { removing: boolean }): Promise<{ files: ChangedFile[]; warning?: string }> {
    const dir = workspace.path;
    let session = opened;
    try {
      const baseline = await this.baseline(opened, workspace);
      // Read by this very call (a restart came before the read at open): the baseline is the working tree now.
      if (baseline.fresh) return { files: [] };
      session = baseline.session;
      const { base, checked } = await this.baseOf(session, dir);
      const known = o.removing && owned(workspace) ? await lastTreeRead(dir) : undefined;
      if (o.removing) forgetWorkspace(dir);
      if (known !== undefined) return { files: await treeChanges(this.git, dir, base, known) };
      return { files: await changedFiles(this.git, dir, base, { trusted: checked, owned: owned(workspace) }) };
    } catch (err) {
      const warning = `files_changed is incomplete: git could not list the session's changes (${errorMessage(err)})`;
      this.log.warn(`closing ${session.id}: ${warning}`);
      return { files: [], warning };
    }
  }

  /** Caller-given paths (relative to the workspace, or absolute inside it) as paths from the repository's top. */
  private async pathsFromTop(dir: string, paths: string[] | undefined): Promise<string[] | undefined> {
    if (!paths?.length) return undefined;
    const [prefix, relative] = await Promise.all([repositoryPrefix(this.git, dir), Promise.all(paths.map((p) => repoRelativePath(dir, p, "paths")))]);
    return relative.map((r) => (r === "." ? prefix.replace(/\/$/, "") || "." : prefix + r));
  }
}

/**
 * The leave-out rule: a file (path from the repository's top) that already had uncommitted changes when
 * the session opened is the owner's work, not the session's to commit or show as uncommitted, unless
 * the caller named it (or a directory above it) in `named`.
 */
function leftOutBy(dirtyAtOpen: Set<string>, named: string[] | undefined): (p: string) => boolean {
  return (p) => dirtyAtOpen.has(p) && !covers(named, p);
}

/** Whether a path from the repository's top is one of `named` or lies below one of them. */
function covers(named: string[] | undefined, p: string): boolean {
  return Boolean(named?.some((n) => n === "." || n === p || p.startsWith(`${n}/`)));
}
