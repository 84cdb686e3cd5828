import fs from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { allowedBy, isLocalAddress, normalizeHost, parseAllowEntry, parseAllowList } from "../../src/confinement/network-allow.js";
import { NetworkProxy, parseAuthority } from "../../src/confinement/network-proxy.js";

/**
 * sandbox.network.allow: the host matching (pure), and the proxy itself on a Unix socket, asked as
 * a confined command's HTTP client would ask it (plain HTTP and CONNECT), with two real loopback
 * servers: the listed one answers, the other is never connected to.
 */

const quiet = { debug() {}, info() {}, warn() {}, error() {} };

describe("allow list entries", () => {
  it("parses host, host:port, *.domain and IP literals, normalized as a URL would be", () => {
    expect(parseAllowEntry("Registry.NPMJS.org.")).toMatchObject({ host: "registry.npmjs.org", wildcard: false, local: false });
    expect(parseAllowEntry("registry.npmjs.org").port).toBeUndefined();
    expect(parseAllowEntry("example.com:8080")).toMatchObject({ host: "example.com", port: 8080 });
    expect(parseAllowEntry("*.example.com")).toMatchObject({ host: "example.com", wildcard: true });
    expect(parseAllowEntry("bücher.ch")).toMatchObject({ host: "xn--bcher-kva.ch" });
    expect(parseAllowEntry("127.0.0.1:3000")).toMatchObject({ host: "127.0.0.1", port: 3000, local: true });
    expect(parseAllowEntry("[0:0:0:0:0:0:0:1]:3000")).toMatchObject({ host: "::1", port: 3000, local: true });
    expect(parseAllowEntry("localhost:5000")).toMatchObject({ host: "localhost", local: true });
    expect(parseAllowEntry("10.1.2.3")).toMatchObject({ host: "10.1.2.3", local: false });
  });

  it.each([
    ["https://example.com", "is a URL"],
    ["user@example.com", "is not a host"],
    ["example.com/path", "is not a host"],
    ["exa mple.com", "is not a host"],
    ["example.com:0", "port outside"],
    ["example.com:70000", "port outside"],
    ["*.10.0.0.1", "wildcard before an IP"],
    ["ex*ample.com", "is not a host"],
    ["127.0.0.1", "name the one port"],
    ["localhost", "name the one port"],
    ["0x7f.1", "name the one port"],
    ["[::1]", "name the one port"],
  ])("refuses %s, saying what to write instead", (entry, why) => {
    expect(() => parseAllowEntry(entry)).toThrow(why);
  });

  it("matches names exactly, subdomains under a wildcard only, and the port when given", () => {
    const list = parseAllowList(["registry.npmjs.org", "*.pythonhosted.org", "example.com:8080", "127.0.0.1:3000"]);
    const match = (host: string, port: number) => allowedBy(list, host, port)?.text;
    expect(match("registry.npmjs.org", 443)).toBe("registry.npmjs.org");
    expect(match("registry.npmjs.org", 22)).toBe("registry.npmjs.org");
    expect(match("files.pythonhosted.org", 443)).toBe("*.pythonhosted.org");
    expect(match("pythonhosted.org", 443)).toBeUndefined();
    expect(match("evilpythonhosted.org", 443)).toBeUndefined();
    expect(match("registry.npmjs.org.evil.com", 443)).toBeUndefined();
    expect(match("example.com", 8080)).toBe("example.com:8080");
    expect(match("example.com", 80)).toBeUndefined();
    expect(match("127.0.0.1", 3000)).toBe("127.0.0.1:3000");
    expect(match("127.0.0.1", 3001)).toBeUndefined();
    expect(match("127.0.0.2", 3000)).toBeUndefined();
  });

  it("sees through spellings of the same host", () => {
    for (const spelled of ["2130706433", "0x7f.1", "127.1", "0177.0.0.1", "127.0.0.1."]) expect(normalizeHost(spelled), spelled).toBe("127.0.0.1");
    expect(normalizeHost("[::ffff:127.0.0.1]")).toBe("::ffff:7f00:1");
    expect(normalizeHost("a@b")).toBeUndefined();
    expect(normalizeHost("a/b")).toBeUndefined();
    expect(isLocalAddress("::ffff:7f00:1")).toBe(true);
    expect(isLocalAddress("169.254.169.254")).toBe(true);
    expect(isLocalAddress("0.0.0.0")).toBe(true);
    expect(isLocalAddress("fe80::1")).toBe(true);
    expect(isLocalAddress("93.184.216.34")).toBe(false);
  });

  it("takes CONNECT targets only as host:port", () => {
    expect(parseAuthority("example.com:443")).toEqual({ host: "example.com", port: 443 });
    expect(parseAuthority("[::1]:443")).toEqual({ host: "::1", port: 443 });
    for (const bad of ["allowed.com@evil.com:443", "evil.com/allowed.com:443", "allowed.com", "allowed.com:443/x", "evil.com\\allowed.com:443", "allowed.com:0", "allowed.com%2e:443"]) {
      expect(() => parseAuthority(bad), bad).toThrow("CONNECT takes host:port");
    }
  });
});

