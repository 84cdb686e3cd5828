import { randomUUID } from "node:crypto";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { SSEServerTransport } from "@modelcontextprotocol/sdk/server/sse.js";
import { StreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/streamableHttp.js";
import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import type { Transport } from "@modelcontextprotocol/sdk/shared/transport.js";
import {
  isInitializeRequest,
  isJSONRPCErrorResponse,
  isJSONRPCRequest,
  isJSONRPCResultResponse,
  type JSONRPCMessage,
  type RequestId,
} from "@modelcontextprotocol/sdk/types.js";
import { authInfoFor, type Caller } from "../callers/caller.js";
import type { Authenticator } from "../callers/authenticate.js";
import type { Logger } from "../log.js";
import { sleep } from "../process.js";
import { bearerToken, createHostGuard, formatHost, type HostGuard } from "./http-guard.js";

/**
 * MCP over HTTP on one port: Streamable HTTP at /mcp and the legacy SSE transport at /sse +
 * /messages, both from the SDK, plus /healthz. Every MCP session (one per client connection) gets
 * its own McpServer from `newServer`; they all share one context, so coding sessions outlive the
 * MCP session that opened them. In front of the SDK transports sit the checks a shared server
 * needs: Host/Origin allow lists (DNS rebinding), a bearer token, a body size bound.
 */

export interface HttpOptions {
  host: string;
  port: number;
  /** Who a request's bearer token belongs to; `required: false` only on loopback (the caller enforces that). */
  authenticator: Authenticator;
  /** Extra Host values: "name" (any port), "name:port", or "*". */
  allowedHosts: string[];
  /** Extra Origins (exact), or "*". */
  allowedOrigins: string[];
  maxBodyBytes: number;
  maxSessions: number;
  sessionIdleMs: number;
}

export interface HttpService {
  /** Base URL, e.g. http://127.0.0.1:8765 (MCP at url + "/mcp"). */
  url: string;
  /**
   * Stop taking requests, give running calls up to `graceMs` to answer (less once `hurry` fires),
   * answer the rest with a "shutting down" error, and close every MCP session and connection.
   */
  close(graceMs: number, hurry?: AbortSignal): Promise<void>;
}

const MCP_PATH = "/mcp";
const SSE_PATH = "/sse";
const MESSAGES_PATH = "/messages";
const HEALTH_PATH = "/healthz";
const ROUTES: Record<string, string[]> = {
  [MCP_PATH]: ["GET", "POST", "DELETE"],
  [SSE_PATH]: ["GET"],
  [MESSAGES_PATH]: ["POST"],
};
// The SDK's Streamable HTTP transport sends its own keep-alives; the legacy one does not, and idle
// streams are cut by proxies while a task runs for minutes.
const SSE_KEEPALIVE_MS = 15_000;

interface McpSession {
  id: string;
  kind: "streamable" | "sse";
  server: McpServer;
  transport: StreamableHTTPServerTransport | SSEServerTransport;
  /** Client requests not answered yet: JSON-RPC id -> method. */
  running: Map<RequestId, string>;
  /** The caller that opened it: only that caller may use it (its stream carries that caller's notifications). */
  callerId: string;
  /** Open server-to-client streams: a client holding one is alive even when it sends nothing. */
  openStreams: number;
  lastSeen: number;
}


/** Errors go out as JSON-RPC error objects, the shape the SDK's transports use for theirs. */
function reject(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}, code = -32000): void {
  if (res.headersSent) {
    res.end();
    return;
  }
  res.writeHead(status, { "content-type": "application/json", ...headers });
  res.end(JSON.stringify({ jsonrpc: "2.0", error: { code, message }, id: null }));
}

/** An MCP session id this server does not hold (ended, swept, or from before a restart). */
function sessionNotFound(res: ServerResponse, whatToDo: string): void {
  reject(res, 404, `Session not found: it ended or the server restarted; ${whatToDo}`, {}, -32001);
}

type Body = { ok: true; value: unknown } | { ok: false; status: number; message: string };

