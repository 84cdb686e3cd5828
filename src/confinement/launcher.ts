/**
 * The confined shell: a POSIX sh script an agent uses as its shell (`<launcher> -c <command>`, as
 * OpenCode runs its bash tool). It runs outside any sandbox, so it trusts only what the agent cannot
 * set: the profile key comes from the agent process's own environment (set per command by coding-mcp's
 * OpenCode plugin from the tool call's session, not by the model), and each profile is a script
 * coding-mcp wrote under its state directory, which every sandbox hides. A profile starts bubblewrap
 * with a clean environment, so nothing of the agent's (its server password, provider keys) reaches
 * the command. Plain sh rather than a Node program: a few milliseconds per command instead of ~40.
 */

/** Single-quoted for sh: safe for any byte string. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** The variable that names a command's profile. */
export const PROFILE_VARIABLE = "CODING_MCP_SANDBOX_PROFILE";

export function launcherScript(profilesDir: string): string {
  return `#!/bin/sh
# coding-mcp's confined shell (written by coding-mcp; see src/confinement/launcher.ts).
if [ "$#" -ne 2 ] || [ "$1" != "-c" ]; then
  echo "coding-mcp sandbox: expected -c COMMAND" >&2
  exit 2
fi
profile_key=$${PROFILE_VARIABLE}
case $profile_key in
  '' | *[!A-Za-z0-9_-]*)
    echo "coding-mcp sandbox: this command belongs to no coding-mcp session, so it was not run" >&2
    exit 126 ;;
esac
profile=${shellQuote(profilesDir)}/$profile_key.sh
if [ ! -r "$profile" ]; then
  echo "coding-mcp sandbox: the session of this command is closed or unknown, so it was not run" >&2
  exit 126
fi
. "$profile"
`;
}

/**
 * One session's profile, sourced by the launcher with the command in "$2": exec bubblewrap with a
 * clean environment, in the command's working directory (a directory hidden in the sandbox fails
 * there as an ordinary error: bwrap says it cannot chdir).
 */
export function profileScript(bwrap: string, bwrapArgs: string[], env: Record<string, string>, shell: string, prelude?: string): string {
  const envArgs = Object.entries(env).map(([k, v]) => shellQuote(`${k}=${v}`));
  // A prelude (the network bridge) runs in a shell of its own inside the sandbox, which then becomes the command's.
  const run = prelude ? `${shellQuote(shell)} -c ${shellQuote(`${prelude}\nexec ${shellQuote(shell)} -c "$1"`)} coding-mcp-sandbox "$2"` : `${shellQuote(shell)} -c "$2"`;
  return [
    "# coding-mcp sandbox profile (written by coding-mcp; sourced by its confined shell)",
    `exec /usr/bin/env -i ${envArgs.join(" ")} PWD="$PWD" \\`,
    `  ${shellQuote(bwrap)} ${bwrapArgs.map(shellQuote).join(" ")} --chdir "$PWD" -- ${run}`,
    "",
  ].join("\n");
}
