import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { agentEnvironment, configuredBackends, confinementFor } from "./app.js";
import type { CodingBackend } from "./backend.js";
import { ConfigError, loadConfig, type ResolvedConfig } from "./config.js";
import { homeDirsOnPath, PROFILE_VARIABLE, type Confinement } from "./confinement/index.js";
import { shellQuote } from "./confinement/launcher.js";
import { OpencodeClient, OpencodeHttpError } from "./opencode/client.js";
import { resolveOpencodeBinary } from "./opencode/managed.js";
import { checkPrerequisites, checkSocat, type Prerequisite } from "./prerequisites.js";
import { Redactor } from "./redact.js";
import { VERSION } from "./version.js";

/**
 * `coding-mcp doctor [--config FILE] [--task]`: checks what a setup needs, one line per check with
 * the fix when it fails, and exits non-zero when something is wrong. Secrets are never printed.
 */

export type CheckStatus = "ok" | "warn" | "fail";

export interface CheckResult {
  status: CheckStatus;
  name: string;
  detail: string;
  fix?: string;
}

export interface DoctorOptions {
  configPath?: string;
  /** Also run one real task on a scratch workspace, through the MCP protocol. */
  task?: boolean;
  env?: NodeJS.ProcessEnv;
  out?: (line: string) => void;
}

/** Bytes under base_path below which coding-mcp warns: a clone or a task's files may not fit. */
const LOW_SPACE_BYTES = 500 * 1024 * 1024;
/** The OpenCode server API coding-mcp speaks, as the bundled opencode-ai package pins it. */
const OPENCODE_MAJOR = 1;

const execFileAsync = promisify(execFile);

export async function runDoctor(options: DoctorOptions = {}): Promise<number> {
  const out = options.out ?? ((line: string) => process.stdout.write(line + "\n"));
  const env = options.env ?? process.env;
  let failed = false;
  const report = (check: CheckResult) => {
    if (check.status === "fail") failed = true;
    const [first, ...more] = check.detail.split("\n");
    out(`${check.status.padEnd(4)}  ${check.name}: ${first}${check.fix ? `. Fix: ${check.fix}` : ""}`);
    for (const line of more) out(`      ${line.trim()}`);
  };

  out(`coding-mcp ${VERSION} doctor`);
  for (const p of checkPrerequisites()) report(asCheck(p));

  let config: ResolvedConfig | undefined;
  try {
    config = loadConfig({ ...(options.configPath ? { configPath: options.configPath } : {}), env });
    report({ status: "ok", name: "config", detail: `valid (from ${config.source})` });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    report({ status: "fail", name: "config", detail: err.message, fix: "correct the keys named above (README: Configuration)" });
  }

  if (config) {
    if (config.opencode.url) report(await checkOpencodeServer(config));
    else report(await checkOpencodeBinary());
    report(await checkSandbox(config, env));
    report(checkBasePath(config.workspace.base_path));
    for (const check of checkAllowedRoots(config.workspace.allowed_roots)) report(check);
    report(checkGitToken(config));
    if (config.git.ssh_key_path) report(checkReadableFile("git ssh key", config.git.ssh_key_path, "fix git.ssh_key_path"));
    if (config.sandbox.mode === "on" && config.sandbox.network.allow.length) report(asCheck(checkSocat()));
  } else {
    out("skip  OpenCode, sandbox, base path, allowed roots, git token: they need a valid config");
  }

  if (options.task) {
    if (failed) out("skip  round trip (--task): fix the failures above first");
    else report(await roundTrip(options.configPath, env));
  }
  out(failed ? "Something is wrong: see the lines marked fail." : "Everything coding-mcp needs is in place.");
  return failed ? 1 : 0;
}

/** A machine prerequisite as a doctor line: missing fails. */
function asCheck(p: Prerequisite): CheckResult {
  return { status: p.ok ? "ok" : "fail", name: p.name, detail: p.detail, ...(p.fix ? { fix: p.fix } : {}) };
}

