import fs from "node:fs/promises";
import os from "node:os";
import { acpEntrySecrets, createAcpBackend } from "./acp/index.js";
import { Confinement, PROFILE_VARIABLE } from "./confinement/index.js";
import type { CodingBackend } from "./backend.js";
import { Backends } from "./backends.js";
import { secretValues, type ResolvedConfig } from "./config.js";
import { createLogger, type Logger } from "./log.js";
import { OpencodeBackend } from "./opencode/backend.js";
import { pathWithBundledRipgrep } from "./prerequisites.js";
import { confinedOpencodeEnv } from "./opencode/confined-shell.js";
import { Approvals } from "./approvals.js";
import { PermissionPolicy } from "./permissions.js";
import { openRecords, type Records } from "./records.js";
import { Redactor } from "./redact.js";
import { SessionManager } from "./sessions.js";
import { JsonStore } from "./store.js";
import { startTelemetry } from "./telemetry.js";
import type { ToolContext } from "./tools/define.js";
import { Git } from "./workspace/git.js";
import { WorkspaceManager } from "./workspace/manager.js";

/**
 * The composition root: config in, one shared context out (redactor, log, records, workspaces,
 * backends, sessions) that every MCP connection's server uses; tracing starts here when asked for.
 */
export interface App extends ToolContext {
  config: ResolvedConfig;
  confinement: Confinement;
  backends: Backends;
  records: Records;
  stop(): Promise<void>;
}

/** What a backend is built with: the shared log and redactor, and an environment without coding-mcp's secrets. */
export interface BackendDeps {
  config: ResolvedConfig;
  log: Logger;
  redactor: Redactor;
  /** coding-mcp's environment less every secret variable: what an agent process may inherit. */
  agentEnv: NodeJS.ProcessEnv;
  /** coding-mcp's whole environment, where `${VAR}` in a backend's env is read from. */
  env: NodeJS.ProcessEnv;
  /** What every command an agent runs goes through. */
  confinement: Confinement;
}

export interface AppOptions {
  log?: Logger;
  env?: NodeJS.ProcessEnv;
  /** Builds the backends instead of the configured ones (tests use a scripted backend). */
  backends?: (deps: BackendDeps) => CodingBackend[];
  /** With `backends`: the default one's name (else default_backend). */
  defaultBackend?: string;
  /** The wait before a task's second attempt (1 s); fast tests shorten it. */
  retryDelayMs?: number;
}

/**
 * Names of the variables that hold a secret: those the config names, and any other variable whose
 * value is one of the configured secrets (e.g. a CODING_MCP_GIT_TOKEN override). Neither an agent
 * nor git (nor the hooks git runs) gets them.
 */
export function secretVariables(config: ResolvedConfig, env: NodeJS.ProcessEnv): string[] {
  const names = new Set([config.git.token_env, config.opencode.password_env, "CODING_MCP_TOKEN"]);
  for (const client of Object.values(config.http.clients)) for (const name of [client.token_env, client.git_token_env]) if (name) names.add(name);
  const secrets = new Set(secretValues(config));
  for (const [name, value] of Object.entries(env)) if (value && secrets.has(value)) names.add(name);
  return [...names];
}

/**
 * Ours, less every secret variable: the environment of an agent coding-mcp starts. The ripgrep of
 * the @vscode/ripgrep dependency goes on its PATH (OpenCode's grep and glob tools need `rg`).
 */
export function agentEnvironment(config: ResolvedConfig, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const hidden = new Set(secretVariables(config, env));
  const agentEnv = Object.fromEntries(Object.entries(env).filter(([name]) => !hidden.has(name)));
  const withRipgrep = pathWithBundledRipgrep(agentEnv.PATH);
  if (withRipgrep) agentEnv.PATH = withRipgrep;
  return agentEnv;
}

