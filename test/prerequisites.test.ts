import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { binDirWith, binDirWithout } from "./support/bin-dir.js";
import { ROOT, startHarness, structured, type Harness } from "./support/harness.js";

// A fresh machine without bubblewrap (or git): npm test and npm run bench stop first, with one line
// per missing thing saying how to install it; npm run demo runs with the sandbox off and says so.
// ripgrep is no system prerequisite: the bundled one (@vscode/ripgrep) serves OpenCode's grep and bash.

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "coding-mcp-prereqs-"));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function run(command: string, args: string[], bin: string, timeout = 60_000) {
  const result = spawnSync(command, args, { cwd: ROOT, env: { ...process.env, PATH: bin }, encoding: "utf8", timeout });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, lines: result.stderr.split("\n").filter(Boolean) };
}

describe("the prerequisite check", () => {
  it("names bubblewrap and how to install it when bwrap is not on PATH", () => {
    const bin = binDirWith(path.join(dir, "no-bwrap"), ["node", "git"]);
    const result = run(path.join(bin, "node"), ["scripts/check-prereqs.mjs"], bin);
    expect(result.status).toBe(1);
    expect(result.lines).toHaveLength(1);
    expect(result.lines[0]).toMatch(/^coding-mcp needs bubblewrap: bwrap is not installed.*Fix: install bubblewrap: apt-get install bubblewrap.*sandbox\.mode: off/);
  });

  it("says one line per missing thing", () => {
    const bin = binDirWith(path.join(dir, "node-only"), ["node"]);
    const result = run(path.join(bin, "node"), ["scripts/check-prereqs.mjs"], bin);
    expect(result.status).toBe(1);
    expect(result.lines).toHaveLength(2);
    expect(result.lines[0]).toMatch(/^coding-mcp needs git: .*apt-get install git/);
    expect(result.lines[1]).toMatch(/^coding-mcp needs bubblewrap: /);
  });

  it("is silent when everything is there, ripgrep or not (it comes from npm)", () => {
    const bin = binDirWith(path.join(dir, "all"), ["node", "git", "bwrap"]);
    const result = run(path.join(bin, "node"), ["scripts/check-prereqs.mjs"], bin);
    expect(result.status).toBe(0);
    expect(result.stderr + result.stdout).toBe("");
  });

  it("for the demo, lets bubblewrap be missing but not git", () => {
    const noBwrap = binDirWith(path.join(dir, "demo-no-bwrap"), ["node", "git"]);
    expect(run(path.join(noBwrap, "node"), ["scripts/check-prereqs.mjs", "demo"], noBwrap).status).toBe(0);
    const noGit = binDirWith(path.join(dir, "demo-no-git"), ["node", "bwrap"]);
    const result = run(path.join(noGit, "node"), ["scripts/check-prereqs.mjs", "demo"], noGit);
    expect(result.status).toBe(1);
    expect(result.lines).toEqual([expect.stringMatching(/^coding-mcp needs git: /)]);
  });

  it.each([
    ["test", "bubblewrap", ["node", "git", "npm", "sh"]],
    ["bench", "bubblewrap", ["node", "git", "npm", "sh"]],
    ["demo", "git", ["node", "bwrap", "npm", "sh"]],
  ])("runs first in npm %s: without %s it stops there, before building or starting anything", (script, missing, commands) => {
    const bin = binDirWith(path.join(dir, `npm-${script}`), commands);
    const result = run(path.join(bin, "npm"), ["run", script], bin);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(new RegExp(`coding-mcp needs ${missing}: .*apt-get install ${missing}`));
    // npm echoes each script it runs ("> <command>"): the script itself was echoed (so the echo is there to see), the build's never was.
    const scripts = (JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;
    expect(result.stdout).toContain(`> ${scripts[script]}`);
    expect(result.stdout).not.toContain(`> ${scripts.build}`);
  });
});

describe("a machine without bubblewrap and without a system ripgrep", () => {
  it("runs the demo with the sandbox off, saying so with the fix, and the task succeeds", () => {
    const bin = binDirWithout(path.join(dir, "demo-bin"), ["bwrap", "rg"]);
    const result = run(path.join(bin, "node"), ["scripts/demo.mjs"], bin, 240_000);
    expect(result.status, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/NOTE: the agent's commands cannot be confined on this machine \(bubblewrap: bwrap is not installed/);
    expect(result.stdout).toMatch(/runs with the sandbox OFF/);
    expect(result.stdout).toMatch(/Before real use: install bubblewrap: apt-get install bubblewrap/);
    expect(result.stdout).toMatch(/commands NOT confined/);
    expect(result.stdout).toMatch(/success: true/);
    expect(result.stdout).toMatch(/committed [0-9a-f]{40}/);
    expect(result.stderr).toMatch(/SANDBOX OFF/); // coding-mcp's own loud line
  }, 300_000);
});

describe("OpenCode without a system ripgrep", () => {
  let h: Harness;
  let bin: string;
  beforeAll(async () => {
    // Not under /tmp: the sandbox has a /tmp of its own, so a PATH entry there would be empty inside it.
    bin = fs.mkdtempSync(path.join(ROOT, "node_modules", ".cache-prereqs-bin-"));
    h = await startHarness({ env: { PATH: binDirWithout(bin, ["rg"]) } });
  });
  afterAll(async () => {
    await h?.close();
    if (bin) fs.rmSync(bin, { recursive: true, force: true });
  });

  it("finds the bundled rg: its grep tool works, and its confined bash has rg on PATH", async () => {
    h.fake.setScenario("rg", [
      { tools: [{ name: "write", args: { filePath: "notes.txt", content: "needle in a haystack\n" } }] },
      { tools: [{ name: "grep", args: { pattern: "needle" } }] },
      { tools: [{ name: "bash", args: { command: "command -v rg && rg --version | head -1", description: "Which rg" } }] },
      { text: "Found it." },
    ]);
    expect(fs.readdirSync(h.env.PATH!)).not.toContain("rg");
    const opened = structured(await h.call("coding_open", {}));
    expect(opened.confined).toBe(true);
    const result = structured(await h.call("code", { session_id: opened.session_id, task: "[[fake:rg]] find the needle" }));
    expect(result.success, JSON.stringify(result)).toBe(true);
    const [, grep, bash] = result.trace.tool_calls;
    expect(grep).toMatchObject({ tool: "grep", status: "completed" });
    expect(grep.output_preview).toContain("notes.txt");
    expect(bash).toMatchObject({ tool: "bash", status: "completed" });
    expect(bash.output_preview).toMatch(/node_modules\/@vscode\/ripgrep-[a-z0-9-]+\/bin\/rg\n.*ripgrep \d+\.\d+/);
    const [status] = structured(await h.call("coding_status", { session_id: opened.session_id })).sessions;
    expect(status.confined).toBe(true);
  });
});
