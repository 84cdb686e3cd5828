import fs from "node:fs";
import http from "node:http";
import type net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Confinement } from "../../src/confinement/index.js";
import { scopeFor } from "../../src/confinement/policy.js";
import { runBound } from "../../src/process.js";

/**
 * sandbox.network.allow through the real sandbox: bubblewrap with no network of its own, socat
 * inside bridging 127.0.0.1:3128 to coding-mcp's proxy, and two HTTP servers on the host's
 * loopback. A confined command reaches the listed one with the HTTP clients a task would use
 * (curl, python's urllib, plain and tunnelled) and nothing else: not the other server, not even the
 * listed port directly.
 */

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
for (const tool of ["/usr/bin/bwrap", "/usr/bin/socat"]) {
  if (!fs.existsSync(tool)) console.warn(`confinement network tests: ${tool} is missing (apt-get install bubblewrap socat); they fail`);
}

let root: string;
let workspace: string;
let confinement: Confinement;
let listed: http.Server;
let unlisted: http.Server;
let listedPort: number;
let unlistedPort: number;
const unlistedConnections: string[] = [];

async function confined(command: string, cwd = workspace) {
  const { file, args, env } = confinement.shellCommand("ses_net", command);
  return runBound(file, args, { cwd, env, timeoutMs: 20_000 });
}

beforeAll(async () => {
  root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "confinement-net-")));
  const home = path.join(root, "home");
  const base = path.join(root, "base");
  workspace = path.join(base, "ws");
  for (const d of [home, workspace]) fs.mkdirSync(d, { recursive: true });
  listed = http.createServer((req, res) => res.end(`listed answered ${req.method} ${req.url}\n`));
  unlisted = http.createServer((_req, res) => res.end("unlisted answered\n"));
  unlisted.on("connection", (s: net.Socket) => unlistedConnections.push(`${s.remoteAddress}:${s.remotePort}`));
  listedPort = await listen(listed);
  unlistedPort = await listen(unlisted);
  confinement = new Confinement({
    mode: "on",
    stateDir: path.join(base, ".coding-mcp"),
    settings: { denyRead: [], allowWrite: [], ownPaths: [path.join(base, ".coding-mcp"), base], home, networkAllow: [`127.0.0.1:${listedPort}`] },
    agentEnv: { PATH: process.env.PATH, HOME: home, LANG: "C.UTF-8", HTTP_PROXY: "http://owner-proxy.invalid:8080", NO_PROXY: "127.0.0.1" },
    secrets: [],
    log: quiet,
  });
  await confinement.install();
  expect(await confinement.state()).toEqual({ mode: "on", confined: true });
  await confinement.prepare("ses_net", scopeFor({ path: workspace }));
});

afterAll(async () => {
  await confinement?.close();
  listed?.close();
  unlisted?.close();
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

describe("a confined command with sandbox.network.allow", () => {
  it("reaches the listed host with curl, plain and through a CONNECT tunnel", async () => {
    const plain = await confined(`curl -sS --max-time 10 http://127.0.0.1:${listedPort}/plain`);
    expect(plain.stderr).toBe("");
    expect(plain.stdout).toBe("listed answered GET /plain");
    const tunnelled = await confined(`curl -sS --max-time 10 --proxytunnel http://127.0.0.1:${listedPort}/tunnel`);
    expect(tunnelled.stdout).toBe("listed answered GET /tunnel");
  });

  it("reaches the listed host with python's urllib, which follows the proxy variables", async () => {
    const r = await confined(`python3 -c 'import urllib.request; import sys; sys.stdout.write(urllib.request.urlopen("http://127.0.0.1:${listedPort}/py", timeout=10).read().decode())'`);
    expect(r.stderr).toBe("");
    expect(r.stdout).toBe("listed answered GET /py");
  });

  it("gets a 403 that says why from the other server, which sees no connection", async () => {
    const curl = await confined(`curl -sS --max-time 10 -w '%{http_code}' http://127.0.0.1:${unlistedPort}/`);
    expect(curl.stdout).toContain("is not in sandbox.network.allow");
    expect(curl.stdout.endsWith("403")).toBe(true);
    const tunnel = await confined(`curl -sS --max-time 10 --proxytunnel http://127.0.0.1:${unlistedPort}/ 2>&1; echo "exit $?"`);
    expect(tunnel.stdout).toMatch(/403/);
    expect(tunnel.stdout).not.toContain("unlisted answered");
    const py = await confined(`python3 -c 'import urllib.request; urllib.request.urlopen("http://127.0.0.1:${unlistedPort}/", timeout=10)' 2>&1`);
    expect(py.stdout).toContain("HTTP Error 403");
    expect(unlistedConnections).toEqual([]);
  });

  it("opens no raw TCP connection to the host: not to the other port, not even to the listed one", async () => {
    const r = await confined(
      `exec 3<>/dev/tcp/127.0.0.1/${unlistedPort} 2>/dev/null && echo OPENED-UNLISTED; exec 4<>/dev/tcp/127.0.0.1/${listedPort} 2>/dev/null && echo OPENED-LISTED;` +
        ` python3 -c 'import socket; socket.create_connection(("127.0.0.1",${unlistedPort}),2)' 2>&1 | tail -1; echo done`,
    );
    expect(r.stdout).not.toContain("OPENED");
    expect(r.stdout).toContain("Connection refused");
    expect(r.stdout).toContain("done");
    expect(unlistedConnections).toEqual([]);
  });

  it("has its HTTP clients pointed at the bridge, with no proxy bypass (the owner's proxy variables replaced)", async () => {
    const r = await confined("env | grep -i _proxy= | sort");
    expect(r.stdout.split("\n")).toEqual([
      "HTTPS_PROXY=http://127.0.0.1:3128",
      "HTTP_PROXY=http://127.0.0.1:3128",
      "NODE_USE_ENV_PROXY=1",
      "NO_PROXY=",
      "http_proxy=http://127.0.0.1:3128",
      "https_proxy=http://127.0.0.1:3128",
      "no_proxy=",
    ]);
  });

  it("sees nothing of coding-mcp's state dir but the proxy's socket", async () => {
    const r = await confined(`ls -A ${path.join(root, "base", ".coding-mcp")} | wc -l; ls -A /run/coding-mcp-network`);
    expect(r.stdout).toBe("0\nproxy.sock");
  });
});

describe("without sandbox.network.allow", () => {
  it("starts no proxy and sets no proxy variables", async () => {
    const stateDir = path.join(root, "plain-state");
    const plainConfinement = new Confinement({
      mode: "on",
      stateDir,
      settings: { denyRead: [], allowWrite: [], ownPaths: [stateDir], home: path.join(root, "home") },
      agentEnv: { PATH: process.env.PATH, HOME: path.join(root, "home") },
      secrets: [],
      log: quiet,
    });
    await plainConfinement.install();
    await plainConfinement.prepare("ses_plain", scopeFor({ path: workspace }));
    const { file, args, env } = plainConfinement.shellCommand("ses_plain", "env | grep -ci _proxy=; ls -A /run | wc -l");
    const r = await runBound(file, args, { cwd: workspace, env, timeoutMs: 20_000 });
    expect(r.stdout).toBe("0\n0");
    expect(fs.existsSync(path.join(stateDir, "sandbox", "network"))).toBe(false);
    await plainConfinement.close();
  });
});

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port)));
}
