import path from "node:path";

/**
 * True when `child` is `parent` itself or lies below it. Compares path segments, so /a/bc is not
 * inside /a/b, and a file named `..foo` in /a/b is. Pure (no file system): callers that must follow
 * symlinks resolve them first. Shared by the workspace layer and the backends.
 */
export function isInside(child: string, parent: string): boolean {
  const rel = path.relative(path.resolve(parent), path.resolve(child));
  return rel === "" || (rel !== ".." && !rel.startsWith(".." + path.sep) && !path.isAbsolute(rel));
}
