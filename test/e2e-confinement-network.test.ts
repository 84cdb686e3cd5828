import http from "node:http";
import type net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, structured, type Harness } from "./support/harness.js";

/**
 * sandbox.network.allow as a user sets it, end to end: the built coding-mcp with the allow list in
 * its config file, its real managed OpenCode, and one task whose bash calls (through the confined
 * shell, bubblewrap and the socat bridge) reach a listed HTTP server on the host's loopback, are
 * refused the unlisted one with the proxy's 403, and cannot open a raw connection.
 */

let h: Harness;
let listed: http.Server;
let unlisted: http.Server;
let listedPort: number;
let unlistedPort: number;
const listedSaw: string[] = [];
let unlistedConnections = 0;

beforeAll(async () => {
  listed = http.createServer((req, res) => {
    listedSaw.push(`${req.method} ${req.url}`);
    res.end("listed service answered\n");
  });
  unlisted = http.createServer((_req, res) => res.end("unlisted service answered\n"));
  unlisted.on("connection", () => unlistedConnections++);
  listedPort = await listen(listed);
  unlistedPort = await listen(unlisted);
  h = await startHarness({ config: { permissions: { "*": "allow" }, sandbox: { network: { allow: [`127.0.0.1:${listedPort}`] } } } });
}, 180_000);

afterAll(async () => {
  await h?.close();
  listed?.close();
  unlisted?.close();
});

describe("the agent's commands with sandbox.network.allow", () => {
  it("reach the listed host through the proxy, get a 403 from any other, and open no raw connection", async () => {
    const opened = structured(await h.call("coding_open", { title: "network" }));
    expect(opened.confined).toBe(true);
    const probes = [
      `RUN: curl -sS --max-time 10 http://127.0.0.1:${listedPort}/from-the-agent`,
      `RUN: curl -sS --max-time 10 -w ' status=%{http_code}' http://127.0.0.1:${unlistedPort}/`,
      `RUN: (exec 3<>/dev/tcp/127.0.0.1/${unlistedPort}) 2>&1 && echo OPENED; (exec 3<>/dev/tcp/127.0.0.1/${listedPort}) 2>&1 && echo OPENED-LISTED; echo tried`,
    ];
    const result = structured(await h.call("code", { session_id: opened.session_id, task: `[[fake:commands]] Fetch.\n${probes.join("\n")}` }));
    expect(result.success, JSON.stringify(result).slice(0, 2000)).toBe(true);
    const [reached, refused, raw] = result.trace.tool_calls.map((c: { output_preview: string }) => c.output_preview) as [string, string, string];
    expect(reached).toContain("listed service answered");
    expect(listedSaw).toEqual(["GET /from-the-agent"]);
    expect(refused).toContain(`127.0.0.1:${unlistedPort} is not in sandbox.network.allow`);
    expect(refused).toContain("status=403");
    expect(raw).not.toContain("OPENED");
    expect(raw).toContain("tried");
    expect(unlistedConnections).toBe(0);
    // The refusal is in coding-mcp's log too, for the owner.
    expect(h.stderr.some((l) => l.includes(`sandbox network: refused GET http://127.0.0.1:${unlistedPort}: not in sandbox.network.allow`))).toBe(true);
    await h.call("coding_close", { session_id: opened.session_id });
  });
});

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as net.AddressInfo).port)));
}
