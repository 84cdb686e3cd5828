import { spawn } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { type StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { isLoopbackHost } from "../src/net.js";
import { alive, CLI, startHttpHarness, structured, textOf, waitForExit, type HttpHarness } from "./support/harness.js";

// coding-mcp over HTTP: the built server as `--transport http` on a loopback port, driven by the
// SDK's StreamableHTTPClientTransport and SSEClientTransport, and by raw HTTP for the security checks.

const INIT = {
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "raw", version: "1" } },
};
const MCP_HEADERS = { "content-type": "application/json", accept: "application/json, text/event-stream" };

async function call(client: Client, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args }, undefined, { timeout: 120_000 })) as CallToolResult;
}

/** A raw request through node:http, which (unlike fetch) lets a test set Host. */
function rawRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string | Buffer | Buffer[] },
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: options.method ?? "GET", headers: options.headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.setTimeout(10_000, () => req.destroy(new Error("raw request timed out")));
    if (Array.isArray(options.body)) {
      // Chunked, with no Content-Length: the server can only count while it reads.
      for (const part of options.body) req.write(part);
      req.end();
    } else {
      req.end(options.body);
    }
  });
}

/** The message of a JSON-RPC error body. */
async function errorMessageOf(res: Response): Promise<string> {
  const body = (await res.json()) as { error?: { message?: string } };
  return body.error?.message ?? "";
}

