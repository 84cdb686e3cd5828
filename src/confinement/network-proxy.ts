import dns from "node:dns/promises";
import fs from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import type { Duplex } from "node:stream";
import type { Logger } from "../log.js";
import { shellQuote } from "./launcher.js";
import { allowedBy, isLocalAddress, normalizeHost, type AllowEntry } from "./network-allow.js";

/**
 * The allowlisting proxy behind `sandbox.network.allow`. Confined commands have no network of their
 * own (bubblewrap --unshare-net); inside the sandbox socat bridges 127.0.0.1:3128 to this proxy's
 * Unix socket, and HTTP(S)_PROXY point there. It forwards plain HTTP (absolute-form requests) and
 * tunnels CONNECT (https and anything else over TCP) to listed hosts only, and refuses the rest with
 * 403 and a body that says why. It parses the target once, checks the host as parsed and as resolved
 * (a listed name that resolves to this machine is refused), and connects to the addresses it checked.
 * Plain node:http: the one library that does this (sandbox-runtime's) needs Node 22 and runs as a
 * process-wide singleton.
 */

/** The port the sandbox's bridge listens on, inside its own network namespace. */
export const SANDBOX_PROXY_PORT = 3128;
/** Where the proxy's socket directory is bound inside the sandbox. */
export const SANDBOX_PROXY_DIR = "/run/coding-mcp-network";
export const PROXY_SOCKET_NAME = "proxy.sock";

const CONNECT_TIMEOUT_MS = 10_000;
/** Linux's sun_path holds 108 bytes with the terminating NUL. */
const MAX_SOCKET_PATH = 107;

export type Lookup = (host: string) => Promise<string[]>;

export interface NetworkProxyOptions {
  allow: readonly AllowEntry[];
  log: Logger;
  /** For tests: name resolution (default: the system's, every address). */
  lookup?: Lookup;
  connectTimeoutMs?: number;
}

/** Why a request is not forwarded: the status and the body the client gets. */
class Refusal extends Error {
  constructor(
    readonly status: 400 | 403 | 502,
    message: string,
  ) {
    super(message);
  }
}

const HOP_BY_HOP = new Set(["connection", "proxy-connection", "keep-alive", "proxy-authorization", "proxy-authenticate", "te", "trailer", "transfer-encoding", "upgrade"]);

export class NetworkProxy {
  private readonly server: http.Server;
  private readonly sockets = new Set<Duplex>();
  private readonly lookup: Lookup;

  constructor(private readonly options: NetworkProxyOptions) {
    this.lookup = options.lookup ?? systemLookup;
    this.server = http.createServer((req, res) => void this.forward(req, res));
    this.server.on("connect", (req: http.IncomingMessage, socket: Duplex, head: Buffer) => void this.tunnel(req, socket, head));
    this.server.on("connection", (socket: net.Socket) => this.track(socket));
    this.server.on("clientError", (_err, socket: Duplex) => {
      if (socket.writable) socket.end(rawResponse(400, "coding-mcp sandbox proxy: malformed request\n"));
      else socket.destroy();
    });
  }