/** Read a JSON body of at most `limit` bytes, by Content-Length up front and by counting while it streams. */
function readJsonBody(req: IncomingMessage, limit: number): Promise<Body> {
  const tooLarge: Body = { ok: false, status: 413, message: `request body too large: the limit is ${limit} bytes (http.max_body_bytes)` };
  if (!/^application\/json\s*(;|$)/i.test(req.headers["content-type"] ?? "")) {
    return Promise.resolve({ ok: false, status: 415, message: "Unsupported Media Type: Content-Type must be application/json" });
  }
  if (Number(req.headers["content-length"]) > limit) {
    discardRest(req, limit);
    return Promise.resolve(tooLarge);
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= limit) {
        chunks.push(chunk);
        return;
      }
      req.off("data", onData);
      discardRest(req, limit);
      resolve(tooLarge);
    };
    req.on("data", onData);
    req.once("error", () => resolve({ ok: false, status: 400, message: "request body could not be read" }));
    req.once("end", () => {
      if (size > limit) return;
      try {
        resolve({ ok: true, value: JSON.parse(Buffer.concat(chunks).toString("utf8")) });
      } catch {
        resolve({ ok: false, status: 400, message: "Parse error: the request body is not JSON" });
      }
    });
  });
}

/**
 * Read and drop the rest of a refused body: closing at once would reset the connection under a
 * client still sending, which then never sees the 413. A body far beyond the limit just loses it.
 */
function discardRest(req: IncomingMessage, limit: number): void {
  let dropped = 0;
  req.on("data", (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > 16 * limit) req.socket.destroy();
  });
  req.resume();
}

/** Poll until `done()` or `ms` passed or `hurry` fired; true when done. */
async function waitUntil(done: () => boolean, ms: number, hurry?: AbortSignal): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!done() && Date.now() < deadline && !hurry?.aborted) await sleep(50, hurry);
  return done();
}

