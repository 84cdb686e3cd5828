import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { OpencodeMessage } from "../src/opencode/client.js";
import { turnMessages } from "../src/opencode/trace.js";
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

    // Each call's duration as the session's own parts give it, in order, as a person would read them there.
    const durations = users.map((user) =>
      turnMessages(messages, user.info.id)
        .flatMap((m) => m.parts.filter((p) => p.type === "tool"))
        .map((p) => p.state!.time!.end! - p.state!.time!.start!),
    );
    // The scripted model's steps and usage, with OpenCode's price for fake-coder: what the client is sent (call ids and epoch times are not).
    expect(first).toMatchObject({ success: true, summary: "Ran steps.sh: one, two" });
    expect(first.trace).toEqual({
      model: "fake-coder",
      provider: "fake",
      cost: 0.00408,
      tokens: { input: 1100, output: 50, reasoning: 0, cache_read: 100, cache_write: 0 },
      duration_ms: expect.any(Number),
      finish_reason: "stop",
      tool_calls: [
        { tool: "write", status: "completed", title: "steps.sh", input: { filePath: `${workspace}/steps.sh`, content: "echo one\necho two\n" }, output_preview: "Wrote file successfully.", duration_ms: durations[0]![0] },
        { tool: "read", status: "error", input: { filePath: `${workspace}/missing.txt` }, output_preview: "", duration_ms: durations[0]![1], error: `File not found: ${workspace}/missing.txt` },
        { tool: "bash", status: "completed", title: "sh steps.sh", input: { command: "sh steps.sh", description: "Run steps.sh" }, output_preview: "one\ntwo\n", duration_ms: durations[0]![2] },
      ],
      reasoning: ["Write it, look for a file that is not there, then run it."],
    });
    expect(second).toMatchObject({ success: true, summary: "Created notes.md and checked it: 5 notes.md / " });
    expect(second.trace).toEqual({
      model: "fake-coder",
      provider: "fake",
      cost: 0.01431,
      tokens: { input: 4000, output: 138, reasoning: 12, cache_read: 200, cache_write: 0 },
      duration_ms: expect.any(Number),
      finish_reason: "stop",
      tool_calls: [
        {
          tool: "write",
          status: "completed",
          title: "notes.md",
          input: { filePath: `${workspace}/notes.md`, content: "# notes.md\n\nWritten by the scripted model for the task:\n\n> Write notes.md\n" },
          output_preview: "Wrote file successfully.",
          duration_ms: durations[1]![0],
        },
        { tool: "bash", status: "completed", title: "wc -l notes.md", input: { command: "wc -l notes.md", description: "Count lines of notes.md" }, output_preview: "5 notes.md\n", duration_ms: durations[1]![1] },
      ],
      reasoning: ["The task asks for notes.md; I will write it, then check it."],
    });

    // Both turns came from the event stream: the log says so, and names no read-back.
    const turnLines = h.stderr.filter((l) => l.includes(`turn of ${session!.id}`));
    expect(turnLines).toHaveLength(2);
    for (const line of turnLines) expect(line).toMatch(/taken from the event stream/);
    structured(await h.call("coding_close", { session_id: opened.session_id }));
  });
});
