import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { git, startHarness, structured, type Harness } from "./support/harness.js";

// What coding-mcp's own git costs per operation, end to end (the built coding-mcp over stdio, the real
// OpenCode, the scripted model, real git), read from its debug log the way a user would profile it:
// which git commands each call ran. Reading the whole working tree (`git status`) is the cost that
// grows with the repository: a task whose tools only wrote files needs none, a task that ran a
// command one; between tasks, diff, commit and close of a worktree coding-mcp made need none while
// nothing changed there (an edit by hand is seen); and nothing stages into a copy of the index. Each
// answer is checked against git itself.

let h: Harness;
let repo: string;
let sessionId: string;
let worktree: string;

beforeAll(async () => {
  h = await startHarness();
  repo = path.join(fs.realpathSync(h.allowedRoot), "big");
  fs.mkdirSync(repo);
  git(repo, "init", "-q", "-b", "main");
  git(repo, "config", "user.name", "Owner");
  git(repo, "config", "user.email", "owner@example.test");
  fs.writeFileSync(path.join(repo, ".gitignore"), "*.log\n");
  for (let i = 0; i < 40; i++) {
    fs.mkdirSync(path.join(repo, "src", `d${i % 4}`), { recursive: true });
    fs.writeFileSync(path.join(repo, "src", `d${i % 4}`, `f${i}.txt`), `file ${i}\n`);
  }
  fs.writeFileSync(path.join(repo, "old.txt"), "to be removed by a command\n");
  git(repo, "add", "-A");
  git(repo, "commit", "-q", "-m", "base");
}, 60_000);

afterAll(async () => {
  await h?.close();
});

/** The git commands coding-mcp ran during `fn`, from its debug log ("git <args> -> <exit> in <n> ms"). */
async function gitRunDuring<T>(fn: () => Promise<T>): Promise<{ result: T; commands: string[] }> {
  const mark = h.stderr.length;
  const result = await fn();
  await new Promise((r) => setTimeout(r, 50)); // the call's last log lines
  const commands = h.stderr
    .slice(mark)
    .map((line) => / git (.*) -> \S+ in \d+ ms$/.exec(line)?.[1])
    .filter((c): c is string => c !== undefined);
  return { result, commands };
}

const walks = (commands: string[]) => commands.filter((c) => / status --porcelain/.test(c));
const stagings = (commands: string[]) => commands.filter((c) => /(^| )(add|write-tree|commit)( |$)/.test(c) && !/commit-tree/.test(c));

async function code(task: string) {
  const { result, commands } = await gitRunDuring(async () => structured(await h.call("code", { session_id: sessionId, task })));
  expect(result.success, JSON.stringify(result)).toBe(true);
  return { files: Object.fromEntries(result.files_changed.map((f: { path: string; status: string }) => [f.path, f.status])), commands };
}

