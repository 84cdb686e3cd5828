import { execFileSync } from "node:child_process";
import { afterEach, describe, expect, it } from "vitest";
import { alive, until } from "../support/harness.js";
import { descendants, killTree, runBound, spawnBound } from "../../src/process.js";

// The one module that starts processes: what a short command returns, and that nothing it or a
// long-running child starts is left behind. Real processes (sh, sleep, yes), no mocks.

/** How many processes' command lines match `pattern` (pgrep -f). */
function sleepersRunning(pattern: string): number {
  try {
    return execFileSync("pgrep", ["-f", pattern], { encoding: "utf8" }).trim().split("\n").filter(Boolean).length;
  } catch {
    return 0;
  }
}

const started: number[] = [];
afterEach(() => {
  for (const pid of started.splice(0)) killTree(pid);
});

describe.skipIf(process.platform === "win32")("runBound", () => {
  it("returns output without the final newline, the exit code, and what it read on stdin", async () => {
    const result = await runBound("sh", ["-c", "cat; echo to-stderr >&2; exit 3"], { cwd: "/", input: "line one\nline two\n" });
    expect(result).toEqual({ stdout: "line one\nline two", stderr: "to-stderr", exitCode: 3, timedOut: false, truncated: false });
  });

  it("passes environment changes and removals", async () => {
    process.env.CODING_MCP_TEST_REMOVED = "present";
    try {
      const result = await runBound("sh", ["-c", 'printf "%s|%s" "$ADDED" "${CODING_MCP_TEST_REMOVED-unset}"'], { cwd: "/", env: { ADDED: "yes", CODING_MCP_TEST_REMOVED: undefined } });
      expect(result.stdout).toBe("yes|unset");
    } finally {
      delete process.env.CODING_MCP_TEST_REMOVED;
    }
  });

  it("stops a command whose output passes the cap and keeps exactly that many bytes", async () => {
    // Multi-byte characters: the cap is in bytes, not characters.
    const result = await runBound("sh", ["-c", "while :; do printf 'ééééé\\n'; done"], { cwd: "/", maxOutputBytes: 1001 });
    expect(result.truncated).toBe(true);
    expect(Buffer.byteLength(result.stdout.replace(/\uFFFD$/, ""), "utf8")).toBeLessThanOrEqual(1001);
    expect(Buffer.byteLength(result.stdout, "utf8")).toBeGreaterThan(990);
  });

  it("kills the command's whole group at the timeout", async () => {
    const marker = `sleep 31.${process.pid}`;
    // The sleeps themselves (their command line starts with it), not the sh whose script names them.
    const sleeping = () => sleepersRunning(`^${marker}$`);
    const t0 = Date.now();
    const run = runBound("sh", ["-c", `${marker} & ${marker}; wait`], { cwd: "/", timeoutMs: 2_000 });
    // Both sleeps were running before the timeout: what is found gone below was there.
    expect(await until(() => sleeping() === 2, 1_800, 20)).toBe(true);
    const result = await run;
    expect(result.timedOut).toBe(true);
    expect(result.exitCode).toBeUndefined();
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(await until(() => sleeping() === 0, 5_000)).toBe(true);
  });

  it("names why a command could not start", async () => {
    const result = await runBound("/nonexistent/tool", [], { cwd: "/" });
    expect(result.startError).toBe("ENOENT");
    expect(result.exitCode).toBeUndefined();
  });
});

describe.skipIf(process.platform !== "linux")("killTree", () => {
  it("stops a child, its group, and what it moved into a session of its own", async () => {
    const child = spawnBound("sh", ["-c", "setsid sleep 32 & sleep 33 & wait"], { cwd: "/", stdio: "ignore" });
    started.push(child.pid!);
    const tree = await until(() => (descendants(child.pid!).length >= 2 ? descendants(child.pid!) : undefined), 5_000);
    expect(tree).toBeDefined();
    killTree(child.pid!);
    expect(await until(() => ![child.pid!, ...tree!].some(alive), 5_000)).toBe(true);
  });
});