async function waitUntil(done: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Open a new managed workspace, run one task, close: the whole flow on one client. */
async function openCodeClose(client: Client, file: string) {
  const opened = structured(await call(client, "coding_open", { title: `flow ${file}` }));
  expect(opened.session_id).toMatch(/^cs_/);
  const result = structured(await call(client, "code", { session_id: opened.session_id, task: `Create ${file} with a short plan` }));
  expect(result.success).toBe(true);
  expect(result.files_changed).toEqual([expect.objectContaining({ path: file, status: "added" })]);
  expect(fs.existsSync(path.join(opened.workspace_path, file))).toBe(true);
  const closed = structured(await call(client, "coding_close", { session_id: opened.session_id }));
  expect(closed.cleaned_up).toBe(true);
  expect(fs.existsSync(opened.workspace_path)).toBe(false);
  return { opened, result };
}

describe("coding-mcp over HTTP", () => {
  let h: HttpHarness;
  let auth: Record<string, string>;

  beforeAll(async () => {
    h = await startHttpHarness({ config: { http: { shutdown_timeout_sec: 10, max_sessions: 3 } } });
    auth = { authorization: `Bearer ${h.token}` };
    // Two model steps instead of the default three: write the file the task names, then say so.
    h.fake.setScenario("quick", (ctx: { step: number; task: string; directory?: string }) => {
      const file = /(\w+\.md)/.exec(ctx.task)?.[1] ?? "NOTES.md";
      return ctx.step === 0
        ? { tools: [{ name: "write", args: { filePath: `${ctx.directory}/${file}`, content: `# ${file}\n` } }] }
        : { text: `Wrote ${file}.` };
    });
  });

  afterAll(async () => {
    await h?.close();
  });

  it("answers /healthz without a token, and logs nothing to stdout", async () => {
    const res = await fetch(`${h.baseUrl}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
    expect(h.stderr.some((l) => l.includes(h.token!))).toBe(false);
  });

  it("runs open -> code -> close over Streamable HTTP", async () => {
    const { client, transport } = await h.connect("streamable");
    expect((transport as StreamableHTTPClientTransport).sessionId).toMatch(/^[0-9a-f-]{36}$/);
    const { tools } = await client.listTools();
    expect(tools.map((t) => t.name)).toContain("code");
    const { result } = await openCodeClose(client, "streamable.md");
    expect(textOf(await call(client, "code", { session_id: "cs_nope", task: "x" }))).toContain("unknown session_id");
    expect(result.trace.tool_calls.length).toBeGreaterThan(0);
    await (transport as StreamableHTTPClientTransport).terminateSession();
    await client.close();
  });

  it("runs open -> code -> close over legacy SSE", async () => {
    const { client } = await h.connect("sse");
    await openCodeClose(client, "sse.md");
    await client.close();
  });

  it("serves two clients at once, each in its own MCP session, on one registry", async () => {
    const a = await h.connect("streamable");
    const b = await h.connect("streamable");
    const idA = (a.transport as StreamableHTTPClientTransport).sessionId;
    const idB = (b.transport as StreamableHTTPClientTransport).sessionId;
    expect(idA).toBeTruthy();
    expect(idA).not.toBe(idB);
    const openA = structured(await call(a.client, "coding_open", {}));
    const openB = structured(await call(b.client, "coding_open", {}));
    // Both tasks run at the same time, each on its own connection.
    const [ra, rb] = await Promise.all([
      call(a.client, "code", { session_id: openA.session_id, task: "[[fake:quick]] Create alpha.md" }),
      call(b.client, "code", { session_id: openB.session_id, task: "[[fake:quick]] Create beta.md" }),
    ]);
    expect(structured(ra).files_changed.map((f: { path: string }) => f.path)).toEqual(["alpha.md"]);
    expect(structured(rb).files_changed.map((f: { path: string }) => f.path)).toEqual(["beta.md"]);
    // The registry is shared: B can close what A opened.
    structured(await call(b.client, "coding_close", { session_id: openA.session_id }));
    structured(await call(a.client, "coding_close", { session_id: openB.session_id }));
    await a.client.close();
    await b.client.close();
  });

  it("keeps a client's coding session usable from a new MCP session after a reconnect", async () => {
    const first = await h.connect("streamable");
    const opened = structured(await call(first.client, "coding_open", { title: "reconnect" }));
    structured(await call(first.client, "code", { session_id: opened.session_id, task: "[[fake:quick]] Create first.md" }));
    await (first.transport as StreamableHTTPClientTransport).terminateSession();
    await first.client.close();

    // The old MCP session is gone for good...
    const stale = await fetch(`${h.baseUrl}/mcp`, {
      method: "POST",
      headers: { ...MCP_HEADERS, ...auth, "mcp-session-id": (first.transport as StreamableHTTPClientTransport).sessionId ?? "x" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }),
    });
    expect(stale.status).toBe(404);

    // ...but the coding session lives on, even over the other transport.
    const second = await h.connect("sse");
    const again = structured(await call(second.client, "code", { session_id: opened.session_id, task: "[[fake:quick]] Create second.md" }));
    expect(again.files_changed.map((f: { path: string }) => f.path)).toEqual(["second.md"]);
    const closed = structured(await call(second.client, "coding_close", { session_id: opened.session_id }));
    expect(closed.files_changed.map((f: { path: string }) => f.path).sort()).toEqual(["first.md", "second.md"]);
    await second.client.close();
  });

  it("refuses a missing or wrong token with 401 on every MCP route", async () => {
    for (const [method, route] of [["POST", "/mcp"], ["GET", "/mcp"], ["DELETE", "/mcp"], ["GET", "/sse"], ["POST", "/messages?sessionId=x"]] as const) {
      const missing = await fetch(`${h.baseUrl}${route}`, { method, headers: MCP_HEADERS, ...(method === "POST" ? { body: JSON.stringify(INIT) } : {}) });
      expect(missing.status, `${method} ${route}`).toBe(401);
      expect(missing.headers.get("www-authenticate")).toMatch(/^Bearer /);
      expect(await errorMessageOf(missing)).toContain("missing bearer token");

      const wrong = await fetch(`${h.baseUrl}${route}`, {
        method,
        headers: { ...MCP_HEADERS, authorization: `Bearer ${h.token}x` },
        ...(method === "POST" ? { body: JSON.stringify(INIT) } : {}),
      });
      expect(wrong.status, `${method} ${route}`).toBe(401);
      expect(wrong.headers.get("www-authenticate")).toContain('error="invalid_token"');
    }
    // The SDK clients fail to connect with a wrong token, and say why.
    await expect(h.connect("streamable", { token: "not-the-token-at-all" })).rejects.toThrow(/Unauthorized: wrong bearer token/);
    await expect(h.connect("sse", { token: "not-the-token-at-all" })).rejects.toThrow(/401|Unauthorized/);
  });

  it("refuses a foreign Host or Origin with 403 (DNS rebinding)", async () => {
    const url = `${h.baseUrl}/mcp`;
    const body = JSON.stringify(INIT);
    const foreign = await rawRequest(url, { method: "POST", headers: { ...MCP_HEADERS, ...auth, host: `attacker.example:${h.port}` }, body });
    expect(foreign.status).toBe(403);
    expect(foreign.body).toContain("Host is not allowed");
    // Even a loopback name on another port is foreign: that is another origin.
    expect((await rawRequest(url, { method: "POST", headers: { ...MCP_HEADERS, ...auth, host: `localhost:${h.port + 1}` }, body })).status).toBe(403);
    // The token does not matter: the Host check comes first.
    expect((await rawRequest(`${h.baseUrl}/sse`, { headers: { host: "attacker.example" } })).status).toBe(403);

    const badOrigin = await rawRequest(url, { method: "POST", headers: { ...MCP_HEADERS, ...auth, origin: "http://attacker.example" }, body });
    expect(badOrigin.status).toBe(403);
    expect(badOrigin.body).toContain("Origin is not allowed");
    expect((await rawRequest(url, { method: "POST", headers: { ...MCP_HEADERS, ...auth, origin: "null" }, body })).status).toBe(403);

    // The server's own names and origin are fine.
    const own = await rawRequest(url, { method: "POST", headers: { ...MCP_HEADERS, ...auth, host: `localhost:${h.port}`, origin: `http://127.0.0.1:${h.port}` }, body });
    expect(own.status).toBe(200);
    expect(own.headers["mcp-session-id"]).toBeTruthy();
    expect(own.headers["access-control-allow-origin"]).toBe(`http://127.0.0.1:${h.port}`);
    await rawRequest(url, { method: "DELETE", headers: { ...auth, "mcp-session-id": String(own.headers["mcp-session-id"]) } });
  });

  it("refuses an oversized body with 413, declared or streamed", async () => {
    const big = Buffer.alloc(5 * 1024 * 1024, "a");
    const declared = await fetch(`${h.baseUrl}/mcp`, { method: "POST", headers: { ...MCP_HEADERS, ...auth }, body: big });
    expect(declared.status).toBe(413);
    expect(await errorMessageOf(declared)).toContain("http.max_body_bytes");

    const parts = Array.from({ length: 5 }, () => Buffer.alloc(1024 * 1024, "b"));
    const streamed = await rawRequest(`${h.baseUrl}/mcp`, { method: "POST", headers: { ...MCP_HEADERS, ...auth }, body: parts });
    expect(streamed.status).toBe(413);
    // The server is fine afterwards.
    expect((await fetch(`${h.baseUrl}/healthz`)).status).toBe(200);
  });

  it("answers clearly: 404 unknown path or session, 405 wrong method, 400 no session", async () => {
    const unknownPath = await fetch(`${h.baseUrl}/nope`, { headers: auth });
    expect(unknownPath.status).toBe(404);
    expect(await errorMessageOf(unknownPath)).toContain("/mcp");
    expect((await fetch(`${h.baseUrl}/sse`, { method: "POST", headers: auth })).status).toBe(405);
    expect((await fetch(`${h.baseUrl}/messages`, { headers: auth })).status).toBe(405);

    const noSession = await fetch(`${h.baseUrl}/mcp`, {
      method: "POST",
      headers: { ...MCP_HEADERS, ...auth },
      body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }),
    });
    expect(noSession.status).toBe(400);
    const unknownSession = await fetch(`${h.baseUrl}/mcp`, {
      method: "POST",
      headers: { ...MCP_HEADERS, ...auth, "mcp-session-id": "00000000-0000-0000-0000-000000000000" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 2, method: "tools/list" }),
    });
    expect(unknownSession.status).toBe(404);
    expect((await fetch(`${h.baseUrl}/messages?sessionId=nope`, { method: "POST", headers: { ...MCP_HEADERS, ...auth }, body: "{}" })).status).toBe(404);
    expect((await fetch(`${h.baseUrl}/mcp`, { method: "POST", headers: { ...MCP_HEADERS, ...auth }, body: "{not json" })).status).toBe(400);
  });

  it("at http.max_sessions (3 here) makes room by closing the least recently used idle session", async () => {
    const post = (body: unknown, sessionId?: string) =>
      fetch(`${h.baseUrl}/mcp`, { method: "POST", headers: { ...MCP_HEADERS, ...auth, ...(sessionId ? { "mcp-session-id": sessionId } : {}) }, body: JSON.stringify(body) });
    const open = async () => {
      const res = await post(INIT);
      await res.text();
      expect(res.status).toBe(200);
      return res.headers.get("mcp-session-id")!;
    };
    // Sessions left by earlier tests are older, so they go first.
    const ids = [await open(), await open(), await open()];
    const fourth = await open();
    const list = async (id: string) => {
      const res = await post({ jsonrpc: "2.0", id: 9, method: "tools/list" }, id);
      await res.text();
      return res.status;
    };
    expect(await list(ids[0]!)).toBe(404);
    for (const id of [ids[1]!, ids[2]!, fourth]) expect(await list(id)).toBe(200);
    for (const id of [ids[1]!, ids[2]!, fourth]) await fetch(`${h.baseUrl}/mcp`, { method: "DELETE", headers: { ...auth, "mcp-session-id": id } });
  });

  // Last: it ends the server. Two calls run at the signal: one answers within
  // http.shutdown_timeout_sec (10 s here: the slow one must finish within it also on a slow, loaded machine), the other would run for a minute and is stopped.
  it("on SIGTERM lets running calls answer within the bound, stops the rest, and exits 0 with its OpenCode gone", async () => {
    h.fake.setScenario("slow", [{ delayMs: 1500, text: "Thought it through, slowly." }]);
    h.fake.setScenario("stuck", [{ delayMs: 60_000, text: "never" }]);
    const a = await h.connect("streamable");
    const b = await h.connect("sse");
    const openA = structured(await call(a.client, "coding_open", {}));
    const openB = structured(await call(b.client, "coding_open", {}));
    const slow = call(a.client, "code", { session_id: openA.session_id, task: "[[fake:slow]] Think it through" });
    const stuck = call(b.client, "code", { session_id: openB.session_id, task: "[[fake:stuck]] Think forever" });
    // Signal only once both tasks really run: the fake model has their requests.
    const reached = (marker: string) => h.fake.requests.some((r) => r.tools?.length && JSON.stringify(r.messages).includes(marker));
    await waitUntil(() => reached("[[fake:slow]]") && reached("[[fake:stuck]]"), 30_000, "both tasks to reach the model");
    const pid = h.opencodePid();
    expect(pid).toBeDefined();

    const signalled = Date.now();
    const exited = h.stop("SIGTERM", 20_000);
    // Once it is shutting down it takes no new requests, while the running calls go on.
    await h.waitForLog(/shutting down \(SIGTERM\)/, 5_000);
    const late = await fetch(`${h.baseUrl}/healthz`).then((r) => r.status, () => "refused");
    expect([503, "refused"]).toContain(late);

    const slowResult = structured(await slow);
    expect(slowResult.success).toBe(true);
    expect(slowResult.summary).toContain("slowly");
    const stuckResult = await stuck;
    expect(stuckResult.isError).toBe(true);
    expect(textOf(stuckResult)).toContain("shutting down");
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(Date.now() - signalled).toBeLessThan(18_000);
    expect(h.stderr.join("\n")).toMatch(/waiting up to 10 s for 2 running call/);
    await waitUntil(() => !alive(pid!), 5_000, "the managed OpenCode to be gone");
  });
});

