import type * as UndiciModule from "undici";
import type { Agent, Dispatcher } from "undici";

/**
 * A small HTTP client for the OpenCode server (1.x API). Every instance route carries
 * `?directory=` so a call lands on the instance of that workspace; Basic auth when a password is
 * set; bounded timeouts everywhere (undici's 300 s defaults would cut long prompts, and no call may
 * wait forever); retries with exponential backoff only where repeating is safe.
 */

export interface OpencodeSession {
  id: string;
  directory: string;
  title?: string;
  version?: string;
}

export interface OpencodeTokens {
  total?: number;
  input: number;
  output: number;
  reasoning: number;
  cache: { read: number; write: number };
}

export interface OpencodeMessageInfo {
  id: string;
  sessionID: string;
  role: "user" | "assistant";
  parentID?: string;
  modelID?: string;
  providerID?: string;
  cost?: number;
  tokens?: OpencodeTokens;
  finish?: string;
  time: { created: number; completed?: number };
  error?: { name: string; data?: { message?: string; [key: string]: unknown } };
}

export interface OpencodePart {
  id?: string;
  type: string;
  text?: string;
  tool?: string;
  callID?: string;
  state?: {
    status: "pending" | "running" | "completed" | "error";
    input?: Record<string, unknown>;
    output?: string;
    title?: string;
    error?: string;
    time?: { start?: number; end?: number };
  };
  [key: string]: unknown;
}

export interface OpencodeMessage {
  info: OpencodeMessageInfo;
  parts: OpencodePart[];
}

export interface OpencodePermissionRequest {
  id: string;
  sessionID: string;
  permission: string;
  patterns?: string[];
  metadata?: Record<string, unknown>;
  /** The wildcard patterns an `always` reply would approve (e.g. `npm *`). */
  always?: string[];
  tool?: { messageID: string; callID: string };
}

/** One rule of a session's permission ruleset; the last matching rule wins, and a session's rules come after the config's. */
export interface OpencodePermissionRule {
  permission: string;
  pattern: string;
  action: "allow" | "deny" | "ask";
}

/** The agent's `question` tool waiting for an answer (`question.asked`, `GET /question`). */
export interface OpencodeQuestionRequest {
  id: string;
  sessionID: string;
  questions: { question: string; header?: string; options?: { label: string; description?: string }[]; multiple?: boolean; custom?: boolean }[];
  tool?: { messageID: string; callID: string };
}

export interface PromptBody {
  parts: { type: "text"; text: string }[];
  model?: { providerID: string; modelID: string };
  agent?: string;
}

export class OpencodeHttpError extends Error {
  override readonly name = "OpencodeHttpError";
  constructor(
    readonly status: number,
    readonly route: string,
    readonly body: string,
  ) {
    super(`OpenCode answered ${status} to ${route}: ${body.slice(0, 500) || "(empty body)"}`);
  }
}

/** OpenCode could not be reached at all (refused, reset, timed out). */
export class OpencodeUnavailableError extends Error {
  override readonly name = "OpencodeUnavailableError";
}

export interface OpencodeClientOptions {
  baseUrl: string;
  username?: string;
  password?: string;
  /** Timeout for ordinary calls (not prompts), default 30 s. */
  requestTimeoutMs?: number;
}

const RETRY_BASE = { maxRetries: 4, minTimeout: 200, maxTimeout: 3000, timeoutFactor: 2 };

type Undici = typeof UndiciModule;
type DispatcherKind = "direct" | "idempotent" | "firstContact";

interface Transport {
  undici: Undici;
  agent: Agent;
  dispatchers: Record<DispatcherKind, Dispatcher>;
}

export class OpencodeClient {
  readonly baseUrl: string;
  private readonly authHeader?: string;
  private readonly requestTimeoutMs: number;
  /** undici is loaded on the first call, not at start-up: it is a large share of coding-mcp's cold start. */
  private transport?: Promise<Transport>;

  constructor(options: OpencodeClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    if (options.password) {
      const user = options.username ?? "opencode";
      this.authHeader = "Basic " + Buffer.from(`${user}:${options.password}`).toString("base64");
    }
  }

