import path from "node:path";
import { UserError } from "../errors.js";

/**
 * How the commands of an ACP agent are confined (README, "Confinement"). ACP's client `terminal`
 * capability would let coding-mcp run them, but none of the agents it drives uses it when offered
 * (their real builds: claude-agent-acp 0.101 only renders terminals from its own `_meta`, codex-acp
 * 0.16 and Gemini CLI 0.61 never send terminal/create, `opencode acp` runs its bash tool itself).
 * So each agent is confined through its own hook, where it has one coding-mcp can trust:
 * - `opencode acp`: its config's `shell` is coding-mcp's confined shell, and a plugin names each
 *   command's session (as for the managed OpenCode), so every bash command runs in the sandbox of
 *   its session, keyed by the ACP session id (OpenCode's own session id).
 * - any other agent: not confined by coding-mcp; under `sandbox.mode: on` its sessions are refused
 *   unless its backend entry says `sandbox: off`.
 */

export type AcpConfinementRoute = "opencode-shell" | "none";

export interface AcpSandboxOptions {
  /** sandbox.mode is on and the backend entry did not opt out: commands must be confined. */
  required: boolean;
  /** The agent's environment with OpenCode's shell pointed at coding-mcp's confined shell. */
  opencodeEnv: (env: NodeJS.ProcessEnv) => NodeJS.ProcessEnv;
}

/** Whether an argv starts OpenCode's ACP server (`opencode acp`, `npx opencode-ai acp`): its env gets the confined shell before it starts. */
export function startsOpencodeAcp(command: string[]): boolean {
  if (!command.includes("acp")) return false;
  return command.some((word) => {
    const base = path.basename(word);
    return base === "opencode" || base === "opencode.exe" || /^opencode-ai(@.*)?$/.test(base);
  });
}

/** The route of the agent as it introduced itself (initialize's agentInfo), given how it was started. */
export function confinementRoute(agentName: string | undefined, shellConfigured: boolean): AcpConfinementRoute {
  return shellConfigured && agentName === "OpenCode" ? "opencode-shell" : "none";
}

/** A session on an agent whose commands coding-mcp cannot confine, while confinement is required. */
export function unconfinableError(backend: string, agent: string): UserError {
  return new UserError(
    `backend "${backend}" (${agent}) runs the agent's commands itself, where coding-mcp cannot confine them, and sandbox.mode is on, so it runs no task`,
    `Use a backend whose commands coding-mcp confines (the built-in opencode, or an ACP backend running \`opencode acp\`), or set backends.${backend}.sandbox: off to run this agent unconfined, only where the machine or its container is the boundary (README, "Confinement").`,
    "sandbox_unavailable",
  );
}
