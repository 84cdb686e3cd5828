import fs from "node:fs";
import path from "node:path";
import type { Confinement } from "../confinement/index.js";
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
 * - Claude Code (claude-agent-acp): its Bash tool runs `$CLAUDE_CODE_SHELL -c "<command>"`; each
 *   session's env (session/new `_meta.claudeCode.options.env`) points that at coding-mcp's confined
 *   shell and names a profile key, an alias of the session's sandbox (the session id is the agent's
 *   answer to session/new, after the env is given). Project and local settings are not read: the
 *   agent writes the workspace's .claude/settings*.json, whose `env` could set another shell.
 * - any other agent: not confined by coding-mcp (Codex's own workspace-write sandbox cannot start a
 *   command in codex-acp 0.16; Gemini CLI's tool sandbox leaves loopback and its API key reachable);
 *   under `sandbox.mode: on` its sessions are refused unless its backend entry says `sandbox: off`.
 */

export type AcpConfinementRoute = "opencode-shell" | "claude-shell" | "none";

/** How claude-agent-acp introduces itself at initialize. */
export const CLAUDE_AGENT_NAME = "@agentclientprotocol/claude-agent-acp";

export interface AcpSandboxOptions {
  /** sandbox.mode is on and the backend entry did not opt out: commands must be confined. */
  required: boolean;
  /** The agent's environment with OpenCode's shell pointed at coding-mcp's confined shell. */
  opencodeEnv: (env: NodeJS.ProcessEnv) => NodeJS.ProcessEnv;
  /** The confined shell and the session keys, for agents configured per session (Claude Code). */
  confinement: Pick<Confinement, "alias" | "unalias" | "launcherPath">;
  /** The variable the confined shell reads the session's key from. */
  profileVariable: string;
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
export function confinementRoute(agentName: string | undefined, opencodeShellConfigured: boolean): AcpConfinementRoute {
  if (agentName === "OpenCode") return opencodeShellConfigured ? "opencode-shell" : "none";
  if (agentName === CLAUDE_AGENT_NAME) return "claude-shell";
  return "none";
}

/**
 * Claude Code's shell, next to the confined shell: its path must name bash (Claude Code takes no
 * other), it answers Claude Code's `--version` probe (a shell that fails it is passed over for
 * /bin/bash, unconfined), and hands everything else to the confined shell, which runs only `-c COMMAND`
 * (Claude Code's `-c -l COMMAND` becomes that).
 */
export function writeClaudeShell(launcherPath: string): string {
  const file = path.join(path.dirname(launcherPath), "claude", "bash");
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  const quoted = `'${launcherPath.replace(/'/g, `'\\''`)}'`;
  fs.writeFileSync(
    file,
    `#!/bin/sh
# coding-mcp: Claude Code's shell (CLAUDE_CODE_SHELL); its commands go to the confined shell.
if [ "$#" -eq 1 ] && [ "$1" = "--version" ]; then exec /bin/bash --version; fi
# Without a shell snapshot it asks for a login shell (-c -l COMMAND): the sandbox has no login files to read anyway.
if [ "$#" -eq 3 ]; then
  case "$1 $2" in '-c -l' | '-l -c') exec ${quoted} -c "$3" ;; esac
fi
exec ${quoted} "$@"
`,
    { mode: 0o700 },
  );
  return file;
}

/** session/new (and session/load) `_meta` that confines a Claude Code session's commands under `profileKey`. */
export function claudeSessionMeta(shell: string, profileVariable: string, profileKey: string): Record<string, unknown> {
  return { claudeCode: { options: { env: { CLAUDE_CODE_SHELL: shell, [profileVariable]: profileKey }, settingSources: ["user"] } } };
}

/** A session on an agent whose commands coding-mcp cannot confine, while confinement is required. */
export function unconfinableError(backend: string, agent: string): UserError {
  return new UserError(
    `backend "${backend}" (${agent}) runs the agent's commands itself, where coding-mcp cannot confine them, and sandbox.mode is on, so it runs no task`,
    `Use a backend whose commands coding-mcp confines (the built-in opencode, or an ACP backend running \`opencode acp\` or claude-agent-acp), or set backends.${backend}.sandbox: off to run this agent unconfined, only where the machine or its container is the boundary (README, "Confinement").`,
    "sandbox_unavailable",
  );
}
