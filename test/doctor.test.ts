import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { stringify } from "yaml";
import { binDirWith } from "./support/bin-dir.js";
import { opencodeConfigFor, startFakeModel } from "./support/fake-model.mjs";
import { hermeticOpencodeEnv } from "./support/opencode-home.mjs";
import { CLI, type FakeModel } from "./support/harness.js";
import { startOpencodeServer, type OpencodeServer } from "./support/opencode-server.js";

// `coding-mcp doctor` (the built CLI) against a good setup (with --task: a real round trip through
// coding-mcp, its OpenCode and the fake model) and broken ones: each problem gets a fail line with the fix.

const TOKEN = "ghp_doctorTestTokenValue0123456789abcdef";
let dir: string;
let fake: FakeModel;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "coding-mcp-doctor-test-"));
  fake = await startFakeModel();
});
afterAll(async () => {
  await fake?.close();
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
});

/** A setup of its own: a config file (merged with `config`), an existing allowed root, a hermetic OpenCode talking to the fake model. */
function setup(name: string, config: Record<string, Record<string, unknown>> = {}) {
  const home = path.join(dir, name);
  const root = path.join(home, "repos");
  fs.mkdirSync(root, { recursive: true });
  const configFile = path.join(home, "config.yaml");
  fs.writeFileSync(
    configFile,
    stringify({
      ...config,
      workspace: { base_path: path.join(home, "workspaces"), allowed_roots: [root], ...(config.workspace ?? {}) },
      git: { user_name: "Doctor Test", user_email: "doctor@example.test", ...(config.git ?? {}) },
    }),
  );
  const tmp = path.join(home, "tmp");
  fs.mkdirSync(tmp);
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    ...hermeticOpencodeEnv(path.join(home, "opencode-home")),
    OPENCODE_CONFIG_CONTENT: JSON.stringify(opencodeConfigFor(fake.baseURL)),
    GITHUB_TOKEN: TOKEN,
    TMPDIR: tmp,
  };
  delete env.OPENCODE_URL;
  delete env.OPENCODE_SERVER_PASSWORD;
  for (const key of Object.keys(env)) if (key.startsWith("CODING_MCP_")) delete env[key];
  return { home, configFile, env, tmp };
}

function doctor(args: string[], env: Record<string, string>): Promise<{ code: number | null; lines: string[]; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, "doctor", ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString("utf8")));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString("utf8")));
    const timer = setTimeout(() => child.kill("SIGKILL"), 180_000);
    child.once("error", reject);
    child.once("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, lines: stdout.split("\n").filter(Boolean), stderr });
    });
  });
}

const line = (lines: string[], name: string) => lines.find((l) => new RegExp(`^(ok|warn|fail) +${name}: `).test(l));

