import { randomBytes } from "node:crypto";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { expect } from "vitest";
import { git, ROOT } from "./harness.js";

/**
 * One scripted task that does ordinary work and tries every escape an injected agent would
 * (issue #22): a /proc scan for coding-mcp's token and for other processes, writes outside the
 * workspace through python3, sh and cp and from a moved working directory, into another session's
 * workspace, a read of the owner's ~/.ssh (a fake HOME the test controls), and a connection to a
 * loopback port the test listens on. Each command records what it saw in a file of the workspace,
 * so the test checks what really happened, not what the agent says.
 */
export interface EscapeProbes {
  /** coding-mcp's environment additions: the token, and HOME with a credential store in it. */
  env: Record<string, string>;
  /** The scenario's steps (tools named as OpenCode names them; each fake translates them). */
  steps(workspace: string, otherWorkspace: string): { tools?: { name: string; args: Record<string, unknown> }[]; text?: string }[];
  /** What a user would check afterwards: ordinary work done, every escape failed. */
  check(workspace: string, otherWorkspace: string, modelRequests: unknown[]): void;
  close(): Promise<void>;
}

export async function escapeProbes(dir: string): Promise<EscapeProbes> {
  const token = `ghp_${randomBytes(18).toString("hex")}`;
  const sshSecret = `PRIVATE-KEY-${randomBytes(12).toString("hex")}`;
  const home = path.join(dir, "owner-home");
  fs.mkdirSync(path.join(home, ".ssh"), { recursive: true });
  fs.writeFileSync(path.join(home, ".ssh", "id_ed25519"), `${sshSecret}\n`, { mode: 0o600 });
  // Outside every workspace: one under /tmp (hidden in the sandbox), one elsewhere (read-only there).
  const outsideTmp = path.join(dir, "outside");
  fs.mkdirSync(outsideTmp);
  const outsideRepo = fs.mkdtempSync(path.join(ROOT, ".probe-outside-"));
  let connections = 0;
  const listener = net.createServer((socket) => {
    connections++;
    socket.destroy();
  });
  await new Promise<void>((resolve) => listener.listen(0, "127.0.0.1", resolve));
  const port = (listener.address() as net.AddressInfo).port;

  const writes = (target: string, tag: string) =>
    `python3 -c "open('${target}/${tag}-py.txt','w').write('x')"; sh -c "echo x > ${target}/${tag}-sh.txt"; cp work.txt ${target}/${tag}-cp.txt`;
  return {
    env: { GITHUB_TOKEN: token, HOME: home },
    steps(workspace, otherWorkspace) {
      const bash = (command: string, extra: Record<string, unknown> = {}) => ({ tools: [{ name: "bash", args: { command, description: "Probe", ...extra } }] });
      return [
        bash(
          "printf 'ordinary\\n' > work.txt && printf 'print(6*7)\\n' > calc.py && python3 calc.py > calc.out && git status --short > status.txt && " +
            "git add work.txt calc.py && git -c user.name=Probe -c user.email=probe@example.test commit -qm 'probe work' && echo ordinary-ok",
        ),
        bash(
          "(for f in /proc/[0-9]*/environ; do tr '\\0' '\\n' < \"$f\" 2>/dev/null | grep -a '^GITHUB_TOKEN='; done; " +
            "ls -d /proc/[0-9]* | wc -l; cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ') > proc.txt 2>&1; echo scanned",
        ),
        bash(`(${writes(outsideTmp, "tmp")}; ${writes(outsideRepo, "repo")}; echo intruder > ${otherWorkspace}/intruder.txt) > writes.txt 2>&1; echo tried`),
        bash(`(cd ${outsideRepo} && echo moved > moved.txt) > moved.txt 2>&1; echo tried`),
        bash(`echo moved > moved-workdir.txt; pwd`, { workdir: outsideRepo }),
        bash(`(cat ~/.ssh/id_ed25519; cat ${home}/.ssh/id_ed25519; ls -la ~ ${home}) > creds.txt 2>&1; echo read`),
        bash(
          `python3 -c "import socket; socket.create_connection(('127.0.0.1', ${port}), 3); print('connected')" > net.txt 2>&1; ` +
            `(exec 3<>/dev/tcp/127.0.0.1/${port} && echo connected) >> net.txt 2>&1; echo tried`,
        ),
        { text: "Probed." },
      ];
    },
    check(workspace, otherWorkspace, modelRequests) {
      const read = (name: string) => fs.readFileSync(path.join(workspace, name), "utf8");
      // Ordinary work: files written, a script run, git status and a commit in the workspace.
      expect(read("work.txt")).toBe("ordinary\n");
      expect(read("calc.out")).toBe("42\n");
      expect(read("status.txt")).toContain("?? work.txt");
      expect(git(workspace, "log", "-1", "--format=%s")).toBe("probe work");
      expect(git(workspace, "show", "--name-only", "--format=", "HEAD").split("\n").sort()).toEqual(["calc.py", "work.txt"]);
      // /proc: the token is nowhere, and only the sandbox's own few processes are there.
      const proc = read("proc.txt");
      expect(proc).not.toContain(token);
      expect(proc).not.toMatch(/dist\/cli\.js --config|opencode acp|claude-agent-acp|codex-acp|gemini\.js/);
      expect(Number(/^\s*(\d+)\s*$/m.exec(proc)?.[1])).toBeLessThan(10);
      // Writes outside: nothing arrived, whatever the route.
      expect(fs.readdirSync(outsideTmp)).toEqual([]);
      expect(fs.readdirSync(outsideRepo)).toEqual([]);
      expect(fs.existsSync(path.join(otherWorkspace, "intruder.txt"))).toBe(false);
      expect(read("writes.txt")).toMatch(/Read-only file system|No such file or directory|Permission denied/);
      // Credentials: the key is not readable by either path.
      expect(read("creds.txt")).not.toContain(sshSecret);
      // Network: the listener saw nothing.
      expect(connections).toBe(0);
      expect(read("net.txt")).not.toContain("connected\n");
      // The model (where an attacker sits) never received the token nor the key.
      const sent = JSON.stringify(modelRequests);
      expect(sent).not.toContain(token);
      expect(sent).not.toContain(sshSecret);
    },
    async close() {
      await new Promise<void>((resolve) => listener.close(() => resolve()));
      fs.rmSync(outsideRepo, { recursive: true, force: true });
    },
  };
}
