import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { parse, stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGitHttpServer, type GitHttpServer } from "./support/git-http-server.js";
import { CLI, git, makeBareRemote, startHttpHarness, structured, textOf, until, waitForExit, type HttpHarness } from "./support/harness.js";
import { startTestIssuer, type TestIssuer } from "./support/oauth-issuer.js";

// Several people on one server: named callers with their own bearer tokens and git tokens, and OAuth
// access tokens from a local issuer. The built server over Streamable HTTP and legacy SSE with the
// SDK's clients, real opencode serve with the scripted fake model for the one real task, a real
// smart-HTTP git server that records which credentials each clone and push carried.

const ALICE = "alice-mcp-token-0123456789abcdef";
const BOB = "bob-mcp-token-0123456789abcdef01";
const CAROL = "carol-mcp-token-0123456789abcdef";
const ALICE_GIT = "alice-git-token-0123456789";
const BOB_GIT = "bob-git-token-0123456789ab";
const SERVER_GIT = "server-git-token-012345678";
const AUDIENCE = "https://coding.test/mcp";
const sha = (s: string) => createHash("sha256").update(s).digest("hex");

let h: HttpHarness;
let gitServer: GitHttpServer;
let issuer: TestIssuer;
let alice: Client;
let aliceTransport: StreamableHTTPClientTransport;
let bob: Client;
let carol: Client;
let repoUrl: string;
let remoteDir: string;

async function call(client: Client, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args }, undefined, { timeout: 120_000 })) as CallToolResult;
}

/** The error text a tool gives, with the id it was given replaced, to compare a foreign id's answer with an unknown one's. */
async function refusal(client: Client, name: string, args: Record<string, unknown>, id: string): Promise<string> {
  const result = await call(client, name, args);
  expect(result.isError, `${name} ${JSON.stringify(args)}: ${textOf(result)}`).toBe(true);
  return textOf(result).split(id).join("<id>");
}

beforeAll(async () => {
  issuer = await startTestIssuer();
  const projectRoot = fs.mkdtempSync(path.join(process.env.TMPDIR ?? "/tmp", "callers-git-"));
  remoteDir = makeBareRemote(projectRoot, "team.git");
  gitServer = await startGitHttpServer({ projectRoot, token: [ALICE_GIT, BOB_GIT, SERVER_GIT] });
  repoUrl = `${gitServer.baseUrl}/team.git`;
  h = await startHttpHarness({
    env: { ALICE_MCP_TOKEN: ALICE, ALICE_GIT_TOKEN: ALICE_GIT, BOB_GIT_TOKEN: BOB_GIT, GITHUB_TOKEN: SERVER_GIT },
    config: {
      git: { token_hosts: ["127.0.0.1"] },
      limits: { per_client_sessions: 2, per_client_tasks: 1, approval_timeout_sec: 120 },
      http: {
        clients: {
          alice: { token_env: "ALICE_MCP_TOKEN", git_token_env: "ALICE_GIT_TOKEN" },
          bob: { token_sha256: sha(BOB), git_token_env: "BOB_GIT_TOKEN" },
          carol: { token_sha256: sha(CAROL) },
        },
        oauth: { issuer: issuer.issuer, audience: AUDIENCE },
      },
    },
  });
  const a = await h.connect("streamable", { token: ALICE });
  alice = a.client;
  aliceTransport = a.transport as StreamableHTTPClientTransport;
  bob = (await h.connect("sse", { token: BOB })).client;
  carol = (await h.connect("streamable", { token: CAROL })).client;
});

afterAll(async () => {
  await h?.close();
  await gitServer?.close();
  await issuer?.close();
});