describe("HTTP settings", () => {
  it("reads the http section, comma-separated host lists and CODING_MCP_TOKEN", () => {
    const env = {
      HOME: "/home/someone",
      CODING_MCP_HTTP_ALLOWED_HOSTS: "coding.example.com, 10.0.0.5:8765",
      CODING_MCP_HTTP_ALLOWED_ORIGINS: "https://app.example.com",
      CODING_MCP_HTTP_PORT: "9000",
      CODING_MCP_TOKEN: "0123456789abcdef0123",
    };
    const c = loadConfig({ env });
    expect(c.http).toMatchObject({ host: "127.0.0.1", port: 9000, max_body_bytes: 4 * 1024 * 1024, shutdown_timeout_sec: 10 });
    expect(c.http.allowed_hosts).toEqual(["coding.example.com", "10.0.0.5:8765"]);
    expect(c.http.allowed_origins).toEqual(["https://app.example.com"]);
    expect(c.secrets.httpToken).toBe("0123456789abcdef0123");
    expect(() => loadConfig({ env: { HOME: "/home/someone", CODING_MCP_HTTP_PORT: "70000" } })).toThrow(/http\.port/);
  });

  it("knows loopback hosts", () => {
    for (const host of ["127.0.0.1", "127.1.2.3", "localhost", "::1", "[::1]"]) expect(isLoopbackHost(host), host).toBe(true);
    for (const host of ["0.0.0.0", "::", "10.0.0.5", "example.com", "127.0.0.1.example.com"]) expect(isLoopbackHost(host), host).toBe(false);
  });
});

describe("coding-mcp over HTTP: start-up checks", () => {
  /** Run the CLI to completion (bounded) and collect its exit code and stderr. */
  async function runCli(args: string[], env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
    const exit = await waitForExit(child, 15_000);
    return { code: exit.code, stderr };
  }

  it("refuses to serve beyond loopback without a token, or with a weak one", async () => {
    const env: Record<string, string> = { ...(process.env as Record<string, string>), CODING_MCP_WORKSPACE_BASE_PATH: "/nonexistent/never-created" };
    delete env.CODING_MCP_TOKEN;
    const noToken = await runCli(["--transport", "http", "--host", "0.0.0.0", "--port", "0"], env);
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toContain("refusing to serve on 0.0.0.0 without a token");
    const weak = await runCli(["--transport", "http", "--port", "0"], { ...env, CODING_MCP_TOKEN: "short" });
    expect(weak.code).toBe(2);
    expect(weak.stderr).toContain("too short");
    const badPort = await runCli(["--transport", "http", "--port", "http"], env);
    expect(badPort.code).toBe(2);
    expect(fs.existsSync("/nonexistent/never-created")).toBe(false);
  });
});
