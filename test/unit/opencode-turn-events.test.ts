import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it, vi } from "vitest";
import { allowEverything } from "../support/scripted-backend.js";
import { createLogger } from "../../src/log.js";
import type { TaskEvent } from "../../src/backend.js";
import { OpencodeBackend } from "../../src/opencode/backend.js";
import type { OpencodeMessage, OpencodePart } from "../../src/opencode/client.js";
import type { OpencodeEvent } from "../../src/opencode/events.js";
import { summarizeTurn, turnMessages } from "../../src/opencode/trace.js";
import { TurnRecorder } from "../../src/opencode/turn-recorder.js";
import { Redactor } from "../../src/redact.js";

// The trace of an OpenCode task is built from the events the task follows. These tests replay event
// sequences in the order OpenCode 1.18.33 sends them (recorded against `opencode serve`: a message is
// announced, its parts go through their states, then the message gets its finish and, last, its
// completion time) and check the turn equals what a read of the session's messages gives; and that a
// stream with a gap, or a turn whose last events never come, falls back to that read.

const SES = "ses_1";

function part(messageID: string, id: string, fields: Partial<OpencodePart>): OpencodePart {
  return { id, sessionID: SES, messageID, type: "text", ...fields };
}

/** The session as OpenCode stores it after two turns: what `GET /session/ses_1/message` answers. */
function storedSession(): OpencodeMessage[] {
  const assistant = (id: string, parentID: string, finish: string, created: number, parts: OpencodePart[], cost: number): OpencodeMessage => ({
    info: {
      id, sessionID: SES, role: "assistant", parentID, modelID: "fake-coder", providerID: "fake", cost, finish,
      tokens: { input: 1200, output: 80, reasoning: 12, cache: { read: 200, write: 0 } }, time: { created, completed: created + 50 },
    },
    parts,
  });
  const tool = (messageID: string, id: string, name: string, input: Record<string, unknown>, end: Record<string, unknown>, start: number) =>
    part(messageID, id, { type: "tool", tool: name, callID: `call_${id}`, state: { input, time: { start, end: start + 25 }, ...end } as OpencodePart["state"] });
  return [
    { info: { id: "msg_01", sessionID: SES, role: "user", time: { created: 1 } }, parts: [part("msg_01", "prt_01", { text: "earlier task" })] },
    assistant("msg_02", "msg_01", "stop", 2, [part("msg_02", "prt_02", { text: "Earlier answer" })], 0.1),
    { info: { id: "msg_10", sessionID: SES, role: "user", time: { created: 10 } }, parts: [part("msg_10", "prt_10", { text: "Write hello.py" })] },
    assistant("msg_11", "msg_10", "tool-calls", 11, [
      part("msg_11", "prt_11a", { type: "step-start" }),
      part("msg_11", "prt_11b", { type: "reasoning", text: "I will write hello.py, then run it." }),
      tool("msg_11", "prt_11c", "write", { filePath: "/w/hello.py", content: "print('hi')\n" }, { status: "completed", output: "Wrote file successfully.", title: "hello.py" }, 100),
      part("msg_11", "prt_11d", { type: "step-finish", reason: "tool-calls" }),
      part("msg_11", "prt_11e", { type: "patch", files: ["/w/hello.py"] }),
    ], 0.01),
    assistant("msg_12", "msg_10", "tool-calls", 12, [
      part("msg_12", "prt_12a", { type: "step-start" }),
      tool("msg_12", "prt_12b", "bash", { command: "python3 hello.py", description: "Run it" }, { status: "completed", output: "hi\n", title: "Run it" }, 200),
      tool("msg_12", "prt_12c", "read", { filePath: "/w/missing.txt" }, { status: "error", error: "File not found: /w/missing.txt" }, 300),
      part("msg_12", "prt_12d", { type: "step-finish", reason: "tool-calls" }),
    ], 0.02),
    assistant("msg_13", "msg_10", "stop", 13, [
      part("msg_13", "prt_13a", { type: "step-start" }),
      part("msg_13", "prt_13b", { type: "text", text: "Created hello.py and ran it: hi" }),
      part("msg_13", "prt_13c", { type: "step-finish", reason: "stop" }),
    ], 0.03),
  ];
}

