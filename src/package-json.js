// @ts-check
// coding-mcp's own package.json, found by walking up from this module: from src/ (tests, scripts)
// and from anywhere in the bundled dist/ alike. Plain JavaScript, like src/prerequisites.js, so
// scripts can use it before anything is built.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** @typedef {{ name: string, version: string, engines?: { node?: string } }} PackageJson */

/** @type {PackageJson | undefined} */
let cached;

/** @returns {PackageJson} */
export function packageJson() {
  if (cached) return cached;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const file = path.join(dir, "package.json");
    if (fs.existsSync(file)) {
      const json = /** @type {PackageJson} */ (JSON.parse(fs.readFileSync(file, "utf8")));
      if (json.name === "coding-mcp") return (cached = json);
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`cannot find coding-mcp's package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}
