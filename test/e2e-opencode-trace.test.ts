import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ToolCall } from "../src/model.js";
import type { OpencodeMessage } from "../src/opencode/client.js";
import { summarizeTurn, turnMessages } from "../src/opencode/trace.js";
import { startHarness, structured, type Harness } from "./support/harness.js";
import { useOwnOpencode, type OpencodeServer } from "./support/opencode-server.js";

// coding-mcp builds a task's trace from the OpenCode events it follows during the task, not from a
// read of the session afterwards. This checks that against the session itself: the test reads the
// messages straight from its own OpenCode (OPENCODE_URL) and expects the very trace they give.

let h: Harness;
let opencode: OpencodeServer;

beforeAll(async () => {
  h = await startHarness();
  opencode = await useOwnOpencode(h);
  // Reasoning, a write, a failing read, a bash run and a closing text, each its own step.
  h.fake.setScenario("steps", (ctx) => {
    const steps = [
      { reasoning: "Write it, look for a file that is not there, then run it.", tools: [{ name: "write", args: { filePath: `${ctx.directory}/steps.sh`, content: "echo one\necho two\n" } }] },
      { tools: [{ name: "read", args: { filePath: `${ctx.directory}/missing.txt` } }], usage: { prompt_tokens: 900, completion_tokens: 20, cached_tokens: 100 } },
      { tools: [{ name: "bash", args: { command: "sh steps.sh", description: "Run steps.sh" } }] },
      { text: `Ran steps.sh: ${(ctx.toolResults.at(-1) ?? "").trim().split("\n").join(", ")}` },
    ];
    return steps[ctx.step] ?? { text: "Done." };
  });
});

afterAll(async () => {
  await opencode?.stop();
  await h?.close();
});

/** GET from the test's own OpenCode, as any client of it would. */
async function read<T>(route: string): Promise<T> {
  const auth = "Basic " + Buffer.from(`opencode:${opencode.password}`).toString("base64");
  const response = await fetch(opencode.url + route, { headers: { authorization: auth } });
  expect(response.status).toBe(200);
  return (await response.json()) as T;
}

describe("the trace of an OpenCode task", () => {
  it("is the trace the session's own messages give, turn by turn, without reading them back", async () => {
    const opened = structured(await h.call("coding_open", {}));
    const workspace: string = opened.workspace_path;
    const first = structured(await h.call("code", { session_id: opened.session_id, task: "Write and run steps.sh [[fake:steps]]" }));
    const second = structured(await h.call("code", { session_id: opened.session_id, task: "Write notes.md" }));
    expect(first.success).toBe(true);
    expect(second.success).toBe(true);

    const q = `?directory=${encodeURIComponent(workspace)}`;
    const sessions = await read<{ id: string; directory: string }[]>(`/session${q}`);
    const session = sessions.find((s) => s.directory === workspace);
    expect(session).toBeDefined();
    const messages = await read<OpencodeMessage[]>(`/session/${session!.id}/message${q}`);
    const users = messages.filter((m) => m.info.role === "user");
    expect(users).toHaveLength(2);

    for (const [answer, user] of [[first, users[0]!], [second, users[1]!]] as const) {
      const turn = turnMessages(messages, user.info.id);
      const expected = summarizeTurn(turn, answer.trace.duration_ms);
      expect(answer.summary).toBe(expected.summary);
      // What the client sees of each call (call ids and epoch times are not sent).
      expect(answer.trace).toEqual({ ...expected.trace, tool_calls: expected.trace.tool_calls.map((c) => ToolCall.parse(c)) });
      // And the same from the raw parts, as a person would check them.
      const tools = turn.flatMap((m) => m.parts.filter((p) => p.type === "tool"));
      expect(answer.trace.tool_calls.map((c: ToolCall) => [c.tool, c.status, c.duration_ms])).toEqual(
        tools.map((p) => [p.tool, p.state!.status, p.state!.time!.end! - p.state!.time!.start!]),
      );
      expect(answer.trace.cost).toBeCloseTo(turn.reduce((sum, m) => sum + (m.info.cost ?? 0), 0), 6);
      expect(answer.trace.tokens.input).toBe(turn.reduce((sum, m) => sum + (m.info.tokens?.input ?? 0), 0));
    }
    expect(first.trace.tool_calls.map((c: ToolCall) => [c.tool, c.status])).toEqual([
      ["write", "completed"],
      ["read", "error"],
      ["bash", "completed"],
    ]);
    expect(first.trace.tool_calls[1].error).toMatch(/missing\.txt/);
    expect(first.summary).toBe("Ran steps.sh: one, two");
    expect(first.trace.reasoning).toEqual(["Write it, look for a file that is not there, then run it."]);
    expect(first.trace.tokens.cache_read).toBeGreaterThan(0);
    expect(first.trace.cost).toBeGreaterThan(0);
    expect(first.trace.finish_reason).toBe("stop");

    // Both turns came from the event stream: the log says so, and names no read-back.
    const turnLines = h.stderr.filter((l) => l.includes(`turn of ${session!.id}`));
    expect(turnLines).toHaveLength(2);
    for (const line of turnLines) expect(line).toMatch(/taken from the event stream/);
    structured(await h.call("coding_close", { session_id: opened.session_id }));
  });
});
