import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Confinement } from "../../src/confinement/index.js";
import { bubblewrapArgs } from "../../src/confinement/bubblewrap.js";
import { shellQuote } from "../../src/confinement/launcher.js";
import { policyFor, sandboxEnvironment, scopeFor } from "../../src/confinement/policy.js";
import { runBound } from "../../src/process.js";

/**
 * The confinement module against the real bubblewrap: a prepared session's commands, run through
 * the confined shell as an agent would run them, try every escape by more than one route; ordinary
 * work in the workspace still succeeds. Each escape has a control run unconfined, so "refused"
 * means the sandbox refused it.
 */

const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const hasBwrap = fs.existsSync("/usr/bin/bwrap");
if (!hasBwrap) console.warn("confinement tests: /usr/bin/bwrap is missing (apt-get install bubblewrap); they fail");

let root: string;
let home: string;
let base: string;
let workspace: string;
let other: string;
let confinement: Confinement;
const TOKEN = "ghp_confinementTestToken0123456789";

async function confined(command: string, cwd = workspace, key = "ses_a") {
  const { file, args, env } = confinement.shellCommand(key, command);
  // The agent process's environment (secrets included) plus the profile variable, as OpenCode's plugin sets it.
  return runBound(file, args, { cwd, env: { GITHUB_TOKEN: TOKEN, OPENCODE_SERVER_PASSWORD: "pw-secret-123456", ...env }, timeoutMs: 20_000 });
}

async function plain(command: string, cwd = workspace) {
  return runBound("/bin/bash", ["-c", command], { cwd, env: { GITHUB_TOKEN: TOKEN }, timeoutMs: 20_000 });
}

beforeAll(async () => {
  root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), "confinement-")));
  home = path.join(root, "home");
  base = path.join(root, "base");
  workspace = path.join(base, "ws-a");
  other = path.join(base, "ws-b");
  for (const d of [home, workspace, other, path.join(home, ".ssh"), path.join(home, ".aws"), path.join(home, ".config", "gh")]) fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(path.join(home, ".ssh", "id_ed25519"), "PRIVATE KEY\n");
  fs.writeFileSync(path.join(home, ".aws", "credentials"), "aws_secret_access_key=AKIAXXXX\n");
  fs.writeFileSync(path.join(home, ".git-credentials"), "https://u:p@example.com\n");
  fs.writeFileSync(path.join(home, "notes.txt"), "the owner's notes\n");
  fs.writeFileSync(path.join(other, "theirs.txt"), "another session's file\n");
  for (const ws of [workspace, other]) {
    await runBound("git", ["init", "-q", "-b", "main"], { cwd: ws });
    await runBound("git", ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "init"], { cwd: ws });
  }
  confinement = new Confinement({
    mode: "on",
    stateDir: path.join(base, ".coding-mcp"),
    settings: { denyRead: [], allowWrite: [], ownPaths: [path.join(base, ".coding-mcp"), base], home },
    agentEnv: { PATH: process.env.PATH, HOME: home, LANG: "C.UTF-8", GITHUB_TOKEN: TOKEN, MY_API_KEY: "k-123", HARMLESS: "yes", OPENCODE_CONFIG_CONTENT: "{}" },
    secrets: [TOKEN],
    log: quiet,
  });
  await confinement.install();
  expect(await confinement.state()).toEqual({ mode: "on", confined: true });
  await confinement.prepare("ses_a", scopeFor({ path: workspace }));
  await confinement.prepare("ses_b", scopeFor({ path: other }));
});

afterAll(() => {
  if (root) fs.rmSync(root, { recursive: true, force: true });
});