describe("several callers on one server", () => {
  let aliceSession: { session_id: string; workspace_path: string };
  let bobSession: { session_id: string; workspace_path: string };

  it("clones with each caller's own git token, in parallel, and keeps each caller's sessions apart", async () => {
    [aliceSession, bobSession] = await Promise.all([
      call(alice, "coding_open", { repo_url: repoUrl, title: "alice" }).then(structured),
      call(bob, "coding_open", { repo_url: repoUrl, title: "bob" }).then(structured),
    ]);
    const passwords = new Set(gitServer.requests.filter((r) => r.status !== 401).map((r) => r.password));
    expect(passwords).toEqual(new Set([ALICE_GIT, BOB_GIT]));
    const aliceList = structured(await call(alice, "coding_status", {})).sessions.map((s: { session_id: string }) => s.session_id);
    const bobList = structured(await call(bob, "coding_status", {})).sessions.map((s: { session_id: string }) => s.session_id);
    expect(aliceList).toEqual([aliceSession.session_id]);
    expect(bobList).toEqual([bobSession.session_id]);
    // The records carry the owner.
    const record = JSON.parse(fs.readFileSync(path.join(h.basePath, ".coding-mcp", "sessions", `${aliceSession.session_id}.json`), "utf8"));
    expect(record.owner).toBe("client:alice");
  });

  it("runs a real task for alice; to bob her session does not exist, from every tool and the diff resource, and nothing changes", async () => {
    const done = structured(await call(alice, "code", { session_id: aliceSession.session_id, task: "Write ALICE.md" }));
    expect(done.success).toBe(true);
    expect(fs.readFileSync(path.join(aliceSession.workspace_path, "ALICE.md"), "utf8")).toMatch(/^# ALICE.md\n/);

    const foreign = aliceSession.session_id;
    const unknown = "cs_000000000000000000000000";
    const calls: [string, (id: string) => Record<string, unknown>][] = [
      ["code", (id) => ({ session_id: id, task: "Delete everything" })],
      ["coding_status", (id) => ({ session_id: id })],
      ["coding_diff", (id) => ({ session_id: id })],
      ["coding_commit", (id) => ({ session_id: id, message: "by bob" })],
      ["coding_push", (id) => ({ session_id: id })],
      ["coding_cancel", (id) => ({ session_id: id })],
      ["coding_respond", (id) => ({ session_id: id, request_id: "req_000000000000", decision: "allow" })],
      ["coding_close", (id) => ({ session_id: id })],
    ];
    for (const [tool, args] of calls) {
      const asForeign = await refusal(bob, tool, args(foreign), foreign);
      const asUnknown = await refusal(bob, tool, args(unknown), unknown);
      expect(asForeign, tool).toBe(asUnknown);
      expect(asForeign, tool).toContain('unknown session_id "<id>"');
    }
    const resourceError = async (id: string) =>
      (await bob.readResource({ uri: `coding://sessions/${id}/diff` }).then(() => "read", (err: Error) => err.message)).split(id).join("<id>");
    expect(await resourceError(foreign)).toBe(await resourceError(unknown));
    expect(await resourceError(foreign)).toContain("unknown session_id");
    const bobResources = (await bob.listResources()).resources.map((r) => r.uri);
    expect(bobResources).not.toContain(`coding://sessions/${foreign}/diff`);
    expect(bobResources).toContain(`coding://sessions/${bobSession.session_id}/diff`);

    // Nothing changed: alice's session is open, her file uncommitted, the remote untouched.
    const [status] = structured(await call(alice, "coding_status", { session_id: foreign })).sessions;
    expect(status.state).toBe("idle");
    expect(git(aliceSession.workspace_path, "status", "--porcelain")).toContain("ALICE.md");
    expect(git(remoteDir, "for-each-ref", "--format=%(refname)")).toBe("refs/heads/main");
    const diff = await alice.readResource({ uri: `coding://sessions/${foreign}/diff` });
    expect((diff.contents[0] as { text: string }).text).toContain("+# ALICE.md");
  });

  it("another caller cannot use alice's MCP session", async () => {
    const res = await fetch(`${h.baseUrl}/mcp`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${BOB}`,
        "content-type": "application/json",
        accept: "application/json, text/event-stream",
        "mcp-session-id": aliceTransport.sessionId!,
        "mcp-protocol-version": "2025-06-18",
      },
      body: JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/call", params: { name: "coding_status", arguments: {} } }),
    });
    expect(res.status).toBe(404);
    expect(await res.text()).toContain("Session not found");
  });

  it("pushes with each caller's own git token", async () => {
    const before = gitServer.requests.length;
    structured(await call(alice, "coding_commit", { session_id: aliceSession.session_id, message: "alice's change" }));
    const pushedA = structured(await call(alice, "coding_push", { session_id: aliceSession.session_id, branch: "alice" }));
    expect(pushedA.pushed).toBe(true);
    fs.writeFileSync(path.join(bobSession.workspace_path, "BOB.md"), "# from bob\n");
    structured(await call(bob, "coding_commit", { session_id: bobSession.session_id, message: "bob's change" }));
    structured(await call(bob, "coding_push", { session_id: bobSession.session_id, branch: "bob" }));
    expect(git(remoteDir, "log", "-1", "--format=%s", "alice")).toBe("alice's change");
    expect(git(remoteDir, "log", "-1", "--format=%s", "bob")).toBe("bob's change");
    const pushes = gitServer.requests.slice(before).filter((r) => r.method === "POST" && r.path.endsWith("/git-receive-pack"));
    expect(pushes.map((r) => r.password).sort()).toEqual([ALICE_GIT, BOB_GIT].sort());
    // No tool answer or log line carries a token.
    for (const token of [ALICE, BOB, ALICE_GIT, BOB_GIT, SERVER_GIT]) expect(h.stderr.some((l) => l.includes(token)), token).toBe(false);
  });

  it("a caller without a git token of its own gets none (git.shared_token is off), and is bounded by limits.per_client_sessions", async () => {
    const before = gitServer.requests.length;
    const refused = await call(carol, "coding_open", { repo_url: repoUrl });
    expect(refused.isError).toBe(true);
    expect(textOf(refused)).toMatch(/authentication failed/);
    expect(textOf(refused)).toContain("git_token_env");
    expect(gitServer.requests.slice(before).every((r) => r.password === undefined)).toBe(true);
    const opened = [structured(await call(carol, "coding_open", {})), structured(await call(carol, "coding_open", {}))];
    const third = await call(carol, "coding_open", {});
    expect(third.isError).toBe(true);
    expect(textOf(third)).toContain("limits.per_client_sessions = 2");
    // Alice's and bob's sessions do not count against carol.
    for (const s of opened) structured(await call(carol, "coding_close", { session_id: s.session_id }));
  });

  it("a request waiting for alice is unknown to bob, and limits.per_client_tasks bounds alice", async () => {
    const outside = path.join(h.dir, "outside");
    fs.mkdirSync(outside, { recursive: true });
    const started = structured(await call(alice, "code", { session_id: aliceSession.session_id, task: `Write ${outside}/a.txt [[fake:outside]]`, background: true }));
    expect(started.state).toBe("running");
    const pending = await until(async () => {
      const [s] = structured(await call(alice, "coding_status", { session_id: aliceSession.session_id })).sessions;
      return s.task?.pending_requests?.[0] as { request_id: string } | undefined;
    }, 90_000, 200);
    if (!pending) throw new Error(`no pending request within 90 s:\n${h.stderr.slice(-20).join("\n")}`);
    const viaOwnSession = await refusal(bob, "coding_respond", { session_id: bobSession.session_id, request_id: pending.request_id, decision: "allow" }, pending.request_id);
    const unknownRequest = await refusal(bob, "coding_respond", { session_id: bobSession.session_id, request_id: "req_000000000000", decision: "allow" }, "req_000000000000");
    expect(viaOwnSession).toBe(unknownRequest);
    expect(viaOwnSession).toContain('unknown request_id "<id>"');

    // Alice's second session may not start a task while her first runs.
    const second = structured(await call(alice, "coding_open", {}));
    const limited = await call(alice, "code", { session_id: second.session_id, task: "Write ALICE.md" });
    expect(limited.isError).toBe(true);
    expect(textOf(limited)).toContain("limits.per_client_tasks = 1");

    structured(await call(alice, "coding_respond", { session_id: aliceSession.session_id, request_id: pending.request_id, decision: "reject" }));
    expect(fs.existsSync(path.join(outside, "a.txt"))).toBe(false);
    await until(async () => structured(await call(alice, "coding_status", { session_id: aliceSession.session_id })).sessions[0].state === "idle", 60_000, 200);
    structured(await call(alice, "coding_close", { session_id: second.session_id }));
  });
});

describe("OAuth access tokens", () => {
  it("accepts the issuer's token as its subject, who sees nobody else's sessions; serves the resource metadata", async () => {
    const token = await issuer.token({ sub: "dana@example.com" }, { audience: AUDIENCE });
    const { client } = await h.connect("streamable", { token });
    expect(structured(await call(client, "coding_status", {})).sessions).toEqual([]);
    const opened = structured(await call(client, "coding_open", {}));
    expect(structured(await call(alice, "coding_status", {})).sessions.map((s: { session_id: string }) => s.session_id)).not.toContain(opened.session_id);
    structured(await call(client, "coding_close", { session_id: opened.session_id }));

    for (const p of ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"]) {
      const res = await fetch(`${h.baseUrl}${p}`);
      expect(res.status, p).toBe(200);
      expect(await res.json()).toMatchObject({ resource: AUDIENCE, authorization_servers: [issuer.issuer], bearer_methods_supported: ["header"] });
    }
  });

  it("refuses each bad token with 401 and a WWW-Authenticate that says what is wrong and where the metadata is", async () => {
    const bad = await issuer.badTokens(AUDIENCE);
    expect(Object.keys(bad)).toHaveLength(8);
    for (const [kind, token] of Object.entries(bad)) {
      for (const route of ["/mcp", "/sse"]) {
        const res = await fetch(`${h.baseUrl}${route}`, {
          method: route === "/mcp" ? "POST" : "GET",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json", accept: "application/json, text/event-stream" },
          ...(route === "/mcp" ? { body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "x", version: "1" } } }) } : {}),
        });
        expect(res.status, `${kind} ${route}`).toBe(401);
        const challenge = res.headers.get("www-authenticate") ?? "";
        expect(challenge, kind).toMatch(/^Bearer realm="coding-mcp", error="invalid_token", error_description="invalid access token: [^"]+"/);
        expect(challenge, kind).toContain('resource_metadata="https://coding.test/.well-known/oauth-protected-resource/mcp"');
      }
    }
    const missing = await fetch(`${h.baseUrl}/mcp`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(missing.status).toBe(401);
    expect(missing.headers.get("www-authenticate")).toBe('Bearer realm="coding-mcp", resource_metadata="https://coding.test/.well-known/oauth-protected-resource/mcp"');
  });
});

describe("a client removed from the config", () => {
  it("is refused after a restart, while the others keep their sessions", async () => {
    const aliceSessions = structured(await call(alice, "coding_status", {})).sessions.map((s: { session_id: string }) => s.session_id);
    await h.stop("SIGTERM");
    const config = parse(fs.readFileSync(h.configFile, "utf8"));
    delete config.http.clients.bob;
    fs.writeFileSync(h.configFile, stringify(config));
    const child = spawn(process.execPath, [CLI, "--transport", "http", "--host", "127.0.0.1", "--port", "0", "--config", h.configFile], { env: h.env, stdio: ["ignore", "ignore", "pipe"] });
    try {
      let log = "";
      child.stderr.on("data", (c: Buffer) => (log += c.toString("utf8")));
      const url = await until(() => /listening on (http:\/\/\S+)/.exec(log)?.[1], 20_000);
      if (!url) throw new Error(`the restarted server did not listen within 20 s:\n${log.slice(-2000)}`);
      const post = (token: string) =>
        fetch(`${url}/mcp`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json", accept: "application/json, text/event-stream" },
          body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "initialize", params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "x", version: "1" } } }),
        });
      const bobAnswer = await post(BOB);
      expect(bobAnswer.status).toBe(401);
      expect(bobAnswer.headers.get("www-authenticate")).toContain('error="invalid_token"');
      // Alice comes back as herself: her open sessions are still hers, over a new connection.
      const again = new Client({ name: "alice-again", version: "1" });
      await again.connect(new StreamableHTTPClientTransport(new URL("/mcp", url), { requestInit: { headers: { authorization: `Bearer ${ALICE}` } } }));
      try {
        const listed = structured(await call(again, "coding_status", {})).sessions.map((s: { session_id: string }) => s.session_id);
        expect(listed.sort()).toEqual([...aliceSessions].sort());
        expect(listed.length).toBeGreaterThan(0);
      } finally {
        await again.close();
      }
    } finally {
      child.kill("SIGTERM");
      await waitForExit(child, 20_000);
    }
  });
});
