// @ts-check
// What coding-mcp needs on the machine besides its npm dependencies: Node.js (the version in
// package.json's engines), git, and on Linux bubblewrap (the sandbox of the agent's commands).
// ripgrep (OpenCode's grep and glob tools run `rg`) comes from npm: @vscode/ripgrep's platform package.
//
// Plain JavaScript rather than TypeScript because scripts/check-prereqs.mjs runs it before anything
// is built (first thing in `npm test` and `npm run demo`); `coding-mcp doctor` runs the same checks.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { packageJson } from "./package-json.js";

/** @typedef {{ name: string, ok: boolean, detail: string, fix?: string }} Prerequisite */

/** The lowest Node.js version package.json's engines field accepts (a ">=X.Y.Z" range). @returns {string} */
export function requiredNodeVersion() {
  const engines = packageJson().engines?.node ?? "";
  const match = /^>=\s*(\d+\.\d+\.\d+)$/.exec(engines.trim());
  if (!match) throw new Error(`package.json: engines.node should be ">=X.Y.Z", not ${JSON.stringify(engines)}`);
  return /** @type {string} */ (match[1]);
}

/** @param {string} a @param {string} b @returns {boolean} whether version a >= version b */
function atLeast(a, b) {
  const x = a.split(".").map(Number);
  const y = b.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) > (y[i] ?? 0);
  }
  return true;
}

/** @param {string} [version] @returns {Prerequisite} */
export function checkNode(version = process.versions.node) {
  const required = requiredNodeVersion();
  return atLeast(version, required)
    ? { name: "Node.js", ok: true, detail: `${version} (needs ${required} or later)` }
    : {
        name: "Node.js",
        ok: false,
        detail: `${version} is too old; coding-mcp needs ${required} or later`,
        fix: `install Node.js ${required.split(".")[0]} (${required} or later) from https://nodejs.org or with nvm (nvm install ${required.split(".")[0]})`,
      };
}

/**
 * The first line `command --version` prints (or the line `pick` finds), or undefined when the command is not on PATH.
 * @param {string} command
 * @param {string} [flag]
 * @param {RegExp} [pick]
 */
function versionOf(command, flag = "--version", pick = /^/) {
  try {
    const lines = execFileSync(command, [flag], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 15_000 }).split("\n");
    return (lines.find((line) => pick.test(line)) ?? lines[0])?.trim() ?? "";
  } catch (err) {
    if (/** @type {NodeJS.ErrnoException} */ (err).code === "ENOENT") return undefined;
    return `present, but \`${command} ${flag}\` failed: ${/** @type {Error} */ (err).message.split("\n")[0]}`;
  }
}

/** @returns {Prerequisite} */
export function checkGit() {
  const version = versionOf("git");
  return version !== undefined
    ? { name: "git", ok: true, detail: version }
    : {
        name: "git",
        ok: false,
        detail: "not found on PATH",
        fix: "install git: apt-get install git (Debian, Ubuntu), brew install git (macOS), or https://git-scm.com/downloads",
      };
}

/**
 * The directory of the ripgrep the @vscode/ripgrep dependency installed for this platform (an
 * optional dependency: absent with npm's --omit=optional), or undefined. It goes on every agent's PATH.
 * @returns {string | undefined}
 */
export function bundledRipgrepDir() {
  try {
    const require = createRequire(import.meta.url);
    const pkg = require.resolve(`@vscode/ripgrep-${process.platform}-${process.arch}/package.json`);
    return path.join(path.dirname(pkg), "bin");
  } catch {
    return undefined;
  }
}

/**
 * A PATH value with the bundled ripgrep's directory appended (unchanged when it is not installed).
 * @param {string | undefined} pathValue
 * @returns {string | undefined}
 */
export function pathWithBundledRipgrep(pathValue) {
  const dir = bundledRipgrepDir();
  return dir ? [pathValue, dir].filter(Boolean).join(path.delimiter) : pathValue;
}

