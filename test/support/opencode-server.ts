import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { resolveOpencodeBinary } from "../../src/opencode/managed.js";
import { hermeticOpencodeEnv, opencodeConfigFor } from "./fake-model.mjs";

/**
 * A real `opencode serve` that a test starts and stops itself (an "external" OpenCode for
 * coding-mcp's OPENCODE_URL), talking to the fake model, behind a random password.
 */
export interface OpencodeServer {
  url: string;
  password: string;
  pid: number;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

export async function startOpencodeServer(options: { home: string; fakeBaseURL: string }): Promise<OpencodeServer> {
  const port = await freePort();
  const password = randomBytes(16).toString("hex");
  const child = spawn(resolveOpencodeBinary(), ["serve", "--hostname", "127.0.0.1", "--port", String(port)], {
    env: {
      ...process.env,
      ...hermeticOpencodeEnv(options.home),
      OPENCODE_CONFIG_CONTENT: JSON.stringify(opencodeConfigFor(options.fakeBaseURL)),
      OPENCODE_SERVER_PASSWORD: password,
    },
    detached: true,
    stdio: "ignore",
  });
  const url = `http://127.0.0.1:${port}`;
  const auth = "Basic " + Buffer.from(`opencode:${password}`).toString("base64");
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const res = await fetch(`${url}/global/health`, { headers: { authorization: auth }, signal: AbortSignal.timeout(1500) });
      if (res.ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      process.kill(-child.pid!, "SIGKILL");
      throw new Error("opencode serve did not become healthy within 60 s");
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    password,
    pid: child.pid!,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      try {
        process.kill(-child.pid!, "SIGTERM");
      } catch {
        return;
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-child.pid!, "SIGKILL");
        } catch {
          // gone
        }
      }, 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}
