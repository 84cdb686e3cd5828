import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import type { TokenCounts } from "./backend.js";
import type { CodeResult } from "./tasks.js";

/**
 * What coding-mcp knows about its sessions and workspaces, kept on disk so a restarted server (or a
 * second coding-mcp process on the same base path, e.g. one per MCP client) still knows them. One
 * JSON file per record, each written atomically (temp file + rename), so writers of different
 * records never overwrite each other and a crash never leaves a half-written record.
 */

export interface Totals {
  tasks: number;
  cost: number;
  tokens: TokenCounts;
  duration_ms: number;
}

export interface TaskRecord {
  task_id?: string;
  started_at: string;
  finished_at?: string;
  task: string;
  success?: boolean;
  summary?: string;
  error?: string;
  cost: number;
  duration_ms: number;
  tool_calls: number;
  /** The whole (bounded) answer of the task, for coding_status after the fact. */
  result?: CodeResult;
}

/** A task in progress, recorded so a restarted coding-mcp can follow it to its end. */
export interface RunningTaskRecord {
  task_id: string;
  task: string;
  started_at: string;
  deadline: string;
  /** Where the task's turn starts in the backend session. */
  checkpoint?: string;
  head_before: string;
  tree_before: string;
}

export interface WorkspaceRecord {
  id: string;
  path: string;
  /** Created by coding-mcp under base_path (and so removable); false for a caller's own directory. */
  managed: boolean;
  repo_url?: string;
  branch?: string;
  scope: "agent" | "workflow";
  scope_id?: string;
  created_at: string;
  removed_at?: string;
}

export interface SessionRecord {
  id: string;
  workspace_id: string;
  backend: string;
  backend_session_id: string;
  title: string;
  model?: string;
  agent?: string;
  state: "open" | "closed";
  created_at: string;
  closed_at?: string;
  /** HEAD when the session opened: what coding_close's files_changed is measured against. */
  base_commit: string;
  last_task?: TaskRecord;
  running?: RunningTaskRecord;
  totals: Totals;
}

type Kind = "sessions" | "workspaces";

export function newId(prefix: "cs" | "ws"): string {
  return `${prefix}_${randomBytes(9).toString("base64url").replace(/[-_]/g, "x")}`;
}

const ID_PATTERN = /^(cs|ws)_[A-Za-z0-9]{6,40}$/;

export class Registry {
  private readonly sessions = new Map<string, SessionRecord>();
  private readonly workspaces = new Map<string, WorkspaceRecord>();
  private writes: Promise<void> = Promise.resolve();

  private constructor(private readonly dir: string) {}

  static async open(dir: string): Promise<Registry> {
    const registry = new Registry(dir);
    await fs.mkdir(path.join(dir, "sessions"), { recursive: true, mode: 0o700 });
    await fs.mkdir(path.join(dir, "workspaces"), { recursive: true, mode: 0o700 });
    for (const record of await registry.readAll<SessionRecord>("sessions")) registry.sessions.set(record.id, record);
    for (const record of await registry.readAll<WorkspaceRecord>("workspaces")) registry.workspaces.set(record.id, record);
    return registry;
  }

  /** A session by id; one another coding-mcp process created since we loaded is read from disk. */
  async session(id: string): Promise<SessionRecord | undefined> {
    return this.sessions.get(id) ?? (await this.reload("sessions", id, this.sessions));
  }

  async workspace(id: string): Promise<WorkspaceRecord | undefined> {
    return this.workspaces.get(id) ?? (await this.reload("workspaces", id, this.workspaces));
  }

  allSessions(): SessionRecord[] {
    return [...this.sessions.values()];
  }

  /** The live workspace of a scope, for reuse by a later coding_open with the same scope_id. */
  async workspaceOfScope(scope: WorkspaceRecord["scope"], scopeId: string): Promise<WorkspaceRecord | undefined> {
    for (const record of await this.readAll<WorkspaceRecord>("workspaces")) this.workspaces.set(record.id, record);
    return [...this.workspaces.values()].find((w) => w.scope === scope && w.scope_id === scopeId && !w.removed_at);
  }

  /** Open sessions on a workspace, read fresh from disk so other processes' sessions count too. */
  async openSessionsOf(workspaceId: string): Promise<SessionRecord[]> {
    for (const record of await this.readAll<SessionRecord>("sessions")) this.sessions.set(record.id, record);
    return [...this.sessions.values()].filter((s) => s.workspace_id === workspaceId && s.state === "open");
  }

  saveSession(record: SessionRecord): Promise<void> {
    this.sessions.set(record.id, record);
    return this.write("sessions", record.id, record);
  }

  saveWorkspace(record: WorkspaceRecord): Promise<void> {
    this.workspaces.set(record.id, record);
    return this.write("workspaces", record.id, record);
  }

  /** Resolves once every write queued so far is on disk. */
  flush(): Promise<void> {
    return this.writes;
  }

  private write(kind: Kind, id: string, record: object): Promise<void> {
    const file = path.join(this.dir, kind, `${id}.json`);
    const text = JSON.stringify(record, null, 2) + "\n";
    // Writes are queued so two saves of one record land in the order they were made.
    const next = this.writes.then(async () => {
      const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
      await fs.writeFile(tmp, text, { mode: 0o600 });
      await fs.rename(tmp, file);
    });
    this.writes = next.catch(() => undefined);
    return next;
  }

  private async reload<T extends { id: string }>(kind: Kind, id: string, into: Map<string, T>): Promise<T | undefined> {
    if (!ID_PATTERN.test(id)) return undefined;
    const record = await this.readOne<T>(path.join(this.dir, kind, `${id}.json`));
    if (record) into.set(record.id, record);
    return record;
  }

  private async readAll<T>(kind: Kind): Promise<T[]> {
    const names = (await fs.readdir(path.join(this.dir, kind)).catch(() => [] as string[])).filter((n) => n.endsWith(".json"));
    const records = await Promise.all(names.map((n) => this.readOne<T>(path.join(this.dir, kind, n))));
    return records.filter((r): r is Awaited<T> => r !== undefined) as T[];
  }

  private async readOne<T>(file: string): Promise<T | undefined> {
    try {
      return JSON.parse(await fs.readFile(file, "utf8")) as T;
    } catch {
      return undefined;
    }
  }
}