  private load(): Promise<Transport> {
    this.transport ??= import("undici").then((undici) => {
      const agent = new undici.Agent({ headersTimeout: this.requestTimeoutMs, bodyTimeout: this.requestTimeoutMs, connectTimeout: 5_000 });
      return {
        undici,
        agent,
        dispatchers: {
          direct: agent,
          // For reads, deletes and aborts: repeated on connection errors and 5xx.
          idempotent: new undici.RetryAgent(agent, { ...RETRY_BASE, methods: ["GET", "DELETE", "POST"], statusCodes: [500, 502, 503, 504] }),
          // For calls with effects (create, prompt): repeated only when the connection was refused, i.e. nothing was sent.
          firstContact: new undici.RetryAgent(agent, { ...RETRY_BASE, methods: ["POST"], statusCodes: [], errorCodes: ["ECONNREFUSED"] }),
        },
      };
    });
    return this.transport;
  }

  async health(timeoutMs = 5_000): Promise<{ healthy: boolean; version: string }> {
    // One attempt with its own short timeout: used while polling a server that is starting.
    return this.call("GET", "/global/health", undefined, { dispatcher: "direct", timeoutMs });
  }

  createSession(directory: string, body: { title?: string; agent?: string; permission?: OpencodePermissionRule[] }): Promise<OpencodeSession> {
    return this.call("POST", `/session${dirQuery(directory)}`, body, { dispatcher: "firstContact" });
  }

  deleteSession(sessionId: string, directory: string): Promise<boolean> {
    return this.call("DELETE", `/session/${enc(sessionId)}${dirQuery(directory)}`);
  }

  /**
   * The synchronous prompt: blocks until the agent loop ends and answers the LAST assistant message
   * only, or `undefined` when OpenCode answered 200 with an empty body (a known failure mode).
   */
  prompt(sessionId: string, directory: string, body: PromptBody, options: { timeoutMs: number; signal?: AbortSignal }): Promise<OpencodeMessage | undefined> {
    return this.call("POST", `/session/${enc(sessionId)}/message${dirQuery(directory)}`, body, {
      dispatcher: "firstContact",
      timeoutMs: options.timeoutMs,
      signal: options.signal,
      allowEmpty: true,
    });
  }

  /** All messages of a session, or the last `limit` ones. */
  messages(sessionId: string, directory: string, limit?: number): Promise<OpencodeMessage[]> {
    const extra = limit ? `&limit=${limit}` : "";
    return this.call("GET", `/session/${enc(sessionId)}/message${dirQuery(directory)}${extra}`);
  }

  abort(sessionId: string, directory: string): Promise<boolean> {
    return this.call("POST", `/session/${enc(sessionId)}/abort${dirQuery(directory)}`, undefined, { timeoutMs: 10_000 });
  }

  /** Sessions of this directory's instance that are busy or retrying (idle ones are left out). */
  sessionStatus(directory: string): Promise<Record<string, { type: string }>> {
    return this.call("GET", `/session/status${dirQuery(directory)}`);
  }

  /** The providers this server has configured, with their models and the default model of each. */
  providers(): Promise<{ providers: { id: string; models: Record<string, unknown> }[]; default?: Record<string, string> }> {
    return this.call("GET", "/config/providers");
  }

  /** The server's configuration; `model` is its configured default provider/model. */
  config(): Promise<{ model?: string }> {
    return this.call("GET", "/config");
  }

  /** Pending permission requests of every session of this directory's instance. */
  permissions(directory: string): Promise<OpencodePermissionRequest[]> {
    return this.call("GET", `/permission${dirQuery(directory)}`);
  }

  replyPermission(requestId: string, directory: string, reply: "once" | "always" | "reject", message?: string): Promise<boolean> {
    return this.call("POST", `/permission/${enc(requestId)}/reply${dirQuery(directory)}`, { reply, ...(message ? { message } : {}) }, { timeoutMs: 10_000 });
  }

  /** Pending questions of every session of this directory's instance. */
  questions(directory: string): Promise<OpencodeQuestionRequest[]> {
    return this.call("GET", `/question${dirQuery(directory)}`);
  }

  /** One list of chosen labels (or own words) per question, in order. */
  replyQuestion(requestId: string, directory: string, answers: string[][]): Promise<boolean> {
    return this.call("POST", `/question/${enc(requestId)}/reply${dirQuery(directory)}`, { answers }, { timeoutMs: 10_000 });
  }

