import path from "node:path";

/**
 * Translates workspace paths between coding-mcp's view and OpenCode's, for an OpenCode that sees
 * the workspaces under another path (a container with a mounted volume). Longest prefix wins.
 */
export class PathMap {
  private readonly pairs: { local: string; remote: string }[];

  constructor(map: Record<string, string>) {
    this.pairs = Object.entries(map)
      .map(([local, remote]) => ({ local: trimSlash(path.resolve(local)), remote: trimSlash(remote) }))
      .sort((a, b) => b.local.length - a.local.length);
  }

  get empty(): boolean {
    return this.pairs.length === 0;
  }

  /** coding-mcp path -> OpenCode path. */
  toBackend(p: string): string {
    return this.translate(p, "local", "remote");
  }

  /** OpenCode path -> coding-mcp path; also rewrites such paths inside free text (tool titles, outputs). */
  fromBackend(text: string): string {
    if (this.empty) return text;
    let out = text;
    for (const pair of [...this.pairs].sort((a, b) => b.remote.length - a.remote.length)) {
      out = out.split(pair.remote + "/").join(pair.local + "/");
      if (out === pair.remote) out = pair.local;
    }
    return out;
  }

  private translate(p: string, from: "local" | "remote", to: "local" | "remote"): string {
    for (const pair of this.pairs) {
      const prefix = pair[from];
      if (p === prefix) return pair[to];
      if (p.startsWith(prefix + "/")) return pair[to] + p.slice(prefix.length);
    }
    return p;
  }
}

function trimSlash(p: string): string {
  return p.length > 1 ? p.replace(/\/+$/, "") : p;
}
