import fs from "node:fs";
import path from "node:path";
import { ManagedOpencode } from "../../src/opencode/managed.js";
import { opencodeConfigFor } from "./fake-model.mjs";
import { hermeticOpencodeEnv } from "./opencode-home.mjs";
import type { Harness } from "./harness.js";

/**
 * A real `opencode serve` that a test starts and stops itself (an "external" OpenCode for
 * coding-mcp's OPENCODE_URL), talking to the fake model, behind a random password. Started by the
 * same launcher coding-mcp uses for its managed OpenCode.
 */
export interface OpencodeServer {
  url: string;
  password: string;
  pid: number;
  stop(): Promise<void>;
}

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

export async function startOpencodeServer(options: { home: string; fakeBaseURL: string }): Promise<OpencodeServer> {
  const server = new ManagedOpencode({
    log: quiet,
    env: {
      ...process.env,
      ...hermeticOpencodeEnv(options.home),
      OPENCODE_CONFIG_CONTENT: JSON.stringify(opencodeConfigFor(options.fakeBaseURL)),
    },
    cwd: process.cwd(),
    startupTimeoutMs: 60_000,
  });
  const running = await server.ensure();
  return { url: running.url, password: running.password, pid: running.pid, stop: () => server.stop() };
}

/**
 * An OpenCode of the test's own (outliving coding-mcp's restarts, readable by the test), with the
 * harness's coding-mcp pointed at it (opencode.url + its password) and restarted to use it.
 */
export async function useOwnOpencode(h: Harness): Promise<OpencodeServer> {
  const server = await startOpencodeServer({ home: path.join(h.dir, "external-opencode"), fakeBaseURL: h.fake.baseURL });
  fs.appendFileSync(h.configFile, `opencode:\n  url: ${server.url}\n`);
  h.env.OPENCODE_SERVER_PASSWORD = server.password;
  await h.restart();
  return server;
}
