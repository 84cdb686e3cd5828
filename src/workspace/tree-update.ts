import { createHash } from "node:crypto";
import fs from "node:fs/promises";
import path from "node:path";
import { type Git } from "./git.js";

// A tree written from another tree and the working tree's state of a few paths: git reads the
// directories on those paths' way and hashes those files, nothing else, so the cost follows the
// number of paths, not the size of the repository. No index is read or written.

export interface TreeUpdateOptions {
  /** The `-c` options that neutralise programs the workspace's config names (hash-object runs clean filters). */
  overrides: string[];
  /**
   * The paths come from the agent's own account, not from git: check what a walk would have checked,
   * and decline what it would have seen otherwise (a directory on the way that is a symlink or a
   * repository of its own). Untracked files that are ignored are left out, as a walk leaves them out.
   */
  fromAgent?: boolean;
  /** Called once git has read every file it needs (what is written later is not in the tree); the tree is written after. */
  onRead?: () => void;
}

interface Entry {
  /** Octal, as git writes it in a tree object ("100644", "40000"). */
  mode: string;
  oid: string;
}

const TREE_MODE = "40000";
const RULE_FILES = new Set([".gitignore", ".gitattributes", ".gitmodules"]);

/**
 * `base`'s tree (base: a commit or tree) with each of `paths` (from the repository's top, `top`) as
 * the working tree holds it now: the file's content and mode, or no entry when it is gone. Undefined
 * when one of them is something only a walk of the working tree reads exactly (a directory, such as a
 * submodule or a nested repository; a symlink; a file that replaced a directory): the caller reads
 * the working tree then, as it does where the repository's settings make files differ from what git
 * stores (core.fileMode off, a sparse checkout: WorkspaceGitSettings.plainWorkingTree).
 */
export async function treeWithPaths(git: Git, top: string, base: string, paths: string[], o: TreeUpdateOptions): Promise<string | undefined> {
  const wanted = [...new Set(paths)];
  if (wanted.some((p) => !plainPath(p))) return undefined;
  // Rules that decide about other files than the ones written: a walk applies them to every file.
  if (o.fromAgent && wanted.some((p) => RULE_FILES.has(path.posix.basename(p)))) return undefined;
  const set = new Set(wanted);
  // A path that is also a directory on another one's way: a file replaced a directory, or the reverse.
  if (wanted.some((p) => ancestors(p).some((dir) => set.has(dir)))) return undefined;
  const states = await Promise.all(wanted.map((p) => fileState(path.join(top, p))));
  if (states.some((s) => s === "other")) return undefined;
  const present = wanted.filter((_, i) => states[i] !== "missing");
  if (o.fromAgent && !(await sameWayAsGit(top, present))) return undefined;

  const dirs = [...new Set(wanted.flatMap(ancestors))].sort((a, b) => depth(a) - depth(b));
  const [read, blobs] = await Promise.all([readTrees(git, top, base, dirs), hashFiles(git, top, present, o.overrides)]);
  if (!read) return undefined;
  const { trees, root: baseTree } = read;
  // A file the base had stays in (the rules did not change: RULE_FILES); a new one is left out if it is
  // untracked and ignored, as a walk leaves it out.
  const isNew = (p: string) => !trees.get(parentOf(p))?.has(path.posix.basename(p));
  const fresh = o.fromAgent ? present.filter(isNew) : [];
  const ignored = fresh.length ? await ignoredUntracked(git, top, fresh) : new Set<string>();

  // The new entries, into their directories (a missing directory starts empty).
  const changedDirs = new Set<string>();
  let changed = false;
  for (const [i, p] of wanted.entries()) {
    const dir = parentOf(p);
    const entries = trees.get(dir) ?? new Map<string, Entry>();
    trees.set(dir, entries);
    const name = path.posix.basename(p);
    const before = entries.get(name);
    const state = states[i]!;
    if (before && (before.mode === TREE_MODE || before.mode === "160000")) return undefined; // a directory or submodule that a file now names
    const blob = state === "missing" || ignored.has(p) ? undefined : blobs.get(p);
    const after = blob === undefined ? undefined : { mode: state === "executable" ? "100755" : "100644", oid: blob };
    if (before?.mode === after?.mode && before?.oid === after?.oid) continue;
    if (after) entries.set(name, after);
    else entries.delete(name);
    changed = true;
    for (let d: string | undefined = dir; d !== undefined; d = d === "" ? undefined : parentOf(d)) changedDirs.add(d);
  }
  if (!changed) {
    o.onRead?.();
    return baseTree;
  }

  // Deepest first, so each tree's id is known before its parent's entries are written.
  const order = [...changedDirs].sort((a, b) => depth(b) - depth(a));
  const algorithm = baseTree.length === 64 ? "sha256" : "sha1";
  const written: { dir: string; entries: Map<string, Entry>; oid: string }[] = [];
  for (const dir of order) {
    const entries = trees.get(dir)!;
    if (dir !== "") {
      const parent = trees.get(parentOf(dir)) ?? new Map<string, Entry>();
      trees.set(parentOf(dir), parent);
      const name = path.posix.basename(dir);
      const before = parent.get(name);
      if (before && before.mode !== TREE_MODE) return undefined; // a file or submodule where a directory is now
      if (entries.size === 0) {
        parent.delete(name); // git stores no empty directory
        continue;
      }
      const oid = treeObjectId(entries, algorithm);
      parent.set(name, { mode: TREE_MODE, oid });
      written.push({ dir, entries, oid });
    } else {
      if (entries.size === 0) return undefined; // an empty repository: rare enough for the walk
      written.push({ dir, entries, oid: treeObjectId(entries, algorithm) });
    }
  }
  // Every file is read and nothing is declined past this point.
  o.onRead?.();
  // One mktree for all of them; git's ids must be the ones computed here, which the parents name.
  const input = written.map((t) => [...t.entries].map(([name, e]) => `${e.mode} ${typeOf(e.mode)} ${e.oid}\t${name}\0`).join("") + "\0").join("");
  const ids = (await git.run(["mktree", "-z", "--batch", "--missing"], { cwd: top, input })).split("\n");
  if (ids.length !== written.length || written.some((t, i) => t.oid !== ids[i])) throw new Error(`mktree wrote other trees than computed (${ids.join(" ")})`);
  return written.at(-1)!.oid;
}

