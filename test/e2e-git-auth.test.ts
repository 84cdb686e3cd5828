import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startGitHttpServer, type GitHttpServer } from "./support/git-http-server.js";
import { git, makeBareRemote, startHarness, structured, textOf, type Harness } from "./support/harness.js";

// Private repositories over a real smart-HTTP git server that demands the token, driven through the
// built coding-mcp over stdio. The token is random per run, with characters that change under URL-
// and base64-encoding, and every place it could leak to is searched for it.

const TOKEN = `tok_${randomBytes(18).toString("base64")}+/=`;
const forms = [TOKEN, encodeURIComponent(TOKEN), Buffer.from(TOKEN).toString("base64")];

let h: Harness;
let server: GitHttpServer;
let projectRoot: string;
/** Every tool result of this file, to search for the token at the end. */
const results: CallToolResult[] = [];

async function call(name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  const result = await h.call(name, args);
  results.push(result);
  return result;
}

function makePrivateRepo(name: string): string {
  const bare = makeBareRemote(projectRoot, name);
  git(bare, "config", "http.receivepack", "true");
  return `${server.baseUrl}/${name}`;
}

function workspacesOnDisk(): string[] {
  return fs.readdirSync(h.basePath).filter((n) => !n.startsWith("."));
}

beforeAll(async () => {
  h = await startHarness({ env: { GITHUB_TOKEN: TOKEN }, config: { git: { token_hosts: ["127.0.0.1"], allow_file_remotes: false } } });
  projectRoot = path.join(h.dir, "served");
  fs.mkdirSync(projectRoot);
  server = await startGitHttpServer({ projectRoot, token: TOKEN });
});

afterAll(async () => {
  await server?.close();
  await h?.close();
});

describe("private repositories over smart HTTP", () => {
  it("clones with the token, and stores no token in the workspace", async () => {
    const url = makePrivateRepo("private.git");
    const opened = structured(await call("coding_open", { repo_url: url }));
    expect(fs.readFileSync(path.join(opened.workspace_path, "README.md"), "utf8")).toBe("# demo\n");
    expect(git(opened.workspace_path, "remote", "get-url", "origin")).toBe(url);
    // The server saw the token, as the password of a Basic auth request.
    expect(server.requests.some((r) => r.password === TOKEN && r.status === 200)).toBe(true);
    structured(await call("coding_close", { session_id: opened.session_id }));
  });

  it("pushes a commit that then is in the server's repository", async () => {
    const url = makePrivateRepo("push.git");
    const opened = structured(await call("coding_open", { repo_url: url }));
    structured(await call("code", { session_id: opened.session_id, task: "Create feature.py" }));
    const commit = structured(await call("coding_commit", { session_id: opened.session_id, message: "Add feature" }));
    const pushed = structured(await call("coding_push", { session_id: opened.session_id, branch: "feature/x" }));
    expect(pushed).toMatchObject({ pushed: true, branch: "feature/x" });
    expect(git(path.join(projectRoot, "push.git"), "rev-parse", "refs/heads/feature/x")).toBe(commit.commit_hash);
    // set_upstream (the default) makes the pushed branch the upstream of the local one.
    expect(git(opened.workspace_path, "rev-parse", "--abbrev-ref", "HEAD@{upstream}")).toBe("origin/feature/x");
    structured(await call("coding_close", { session_id: opened.session_id }));
  });

  it("refuses a clone with a wrong token clearly, leaving nothing behind", async () => {
    const url = makePrivateRepo("wrong.git");
    server.setToken("the-server-wants-another-token");
    try {
      const before = workspacesOnDisk();
      const result = await call("coding_open", { repo_url: url });
      expect(result.isError).toBe(true);
      expect(textOf(result)).toMatch(/not found or authentication failed/);
      expect(textOf(result)).toContain("GITHUB_TOKEN");
      expect(workspacesOnDisk()).toEqual(before);
    } finally {
      server.setToken(TOKEN);
    }
  });

  it("gives distinct errors for a rejected push, a wrong token and an unreachable remote", async () => {
    const url = makePrivateRepo("race.git");
    const opened = structured(await call("coding_open", { repo_url: url }));
    const ws = opened.workspace_path;
    fs.writeFileSync(path.join(ws, "mine.txt"), "mine\n");
    structured(await call("coding_commit", { session_id: opened.session_id, message: "mine" }));

    // Someone else pushes first (straight into the server's repository).
    const other = path.join(h.dir, "other-clone");
    git(h.dir, "clone", "-q", path.join(projectRoot, "race.git"), other);
    fs.writeFileSync(path.join(other, "theirs.txt"), "theirs\n");
    git(other, "add", "-A");
    git(other, "-c", "user.name=O", "-c", "user.email=o@example.test", "commit", "-q", "-m", "theirs");
    git(other, "push", "-q", "origin", "main");
    const theirs = git(other, "rev-parse", "HEAD");

    const rejected = await call("coding_push", { session_id: opened.session_id });
    expect(rejected.isError).toBe(true);
    expect(textOf(rejected)).toMatch(/rejected/);
    expect(textOf(rejected)).toMatch(/pull|rebase|fetch/);
    expect(git(path.join(projectRoot, "race.git"), "rev-parse", "main")).toBe(theirs); // never forced

    server.setToken("rotated-token-value");
    let denied: CallToolResult;
    try {
      denied = await call("coding_push", { session_id: opened.session_id, branch: "mine" });
    } finally {
      server.setToken(TOKEN);
    }
    expect(denied.isError).toBe(true);
    expect(textOf(denied)).toMatch(/authentication failed/);

    git(ws, "remote", "add", "dead", "http://127.0.0.1:9/nothing.git");
    const unreachable = await call("coding_push", { session_id: opened.session_id, remote: "dead" });
    expect(unreachable.isError).toBe(true);
    expect(textOf(unreachable)).toMatch(/could not connect/);

    const texts = [rejected, denied, unreachable].map(textOf);
    expect(new Set(texts).size).toBe(3);
    structured(await call("coding_close", { session_id: opened.session_id }));
  });

  it("does not send the token to a host outside git.token_hosts", async () => {
    const url = makePrivateRepo("elsewhere.git").replace("127.0.0.1", "localhost");
    const seen = server.requests.length;
    const result = await call("coding_open", { repo_url: url });
    expect(result.isError).toBe(true);
    expect(textOf(result)).toContain("git.token_hosts");
    expect(server.requests.slice(seen).every((r) => r.password === undefined)).toBe(true);
  });

  it("refuses option injection before git runs", async () => {
    const url = makePrivateRepo("inject.git");
    const marker = path.join(h.dir, "injected");
    const seen = server.requests.length;
    const before = workspacesOnDisk();
    for (const args of [
      { repo_url: url, branch: `--upload-pack=touch ${marker}` },
      { repo_url: `--upload-pack=touch ${marker}` },
      { repo_url: `ext::sh -c touch% ${marker}` },
      { repo_url: `${server.baseUrl.replace("http://", "http://user:pw@")}/inject.git` },
    ]) {
      const result = await call("coding_open", args);
      expect(result.isError, JSON.stringify(args)).toBe(true);
    }
    expect(server.requests.length).toBe(seen);
    expect(workspacesOnDisk()).toEqual(before);

    const opened = structured(await call("coding_open", { repo_url: url }));
    for (const args of [{ branch: "-f" }, { branch: `--receive-pack=touch ${marker}` }, { remote: "--mirror" }, { branch: "a..b" }]) {
      const result = await call("coding_push", { session_id: opened.session_id, ...args });
      expect(result.isError, JSON.stringify(args)).toBe(true);
    }
    expect(fs.existsSync(marker)).toBe(false);
    structured(await call("coding_close", { session_id: opened.session_id }));
  });
});

