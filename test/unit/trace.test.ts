import { describe, expect, it } from "vitest";
import type { OpencodeMessage } from "../../src/opencode/client.js";
import { PathMap } from "../../src/opencode/path-map.js";
import { summarizeTurn, turnMessages } from "../../src/opencode/trace.js";
import { TRACE_LIMITS } from "../../src/trace-limits.js";

function assistant(id: string, parentID: string, parts: OpencodeMessage["parts"], extra: Partial<OpencodeMessage["info"]> = {}): OpencodeMessage {
  return {
    info: {
      id, sessionID: "ses_1", role: "assistant", parentID, modelID: "m", providerID: "p", cost: 0.01,
      tokens: { input: 100, output: 10, reasoning: 1, cache: { read: 5, write: 2 } }, finish: "tool-calls",
      time: { created: 1, completed: 2 }, ...extra,
    },
    parts,
  };
}

const tool = (name: string, start: number, end: number, output = "ok", status: "completed" | "error" = "completed") => ({
  type: "tool", tool: name, callID: `c-${name}-${start}`,
  state: { status, input: { filePath: "/ws/a.ts", content: "x".repeat(1000) }, output, title: name, time: { start, end }, ...(status === "error" ? { error: "boom" } : {}) },
});

describe("summarizeTurn", () => {
  const user: OpencodeMessage = { info: { id: "msg_u", sessionID: "ses_1", role: "user", time: { created: 0 } }, parts: [{ type: "text", text: "task" }] };
  const older = assistant("msg_0", "msg_old", [tool("read", 1, 2)]);
  const turn = [
    assistant("msg_1", "msg_u", [{ type: "reasoning", text: "thinking" }, tool("write", 100, 150)]),
    assistant("msg_2", "msg_u", [tool("bash", 200, 1200, "y".repeat(5000)), tool("edit", 1300, 1310, "", "error")]),
    assistant("msg_3", "msg_u", [{ type: "text", text: "All done" }], { finish: "stop" }),
  ];

  it("takes every assistant message of the turn and nothing else", () => {
    const messages = turnMessages([user, older, ...turn], "msg_u");
    expect(messages.map((m) => m.info.id)).toEqual(["msg_1", "msg_2", "msg_3"]);
    const { trace, summary, error } = summarizeTurn(messages, 1234);
    expect(summary).toBe("All done");
    expect(error).toBeUndefined();
    expect(trace.tool_calls.map((c) => [c.tool, c.status, c.duration_ms])).toEqual([
      ["write", "completed", 50],
      ["bash", "completed", 1000],
      ["edit", "error", 10],
    ]);
    expect(trace.tool_calls[2]!.error).toBe("boom");
    expect(trace.tokens).toEqual({ input: 300, output: 30, reasoning: 3, cache_read: 15, cache_write: 6 });
    expect(trace.cost).toBeCloseTo(0.03, 6);
    expect(trace).toMatchObject({ model: "m", provider: "p", finish_reason: "stop", duration_ms: 1234, reasoning: ["thinking"] });
  });

  it("bounds outputs, inputs and the number of calls", () => {
    const many = assistant("msg_x", "msg_u", Array.from({ length: 100 }, (_, i) => tool(`t${i}`, i, i + 1, "z".repeat(2000))));
    const { trace } = summarizeTurn([many], 1);
    expect(trace.tool_calls).toHaveLength(TRACE_LIMITS.toolCalls);
    expect(trace.tool_calls_omitted).toBe(40);
    expect(trace.tool_calls[0]!.tool).toBe("t0");
    expect(trace.tool_calls.at(-1)!.tool).toBe("t99");
    expect(trace.tool_calls[0]!.output_preview.length).toBeLessThan(TRACE_LIMITS.outputPreview + 40);
    expect(String(trace.tool_calls[0]!.input.content).length).toBeLessThan(TRACE_LIMITS.inputString + 40);
  });

  it("reports the agent's error", () => {
    const failed = assistant("msg_e", "msg_u", [], { error: { name: "APIError", data: { message: "provider down" } }, finish: undefined });
    const { trace, error } = summarizeTurn([failed], 5);
    expect(error).toEqual({ name: "APIError", message: "provider down" });
    expect(trace.finish_reason).toBe("error");
  });

  it("maps OpenCode's paths back to coding-mcp's", () => {
    const map = new PathMap({ "/home/me/ws": "/workspace" });
    expect(map.toBackend("/home/me/ws/ws_1")).toBe("/workspace/ws_1");
    expect(map.toBackend("/home/me/wsx")).toBe("/home/me/wsx");
    const { trace } = summarizeTurn([assistant("m", "msg_u", [{ ...tool("write", 1, 2), state: { status: "completed", input: { filePath: "/workspace/ws_1/a.ts" }, output: "wrote /workspace/ws_1/a.ts", time: { start: 1, end: 2 } } }])], 1, (p) => map.fromBackend(p));
    expect(trace.tool_calls[0]!.input.filePath).toBe("/home/me/ws/ws_1/a.ts");
    expect(trace.tool_calls[0]!.output_preview).toBe("wrote /home/me/ws/ws_1/a.ts");
  });
});
