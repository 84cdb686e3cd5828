import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { stringify } from "yaml";
import { opencodeConfigFor, startFakeModel } from "./fake-model.mjs";
import { hermeticOpencodeEnv } from "./opencode-home.mjs";

export { git, gitShowStats, makeBareRemote } from "./git.js";

/**
 * Starts what an end-to-end test needs: the scripted fake model, and the BUILT coding-mcp (dist/cli.js)
 * as a child process driven by the SDK's real Client over stdio; coding-mcp starts its own real
 * `opencode serve`. Everything lives in one temp directory, removed by close().
 */

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const CLI = path.join(ROOT, "dist", "cli.js");

export type FakeModel = Awaited<ReturnType<typeof startFakeModel>>;

export interface HarnessOptions {
  /** Merged into the generated config file (workspace, git and limits merged with the test defaults; other keys as given). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  config?: Record<string, any>;
  env?: Record<string, string>;
}

export interface Harness {
  dir: string;
  basePath: string;
  /** Directory inside workspace.allowed_roots, for caller-given workspaces. */
  allowedRoot: string;
  configFile: string;
  fake: FakeModel;
  client: Client;
  /** What coding-mcp wrote to stderr (its log), line by line. */
  stderr: string[];
  env: Record<string, string>;
  call(name: string, args: Record<string, unknown>, options?: Parameters<Client["callTool"]>[2]): Promise<CallToolResult>;
  /** Stop coding-mcp (and its OpenCode) and start it again on the same state. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startHarness(options: HarnessOptions = {}): Promise<Harness> {
  const { dir, basePath, allowedRoot, fake, configFile, env } = await prepare(options);
  const stderr: string[] = [];

  let client = await connect();

  async function connect(): Promise<Client> {
    const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, "--config", configFile], env, stderr: "pipe" });
    transport.stderr?.on("data", (chunk: Buffer) => stderr.push(...chunk.toString("utf8").split("\n").filter(Boolean)));
    const c = new Client({ name: "coding-mcp-tests", version: "1.0.0" });
    await c.connect(transport);
    return c;
  }

  const harness: Harness = {
    dir,
    basePath,
    allowedRoot,
    configFile,
    fake,
    get client() {
      return client;
    },
    stderr,
    env,
    async call(name, args, callOptions) {
      return (await client.callTool({ name, arguments: args }, undefined, { timeout: 180_000, ...callOptions })) as CallToolResult;
    },
    async restart() {
      await client.close();
      client = await connect();
    },
    async close() {
      await client.close();
      await fake.close();
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    },
  };
  return harness;
}

/** What every end-to-end test needs before coding-mcp starts: temp dirs, the fake model, a config file, a hermetic environment. */
export async function prepare(options: HarnessOptions = {}) {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "coding-mcp-test-"));
  const basePath = path.join(dir, "workspaces");
  const allowedRoot = path.join(dir, "repos");
  fs.mkdirSync(allowedRoot, { recursive: true });
  const fake = await startFakeModel();
  const { workspace, git, limits, ...others } = options.config ?? {};
  const config = {
    workspace: { base_path: basePath, allowed_roots: [allowedRoot], ...(workspace ?? {}) },
    git: { allow_file_remotes: true, user_name: "Test Bot", user_email: "bot@example.test", ...(git ?? {}) },
    limits: { task_timeout_min: 2, ...(limits ?? {}) },
    // The other sections (opencode, http, backends, default_backend, ...) as given.
    ...others,
  };
  const configFile = path.join(dir, "config.yaml");
  fs.writeFileSync(configFile, stringify(config));
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    ...hermeticOpencodeEnv(path.join(dir, "opencode-home")),
    OPENCODE_CONFIG_CONTENT: JSON.stringify(opencodeConfigFor(fake.baseURL)),
    CODING_MCP_LOG_LEVEL: "debug",
    ...(options.env ?? {}),
  };
  delete env.OPENCODE_URL;
  return { dir, basePath, allowedRoot, fake, configFile, env };
}

export interface HttpHarnessOptions extends HarnessOptions {
  /** CODING_MCP_TOKEN for the server; null: none. Default: a random one. */
  token?: string | null;
}

export interface HttpHarness {
  dir: string;
  basePath: string;
  allowedRoot: string;
  configFile: string;
  fake: FakeModel;
  env: Record<string, string>;
  stderr: string[];
  token: string | undefined;
  /** The built coding-mcp serving HTTP, a child process of the test. */
  child: ChildProcess;
  /** http://127.0.0.1:PORT as logged by the server. */
  baseUrl: string;
  port: number;
  /** A connected SDK client over Streamable HTTP (/mcp) or legacy SSE (/sse); closed by close(). */
  connect(kind: "streamable" | "sse", options?: { token?: string }): Promise<{ client: Client; transport: StreamableHTTPClientTransport | SSEClientTransport }>;
  /** The pid of the managed OpenCode, once the server logged it. */
  opencodePid(): number | undefined;
  /** Wait (bounded) for a log line matching `re`. */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Send `signal` and wait (bounded) for the process to exit. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  close(): Promise<void>;
}

/** Wait for `child` to exit, at most `ms`; then SIGKILL it and report the timeout. */
export function waitForExit(child: ChildProcess, ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; timedOut: boolean }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode, timedOut: false });
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      resolve({ code: null, signal: "SIGKILL", timedOut: true });
    }, ms);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut: false });
    });
  });
}

