/**
 * A unified diff as git writes it (coding_diff), split into files for reading: each file's path,
 * what happened to it, its lines marked as added, deleted, context or hunk header, and whether git
 * only named it (binary). Nothing here renders; render.ts does, as text.
 */

export type LineKind = "add" | "del" | "ctx" | "hunk" | "meta";

export interface DiffLine {
  kind: LineKind;
  text: string;
}

export interface DiffFile {
  path: string;
  /** The old path of a rename. */
  from?: string;
  status: "added" | "deleted" | "modified" | "renamed";
  binary: boolean;
  additions: number;
  deletions: number;
  lines: DiffLine[];
}

/** `a/P b/P` of a `diff --git` line: P when both sides are the same path (spaces and all). */
function samePath(rest: string): string | undefined {
  if ((rest.length - 1) % 2 !== 0) return undefined;
  const half = (rest.length - 1) / 2;
  const left = rest.slice(0, half);
  const right = rest.slice(half + 1);
  return left.startsWith("a/") && right.startsWith("b/") && left.slice(2) === right.slice(2) ? left.slice(2) : undefined;
}

export function parseUnifiedDiff(diff: string): DiffFile[] {
  const files: DiffFile[] = [];
  let file: DiffFile | undefined;
  let inHunk = false;
  for (const line of diff.split("\n")) {
    if (line.startsWith("diff --git ")) {
      file = { path: samePath(line.slice("diff --git ".length)) ?? line.slice("diff --git ".length), status: "modified", binary: false, additions: 0, deletions: 0, lines: [] };
      files.push(file);
      inHunk = false;
      continue;
    }
    if (!file) continue;
    if (line.startsWith("@@")) {
      inHunk = true;
      file.lines.push({ kind: "hunk", text: line });
    } else if (inHunk && line.startsWith("+")) {
      file.additions++;
      file.lines.push({ kind: "add", text: line });
    } else if (inHunk && line.startsWith("-")) {
      file.deletions++;
      file.lines.push({ kind: "del", text: line });
    } else if (inHunk && (line.startsWith(" ") || line.startsWith("\\"))) {
      file.lines.push({ kind: "ctx", text: line });
    } else if (!inHunk) {
      if (line.startsWith("new file mode")) file.status = "added";
      else if (line.startsWith("deleted file mode")) file.status = "deleted";
      else if (line.startsWith("rename from ")) {
        file.status = "renamed";
        file.from = line.slice("rename from ".length);
      } else if (line.startsWith("rename to ")) file.path = line.slice("rename to ".length);
      else if (line.startsWith("Binary files ") || line === "GIT binary patch") file.binary = true;
    }
  }
  return files;
}
