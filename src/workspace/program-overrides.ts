import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { UserError } from "../errors.js";
import { type Git, summarize } from "./git.js";
import { remember, type RepoPaths } from "./git-dir.js";

// Programs named in the workspace's own config (filters, signing) that coding-mcp's git must not run,
// and the few other settings coding-mcp's reads and commits depend on, from one cached read of the config.

const settingsKnown = new Map<string, { files: string[]; signature: string; settings: WorkspaceGitSettings }>();

export interface WorkspaceGitSettings {
  /** `-c` options for every git run that may read files (see workspaceProgramOverrides). */
  overrides: string[];
  /**
   * git stores the working tree's files as they are: it trusts their executable bit (core.fileMode) and
   * the checkout is not sparse (where a file missing on disk is not a deletion).
   */
  plainWorkingTree: boolean;
  /**
   * A commit is the plain commit object `git commit-tree` writes: no signing (commit.gpgSign), message
   * cleanup (commit.cleanup) or encoding (i18n.commitEncoding) configured, which only `git commit` applies.
   */
  plainCommit: boolean;
}

// Config keys that name a program git runs while staging (clean/smudge filters) or committing
// (signing), and the value each gets back when a file in the workspace set it: the one set outside the
// workspace (your `git lfs install` in ~/.gitconfig keeps working), else none or git's default program.
const PROGRAM_KEYS = /^(filter\..+\.(clean|smudge|process|required)|gpg\.program|gpg\.(ssh|x509|openpgp)\.program)$/;
const NEUTRAL_VALUE: Record<string, string> = { "gpg.program": "gpg", "gpg.openpgp.program": "gpg", "gpg.ssh.program": "ssh-keygen", "gpg.x509.program": "gpgsm" };

/**
 * `-c` options that undo every program-naming key (PROGRAM_KEYS) set by a config file inside the
 * workspace or its git directory: `.git/config`, `config.worktree`, or a file there it includes. The
 * agent can write those; a filter or signing program it named there would otherwise run in
 * coding-mcp's own `git add` and `git commit`, outside any permission a person gave the agent.
 *
 * The answer is kept per workspace while no file it came from (nor any config file git would read,
 * nor HEAD, which `includeIf "onbranch:"` looks at) has changed: a stat of a few files instead of a
 * git process before every add.
 */
export async function workspaceProgramOverrides(git: Git, dir: string, paths: RepoPaths): Promise<string[]> {
  return (await workspaceGitSettings(git, dir, paths)).overrides;
}

/** The program overrides (workspaceProgramOverrides) and what else reading the working tree depends on, from one read of the config. */
export async function workspaceGitSettings(git: Git, dir: string, paths: RepoPaths): Promise<WorkspaceGitSettings> {
  const known = settingsKnown.get(dir);
  const watched = [...new Set([...standardConfigFiles(paths), ...(known?.files ?? [])])];
  const before = await filesSignature(watched);
  if (known && known.signature === before) return known.settings;

  const listing = await git.exec(["config", "--show-origin", "-z", "--get-regexp", "^(filter|gpg)\\.|^include\\.path$|^includeif\\..*\\.path$|^core\\.(filemode|sparsecheckout)$|^commit\\.(gpgsign|cleanup)$|^i18n\\.commitencoding$"], { cwd: dir });
  if (listing.exitCode !== 0 && listing.exitCode !== 1) throw new UserError(`git config failed: ${git.redact(summarize(listing.stderr))}`, undefined, "git_failed");
  const inside = (file: string) => [dir, paths.commonDir].some((root) => file === root || file.startsWith(root + path.sep));
  const trusted = new Map<string, string>();
  const untrusted = new Set<string>();
  const files = new Set(watched);
  const flags: Record<string, boolean> = {};
  const commitSettings = new Set<string>();
  // -z records: "file:<path>\0<key>\n<value>\0" (the value part without "\n" when the key has none). Exit 1: no such key.
  const fields = listing.exitCode === 0 ? listing.stdout.split("\0") : [];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const origin = fields[i]!;
    const [key = "", value = ""] = fields[i + 1]!.split(/\n(.*)/s);
    const file = origin.startsWith("file:") ? path.resolve(dir, origin.slice(5)) : "";
    if (file) files.add(file);
    if (key.startsWith("core.") || key === "commit.gpgsign") {
      flags[key] = configBool(fields[i + 1]!.includes("\n") ? value : "true"); // the last one git read wins
      continue;
    }
    if (key === "commit.cleanup" || key === "i18n.commitencoding") {
      commitSettings.add(key);
      continue;
    }
    if (key.startsWith("include")) {
      // Watched too, so a file included from now on, or written later, is seen.
      if (file) files.add(path.resolve(path.dirname(file), value.replace(/^~(?=\/)/, os.homedir())));
      continue;
    }
    if (!PROGRAM_KEYS.test(key)) continue;
    if (file && inside(file)) untrusted.add(key);
    else trusted.set(key, value);
  }
  const args = [...untrusted].flatMap((key) => ["-c", `${key}=${trusted.get(key) ?? NEUTRAL_VALUE[key] ?? (key.endsWith(".required") ? "false" : "")}`]);
  // Kept only when every file it came from was watched before git read them (none changed unseen since).
  const complete = [...files].every((f) => watched.includes(f));
  const settings = {
    overrides: args,
    plainWorkingTree: flags["core.filemode"] !== false && flags["core.sparsecheckout"] !== true,
    plainCommit: flags["commit.gpgsign"] !== true && commitSettings.size === 0,
  };
  remember(settingsKnown, dir, { files: [...files], signature: complete ? before : "", settings });
  return settings;
}

/** A config value as git reads a boolean: "true", "yes", "on" or a number other than 0; anything else reads as false. */
function configBool(value: string): boolean {
  const v = value.trim();
  return /^(true|yes|on)$/i.test(v) || (/^-?\d+$/.test(v) && Number(v) !== 0);
}

/** The config files git reads for a repository (whether they exist or not), and its HEAD. */
function standardConfigFiles(paths: RepoPaths): string[] {
  const gitDir = path.dirname(paths.index);
  const xdg = process.env.XDG_CONFIG_HOME || path.join(os.homedir(), ".config");
  return [
    path.join(paths.commonDir, "config"),
    path.join(gitDir, "config.worktree"),
    path.join(gitDir, "HEAD"),
    process.env.GIT_CONFIG_GLOBAL || path.join(os.homedir(), ".gitconfig"),
    path.join(xdg, "git", "config"),
    process.env.GIT_CONFIG_SYSTEM || "/etc/gitconfig",
  ];
}

/** What changes when a file is written, replaced, created or removed. */
async function filesSignature(files: string[]): Promise<string> {
  const stats = await Promise.all(files.map((f) => fs.stat(f, { bigint: true }).then((s) => `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`, () => "-")));
  return stats.join("|");
}