describe("git's cost per operation", () => {
  it("opens a worktree session and reads its tree once before the first task", async () => {
    const opened = structured(await h.call("coding_open", { workspace_path: repo, isolation: "worktree" }));
    sessionId = opened.session_id;
    worktree = opened.workspace_path;
    const first = await code("[[fake:files]]\nWRITE notes/first.md: first");
    expect(first.files).toEqual({ "notes/first.md": "added" });
    expect(walks(first.commands)).toHaveLength(1); // the tree before the first task; none after it
  });

  it("a task that only wrote files reads only those files: exact, ignored files left out, no walk", async () => {
    const { files, commands } = await code(
      ["[[fake:files]]", "WRITE src/d1/f1.txt: file 1, edited", "WRITE src/new/deep/made.txt: made", "WRITE debug.log: ignored, as git leaves it out", "WRITE notes/first.md: first, edited"].join("\n"),
    );
    expect(files).toEqual({ "src/d1/f1.txt": "modified", "src/new/deep/made.txt": "added", "notes/first.md": "modified" });
    expect(walks(commands)).toEqual([]);
    expect(stagings(commands)).toEqual([]);
    expect(commands.some((c) => /^check-ignore/.test(c))).toBe(true); // the new files were checked against .gitignore
    // What a person sees with git in the worktree agrees.
    expect(git(worktree, "status", "--porcelain", "--untracked-files=all").split("\n").map((l) => l.trim()).sort()).toEqual(["?? notes/first.md", "?? src/new/deep/made.txt", "M src/d1/f1.txt"].sort());
  });

  it("coding_diff right after a task whose tools only wrote files reads nothing either", async () => {
    const { result, commands } = await gitRunDuring(async () => structured(await h.call("coding_diff", { session_id: sessionId })));
    expect(result.files_changed.map((f: { path: string }) => f.path).sort()).toEqual(["notes/first.md", "src/d1/f1.txt", "src/new/deep/made.txt"]);
    expect(walks(commands)).toEqual([]);
  });

  it("a task that ran a command reads the working tree once, and sees what the command did", async () => {
    const { files, commands } = await code(["[[fake:files]]", "WRITE src/d2/f2.txt: file 2, edited", "RUN: rm old.txt && printf 'by a command\\n' > src/d3/by-command.txt"].join("\n"));
    expect(files).toEqual({ "src/d2/f2.txt": "modified", "old.txt": "deleted", "src/d3/by-command.txt": "added" });
    expect(walks(commands)).toHaveLength(1);
    expect(stagings(commands)).toEqual([]);
  });

  it("coding_diff between tasks reads nothing: the tree read after the last task is the working tree", async () => {
    const { result, commands } = await gitRunDuring(async () => structured(await h.call("coding_diff", { session_id: sessionId })));
    expect(result.files_changed.map((f: { path: string }) => f.path).sort()).toEqual(["notes/first.md", "old.txt", "src/d1/f1.txt", "src/d2/f2.txt", "src/d3/by-command.txt", "src/new/deep/made.txt"]);
    expect(result.diff).toContain("+file 1, edited");
    expect(result.diff).not.toContain("debug.log");
    expect(walks(commands)).toEqual([]);
    expect(stagings(commands)).toEqual([]);
  });

  it("coding_commit commits the whole working tree without reading it again or running git commit, and leaves the index as git commit does", async () => {
    const { result, commands } = await gitRunDuring(async () => structured(await h.call("coding_commit", { session_id: sessionId, message: "Work of the session\n\nwith a body" })));
    expect(result).toMatchObject({ committed: true, files_changed: 6 });
    expect(result.commit_hash).toBe(git(worktree, "rev-parse", "HEAD"));
    expect(walks(commands)).toEqual([]);
    expect(commands.some((c) => / commit-tree /.test(c))).toBe(true);
    expect(commands.some((c) => /(^| )commit( |$)/.test(c))).toBe(false);
    expect(git(worktree, "show", "--name-status", "--format=%B", "HEAD").split("\n").filter(Boolean).sort()).toEqual(
      ["Work of the session", "with a body", "A\tnotes/first.md", "D\told.txt", "M\tsrc/d1/f1.txt", "M\tsrc/d2/f2.txt", "A\tsrc/d3/by-command.txt", "A\tsrc/new/deep/made.txt"].sort(),
    );
    // Nothing staged or changed is left; the ignored file stays ignored.
    expect(git(worktree, "status", "--porcelain", "--untracked-files=all")).toBe("");
    expect(fs.existsSync(path.join(worktree, "debug.log"))).toBe(true);
  });

  it("an edit by hand between tasks is seen: coding_diff reads the tree again and shows it, coding_commit commits it", async () => {
    fs.writeFileSync(path.join(worktree, "by-hand.txt"), "a person's edit in the worktree\n");
    await new Promise((r) => setTimeout(r, 100)); // the change's event reaches coding-mcp
    const diff = await gitRunDuring(async () => structured(await h.call("coding_diff", { session_id: sessionId })));
    expect(walks(diff.commands)).toHaveLength(1);
    expect(diff.result.diff).toContain("+a person's edit in the worktree");
    const commit = structured(await h.call("coding_commit", { session_id: sessionId, message: "By hand" }));
    expect(commit).toMatchObject({ committed: true, files_changed: 1 });
    expect(git(worktree, "show", "--name-only", "--format=", "HEAD")).toBe("by-hand.txt");
  });

  it("coding_close of the worktree reads nothing and leaves no directory, no worktree and, soon, no trash", async () => {
    const { result, commands } = await gitRunDuring(async () => structured(await h.call("coding_close", { session_id: sessionId })));
    expect(result.cleaned_up).toBe(true);
    expect(result.files_changed.map((f: { path: string }) => f.path).sort()).toEqual(["by-hand.txt", "notes/first.md", "old.txt", "src/d1/f1.txt", "src/d2/f2.txt", "src/d3/by-command.txt", "src/new/deep/made.txt"]);
    expect(walks(commands)).toEqual([]);
    expect(fs.existsSync(worktree)).toBe(false);
    expect(git(repo, "worktree", "list", "--porcelain")).not.toContain(worktree);
    const trash = path.join(h.basePath, ".coding-mcp", "trash");
    for (const started = Date.now(); fs.existsSync(trash) && fs.readdirSync(trash).length && Date.now() - started < 30_000; ) await new Promise((r) => setTimeout(r, 50));
    expect(fs.existsSync(trash) ? fs.readdirSync(trash) : []).toEqual([]);
  });
});

