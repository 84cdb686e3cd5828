import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { UserError } from "../errors.js";
import type { Logger } from "../log.js";
import { bundledRipgrepDir, findBubblewrap, findProgram } from "../prerequisites.js";
import { runBound } from "../process.js";
import { bubblewrapArgs } from "./bubblewrap.js";
import { launcherScript, PROFILE_VARIABLE, profileScript } from "./launcher.js";
import { parseAllowList, type AllowEntry } from "./network-allow.js";
import { bridgeScript, NetworkProxy, PROXY_SOCKET_NAME, proxyEnvironment, SANDBOX_PROXY_PORT } from "./network-proxy.js";
import { homeDirsOnPath, policyFor, sandboxEnvironment, sandboxKey, scopeFor, type SandboxScope, type SandboxSettings } from "./policy.js";

export { homeDirsOnPath, PROFILE_VARIABLE, sandboxKey, scopeFor, type SandboxScope };

/**
 * Confinement: what every command an agent runs goes through. A small interface both backends use
 * (prepare a session's sandbox, get the shell that runs commands in it, release it), so that another
 * confiner (a container, a remote runner) can slot in behind it. Linux: bubblewrap; `sandbox.mode: off`
 * where the machine or its container is the boundary. See the README, "Confinement".
 */

export interface ConfinementState {
  /** What the config asks for. */
  mode: "on" | "off";
  /** Whether commands are confined now (mode on and the machine can). */
  confined: boolean;
  /** When mode is on but the machine cannot confine: why, and what to do. */
  problem?: string;
  fix?: string;
}

export interface ConfinementOptions {
  mode: "on" | "off";
  /** coding-mcp's state directory: the launcher, profiles and private temp dirs live under it. */
  stateDir: string;
  settings: SandboxSettings;
  /** The environment agents get (coding-mcp's, less its secrets); filtered again for commands. */
  agentEnv: NodeJS.ProcessEnv;
  /** Every secret value coding-mcp knows: dropped from a command's environment whatever its name. */
  secrets: string[];
  log: Logger;
  /** For tests: another bubblewrap (or none). */
  bwrapPath?: string | null;
  /** For tests: another socat (or none); used only with sandbox.network.allow. */
  socatPath?: string | null;
}

const PROBE_TIMEOUT_MS = 10_000;

export class Confinement {
  private readonly root: string;
  private readonly bwrap: string | undefined;
  private readonly env: Record<string, string>;
  /** sandbox.network.allow parsed; empty: no network, no proxy, no bridge. */
  private readonly networkAllow: AllowEntry[];
  private readonly socat: string | undefined;
  private proxy?: NetworkProxy;
  private probed?: Promise<ConfinementState>;

  constructor(private readonly options: ConfinementOptions) {
    this.root = path.join(options.stateDir, "sandbox");
    this.bwrap = options.bwrapPath === null ? undefined : (options.bwrapPath ?? findBubblewrap(options.agentEnv));
    const rg = bundledRipgrepDir();
    this.networkAllow = options.mode === "on" ? parseAllowList(options.settings.networkAllow ?? []) : [];
    this.socat = this.networkAllow.length === 0 || options.socatPath === null ? undefined : (options.socatPath ?? findProgram("socat", options.agentEnv));
    this.env = {
      ...sandboxEnvironment(options.agentEnv, options.secrets, rg ? [rg] : []),
      ...(this.networkAllow.length ? proxyEnvironment() : {}),
    };
  }

  get mode(): "on" | "off" {
    return this.options.mode;
  }

  /** The sh launcher agents use as their shell; written once per coding-mcp start. */
  get launcherPath(): string {
    return path.join(this.root, "shell");
  }

  /** Whether commands can be confined here: a real confined probe, once per process. */
  state(): Promise<ConfinementState> {
    this.probed ??= this.probe();
    return this.probed;
  }

  /** Refuse a task that cannot be confined, saying what to install or set. */
  async assertReady(): Promise<void> {
    const state = await this.state();
    if (state.mode === "on" && !state.confined) {
      throw new UserError(`the agent's commands cannot be confined on this machine: ${state.problem}`, state.fix, "sandbox_unavailable");
    }
  }