async function checkOpencodeBinary(): Promise<CheckResult> {
  const name = "OpenCode";
  let bin: string;
  try {
    bin = resolveOpencodeBinary();
  } catch (err) {
    return { status: "fail", name, detail: (err as Error).message.split(";")[0]!, fix: "reinstall coding-mcp (npm install), or set OPENCODE_URL to a running OpenCode 1.x server" };
  }
  try {
    const { stdout } = await execFileAsync(bin, ["--version"], { timeout: 30_000, env: { ...process.env, OPENCODE_DISABLE_AUTOUPDATE: "1" } });
    const version = stdout.trim().split("\n").at(-1) ?? "";
    if (Number(version.split(".")[0]) !== OPENCODE_MAJOR) {
      return { status: "fail", name, detail: `${bin} is version ${version}; coding-mcp speaks OpenCode ${OPENCODE_MAJOR}.x`, fix: "reinstall coding-mcp's dependencies (npm install)" };
    }
    return { status: "ok", name, detail: `${version} (${bin}), started by coding-mcp on demand` };
  } catch (err) {
    return { status: "fail", name, detail: `${bin} --version failed: ${(err as Error).message.split("\n")[0]}`, fix: "reinstall coding-mcp's dependencies (npm install)" };
  }
}

/** OPENCODE_URL (or opencode.url): reachable, healthy, the right major version, and the password accepted. */
async function checkOpencodeServer(config: ResolvedConfig): Promise<CheckResult> {
  const url = config.opencode.url!;
  const name = "OPENCODE_URL";
  const passwordVar = config.opencode.password ? "opencode.password" : config.opencode.password_env;
  const client = new OpencodeClient({
    baseUrl: url,
    username: config.opencode.username,
    ...(config.secrets.opencodePassword ? { password: config.secrets.opencodePassword } : {}),
    requestTimeoutMs: 10_000,
  });
  try {
    // The health route, like every other, wants the password when the server has one.
    const health = await client.health(10_000);
    if (!health.healthy) return { status: "fail", name, detail: `${url} answers but reports unhealthy`, fix: "look at that OpenCode server's log, or restart it" };
    if (Number(health.version.split(".")[0]) !== OPENCODE_MAJOR) {
      return { status: "fail", name, detail: `${url} is OpenCode ${health.version}; coding-mcp speaks OpenCode ${OPENCODE_MAJOR}.x`, fix: `point OPENCODE_URL at an OpenCode ${OPENCODE_MAJOR}.x server, or unset it to use the bundled one` };
    }
    return { status: "ok", name, detail: `${url} is OpenCode ${health.version}, healthy, ${config.secrets.opencodePassword ? "password accepted" : "no password needed"}` };
  } catch (err) {
    if (err instanceof OpencodeHttpError && err.status === 401) {
      return {
        status: "fail",
        name,
        detail: `${url} refuses the ${config.secrets.opencodePassword ? "password in " + passwordVar : "request: it wants a password, and " + passwordVar + " is not set"}`,
        fix: `set ${passwordVar} to that server's OPENCODE_SERVER_PASSWORD`,
      };
    }
    return { status: "fail", name, detail: `${url} is not reachable: ${(err as Error).message}`, fix: "start that OpenCode server (opencode serve), correct OPENCODE_URL, or unset it to let coding-mcp start its own" };
  } finally {
    await client.close();
  }
}

const quietLog = { debug() {}, info() {}, warn() {}, error() {} };

/**
 * The sandbox of the agent's commands: a real confined command, with the config's policy (a scratch
 * sandbox directory, so nothing of coding-mcp's state is touched), that looks around from inside and
 * reports what holds: no network but loopback, a private /tmp, the home hidden, no outside process.
 */
