import fs from "node:fs";
import path from "node:path";

// Telling, without reading it, that nothing has changed in a workspace coding-mcp owns since it was
// last read: one inotify watch per directory, where any event counts as a change. (Node's recursive
// fs.watch on Linux reads the whole tree synchronously and watches every file: not for 100,000 files.)
// What only git writes is not watched: `.git` directories. Where the file system does not report
// every change (a network file system), nothing is watched and every read walks the tree.

/** More directories than this and the workspace is read instead (inotify watches are a shared, bounded resource). */
const MAX_DIRS = 50_000;
/** File systems whose changes the kernel reports, whoever makes them (statfs f_type). */
const LOCAL_FILE_SYSTEMS = new Set([0xef53 /* ext2/3/4 */, 0x58465342 /* xfs */, 0x9123683e /* btrfs */, 0x01021994 /* tmpfs */, 0x794c7630 /* overlayfs */, 0x2fc12fc1 /* zfs */, 0xf2f52010 /* f2fs */]);

/** How many changed paths are remembered (beyond that, which paths changed is no longer known). */
const PATHS_KEPT = 10_000;

export class ChangeWatch {
  private readonly watchers = new Map<string, fs.FSWatcher>();
  /** How many changes were seen; `changedPaths` holds the paths of the last ones (the first `dropped` are gone). */
  private generation = 0;
  private readonly changedPaths: string[] = [];
  private dropped = 0;
  /** Directories found but not watched yet: until they are, no change can be ruled out. */
  private pending = 0;
  private state: "starting" | "watching" | "off" = "starting";
  /** Settles once every directory there was is watched (or watching was given up). */
  readonly ready: Promise<void>;

  constructor(private readonly root: string) {
    this.pending++;
    this.ready = this.start().finally(() => this.pending--);
  }

  /** Where the count of changes stands: undefined while changes cannot be told (still starting, or given up). */
  mark(): number | undefined {
    return this.state === "watching" && this.pending === 0 ? this.generation : undefined;
  }

  /** Whether nothing at all changed in the workspace since `mark` was taken. */
  unchangedSince(mark: number | undefined): boolean {
    return mark !== undefined && this.mark() === mark;
  }

  /** The paths that changed since `mark` (a directory's own path for a change of its entries); undefined when that is not known. */
  changedSince(mark: number | undefined): string[] | undefined {
    if (mark === undefined || this.mark() === undefined || mark < this.dropped) return undefined;
    return this.changedPaths.slice(mark - this.dropped);
  }

  close(): void {
    this.state = "off";
    for (const watcher of this.watchers.values()) watcher.close();
    this.watchers.clear();
  }

  private async start(): Promise<void> {
    const fsType = await fs.promises.statfs(this.root).then((s) => s.type, () => undefined);
    if (fsType === undefined || !LOCAL_FILE_SYSTEMS.has(fsType)) return this.close();
    await this.watchTree(this.root);
    if (this.state === "starting") this.state = "watching";
  }

  /** Watch `dir` and every directory below it (not `.git`, not through symlinks). */
  private async watchTree(dir: string): Promise<void> {
    const queue = [dir];
    while (queue.length && this.state !== "off") {
      const next = queue.shift()!;
      if (this.watchers.has(next)) continue;
      if (this.watchers.size >= MAX_DIRS) return this.close();
      if (!this.watch(next)) continue;
      const entries = await fs.promises.readdir(next, { withFileTypes: true }).catch(() => []);
      for (const entry of entries) if (entry.isDirectory() && entry.name !== ".git") queue.push(path.join(next, entry.name));
    }
  }

  private watch(dir: string): boolean {
    try {
      const watcher = fs.watch(dir, { persistent: false }, (event, name) => this.changed(dir, event, name));
      watcher.on("error", () => this.lost(dir));
      this.watchers.set(dir, watcher);
      return true;
    } catch {
      // Gone already (a change the parent's watch reports), or out of watches: then changes cannot be told.
      if (fs.existsSync(dir)) this.close();
      return false;
    }
  }

  private changed(dir: string, event: string, name: string | Buffer | null): void {
    this.record(name ? path.join(dir, name.toString()) : dir);
    // Something appeared or went: a new directory is watched too (until it is, nothing is ruled out).
    if (event !== "rename" || !name || this.state === "off") return;
    const entry = path.join(dir, name.toString());
    if (path.basename(entry) === ".git") return;
    this.pending++;
    void fs.promises
      .lstat(entry)
      .then(
        (st) => {
          // A directory that is there now may be another one than was watched at that path (removed and
          // made again, or moved there): its watches start afresh.
          if (this.watchers.has(entry)) this.unwatchTree(entry);
          return st.isDirectory() ? this.watchTree(entry) : undefined;
        },
        () => this.watchers.has(entry) && this.unwatchTree(entry), // gone
      )
      .finally(() => this.pending--);
  }

  /** Stop watching `dir` and every directory below it. */
  private unwatchTree(dir: string): void {
    for (const [watched, watcher] of this.watchers) {
      if (watched === dir || watched.startsWith(dir + path.sep)) {
        watcher.close();
        this.watchers.delete(watched);
      }
    }
  }

  private record(changed: string): void {
    this.generation++;
    this.changedPaths.push(changed);
    if (this.changedPaths.length > PATHS_KEPT) {
      this.changedPaths.shift();
      this.dropped++;
    }
  }

  /** A watched directory failed: gone (its parent saw that), or the watch broke (then changes cannot be told). */
  private lost(dir: string): void {
    this.record(dir);
    this.watchers.get(dir)?.close();
    this.watchers.delete(dir);
    if (fs.existsSync(dir)) this.close();
  }
}