  rejectQuestion(requestId: string, directory: string): Promise<boolean> {
    return this.call("POST", `/question/${enc(requestId)}/reject${dirQuery(directory)}`, undefined, { timeoutMs: 10_000 });
  }

  /**
   * The instance's event stream (Server-Sent Events), as a byte stream. No body timeout of the usual
   * kind: the stream is quiet between events; the caller bounds silence itself.
   */
  async eventStream(directory: string, signal: AbortSignal): Promise<AsyncIterable<Uint8Array>> {
    const headers: Record<string, string> = { accept: "text/event-stream" };
    if (this.authHeader) headers.authorization = this.authHeader;
    const route = `/event${dirQuery(directory)}`;
    const t = await this.load();
    let response: Dispatcher.ResponseData;
    try {
      response = await t.undici.request(this.baseUrl + route, { method: "GET", headers, dispatcher: t.agent, headersTimeout: 10_000, bodyTimeout: 0, signal });
    } catch (err) {
      throw this.describeFailure(t.undici, err, "GET", route, 10_000, signal);
    }
    if (response.statusCode !== 200) {
      const text = await response.body.text().catch(() => "");
      throw new OpencodeHttpError(response.statusCode, "GET /event", text);
    }
    return response.body;
  }

  /** Drop every connection now, in-flight calls included: waiting for a long prompt would stall shutdown. */
  async close(): Promise<void> {
    const t = await this.transport?.catch(() => undefined);
    await t?.agent.destroy().catch(() => undefined);
  }

  private async call<T>(
    method: "GET" | "POST" | "DELETE",
    route: string,
    body?: unknown,
    options: { dispatcher?: DispatcherKind; timeoutMs?: number; signal?: AbortSignal; allowEmpty?: boolean } = {},
  ): Promise<T> {
    const timeoutMs = options.timeoutMs ?? this.requestTimeoutMs;
    const headers: Record<string, string> = { accept: "application/json" };
    if (this.authHeader) headers.authorization = this.authHeader;
    if (body !== undefined) headers["content-type"] = "application/json";
    const t = await this.load();
    let response: Dispatcher.ResponseData;
    try {
      response = await t.undici.request(this.baseUrl + route, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        dispatcher: t.dispatchers[options.dispatcher ?? "idempotent"],
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: options.signal,
      });
    } catch (err) {
      throw this.describeFailure(t.undici, err, method, route, timeoutMs, options.signal);
    }
    const text = await response.body.text().catch(() => "");
    if (response.statusCode === 401) {
      throw new OpencodeHttpError(401, route, "unauthorized: the OpenCode server wants a password; set it in the variable named by opencode.password_env");
    }
    if (response.statusCode >= 400) throw new OpencodeHttpError(response.statusCode, `${method} ${stripQuery(route)}`, text);
    if (text.trim() === "") {
      if (options.allowEmpty) return undefined as T;
      throw new OpencodeHttpError(response.statusCode, `${method} ${stripQuery(route)}`, "");
    }
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new OpencodeHttpError(response.statusCode, `${method} ${stripQuery(route)}`, `not JSON: ${text.slice(0, 200)}`);
    }
  }

  private describeFailure(undici: Undici, err: unknown, method: string, route: string, timeoutMs: number, signal?: AbortSignal): Error {
    if (signal?.aborted) return signal.reason instanceof Error ? signal.reason : new Error("aborted");
    if (err instanceof undici.errors.HeadersTimeoutError || err instanceof undici.errors.BodyTimeoutError) {
      return new OpencodeTimeoutError(`OpenCode did not answer ${method} ${stripQuery(route)} within ${Math.round(timeoutMs / 1000)} s`);
    }
    const code = (err as { code?: string; cause?: { code?: string } }).code ?? (err as { cause?: { code?: string } }).cause?.code;
    return new OpencodeUnavailableError(
      `cannot reach the OpenCode server at ${this.baseUrl} (${code ?? (err as Error).message}) for ${method} ${stripQuery(route)}`,
    );
  }
}

export class OpencodeTimeoutError extends Error {
  override readonly name = "OpencodeTimeoutError";
}

function enc(s: string): string {
  return encodeURIComponent(s);
}

function dirQuery(directory: string): string {
  return `?directory=${encodeURIComponent(directory)}`;
}

function stripQuery(route: string): string {
  return route.split("?")[0] ?? route;
}
