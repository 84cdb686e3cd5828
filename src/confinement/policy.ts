import fs from "node:fs";
import os from "node:os";
import path from "node:path";

/**
 * What a confined command may see and touch, worked out once per session from trusted facts (the
 * workspace records and the config), never from files the agent can write. Turned into bubblewrap
 * arguments by ./bubblewrap.ts; kept apart so another confiner (a container, macOS) can read the same.
 */

/** The owner's credential stores, hidden from every confined command (relative to $HOME). */
export const CREDENTIAL_STORES = [
  ".ssh",
  ".aws",
  ".config/gh",
  ".git-credentials",
  ".netrc",
  ".docker/config.json",
  ".npmrc",
  ".pypirc",
  ".kube",
  ".gnupg",
  ".config/gcloud",
  ".azure",
  ".config/coding-mcp",
];

/** A backend session id as a sandbox key (file names): anything but letters, digits, - and _ becomes _. */
export function sandboxKey(backendSessionId: string): string {
  return backendSessionId.replace(/[^A-Za-z0-9_-]/g, "_");
}

/** Where one session's commands run: its workspace, and git metadata outside it that git must write for a commit. */
export interface SandboxScope {
  /** The session's workspace (absolute). The only place besides the private temp dir it writes. */
  workspace: string;
  /** Git directories outside the workspace a commit writes (a worktree's admin dir, the shared objects and refs). */
  gitWritable: string[];
  /** Git files and directories made read-only inside writable places (config, hooks): nothing written there runs later. */
  gitReadOnly: string[];
}

export interface SandboxSettings {
  /** Paths hidden besides the credential stores (sandbox.deny_read). */
  denyRead: string[];
  /** Paths writable besides the workspace and the private temp dir (sandbox.allow_write). */
  allowWrite: string[];
  /** Hidden too: coding-mcp's own state, config file and every workspace (base_path). */
  ownPaths: string[];
  home: string;
  /** Hosts reachable through the allowlisting proxy (sandbox.network.allow); empty or absent: no network. */
  networkAllow?: string[];
}

export interface SandboxPolicy {
  /** Read-only view of the whole system, then these hidden (directories become empty, files empty). */
  hide: string[];
  /** PATH directories hidden by the above shown again read-only: top dirs under $HOME (~/.pyenv), and dirs under the host's /tmp. */
  showAgain: string[];
  /** Writable, in this order (a later one may sit inside an earlier hidden one). */
  writable: string[];
  /** Read-only again inside a writable place. */
  readOnly: string[];
  /** The private temporary directory (on the host) mounted at /tmp and /var/tmp. */
  tmpDir: string;
  home: string;
  /** The network proxy's socket directory, bound in (read-only) for the sandbox's bridge; absent: no network. */
  proxySocketDir?: string;
}

/**
 * The worktree admin dir and shared git dirs a worktree session needs for `git commit`, read from
 * the workspace's `.git` file but accepted only inside the source repository's own git directory
 * (the agent can rewrite that file; it must not be able to point us anywhere else).
 */
export function scopeFor(workspace: { path: string; isolation?: string; source_repo?: string }): SandboxScope {
  const scope: SandboxScope = { workspace: workspace.path, gitWritable: [], gitReadOnly: [] };
  const dotGit = path.join(workspace.path, ".git");
  let stat: fs.Stats | undefined;
  try {
    stat = fs.lstatSync(dotGit);
  } catch {
    return scope;
  }
  if (stat.isDirectory()) {
    scope.gitReadOnly.push(path.join(dotGit, "config"), path.join(dotGit, "hooks"));
    return scope;
  }
  if (workspace.isolation !== "worktree" || !workspace.source_repo) return scope;
  const common = realpathOrUndefined(path.join(workspace.source_repo, ".git"));
  if (!common) return scope;
  const admin = adminDirOf(dotGit, common);
  if (!admin) return scope;
  scope.gitWritable.push(
    ...["objects", "refs", "logs"].map((d) => path.join(common, d)).filter((d) => fs.existsSync(d)),
    admin,
  );
  return scope;
}

function adminDirOf(dotGitFile: string, common: string): string | undefined {
  let text: string;
  try {
    text = fs.readFileSync(dotGitFile, "utf8");
  } catch {
    return undefined;
  }
  const match = /^gitdir:\s*(.+?)\s*$/m.exec(text);
  if (!match?.[1]) return undefined;
  const admin = realpathOrUndefined(path.resolve(path.dirname(dotGitFile), match[1]));
  const worktrees = path.join(common, "worktrees") + path.sep;
  return admin && admin.startsWith(worktrees) && !admin.slice(worktrees.length).includes(path.sep) ? admin : undefined;
}

