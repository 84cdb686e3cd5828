import type { ChildProcess } from "node:child_process";
import readline from "node:readline";
import { Readable, Writable } from "node:stream";
import type * as acp from "@agentclientprotocol/sdk/unstable";
import { formatDuration } from "../backend.js";
import { UserError } from "../errors.js";
import type { Logger } from "../log.js";
import { killTree, spawnBound, withTimeout } from "../process.js";

/**
 * One ACP agent process: spawned over stdio in a process group of its own, initialized once, its
 * stderr relayed to coding-mcp's log, and killed with everything it started (also commands it
 * moved into sessions of their own) when it hangs or coding-mcp stops. Requests the agent makes
 * (permission requests) and the updates it sends are handed to the owner.
 */

export interface AgentProcessOptions {
  /** The configured backend name, for messages. */
  backend: string;
  command: string[];
  env: NodeJS.ProcessEnv;
  cwd: string;
  log: Logger;
  /** How long `initialize` may take. */
  startupTimeoutMs: number;
  onUpdate: (params: acp.SessionNotification) => void;
  onPermission: (params: acp.RequestPermissionRequest, signal: AbortSignal) => Promise<acp.RequestPermissionResponse>;
}

/** The agent's command could not start or did not initialize: the caller can fix the config. */
export class AgentStartError extends UserError {
  constructor(message: string, hint: string) {
    super(message, hint, "backend_unavailable");
  }
}

/** The agent went away (crashed, was killed, stopped answering) while a request was open. */
export class AgentGoneError extends Error {
  override readonly name = "AgentGoneError";
}

const STOP_GRACE_MS = 1_000;

type AcpSdk = typeof acp;
let sdkModule: Promise<AcpSdk> | undefined;
/** The ACP SDK, loaded when the first agent starts: a coding-mcp without ACP backends never loads it. */
function loadSdk(): Promise<AcpSdk> {
  sdkModule ??= import("@agentclientprotocol/sdk/unstable");
  return sdkModule;
}

export class AgentProcess {
  readonly child: ChildProcess;
  private readonly connection: acp.ClientConnection;
  private exitInfo?: string;
  readonly exited: Promise<string>;
  capabilities: acp.AgentCapabilities = {};
  agentInfo?: acp.Implementation;
  private readonly recent: string[] = [];
  private readonly killOnExit = () => this.killTree("SIGKILL");

  private constructor(
    private readonly options: AgentProcessOptions,
    sdk: AcpSdk,
  ) {
    const [command, ...args] = options.command;
    // Its own process group, stopped as a whole, and never outliving coding-mcp (the watchdog takes
    // it and the commands it runs along when coding-mcp dies without its exit hook).
    this.child = spawnBound(command!, args, { cwd: options.cwd, env: options.env, stdio: ["pipe", "pipe", "pipe"] });
    process.once("exit", this.killOnExit);
    this.exited = new Promise((resolve) => {
      this.child.once("error", (err: NodeJS.ErrnoException) => {
        this.exitInfo ??= err.code === "ENOENT" ? `command not found: ${command}` : `could not start: ${err.message}`;
        resolve(this.exitInfo);
      });
      this.child.once("exit", (code, signal) => {
        this.exitInfo ??= signal ? `killed by ${signal}` : `exited with code ${code}`;
        process.removeListener("exit", this.killOnExit);
        resolve(this.exitInfo);
      });
    });
    readline.createInterface({ input: this.child.stderr! }).on("line", (line) => {
      this.recent.push(line);
      if (this.recent.length > 20) this.recent.shift();
      options.log.debug(`${options.backend}: ${line}`);
    });
    // Writes to a dead agent fail with EPIPE; the exit is reported through `exited`.
    this.child.stdin!.on("error", () => undefined);
    const stream = sdk.ndJsonStream(Writable.toWeb(this.child.stdin!) as WritableStream<Uint8Array>, Readable.toWeb(this.child.stdout!) as ReadableStream<Uint8Array>);
    const methods = sdk.methods;
    const app = sdk
      .client({ name: "coding-mcp" })
      .onRequest(methods.client.session.requestPermission, ({ params, signal }) => options.onPermission(params, signal))
      // OpenCode writes an approved edit itself and then still sends fs/write_text_file, although the
      // client said it cannot write files: acknowledge it and write nothing.
      .onRequest(methods.client.fs.writeTextFile, () => ({}))
      // Updates are taken raw, so that a variant this SDK does not know yet is skipped, not an error.
      .onNotification("*", ({ method, params }) => {
        if (method === methods.client.session.update && params && typeof params === "object") options.onUpdate(params as acp.SessionNotification);
      });
    this.connection = app.connect(stream);
  }

