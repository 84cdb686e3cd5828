import { randomBytes } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import type { ResolvedConfig } from "../config.js";

/**
 * How git authenticates one clone or push. The token reaches git only through GIT_ASKPASS: a fixed
 * script that echoes an environment variable set for that one git process. It is never put in argv,
 * a URL, .git/config or a file.
 *
 * A git process that carries the token reads no git config the agent could have written (see
 * PRISTINE_CONFIG_ENV): the caller runs it outside the workspace (a fresh clone, or a scratch
 * repository under `scratchDir` for a push).
 */
export interface GitAuth {
  /** Extra environment for the git process (contains the token when one is configured). */
  env: Record<string, string>;
  /** Global options to put before the git subcommand. */
  configArgs: string[];
  /** For error hints only; never the secret itself. */
  tokenEnv: string;
  hasToken: boolean;
  /** The host a configured token was withheld from because it is not in git.token_hosts. */
  withheldFrom?: string;
  /** With the token: a directory only coding-mcp writes, for the scratch repository a push runs from. */
  scratchDir?: string;
}

/**
 * No system or global git config: the agent's bash can write ~/.gitconfig and $XDG_CONFIG_HOME/git/config
 * (GIT_CONFIG_GLOBAL replaces both), and /etc/gitconfig when it runs as root. With these, and run
 * outside the workspace, git reads only a config coding-mcp wrote, so nothing the agent wrote picks
 * the proxy, the TLS checks, the credentials or a program to run. coding-mcp's own environment is
 * still read (HTTPS_PROXY, NO_PROXY, GIT_SSL_CAINFO…): the agent cannot change it.
 */
export const PRISTINE_CONFIG_ENV: Readonly<Record<string, string>> = { GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null" };

export const PASSWORD_VARIABLE = "CODING_MCP_GIT_PASSWORD";
const USERNAME_VARIABLE = "CODING_MCP_GIT_USERNAME";

const HOST_VARIABLE = "CODING_MCP_GIT_HOST";

// Git calls the helper with its prompt as $1: "Username for 'https://host[:port]': " or "Password for
// 'https://user@host[:port]': ". The script answers only when the prompt names the host the token was
// allowed for, so a redirect to another host, or a proxy that asks for a password, never gets the token.
// It holds no secret: host and answers come from the environment of that one git process.
const ASKPASS_SCRIPT = `#!/bin/sh
case "$1" in
  *"//$${HOST_VARIABLE}'"*|*"@$${HOST_VARIABLE}'"*) ;;
  *) exit 1 ;;
esac
case "$1" in
  Username*) printf '%s\\n' "$${USERNAME_VARIABLE}" ;;
  *) printf '%s\\n' "$${PASSWORD_VARIABLE}" ;;
esac
`;

/** The host[:port] of an http(s) URL as written, which is how git names it in a credential prompt. */
function promptHost(url: string): string {
  const authority = url.slice(url.indexOf("://") + 3).split(/[/?#]/)[0] ?? "";
  return authority.slice(authority.lastIndexOf("@") + 1);
}

type AuthConfig = Pick<ResolvedConfig, "git" | "secrets">;

/** Which git token a clone or push uses: the server's (git.token_env), a caller's own, or none. */
export type GitCredential = { kind: "server" } | { kind: "own"; token: string; tokenEnv: string } | { kind: "none"; why: string };

/**
 * The host of an http(s) remote when the token may go there, else undefined with the reason. The
 * token goes only to the hosts in git.token_hosts, so a caller (or an agent rewriting .git/config)
 * cannot have coding-mcp send it to a server of their choosing.
 */
export function tokenAllowedFor(url: string, tokenHosts: string[]): { allowed: boolean; host?: string } {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return { allowed: false }; // ssh, scp-like or a path: the token is for https only
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") return { allowed: false };
  const host = parsed.hostname.toLowerCase();
  const allowed = tokenHosts.some((h) => h === "*" || h.toLowerCase() === host || h.toLowerCase() === parsed.host.toLowerCase());
  return { allowed, host };
}

/**
 * The authentication for one clone or push of `url` (the remote's URL as git will use it), with the
 * server's token or, for a caller with its own, that one; under the same rules (askpass, token_hosts).
 */
export async function authEnv(config: AuthConfig, stateDir: string, url: string, credential: GitCredential = { kind: "server" }): Promise<GitAuth> {
  const tokenEnv = credential.kind === "own" ? credential.tokenEnv : credential.kind === "none" ? "the git_token_env of your http.clients entry (or the server's, with git.shared_token: true)" : config.git.token_env;
  const auth: GitAuth = { env: {}, configArgs: [], tokenEnv, hasToken: false };
  const token = credential.kind === "own" ? credential.token : credential.kind === "server" ? config.secrets.gitToken : undefined;
  const target = tokenAllowedFor(url, config.git.token_hosts);
  if (token && !target.allowed && target.host) auth.withheldFrom = target.host;
  if (token && target.allowed) {
    auth.hasToken = true;
    auth.env.GIT_ASKPASS = await writeAskpass(stateDir);
    auth.env[USERNAME_VARIABLE] = config.git.username;
    auth.env[PASSWORD_VARIABLE] = token;
    auth.env[HOST_VARIABLE] = promptHost(url);
    Object.assign(auth.env, PRISTINE_CONFIG_ENV);
    auth.scratchDir = path.join(stateDir, "scratch");
    // Belt and braces over the pristine config: an empty value resets the helper list, so no helper
    // answers (or stores the token) instead of askpass, and no hook (which would see the token) runs.
    auth.configArgs.push("-c", "credential.helper=", "-c", "core.hooksPath=/dev/null");
  }
  if (config.git.ssh_key_path) {
    // GIT_SSH_COMMAND is run by a shell, hence the quoting. Host keys stay checked; BatchMode makes ssh
    // fail instead of waiting for a passphrase or host-key prompt nobody can answer.
    auth.env.GIT_SSH_COMMAND = `ssh -i ${shellQuote(config.git.ssh_key_path)} -o IdentitiesOnly=yes -o BatchMode=yes`;
  }
  return auth;
}

/** Write the askpass script (mode 0700) under stateDir, atomically so a concurrent git never runs half a file. */
async function writeAskpass(stateDir: string): Promise<string> {
  await fs.mkdir(stateDir, { recursive: true, mode: 0o700 });
  const file = path.join(stateDir, "git-askpass.sh");
  const current = await fs.readFile(file, "utf8").catch(() => undefined);
  if (current === ASKPASS_SCRIPT) {
    await fs.chmod(file, 0o700);
    return file;
  }
  // Random, not pid and time: two clones starting in the same millisecond (two callers) wrote one name, and the second rename failed.
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`;
  await fs.writeFile(tmp, ASKPASS_SCRIPT, { mode: 0o700 });
  await fs.rename(tmp, file);
  return file;
}

export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
