// @ts-check
// Where the tests find the ACP agents: OpenCode from coding-mcp's own opencode-ai dependency, the
// others in the cache prefix scripts/install-agents.sh installs them into (outside the repository).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

export function agentsCache() {
  return process.env.ACP_AGENTS_CACHE || path.join(os.homedir(), ".cache", "coding-mcp-agents");
}

/** The package that brings each installable agent, and the script inside it that `node` starts. */
const INSTALLED = {
  claude: { pkg: "@agentclientprotocol/claude-agent-acp", script: "dist/index.js", args: [] },
  gemini: { pkg: "@google/gemini-cli", script: "bundle/gemini.js", args: ["--acp"] },
};

/**
 * The argv that starts an agent's ACP server, or undefined when it is not installed.
 * @param {string} agent opencode | claude | gemini | codex
 * @returns {string[]}
 */
export function agentCommand(agent) {
  if (agent === "opencode") {
    const bin = path.join(ROOT, "node_modules", ".bin", "opencode");
    return [bin, "acp"];
  }
  if (agent === "codex") return [path.join(agentsCache(), "node_modules", ".bin", "codex-acp")];
  const entry = INSTALLED[/** @type {keyof typeof INSTALLED} */ (agent)];
  if (!entry) throw new Error(`unknown agent ${agent}`);
  return [process.execPath, path.join(agentsCache(), "node_modules", entry.pkg, entry.script), ...entry.args];
}

/** Whether scripts/install-agents.sh installed the agent (OpenCode always is). @param {string} agent */
export function agentInstalled(agent) {
  const command = agentCommand(agent);
  return fs.existsSync(command[0] === process.execPath ? /** @type {string} */ (command[1]) : /** @type {string} */ (command[0]));
}

/**
 * The name of an agent's test suite: when the agent is not installed (the suite is skipped), it says
 * how to install it. @param {string} agent @param {string} title
 */
export function suiteName(agent, title) {
  return agentInstalled(agent) ? title : `${title}: not installed, run \`bash scripts/install-agents.sh ${agent}\``;
}