export async function checkSandbox(config: ResolvedConfig, env: NodeJS.ProcessEnv): Promise<CheckResult> {
  const name = "sandbox";
  if (config.sandbox.mode === "off") {
    return {
      status: "warn",
      name,
      detail: "OFF (sandbox.mode: off): the agent's commands run unconfined, as this user, with this user's files, secrets and network",
      fix: "set sandbox.mode: on unless the machine or its container is the boundary",
    };
  }
  const agentEnv = agentEnvironment(config, env);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "coding-mcp-doctor-sandbox-"));
  // A file in the real /tmp the sandbox must not see (its /tmp is its own).
  const marker = fs.mkdtempSync("/tmp/coding-mcp-doctor-marker-");
  const confinement = confinementFor(config, agentEnv, quietLog, scratch);
  try {
    const state = await confinement.state();
    if (!state.confined) return { status: "fail", name, detail: `the agent's commands cannot be confined: ${state.problem}`, fix: state.fix ?? "see the README, Prerequisites" };
    const held = await lookAround(confinement, scratch, marker, agentEnv);
    const unconfined = unconfinedBackends(config, env, agentEnv, confinement);
    const urlNote = unconfined.map((why) => `\nbut ${why}`).join("");
    if (held.problems.length) {
      return { status: "fail", name, detail: `a confined command ${held.problems.join("; ")}`, fix: "report this: the sandbox does not hold what it should on this machine, or set sandbox.mode: off where the machine or its container is the boundary" };
    }
    return { status: urlNote ? "warn" : "ok", name, detail: `confined: a command ran in a sandbox with ${held.facts.join(", ")}${urlNote}` };
  } catch (err) {
    return { status: "fail", name, detail: `the sandbox probe failed: ${(err as Error).message.split("\n")[0]}`, fix: "see the README, Prerequisites" };
  } finally {
    await confinement.close(); // the network proxy, with sandbox.network.allow
    fs.rmSync(scratch, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
    fs.rmSync(marker, { recursive: true, force: true });
  }
}

/** The configured backends whose agents' commands coding-mcp does not confine, each with why and what its sessions answer. */
function unconfinedBackends(config: ResolvedConfig, env: NodeJS.ProcessEnv, agentEnv: NodeJS.ProcessEnv, confinement: Confinement): string[] {
  let backends: CodingBackend[];
  try {
    backends = configuredBackends({ config, log: quietLog, redactor: new Redactor([]), agentEnv, env, confinement });
  } catch {
    return []; // a broken backend entry: the config line says so
  }
  return backends
    .filter((backend) => !backend.confinesCommands)
    .map((backend) =>
      backend.name === "opencode" && config.opencode.url
        ? `the OpenCode at ${config.opencode.url} runs outside coding-mcp, which cannot confine its commands: sessions on opencode are not confined (leave opencode.url unset to have coding-mcp start a confined OpenCode)`
        : `the agent of backend ${backend.name} runs its commands itself, outside coding-mcp's sandbox: sessions on ${backend.name} are not confined (README, Confinement)`,
    );
}

