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
