import fs from "node:fs/promises";
import type { CodingBackend } from "./backend.js";
import type { ResolvedConfig } from "./config.js";
import { createLogger, type Logger } from "./log.js";
import { OpencodeBackend } from "./opencode/backend.js";
import { Redactor } from "./redact.js";
import { Registry } from "./registry.js";
import { SessionManager } from "./sessions.js";
import { startTelemetry } from "./telemetry.js";
import type { ToolContext } from "./tools/define.js";
import { Git } from "./workspace/git.js";
import { WorkspaceManager } from "./workspace/manager.js";

/**
 * The composition root: config in, one shared context out (redactor, log, registry, workspaces,
 * backend, sessions) that every MCP connection's server uses; tracing starts here when asked for.
 */
export interface App extends ToolContext {
  config: ResolvedConfig;
  backend: CodingBackend;
  registry: Registry;
  stop(): Promise<void>;
}

/**
 * Names of the variables that hold a secret: those the config names, and any other variable whose
 * value is one of the configured secrets (e.g. a CODING_MCP_GIT_TOKEN override). Neither OpenCode
 * nor git (nor the hooks git runs) gets them.
 */
export function secretVariables(config: ResolvedConfig, env: NodeJS.ProcessEnv): string[] {
  const names = new Set([config.git.token_env, config.opencode.password_env, "CODING_MCP_TOKEN"]);
  const secretValues = new Set(Object.values(config.secrets).filter((v): v is string => Boolean(v)));
  for (const [name, value] of Object.entries(env)) if (value && secretValues.has(value)) names.add(name);
  return [...names];
}

/** The environment of a managed OpenCode: ours, less every secret variable. */
export function opencodeEnvironment(config: ResolvedConfig, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const hidden = new Set(secretVariables(config, env));
  return Object.fromEntries(Object.entries(env).filter(([name]) => !hidden.has(name)));
}

export async function createApp(config: ResolvedConfig, options: { log?: Logger; env?: NodeJS.ProcessEnv } = {}): Promise<App> {
  const env = options.env ?? process.env;
  const redactor = new Redactor(Object.values(config.secrets));
  const log = options.log ?? createLogger(redactor, config.log_level);
  const telemetry = await startTelemetry({ env, log, redactor });
  await fs.mkdir(config.workspace.base_path, { recursive: true });
  const registry = await Registry.open(config.stateDir);
  // git and the hooks it runs never see the token variable; clone and push get the token through askpass only.
  const git = new Git({ redactor, log: (m: string) => log.debug(m), hideEnv: secretVariables(config, env) });
  const workspaces = new WorkspaceManager(config, git, log);

  const managed = !config.opencode.url;
  const backend = new OpencodeBackend({
    ...(config.opencode.url ? { url: config.opencode.url } : {}),
    username: config.opencode.username,
    ...(config.secrets.opencodePassword ? { password: config.secrets.opencodePassword } : {}),
    pathMap: config.opencode.path_map,
    permissions: config.opencode.permissions,
    log,
    ...(managed
      ? { managed: { env: opencodeEnvironment(config, env), cwd: config.workspace.base_path, startupTimeoutMs: config.opencode.startup_timeout_sec * 1000,
            registerSecret: (value: string) => redactor.addSecret(value),
          },
        }
      : {}),
  });
  const sessions = new SessionManager(config, registry, workspaces, backend, git, log);
  // Tasks that were running when coding-mcp last stopped are followed to their end again.
  sessions.resumeTasks();
  return {
    config,
    backend,
    registry,
    sessions,
    redactor,
    log,
    async stop() {
      sessions.shutdown();
      await registry.flush();
      // In parallel: both are bounded, and the client may not wait long for our exit.
      await Promise.all([backend.stop(), telemetry.shutdown()]);
    },
  };
}
