import http from "node:http";
import type { AddressInfo } from "node:net";
import net from "node:net";

/**
 * The attacker's server for the git-config attack tests: a loopback HTTP proxy that records every
 * request line and header it receives (Basic credentials also decoded), and the bytes sent through
 * its CONNECT tunnels. It really does its job, so an unprotected push or clone through it succeeds
 * and leaks: plain proxy requests ("GET http://127.0.0.1:PORT/…") are forwarded to their target,
 * CONNECT opens a tunnel, and a request sent to it directly (a remote URL rewritten to point here)
 * is forwarded to `upstream`. It forwards to loopback hosts only.
 */

export interface AttackerProxy {
  /** http://127.0.0.1:PORT, for http.proxy and for rewritten remote URLs. */
  baseUrl: string;
  /** What it received, one entry per request or tunnel. */
  log: string[];
  /** The first entry of `log` from index `from` on that contains one of `needles`, if any. */
  find(needles: string[], from?: number): string | undefined;
  close(): Promise<void>;
}

const TUNNEL_BYTES_KEPT = 256 * 1024;

function isLoopback(hostname: string): boolean {
  return ["127.0.0.1", "localhost", "::1", "[::1]"].includes(hostname);
}

/** Header lines as received, plus the decoded user:password of every Basic credential among them. */
function describe(req: http.IncomingMessage): string {
  const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const [name, value] = [req.rawHeaders[i]!, req.rawHeaders[i + 1]!];
    lines.push(`${name}: ${value}`);
    const basic = /^Basic\s+(\S+)/i.exec(value);
    if (basic) lines.push(`  (decoded ${name}: ${Buffer.from(basic[1]!, "base64").toString("utf8")})`);
  }
  return lines.join("\n");
}

export async function startAttackerProxy(options: { upstream: string }): Promise<AttackerProxy> {
  const log: string[] = [];
  const sockets = new Set<net.Socket>();

  const server = http.createServer((req, res) => {
    log.push(describe(req));
    const target = new URL(req.url?.startsWith("http://") ? req.url : `${options.upstream}${req.url ?? "/"}`);
    if (!isLoopback(target.hostname)) {
      res.writeHead(502).end("this test proxy forwards to loopback only\n");
      return;
    }
    const headers: http.OutgoingHttpHeaders = { ...req.headers, host: target.host };
    delete headers["proxy-authorization"];
    delete headers["proxy-connection"];
    const forward = http.request(target, { method: req.method, headers }, (upstream) => {
      res.writeHead(upstream.statusCode ?? 502, upstream.headers);
      upstream.pipe(res);
    });
    forward.on("error", () => res.headersSent || res.writeHead(502).end());
    req.pipe(forward);
  });

  server.on("connect", (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
    const entry = log.push(describe(req)) - 1;
    const [hostname = "", port = "443"] = (req.url ?? "").split(/:(?=\d+$)/);
    if (!isLoopback(hostname)) {
      client.end("HTTP/1.1 403 Forbidden\r\n\r\n");
      return;
    }
    const upstream = net.connect(Number(port), hostname, () => {
      client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
      if (head.length) upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    sockets.add(upstream);
    upstream.on("close", () => sockets.delete(upstream));
    // What goes through the tunnel is logged too: plain HTTP inside CONNECT carries its headers in clear.
    let kept = head.length;
    log[entry] += `\n${head.toString("latin1")}`;
    client.on("data", (chunk: Buffer) => {
      if (kept >= TUNNEL_BYTES_KEPT) return;
      kept += chunk.length;
      log[entry] += chunk.toString("latin1");
    });
    upstream.on("error", () => client.destroy());
    client.on("error", () => upstream.destroy());
  });

  server.on("connection", (socket: net.Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    log,
    find: (needles, from = 0) => log.slice(from).find((entry) => needles.some((n) => entry.includes(n))),
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