/** One confined command that reports what it sees; the facts that hold and the problems found. */
async function lookAround(confinement: Confinement, scratch: string, marker: string, agentEnv: NodeJS.ProcessEnv): Promise<{ facts: string[]; problems: string[] }> {
  const key = "doctor";
  const workspace = path.join(scratch, "workspace");
  fs.mkdirSync(workspace);
  await confinement.install();
  await confinement.prepare(key, { workspace, gitWritable: [], gitReadOnly: [] });
  // The home is hidden when no file in it has content, except in the directories of the PATH's programs (shown read-only).
  const shown = homeDirsOnPath(agentEnv.HOME ?? os.homedir(), (agentEnv.PATH ?? "").split(path.delimiter));
  const prune = shown.length ? `\\( ${shown.map((dir) => `-path ${shellQuote(dir)}`).join(" -o ")} \\) -prune -o ` : "";
  const command = [
    `[ -e ${shellQuote(marker)} ] && echo tmp:shared || echo tmp:private`,
    "echo net:$(tail -n +3 /proc/net/dev | grep -cv '^ *lo:')",
    'echo procs:$(cat /proc/[0-9]*/comm 2>/dev/null | sort -u | tr "\\n" " ")',
    `echo home:$(find "$HOME" ${prune}-type f -size +0c -print 2>/dev/null | head -n 5 | tr "\\n" " ")`,
  ].join("; ");
  const { file, args } = confinement.shellCommand(key, command);
  const { stdout } = await execFileAsync(file, args, { cwd: workspace, env: { [PROFILE_VARIABLE]: key }, timeout: 15_000 });
  const said = (what: string) => new RegExp(`^${what}:(.*)$`, "m").exec(stdout)?.[1]?.trim() ?? "";
  const facts: string[] = [];
  const problems: string[] = [];
  if (said("net") === "0") facts.push("no network (loopback only)");
  else problems.push(`has network interfaces besides loopback (${said("net") || "unknown"})`);
  if (said("tmp") === "private") facts.push("a private /tmp");
  else problems.push("sees the machine's /tmp");
  const exposed = said("home").split(" ").filter(Boolean);
  if (exposed.length === 0) facts.push(`the home hidden (no file of it readable${shown.length ? ` but the PATH's programs in ${shown.join(", ")}` : ""})`);
  else problems.push(`reads the home's ${exposed.join(", ")}`);
  // This doctor is a node process outside: inside, only the sandbox's own processes show.
  const procs = said("procs").split(" ").filter(Boolean);
  if (procs.length && !procs.includes(path.basename(process.execPath))) facts.push(`no process outside it (it sees only ${procs.join(", ")})`);
  else problems.push(`sees processes outside it (${procs.slice(0, 8).join(", ") || "none listed"}${procs.length > 8 ? ", ..." : ""})`);
  return { facts, problems };
}

/** base_path: writable (created on first start when missing), with some free space. */
export function checkBasePath(basePath: string): CheckResult {
  const name = "base path";
  let existing = basePath;
  while (!fs.existsSync(existing) && path.dirname(existing) !== existing) existing = path.dirname(existing);
  try {
    if (!fs.statSync(existing).isDirectory()) {
      return { status: "fail", name, detail: `${basePath} cannot be created: ${existing} is a file`, fix: "set workspace.base_path to a directory you can write" };
    }
    // A probe file, not the permission bits: root, read-only mounts and ACLs all answer truthfully this way.
    const probe = path.join(existing, `.coding-mcp-doctor-${process.pid}`);
    fs.writeFileSync(probe, "");
    fs.rmSync(probe);
  } catch (err) {
    return { status: "fail", name, detail: `${existing} is not writable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, fix: "set workspace.base_path to a directory you can write, or fix its permissions" };
  }
  const free = freeBytes(existing);
  const where = existing === basePath ? basePath : `${basePath} (created on first start, under ${existing})`;
  if (free !== undefined && free < LOW_SPACE_BYTES) {
    return { status: "warn", name, detail: `${where} is writable, but only ${formatBytes(free)} are free`, fix: "free some space there, or move workspace.base_path" };
  }
  return { status: "ok", name, detail: `${where} is writable${free !== undefined ? `, ${formatBytes(free)} free` : ""}` };
}

function freeBytes(dir: string): number | undefined {
  try {
    const s = fs.statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return undefined;
  }
}

export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(1)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(0)} MiB`;
  return `${Math.round(n / 1024)} KiB`;
}

function checkAllowedRoots(roots: string[]): CheckResult[] {
  const name = "allowed roots";
  if (roots.length === 0) {
    return [{ status: "ok", name, detail: "none: coding_open works on managed workspaces and clones, and refuses a workspace_path (set workspace.allowed_roots to allow your repositories)" }];
  }
  return roots.map((root) => {
    try {
      if (fs.statSync(root).isDirectory()) return { status: "ok" as const, name, detail: `${root} exists` };
      return { status: "fail" as const, name, detail: `${root} is not a directory`, fix: "correct workspace.allowed_roots" };
    } catch {
      return { status: "fail" as const, name, detail: `${root} does not exist`, fix: "create it, or correct workspace.allowed_roots" };
    }
  });
}

/** Present or not, and where it goes; never its value. */
function checkGitToken(config: ResolvedConfig): CheckResult {
  const name = "git token";
  const from = config.git.token ? "git.token in the config file" : config.git.token_env;
  const hosts = config.git.token_hosts.includes("*") ? "any https host" : config.git.token_hosts.join(", ");
  if (!config.secrets.gitToken) {
    return { status: "warn", name, detail: `${from} is not set: only public repositories can be cloned over https, and push over https fails`, fix: `set ${config.git.token_env} to a token for ${hosts}` };
  }
  return { status: "ok", name, detail: `set in ${from} (not shown); sent only to ${hosts}, over https` };
}

function checkReadableFile(name: string, file: string, fix: string): CheckResult {
  try {
    fs.accessSync(file, fs.constants.R_OK);
    return { status: "ok", name, detail: `${file} is readable` };
  } catch (err) {
    return { status: "fail", name, detail: `${file} cannot be read (${(err as NodeJS.ErrnoException).code})`, fix };
  }
}

/** The fields of code's answer (its structuredContent) the round trip reads. */
interface CodeAnswer {
  success?: boolean;
  failure?: string;
  error?: string;
  summary?: string;
  files_changed?: { path: string }[];
}

/**
 * One real task, as an MCP client runs it: this coding-mcp started over stdio with the SDK's Client,
 * on a scratch base path (its OpenCode started as configured): open, code (write one file), check
 * the file, close; the scratch directory is removed afterwards, whatever happened.
 */
async function roundTrip(configPath: string | undefined, env: NodeJS.ProcessEnv): Promise<CheckResult> {
  const name = "round trip";
  const [{ Client }, { StdioClientTransport }] = await Promise.all([
    import("@modelcontextprotocol/sdk/client/index.js"),
    import("@modelcontextprotocol/sdk/client/stdio.js"),
  ]);
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "coding-mcp-doctor-"));
  const file = "doctor-check.txt";
  const stderr: string[] = [];
  const transport = new StdioClientTransport({
    command: process.execPath,
    // The CLI this doctor runs in (this module may sit in a chunk of the bundle, not next to it).
    args: [process.argv[1]!, ...(configPath ? ["--config", configPath] : [])],
    env: {
      ...(env as Record<string, string>),
      CODING_MCP_WORKSPACE_BASE_PATH: path.join(scratch, "workspaces"),
      CODING_MCP_WORKSPACE_CLEANUP_POLICY: "on_session_end",
    },
    stderr: "pipe",
  });
  transport.stderr?.on("data", (chunk: Buffer) => {
    stderr.push(...chunk.toString("utf8").split("\n").filter(Boolean));
    stderr.splice(0, Math.max(0, stderr.length - 50));
  });
  const client = new Client({ name: "coding-mcp-doctor", version: VERSION });
  const call = async (tool: string, args: Record<string, unknown>) => {
    const result = await client.callTool({ name: tool, arguments: args }, undefined, { timeout: 330_000 });
    if (result.isError) throw new Error(`${tool}: ${JSON.stringify(result.content).slice(0, 500)}`);
    return result.structuredContent as Record<string, unknown>;
  };
  try {
    await client.connect(transport);
    const opened = await call("coding_open", {});
    const done = (await call("code", {
      session_id: opened.session_id,
      task: `Create the file ${file} containing the single line: ok`,
      timeout_sec: 300,
    })) as CodeAnswer;
    const written = path.join(String(opened.workspace_path), file);
    const changed = done.files_changed?.some((f) => f.path === file) ?? false;
    if (done.success !== true || !changed || !fs.existsSync(written)) {
      return {
        status: "fail",
        name,
        detail: `the task ${done.success === true ? `did not write ${file}` : `failed (${done.failure ?? "no failure kind"}: ${done.error ?? done.summary ?? "no message"})`}`,
        fix: "check the model OpenCode is configured with (OPENCODE_CONFIG or OPENCODE_CONFIG_CONTENT) and its credentials",
      };
    }
    const closed = await call("coding_close", { session_id: opened.session_id, success: true });
    return { status: "ok", name, detail: `opened a scratch workspace, the agent wrote ${file}, closed it (removed: ${closed.cleaned_up === true ? "yes" : "no"})` };
  } catch (err) {
    const log = stderr.filter((l) => /ERROR|WARN/.test(l)).slice(-3).join(" | ");
    return { status: "fail", name, detail: `${(err as Error).message}${log ? ` (coding-mcp log: ${log})` : ""}`, fix: "fix what the lines above or the log name, then run coding-mcp doctor --task again" };
  } finally {
    await client.close().catch(() => undefined);
    fs.rmSync(scratch, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  }
}
