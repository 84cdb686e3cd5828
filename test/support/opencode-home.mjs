// @ts-check
// The hermetic home every OpenCode the tests, the demo and the benchmark start gets: its own data,
// config, cache and state directories, nothing downloaded.
//
// OpenCode (1.18) installs @opencode-ai/plugin with npm into its config directory the first time an
// instance starts there, in the background: 31 MB and about 12 s of CPU, still running while the
// first tasks do. It skips the install when the directory's node_modules exists and its
// package-lock.json lists every dependency of its package.json. A user pays this once; every test
// starts OpenCode in a fresh home and would pay it each time, beside what it measures (it was the
// largest share of the suite's CPU). So it is installed once, into a cache outside the repository,
// and each home gets that install linked in.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { pathWithBundledRipgrep } from "../../src/prerequisites.js";
import { agentsCache } from "./agents.mjs";

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** The OpenCode version coding-mcp depends on: the plugin package OpenCode installs has the same one. */
const OPENCODE_VERSION = JSON.parse(fs.readFileSync(path.join(ROOT, "node_modules", "opencode-ai", "package.json"), "utf8")).version;

/** Where the one install lives (the ACP agents' cache, which CI keeps between runs). */
function installedConfigDir() {
  return path.join(agentsCache(), `opencode-config-${OPENCODE_VERSION}`);
}

/**
 * Install OpenCode's config dependencies into the cache, once (a second call finds them). Without a
 * registry it says so and returns false: each OpenCode then tries (and fails) on its own, as it would
 * for a user. Safe beside another run doing the same: each installs apart and the first rename wins.
 * @param {(line: string) => void} [say]
 */
export function installOpencodeConfigDeps(say = (line) => process.stderr.write(`${line}\n`)) {
  const target = installedConfigDir();
  if (fs.existsSync(path.join(target, "package-lock.json"))) return true;
  const version = OPENCODE_VERSION;
  fs.mkdirSync(path.dirname(target), { recursive: true });
  const scratch = fs.mkdtempSync(`${target}.partial-`);
  try {
    fs.writeFileSync(path.join(scratch, "package.json"), "{}\n");
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "--ignore-scripts", "--save-exact", `@opencode-ai/plugin@${version}`], {
      cwd: scratch,
      stdio: ["ignore", "ignore", "pipe"],
      timeout: 300_000,
    });
    try {
      fs.renameSync(scratch, target);
    } catch (err) {
      if (!fs.existsSync(path.join(target, "package-lock.json"))) throw err;
    }
    return true;
  } catch (err) {
    const stderr = /** @type {{ stderr?: Buffer }} */ (err).stderr?.toString("utf8").trim().split("\n").slice(-3).join(" | ");
    say(`could not install @opencode-ai/plugin@${version} for OpenCode's test homes (each OpenCode will try on its own): ${stderr || (err instanceof Error ? err.message : String(err))}`);
    return false;
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * Environment that keeps a spawned OpenCode hermetic: no downloads, its own state directories under
 * `home`, whose config directory gets the cached install of OpenCode's dependencies (when there is one),
 * and the bundled ripgrep on PATH (as coding-mcp gives its agents: no system ripgrep needed).
 * @param {string} home
 */
export function hermeticOpencodeEnv(home) {
  const installed = installedConfigDir();
  const configDir = path.join(home, "config", "opencode");
  if (fs.existsSync(path.join(installed, "package-lock.json")) && !fs.existsSync(path.join(configDir, "node_modules"))) {
    fs.mkdirSync(configDir, { recursive: true });
    for (const file of ["package.json", "package-lock.json"]) fs.copyFileSync(path.join(installed, file), path.join(configDir, file));
    fs.symlinkSync(path.join(installed, "node_modules"), path.join(configDir, "node_modules"), "dir");
  }
  return {
    OPENCODE_DISABLE_AUTOUPDATE: "1",
    OPENCODE_DISABLE_MODELS_FETCH: "1",
    OPENCODE_DISABLE_DEFAULT_PLUGINS: "1",
    OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
    OPENCODE_DISABLE_SHARE: "1",
    OPENCODE_DISABLE_PROJECT_CONFIG: "1",
    XDG_DATA_HOME: `${home}/data`,
    XDG_CONFIG_HOME: `${home}/config`,
    XDG_CACHE_HOME: `${home}/cache`,
    XDG_STATE_HOME: `${home}/state`,
    PATH: pathWithBundledRipgrep(process.env.PATH) ?? "",
  };
}
