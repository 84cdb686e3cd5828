// @ts-check
// What coding-mcp needs on the machine besides its npm dependencies: Node.js (the version in
// package.json's engines), git, and ripgrep (OpenCode's grep and glob tools run `rg`).
//
// Plain JavaScript rather than TypeScript because scripts/check-prereqs.mjs runs it before anything
// is built (first thing in `npm test` and `npm run demo`); `coding-mcp doctor` runs the same checks.
import { execFileSync } from "node:child_process";
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
 * The first line `command --version` prints, or undefined when the command is not on PATH.
 * @param {string} command
 */
function versionOf(command) {
  try {
    return execFileSync(command, ["--version"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], timeout: 15_000 }).split("\n")[0]?.trim() ?? "";
  } catch (err) {
    if (/** @type {NodeJS.ErrnoException} */ (err).code === "ENOENT") return undefined;
    return `present, but \`${command} --version\` failed: ${/** @type {Error} */ (err).message.split("\n")[0]}`;
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

/** @returns {Prerequisite} */
export function checkRipgrep() {
  const version = versionOf("rg");
  return version !== undefined
    ? { name: "ripgrep", ok: true, detail: version }
    : {
        name: "ripgrep",
        ok: false,
        detail: "rg is not on PATH (OpenCode's grep and glob tools run it)",
        fix: "install ripgrep: apt-get install ripgrep (Debian, Ubuntu), brew install ripgrep (macOS), or https://github.com/BurntSushi/ripgrep#installation",
      };
}

/** @returns {Prerequisite[]} */
export function checkPrerequisites() {
  return [checkNode(), checkGit(), checkRipgrep()];
}