/** The trace and summary of the stored session's second turn (msg_10), as coding-mcp must report them, written out. */
function expectedTurn(durationMs: number) {
  return {
    summary: "Created hello.py and ran it: hi",
    trace: {
      model: "fake-coder",
      provider: "fake",
      cost: 0.06,
      tokens: { input: 3600, output: 240, reasoning: 36, cache_read: 600, cache_write: 0 },
      duration_ms: durationMs,
      finish_reason: "stop",
      tool_calls: [
        { tool: "write", status: "completed", title: "hello.py", input: { filePath: "/w/hello.py", content: "print('hi')\n" }, output_preview: "Wrote file successfully.", duration_ms: 25, call_id: "call_prt_11c", started_at: 100, ended_at: 125 },
        { tool: "bash", status: "completed", title: "Run it", input: { command: "python3 hello.py", description: "Run it" }, output_preview: "hi\n", duration_ms: 25, call_id: "call_prt_12b", started_at: 200, ended_at: 225 },
        { tool: "read", status: "error", input: { filePath: "/w/missing.txt" }, output_preview: "", duration_ms: 25, error: "File not found: /w/missing.txt", call_id: "call_prt_12c", started_at: 300, ended_at: 325 },
      ],
      reasoning: ["I will write hello.py, then run it."],
    },
  };
}

const event = (type: string, properties: Record<string, unknown>): OpencodeEvent => ({ type, properties });

/**
 * The events OpenCode sends for the given messages, in its order: the message appears, each part goes
 * through its states (tools pending and running, text streamed as deltas), the message gets its
 * finish, then its completion time. Noise of other sessions and event types is mixed in.
 */
function eventsOf(messages: OpencodeMessage[]): OpencodeEvent[] {
  const out: OpencodeEvent[] = [event("session.status", { sessionID: SES, status: { type: "busy" } })];
  for (const m of messages) {
    const { finish, ...rest } = m.info;
    const open = { ...rest, time: { created: m.info.time.created } };
    out.push(event("message.updated", { info: m.info.role === "user" ? m.info : open }));
    for (const p of m.parts) {
      if (p.type === "tool") {
        out.push(event("message.part.updated", { part: { ...p, state: { status: "pending", input: {}, raw: "" } } }));
        out.push(event("message.part.updated", { part: { ...p, state: { status: "running", input: p.state!.input, time: { start: p.state!.time!.start } } } }));
        out.push(event("message.part.updated", { part: { ...p, sessionID: "ses_other" } }));
      } else if (p.type === "text" || p.type === "reasoning") {
        out.push(event("message.part.updated", { part: { ...p, text: "" } }));
        out.push(event("message.part.delta", { sessionID: SES, messageID: m.info.id, partID: p.id, field: "text", delta: p.text }));
      }
      out.push(event("message.part.updated", { part: p }));
    }
    if (m.info.role === "assistant") {
      out.push(event("message.updated", { info: { ...open, finish } }));
      out.push(event("file.edited", { file: "/w/hello.py" }));
      out.push(event("message.updated", { info: m.info }));
    }
  }
  out.push(event("session.status", { sessionID: SES, status: { type: "idle" } }), event("session.idle", { sessionID: SES }));
  return out;
}

const sizeOf = (e: OpencodeEvent) => JSON.stringify(e).length;