describe("coding-mcp doctor", () => {
  it("passes a good setup, and --task runs one real task on a scratch workspace and removes it", async () => {
    const s = setup("good");
    const requestsBefore = fake.requests.length;
    const result = await doctor(["--config", s.configFile, "--task"], s.env);
    expect(result.code, result.lines.join("\n") + result.stderr).toBe(0);
    for (const name of ["Node.js", "git", "ripgrep", "bubblewrap", "config", "OpenCode", "sandbox", "base path", "allowed roots", "git token", "round trip"]) {
      expect(line(result.lines, name), name).toMatch(/^ok /);
    }
    expect(line(result.lines, "ripgrep")).toMatch(/bundled: ripgrep \d+\.\d+.*node_modules\/@vscode\/ripgrep-/);
    // A real confined command looked around and said what holds.
    expect(line(result.lines, "sandbox")).toMatch(
      /^ok +sandbox: confined: a command ran in a sandbox with no network \(loopback only\), a private \/tmp, the home hidden \(.*\), no process outside it \(it sees only .*bwrap.*\)$/,
    );
    expect(line(result.lines, "git token")).toContain("set in GITHUB_TOKEN (not shown); sent only to github.com");
    expect(line(result.lines, "socat"), "socat is needed only with sandbox.network.allow").toBeUndefined();
    expect(result.lines.join("\n") + result.stderr).not.toContain(TOKEN);
    expect(line(result.lines, "round trip")).toContain("doctor-check.txt");
    // The agent really ran (through OpenCode, against the model), and nothing of the scratch workspace is left.
    expect(fake.requests.length).toBeGreaterThan(requestsBefore);
    expect(fs.readdirSync(s.tmp).filter((n) => n.startsWith("coding-mcp-doctor-"))).toEqual([]);
    expect(fs.existsSync(path.join(s.home, "workspaces"))).toBe(false); // the configured base path was not touched
  }, 300_000);

  it("lists every problem of a broken config file and exits non-zero", async () => {
    const s = setup("bad-config", { limits: { task_timeout_min: "soon" }, workspace: { cleanup: "always" } });
    const result = await doctor(["--config", s.configFile], s.env);
    expect(result.code).toBe(1);
    expect(line(result.lines, "config")).toMatch(/^fail /);
    const text = result.lines.join("\n");
    expect(text).toContain("workspace.cleanup: unknown key");
    expect(text).toContain("limits.task_timeout_min: expected a whole number of minutes");
    expect(text).toMatch(/^skip .*need a valid config/m);
  });

  it("fails a base path that cannot be written", async () => {
    const s = setup("bad-base");
    const blocker = path.join(s.home, "a-file");
    fs.writeFileSync(blocker, "");
    fs.writeFileSync(s.configFile, stringify({ workspace: { base_path: path.join(blocker, "workspaces") } }));
    const result = await doctor(["--config", s.configFile], s.env);
    expect(result.code).toBe(1);
    expect(line(result.lines, "base path")).toMatch(/^fail +base path: .*a-file is a file\. Fix: set workspace\.base_path/);
  });

  it("fails an allowed root that does not exist", async () => {
    const s = setup("bad-root", { workspace: { allowed_roots: ["/nonexistent/coding-mcp-doctor"] } });
    const result = await doctor(["--config", s.configFile], s.env);
    expect(result.code).toBe(1);
    expect(line(result.lines, "allowed roots")).toMatch(/^fail .*\/nonexistent\/coding-mcp-doctor does not exist\. Fix: /);
  });

  it("fails without bubblewrap, naming how to install it; ripgrep needs nothing installed", async () => {
    const s = setup("no-bwrap");
    const bin = binDirWith(path.join(s.home, "bin"), ["node", "git"]);
    const result = await doctor(["--config", s.configFile], { ...s.env, PATH: bin });
    expect(result.code).toBe(1);
    expect(line(result.lines, "bubblewrap")).toMatch(/^fail +bubblewrap: bwrap is not installed.*Fix: install bubblewrap: apt-get install bubblewrap/);
    expect(line(result.lines, "sandbox")).toMatch(/^fail +sandbox: the agent's commands cannot be confined: bubblewrap \(bwrap\) is not installed\. Fix: .*apt-get install bubblewrap.*sandbox\.mode: off/);
    expect(line(result.lines, "ripgrep")).toMatch(/^ok +ripgrep: bundled: /);
    expect(line(result.lines, "git")).toMatch(/^ok /);
  });

  it("names socat when sandbox.network.allow is used (only then), failing it with the install command when missing", async () => {
    const s = setup("socat", { sandbox: { network: { allow: ["registry.npmjs.org"] } } });
    const present = await doctor(["--config", s.configFile], s.env);
    expect(line(present.lines, "socat")).toMatch(/^ok +socat: socat version \d/);
    // The sandbox probe ran with the allow list, so its bridge came up inside.
    expect(line(present.lines, "sandbox")).toMatch(/^ok +sandbox: confined/);
    const bin = binDirWith(path.join(s.home, "bin"), ["node", "git", "bwrap"]);
    const missing = await doctor(["--config", s.configFile], { ...s.env, PATH: bin });
    expect(missing.code).toBe(1);
    expect(line(missing.lines, "socat")).toMatch(/^fail +socat: not found on PATH.*Fix: install socat: apt-get install socat/);
    expect(line(missing.lines, "sandbox")).toMatch(/^fail +sandbox: .*socat is not installed/);
  });

  it("says loudly when the sandbox is off, without failing", async () => {
    const s = setup("sandbox-off", { sandbox: { mode: "off" } });
    const result = await doctor(["--config", s.configFile], s.env);
    expect(result.code, result.lines.join("\n")).toBe(0);
    expect(line(result.lines, "sandbox")).toMatch(/^warn +sandbox: OFF \(sandbox\.mode: off\): the agent's commands run unconfined.*Fix: set sandbox\.mode: on/);
  });

  it("names a configured backend whose agent runs its commands outside the sandbox", async () => {
    // An ACP backend opted out of the sandbox (as Codex and Gemini CLI must be: README, Confinement).
    const s = setup("acp-backend", { backends: { helper: { type: "acp", command: ["opencode", "acp"], sandbox: "off" } } });
    const result = await doctor(["--config", s.configFile], s.env);
    expect(result.code, result.lines.join("\n")).toBe(0);
    expect(line(result.lines, "sandbox")).toMatch(/^warn +sandbox: confined: a command ran in a sandbox with no network/);
    const text = result.lines.join("\n");
    expect(text).toContain("but the agent of backend helper runs its commands itself, outside coding-mcp's sandbox: sessions on helper are not confined");
    expect(text).not.toContain("backend opencode"); // the managed OpenCode is confined
  });

  describe("with OPENCODE_URL", () => {
    let server: OpencodeServer;
    beforeAll(async () => {
      server = await startOpencodeServer({ home: path.join(dir, "external-opencode"), fakeBaseURL: fake.baseURL });
    });
    afterAll(async () => {
      await server?.stop();
    });

    it("passes a reachable server with the right password, and names its version", async () => {
      const s = setup("url-good");
      const result = await doctor(["--config", s.configFile], { ...s.env, OPENCODE_URL: server.url, OPENCODE_SERVER_PASSWORD: server.password });
      expect(result.code, result.lines.join("\n")).toBe(0);
      expect(line(result.lines, "OPENCODE_URL")).toMatch(/^ok +OPENCODE_URL: http:\/\/127\.0\.0\.1:\d+ is OpenCode 1\.\d+\.\d+, healthy, password accepted/);
      // The machine confines, but not that OpenCode: coding-mcp did not start it.
      expect(line(result.lines, "sandbox")).toMatch(/^warn +sandbox: confined: a command ran in a sandbox with no network/);
      expect(result.lines.join("\n")).toContain(`but the OpenCode at ${server.url} runs outside coding-mcp, which cannot confine its commands`);
      expect(result.lines.join("\n")).not.toContain(server.password);
    });

    it("fails a wrong password, and a missing one", async () => {
      const s = setup("url-password");
      const wrong = await doctor(["--config", s.configFile], { ...s.env, OPENCODE_URL: server.url, OPENCODE_SERVER_PASSWORD: "not-the-password" });
      expect(wrong.code).toBe(1);
      expect(line(wrong.lines, "OPENCODE_URL")).toMatch(/^fail .*refuses the password in OPENCODE_SERVER_PASSWORD\. Fix: set OPENCODE_SERVER_PASSWORD/);
      expect(wrong.lines.join("\n")).not.toContain("not-the-password");
      const missing = await doctor(["--config", s.configFile], { ...s.env, OPENCODE_URL: server.url });
      expect(missing.code).toBe(1);
      expect(line(missing.lines, "OPENCODE_URL")).toMatch(/^fail .*wants a password, and OPENCODE_SERVER_PASSWORD is not set/);
    });

    it("fails a closed port", async () => {
      const s = setup("url-closed");
      // The external server's port once it is stopped would race with other tests; port 9 (discard) is closed on loopback.
      const result = await doctor(["--config", s.configFile], { ...s.env, OPENCODE_URL: "http://127.0.0.1:9" });
      expect(result.code).toBe(1);
      expect(line(result.lines, "OPENCODE_URL")).toMatch(/^fail +OPENCODE_URL: http:\/\/127\.0\.0\.1:9 is not reachable: .*Fix: start that OpenCode server/);
    });
  });
});
