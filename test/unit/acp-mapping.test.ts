import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { PromptResponse, RequestPermissionRequest, SessionNotification } from "@agentclientprotocol/sdk/unstable";
import { describe, expect, it } from "vitest";
import type { TaskEvent } from "../../src/backend.js";
import { AcpTurn, permissionAskOf } from "../../src/acp/mapping.js";

// The ACP event mapping on transcripts recorded from the real agents (test/support/record-acp.mjs):
// `opencode acp` and Claude Code (claude-agent-acp) each running the same scripted task against a
// fake model: a thought, a write, a command that exits 3, a short command, and an answer.

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "fixtures", "acp");

interface Line {
  dir: "in" | "out";
  at: number;
  message: { id?: number | string; method?: string; params?: unknown; result?: unknown };
}

function load(name: string) {
  const lines: Line[] = fs.readFileSync(path.join(FIXTURES, name), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const promptRequest = lines.find((l) => l.dir === "out" && l.message.method === "session/prompt")!;
  const response = lines.find((l) => l.dir === "in" && l.message.id === promptRequest.message.id && l.message.result)!;
  const cwd = (lines.find((l) => l.message.method === "session/new")!.message.params as { cwd: string }).cwd;
  const turnLines = lines.filter((l) => l.at >= promptRequest.at && l.at <= response.at);
  return { lines: turnLines, start: promptRequest.at, end: response.at, response: response.message.result as PromptResponse, cwd };
}

/** Replays a turn through AcpTurn as the backend does: updates in order, each with its arrival time. */
function replay(name: string) {
  const { lines, start, end, response, cwd } = load(name);
  const turn = new AcpTurn();
  const events: TaskEvent[] = [];
  const asks = [];
  for (const line of lines) {
    if (line.dir !== "in") continue;
    if (line.message.method === "session/update") events.push(...turn.update((line.message.params as SessionNotification).update, line.at));
    if (line.message.method === "session/request_permission") {
      // As the backend does: the call the request is about counts as started before the answer is reported.
      const request = line.message.params as RequestPermissionRequest;
      events.push(...turn.permissionAsked(request.toolCall, line.at));
      const ask = permissionAskOf(request, cwd);
      asks.push(ask);
      events.push({ type: "permission", decision: { ...ask, reply: "once" } });
    }
  }
  return { events, asks, outcome: turn.finish(response, end - start), cwd, lines, turn };
}

const progress = (events: TaskEvent[]) => events.map((e) => (e.type === "tool" ? `${e.phase} ${e.call.tool} ${e.call.status}` : e.type));

describe("opencode acp transcript", () => {
  const { events, asks, outcome, cwd, lines } = replay("opencode-mixed.jsonl");

  it("reports each tool call once as it starts and once as it ends, with its input known at the start", () => {
    // The second command's permission request comes before OpenCode says it runs: still reported after its start.
    expect(progress(events)).toEqual([
      "started write running",
      "ended write completed",
      "started bash running",
      "permission",
      "ended bash completed",
      "started bash running",
      "permission",
      "ended bash completed",
    ]);
    const starts = events.filter((e) => e.type === "tool" && e.phase === "started");
    expect(starts.map((e) => e.type === "tool" && e.call.input)).toEqual([
      { filePath: `${cwd}/hello.py`, content: "print('hello')\n" },
      { command: "python3 hello.py && exit 3", description: "Run it", cwd },
      // Started when its permission was asked: the input known then.
      { command: "sleep 0.3 && echo slept", cwd },
    ]);
  });

  it("builds the trace: tools, outputs, real durations, thought, summary and the agent's tokens", () => {
    const calls = outcome.trace.tool_calls;
    expect(calls.map((c) => [c.tool, c.status, c.title, c.output_preview])).toEqual([
      ["write", "completed", "hello.py", "Wrote file successfully."],
      ["bash", "completed", "python3 hello.py && exit 3", "hello\n"],
      ["bash", "completed", "sleep 0.3 && echo slept", "slept\n"],
    ]);
    // Durations are the time between the start and end updates as they arrived.
    const sleep = calls[2]!;
    const asked = lines.find((l) => l.message.method === "session/request_permission" && JSON.stringify(l.message).includes('"call_4_0"'))!.at;
    const completed = lines.find((l) => JSON.stringify(l.message).includes('"toolCallId":"call_4_0","status":"completed"'))!.at;
    expect(sleep.duration_ms).toBe(completed - asked);
    expect(sleep.duration_ms).toBeGreaterThanOrEqual(300);
    expect(outcome.summary).toBe("Wrote hello.py; running it printed hello and exited 3.");
    expect(outcome.trace.reasoning).toEqual(["Plan: write then run."]);
    expect(outcome.trace.finish_reason).toBe("end_turn");
    // OpenCode's usage covers its last model reply only; it sends no cost without a context limit.
    expect(outcome.trace.tokens).toEqual({ input: 100, output: 10, reasoning: 0, cache_read: 0, cache_write: 0 });
    expect(outcome.trace.unknown).toEqual(["cost"]);
  });

  it("maps its permission requests onto the policy's kinds", () => {
    expect(asks).toEqual([
      { permission: "bash", patterns: ["python3 hello.py && exit 3"] },
      { permission: "bash", patterns: ["sleep 0.3 && echo slept"] },
    ]);
  });
});

describe("Claude Code transcript", () => {
  const { events, asks, outcome, cwd, turn } = replay("claude-mixed.jsonl");

  it("reports calls that never say in_progress as started once their input is known, and failed ones as errors", () => {
    expect(progress(events)).toEqual([
      "started write running",
      "permission",
      "ended write completed",
      "started bash running",
      "permission",
      "ended bash error",
      "started bash running",
      "ended bash completed",
    ]);
    const [write, failing, sleep] = outcome.trace.tool_calls;
    expect(write).toMatchObject({ tool: "write", title: "Write hello.py", input: { file_path: `${cwd}/hello.py` } });
    expect(failing).toMatchObject({ tool: "bash", status: "error", input: { command: "python3 hello.py && exit 3" } });
    expect(failing!.error).toContain("Exit code 3");
    expect(sleep!.output_preview).toContain("slept");
    for (const call of turn.toolCalls()) expect(call.ended_at! - call.started_at!).toBe(call.duration_ms);
  });

  it("takes the summary, the thought, the whole turn's tokens, the model and the cost", () => {
    expect(outcome.summary).toBe("Wrote hello.py; running it printed hello and exited 3.");
    expect(outcome.trace.reasoning).toEqual(["Plan: write then run."]);
    expect(outcome.trace.tokens).toEqual({ input: 1100, output: 70, reasoning: 0, cache_read: 100, cache_write: 0 });
    expect(outcome.trace.model).toBe("claude-opus-5-5");
    expect(outcome.trace.unknown).toBeUndefined();
    expect(outcome.trace.cost).toBeCloseTo(0.00608, 6);
  });

  it("maps edit and execute permission requests, with paths relative to the workspace", () => {
    expect(asks).toEqual([
      { permission: "edit", patterns: ["hello.py"] },
      { permission: "bash", patterns: ["python3 hello.py && exit 3"] },
    ]);
  });

  it("keeps plan updates as reasoning", () => {
    const plan = replay("claude-plan.jsonl").outcome;
    expect(plan.trace.reasoning.at(-1)).toBe("Plan:\n[x] Write hello.py\n[~] Running");
    expect(plan.summary).toBe("Planned.");
  });
});

describe("permission requests", () => {
  const ask = (toolCall: RequestPermissionRequest["toolCall"]) => permissionAskOf({ toolCall }, "/work/repo");

  it("turns any path outside the workspace into an external_directory request", () => {
    expect(ask({ toolCallId: "1", kind: "edit", locations: [{ path: "/etc/passwd" }] })).toEqual({ permission: "external_directory", patterns: ["/etc/passwd"] });
    expect(ask({ toolCallId: "2", kind: "read", rawInput: { file_path: "../other/secret.txt" } })).toEqual({ permission: "external_directory", patterns: ["/work/other/secret.txt"] });
    expect(ask({ toolCallId: "3", kind: "edit", locations: [{ path: "/work/repo/src/a.ts" }] })).toEqual({ permission: "edit", patterns: ["src/a.ts"] });
    // A file whose name starts with two dots is inside; a sibling whose name starts like the workspace's is not.
    expect(ask({ toolCallId: "4", kind: "edit", locations: [{ path: "/work/repo/..foo" }] })).toEqual({ permission: "edit", patterns: ["..foo"] });
    expect(ask({ toolCallId: "5", kind: "edit", rawInput: { file_path: "..bar/x.ts" } })).toEqual({ permission: "edit", patterns: ["..bar/x.ts"] });
    expect(ask({ toolCallId: "6", kind: "edit", locations: [{ path: "/work/repo2/a.ts" }] })).toEqual({ permission: "external_directory", patterns: ["/work/repo2/a.ts"] });
  });

  it("maps every ACP kind, and names an unclassified tool by the agent's own name", () => {
    expect(ask({ toolCallId: "1", kind: "fetch", rawInput: { url: "https://example.com" } }).permission).toBe("webfetch");
    expect(ask({ toolCallId: "2", kind: "search" }).permission).toBe("grep");
    expect(ask({ toolCallId: "3", kind: "delete", locations: [{ path: "/work/repo/x" }] }).permission).toBe("edit");
    expect(ask({ toolCallId: "4", kind: "other", _meta: { claudeCode: { toolName: "TodoWrite" } } }).permission).toBe("todowrite");
    expect(ask({ toolCallId: "5", kind: "switch_mode" }).permission).toBe("switch_mode");
  });

  it("takes the script out of a command that wraps it in a shell (Codex), so bash patterns match it", () => {
    const codex = { toolCallId: "c", kind: "execute" as const, title: "python3 fizzbuzz.py | head -n 15", rawInput: { command: ["/bin/bash", "-lc", "python3 fizzbuzz.py | head -n 15"], cwd: "/work/repo" } };
    expect(ask(codex)).toEqual({ permission: "bash", patterns: ["python3 fizzbuzz.py | head -n 15"] });
    expect(ask({ ...codex, rawInput: { command: ["git", "status", "--short"] } })).toEqual({ permission: "bash", patterns: ["git status --short"] });
    const turn = new AcpTurn();
    const [started] = turn.update({ sessionUpdate: "tool_call", ...codex, status: "in_progress" }, 1000);
    expect(started?.type === "tool" && started.call.input.command).toBe("python3 fizzbuzz.py | head -n 15");
  });
});

describe("turn bookkeeping", () => {
  it("reports a call as started when the agent asks permission for it, even without its input (Gemini CLI)", () => {
    const turn = new AcpTurn();
    const toolCall = { toolCallId: "g", status: "pending" as const, title: "python3 fizzbuzz.py", kind: "execute" as const, locations: [] };
    expect(turn.permissionAsked(toolCall, 1000).map((e) => e.type === "tool" && `${e.phase} ${e.call.tool}: ${e.call.title}`)).toEqual(["started bash: python3 fizzbuzz.py"]);
    expect(turn.update({ sessionUpdate: "tool_call_update", toolCallId: "g", status: "completed", content: [] }, 1400).map((e) => e.type === "tool" && `${e.phase} ${e.call.duration_ms}`)).toEqual(["ended 400"]);
  });

  it("does not take what a permission request shows the person for the call's output (Codex's amendment text)", () => {
    const turn = new AcpTurn();
    turn.update({ sessionUpdate: "tool_call", toolCallId: "c", title: "cat a.txt", kind: "execute", status: "in_progress", rawInput: { command: "cat a.txt" } }, 1000);
    const asked = { toolCallId: "c", status: "pending" as const, content: [{ type: "content" as const, content: { type: "text" as const, text: "Proposed Amendment: /bin/bash -lc cat a.txt" } }] };
    turn.permissionAsked(asked, 1100);
    const [ended] = turn.update({ sessionUpdate: "tool_call_update", toolCallId: "c", status: "completed", rawOutput: { stdout: "alpha\n" } }, 1400);
    expect(ended?.type === "tool" && ended.call.output_preview).toBe("alpha\n");
  });

  it("reports a call first seen as ended once as started and once as ended, and lists unfinished commands", () => {
    const turn = new AcpTurn({ costBefore: 0.5 });
    const ev1 = turn.update({ sessionUpdate: "tool_call", toolCallId: "a", title: "bash", kind: "execute", status: "in_progress", rawInput: { command: "sleep 9" } }, 1000);
    expect(ev1.map((e) => e.type === "tool" && e.phase)).toEqual(["started"]);
    expect(turn.unfinished("execute").map((c) => c.call_id)).toEqual(["a"]);
    const ev2 = turn.update({ sessionUpdate: "tool_call_update", toolCallId: "b", status: "completed", title: "read", kind: "read", rawInput: { filePath: "x" } }, 1500);
    expect(ev2.map((e) => e.type === "tool" && e.phase)).toEqual(["started", "ended"]);
    turn.update({ sessionUpdate: "usage_update", used: 1, size: 10, cost: { amount: 0.75, currency: "USD" } }, 1600);
    turn.update({ sessionUpdate: "tool_call_update", toolCallId: "a", content: [{ type: "content", content: { type: "text", text: "half" } }] }, 1700);
    const out = turn.finish({ stopReason: "cancelled" }, 700, 2000);
    // The session's cost is cumulative: the turn's share is the difference.
    expect(out.trace.cost).toBe(0.25);
    expect(out.trace.unknown).toEqual(["tokens"]);
    expect(out.trace.finish_reason).toBe("cancelled");
    // The command whose end the agent never reported ends with the turn, says so, and keeps what it printed.
    const unreported = {
      tool: "bash",
      status: "unreported",
      input: { command: "sleep 9" },
      output_preview: "half",
      duration_ms: 1000,
      call_id: "a",
      started_at: 1000,
      ended_at: 2000,
      note: "the agent's turn ended without it reporting how this call ended; the output is what it sent until then",
    };
    expect(out.trace.tool_calls).toEqual([unreported, expect.objectContaining({ call_id: "b", status: "completed" })]);
    expect(out.ended).toEqual([{ type: "tool", phase: "ended", call: unreported }]);
    expect(turn.unfinished()).toEqual([]);
    // A late end after the turn is over reports nothing more.
    expect(turn.update({ sessionUpdate: "tool_call_update", toolCallId: "a", status: "completed" }, 2100)).toEqual([]);
  });
});

describe("Codex transcript (approval_policy untrusted)", () => {
  const { events, asks, outcome } = replay("codex-mixed.jsonl");

  it("reports each call once as it starts and once as it ends, failed commands as errors, commands as their script", () => {
    expect(progress(events)).toEqual([
      "started edit running",
      "permission",
      "ended edit completed",
      "started bash running",
      "permission",
      "ended bash error",
      "started bash running",
      "permission",
      "ended bash completed",
    ]);
    const [edit, failing, sleep] = outcome.trace.tool_calls;
    expect(edit).toMatchObject({ tool: "edit", status: "completed" });
    expect(failing).toMatchObject({ tool: "bash", status: "error", input: { command: "python3 hello.py && exit 3" } });
    expect(sleep!.output_preview).toContain("slept");
    expect(sleep!.duration_ms).toBeGreaterThanOrEqual(300);
  });

  it("takes the summary and the thought; no tokens and no cost, so both are unknown", () => {
    expect(outcome.summary).toBe("Wrote hello.py; running it printed hello and exited 3.");
    expect(outcome.trace.reasoning).toEqual(["Plan: write then run."]);
    expect(outcome.trace.unknown).toEqual(["tokens", "cost"]);
  });

  it("maps its permission requests: the file relative to the workspace, the command without the shell around it", () => {
    expect(asks).toEqual([
      { permission: "edit", patterns: ["hello.py"] },
      { permission: "bash", patterns: ["python3 hello.py && exit 3"] },
      { permission: "bash", patterns: ["sleep 0.3 && echo slept"] },
    ]);
  });
});

describe("Gemini CLI transcript (mode default)", () => {
  const { events, asks, outcome } = replay("gemini-mixed.jsonl");

  it("reports a call as started when it is asked for (Gemini CLI sends nothing before), and as ended once", () => {
    expect(progress(events)).toEqual([
      "started edit running",
      "permission",
      "ended edit completed",
      "started bash running",
      "permission",
      // Gemini CLI reports a command that exits non-zero as completed (the exit code is in its output to the model).
      "ended bash completed",
      "started bash running",
      "permission",
      "ended bash completed",
    ]);
    expect(outcome.trace.tool_calls.map((c) => c.title)).toEqual(["Writing to hello.py", "python3 hello.py && exit 3", "sleep 0.3 && echo slept"]);
  });

  it("takes the summary, the thought, and the turn's tokens from _meta.quota (it sends no usage); no cost", () => {
    expect(outcome.summary).toBe("Wrote hello.py; running it printed hello and exited 3.");
    expect(outcome.trace.reasoning.join("\n")).toContain("Plan: write then run.");
    // The fake's four replies of the turn: 900 + 3 × 100 in, 40 + 3 × 10 out.
    expect(outcome.trace.tokens).toEqual({ input: 1200, output: 70, reasoning: 0, cache_read: 0, cache_write: 0 });
    expect(outcome.trace.unknown).toEqual(["cost"]);
  });

  it("maps its permission requests from the locations and the title (it sends no input)", () => {
    expect(asks).toEqual([
      { permission: "edit", patterns: ["hello.py"] },
      { permission: "bash", patterns: ["python3 hello.py && exit 3"] },
      { permission: "bash", patterns: ["sleep 0.3 && echo slept"] },
    ]);
  });
});
