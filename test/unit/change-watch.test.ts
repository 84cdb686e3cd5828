import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ChangeWatch } from "../../src/workspace/change-watch.js";

// The watch that lets coding-mcp trust its last read of a workspace it owns: any change anywhere in
// the working tree, by anyone, must be seen; what only git writes (.git) must not count.

let dir: string;
let watch: ChangeWatch | undefined;

beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "coding-mcp-watch-"));
  fs.mkdirSync(path.join(dir, "a", "b", "c"), { recursive: true });
  fs.mkdirSync(path.join(dir, ".git", "objects"), { recursive: true });
  fs.writeFileSync(path.join(dir, "a", "b", "c", "deep.txt"), "deep\n");
});

afterEach(() => {
  watch?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Until `check` holds, at most 2 s: events arrive a moment after the change. */
async function eventually(check: () => boolean): Promise<boolean> {
  for (const started = Date.now(); Date.now() - started < 2_000; await new Promise((r) => setTimeout(r, 10))) if (check()) return true;
  return check();
}

async function ready(): Promise<number> {
  watch = new ChangeWatch(dir);
  await watch.ready;
  const mark = watch.mark();
  expect(mark).toBeDefined();
  return mark!;
}

describe("ChangeWatch", () => {
  it("sees an edit deep down, and names what changed", async () => {
    const mark = await ready();
    await new Promise((r) => setTimeout(r, 50));
    expect(watch!.unchangedSince(mark)).toBe(true);
    fs.appendFileSync(path.join(dir, "a", "b", "c", "deep.txt"), "edited\n");
    expect(await eventually(() => !watch!.unchangedSince(mark))).toBe(true);
    expect(watch!.changedSince(mark)).toContain(path.join(dir, "a", "b", "c", "deep.txt"));
  });

  it("sees a change inside a directory made after it started, and one made again after it was removed", async () => {
    await ready();
    fs.mkdirSync(path.join(dir, "new", "inner"), { recursive: true });
    await eventually(() => watch!.mark() !== undefined && watch!.changedSince(0)!.length > 0);
    await new Promise((r) => setTimeout(r, 100)); // the new directories are watched
    let mark = watch!.mark();
    fs.writeFileSync(path.join(dir, "new", "inner", "late.txt"), "late\n");
    expect(await eventually(() => !watch!.unchangedSince(mark))).toBe(true);

    fs.rmSync(path.join(dir, "a"), { recursive: true });
    fs.mkdirSync(path.join(dir, "a", "b"), { recursive: true });
    await new Promise((r) => setTimeout(r, 150));
    mark = watch!.mark();
    expect(mark).toBeDefined();
    fs.writeFileSync(path.join(dir, "a", "b", "again.txt"), "again\n");
    expect(await eventually(() => !watch!.unchangedSince(mark))).toBe(true);
  });

  it("does not count what only git writes, and tells nothing once closed", async () => {
    const mark = await ready();
    fs.writeFileSync(path.join(dir, ".git", "index"), "index\n");
    fs.writeFileSync(path.join(dir, ".git", "objects", "x"), "object\n");
    await new Promise((r) => setTimeout(r, 150));
    expect(watch!.unchangedSince(mark)).toBe(true);
    watch!.close();
    expect(watch!.mark()).toBeUndefined();
    expect(watch!.unchangedSince(mark)).toBe(false);
  });
});