/** The backends of the config: the built-in OpenCode, and one per `backends` entry. */
export function configuredBackends(deps: BackendDeps): CodingBackend[] {
  const { config, log, redactor } = deps;
  const opencode = new OpencodeBackend({
    ...(config.opencode.url ? { url: config.opencode.url } : {}),
    username: config.opencode.username,
    ...(config.secrets.opencodePassword ? { password: config.secrets.opencodePassword } : {}),
    pathMap: config.opencode.path_map,
    permissions: config.permissions,
    ...(config.opencode.model ? { model: config.opencode.model } : {}),
    ...(config.opencode.agent ? { agent: config.opencode.agent } : {}),
    log,
    confined: deps.confinement.mode === "on",
    protectedPaths: [config.stateDir],
    ...(config.opencode.url
      ? {}
      : {
          managed: {
            env:
              deps.confinement.mode === "on"
                ? confinedOpencodeEnv(deps.agentEnv, deps.confinement.launcherPath, PROFILE_VARIABLE)
                : deps.agentEnv,
            cwd: config.workspace.base_path,
            startupTimeoutMs: config.opencode.startup_timeout_sec * 1000,
            registerSecret: (value: string) => redactor.addSecret(value),
            // Where its pid is recorded, so a coding-mcp starting after one that died stops what it left.
            stateDir: config.stateDir,
          },
        }),
  });
  const others = Object.entries(config.backends).map(([name, entry]) =>
    createAcpBackend(name, entry, {
      log,
      env: deps.agentEnv,
      ownEnv: deps.env,
      cwd: config.workspace.base_path,
      secrets: secretValues(config),
      registerSecret: (value: string) => redactor.addSecret(value),
      sandbox: {
        required: deps.confinement.mode === "on",
        opencodeEnv: (env) => confinedOpencodeEnv(env, deps.confinement.launcherPath, PROFILE_VARIABLE),
        confinement: deps.confinement,
        profileVariable: PROFILE_VARIABLE,
      },
    }),
  );
  return [opencode, ...others];
}

/**
 * The confinement the config asks for, hiding coding-mcp's own places. Its launcher and profiles live
 * under `sandboxStateDir` (default: the config's state directory; doctor's probe uses a scratch one).
 */
export function confinementFor(config: ResolvedConfig, agentEnv: NodeJS.ProcessEnv, log: Logger, sandboxStateDir = config.stateDir): Confinement {
  return new Confinement({
    mode: config.sandbox.mode,
    stateDir: sandboxStateDir,
    settings: {
      denyRead: config.sandbox.deny_read,
      allowWrite: config.sandbox.allow_write,
      ownPaths: [config.stateDir, config.workspace.base_path, ...(config.configFile ? [config.configFile] : [])],
      home: agentEnv.HOME ?? os.homedir(),
      networkAllow: config.sandbox.network.allow,
    },
    agentEnv,
    // ACP entries' env values (an agent's API key) too: their ${VAR} sources are in agentEnv (a coding-mcp secret there is refused).
    secrets: [...secretValues(config), ...acpEntrySecrets(config.backends, agentEnv)],
    log,
  });
}

export async function createApp(config: ResolvedConfig, options: AppOptions = {}): Promise<App> {
  const env = options.env ?? process.env;
  const redactor = new Redactor(secretValues(config));
  const log = options.log ?? createLogger(redactor, config.log_level);
  const telemetry = await startTelemetry({ env, log, redactor });
  await fs.mkdir(config.workspace.base_path, { recursive: true });
  const store = await JsonStore.open(config.stateDir, log);
  const records = await openRecords(store);
  // git and the hooks it runs never see the token variable; clone and push get the token through askpass only.
  const git = new Git({ redactor, log: (m: string) => log.debug(m), hideEnv: secretVariables(config, env) });
  const workspaces = new WorkspaceManager(config, git, log);
  const agentEnv = agentEnvironment(config, env);
  const confinement = confinementFor(config, agentEnv, log);
  await confinement.install();
  logConfinement(config, log);
  const deps: BackendDeps = { config, log, redactor, agentEnv, env, confinement };
  const backends = new Backends((options.backends ?? configuredBackends)(deps), options.defaultBackend ?? config.default_backend);
  for (const note of config.notes) log.warn(note);
  const approvals = new Approvals(new PermissionPolicy(config.permissions), config.limits.approval_timeout_sec * 1000, redactor, log);
  const sessions = new SessionManager(config, records, workspaces, backends, approvals, git, log, {
    ...(options.retryDelayMs ? { retryDelayMs: options.retryDelayMs } : {}),
    confinement,
  });
  // Tasks that were running when coding-mcp last stopped are followed to their end again.
  sessions.resumeTasks();
  return {
    config,
    confinement,
    backends,
    records,
    sessions,
    redactor,
    log,
    async stop() {
      sessions.shutdown();
      await records.flush();
      // In parallel: each is bounded, and the client may not wait long for our exit.
      await Promise.all([...backends.all().map((b) => b.stop()), telemetry.shutdown(), confinement.close(), workspaces.stop()]);
    },
  };
}

/** Said once at start, loudly when nothing confines the agent's commands. */
function logConfinement(config: ResolvedConfig, log: Logger): void {
  if (config.sandbox.mode === "off") {
    log.warn(
      "SANDBOX OFF (sandbox.mode: off): the agent's commands run unconfined, as this user, with this user's files and network. Use this only where the machine or its container is the boundary.",
    );
  } else if (config.opencode.url) {
    log.warn(
      `the OpenCode at ${config.opencode.url} runs outside coding-mcp, which cannot confine its commands: sessions on the opencode backend are not confined (their answers say confined: false). Leave opencode.url unset to have coding-mcp start a confined OpenCode.`,
    );
  }
}