  /** Make the session's sandbox (its profile and private temp dir) before any of its commands runs. */
  async prepare(key: string, scope: SandboxScope): Promise<void> {
    if (this.options.mode === "off") return;
    checkKey(key);
    const tmpDir = path.join(this.root, "tmp", key);
    await fs.mkdir(tmpDir, { recursive: true, mode: 0o700 });
    const policy = policyFor(scope, this.options.settings, tmpDir, (this.env.PATH ?? "").split(path.delimiter));
    if (this.networkAllow.length) policy.proxySocketDir = this.proxySocketDir;
    const bridge = this.networkAllow.length ? bridgeScript(this.socat ?? "socat") : undefined;
    const profile = profileScript(this.bwrap ?? "bwrap", bubblewrapArgs(policy), this.env, "/bin/bash", bridge);
    await writeAtomically(path.join(this.root, "profiles", `${key}.sh`), profile, 0o600);
  }

  /** The session is gone: its profile (so no command runs for it any more) and its temp dir. */
  async release(key: string): Promise<void> {
    if (this.options.mode === "off") return;
    checkKey(key);
    await fs.rm(path.join(this.root, "profiles", `${key}.sh`), { force: true });
    await fs.rm(path.join(this.root, "tmp", key), { recursive: true, force: true });
  }

  /**
   * Another key for a session's sandbox (its profile, prepared now or later under `key`), for agents
   * that must be given the key before they name the session (Claude Code takes its env at session/new).
   * Once the session is released the alias leads nowhere, and its commands are not run.
   */
  async alias(aliasKey: string, key: string): Promise<void> {
    if (this.options.mode === "off") return;
    checkKey(aliasKey);
    checkKey(key);
    const link = path.join(this.root, "profiles", `${aliasKey}.sh`);
    await fs.mkdir(path.dirname(link), { recursive: true, mode: 0o700 });
    await fs.rm(link, { force: true });
    await fs.symlink(`${key}.sh`, link);
  }

  async unalias(aliasKey: string): Promise<void> {
    if (this.options.mode === "off") return;
    checkKey(aliasKey);
    await fs.rm(path.join(this.root, "profiles", `${aliasKey}.sh`), { force: true });
  }

  /**
   * A command run confined in a prepared session, for callers that start commands themselves:
   * argv for spawn, with the environment that selects the session's profile.
   */
  shellCommand(key: string, command: string): { file: string; args: string[]; env: Record<string, string> } {
    checkKey(key);
    if (this.options.mode === "off") return { file: "/bin/bash", args: ["-c", command], env: this.env };
    return { file: this.launcherPath, args: ["-c", command], env: { [PROFILE_VARIABLE]: key } };
  }

  /** Write the launcher (at start); a stale one from another version is replaced. With sandbox.network.allow, start its proxy. */
  async install(): Promise<void> {
    if (this.options.mode === "off") return;
    await fs.mkdir(path.join(this.root, "profiles"), { recursive: true, mode: 0o700 });
    await writeAtomically(this.launcherPath, launcherScript(path.join(this.root, "profiles")), 0o700);
    if (this.networkAllow.length && !this.proxy) {
      const proxy = new NetworkProxy({ allow: this.networkAllow, log: this.options.log });
      await proxy.listen(path.join(this.proxySocketDir, PROXY_SOCKET_NAME));
      this.proxy = proxy;
      this.options.log.info(`sandbox network: the agent's commands reach only ${this.networkAllow.map((e) => e.text).join(", ")} (through coding-mcp's proxy)`);
    }
  }

  /** Stop the network proxy (open tunnels are cut). */
  async close(): Promise<void> {
    const proxy = this.proxy;
    this.proxy = undefined;
    await proxy?.close();
  }

  /** A directory holding only the proxy's socket: the one part of the state dir a sandbox sees. */
  private get proxySocketDir(): string {
    return path.join(this.root, "network");
  }

