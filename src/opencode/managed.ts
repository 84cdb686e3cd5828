import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import readline from "node:readline";
import type { Logger } from "../log.js";
import { freeLoopbackPort, killGroup, killTree, processStartTime, sleep, spawnBound, withTimeout } from "../process.js";
import { OpencodeClient } from "./client.js";

/**
 * The OpenCode server coding-mcp starts itself when no OPENCODE_URL is given: `opencode serve` from
 * the opencode-ai dependency, on a free loopback port, behind a random password, in its own process
 * group (so the commands its tools started die with it), health-checked before first use and
 * stopped with coding-mcp, also when coding-mcp dies (src/process.ts). Its output goes to
 * coding-mcp's log (stderr), never to stdout. The test support and the benchmark start their
 * OpenCode servers with it too.
 */

export interface ManagedOpencodeOptions {
  log: Logger;
  /** Environment for the child: the caller removes the secrets OpenCode must never see. */
  env: NodeJS.ProcessEnv;
  cwd: string;
  startupTimeoutMs: number;
  /** Told the random password before it is used, so the redactor can remove it from every output. */
  registerSecret?: (value: string) => void;
  /**
   * coding-mcp's state directory: the running server's pid is recorded under it, so that a later
   * coding-mcp on the same state stops what one that died without its exit hook left behind.
   */
  stateDir?: string;
}

export interface RunningOpencode {
  url: string;
  username: string;
  password: string;
  pid: number;
}

// Short: an MCP client (the SDK's among them) SIGKILLs a server that takes over ~2 s to exit, which would orphan OpenCode.
const STOP_GRACE_MS = 1_200;

/** The platform binary of the opencode-ai package (its postinstall may not have run). */
export function resolveOpencodeBinary(): string {
  const require = createRequire(import.meta.url);
  const platform = process.platform === "win32" ? "windows" : process.platform;
  const exe = process.platform === "win32" ? "opencode.exe" : "opencode";
  const candidates = [`opencode-${platform}-${process.arch}`, `opencode-${platform}-${process.arch}-baseline`];
  for (const name of candidates) {
    try {
      const bin = path.join(path.dirname(require.resolve(`${name}/package.json`)), "bin", exe);
      if (fs.existsSync(bin)) return bin;
    } catch {
      // not installed for this platform; try the next
    }
  }
  try {
    const bin = path.join(path.dirname(require.resolve("opencode-ai/package.json")), "bin", "opencode.exe");
    if (fs.existsSync(bin)) return bin;
  } catch {
    // fall through
  }
  throw new Error(
    "cannot find the opencode binary of the opencode-ai package; reinstall coding-mcp's dependencies (npm install) or set OPENCODE_URL to a running OpenCode 1.18 server (coding-mcp doctor checks the whole setup)",
  );
}

export class ManagedOpencode {
  private child?: ChildProcess;
  private running?: RunningOpencode;
  private starting?: Promise<RunningOpencode>;
  private stopping = false;
  private leftoversChecked = false;

  constructor(private readonly options: ManagedOpencodeOptions) {}

