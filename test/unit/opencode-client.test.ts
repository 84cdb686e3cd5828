import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { allowEverything } from "../support/scripted-backend.js";
import { createLogger } from "../../src/log.js";
import { OpencodeBackend } from "../../src/opencode/backend.js";
import { OpencodeClient, OpencodeHttpError } from "../../src/opencode/client.js";
import { Redactor } from "../../src/redact.js";

// Unit tests of the HTTP client and backend against a small scripted stand-in for OpenCode's API,
// for the failure modes a real server shows only now and then (5xx, empty bodies, 2.x versions).
// The real server is exercised by the end-to-end tests.

type Handler = (req: http.IncomingMessage, body: string) => { status: number; body?: unknown } | undefined;

const servers: http.Server[] = [];
afterEach(async () => {
  await Promise.all(
    servers.splice(0).map((s) => {
      s.closeAllConnections(); // open event streams included
      return new Promise((r) => s.close(r));
    }),
  );
});

async function fakeOpencode(handler: Handler): Promise<{ url: string; seen: string[] }> {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    if (req.url?.startsWith("/event")) {
      // OpenCode's event stream: connected, then quiet (the task's turn comes from the messages).
      res.writeHead(200, { "content-type": "text/event-stream" });
      res.write(`data: ${JSON.stringify({ type: "server.connected", properties: {} })}\n\n`);
      return;
    }
    let body = "";
    req.on("data", (chunk: Buffer) => (body += chunk.toString("utf8")));
    req.on("end", () => {
      seen.push(`${req.method} ${req.url} ${req.headers.authorization ?? ""}`);
      const answer = handler(req, body) ?? { status: 404 };
      res.writeHead(answer.status, { "content-type": "application/json" });
      res.end(answer.body === undefined ? "" : JSON.stringify(answer.body));
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

const quietLog = createLogger(new Redactor(), "error", () => undefined);
/** What the core gives a task for its requests, answering every one with yes. */

describe("OpencodeClient", () => {
  it("sends ?directory= and Basic auth, and retries a read after a 503", async () => {
    let calls = 0;
    const { url, seen } = await fakeOpencode((req) => {
      if (req.url?.startsWith("/session/ses_1/message")) {
        calls += 1;
        return calls === 1 ? { status: 503, body: { error: "busy" } } : { status: 200, body: [] };
      }
    });
    const client = new OpencodeClient({ baseUrl: url, password: "pw-123456" });
    expect(await client.messages("ses_1", "/work/my repo")).toEqual([]);
    expect(calls).toBe(2);
    expect(seen[0]).toContain("?directory=%2Fwork%2Fmy%20repo");
    expect(seen[0]).toContain("Basic " + Buffer.from("opencode:pw-123456").toString("base64"));
    await client.close();
  });

  it("does not repeat a prompt that got a 500", async () => {
    let prompts = 0;
    const { url } = await fakeOpencode((req) => {
      if (req.method === "POST" && req.url?.startsWith("/session/ses_1/message")) {
        prompts += 1;
        return { status: 500, body: { name: "UnknownError" } };
      }
    });
    const client = new OpencodeClient({ baseUrl: url });
    await expect(client.prompt("ses_1", "/w", { parts: [{ type: "text", text: "x" }] }, { timeoutMs: 5000 })).rejects.toBeInstanceOf(OpencodeHttpError);
    expect(prompts).toBe(1);
    await client.close();
  });
});

describe("OpencodeBackend", () => {
  it("refuses an OpenCode 2.x server with a clear message", async () => {
    const { url } = await fakeOpencode((req) => (req.url === "/global/health" ? { status: 200, body: { healthy: true, version: "2.0.1" } } : undefined));
    const backend = new OpencodeBackend({ url, username: "opencode", pathMap: {}, log: quietLog });
    await expect(backend.start()).rejects.toThrow(/reports version 2\.0\.1; coding-mcp speaks OpenCode's 1\.x server API/);
    await backend.stop();
  });

  it("recovers the turn from the session's messages when the prompt answers an empty 200", async () => {
    const turn = [
      { info: { id: "msg_a", sessionID: "ses_1", role: "user", time: { created: 1 } }, parts: [] },
      {
        info: { id: "msg_b", sessionID: "ses_1", role: "assistant", parentID: "msg_a", finish: "tool-calls", cost: 0.5, time: { created: 2 } },
        parts: [{ type: "tool", tool: "write", state: { status: "completed", input: { filePath: "/w/a" }, output: "ok", time: { start: 10, end: 30 } } }],
      },
      {
        info: { id: "msg_c", sessionID: "ses_1", role: "assistant", parentID: "msg_a", finish: "stop", cost: 0.25, modelID: "m", providerID: "p", time: { created: 3 } },
        parts: [{ type: "text", text: "done" }],
      },
    ];
    let listed = 0;
    const { url } = await fakeOpencode((req) => {
      if (req.url === "/global/health") return { status: 200, body: { healthy: true, version: "1.18.33" } };
      if (req.method === "GET" && req.url?.startsWith("/session/ses_1/message")) {
        listed += 1;
        return { status: 200, body: req.url.includes("limit=1") ? [] : turn };
      }
      if (req.method === "POST" && req.url?.startsWith("/session/ses_1/message")) return { status: 200 };
    });
    const backend = new OpencodeBackend({ url, username: "opencode", pathMap: {}, log: quietLog });
    const result = await backend.runTask({ sessionId: "ses_1", directory: "/w", prompt: "x", timeoutMs: 5000, ...allowEverything });
    expect(listed).toBe(2);
    expect(result.success).toBe(true);
    expect(result.summary).toBe("done");
    expect(result.trace.tool_calls.map((c) => [c.tool, c.duration_ms])).toEqual([["write", 20]]);
    expect(result.trace.cost).toBeCloseTo(0.75);
    await backend.stop();
  });

  it("reports an empty 200 with no finished reply as a failure", async () => {
    const { url } = await fakeOpencode((req) => {
      if (req.url === "/global/health") return { status: 200, body: { healthy: true, version: "1.18.33" } };
      if (req.method === "GET" && req.url?.startsWith("/session/ses_1/message")) {
        return { status: 200, body: req.url.includes("limit=1") ? [] : [{ info: { id: "msg_a", sessionID: "ses_1", role: "user", time: { created: 1 } }, parts: [] }] };
      }
      if (req.method === "POST" && req.url?.startsWith("/session/ses_1/message")) return { status: 200 };
    });
    const backend = new OpencodeBackend({ url, username: "opencode", pathMap: {}, log: quietLog });
    const result = await backend.runTask({ sessionId: "ses_1", directory: "/w", prompt: "x", timeoutMs: 5000, ...allowEverything });
    expect(result.success).toBe(false);
    expect(result.failure).toBe("agent_error");
    expect(result.error).toContain("empty body");
    await backend.stop();
  });
});