  /** Spawn and initialize; a command that cannot start or an agent that does not answer is a clear error. */
  static async start(options: AgentProcessOptions): Promise<AgentProcess> {
    const sdk = await loadSdk();
    const agent = new AgentProcess(options, sdk);
    const where = `backend "${options.backend}" (command: ${options.command.join(" ")})`;
    try {
      const init = await agent.within(
        agent.request(sdk.methods.agent.initialize, {
          protocolVersion: sdk.PROTOCOL_VERSION,
          // No file system and no terminal: the agent uses its own tools in the workspace.
          clientCapabilities: { fs: { readTextFile: false, writeTextFile: false }, terminal: false },
          clientInfo: { name: "coding-mcp", version: "1" },
        }),
        options.startupTimeoutMs,
        "initialize",
      );
      agent.capabilities = init.agentCapabilities ?? {};
      if (init.agentInfo) agent.agentInfo = init.agentInfo;
      options.log.info(`ACP agent of backend "${options.backend}" ready (pid ${agent.child.pid}, ${init.agentInfo?.name ?? "unnamed"} ${init.agentInfo?.version ?? ""})`.trim());
      return agent;
    } catch (err) {
      // Why it failed, before our own stop() adds a "killed by SIGTERM".
      const detail = agent.exitInfo ?? (err instanceof Error ? err.message : String(err));
      await agent.stop();
      const stderr = agent.recent.length ? `; its last output: ${agent.recent.slice(-5).join(" | ").slice(0, 600)}` : "";
      throw new AgentStartError(
        `the ACP agent of ${where} could not be started: ${detail}${stderr}`,
        `Check backends.${options.backend}.command in the config: install the agent, or give the full path of its command.`,
      );
    }
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null && !this.exitInfo;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** A request to the agent that fails as soon as the agent is gone. */
  request<M extends acp.AgentRequestMethod>(method: M, params: acp.AgentRequestParamsByMethod[M]): Promise<acp.AgentRequestResponsesByMethod[M]> {
    const goneError = (why: string) => new AgentGoneError(`the ACP agent of backend "${this.options.backend}" ${why}`);
    const gone = this.exited.then((why) => {
      throw goneError(why);
    });
    // A dying agent closes its stdout a moment before its exit is seen: report the exit, not the closed stream.
    const call = this.connection.agent.request(method, params).catch(async (err: unknown) => {
      const why = await Promise.race([this.exited, new Promise<undefined>((r) => setTimeout(() => r(undefined), 1_000).unref())]);
      throw why ? goneError(why) : err;
    });
    return Promise.race([call, gone]);
  }

  notify<M extends acp.AgentNotificationMethod>(method: M, params: acp.AgentNotificationParamsByMethod[M]): Promise<void> {
    return this.connection.agent.notify(method, params);
  }

  /** `promise`, or an AgentGoneError after `ms` (the agent is then considered hung). */
  within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
    return withTimeout(promise, ms, () => new AgentGoneError(`the ACP agent of backend "${this.options.backend}" did not answer ${what} within ${formatDuration(ms)}`));
  }

  /** Stop the agent and everything it started: SIGTERM, a short grace, then SIGKILL. */
  async stop(): Promise<void> {
    if (this.child.pid === undefined) return;
    this.connection.close();
    this.killTree("SIGTERM");
    const stopped = await Promise.race([this.exited.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), STOP_GRACE_MS).unref())]);
    this.killTree("SIGKILL");
    if (!stopped) await Promise.race([this.exited, new Promise((r) => setTimeout(r, STOP_GRACE_MS).unref())]);
    process.removeListener("exit", this.killOnExit);
  }

  /** Signal the agent, its group and every process descended from it, also those in sessions of their own. */
  killTree(signal: NodeJS.Signals): void {
    if (this.child.pid !== undefined) killTree(this.child.pid, signal);
  }
}

