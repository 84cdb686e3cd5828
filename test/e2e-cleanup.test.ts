import fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { alive, startHarness, structured, type Harness } from "./support/harness.js";

// Cleanup policy on_success, and the managed OpenCode's lifetime, with the built server over stdio.

let h: Harness;
beforeAll(async () => {
  h = await startHarness({ config: { workspace: { cleanup_policy: "on_success" } } });
});
afterAll(async () => {
  await h?.close();
});

function managedPids(): number[] {
  return h.stderr.flatMap((line) => {
    const m = /managed OpenCode ready at \S+ \(pid (\d+)\)/.exec(line);
    return m ? [Number(m[1])] : [];
  });
}

/** The processes of a process group, from /proc (the group field of each process's stat). */
function groupMembers(pgid: number): number[] {
  return fs.readdirSync("/proc").flatMap((name) => {
    if (!/^\d+$/.test(name)) return [];
    try {
      const stat = fs.readFileSync(`/proc/${name}/stat`, "utf8");
      // The command name may hold spaces and parentheses: the fields after the last ")" are fixed (state, ppid, pgrp, ...).
      return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]) === pgid ? [Number(name)] : [];
    } catch {
      return []; // it ended meanwhile
    }
  });
}

describe("cleanup_policy on_success", () => {
  it("keeps the workspace of a session closed with success: false", async () => {
    const opened = structured(await h.call("coding_open", {}));
    const closed = structured(await h.call("coding_close", { session_id: opened.session_id, success: false }));
    expect(closed.cleaned_up).toBe(false);
    expect(fs.existsSync(opened.workspace_path)).toBe(true);
  });

  it("removes it when the session succeeded", async () => {
    const opened = structured(await h.call("coding_open", {}));
    const closed = structured(await h.call("coding_close", { session_id: opened.session_id, success: true }));
    expect(closed.cleaned_up).toBe(true);
    expect(fs.existsSync(opened.workspace_path)).toBe(false);
  });
});

describe("the managed OpenCode", () => {
  it("is stopped with coding-mcp, whole process group, and a restart starts a new one", async () => {
    structured(await h.call("coding_open", {}));
    const [first] = managedPids();
    expect(first).toBeDefined();
    expect(alive(first!)).toBe(true);
    // OpenCode runs in a group of its own, led by the process coding-mcp started. (Idle, that group is
    // OpenCode alone; the commands it runs are in sessions of their own: e2e-process-lifetime follows those.)
    const group = groupMembers(first!);
    expect(group).toContain(first);
    await h.restart();
    structured(await h.call("coding_open", {}));
    const pids = managedPids();
    expect(pids).toHaveLength(2);
    expect(group.filter(alive)).toEqual([]);
    expect(groupMembers(first!)).toEqual([]);
    expect(alive(pids[1]!)).toBe(true);
    // Its log went to coding-mcp's stderr, not to the MCP stream (the client would have failed to parse it).
    expect(h.stderr.some((l) => l.includes("opencode: "))).toBe(true);
  });
});
