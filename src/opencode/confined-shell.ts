import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

/**
 * How the managed OpenCode runs its bash tool confined. OpenCode runs `<shell> -c "<command>"` with
 * its config's `shell`; coding-mcp points that at its confined shell (src/confinement/launcher.ts).
 * One OpenCode serves every session, so the shell must learn which session a command is for from
 * something the model cannot choose: a tiny OpenCode plugin whose `shell.env` hook puts the tool
 * call's session id into the command's environment (the working directory is the model's to move).
 * Project config is turned off: a workspace's opencode.json or .opencode/ (which the agent can write)
 * could set another shell, or load plugins and MCP servers that run inside OpenCode, unconfined.
 */

/** The plugin: one hook, nothing else. */
function pluginSource(variable: string): string {
  return `// Written by coding-mcp: names the session of every shell command, for its confined shell.
export const CodingMcpSandbox = async () => ({
  "shell.env": async (input, output) => {
    output.env[${JSON.stringify(variable)}] = String(input.sessionID ?? "");
  },
});
`;
}

/** Write the plugin next to the launcher and return the managed OpenCode's environment with both configured. */
export function confinedOpencodeEnv(env: NodeJS.ProcessEnv, launcherPath: string, profileVariable: string): NodeJS.ProcessEnv {
  const pluginFile = path.join(path.dirname(launcherPath), "opencode-plugin.mjs");
  fs.mkdirSync(path.dirname(pluginFile), { recursive: true, mode: 0o700 });
  fs.writeFileSync(pluginFile, pluginSource(profileVariable), { mode: 0o600 });
  return {
    ...env,
    OPENCODE_CONFIG_CONTENT: JSON.stringify(withConfinedShell(env.OPENCODE_CONFIG_CONTENT, launcherPath, pathToFileURL(pluginFile).href)),
    OPENCODE_DISABLE_PROJECT_CONFIG: "1",
  };
}

/** The user's inline config (if any) with our shell and plugin; inline config wins over every file. */
export function withConfinedShell(inline: string | undefined, launcherPath: string, pluginUrl: string): Record<string, unknown> {
  let config: Record<string, unknown> = {};
  if (inline?.trim()) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(inline);
    } catch (err) {
      throw new Error(`OPENCODE_CONFIG_CONTENT is not valid JSON (${(err as Error).message}); fix it or use OPENCODE_CONFIG with a file`);
    }
    if (!parsed || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("OPENCODE_CONFIG_CONTENT must be a JSON object");
    config = parsed as Record<string, unknown>;
  }
  const plugins = Array.isArray(config.plugin) ? (config.plugin as unknown[]) : [];
  return { ...config, shell: launcherPath, plugin: [...plugins, pluginUrl] };
}
