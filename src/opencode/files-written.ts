import path from "node:path";
import type { OpencodeMessage } from "./client.js";

// What the agent's own events say it wrote, where they say it all: a turn whose every tool is one that
// writes no file, or that writes exactly the file its input names. A command, a subagent, a patch, a
// tool of an MCP server or any tool not known here could write anything, and the answer is then
// "unknown": the working tree is read instead.

/** OpenCode 1.18's tools that write no file in the workspace. */
const WRITES_NOTHING = new Set(["read", "glob", "grep", "list", "todowrite", "todoread", "webfetch", "websearch", "codesearch", "question", "skill", "invalid"]);
/** Its tools that write the one file named by `filePath`, and nothing else. */
const WRITES_FILE_PATH = new Set(["write", "edit"]);

/**
 * The files (absolute paths, in coding-mcp's view) the turn's tools wrote, when that is all they could
 * have written; undefined when a tool could have written others, or one had not ended.
 * `directory`: the session's directory, which a relative `filePath` is relative to.
 */
export function filesWrittenByTurn(turn: OpencodeMessage[], directory: string, mapPath: (p: string) => string): string[] | undefined {
  const files = new Set<string>();
  for (const message of turn) {
    for (const part of message.parts) {
      if (part.type !== "tool") continue;
      const tool = part.tool ?? "";
      // Still running when the turn was read: what it does next is not in these events.
      if (part.state?.status !== "completed" && part.state?.status !== "error") return undefined;
      if (WRITES_NOTHING.has(tool)) continue;
      const file = part.state.input?.filePath;
      if (!WRITES_FILE_PATH.has(tool) || typeof file !== "string" || !file) return undefined;
      // A failed call may have written part of its file: named all the same.
      files.add(path.resolve(directory, mapPath(file)));
    }
  }
  return [...files];
}