/** @returns {Prerequisite} */
export function checkRipgrep() {
  const dir = bundledRipgrepDir();
  const bundled = dir && path.join(dir, process.platform === "win32" ? "rg.exe" : "rg");
  if (bundled && fs.existsSync(bundled)) return { name: "ripgrep", ok: true, detail: `bundled: ${versionOf(bundled) ?? "rg"} (${bundled})` };
  const onPath = versionOf("rg");
  if (onPath !== undefined) return { name: "ripgrep", ok: true, detail: `${onPath} (on PATH; the bundled one of @vscode/ripgrep is not installed)` };
  return {
    name: "ripgrep",
    ok: false,
    detail: `@vscode/ripgrep's binary for ${process.platform}-${process.arch} is not installed (OpenCode's grep and glob tools run rg)`,
    fix: "run npm install again without --omit=optional (ripgrep comes from npm, no system package needed)",
  };
}

const BUBBLEWRAP_INSTALL = "apt-get install bubblewrap (Debian, Ubuntu), dnf install bubblewrap (Fedora), pacman -S bubblewrap (Arch)";

/**
 * The bubblewrap binary on PATH, as git and node are found (a PATH without it is a machine without
 * it); with no PATH at all, in the usual places (as execvp does).
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {string | undefined}
 */
export function findBubblewrap(env = process.env) {
  return findProgram("bwrap", env);
}

/**
 * An executable by name, found as findBubblewrap finds bwrap.
 * @param {string} name
 * @param {NodeJS.ProcessEnv} [env]
 * @returns {string | undefined}
 */
export function findProgram(name, env = process.env) {
  const dirs = env.PATH ? env.PATH.split(path.delimiter).filter(Boolean) : ["/usr/local/bin", "/usr/bin", "/bin"];
  for (const dir of dirs) {
    const candidate = path.join(dir, name);
    try {
      fs.accessSync(candidate, fs.constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/**
 * Linux: bubblewrap installed, and able to make a sandbox here (user namespaces allowed). A quick
 * check; `coding-mcp doctor` runs the real confined probe. Elsewhere: undefined (no system package
 * would help: confinement is not implemented there, see the README's Prerequisites).
 * @returns {Prerequisite | undefined}
 */
export function checkBubblewrap() {
  if (process.platform !== "linux") return undefined;
  const off = "or set sandbox.mode: off (CODING_MCP_SANDBOX_MODE=off) where the machine or its container is the boundary";
  const bwrap = findBubblewrap();
  if (!bwrap) {
    return { name: "bubblewrap", ok: false, detail: "bwrap is not installed (it confines every command the agent runs)", fix: `install bubblewrap: ${BUBBLEWRAP_INSTALL}; ${off}` };
  }
  try {
    execFileSync(bwrap, ["--unshare-user", "--unshare-net", "--unshare-pid", "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "/bin/sh", "-c", ":"], {
      stdio: ["ignore", "ignore", "pipe"],
      timeout: 15_000,
    });
  } catch (err) {
    const said = /** @type {{ stderr?: Buffer }} */ (err).stderr?.toString("utf8").trim().split("\n").at(-1) || /** @type {Error} */ (err).message.split("\n")[0];
    return {
      name: "bubblewrap",
      ok: false,
      detail: `${bwrap} cannot make a sandbox here (${said})`,
      fix: `allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; Ubuntu: kernel.apparmor_restrict_unprivileged_userns=0), or in a container run it with user namespaces allowed; ${off}`,
    };
  }
  return { name: "bubblewrap", ok: true, detail: `${versionOf(bwrap) ?? "bwrap"} (${bwrap}), makes a sandbox here` };
}

/**
 * socat: needed only with sandbox.network.allow (it bridges the sandbox to coding-mcp's network proxy).
 * @returns {Prerequisite}
 */
export function checkSocat() {
  const version = versionOf("socat", "-V", /^socat version/);
  return version !== undefined
    ? { name: "socat", ok: true, detail: `${version} (bridges the sandbox to the network proxy of sandbox.network.allow)` }
    : {
        name: "socat",
        ok: false,
        detail: "not found on PATH; sandbox.network.allow needs it to bridge the sandbox to coding-mcp's network proxy",
        fix: "install socat: apt-get install socat (Debian, Ubuntu), dnf install socat (Fedora), pacman -S socat (Arch); or empty sandbox.network.allow",
      };
}

/** @returns {Prerequisite[]} */
export function checkPrerequisites() {
  const bubblewrap = checkBubblewrap();
  return [checkNode(), checkGit(), checkRipgrep(), ...(bubblewrap ? [bubblewrap] : [])];
}
