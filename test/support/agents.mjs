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

/**
 * Whether scripts/install-agents.sh installed the agent (OpenCode always is). Where the agents are
 * meant to be there (CI, or ACP_AGENTS_CACHE set, as .ci/run does) a missing entry point throws, so
 * that the agent's suite fails instead of being skipped: a package that moved its entry point must
 * not turn a run green with the suite gone. @param {string} agent
 */
export function agentInstalled(agent) {
  const command = agentCommand(agent);
  const entry = /** @type {string} */ (command[0] === process.execPath ? command[1] : command[0]);
  if (fs.existsSync(entry)) return true;
  const required = process.env.CI ? "CI is set" : process.env.ACP_AGENTS_CACHE ? `ACP_AGENTS_CACHE is set (${process.env.ACP_AGENTS_CACHE})` : undefined;
  if (required) {
    throw new Error(
      `the ${agent} agent's entry point ${entry} is missing, and ${required}: its suite must run here, not be skipped. ` +
        `Run \`bash scripts/install-agents.sh ${agent}\`, or, if its package moved the entry point, fix it in test/support/agents.mjs.`,
    );
  }
  return false;
}

/**
 * The name of an agent's test suite: when the agent is not installed (the suite is skipped), it says
 * how to install it. @param {string} agent @param {string} title
 */
export function suiteName(agent, title) {
  return agentInstalled(agent) ? title : `${title}: not installed, run \`bash scripts/install-agents.sh ${agent}\``;
}
