import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseUnifiedDiff, type DiffFile } from "../../src/view/app/diff.js";
import { git } from "../support/git.js";

/**
 * The session view's diff reader on what git really writes (a real repository): each file's path
 * (spaces and markup included), what happened to it, its lines and counts as git counts them, renames
 * with both names, binary files named only. The view in a browser is test/e2e-session-view.test.ts.
 */

let dir: string;
let files: DiffFile[];
let numstat: Map<string, [string, string]>;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "coding-mcp-view-diff-"));
  git(dir, "init", "-q", "-b", "main");
  const lines = (n: number, tag = "") => Array.from({ length: n }, (_, i) => `line ${i + 1}${tag}`).join("\n") + "\n";
  fs.writeFileSync(path.join(dir, "a.txt"), lines(10));
  fs.writeFileSync(path.join(dir, "old-name.txt"), lines(20));
  fs.writeFileSync(path.join(dir, "logo.bin"), Buffer.from([0, 1, 2, 3, 255]));
  fs.writeFileSync(path.join(dir, "doomed.txt"), "bye\n");
  git(dir, "add", "-A");
  git(dir, "-c", "user.name=T", "-c", "user.email=t@x", "commit", "-q", "-m", "base");

  fs.writeFileSync(path.join(dir, "a.txt"), lines(10).replace("line 3\n", "line three\n"));
  git(dir, "mv", "old-name.txt", "new name.txt");
  fs.writeFileSync(path.join(dir, "new name.txt"), lines(20).replace("line 20\n", "line 20\nline 21\n"));
  fs.writeFileSync(path.join(dir, "logo.bin"), Buffer.from([0, 9, 9, 9, 255]));
  fs.rmSync(path.join(dir, "doomed.txt"));
  fs.writeFileSync(path.join(dir, "<b onmouseover=x>.md"), "- a\n+ b\n");
  git(dir, "add", "-A");
  files = parseUnifiedDiff(git(dir, "diff", "--cached", "-M", "HEAD"));
  numstat = new Map(
    git(dir, "diff", "--cached", "-M", "--numstat", "-z", "HEAD")
      .split("\0")
      .reduce<string[][]>((rows, field) => {
        // -z: "added\tdeleted\tpath" or, for a rename, "added\tdeleted\t" then the old and the new path.
        const last = rows.at(-1);
        if (last && last.length < 5 && last[2] === "") last.push(field);
        else if (field) rows.push(field.split("\t"));
        return rows;
      }, [])
      .map((r) => [r.length === 5 ? r[4]! : r[2]!, [r[0]!, r[1]!]]),
  );
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("the session view's diff reader", () => {
  it("reads every file with what happened to it", () => {
    expect(files.map((f) => ({ path: f.path, from: f.from, status: f.status, binary: f.binary }))).toEqual([
      { path: "<b onmouseover=x>.md", from: undefined, status: "added", binary: false },
      { path: "a.txt", from: undefined, status: "modified", binary: false },
      { path: "doomed.txt", from: undefined, status: "deleted", binary: false },
      { path: "logo.bin", from: undefined, status: "modified", binary: true },
      { path: "new name.txt", from: "old-name.txt", status: "renamed", binary: false },
    ]);
  });

  it("counts additions and deletions as git does, and keeps each line's text", () => {
    for (const f of files) {
      const [added, deleted] = numstat.get(f.path) ?? ["?", "?"];
      expect([f.path, String(f.binary ? "-" : f.additions), String(f.binary ? "-" : f.deletions)]).toEqual([f.path, added, deleted]);
    }
    const markup = files[0]!;
    expect(markup.lines).toEqual([
      { kind: "hunk", text: "@@ -0,0 +1,2 @@" },
      { kind: "add", text: "+- a" },
      { kind: "add", text: "++ b" },
    ]);
    const a = files[1]!;
    expect(a.lines.filter((l) => l.kind === "del").map((l) => l.text)).toEqual(["-line 3"]);
    expect(a.lines.filter((l) => l.kind === "add").map((l) => l.text)).toEqual(["+line three"]);
    expect(a.lines.filter((l) => l.kind === "ctx").length).toBeGreaterThan(0);
    expect(files[3]!.lines).toEqual([]);
  });
});
