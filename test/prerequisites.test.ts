import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { binDirWith } from "./support/bin-dir.js";
import { ROOT } from "./support/harness.js";

// A fresh machine without ripgrep (or git): npm test and npm run demo stop first, with one line per
// missing thing saying how to install it, instead of failing deep inside a test or the demo.

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "coding-mcp-prereqs-"));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function run(command: string, args: string[], bin: string) {
  const result = spawnSync(command, args, { cwd: ROOT, env: { ...process.env, PATH: bin }, encoding: "utf8", timeout: 60_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, lines: result.stderr.split("\n").filter(Boolean) };
}

describe("the prerequisite check", () => {
  it("names ripgrep and how to install it when rg is not on PATH", () => {
    const bin = binDirWith(path.join(dir, "no-rg"), ["node", "git"]);
    const result = run(path.join(bin, "node"), ["scripts/check-prereqs.mjs"], bin);
    expect(result.status).toBe(1);
    expect(result.lines).toHaveLength(1);
    expect(result.lines[0]).toMatch(/^coding-mcp needs ripgrep: rg is not on PATH.*apt-get install ripgrep.*brew install ripgrep/);
  });

  it("says one line per missing thing", () => {
    const bin = binDirWith(path.join(dir, "node-only"), ["node"]);
    const result = run(path.join(bin, "node"), ["scripts/check-prereqs.mjs"], bin);
    expect(result.status).toBe(1);
    expect(result.lines).toHaveLength(2);
    expect(result.lines[0]).toMatch(/^coding-mcp needs git: .*apt-get install git/);
    expect(result.lines[1]).toMatch(/^coding-mcp needs ripgrep: /);
  });

  it("is silent when everything is there", () => {
    const bin = binDirWith(path.join(dir, "all"), ["node", "git", "rg"]);
    const result = run(path.join(bin, "node"), ["scripts/check-prereqs.mjs"], bin);
    expect(result.status).toBe(0);
    expect(result.stderr + result.stdout).toBe("");
  });

  it.each(["test", "demo"])("runs first in npm %s: it stops there, before building or starting anything", (script) => {
    const bin = binDirWith(path.join(dir, `npm-${script}`), ["node", "git", "npm", "sh"]);
    const result = run(path.join(bin, "npm"), ["run", script], bin);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toMatch(/coding-mcp needs ripgrep: .*apt-get install ripgrep/);
    // npm echoes each script it runs ("> <command>"): the script itself was echoed (so the echo is there to see), the build's never was.
    const scripts = (JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }).scripts;
    expect(result.stdout).toContain(`> ${scripts[script]}`);
    expect(result.stdout).not.toContain(`> ${scripts.build}`);
  });
});