/**
 * The built coding-mcp as `--transport http --host 127.0.0.1 --port 0`, a child process of the
 * test, with the fake model and a hermetic OpenCode as in startHarness. Clients connect with the
 * SDK's HTTP transports.
 */
export async function startHttpHarness(options: HttpHarnessOptions = {}): Promise<HttpHarness> {
  const prepared = await prepare(options);
  const { dir, fake, configFile } = prepared;
  const token = options.token === null ? undefined : (options.token ?? randomBytes(24).toString("hex"));
  const env = { ...prepared.env };
  delete env.CODING_MCP_TOKEN;
  if (token !== undefined) env.CODING_MCP_TOKEN = token;
  const stderr: string[] = [];
  const child = spawn(process.execPath, [CLI, "--transport", "http", "--host", "127.0.0.1", "--port", "0", "--config", configFile], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const stdout: string[] = [];
  child.stdout.on("data", (chunk: Buffer) => stdout.push(chunk.toString("utf8")));
  let partial = "";
  child.stderr.on("data", (chunk: Buffer) => {
    const lines = (partial + chunk.toString("utf8")).split("\n");
    partial = lines.pop() ?? "";
    stderr.push(...lines.filter(Boolean));
  });
  const clients: Client[] = [];

  async function waitForLog(re: RegExp, timeoutMs = 20_000): Promise<RegExpExecArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (const line of stderr) {
        const m = re.exec(line);
        if (m) return m;
      }
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`coding-mcp exited (${child.exitCode ?? child.signalCode}) before logging ${re}:\n${stderr.slice(-20).join("\n")}`);
      }
      if (Date.now() > deadline) throw new Error(`no log line ${re} within ${timeoutMs} ms:\n${stderr.slice(-20).join("\n")}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  let baseUrl: string;
  try {
    baseUrl = (await waitForLog(/listening on (http:\/\/\S+)/))[1]!;
  } catch (err) {
    child.kill("SIGKILL");
    await fake.close();
    fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    throw err;
  }

  async function stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 20_000) {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const exit = await waitForExit(child, timeoutMs);
    if (exit.timedOut) throw new Error(`coding-mcp did not exit within ${timeoutMs} ms of ${signal}:\n${stderr.slice(-20).join("\n")}`);
    if (stdout.length) throw new Error(`coding-mcp wrote to stdout: ${stdout.join("").slice(0, 500)}`);
    return { code: exit.code, signal: exit.signal };
  }

  return {
    ...prepared,
    env,
    stderr,
    token,
    child,
    baseUrl,
    port: Number(new URL(baseUrl).port),
    async connect(kind, connectOptions = {}) {
      const bearer = connectOptions.token ?? token;
      const requestInit = bearer === undefined ? {} : { headers: { Authorization: `Bearer ${bearer}` } };
      const transport =
        kind === "streamable" ? new StreamableHTTPClientTransport(new URL("/mcp", baseUrl), { requestInit }) : new SSEClientTransport(new URL("/sse", baseUrl), { requestInit });
      const client = new Client({ name: `coding-mcp-tests-${kind}`, version: "1.0.0" });
      await client.connect(transport);
      clients.push(client);
      return { client, transport };
    },
    opencodePid() {
      for (const line of stderr) {
        const m = /managed OpenCode ready at \S+ \(pid (\d+)\)/.exec(line);
        if (m) return Number(m[1]);
      }
      return undefined;
    },
    waitForLog,
    stop,
    async close() {
      await Promise.allSettled(clients.map((c) => c.close()));
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await waitForExit(child, 15_000);
      }
      await fake.close();
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    },
  };
}

/** The text of a tool result (its first text content). */
export function textOf(result: CallToolResult): string {
  const first = result.content?.[0];
  return first && first.type === "text" ? first.text : "";
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the caller names the shape it expects
export function structured<T = any>(result: CallToolResult): T {
  if (result.isError) throw new Error(`tool answered an error: ${textOf(result)}`);
  return result.structuredContent as T;
}

/** Whether a process (e.g. a managed OpenCode whose pid coding-mcp logged) still exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Poll `check` until it gives a truthy value or the time is up; answers the last value. */
export async function until<T>(check: () => T | Promise<T>, timeoutMs: number, intervalMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value || Date.now() > deadline) return value;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Whether a process whose command line contains `pattern` is running (pgrep -f). */
export function processRunning(pattern: string): boolean {
  try {
    return execFileSync("pgrep", ["-f", pattern], { encoding: "utf8" }).trim().length > 0;
  } catch {
    return false;
  }
}

/**
 * Commands that sleep, for tasks that must still be running when a test acts: each duration ends in
 * a number unique to this test run, so the test finds (or misses) exactly its own process.
 */
export function sleepers() {
  const run = String(Math.floor(Math.random() * 9000) + 1000);
  const command = (seconds: number | string) => `sleep ${seconds}${run}`;
  return {
    /** A fake-model bash call that sleeps `seconds` (plus the run's digits). */
    tool: (seconds: number) => ({ name: "bash", args: { command: command(seconds), description: "Wait" } }),
    command,
    running: (seconds: number | string) => processRunning(command(seconds)),
    /** Stop it, for agents that leave a command running when they die. */
    kill(seconds: number | string): void {
      try {
        execFileSync("pkill", ["-f", command(seconds)]);
      } catch {
        // none left
      }
    },
  };
}