describe("the proxy", () => {
  let dir: string;
  let socketPath: string;
  let proxy: NetworkProxy;
  let listed: http.Server;
  let unlisted: http.Server;
  let listedPort: number;
  let unlistedPort: number;
  const unlistedHits: string[] = [];
  /** Names resolved by the test: a listed name that resolves to this machine, and one that resolves nowhere. */
  const names: Record<string, string[]> = { localhost: ["127.0.0.1"], "rebound.example.com": ["127.0.0.1"], "mapped.example.com": ["::ffff:127.0.0.1"], "public.example.com": ["203.0.113.7"] };

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "netproxy-"));
    socketPath = path.join(dir, "net", "proxy.sock");
    listed = http.createServer((req, res) => res.end(`listed saw ${req.method} ${req.url} host=${req.headers.host} proxy-auth=${req.headers["proxy-authorization"] ?? "none"}`));
    unlisted = http.createServer((req, res) => {
      unlistedHits.push(req.url ?? "");
      res.end("unlisted answered");
    });
    unlisted.on("connection", () => unlistedHits.push("connection"));
    listedPort = await listen(listed);
    unlistedPort = await listen(unlisted);
    proxy = new NetworkProxy({
      allow: parseAllowList([`127.0.0.1:${listedPort}`, "*.example.com", `localhost:${listedPort}`]),
      log: quiet,
      lookup: (host) => (names[host] ? Promise.resolve(names[host]) : Promise.reject(new Error(`getaddrinfo ENOTFOUND ${host}`))),
      connectTimeoutMs: 2_000,
    });
    await proxy.listen(socketPath);
  });

  afterAll(async () => {
    await proxy?.close();
    listed?.close();
    unlisted?.close();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("forwards a plain HTTP request to a listed host, with its own Host and no proxy credentials", async () => {
    const r = await plainRequest(`http://127.0.0.1:${listedPort}/path?q=1`, { "Proxy-Authorization": "Basic eDp5", Host: "evil.com" });
    expect(r.status).toBe(200);
    expect(r.body).toBe(`listed saw GET /path?q=1 host=127.0.0.1:${listedPort} proxy-auth=none`);
  });

  it("forwards a request body (POST)", async () => {
    const r = await plainRequest(`http://localhost:${listedPort}/upload`, {}, "POST", "x".repeat(100_000));
    expect(r.status).toBe(200);
    expect(r.body).toContain("listed saw POST /upload");
  });

  it("tunnels CONNECT to a listed host", async () => {
    const r = await connectThenGet(`127.0.0.1:${listedPort}`);
    expect(r.head).toMatch(/^HTTP\/1\.1 200 /);
    expect(r.rest).toContain("listed saw GET /through-the-tunnel");
  });

  it.each([
    ["an unlisted port", (p: number) => `http://127.0.0.1:${p}/`],
    ["userinfo naming a listed host", (p: number) => `http://127.0.0.1:${listedPort}@127.0.0.1:${p}/`],
    ["a numeric spelling of loopback", (p: number) => `http://2130706433:${p}/`],
    ["localhost, not listed on that port", (p: number) => `http://localhost:${p}/`],
  ])("refuses plain HTTP to %s with 403 and says why", async (_what, url) => {
    const r = await plainRequest(url(unlistedPort));
    expect(r.status).toBe(403);
    expect(r.body).toContain("is not in sandbox.network.allow");
    expect(unlistedHits).toEqual([]);
  });

  it("refuses CONNECT to an unlisted host or port, and tricks in the target, without connecting", async () => {
    for (const target of [`127.0.0.1:${unlistedPort}`, `localhost:${unlistedPort}`, `[::ffff:127.0.0.1]:${listedPort}`, `0x7f.1:${unlistedPort}`, "evil.com:443"]) {
      const r = await connectThenGet(target);
      expect(r.head, target).toMatch(/^HTTP\/1\.1 403 /);
      expect(r.rest, target).toContain("is not in sandbox.network.allow");
    }
    for (const target of [`127.0.0.1:${listedPort}@127.0.0.1:${unlistedPort}`, `127.0.0.1:${listedPort}/@127.0.0.1:${unlistedPort}`]) {
      const r = await connectThenGet(target);
      expect(r.head, target).toMatch(/^HTTP\/1\.1 400 /);
      expect(r.rest).toContain("CONNECT takes host:port");
    }
    expect(unlistedHits).toEqual([]);
  });

  it("refuses a listed name that resolves to this machine (also as an IPv4-mapped address)", async () => {
    for (const host of ["rebound.example.com", "mapped.example.com"]) {
      const r = await connectThenGet(`${host}:${listedPort}`);
      expect(r.head, host).toMatch(/^HTTP\/1\.1 403 /);
      expect(r.rest).toContain("an address of this machine");
      const plain = await plainRequest(`http://${host}:${listedPort}/`);
      expect(plain.status).toBe(403);
    }
  });

  it("answers 502 when a listed name does not resolve, and 400 to a request that is not for a proxy", async () => {
    expect((await connectThenGet("nowhere.example.com:443")).head).toMatch(/^HTTP\/1\.1 502 /);
    const origin = await plainRequest("/just/a/path");
    expect(origin.status).toBe(400);
    expect(origin.body).toContain("send absolute http:// URLs");
    const https = await plainRequest(`https://127.0.0.1:${listedPort}/`);
    expect(https.status).toBe(400);
  });

  it("stops listening when closed, cutting open tunnels", async () => {
    const tunnel = net.connect(socketPath);
    await new Promise<void>((resolve) => tunnel.on("connect", resolve));
    tunnel.write(`CONNECT 127.0.0.1:${listedPort} HTTP/1.1\r\nHost: x\r\n\r\n`);
    await new Promise<void>((resolve) => tunnel.once("data", () => resolve()));
    const cut = new Promise<void>((resolve) => tunnel.on("close", () => resolve()));
    await proxy.close();
    await cut;
    const refused = await new Promise<string>((resolve) => net.connect(socketPath).on("error", (err: NodeJS.ErrnoException) => resolve(err.code ?? "")).on("connect", () => resolve("connected")));
    expect(refused).toMatch(/ENOENT|ECONNREFUSED/);
  });

  function plainRequest(target: string, headers: Record<string, string> = {}, method = "GET", body?: string): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const req = http.request({ socketPath, method, path: target, headers, agent: false }, (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (c: string) => (text += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on("error", reject);
      req.end(body);
    });
  }

  /** A raw CONNECT, then (if tunnelled) a GET through it: what a client sees, bytes as sent. */
  function connectThenGet(target: string): Promise<{ head: string; rest: string }> {
    return new Promise((resolve, reject) => {
      const socket = net.connect(socketPath);
      let text = "";
      let sentGet = false;
      const timer = setTimeout(() => socket.destroy(new Error(`no answer to CONNECT ${target}`)), 5_000);
      socket.on("connect", () => socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`));
      socket.setEncoding("utf8");
      socket.on("data", (chunk: string) => {
        text += chunk;
        if (!sentGet && text.startsWith("HTTP/1.1 200 ") && text.includes("\r\n\r\n")) {
          sentGet = true;
          socket.write(`GET /through-the-tunnel HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
        }
      });
      socket.on("close", () => {
        clearTimeout(timer);
        const at = text.indexOf("\r\n\r\n");
        resolve({ head: text.slice(0, at), rest: text.slice(at + 4) });
      });
      socket.on("error", reject);
    });
  }
});

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port)));
}