  private async probe(): Promise<ConfinementState> {
    if (this.options.mode === "off") return { mode: "off", confined: false };
    const offHint = "or set sandbox.mode: off (CODING_MCP_SANDBOX_MODE=off) where the machine or its container is the boundary";
    if (process.platform !== "linux") {
      return {
        mode: "on",
        confined: false,
        problem: `confinement is implemented for Linux (bubblewrap) only; this is ${process.platform}`,
        fix: `Run coding-mcp on Linux, ${offHint}`,
      };
    }
    if (!this.bwrap) return { mode: "on", confined: false, problem: "bubblewrap (bwrap) is not installed", fix: `Install bubblewrap (Debian/Ubuntu: apt-get install bubblewrap; Fedora: dnf install bubblewrap; Arch: pacman -S bubblewrap), ${offHint}` };
    if (this.networkAllow.length && !this.socat) {
      return {
        mode: "on",
        confined: false,
        problem: "socat is not installed (sandbox.network.allow bridges the sandbox to coding-mcp's proxy with it)",
        fix: "Install socat (Debian/Ubuntu: apt-get install socat; Fedora: dnf install socat; Arch: pacman -S socat), or empty sandbox.network.allow (no network for the agent's commands)",
      };
    }
    // A real confined command in a scratch workspace, with the same arguments a session gets.
    const key = `probe-${randomBytes(6).toString("hex")}`;
    const workspace = path.join(this.root, "tmp", `${key}-ws`);
    try {
      await fs.mkdir(workspace, { recursive: true, mode: 0o700 });
      await this.install();
      await this.prepare(key, { workspace, gitWritable: [], gitReadOnly: [] });
      // With an allowlist, the bridge to the proxy must be up inside too (a bash redirection, no client needed).
      const bridged = this.networkAllow.length ? ` && exec 3<>/dev/tcp/127.0.0.1/${SANDBOX_PROXY_PORT} && echo bridged` : "";
      const { file, args, env } = this.shellCommand(key, `echo confined > probe.txt && cat probe.txt${bridged}`);
      const result = await runBound(file, args, { cwd: workspace, env, timeoutMs: PROBE_TIMEOUT_MS });
      if (result.exitCode === 0 && result.stdout.trim() === (bridged ? "confined\nbridged" : "confined")) return { mode: "on", confined: true };
      if (bridged && result.stdout.trim() === "confined") {
        return {
          mode: "on",
          confined: false,
          problem: `the sandbox's network bridge (socat to coding-mcp's proxy) did not come up (${result.stderr.trim().split("\n").at(-1) ?? ""})`,
          fix: "Check that socat runs (socat -V), or empty sandbox.network.allow (no network for the agent's commands)",
        };
      }
      const said = (result.stderr || result.startError || `exit ${result.exitCode ?? "by signal"}`).trim().split("\n").slice(-2).join(" ");
      return {
        mode: "on",
        confined: false,
        problem: `bubblewrap could not start a sandbox (${said})`,
        fix: `Unprivileged user namespaces may be off (sysctl kernel.unprivileged_userns_clone=1, or AppArmor's kernel.apparmor_restrict_unprivileged_userns=0), or this runs in a container that forbids them (Docker: --security-opt seccomp=unconfined, or run bubblewrap-capable); ${offHint}`,
      };
    } catch (err) {
      return { mode: "on", confined: false, problem: `the sandbox probe failed: ${(err as Error).message}`, fix: `Check that ${this.root} is writable, ${offHint}` };
    } finally {
      await this.release(key).catch(() => undefined);
      await fs.rm(workspace, { recursive: true, force: true }).catch(() => undefined);
    }
  }
}

/** Keys name files: letters, digits, - and _ only. */
function checkKey(key: string): void {
  if (!/^[A-Za-z0-9_-]+$/.test(key)) throw new Error(`invalid sandbox key ${JSON.stringify(key)}`);
}

async function writeAtomically(file: string, content: string, mode: number): Promise<void> {
  await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}`;
  await fs.writeFile(tmp, content, { mode });
  await fs.rename(tmp, file);
}
