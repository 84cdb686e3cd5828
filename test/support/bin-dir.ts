import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

/**
 * A directory for PATH holding only the named commands (symlinks to the real ones), to run something
 * as on a machine where the others (ripgrep, say) are not installed.
 */
export function binDirWith(dir: string, commands: string[]): string {
  fs.mkdirSync(dir, { recursive: true });
  for (const command of commands) {
    const real = command === "node" ? process.execPath : execFileSync("sh", ["-c", `command -v ${command}`], { encoding: "utf8" }).trim();
    fs.symlinkSync(real, path.join(dir, command));
  }
  return dir;
}

/**
 * A directory for PATH holding every command of this PATH (and node) but the named ones: this
 * machine as it would be without them installed (bubblewrap, Debian's ripgrep).
 */
export function binDirWithout(dir: string, missing: string[]): string {
  fs.mkdirSync(dir, { recursive: true });
  const linked = new Set(missing);
  for (const from of [path.dirname(process.execPath), ...(process.env.PATH ?? "").split(path.delimiter).filter(Boolean)]) {
    let names: string[];
    try {
      names = fs.readdirSync(from);
    } catch {
      continue;
    }
    for (const name of names) {
      if (linked.has(name)) continue;
      linked.add(name);
      fs.symlinkSync(path.join(from, name), path.join(dir, name));
    }
  }
  return dir;
}
