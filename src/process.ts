import { spawn, type ChildProcess, type ChildProcessByStdio, type SpawnOptionsWithStdioTuple, type StdioNull, type StdioPipe } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import type { Readable } from "node:stream";

/**
 * The processes coding-mcp starts (its managed OpenCode, git) run in process groups of their own and
 * must not outlive it, however it ends:
 * - a normal exit kills every group still held (the process-exit hook);
 * - a death without that hook (SIGKILL, the OOM killer, a crashing host) is caught by a watchdog: a
 *   small `sh` that reads a pipe from coding-mcp and, at its end of file (the kernel closes the pipe
 *   when coding-mcp dies), freezes the held groups, kills them and every process descended from them,
 *   also those that left the group (OpenCode runs its agent's commands in sessions of their own).
 */

export function killGroup(pid: number, signal: NodeJS.Signals = "SIGKILL"): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // already gone
  }
}

/** Wait, unless the signal aborts first; true when the full time passed. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const timer = setTimeout(() => resolve(true), ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve(false);
      },
      { once: true },
    );
  });
}

/** A port free on 127.0.0.1 right now (the OS picks it). */
export function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * When the process started, as the kernel counts it (clock ticks since boot, field 22 of
 * /proc/PID/stat): with the pid it names one process for good, so a recycled pid is never mistaken
 * for it. Undefined when the process does not exist or there is no /proc (not Linux).
 */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may hold spaces and parentheses: count from its closing one.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

/**
 * SIGKILL a process, its group and everything descended from it (from /proc, where there is one):
 * for a left-over OpenCode, whose agent's commands run in sessions of their own.
 */
export function killTree(pid: number): void {
  const tree = [pid];
  try {
    const parents = new Map<number, number>();
    for (const name of fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${name}/stat`, "utf8");
        parents.set(Number(name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
      } catch {
        // it ended meanwhile
      }
    }
    for (let i = 0; i < tree.length; i++) {
      for (const [child, parent] of parents) if (parent === tree[i] && !tree.includes(child)) tree.push(child);
    }
  } catch {
    // no /proc: the group is all we can reach
  }
  for (const p of tree) {
    killGroup(p);
    try {
      process.kill(p, "SIGKILL");
    } catch {
      // gone
    }
  }
}

// The watchdog. Lines "+PGID" / "-PGID" on stdin hold and release a group; at end of file it stops
// the held groups (SIGSTOP, so nothing forks meanwhile), adds every process whose parent is already
// on the list (from /proc, where there is one), and SIGKILLs each one and each group it leads.
const WATCHDOG_SCRIPT = `
trap '' INT HUP
groups=" "
while read -r line; do
  case $line in
    +*) groups="$groups\${line#+} " ;;
    -*) n=\${line#-}; case $groups in *" $n "*) groups="\${groups%% $n *} \${groups#* $n }" ;; esac ;;
  esac
done
[ "$groups" = " " ] && exit 0
for g in $groups; do kill -STOP -$g 2>/dev/null; done
known="$groups"
changed=1
while [ $changed = 1 ]; do
  changed=0
  for d in /proc/[0-9]*; do
    p=\${d#/proc/}
    case $known in *" $p "*) continue ;; esac
    read -r stat < $d/stat || continue
    set -- \${stat##*) }
    case $known in *" $2 "*) known="$known$p "; kill -STOP $p; changed=1 ;; esac
  done 2>/dev/null
done
for p in $known; do kill -KILL -$p 2>/dev/null; kill -KILL $p 2>/dev/null; done
`;

const held = new Set<number>();
let watchdog: ChildProcess | undefined;
let exitHookInstalled = false;

function tellWatchdog(line: string): void {
  if (process.platform === "win32") return;
  if (!watchdog || watchdog.exitCode !== null || watchdog.signalCode !== null || !watchdog.stdin?.writable) {
    try {
      watchdog = spawn("/bin/sh", ["-c", WATCHDOG_SCRIPT, "coding-mcp-watchdog"], {
        // Its own group: a terminal's Ctrl-C or a group kill aimed at coding-mcp does not take it along.
        detached: true,
        stdio: ["pipe", "ignore", "ignore"],
      });
    } catch {
      watchdog = undefined;
      return; // no sh: only the exit hook protects
    }
    watchdog.on("error", () => undefined);
    watchdog.stdin!.on("error", () => undefined);
    watchdog.unref();
    (watchdog.stdin as unknown as { unref?: () => void }).unref?.();
    // A watchdog started anew must hold what is held already.
    for (const pid of held) if (`+${pid}` !== line) watchdog.stdin!.write(`+${pid}\n`);
  }
  watchdog.stdin!.write(`${line}\n`);
}

/** The pid of the watchdog, once one runs (for tests). */
export function watchdogPid(): number | undefined {
  return watchdog?.pid;
}

/** Hold a process group (its leader's pid): killed when coding-mcp exits or dies, until released. */
export function holdGroup(pid: number): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const g of held) killGroup(g);
    });
  }
  held.add(pid);
  tellWatchdog(`+${pid}`);
}

/** The group ended (or was stopped on purpose): no longer ours to kill. */
export function releaseGroup(pid: number): void {
  if (!held.delete(pid)) return;
  tellWatchdog(`-${pid}`);
}

/**
 * Spawn a child that cannot outlive coding-mcp: in a process group of its own (stopped as a whole),
 * held until it exits; killGroup() stops it with everything it started in the group. Its output is
 * piped (a server's log), its input closed.
 */
export function spawnBound(
  command: string,
  args: string[],
  options: Omit<SpawnOptionsWithStdioTuple<StdioNull, StdioPipe, StdioPipe>, "detached">,
): ChildProcessByStdio<null, Readable, Readable> {
  const child = spawn(command, args, { ...options, detached: true });
  const pid = child.pid;
  if (pid !== undefined) {
    holdGroup(pid);
    child.once("exit", () => {
      // What it left in its group (plugins, language servers) goes with it, even after a crash.
      killGroup(pid);
      releaseGroup(pid);
    });
  }
  return child;
}