  /** Listen on a Unix socket (a stale one from an earlier run is replaced). */
  async listen(socketPath: string): Promise<void> {
    if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
      throw new Error(`the network proxy's socket path ${socketPath} is longer than ${MAX_SOCKET_PATH} bytes; give workspace.base_path a shorter path`);
    }
    await fs.mkdir(path.dirname(socketPath), { recursive: true, mode: 0o700 });
    await fs.rm(socketPath, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(socketPath, () => {
        this.server.off("error", reject);
        resolve();
      });
    });
    await fs.chmod(socketPath, 0o600);
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    if (!this.server.listening) return;
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Plain HTTP: an absolute-form request ("GET http://host/path"), forwarded with the Host it names. */
  private async forward(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let upstream: net.Socket | undefined;
    try {
      let url: URL;
      try {
        url = new URL(req.url ?? "");
      } catch {
        throw new Refusal(400, `this is a proxy: send absolute http:// URLs (HTTP_PROXY), or CONNECT for https (got ${JSON.stringify(req.url)})`);
      }
      if (url.protocol !== "http:") throw new Refusal(400, `${url.protocol}// URLs go through CONNECT (HTTPS_PROXY), not as a plain request`);
      const host = normalizeHost(url.hostname) ?? "";
      const port = url.port ? Number(url.port) : 80;
      const addresses = await this.authorize(host, port, `${req.method ?? "GET"} ${url.origin}`);
      upstream = await this.connect(addresses, port, host);
      const connection = upstream;
      const headers = forwardedHeaders(req.rawHeaders);
      headers.push("Host", url.host, "Connection", "close");
      const outgoing = http.request({ createConnection: () => connection, method: req.method, path: url.pathname + url.search, headers, setHost: false });
      outgoing.on("response", (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, forwardedHeaders(answer.rawHeaders));
        answer.pipe(res);
        answer.on("error", () => res.destroy());
      });
      outgoing.on("error", (err) => {
        if (res.headersSent) res.destroy();
        else respond(res, 502, `coding-mcp sandbox proxy: ${url.host} did not answer: ${err.message}\n`);
      });
      req.pipe(outgoing);
    } catch (err) {
      upstream?.destroy();
      const refusal = asRefusal(err);
      respond(res, refusal.status, `coding-mcp sandbox proxy: ${refusal.message}\n`);
    }
  }

  /** CONNECT host:port: a TCP tunnel once the host is allowed. */
  private async tunnel(req: http.IncomingMessage, client: Duplex, head: Buffer): Promise<void> {
    client.on("error", () => client.destroy());
    try {
      const { host, port } = parseAuthority(req.url ?? "");
      const addresses = await this.authorize(host, port, `CONNECT ${req.url}`);
      const upstream = await this.connect(addresses, port, host);
      if (client.destroyed) {
        upstream.destroy();
        return;
      }
      this.track(upstream);
      upstream.on("error", () => client.destroy());
      upstream.on("close", () => client.destroy());
      client.on("close", () => upstream.destroy());
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length) upstream.write(head);
      client.pipe(upstream).pipe(client);
    } catch (err) {
      const refusal = asRefusal(err);
      if (client.writable) client.end(rawResponse(refusal.status, `coding-mcp sandbox proxy: ${refusal.message}\n`));
    }
  }

  /** The addresses the request may go to, or a Refusal that says why not. */
  private async authorize(host: string, port: number, what: string): Promise<string[]> {
    const entry = host ? allowedBy(this.options.allow, host, port) : undefined;
    if (!entry) {
      this.options.log.info(`sandbox network: refused ${what}: not in sandbox.network.allow`);
      throw new Refusal(403, `${displayHost(host)}:${port} is not in sandbox.network.allow, so the agent's commands may not reach it (ask the owner to list it)`);
    }
    let addresses: string[];
    try {
      addresses = net.isIP(host) ? [host] : await this.lookup(host);
    } catch (err) {
      throw new Refusal(502, `${host} could not be resolved: ${(err as Error).message}`);
    }
    if (addresses.length === 0) throw new Refusal(502, `${host} has no address`);
    const local = addresses.find(isLocalAddress);
    if (local && !entry.local) {
      this.options.log.info(`sandbox network: refused ${what}: ${host} resolves to ${local}, an address of this machine`);
      throw new Refusal(403, `${host} resolves to ${local}, an address of this machine; only entries naming it with a port (such as 127.0.0.1:${port}) reach it`);
    }
    this.options.log.debug(`sandbox network: ${what} allowed by ${JSON.stringify(entry.text)}`);
    return addresses;
  }

  /** A connection to the first address that answers (the checked ones: no second resolution). */
  private async connect(addresses: string[], port: number, host: string): Promise<net.Socket> {
    let last: Error | undefined;
    for (const address of addresses) {
      try {
        return await connectTo(address, port, this.options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS);
      } catch (err) {
        last = err as Error;
      }
    }
    throw new Refusal(502, `${displayHost(host)}:${port} could not be reached: ${last?.message ?? "no address"}`);
  }

  private track(socket: Duplex): void {
    this.sockets.add(socket);
    socket.on("close", () => this.sockets.delete(socket));
  }
}