export async function serveHttp(newServer: () => McpServer, log: Logger, options: HttpOptions): Promise<HttpService> {
  const bindHost = options.host.replace(/^\[(.*)\]$/, "$1"); // listen() wants IPv6 without brackets
  const sessions = new Map<string, McpSession>();
  const openResponses = new Set<ServerResponse>();
  let draining = false;
  const short = (id: string) => id.slice(0, 8);

  // eslint-disable-next-line prefer-const -- the Host and Origin allow lists, set once the port is known
  let guard: HostGuard | undefined;

  // ---- MCP sessions ----
  const quiet = (s: McpSession) => s.running.size === 0 && s.openStreams === 0;

  /** Wire a new session: track its calls and drop it from the map when its transport closes. */
  function track(kind: McpSession["kind"], transport: McpSession["transport"], id: string, caller: Caller): McpSession {
    const session: McpSession = { id, kind, transport, callerId: caller.id, server: newServer(), running: new Map(), openStreams: 0, lastSeen: Date.now() };
    // Set before connect: the SDK's Protocol keeps and calls a handler already there. A request is
    // running from the moment it arrives until our response to it goes out.
    const t: Transport = transport;
    t.onmessage = (message: JSONRPCMessage) => {
      if (isJSONRPCRequest(message)) session.running.set(message.id, message.method);
    };
    const send = t.send.bind(t);
    t.send = (message, sendOptions) => {
      if ((isJSONRPCResultResponse(message) || isJSONRPCErrorResponse(message)) && message.id !== undefined) {
        session.running.delete(message.id);
        session.lastSeen = Date.now(); // idle time counts from the end of a long call, not its start
      }
      return send(message, sendOptions);
    };
    t.onclose = () => {
      if (sessions.get(session.id) !== session) return;
      sessions.delete(session.id);
      log.info(`MCP session ${short(session.id)} closed (${kind}); ${sessions.size} open`);
    };
    return session;
  }

  function register(session: McpSession, id: string): void {
    session.id = id;
    sessions.set(id, session);
    log.info(`MCP session ${short(id)} opened (${session.kind}); ${sessions.size} open`);
  }

  async function closeSession(session: McpSession, why: string): Promise<void> {
    log.info(`closing MCP session ${short(session.id)}: ${why}`);
    sessions.delete(session.id);
    await session.server.close().catch((err) => log.warn(`closing MCP session ${short(session.id)}: ${(err as Error).message}`));
  }

  /** At the session limit, make room by closing the least recently used quiet session; false when none is quiet. */
  function makeRoom(): boolean {
    if (sessions.size < options.maxSessions) return true;
    const oldest = [...sessions.values()].filter(quiet).sort((a, b) => a.lastSeen - b.lastSeen)[0];
    if (!oldest) return false;
    void closeSession(oldest, `least recently used, to make room (http.max_sessions = ${options.maxSessions})`);
    return true;
  }

  // Clients that vanish without ending their session (most do) would otherwise stay forever.
  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const s of sessions.values()) {
      if (quiet(s) && now - s.lastSeen > options.sessionIdleMs) void closeSession(s, "idle (http.session_idle_min)");
    }
  }, Math.min(60_000, options.sessionIdleMs));
  sweeper.unref();

  function tooManySessions(res: ServerResponse): void {
    reject(res, 503, `too many MCP sessions busy (http.max_sessions = ${options.maxSessions}); try again later`, { "retry-after": "10" });
  }

  async function readBodyOr(req: IncomingMessage, res: ServerResponse): Promise<{ value: unknown } | undefined> {
    const body = await readJsonBody(req, options.maxBodyBytes);
    if (body.ok) return { value: body.value };
    if (body.status === 413) log.warn(`refused a request body over ${options.maxBodyBytes} bytes on ${req.url?.split("?")[0]}`);
    reject(res, body.status, body.message, {}, body.status === 400 ? -32700 : -32000);
    return undefined;
  }

  /** Streamable HTTP: POST initialize opens a session; every later request names it in mcp-session-id. */
  async function handleStreamable(req: IncomingMessage, res: ServerResponse, caller: Caller): Promise<void> {
    let body: unknown;
    if (req.method === "POST") {
      const read = await readBodyOr(req, res);
      if (!read) return;
      body = read.value;
    }
    const id = req.headers["mcp-session-id"];
    if (typeof id === "string") {
      const session = sessions.get(id);
      // Another caller's MCP session is answered like one that does not exist.
      if (!session || session.kind !== "streamable" || session.callerId !== caller.id) {
        return sessionNotFound(res, "start a new MCP session (initialize)");
      }
      session.lastSeen = Date.now();
      if (req.method === "GET") {
        session.openStreams++;
        res.once("close", () => session.openStreams--);
      }
      await (session.transport as StreamableHTTPServerTransport).handleRequest(req, res, body);
      return;
    }
    if (req.method !== "POST" || !isInitializeRequest(body)) {
      reject(res, 400, "Bad Request: no mcp-session-id header; an MCP session starts with an initialize request");
      return;
    }
    if (!makeRoom()) return tooManySessions(res);
    // eslint-disable-next-line prefer-const -- assigned once the transport that refers to it exists
    let session: McpSession | undefined;
    const transport = new StreamableHTTPServerTransport({
      sessionIdGenerator: randomUUID,
      onsessioninitialized: (sid) => register(session!, sid),
    });
    session = track("streamable", transport, "", caller);
    await session.server.connect(transport);
    await transport.handleRequest(req, res, body);
  }

  /** Legacy SSE: GET /sse opens a session and its stream; the client POSTs to /messages?sessionId=. */
  async function openSse(res: ServerResponse, caller: Caller): Promise<void> {
    if (!makeRoom()) return tooManySessions(res);
    const transport = new SSEServerTransport(MESSAGES_PATH, res);
    const session = track("sse", transport, transport.sessionId, caller);
    session.openStreams = 1;
    const keepAlive = setInterval(() => {
      if (!res.writableEnded) res.write(": keep-alive\n\n");
    }, SSE_KEEPALIVE_MS);
    res.once("close", () => {
      clearInterval(keepAlive);
      session.openStreams = 0;
    });
    await session.server.connect(transport);
    register(session, transport.sessionId);
  }

  async function postSseMessage(req: IncomingMessage, res: ServerResponse, url: URL, caller: Caller): Promise<void> {
    const id = url.searchParams.get("sessionId");
    if (!id) return reject(res, 400, "Bad Request: missing sessionId query parameter; open a session with GET /sse first");
    const session = sessions.get(id);
    if (!session || session.kind !== "sse" || session.callerId !== caller.id) {
      return sessionNotFound(res, "open a new one with GET /sse");
    }
    const read = await readBodyOr(req, res);
    if (!read) return;
    session.lastSeen = Date.now();
    await (session.transport as SSEServerTransport).handlePostMessage(req, res, read.value);
  }

  // ---- routing ----
  /** RFC 9728 protected resource metadata: public, so a client can find where to get a token. */
  function serveResourceMetadata(req: IncomingMessage, res: ServerResponse): void {
    if (req.method !== "GET" && req.method !== "HEAD") return reject(res, 405, "use GET", { allow: "GET, HEAD" });
    res.writeHead(200, { "content-type": "application/json", "cache-control": "max-age=3600", "access-control-allow-origin": "*" });
    res.end(req.method === "HEAD" ? undefined : JSON.stringify(options.authenticator.resourceMetadata));
  }

  function setCors(res: ServerResponse, origin: string): void {
    // Only for allowed origins: lets a browser-based client read the answers and the session id.
    res.setHeader("access-control-allow-origin", origin);
    res.setHeader("vary", "Origin");
    res.setHeader("access-control-expose-headers", "mcp-session-id, mcp-protocol-version, www-authenticate");
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://placeholder");
    const path = url.pathname;
    if (path === HEALTH_PATH) {
      // No token and no Host check: probes come from anywhere and this reveals nothing.
      if (req.method !== "GET" && req.method !== "HEAD") return reject(res, 405, "use GET", { allow: "GET, HEAD" });
      res.writeHead(draining ? 503 : 200, { "content-type": "application/json", "cache-control": "no-store" });
      res.end(req.method === "HEAD" ? undefined : JSON.stringify({ status: draining ? "stopping" : "ok" }));
      return;
    }
    if (!guard?.hostAllowed(req.headers.host)) {
      log.warn(`refused a request with Host ${JSON.stringify(req.headers.host ?? "")} (not in the allow list; see http.allowed_hosts)`);
      return reject(res, 403, "Forbidden: this Host is not allowed (http.allowed_hosts)");
    }
    if (options.authenticator.resourceMetadataPaths.includes(path)) return serveResourceMetadata(req, res);
    const methods = ROUTES[path];
    if (!methods) {
      return reject(res, 404, `Not found: MCP is served at ${MCP_PATH} (Streamable HTTP) and ${SSE_PATH} (legacy SSE); ${HEALTH_PATH} for probes`);
    }
    const origin = req.headers.origin;
    if (origin !== undefined) {
      if (!guard?.originAllowed(origin)) {
        log.warn(`refused a request from Origin ${JSON.stringify(origin)} (see http.allowed_origins)`);
        return reject(res, 403, "Forbidden: this Origin is not allowed (http.allowed_origins)");
      }
      setCors(res, origin);
    }
    if (req.method === "OPTIONS") {
      // CORS preflight: carries no credentials by design, so it is answered before the token check.
      res.writeHead(204, {
        allow: [...methods, "OPTIONS"].join(", "),
        "access-control-allow-methods": [...methods, "OPTIONS"].join(", "),
        "access-control-allow-headers": "authorization, content-type, accept, mcp-session-id, mcp-protocol-version, last-event-id",
        "access-control-max-age": "600",
      });
      res.end();
      return;
    }
    if (!methods.includes(req.method ?? "")) {
      return reject(res, 405, `Method Not Allowed: ${path} takes ${methods.join(", ")}`, { allow: methods.join(", ") });
    }
    const auth = await options.authenticator.authenticate(bearerToken(req.headers.authorization));
    if (!auth.ok) {
      log.warn(`refused ${req.method} ${path} from ${req.socket.remoteAddress}: ${auth.message}`);
      const title = auth.status === 401 ? "Unauthorized" : auth.status === 403 ? "Forbidden" : "Service Unavailable";
      return reject(res, auth.status, `${title}: ${auth.message}`, { "www-authenticate": auth.challenge, ...(auth.status === 503 ? { "retry-after": "10" } : {}) });
    }
    const caller = auth.caller;
    // The SDK's transports hand req.auth to every handler as extra.authInfo: that is how tools know the caller.
    (req as IncomingMessage & { auth?: AuthInfo }).auth = authInfoFor(caller);
    if (draining) return reject(res, 503, "coding-mcp is shutting down", { connection: "close", "retry-after": "5" });
    if (path === MCP_PATH) return handleStreamable(req, res, caller);
    if (path === SSE_PATH) return openSse(res, caller);
    return postSseMessage(req, res, url, caller);
  }

  const server = http.createServer((req, res) => {
    const started = Date.now();
    openResponses.add(res);
    res.once("close", () => {
      openResponses.delete(res);
      log.debug(`http ${req.method} ${req.url?.split("?")[0]} ${res.statusCode} ${Date.now() - started} ms`);
    });
    route(req, res).catch((err) => {
      log.error(`http ${req.method} ${req.url?.split("?")[0]} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      reject(res, 500, "internal error; the server log has details", {}, -32603);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, bindHost, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  guard = createHostGuard({
    bindHost,
    port,
    allowedHosts: options.allowedHosts,
    allowedOrigins: options.allowedOrigins,
    machine: { addresses: Object.values(os.networkInterfaces()).flatMap((list) => (list ?? []).map((a) => a.address)), hostname: os.hostname() },
  });
  for (const entry of guard.ignored) log.warn(`http.allowed_hosts: ignoring ${JSON.stringify(entry)} (expected name, name:port or "*")`);
  const url = `http://${formatHost(bindHost)}:${port}`;
  log.info(
    `listening on ${url} (Streamable HTTP at ${MCP_PATH}, legacy SSE at ${SSE_PATH}; ` +
      `${options.authenticator.required ? "bearer token required" : "no token: loopback only"})`,
  );

  let closing: Promise<void> | undefined;
  async function close(graceMs: number, hurry?: AbortSignal): Promise<void> {
    draining = true;
    clearInterval(sweeper);
    const listenerClosed = new Promise<void>((resolve) => server.close(() => resolve()));
    const runningCalls = () => [...sessions.values()].reduce((n, s) => n + s.running.size, 0);
    if (runningCalls() > 0) log.info(`waiting up to ${Math.round(graceMs / 1000)} s for ${runningCalls()} running call(s) to answer`);
    if (!(await waitUntil(() => runningCalls() === 0, graceMs, hurry))) {
      // Left alone, a Streamable HTTP client would wait for these answers until its own timeout.
      log.warn(`stopping ${runningCalls()} call(s) still running`);
      const text = "coding-mcp is shutting down and stopped this call before it finished. Its coding session stays open: call again once coding-mcp is back.";
      for (const s of sessions.values()) {
        for (const [id, method] of [...s.running]) {
          const answer: JSONRPCMessage =
            method === "tools/call"
              ? { jsonrpc: "2.0", id, result: { isError: true, content: [{ type: "text", text }] } }
              : { jsonrpc: "2.0", id, error: { code: -32000, message: text } };
          await s.transport.send(answer).catch(() => undefined);
        }
      }
    }
    await Promise.all([...sessions.values()].map((s) => closeSession(s, "server shutting down")));
    // Closing the sessions ends their streams; give those last bytes a moment to leave.
    await waitUntil(() => openResponses.size === 0, 2_000);
    server.closeAllConnections();
    await Promise.race([listenerClosed, sleep(2_000)]);
  }

  return {
    url,
    close(graceMs, hurry) {
      closing ??= close(graceMs, hurry);
      return closing;
    },
  };
}
