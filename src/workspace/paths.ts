import fs from "node:fs/promises";
import path from "node:path";
import { UserError } from "../errors.js";
import { isInside } from "../path-inside.js";

export { isInside };

/**
 * Resolve a caller-given workspace_path: it must exist, be a directory and, after following every
 * symlink, equal or lie inside one of `roots` (also resolved). Returns the real path.
 */
export async function resolveInsideRoots(p: string, roots: string[]): Promise<string> {
  if (!path.isAbsolute(p)) {
    throw new UserError(`workspace_path ${p} is not an absolute path`, "give the full path of an existing directory");
  }
  const real = await realDirectory(p);
  const realRoots = (await Promise.all(roots.map((r) => fs.realpath(r).catch(() => undefined)))).filter(
    (r): r is string => r !== undefined,
  );
  if (realRoots.some((root) => isInside(real, root))) return real;
  const allowed = roots.length ? roots.join(", ") : "(none configured)";
  throw new UserError(
    `workspace_path ${p} is outside the allowed roots: ${allowed}`,
    "use a directory inside one of them, or add its parent to workspace.allowed_roots in the config",
    "path_not_allowed",
  );
}

async function realDirectory(p: string): Promise<string> {
  let real: string;
  try {
    real = await fs.realpath(p);
  } catch {
    throw new UserError(`workspace_path ${p} does not exist`, "create the directory first or give an existing one", "not_found");
  }
  if (!(await fs.stat(real)).isDirectory()) {
    throw new UserError(`workspace_path ${p} is not a directory`, "give the path of a directory, not a file");
  }
  return real;
}

/**
 * Turn a caller-given path inside a repository (relative to `root`, or absolute but inside it) into a
 * clean relative path with forward slashes, refusing escapes and anything git could read as an option.
 * `what` names the input in the error ("paths", "sparse_paths").
 */
export async function repoRelativePath(root: string, p: string, what: string): Promise<string> {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused here
  if (p.length === 0 || /[\x00-\x1f\x7f]/.test(p)) throw new UserError(`${what}: ${JSON.stringify(p)} is empty or contains control characters`);
  if (p.startsWith("-")) throw new UserError(`${what}: ${p} starts with '-'`, "prefix it with ./ if it really is a file name");
  const bases = [path.resolve(root)];
  if (path.isAbsolute(p)) bases.push(await fs.realpath(root).catch(() => bases[0]!));
  for (const base of bases) {
    const abs = path.resolve(base, p);
    if (isInside(abs, base)) return path.relative(base, abs).split(path.sep).join("/") || ".";
  }
  throw new UserError(`${what}: ${p} is outside the workspace ${root}`, "give paths relative to the workspace root, without '..' escapes");
}
