import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { stringify } from "yaml";
import { hermeticOpencodeEnv, opencodeConfigFor, startFakeModel } from "./fake-model.mjs";

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
  /** Merged into the generated config file (sections opencode, workspace, git, limits). */
  config?: Record<string, Record<string, unknown>>;
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
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build first (npm test does)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "coding-mcp-test-"));
  const basePath = path.join(dir, "workspaces");
  const allowedRoot = path.join(dir, "repos");
  fs.mkdirSync(allowedRoot, { recursive: true });
  const fake = await startFakeModel();
  const config = {
    workspace: { base_path: basePath, allowed_roots: [allowedRoot], ...(options.config?.workspace ?? {}) },
    git: { allow_file_remotes: true, user_name: "Test Bot", user_email: "bot@example.test", ...(options.config?.git ?? {}) },
    limits: { task_timeout_min: 2, ...(options.config?.limits ?? {}) },
    ...(options.config?.opencode ? { opencode: options.config.opencode } : {}),
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

/** The text of a tool result (its first text content). */
export function textOf(result: CallToolResult): string {
  const first = result.content?.[0];
  return first && first.type === "text" ? first.text : "";
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function structured<T = any>(result: CallToolResult): T {
  if (result.isError) throw new Error(`tool answered an error: ${textOf(result)}`);
  return result.structuredContent as T;
}