describe("TurnRecorder", () => {
  const stored = storedSession();
  const turn = stored.slice(2);
  const answer = stored.at(-1)!;

  function recording(after = "msg_02"): TurnRecorder {
    const recorder = new TurnRecorder(SES);
    recorder.connected();
    recorder.start(after);
    return recorder;
  }

  /** Index of the event that announces the answer's message: everything before it belongs to earlier steps. */
  const answerBegins = (events: OpencodeEvent[]) => events.findIndex((e) => e.type === "message.updated" && (e.properties.info as { id: string }).id === answer.info.id);

  it("rebuilds the turn exactly as a read of the messages gives it, though the answer's last events come after the answer", async () => {
    const recorder = recording();
    const events = eventsOf(turn);
    // The answer's message has begun in the stream, but its finish and completion trail the answer.
    const lastInfo = events.findLastIndex((e) => e.type === "message.updated");
    for (const e of events.slice(0, lastInfo - 2)) recorder.event(e, sizeOf(e));
    const result = await recorder.until(answer, 0);
    expect(result).toEqual({ messages: turn });
    if (!("messages" in result)) return;
    expect(summarizeTurn(turnMessages(result.messages, "msg_10"), 5)).toEqual(expectedTurn(5));
  });

  it("waits for the stream when the answer comes before its message's first event", async () => {
    const recorder = recording();
    const events = eventsOf(turn);
    for (const e of events.slice(0, answerBegins(events))) recorder.event(e, sizeOf(e));
    let settled = false;
    // Only an event or the 2 s bound can settle it: on the clock the test moves, it still waits just before the bound.
    vi.useFakeTimers();
    try {
      const outcome = recorder.until(answer, 2_000).finally(() => (settled = true));
      await vi.advanceTimersByTimeAsync(1_999);
      expect(settled).toBe(false); // the step before the answer may still have events on the way
      for (const e of events.slice(answerBegins(events))) recorder.event(e, sizeOf(e));
      expect(await outcome).toEqual({ messages: turn });
    } finally {
      vi.useRealTimers();
    }
  });

  it("answers at once when the stream already showed the whole turn, and ignores older turns and other sessions", async () => {
    const recorder = recording();
    // Events of the earlier turn (before the checkpoint) and of another session come through too.
    for (const e of [...eventsOf(stored.slice(0, 2)), ...eventsOf(turn)]) recorder.event(e, sizeOf(e));
    const other = event("message.updated", { info: { ...answer.info, id: "msg_99", sessionID: "ses_other" } });
    recorder.event(other, sizeOf(other));
    expect(await recorder.until(answer, 0)).toEqual({ messages: turn });
  });

  it("drops a part or a message that OpenCode removes", async () => {
    const recorder = recording();
    for (const e of eventsOf(turn)) recorder.event(e, sizeOf(e));
    recorder.event(event("message.part.removed", { sessionID: SES, messageID: "msg_12", partID: "prt_12c" }), 10);
    recorder.event(event("message.removed", { sessionID: SES, messageID: "msg_11" }), 10);
    const result = await recorder.until(answer, 0);
    expect("messages" in result && result.messages.map((m) => [m.info.id, m.parts.map((p) => p.id)])).toEqual([
      ["msg_10", ["prt_10"]],
      ["msg_12", ["prt_12a", "prt_12b", "prt_12d"]],
      ["msg_13", ["prt_13a", "prt_13b", "prt_13c"]],
    ]);
  });

  it("gives up when the stream dropped or reconnected during the turn, or was down when the prompt went out", async () => {
    const dropped = recording();
    const events = eventsOf(turn);
    for (const e of events.slice(0, 5)) dropped.event(e, sizeOf(e));
    const waiting = dropped.until(answer, 5_000);
    dropped.dropped();
    expect(await waiting).toEqual({ lost: "the event stream dropped during the turn" });
    // Even if every later event arrives after the reconnection, the gap may have held some.
    dropped.connected();
    for (const e of events) dropped.event(e, sizeOf(e));
    expect(await dropped.until(answer, 0)).toEqual({ lost: "the event stream dropped during the turn" });

    const reconnected = recording();
    reconnected.connected();
    expect(await reconnected.until(answer, 0)).toEqual({ lost: "the event stream reconnected during the turn" });

    const never = new TurnRecorder(SES);
    never.start(undefined);
    for (const e of events) never.event(e, sizeOf(e));
    expect(await never.until(answer, 0)).toEqual({ lost: "the event stream was not connected when the prompt was sent" });
  });

  it("gives up when the answer's message does not show up in time", async () => {
    const late = recording();
    const events = eventsOf(turn);
    for (const e of events.slice(0, answerBegins(events))) late.event(e, sizeOf(e));
    const t0 = Date.now();
    expect(await late.until(answer, 100)).toEqual({ lost: "the event stream did not show the answer's message within 100 ms of the answer" });
    expect(Date.now() - t0).toBeLessThan(1_000);
  });

  it("holds a bounded amount: past its limit it lets go of everything and gives up", async () => {
    const events = eventsOf(turn);
    const total = events.reduce((n, e) => n + sizeOf(e), 0);
    const small = new TurnRecorder(SES, Math.floor(total / 3));
    small.connected();
    small.start("msg_02");
    for (const e of events) small.event(e, sizeOf(e));
    expect(await small.until(answer, 0)).toEqual({ lost: `the turn's events exceed ${Math.ceil(total / 3 / 1024)} KB` });
    // Counted by the latest version of each message and part, not by every event: a long turn of small updates fits.
    const roomy = new TurnRecorder(SES, total);
    roomy.connected();
    roomy.start("msg_02");
    for (let i = 0; i < 50; i++) for (const e of events) roomy.event(e, sizeOf(e));
    expect(await roomy.until(answer, 0)).toEqual({ messages: turn });
    roomy.clear();
    expect(await roomy.until(answer, 0)).toHaveProperty("lost");
  });
});

