import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";

const dirs: string[] = [];
function file(text: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "coding-mcp-config-"));
  dirs.push(dir);
  const f = path.join(dir, "config.yaml");
  fs.writeFileSync(f, text);
  return f;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const emptyEnv = { HOME: "/home/someone" };

describe("loadConfig", () => {
  it("gives the documented defaults with no file", () => {
    const c = loadConfig({ env: emptyEnv });
    expect(c.workspace.cleanup_policy).toBe("on_session_end");
    expect(c.limits).toEqual({ task_timeout_min: 10, max_attempts: 3, clone_timeout_min: 5, push_timeout_min: 5, approval_timeout_sec: 300, per_client_sessions: 100, per_client_tasks: 10 });
    // Nothing outside the workspace without a person's yes.
    expect(c.permissions).toEqual({ "*": "allow", external_directory: "ask", doom_loop: "ask" });
    expect(c.notes).toEqual([]);
    expect(c.git.token_env).toBe("GITHUB_TOKEN");
    expect(c.opencode.url).toBeUndefined();
  });

  it("reads the file, expands ~ and lets the environment override it", () => {
    const f = file("workspace:\n  base_path: ~/ws\nlimits:\n  task_timeout_min: 20\n");
    const c = loadConfig({
      configPath: f,
      env: { ...emptyEnv, CODING_MCP_LIMITS_TASK_TIMEOUT_MIN: "30", OPENCODE_URL: "http://127.0.0.1:4096", GITHUB_TOKEN: "tok-123456" },
    });
    expect(c.workspace.base_path).toBe(path.join(os.homedir(), "ws"));
    expect(c.limits.task_timeout_min).toBe(30);
    expect(c.opencode.url).toBe("http://127.0.0.1:4096");
    expect(c.secrets.gitToken).toBe("tok-123456");
  });

  it("reads the permissions policy, maps the superseded opencode.permissions with a note, and refuses a wrong rule", () => {
    const top = loadConfig({ configPath: file("permissions:\n  \"*\": ask\n  read: allow\n"), env: emptyEnv });
    expect(top.permissions).toEqual({ "*": "ask", read: "allow" });
    const old = loadConfig({ configPath: file("opencode:\n  permissions:\n    \"*\": allow\n    edit: deny\n"), env: emptyEnv });
    expect(old.permissions).toEqual({ "*": "allow", edit: "deny" });
    expect(old.notes.join("\n")).toMatch(/opencode\.permissions is superseded by the top-level permissions/);
    const env = loadConfig({ env: { ...emptyEnv, CODING_MCP_PERMISSIONS: '{"bash": "ask"}' } });
    expect(env.permissions).toEqual({ bash: "ask" });
    expect(() => loadConfig({ configPath: file("permissions:\n  bash: maybe\n"), env: emptyEnv })).toThrow(/permissions\.bash: expected one of "allow", "deny", "ask"/);
    expect(() => loadConfig({ env: { ...emptyEnv, CODING_MCP_PERMISSIONS: "bash=ask" } })).toThrow(/CODING_MCP_PERMISSIONS: expected a JSON object/);
  });

  it("reads an ACP backend with its own start-up bound, and refuses a bad one", () => {
    const c = loadConfig({ configPath: file("backends:\n  claude:\n    type: acp\n    command: [claude-agent-acp]\n    startup_timeout_sec: 120\n"), env: emptyEnv });
    expect(c.backends.claude).toMatchObject({ command: ["claude-agent-acp"], startup_timeout_sec: 120 });
    expect(loadConfig({ configPath: file("backends:\n  x:\n    type: acp\n    command: [x]\n"), env: emptyEnv }).backends.x!.startup_timeout_sec).toBe(60);
    expect(() => loadConfig({ configPath: file("backends:\n  x:\n    type: acp\n    command: [x]\n    startup_timeout_sec: 0\n"), env: emptyEnv })).toThrow(/backends\.x\.startup_timeout_sec/);
  });

  it("names an unknown key and what is allowed", () => {
    const f = file("limits:\n  task_timeout: 5\n");
    expect(() => loadConfig({ configPath: f, env: emptyEnv })).toThrow(/limits\.task_timeout: unknown key; allowed here: task_timeout_min, max_attempts/);
  });

  it("names a wrong value and the allowed values", () => {
    const f = file("workspace:\n  cleanup_policy: sometimes\n");
    expect(() => loadConfig({ configPath: f, env: emptyEnv })).toThrow(/workspace\.cleanup_policy: expected one of "on_session_end", "on_success", "manual"/);
    const g = file("limits:\n  max_attempts: lots\n");
    expect(() => loadConfig({ configPath: g, env: emptyEnv })).toThrow(/limits\.max_attempts: expected a whole number/);
  });

  it("refuses an unknown CODING_MCP_ variable and a malformed value", () => {
    expect(() => loadConfig({ env: { ...emptyEnv, CODING_MCP_LIMITS_TASKS: "3" } })).toThrow(/unknown environment variable CODING_MCP_LIMITS_TASKS/);
    expect(() => loadConfig({ env: { ...emptyEnv, CODING_MCP_GIT_ALLOW_FILE_REMOTES: "maybe" } })).toThrow(ConfigError);
  });

  it("reads sandbox.network.allow, and refuses an entry it could not enforce, saying what to write", () => {
    const c = loadConfig({ configPath: file("sandbox:\n  network:\n    allow: [registry.npmjs.org, '*.pythonhosted.org', '127.0.0.1:3000']\n"), env: emptyEnv });
    expect(c.sandbox.network.allow).toEqual(["registry.npmjs.org", "*.pythonhosted.org", "127.0.0.1:3000"]);
    expect(() => loadConfig({ configPath: file("sandbox:\n  network:\n    allow: ['https://registry.npmjs.org/']\n"), env: emptyEnv })).toThrow(
      /sandbox\.network\.allow\.0: "https:\/\/registry\.npmjs\.org\/" is a URL; give the host only/,
    );
    expect(() => loadConfig({ configPath: file("sandbox:\n  network:\n    allow: [localhost]\n"), env: emptyEnv })).toThrow(/name the one port to allow \("localhost:PORT"\)/);
  });

  it("says so when the file is missing or not YAML", () => {
    expect(() => loadConfig({ configPath: "/nonexistent/c.yaml", env: emptyEnv })).toThrow(/config file \/nonexistent\/c.yaml does not exist/);
    expect(() => loadConfig({ configPath: file("a: [1,\n"), env: emptyEnv })).toThrow(/not valid YAML/);
  });
});