describe("the token never leaks", () => {
  it("is not in the agent's environment", async () => {
    h.fake.setScenario("env", [{ tools: [{ name: "bash", args: { command: "env", description: "Show the environment" } }] }, { text: "Listed the environment." }]);
    const opened = structured(await call("coding_open", {}));
    const seen = h.fake.requests.length;
    const result = structured(await call("code", { session_id: opened.session_id, task: "Show the environment [[fake:env]]" }));
    expect(result.success).toBe(true);
    // The whole `env` output went back to the model in the next request; OpenCode's own variables are there, the token is not.
    const followUp = JSON.stringify(h.fake.requests.slice(seen));
    expect(followUp).toContain("XDG_DATA_HOME");
    expect(followUp).not.toContain("GITHUB_TOKEN");
    structured(await call("coding_close", { session_id: opened.session_id }));
  });

  it("is in no tool result, log line, .git/config or model request of this run", async () => {
    const haystacks: [string, string][] = [
      ["tool results", JSON.stringify(results)],
      ["coding-mcp log", h.stderr.join("\n")],
      ["model requests", JSON.stringify(h.fake.requests)],
    ];
    for (const name of fs.readdirSync(h.basePath)) {
      const config = path.join(h.basePath, name, ".git", "config");
      if (fs.existsSync(config)) haystacks.push([config, fs.readFileSync(config, "utf8")]);
    }
    for (const file of fs.readdirSync(path.join(h.basePath, ".coding-mcp"), { recursive: true, withFileTypes: true })) {
      if (file.isFile()) haystacks.push([file.name, fs.readFileSync(path.join(file.parentPath, file.name), "utf8")]);
    }
    expect(results.length).toBeGreaterThan(10);
    expect(h.stderr.length).toBeGreaterThan(20);
    for (const [where, text] of haystacks) {
      for (const form of forms) expect(text.includes(form), `${where} contains the token`).toBe(false);
    }
  });
});