describe("a caller's own checkout", () => {
  /** Wait until coding-mcp's log has a `git status` line after index `from`. */
  async function walkLogged(from: number): Promise<number> {
    for (const started = Date.now(); Date.now() - started < 30_000; await new Promise((r) => setTimeout(r, 20))) {
      const at = h.stderr.findIndex((line, i) => i >= from && / status --porcelain/.test(line));
      if (at >= 0) return at;
    }
    throw new Error("no git status within 30 s");
  }

  it("is read for the session's baseline after coding_open has answered, and the owner's work in progress stays out", async () => {
    const mine = path.join(fs.realpathSync(h.allowedRoot), "mine");
    git(h.allowedRoot, "clone", "-q", repo, mine);
    fs.writeFileSync(path.join(mine, "old.txt"), "the owner's work in progress\n");
    const mark = h.stderr.length;
    const id = structured(await h.call("coding_open", { workspace_path: mine })).session_id;
    const answered = h.stderr.findIndex((line, i) => i >= mark && /coding_open answered/.test(line));
    expect(answered).toBeGreaterThanOrEqual(0);
    expect(await walkLogged(mark)).toBeGreaterThan(answered); // the walk came after the answer
    const task = await gitRunDuring(async () => structured(await h.call("code", { session_id: id, task: "[[fake:files]]\nWRITE agent.txt: by the agent" })));
    expect(task.result.files_changed).toEqual([expect.objectContaining({ path: "agent.txt", status: "added" })]);
    expect(walks(task.commands)).toHaveLength(1); // the task's snapshot before it; none after
    const diff = structured(await h.call("coding_diff", { session_id: id }));
    expect(diff.files_changed.map((f: { path: string }) => f.path)).toEqual(["agent.txt"]);
    const commit = structured(await h.call("coding_commit", { session_id: id, message: "The agent's file" }));
    expect(commit).toMatchObject({ committed: true, files_changed: 1, left_out: ["old.txt"] });
    expect(git(mine, "show", "--name-only", "--format=", "HEAD")).toBe("agent.txt");
    expect(fs.readFileSync(path.join(mine, "old.txt"), "utf8")).toBe("the owner's work in progress\n");
    const closed = structured(await h.call("coding_close", { session_id: id }));
    expect(closed.files_changed.map((f: { path: string }) => f.path)).toEqual(["agent.txt"]);
    expect(fs.existsSync(mine)).toBe(true);
  });

  it("a session closed at once waits for its baseline and reports nothing changed", async () => {
    const mine = path.join(fs.realpathSync(h.allowedRoot), "mine");
    const opened = structured(await h.call("coding_open", { workspace_path: mine }));
    const closed = await gitRunDuring(async () => structured(await h.call("coding_close", { session_id: opened.session_id })));
    expect(closed.result.files_changed).toEqual([]);
    expect(walks(closed.commands).length).toBeLessThanOrEqual(2); // the baseline, if not read yet, and the close's read
  });
});
