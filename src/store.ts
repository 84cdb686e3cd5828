import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import type { z } from "zod";
import { errorMessage } from "./errors.js";
import type { Logger } from "./log.js";

/**
 * Records kept on disk, so a restarted server (or a second coding-mcp process on the same base path,
 * e.g. one per MCP client) still knows them. One JSON file per record, each written atomically (temp
 * file + rename), so writers of different records never overwrite each other and a crash never leaves
 * a half-written record. Records are validated with their schema when read; a file that does not
 * parse is logged and skipped, never taken for an empty answer. Callers get copies: a change goes
 * through `update`, so nothing mutates what another caller holds.
 */

const ID_PATTERN = /^[a-z]{2,8}_[A-Za-z0-9]{6,40}$/;

export function newId(prefix: string): string {
  return `${prefix}_${randomBytes(9).toString("base64url").replace(/[-_]/g, "x")}`;
}

export class JsonStore {
  private writes: Promise<void> = Promise.resolve();

  private constructor(
    readonly dir: string,
    readonly log: Logger,
  ) {}

  static async open(dir: string, log: Logger): Promise<JsonStore> {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    return new JsonStore(dir, log);
  }

  /** The records of one kind, kept in `<dir>/<name>/<id>.json`, loaded now. */
  async collection<T extends { id: string }>(name: string, schema: z.ZodType<T>): Promise<Collection<T>> {
    const dir = path.join(this.dir, name);
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
    const collection = new Collection<T>(dir, schema, this);
    await collection.refresh();
    return collection;
  }

  /** Resolves once every write queued so far is on disk. */
  flush(): Promise<void> {
    return this.writes;
  }

  /** Queue a write, so two saves of one record land in the order they were made. */
  write(file: string, record: unknown): Promise<void> {
    const text = JSON.stringify(record, null, 2) + "\n";
    const next = this.writes.then(async () => {
      const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
      try {
        await fs.writeFile(tmp, text, { mode: 0o600 });
        await fs.rename(tmp, file);
      } catch (err) {
        await fs.rm(tmp, { force: true }).catch(() => undefined);
        throw err;
      }
    });
    this.writes = next.catch(() => undefined);
    return next;
  }
}

export class Collection<T extends { id: string }> {
  private readonly cache = new Map<string, T>();

  constructor(
    private readonly dir: string,
    private readonly schema: z.ZodType<T>,
    private readonly store: JsonStore,
  ) {}

  /** A record by id; one another process wrote since we last read is read from disk. */
  async get(id: string): Promise<T | undefined> {
    const cached = this.cache.get(id);
    if (cached) return structuredClone(cached);
    if (!ID_PATTERN.test(id)) return undefined;
    const record = await this.read(this.file(id));
    if (record) this.cache.set(record.id, record);
    return record && structuredClone(record);
  }

  /** Every record known to this process. */
  all(): T[] {
    return [...this.cache.values()].map((r) => structuredClone(r));
  }

  /** Every record, read again from disk so other processes' records count too. */
  async refresh(): Promise<T[]> {
    const names = await fs.readdir(this.dir);
    const records = await Promise.all(names.filter((n) => n.endsWith(".json")).map((n) => this.read(path.join(this.dir, n))));
    for (const record of records) if (record) this.cache.set(record.id, record);
    return this.all();
  }

  /** Write a record as given (a new one, or one replaced whole). */
  save(record: T): Promise<void> {
    const copy = structuredClone(record);
    this.cache.set(copy.id, copy);
    return this.store.write(this.file(copy.id), copy);
  }

  /** Change a record: `change` edits a copy, which is then saved and answered. */
  async update(id: string, change: (record: T) => void): Promise<T> {
    const record = await this.get(id);
    if (!record) throw new Error(`no record ${id} in ${this.dir}`);
    change(record);
    await this.save(record);
    return structuredClone(record);
  }

  private file(id: string): string {
    return path.join(this.dir, `${id}.json`);
  }

  private async read(file: string): Promise<T | undefined> {
    let text: string;
    try {
      text = await fs.readFile(file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") this.store.log.warn(`cannot read ${file}: ${errorMessage(err)}`);
      return undefined;
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      this.store.log.warn(`skipping ${file}: not valid JSON (${errorMessage(err)}); move it away or delete it`);
      return undefined;
    }
    const parsed = this.schema.safeParse(json);
    if (!parsed.success) {
      const problem = parsed.error.issues[0];
      this.store.log.warn(`skipping ${file}: not a valid record (${problem?.path.join(".") || "top level"}: ${problem?.message}); move it away or delete it`);
      return undefined;
    }
    return parsed.data;
  }
}