/**
 * The environment that points a confined command's HTTP clients at the bridge; NO_PROXY empty so
 * loopback goes through it too; NODE_USE_ENV_PROXY for the Node versions whose fetch and http read it.
 */
export function proxyEnvironment(): Record<string, string> {
  const url = `http://127.0.0.1:${SANDBOX_PROXY_PORT}`;
  return { HTTP_PROXY: url, HTTPS_PROXY: url, http_proxy: url, https_proxy: url, NO_PROXY: "", no_proxy: "", NODE_USE_ENV_PROXY: "1" };
}

/**
 * Bash run inside the sandbox before the command: socat bridges 127.0.0.1:3128 to the proxy's
 * socket, and the command starts once the port listens (read from /proc/net/tcp; bounded: if the
 * bridge never comes up, connections fail inside the command as an ordinary error).
 */
export function bridgeScript(socat: string): string {
  const listening = ` 0100007F:${SANDBOX_PROXY_PORT.toString(16).toUpperCase().padStart(4, "0")} 00000000:0000 0A `;
  return [
    `${shellQuote(socat)} TCP-LISTEN:${SANDBOX_PROXY_PORT},bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:${SANDBOX_PROXY_DIR}/${PROXY_SOCKET_NAME} </dev/null >/dev/null 2>&1 &`,
    `coding_mcp_i=0`,
    `while [ $coding_mcp_i -lt 2000 ]; do`,
    `  read -r -d '' coding_mcp_tcp < /proc/net/tcp`,
    `  case $coding_mcp_tcp in *${shellQuote(listening)}*) break ;; esac`,
    `  sleep 0.001; coding_mcp_i=$((coding_mcp_i + 1))`,
    `done`,
    `unset coding_mcp_i coding_mcp_tcp`,
  ].join("\n");
}

/** "host:port" exactly (CONNECT's authority form): no userinfo, path or anything a parser could read two ways. */
export function parseAuthority(target: string): { host: string; port: number } {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]/\\@?#%\s]+):(\d{1,5})$/.exec(target);
  const host = match ? normalizeHost(match[1]!) : undefined;
  const port = match ? Number(match[2]) : 0;
  if (!host || port < 1 || port > 65535) throw new Refusal(400, `CONNECT takes host:port, not ${JSON.stringify(target)}`);
  return { host, port };
}

async function systemLookup(host: string): Promise<string[]> {
  return (await dns.lookup(host, { all: true })).map((a) => a.address);
}

function connectTo(address: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: address, port });
    const timer = setTimeout(() => socket.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      resolve(socket);
    });
    socket.once("error", (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Raw header pairs without the hop-by-hop ones (and those the Connection header names). */
function forwardedHeaders(raw: string[]): string[] {
  const drop = new Set(HOP_BY_HOP);
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === "connection") for (const name of raw[i + 1]!.split(",")) drop.add(name.trim().toLowerCase());
  }
  drop.add("host");
  const kept: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (!drop.has(raw[i]!.toLowerCase())) kept.push(raw[i]!, raw[i + 1]!);
  return kept;
}

function asRefusal(err: unknown): Refusal {
  return err instanceof Refusal ? err : new Refusal(502, (err as Error).message);
}

function respond(res: http.ServerResponse, status: number, body: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { "Content-Type": "text/plain; charset=utf-8", "Content-Length": Buffer.byteLength(body), Connection: "close" });
  res.end(body);
}

function rawResponse(status: number, body: string): string {
  const reason = http.STATUS_CODES[status] ?? "Error";
  return `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`;
}

function displayHost(host: string): string {
  return net.isIPv6(host) ? `[${host}]` : host || "(no host)";
}