  /** Start it if it is not running (first use, or after it died); concurrent callers share one start. */
  ensure(): Promise<RunningOpencode> {
    if (this.running && this.child && this.child.exitCode === null && this.child.signalCode === null) {
      return Promise.resolve(this.running);
    }
    this.starting ??= this.start().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private async start(): Promise<RunningOpencode> {
    const { log, startupTimeoutMs } = this.options;
    if (!this.leftoversChecked) {
      this.leftoversChecked = true;
      this.stopLeftovers();
    }
    const bin = resolveOpencodeBinary();
    const port = await freeLoopbackPort();
    const password = randomBytes(24).toString("hex");
    this.options.registerSecret?.(password);
    const username = "opencode";
    const env = { ...this.options.env, OPENCODE_SERVER_PASSWORD: password, OPENCODE_SERVER_USERNAME: username };
    log.info(`starting managed OpenCode on 127.0.0.1:${port}`, { bin });
    // Its own process group, stopped as a whole, and never outliving coding-mcp.
    const child = spawnBound(bin, ["serve", "--hostname", "127.0.0.1", "--port", String(port)], {
      cwd: this.options.cwd,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    this.recordPid(child.pid);
    const recent: string[] = [];
    const relay = (stream: NodeJS.ReadableStream, onLine?: (line: string) => void) => {
      readline.createInterface({ input: stream }).on("line", (line) => {
        recent.push(line);
        if (recent.length > 20) recent.shift();
        log.debug(`opencode: ${line}`);
        onLine?.(line);
      });
    };
    const listening = new Promise<void>((resolve, reject) => {
      relay(child.stdout!, (line) => {
        if (line.includes("listening on")) resolve();
      });
      relay(child.stderr!);
      child.once("error", reject);
      child.once("exit", (code, signal) =>
        reject(new Error(`opencode serve exited during start-up (${signal ?? `code ${code}`}): ${recent.slice(-5).join(" | ")}`)),
      );
    });
    listening.catch(() => undefined); // awaited below; this only keeps a late rejection from going unhandled
    child.once("exit", (code, signal) => {
      // spawnBound kills what is left in its group. (Its bash commands run in sessions of their own;
      // OpenCode's abort ends those, or the watchdog when coding-mcp dies.)
      if (this.child === child) {
        this.forgetPid();
        this.running = undefined;
        if (this.stopping) log.info(`managed OpenCode stopped`);
        else log.warn(`managed OpenCode exited unexpectedly (${signal ?? `code ${code}`}); it is restarted on the next call`);
      }
    });

    const url = `http://127.0.0.1:${port}`;
    const client = new OpencodeClient({ baseUrl: url, username, password });
    try {
      await withTimeout(listening, startupTimeoutMs, `opencode serve did not report listening within ${startupTimeoutMs / 1000} s`);
      // A connection made in the first moments after "listening" has been seen to hang: poll with short attempts.
      const deadline = Date.now() + startupTimeoutMs;
      for (;;) {
        try {
          const health = await client.health(2_000);
          if (health.healthy) break;
        } catch (err) {
          if (Date.now() > deadline) throw new Error(`managed OpenCode did not become healthy: ${(err as Error).message}`);
        }
        await sleep(150);
      }
    } catch (err) {
      this.killGroup("SIGKILL");
      throw err;
    } finally {
      await client.close();
    }
    this.running = { url, username, password, pid: child.pid! };
    log.info(`managed OpenCode ready at ${url} (pid ${child.pid})`);
    return this.running;
  }

  /** SIGTERM the process group, then SIGKILL after a grace period: opencode has been seen to outlive SIGTERM. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    this.stopping = true;
    this.killGroup("SIGTERM");
    const timer = setTimeout(() => this.killGroup("SIGKILL"), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
    // Commands its tools started may linger in the group after the server itself exited.
    this.killGroup("SIGKILL");
    this.running = undefined;
  }

  private killGroup(signal: NodeJS.Signals): void {
    const pid = this.child?.pid;
    if (pid) killGroup(pid, signal);
  }

  // The pid file: <stateDir>/opencode/<coding-mcp's pid>.json, one per coding-mcp sharing the state.
  private pidFile(): string | undefined {
    return this.options.stateDir && path.join(this.options.stateDir, "opencode", `${process.pid}.json`);
  }

  private recordPid(pid: number | undefined): void {
    const file = this.pidFile();
    const start = pid === undefined ? undefined : processStartTime(pid);
    if (!file || pid === undefined || start === undefined) return;
    const record: PidRecord = { pid, start, owner: process.pid, ownerStart: processStartTime(process.pid) ?? "" };
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, JSON.stringify(record) + "\n");
    } catch (err) {
      this.options.log.warn(`cannot record the managed OpenCode's pid in ${file}: ${(err as Error).message}`);
    }
  }

  private forgetPid(): void {
    const file = this.pidFile();
    if (file) fs.rmSync(file, { force: true });
  }

  /**
   * Stop the OpenCode servers that coding-mcp processes which died on this state left running. A
   * record names a process by pid and start time, so a pid the system gave to something else since
   * is never touched; a record whose coding-mcp still runs (another client's) is left alone.
   */
  private stopLeftovers(): void {
    const dir = this.options.stateDir && path.join(this.options.stateDir, "opencode");
    if (!dir) return;
    let names: string[];
    try {
      names = fs.readdirSync(dir).filter((n) => n.endsWith(".json"));
    } catch {
      return; // none recorded yet
    }
    for (const name of names) {
      const file = path.join(dir, name);
      let record: PidRecord;
      try {
        record = JSON.parse(fs.readFileSync(file, "utf8")) as PidRecord;
      } catch {
        fs.rmSync(file, { force: true });
        continue;
      }
      if (record.owner !== process.pid && processStartTime(record.owner) === record.ownerStart) continue;
      if (processStartTime(record.pid) === record.start) {
        killTree(record.pid);
        this.options.log.warn(`stopped the OpenCode (pid ${record.pid}) that coding-mcp pid ${record.owner}, which ended abruptly, left running`);
      }
      fs.rmSync(file, { force: true });
    }
  }
}

/** One managed OpenCode, named by pid and start time, and the coding-mcp that started it. */
interface PidRecord {
  pid: number;
  start: string;
  owner: number;
  ownerStart: string;
}
