import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isDiskFull } from "../src/tools/define.js";
import { GitError } from "../src/workspace/git.js";
import { startHarness, structured, textOf, type Harness } from "./support/harness.js";

// The disk under base_path fills up: coding_commit and coding_open fail cleanly, say that the disk is
// full, where, and what to do; once space is freed the same session carries on. The disk is a real
// 4 MiB tmpfs mounted for the test (needs root, as on CI; elsewhere skipped, and the run says why).

/** Mount the tmpfs; the reason it could not be mounted otherwise. */
function tryMount(dir: string): string | undefined {
  if (process.platform !== "linux") return `tmpfs mounts are Linux-only (this is ${process.platform})`;
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", dir], { stdio: ["ignore", "ignore", "pipe"] });
    return undefined;
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    return `mount -t tmpfs failed: ${stderr || (err as Error).message}`;
  }
}

const mountPoint = fs.mkdtempSync(path.join(os.tmpdir(), "coding-mcp-disk-full-"));
const cannotMount = tryMount(mountPoint);
const mounted = cannotMount === undefined;
if (!mounted) {
  fs.rmdirSync(mountPoint);
  // A skipped suite is easy to miss: the run's output says that this one did not run, and why.
  console.warn(`e2e-disk-full: the full-disk tests did NOT run: ${cannotMount}. They need root (a tmpfs is mounted), as on CI.`);
}

let h: Harness;
beforeAll(async () => {
  if (!mounted) return;
  h = await startHarness({ config: { workspace: { base_path: mountPoint } } });
});
afterAll(async () => {
  await h?.close();
  if (mounted) {
    execFileSync("umount", ["-l", mountPoint]);
    fs.rmdirSync(mountPoint);
  }
});

/** Fill the file system: write until it refuses (the real ENOSPC). */
function fill(file: string): void {
  const chunk = Buffer.alloc(64 * 1024, 1);
  const fd = fs.openSync(file, "w");
  try {
    for (let i = 0; i < 1024; i++) fs.writeSync(fd, chunk);
    throw new Error("the disk did not fill up");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOSPC") throw err;
  } finally {
    fs.closeSync(fd);
  }
}

describe("what counts as a full disk", () => {
  it.skipIf(!fs.existsSync("/dev/full"))("a real ENOSPC from node's fs (a write to /dev/full), also as the cause of another error", () => {
    let enospc: unknown;
    try {
      fs.writeFileSync("/dev/full", "x");
    } catch (err) {
      enospc = err;
    }
    expect((enospc as NodeJS.ErrnoException).code).toBe("ENOSPC");
    expect(isDiskFull(enospc)).toBe(true);
    expect(isDiskFull(new Error("registry write failed", { cause: enospc }))).toBe(true);
  });

  it("git's own words, and nothing else", () => {
    const stderr = "error: unable to write file .git/objects/ab/cdef: No space left on device\nfatal: unable to write new index file";
    expect(isDiskFull(new GitError("git commit failed (exit 128): fatal: unable to write new index file", ["commit"], 128, stderr, false))).toBe(true);
    expect(isDiskFull(new GitError("git status failed (exit 128): fatal: sha1 file '.git/index.lock' write error. Out of diskspace", ["status"], 128, "fatal: sha1 file '.git/index.lock' write error. Out of diskspace", false))).toBe(true);
    expect(isDiskFull(new GitError("git push failed (exit 1): rejected", ["push"], 1, "! [rejected] main -> main (fetch first)", false))).toBe(false);
    expect(isDiskFull(new Error("ECONNREFUSED"))).toBe(false);
  });
});

describe.skipIf(!mounted)(`a full disk under base_path${mounted ? "" : ` (not run: ${cannotMount})`}`, () => {
  it("is named as the cause, with the fix, and the session recovers once space is freed", async () => {
    const opened = structured(await h.call("coding_open", {}));
    fs.writeFileSync(path.join(opened.workspace_path, "notes.txt"), "x".repeat(200_000) + "\n");
    const filler = path.join(mountPoint, "filler");
    fill(filler);

    const commit = await h.call("coding_commit", { session_id: opened.session_id, message: "Add notes" });
    expect(commit.isError).toBe(true);
    expect(textOf(commit)).toContain(`coding_commit failed: no space left on the disk under ${mountPoint}`);
    expect(textOf(commit)).toContain("Free some space there");
    expect(textOf(commit)).not.toContain("problem on coding-mcp's side");

    const second = await h.call("coding_open", {});
    expect(second.isError).toBe(true);
    expect(textOf(second)).toContain(`coding_open failed: no space left on the disk under ${mountPoint}`);
    expect(textOf(second)).toContain("set workspace.base_path to a bigger disk");

    fs.rmSync(filler);
    const committed = structured(await h.call("coding_commit", { session_id: opened.session_id, message: "Add notes" }));
    expect(committed.committed).toBe(true);
    expect(committed.files_changed).toBe(1);
    const log = execFileSync("git", ["log", "--format=%s", "-1"], { cwd: opened.workspace_path, encoding: "utf8" }).trim();
    expect(log).toBe("Add notes");
    structured(await h.call("coding_open", {}));
  });
});