// ---------------------------------------------------------------------------------------------------
// The backend against a scripted OpenCode whose event stream plays the turn while the prompt runs.

const servers: http.Server[] = [];
afterEach(async () => {
  await Promise.all(
    servers.splice(0).map((s) => {
      s.closeAllConnections();
      return new Promise((r) => s.close(r));
    }),
  );
});

interface Script {
  /** What the event stream does while the prompt runs: the "whole" turn, "drop" half-way, or nothing of the answer's message ("no-tail"). */
  stream: "whole" | "drop" | "no-tail";
  /** The bash call's end is never reported: its part stays "running" in the stored turn. */
  bashNeverEnds?: boolean;
}

async function scriptedOpencode(script: Script) {
  const stored = storedSession();
  if (script.bashNeverEnds) stored[4]!.parts[1]!.state = { status: "running", input: { command: "python3 hello.py", description: "Run it" }, output: "h", time: { start: 200 } };
  const counts = { fullReads: 0, fullReadsAfterAnswer: 0, eventConnections: 0 };
  let answered = false;
  const streams = new Set<http.ServerResponse>();
  const send = (e: OpencodeEvent) => {
    for (const res of streams) res.write(`data: ${JSON.stringify(e)}\n\n`);
  };
  const server = http.createServer((req, res) => {
    const url = req.url ?? "";
    if (url.startsWith("/event")) {
      counts.eventConnections += 1;
      // After a drop the stream stays away: no catch-up read blurs what the test counts.
      if (counts.eventConnections > 1) return void res.writeHead(503).end();
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(`data: ${JSON.stringify({ type: "server.connected", properties: {} })}\n\n`);
      streams.add(res);
      res.on("close", () => streams.delete(res));
      return;
    }
    req.resume();
    req.on("end", () => {
      const json = (status: number, body?: unknown) => {
        res.writeHead(status, { "content-type": "application/json" });
        res.end(body === undefined ? "" : JSON.stringify(body));
      };
      if (url === "/global/health") return json(200, { healthy: true, version: "1.18.33" });
      if (req.method === "GET" && url.startsWith(`/session/${SES}/message`)) {
        if (url.includes("limit=1")) return json(200, stored.slice(1, 2));
        counts.fullReads += 1;
        if (answered) counts.fullReadsAfterAnswer += 1;
        return json(200, stored);
      }
      if (req.method === "POST" && url.startsWith(`/session/${SES}/message`)) {
        const events = eventsOf(stored.slice(2));
        // The stream shows the answer's message begin, then the answer goes out before the rest; or, with "no-tail", before any of it.
        const begins = events.findIndex((e) => e.type === "message.updated" && (e.properties.info as { id: string }).id === stored.at(-1)!.info.id);
        const tail = script.stream === "no-tail" ? begins : begins + 1;
        if (script.stream === "drop") {
          events.slice(0, 8).forEach(send);
          for (const s of streams) s.destroy();
        } else {
          events.slice(0, tail).forEach(send);
        }
        // The answer goes out before the turn's last events, as OpenCode's often does.
        answered = true;
        json(200, stored.at(-1));
        if (script.stream === "whole") setTimeout(() => events.slice(tail).forEach(send), 100);
        return;
      }
      if (url.startsWith("/permission") || url.startsWith("/question")) return json(200, []);
      json(404);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, counts, stored };
}

function logged() {
  const lines: string[] = [];
  return { lines, log: createLogger(new Redactor(), "debug", (line) => lines.push(line)) };
}

async function runOnce(script: Script) {
  const opencode = await scriptedOpencode(script);
  const { lines, log } = logged();
  const backend = new OpencodeBackend({ url: opencode.url, username: "opencode", pathMap: {}, log });
  const events: TaskEvent[] = [];
  try {
    const result = await backend.runTask({ sessionId: SES, directory: "/w", prompt: "Write hello.py", timeoutMs: 10_000, onEvent: (e) => events.push(e), ...allowEverything });
    return { result, expected: expectedTurn(result.trace.duration_ms), counts: opencode.counts, lines, events };
  } finally {
    await backend.stop();
  }
}

describe("OpencodeBackend's trace", () => {
  it("comes from the events, with those that arrive after the prompt's answer, and no read of the messages", async () => {
    const { result, expected, counts, lines, events } = await runOnce({ stream: "whole" });
    expect(counts.fullReads).toBe(0);
    expect(result).toEqual({ success: true, summary: expected.summary, trace: expected.trace });
    expect(result.trace.tool_calls.map((c) => [c.tool, c.status])).toEqual([["write", "completed"], ["bash", "completed"], ["read", "error"]]);
    // Each call reported live once as it started and once as it ended.
    const progress = events.filter((e) => e.type === "tool").map((e) => (e.type === "tool" ? `${e.phase} ${e.call.tool}` : ""));
    expect(progress).toEqual(["started write", "ended write", "started bash", "ended bash", "started read", "ended read"]);
    expect(lines.some((l) => /turn of ses_1 taken from the event stream/.test(l))).toBe(true);
  });

  it("ends a call whose end OpenCode never reported with the turn, as unreported, keeping its output", async () => {
    const { result, events } = await runOnce({ stream: "whole", bashNeverEnds: true });
    const bash = {
      tool: "bash",
      status: "unreported",
      input: { command: "python3 hello.py", description: "Run it" },
      output_preview: "h",
      duration_ms: expect.any(Number),
      call_id: "call_prt_12b",
      started_at: 200,
      ended_at: expect.any(Number),
      note: "the agent's turn ended without it reporting how this call ended; the output is what it sent until then",
    };
    expect(result.trace.tool_calls.map((c) => c.status)).toEqual(["completed", "unreported", "error"]);
    expect(result.trace.tool_calls[1]).toEqual(bash);
    // Its end is reported live too, once, before the result.
    const progress = events.filter((e) => e.type === "tool" || e.type === "finished").map((e) => (e.type === "tool" ? `${e.phase} ${e.call.tool} ${e.call.status}` : e.type));
    expect(progress).toEqual(["started write running", "ended write completed", "started bash running", "started read running", "ended read error", "ended bash unreported", "finished"]);
  });

  it("says a turn picked up after a restart ran out of time as every timeout does", async () => {
    const opencode = await scriptedOpencode({ stream: "whole" });
    const backend = new OpencodeBackend({ url: opencode.url, username: "opencode", pathMap: {}, log: logged().log });
    try {
      // No turn after the checkpoint shows up finished: the task runs until its time is up.
      const result = await backend.resumeTask({ sessionId: SES, directory: "/w", checkpoint: "msg_13", timeoutMs: 300, ...allowEverything });
      expect(result).toMatchObject({
        success: false,
        failure: "timeout",
        error: "the task did not finish within 300 ms and was aborted; the trace shows what the agent did until then. Give a larger timeout_sec (or raise limits.task_timeout_min) for longer tasks",
      });
    } finally {
      await backend.stop();
    }
  });

  it("reads the messages back when the stream dropped during the turn", async () => {
    const { result, expected, counts, lines } = await runOnce({ stream: "drop" });
    expect(counts.fullReadsAfterAnswer).toBe(1);
    expect(result).toEqual({ success: true, summary: expected.summary, trace: expected.trace });
    expect(lines.some((l) => /turn of ses_1 read back \(the event stream dropped during the turn\)/.test(l))).toBe(true);
  });

  it("reads the messages back when the stream does not show the answer's message in time", async () => {
    const { result, expected, counts, lines } = await runOnce({ stream: "no-tail" });
    expect(counts.fullReads).toBe(1);
    expect(result).toEqual({ success: true, summary: expected.summary, trace: expected.trace });
    expect(lines.some((l) => /turn of ses_1 read back \(the event stream did not show the answer's message within 1500 ms/.test(l))).toBe(true);
  });
});