function realpathOrUndefined(p: string): string | undefined {
  try {
    return fs.realpathSync(p);
  } catch {
    return undefined;
  }
}

/** The top-level directory under $HOME of every PATH entry there (~/.pyenv for ~/.pyenv/shims): shown read-only in the sandbox. */
export function homeDirsOnPath(home: string, pathEntries: string[]): string[] {
  const underHome = pathEntries.filter((p) => p.startsWith(home + path.sep));
  return [...new Set(underHome.map((p) => path.join(home, p.slice(home.length + 1).split(path.sep)[0]!)))];
}

/** The policy of one session: everything hidden that must be, its workspace and temp dir writable. */
export function policyFor(scope: SandboxScope, settings: SandboxSettings, tmpDir: string, pathEntries: string[]): SandboxPolicy {
  const home = settings.home;
  // PATH directories under the host's temp dirs (tools installed there) would be hidden by the private /tmp.
  const underTemp = pathEntries.filter((p) => /^\/(var\/)?tmp\/./.test(p));
  return {
    hide: [...CREDENTIAL_STORES.map((p) => path.join(home, p)), ...settings.denyRead, ...settings.ownPaths],
    showAgain: [...homeDirsOnPath(home, pathEntries), ...new Set(underTemp)],
    writable: [scope.workspace, ...scope.gitWritable, ...settings.allowWrite],
    readOnly: scope.gitReadOnly,
    tmpDir,
    home,
  };
}

/** Words of a variable's name (split on _) that say it holds a credential: GITHUB_TOKEN, DB_PASSWORD, OPENAI_API_KEY. */
const SECRET_WORDS = new Set(["TOKEN", "TOKENS", "SECRET", "SECRETS", "PASSWORD", "PASSWD", "PASS", "PASSPHRASE", "CREDENTIAL", "CREDENTIALS", "AUTH", "COOKIE", "KEY", "APIKEY", "PAT"]);
/** Values shaped like well-known tokens (GitHub, GitLab, Slack, OpenAI-style, AWS access keys), whatever their variable. */
const TOKEN_VALUE = /^(gh[pousr]_|github_pat_|glpat-|xox[abprs]-|sk-|AKIA[0-9A-Z]{12})/;
/** Agent and coding-mcp internals, and things that point at the owner's agents, sockets and cloud accounts. */
const INTERNAL_NAME = /^(OPENCODE_|CODING_MCP_|GIT_ASKPASS$|SSH_ASKPASS$|SSH_AUTH_SOCK$|GPG_AGENT_INFO$|DBUS_SESSION_BUS_ADDRESS$|XDG_RUNTIME_DIR$|AWS_|AZURE_|GOOGLE_APPLICATION_CREDENTIALS$|KUBECONFIG$|DOCKER_|NPM_CONFIG_|GH_|GITHUB_|GITLAB_|ANTHROPIC_|OPENAI_|GEMINI_|CLAUDE_|CODEX_)/i;

function holdsCredential(name: string, value: string): boolean {
  return INTERNAL_NAME.test(name) || name.toUpperCase().split("_").some((word) => SECRET_WORDS.has(word)) || TOKEN_VALUE.test(value);
}

/**
 * The environment of a confined command: coding-mcp's own (already without its configured secrets)
 * less every variable that by name or value holds a credential or an agent's internals, plus a
 * private TMPDIR. Values of known secrets are dropped whatever their variable is called.
 */
export function sandboxEnvironment(base: NodeJS.ProcessEnv, secrets: string[], extraPath: string[]): Record<string, string> {
  const secretValues = new Set(secrets.filter(Boolean));
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(base)) {
    if (value === undefined || holdsCredential(name, value) || secretValues.has(value)) continue;
    env[name] = value;
  }
  const pathEntries = [...(env.PATH ?? "/usr/local/bin:/usr/bin:/bin").split(path.delimiter).filter(Boolean)];
  for (const dir of extraPath) if (!pathEntries.includes(dir)) pathEntries.push(dir);
  env.PATH = pathEntries.join(path.delimiter);
  env.HOME = base.HOME ?? os.homedir();
  env.TMPDIR = "/tmp";
  env.CODING_MCP_SANDBOX = "1";
  return env;
}