/** A path from the top that names a file the way git's own listing would: no empty, ".", ".." or ".git" part, nothing a line-based git input cannot carry. */
function plainPath(p: string): boolean {
  if (!p || p.startsWith("/") || p.endsWith("/") || p.startsWith('"') || /[\n\0]/.test(p)) return false;
  return p.split("/").every((part) => part !== "" && part !== "." && part !== ".." && part.toLowerCase() !== ".git");
}

/** "" (the top) and each directory above `p`, e.g. "a/b/c" gives "", "a", "a/b". */
function ancestors(p: string): string[] {
  const parts = p.split("/").slice(0, -1);
  return ["", ...parts.map((_, i) => parts.slice(0, i + 1).join("/"))];
}

function parentOf(p: string): string {
  const i = p.lastIndexOf("/");
  return i < 0 ? "" : p.slice(0, i);
}

function depth(dir: string): number {
  return dir === "" ? 0 : dir.split("/").length;
}

function typeOf(mode: string): string {
  return mode === TREE_MODE ? "tree" : mode === "160000" ? "commit" : "blob";
}

type FileState = "file" | "executable" | "missing" | "other";

async function fileState(file: string): Promise<FileState> {
  try {
    const st = await fs.lstat(file);
    if (!st.isFile()) return "other";
    return st.mode & 0o100 ? "executable" : "file";
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return "missing";
    return "other"; // ENOTDIR: a file where a directory was; a permission problem: the walk says what
  }
}

/**
 * Whether git would reach each file by the path given: no directory on the way is a symlink, and none
 * below the top holds a repository of its own (a walk lists such a directory, not the files in it).
 */
async function sameWayAsGit(top: string, files: string[]): Promise<boolean> {
  const dirs = [...new Set(files.flatMap(ancestors))].filter((d) => d !== "");
  const checks = await Promise.all(
    dirs.map(async (d) => {
      const [st, nested] = await Promise.all([fs.lstat(path.join(top, d)).catch(() => undefined), fs.lstat(path.join(top, d, ".git")).then(() => true, () => false)]);
      return st?.isDirectory() === true && !nested;
    }),
  );
  return checks.every(Boolean);
}

