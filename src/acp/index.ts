import type { Logger } from "../log.js";
import { AcpBackend } from "./backend.js";
import { startsOpencodeAcp, type AcpSandboxOptions } from "./confinement.js";

export { AcpBackend } from "./backend.js";
export { POLICY_KIND_OF, permissionAskOf } from "./mapping.js";

/** A `backends` entry of type acp, as the config gives it. */
export interface AcpBackendEntry {
  type: "acp";
  command: string[];
  env?: Record<string, string>;
  mode?: string;
  /** Seconds the agent may take to start and answer initialize and session/new (the config's default: 60). */
  startup_timeout_sec: number;
  /** off: the agent's commands run unconfined, where the machine or its container is the boundary (default on). */
  sandbox?: "on" | "off";
}

/** `${VAR}` in an env value is read from coding-mcp's environment; an unset variable is an error. */
export function expandVariables(value: string, env: NodeJS.ProcessEnv, where: string): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
    const found = env[name];
    if (found === undefined) throw new Error(`${where} uses \${${name}}, but ${name} is not set in coding-mcp's environment; set it, or write the value itself`);
    return found;
  });
}

/**
 * The values ACP entries hand their agents (`env`, with `${VAR}` read): the agents' own secrets, kept
 * out of every confined command's environment whatever variable holds them in coding-mcp's. Values
 * too short to be a secret (a "1" flag) and unset variables (refused when the backend is made) are left out.
 */
export function acpEntrySecrets(entries: Record<string, AcpBackendEntry>, env: NodeJS.ProcessEnv): string[] {
  const values: string[] = [];
  for (const [name, entry] of Object.entries(entries)) {
    for (const [key, raw] of Object.entries(entry.env ?? {})) {
      try {
        const value = expandVariables(raw, env, `backends.${name}.env.${key}`);
        if (value.length >= 6) values.push(value);
      } catch {
        // reported by createAcpBackend
      }
    }
  }
  return values;
}

/**
 * The backend of one `backends` entry of type acp. `env` is coding-mcp's environment already
 * without the secrets; the entry's own env is added on top, and its values (the agent's API key,
 * say) are registered with the redactor. An entry that would hand the agent one of coding-mcp's own
 * secrets is refused.
 */
export function createAcpBackend(
  name: string,
  entry: AcpBackendEntry,
  context: {
    log: Logger;
    env: NodeJS.ProcessEnv;
    ownEnv?: NodeJS.ProcessEnv;
    cwd: string;
    secrets?: string[];
    registerSecret?: (value: string) => void;
    /** Absent: nothing is confined (tests of the protocol alone). */
    sandbox?: AcpSandboxOptions;
  },
): AcpBackend {
  if (!entry.command.length || !entry.command[0]) throw new Error(`backends.${name}.command is empty: give the agent's argv, e.g. [opencode, acp]`);
  const added: Record<string, string> = {};
  for (const [key, raw] of Object.entries(entry.env ?? {})) {
    const value = expandVariables(raw, context.ownEnv ?? process.env, `backends.${name}.env.${key}`);
    if (value && context.secrets?.includes(value)) {
      throw new Error(`backends.${name}.env.${key} would hand the agent one of coding-mcp's own secrets (the git token, the OpenCode password or the HTTP token); give the agent its own key`);
    }
    // Every value is redacted like a secret (the redactor itself skips very short ones, such as a "1" flag).
    context.registerSecret?.(value);
    added[key] = value;
  }
  const required = Boolean(context.sandbox?.required) && entry.sandbox !== "off";
  // OpenCode's shell is pointed at the confined shell before it starts; other agents are checked once they say what they are.
  const shellConfigured = required && startsOpencodeAcp(entry.command);
  const env = { ...context.env, ...added };
  if (entry.sandbox === "off" && context.sandbox?.required) {
    context.log.warn(`SANDBOX OFF for backend "${name}" (backends.${name}.sandbox: off): its agent's commands run unconfined, as this user, with this user's files and network.`);
  }
  return new AcpBackend({
    name,
    command: entry.command,
    env: shellConfigured && context.sandbox ? context.sandbox.opencodeEnv(env) : env,
    sandbox: {
      required,
      shellConfigured,
      ...(context.sandbox ? { keys: { confinement: context.sandbox.confinement, profileVariable: context.sandbox.profileVariable } } : {}),
    },
    cwd: context.cwd,
    log: context.log,
    ...(entry.mode ? { mode: entry.mode } : {}),
    startupTimeoutMs: entry.startup_timeout_sec * 1000,
  });
}
