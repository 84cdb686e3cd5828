import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { runBound, withTimeout } from "../process.js";
import { isMissing } from "./git-dir.js";

// Removing a workspace without making the caller wait for its files: the directory is renamed into a
// trash directory in coding-mcp's state (one rename, whatever its size; by default on the file system of
// the workspaces) and deleted behind the answer. What a stop cuts short is deleted at the next start.

/** How long a stop waits for deletions under way; the next start finishes the rest. */
const DRAIN_MS = 5_000;

export class Trash {
  private readonly deleting = new Set<Promise<void>>();

  constructor(
    /** Best on the file system of what is discarded: a rename moves it then (else the caller deletes it). */
    private readonly dir: string,
    private readonly warn: (message: string) => void,
  ) {}

  /**
   * Take `target` out of its place now; its files are deleted behind. False when it could not be
   * moved (another file system, a permission): the caller deletes it then. True when it is not there.
   */
  async discard(target: string): Promise<boolean> {
    const moved = path.join(this.dir, `${path.basename(target)}-${randomBytes(4).toString("hex")}`);
    try {
      await fs.mkdir(this.dir, { recursive: true });
      await fs.rename(target, moved);
    } catch (err) {
      return isMissing(err) && !(await exists(target));
    }
    this.deleteBehind(moved);
    return true;
  }

  /** Delete, behind, what an earlier run left in the trash. */
  sweep(): void {
    void fs.readdir(this.dir).then(
      (entries) => entries.forEach((entry) => this.deleteBehind(path.join(this.dir, entry))),
      () => undefined, // no trash yet
    );
  }

  /** Wait (a bounded time) for the deletions under way. */
  async drain(): Promise<void> {
    await withTimeout(Promise.allSettled([...this.deleting]), DRAIN_MS, "").catch(() => undefined);
  }

  private deleteBehind(p: string): void {
    // `rm` in a process of its own, not fs.rm: a hundred thousand unlinks in this process would hold
    // every thread libuv has for files, and every other file operation of coding-mcp would wait.
    const job: Promise<void> = runBound("rm", ["-rf", "--", p], { cwd: "/" })
      .then((done) => {
        if (done.exitCode !== 0) throw new Error(done.stderr.trim() || done.startError || "rm was stopped");
      })
      .catch((err: unknown) => this.warn(`could not delete ${p} (a removed workspace): ${err instanceof Error ? err.message : String(err)}; it goes at the next start`))
      .finally(() => this.deleting.delete(job));
    this.deleting.add(job);
  }
}

async function exists(p: string): Promise<boolean> {
  return fs.lstat(p).then(() => true, () => false);
}