describe("a confined command", () => {
  it("does ordinary work in its workspace: files, a script, git status and a commit", async () => {
    const r = await confined(
      `echo 'print(6*7)' > calc.py && python3 calc.py > out.txt && git status --short && git add -A && git -c user.name=a -c user.email=a@a commit -qm work && git log --oneline | wc -l`,
    );
    expect(r.stderr).toBe("");
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain("?? calc.py");
    expect(r.stdout.trim().endsWith("2")).toBe(true);
    expect(fs.readFileSync(path.join(workspace, "out.txt"), "utf8")).toBe("42\n");
  });

  it("finds programs on a PATH directory under the host's /tmp", async () => {
    const bin = path.join(root, "bin");
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, "hello-tool"), "#!/bin/sh\necho hello from a tool in /tmp\n", { mode: 0o755 });
    const c = new Confinement({
      mode: "on",
      stateDir: path.join(base, ".coding-mcp-bin"),
      settings: { denyRead: [], allowWrite: [], ownPaths: [base], home },
      agentEnv: { PATH: `${bin}:${process.env.PATH}`, HOME: home },
      secrets: [],
      log: quiet,
    });
    await c.install();
    await c.prepare("ses_bin", scopeFor({ path: workspace }));
    const { file, args, env } = c.shellCommand("ses_bin", "hello-tool");
    const r = await runBound(file, args, { cwd: workspace, env, timeoutMs: 20_000 });
    expect(r.stdout).toBe("hello from a tool in /tmp");
    await c.release("ses_bin");
  });

  it("keeps its temporary files between commands of its session, apart from other sessions", async () => {
    expect((await confined("echo kept > /tmp/scratch && cat $TMPDIR/scratch")).stdout).toBe("kept");
    expect((await confined("cat /tmp/scratch")).stdout).toBe("kept");
    expect((await confined("cat /tmp/scratch", other, "ses_b")).exitCode).not.toBe(0);
    expect(fs.existsSync("/tmp/scratch")).toBe(false);
  });

  it("sees no process outside its sandbox, so no other process's environment (the token)", async () => {
    const control = await plain(`grep -l ${TOKEN} /proc/[0-9]*/environ 2>/dev/null | head -1`);
    expect(control.stdout).not.toBe(""); // unconfined, the token is there to find
    const r = await confined(`ls /proc | grep -c '^[0-9]'; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n' | grep -c ${TOKEN}; ps -e 2>/dev/null | wc -l`);
    const [processes, found] = r.stdout.split("\n").map((l) => Number(l.trim()));
    expect(processes).toBeLessThan(8);
    expect(found).toBe(0);
  });

  it("holds none of coding-mcp's or the agent's secrets in its environment", async () => {
    const r = await confined("env");
    expect(r.stdout).not.toContain(TOKEN);
    expect(r.stdout).not.toContain("pw-secret-123456");
    expect(r.stdout).not.toContain("OPENCODE_CONFIG_CONTENT");
    expect(r.stdout).not.toContain("MY_API_KEY");
    expect(r.stdout).toContain("HARMLESS=yes");
    expect(r.stdout).toContain("CODING_MCP_SANDBOX=1");
  });

  it.each([
    ["sh", (f: string) => `echo x > ${f}`],
    ["python3", (f: string) => `python3 -c 'open("${f}","w").write("x")'`],
    ["cp", (f: string) => `cp /etc/hostname ${f}`],
  ])("writes nothing outside its workspace (%s)", async (_route, write) => {
    for (const target of [path.join(root, "escape.txt"), path.join(other, "escape.txt"), path.join(home, "escape.txt"), "/var/escape.txt", "/usr/local/escape.txt"]) {
      const r = await confined(write(target));
      // Under /tmp the write lands in the session's private temp dir, never in the host's /tmp.
      if (!target.startsWith("/tmp/")) expect(r.exitCode, `${target}: ${r.stdout} ${r.stderr}`).not.toBe(0);
      expect(fs.existsSync(target), target).toBe(false);
    }
    const control = await plain(write(path.join(root, "control.txt")));
    expect(control.exitCode).toBe(0);
    expect(fs.existsSync(path.join(root, "control.txt"))).toBe(true);
  });

  it("cannot work in another session's workspace when its working directory is moved there", async () => {
    const r = await confined("echo x > moved.txt; cat theirs.txt", other);
    expect(r.exitCode).not.toBe(0);
    expect(r.stdout).not.toContain("another session's file");
    expect(fs.existsSync(path.join(other, "moved.txt"))).toBe(false);
    const listed = await confined(`ls ${shellQuote(other)} 2>&1; cat ${shellQuote(path.join(other, "theirs.txt"))} 2>&1`);
    expect(listed.stdout).not.toContain("another session's file");
  });

  it("reads none of the owner's credential stores, nor the rest of the home", async () => {
    const r = await confined(
      `cat ~/.ssh/id_ed25519 ~/.aws/credentials ~/.git-credentials ~/notes.txt 2>&1; ls -A ~/.ssh ~/.config/gh 2>&1; python3 -c 'print(open("${home}/.aws/credentials").read())' 2>&1`,
    );
    expect(r.stdout).not.toContain("PRIVATE KEY");
    expect(r.stdout).not.toContain("AKIAXXXX");
    expect(r.stdout).not.toContain("u:p@");
    expect(r.stdout).not.toContain("owner's notes");
    expect((await plain(`cat ${home}/.aws/credentials`)).stdout).toContain("AKIAXXXX");
  });

  it("cannot undo the hiding: no capabilities, no new user namespace", async () => {
    const r = await confined(`umount ${home} 2>&1; unshare -U true 2>&1 && echo NESTED; cat ${home}/.ssh/id_ed25519 2>&1`);
    expect(r.stdout).not.toContain("PRIVATE KEY");
    expect(r.stdout).not.toContain("NESTED");
  });

  it("connects nowhere: not to a loopback port of the host, not by name", async () => {
    const server = net.createServer((s) => s.end("hello from the host\n"));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const probe = `python3 -c 'import socket; s=socket.create_connection(("127.0.0.1",${port}),2); print(s.recv(100))'`;
      expect((await plain(probe)).stdout).toContain("hello from the host");
      const r = await confined(`${probe} 2>&1; exec 3<>/dev/tcp/127.0.0.1/${port} 2>&1 && echo OPENED; getent hosts example.com || echo NO-DNS`);
      expect(r.stdout).not.toContain("hello from the host");
      expect(r.stdout).not.toContain("OPENED");
      expect(r.stdout).toContain("NO-DNS");
    } finally {
      server.close();
    }
  });

  it("cannot change the repository's config or hooks, which git outside the sandbox would run", async () => {
    const r = await confined(`git config core.hooksPath /tmp/hooks 2>&1; echo '#!/bin/sh' > .git/hooks/pre-commit 2>&1; echo done`);
    expect(r.stdout).toContain("done");
    expect(fs.readFileSync(path.join(workspace, ".git", "config"), "utf8")).not.toContain("hooksPath");
    expect(fs.existsSync(path.join(workspace, ".git", "hooks", "pre-commit"))).toBe(false);
  });

  it("runs nothing for a session without a profile, or with a forged key", async () => {
    for (const key of ["ses_unknown", "../../etc/passwd"]) {
      const r = await runBound(confinement.launcherPath, ["-c", "echo RAN"], { cwd: workspace, env: { CODING_MCP_SANDBOX_PROFILE: key }, timeoutMs: 10_000 });
      expect(r.stdout).not.toContain("RAN");
      expect(r.exitCode).toBe(126);
    }
    await confinement.release("ses_b");
    expect((await confined("echo RAN", other, "ses_b")).exitCode).toBe(126);
    await confinement.prepare("ses_b", scopeFor({ path: other }));
  });

  it("is stopped with its process group: an abort kills the sandboxed command", async () => {
    const { file, args, env } = confinement.shellCommand("ses_a", "sleep 31.4159 & echo $! > sleeper.pid; wait");
    const child = spawn(file, args, { cwd: workspace, env: { ...process.env, ...env }, detached: true, stdio: "ignore" });
    const pidFile = path.join(workspace, "sleeper.pid");
    for (let i = 0; i < 300 && !fs.existsSync(pidFile); i++) await new Promise((r) => setTimeout(r, 50));
    expect(fs.existsSync(pidFile)).toBe(true);
    const sleepers = () => fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p) && readCmdline(p) === "sleep\u000031.4159\u0000");
    // The pid file is written right after the fork, maybe before the child has become sleep.
    for (let i = 0; i < 300 && sleepers().length === 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(sleepers().length).toBeGreaterThan(0);
    process.kill(-child.pid!, "SIGKILL");
    for (let i = 0; i < 300 && sleepers().length > 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(sleepers()).toEqual([]);
  });
});

