import { describe, expect, it } from "vitest";
import type { OpencodeMessage, OpencodePart } from "../../src/opencode/client.js";
import { filesWrittenByTurn } from "../../src/opencode/files-written.js";

// Which turns let coding-mcp read only the files the agent wrote: those whose every tool call is
// accounted for. Anything that could have written elsewhere must answer "unknown" (undefined).

const dir = "/work/ws";
const same = (p: string) => p;

function call(tool: string, input: Record<string, unknown>, status: "completed" | "error" | "running" | "pending" = "completed"): OpencodePart {
  return { type: "tool", tool, callID: `c-${tool}`, state: { status, input } };
}

function turn(...parts: OpencodePart[]): OpencodeMessage[] {
  return [{ info: { id: "m1", role: "assistant" } as OpencodeMessage["info"], parts: [{ type: "text", text: "on it" }, ...parts] }];
}

describe("filesWrittenByTurn", () => {
  it("names the files written and edited, relative ones from the session's directory, failed calls too", () => {
    const written = filesWrittenByTurn(
      turn(call("read", { filePath: "/work/ws/a.ts" }), call("write", { filePath: "/work/ws/src/new.ts" }), call("edit", { filePath: "lib/b.ts" }), call("edit", { filePath: "/work/ws/c.ts" }, "error"), call("grep", { pattern: "x" })),
      dir,
      same,
    );
    expect(written).toEqual(["/work/ws/src/new.ts", "/work/ws/lib/b.ts", "/work/ws/c.ts"]);
  });

  it("is empty for a turn that only read or answered", () => {
    expect(filesWrittenByTurn(turn(), dir, same)).toEqual([]);
    expect(filesWrittenByTurn(turn(call("glob", { pattern: "**" }), call("todowrite", { todos: [] })), dir, same)).toEqual([]);
  });

  it("is unknown after a command, a subagent, a patch, an MCP server's tool or a call still running", () => {
    for (const other of [call("bash", { command: "make" }), call("task", { prompt: "go" }), call("apply_patch", { patchText: "*** Begin Patch" }), call("github_create_file", { path: "x" }), call("write", { filePath: "/work/ws/x" }, "running")]) {
      expect(filesWrittenByTurn(turn(call("write", { filePath: "/work/ws/a" }), other), dir, same), other.tool).toBeUndefined();
    }
    expect(filesWrittenByTurn(turn(call("write", {})), dir, same)).toBeUndefined();
  });

  it("translates the agent's paths into coding-mcp's", () => {
    const fromBackend = (p: string) => p.replace(/^\/container\//, "/work/");
    expect(filesWrittenByTurn(turn(call("write", { filePath: "/container/ws/a.ts" })), dir, fromBackend)).toEqual(["/work/ws/a.ts"]);
  });
});