/** Of `files`, those that are not in the index and that the ignore rules leave out. */
async function ignoredUntracked(git: Git, top: string, files: string[]): Promise<Set<string>> {
  // "./" first: a name starting with ":" is a name, not pathspec magic (which check-ignore takes no other way).
  const result = await git.exec(["check-ignore", "-z", "--stdin"], { cwd: top, input: files.map((f) => `./${f}`).join("\0") + "\0" });
  // Exit 1: none is ignored.
  if (result.exitCode !== 0 && result.exitCode !== 1) throw new Error(`git check-ignore failed: ${result.stderr}`);
  return new Set(result.stdout.split("\0").filter(Boolean).map((f) => f.replace(/^\.\//, "")));
}

/** The blob ids of `files`, written as `git add` writes them (clean filters and end-of-line rules applied). */
async function hashFiles(git: Git, top: string, files: string[], overrides: string[]): Promise<Map<string, string>> {
  if (!files.length) return new Map();
  const ids = (await git.run([...overrides, "hash-object", "-w", "--stdin-paths"], { cwd: top, input: files.join("\n") + "\n" })).split("\n");
  if (ids.length !== files.length) throw new Error(`hash-object answered ${ids.length} ids for ${files.length} files`);
  return new Map(files.map((f, i) => [f, ids[i]!]));
}

/**
 * The entries of each of `dirs` (from the top; "" first) in `base`, read with one `git cat-file`, and the
 * id of `base`'s own tree; a directory missing from `base` has none. Undefined when one of them is not a
 * tree there (a file or submodule).
 */
async function readTrees(git: Git, top: string, base: string, dirs: string[]): Promise<{ trees: Map<string, Map<string, Entry>>; root: string } | undefined> {
  const input = dirs.map((d) => (d === "" ? `${base}^{tree}` : `${base}:${d}`)).join("\n") + "\n";
  const out = await git.run(["cat-file", "--batch"], { cwd: top, input, encoding: "latin1" });
  const trees = new Map<string, Map<string, Entry>>();
  let root = "";
  let at = 0;
  for (const dir of dirs) {
    const eol = out.indexOf("\n", at);
    const header = (eol < 0 ? out.slice(at) : out.slice(at, eol)).split(" ");
    at = eol + 1;
    if (header.at(-1) === "missing") continue;
    const [oid = "", type, sizeText] = header;
    if (type !== "tree") return undefined;
    if (dir === "") root = oid;
    const size = Number(sizeText);
    const entries = parseTree(Buffer.from(out.slice(at, at + size), "latin1"), oid.length / 2);
    if (!entries) return undefined;
    trees.set(dir, entries);
    at += size + 1; // the object, then a newline
  }
  return root ? { trees, root } : undefined;
}

/** A raw tree object's entries: "<mode> <name>\0<id as bytes>" each. Undefined when a name is not UTF-8 (it could not be written back as it is). */
function parseTree(raw: Buffer, idBytes: number): Map<string, Entry> | undefined {
  const entries = new Map<string, Entry>();
  let at = 0;
  while (at < raw.length) {
    const space = raw.indexOf(0x20, at);
    const nul = raw.indexOf(0, space);
    const mode = raw.subarray(at, space).toString("latin1");
    const nameBytes = raw.subarray(space + 1, nul);
    const name = nameBytes.toString("utf8");
    if (!Buffer.from(name, "utf8").equals(nameBytes)) return undefined;
    entries.set(name, { mode, oid: raw.subarray(nul + 1, nul + 1 + idBytes).toString("hex") });
    at = nul + 1 + idBytes;
  }
  return entries;
}

/** The id git gives a tree of these entries: its object, entries in git's order, hashed with its header. */
function treeObjectId(entries: Map<string, Entry>, algorithm: "sha1" | "sha256"): string {
  const sorted = [...entries].sort(([a, ea], [b, eb]) => compareTreeNames(a, ea.mode, b, eb.mode));
  const body = Buffer.concat(sorted.flatMap(([name, e]) => [Buffer.from(`${e.mode} ${name}\0`, "utf8"), Buffer.from(e.oid, "hex")]));
  return createHash(algorithm).update(`tree ${body.length}\0`).update(body).digest("hex");
}

/** git's order of tree entries: by bytes, a directory's name as if it ended with "/". */
function compareTreeNames(a: string, modeA: string, b: string, modeB: string): number {
  const ka = Buffer.from(modeA === TREE_MODE ? `${a}/` : a, "utf8");
  const kb = Buffer.from(modeB === TREE_MODE ? `${b}/` : b, "utf8");
  return Buffer.compare(ka, kb);
}