function readCmdline(pid: string): string {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return "";
  }
}

describe("the policy and its arguments", () => {
  it("hides the credential stores and own paths after showing PATH dirs under home, and binds the workspace last", () => {
    const scope = { workspace: "/base/ws", gitWritable: ["/repo/.git/objects"], gitReadOnly: ["/base/ws/.git/config"] };
    const policy = policyFor(scope, { denyRead: ["/secret"], allowWrite: ["/cache"], ownPaths: ["/base"], home: "/home/u" }, "/state/tmp/k", ["/home/u/.pyenv/shims", "/usr/bin", "/tmp/npx-123/bin"]);
    expect(policy.showAgain).toEqual(["/home/u/.pyenv", "/tmp/npx-123/bin"]);
    expect(policy.writable).toEqual(["/base/ws", "/repo/.git/objects", "/cache"]);
    const args = bubblewrapArgs(policy).join(" ");
    expect(args).toContain("--unshare-net");
    expect(args).toContain("--cap-drop ALL");
    expect(args.indexOf("--tmpfs /home/u")).toBeLessThan(args.indexOf("--ro-bind-try /home/u/.pyenv"));
    expect(args.indexOf("--bind-try /base/ws /base/ws")).toBeGreaterThan(args.indexOf("--ro-bind-try /home/u/.pyenv"));
    expect(args.indexOf("--ro-bind-try /base/ws/.git/config")).toBeGreaterThan(args.indexOf("--bind-try /base/ws"));
  });

  it("drops variables that hold credentials by name or by value", () => {
    const env = sandboxEnvironment(
      {
        PATH: "/usr/bin",
        HOME: "/h",
        NPM_TOKEN: "a",
        AWS_PROFILE: "p",
        DB_PASSWORD: "b",
        OPENAI_API_KEY: "c",
        RENAMED: "s3cret-value",
        MY_VAR: "ghp_looksLikeAGitHubToken",
        GIT_AUTHOR_NAME: "Ann",
        KEYBOARD_LAYOUT: "us",
        LANG: "C",
      },
      ["s3cret-value"],
      ["/rg"],
    );
    expect(Object.keys(env).sort()).toEqual(["CODING_MCP_SANDBOX", "GIT_AUTHOR_NAME", "HOME", "KEYBOARD_LAYOUT", "LANG", "PATH", "TMPDIR"]);
    expect(env.PATH).toBe("/usr/bin:/rg");
  });

  it("accepts a worktree's admin dir only inside the source repository's own git dir", async () => {
    const repo = path.join(root, "repo");
    fs.mkdirSync(repo);
    await runBound("git", ["init", "-q", "-b", "main"], { cwd: repo });
    await runBound("git", ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "init"], { cwd: repo });
    const wt = path.join(base, "wt");
    await runBound("git", ["worktree", "add", "-q", "-b", "side", wt], { cwd: repo });
    const scope = scopeFor({ path: wt, isolation: "worktree", source_repo: repo });
    expect(scope.gitWritable).toContain(path.join(repo, ".git", "worktrees", "wt"));
    // The agent rewrites .git to point at a directory of its choosing: not accepted.
    fs.writeFileSync(path.join(wt, ".git"), `gitdir: ${home}/.ssh\n`);
    expect(scopeFor({ path: wt, isolation: "worktree", source_repo: repo }).gitWritable).not.toContain(`${home}/.ssh`);
    expect(scopeFor({ path: wt, isolation: "worktree", source_repo: repo }).gitWritable.some((p) => p.includes(".ssh"))).toBe(false);
  });
});
