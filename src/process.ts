import { spawn, type ChildProcess, type SpawnOptions } from "node:child_process";
import fs from "node:fs";
import net from "node:net";

/**
 * The processes coding-mcp starts (its managed OpenCode, ACP agents, git) run in process groups of their own and
 * must not outlive it, however it ends:
 * - a normal exit kills every group still held (the process-exit hook);
 * - a death without that hook (SIGKILL, the OOM killer, a crashing host) is caught by a watchdog: a
 *   small `sh` that reads a pipe from coding-mcp and, at its end of file (the kernel closes the pipe
 *   when coding-mcp dies), freezes the held groups, kills them and every process descended from them,
 *   also those that left the group (agents run their commands in sessions of their own).
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

/** `promise`, or a rejection with `failure` (a message, or the error to throw) after `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, failure: string | (() => Error)): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(typeof failure === "string" ? new Error(failure) : failure()), ms);
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

/** Every process descended from `root`, nearest first (from /proc; none where there is no /proc). */
export function descendants(root: number): number[] {
  const children = new Map<number, number[]>();
  try {
    for (const name of fs.readdirSync("/proc")) {
      if (!/^\d+$/.test(name)) continue;
      try {
        const stat = fs.readFileSync(`/proc/${name}/stat`, "utf8");
        // The command name may hold spaces and parentheses: the fields after the last ")" are fixed.
        const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        const siblings = children.get(parent);
        if (siblings) siblings.push(Number(name));
        else children.set(parent, [Number(name)]);
      } catch {
        // it ended meanwhile
      }
    }
  } catch {
    return [];
  }
  const out: number[] = [];
  for (let queue = [...(children.get(root) ?? [])]; queue.length; ) {
    const pid = queue.shift()!;
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

/**
 * Signal a process, its group and everything descended from it, each with its own group: agents run
 * their commands in sessions of their own, which a group kill does not reach.
 */
export function killTree(pid: number, signal: NodeJS.Signals = "SIGKILL"): void {
  for (const p of [pid, ...descendants(pid)]) {
    killGroup(p, signal);
    try {
      process.kill(p, signal);
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
    // A watchdog started anew must hold what it was told of already.
    for (const pid of told) if (`+${pid}` !== line) watchdog.stdin!.write(`+${pid}\n`);
  }
  watchdog.stdin!.write(`${line}\n`);
}

/** The pid of the watchdog, once one runs (for tests). */
export function watchdogPid(): number | undefined {
  return watchdog?.pid;
}

/** Groups the watchdog was told of, and the timers of those it will be told of if they run on. */
const told = new Set<number>();
const tellLater = new Map<number, NodeJS.Timeout>();
/** How long a brief command runs before the watchdog hears of it. */
const BRIEF_MS = 200;

/**
 * Hold a process group (its leader's pid): killed when coding-mcp exits or dies, until released.
 * `brief`: a local command that ends on its own within moments (git reading the workspace). The
 * watchdog hears of it only once it has run for BRIEF_MS: most end sooner, which spares two writes to
 * the watchdog and two wake-ups of it per command (they showed in the benchmark's profile). Killed
 * with SIGKILL sooner than that, coding-mcp leaves such a command to finish its moment of work.
 */
export function holdGroup(pid: number, o: { brief?: boolean } = {}): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once("exit", () => {
      for (const g of held) killGroup(g);
    });
  }
  held.add(pid);
  const tell = () => {
    tellLater.delete(pid);
    told.add(pid);
    tellWatchdog(`+${pid}`);
  };
  if (o.brief) tellLater.set(pid, setTimeout(tell, BRIEF_MS).unref());
  else tell();
}

/** The group ended (or was stopped on purpose): no longer ours to kill. */
export function releaseGroup(pid: number): void {
  if (!held.delete(pid)) return;
  clearTimeout(tellLater.get(pid));
  tellLater.delete(pid);
  if (told.delete(pid)) tellWatchdog(`-${pid}`);
}

/**
 * Spawn a child that cannot outlive coding-mcp: in a process group of its own (stopped as a whole),
 * held until it exits; then what it left in its group goes with it, even after a crash. `brief`: see
 * holdGroup.
 */
export function spawnBound(command: string, args: string[], options: Omit<SpawnOptions, "detached">, o: { brief?: boolean } = {}): ChildProcess {
  const child = spawn(command, args, { ...options, detached: true });
  const pid = child.pid;
  if (pid !== undefined) {
    holdGroup(pid, o);
    child.once("exit", () => {
      killGroup(pid);
      releaseGroup(pid);
    });
  }
  return child;
}

export interface BoundRunOptions {
  cwd: string;
  /** Added to (or, where undefined, removed from) coding-mcp's own environment. */
  env?: Record<string, string | undefined>;
  /** Written to its stdin; without it stdin is closed. */
  input?: string;
  /** Its group is killed after this long; the result then says `timedOut`. */
  timeoutMs?: number;
  /** Its group is killed once stdout passes this many bytes; the result then says `truncated` and holds that much. */
  maxOutputBytes?: number;
  /** A local command that ends on its own within moments (see holdGroup). */
  brief?: boolean;
  /** How stdout is decoded: latin1 keeps one character per byte, for binary output (git's raw tree objects). */
  encoding?: "utf8" | "latin1";
}

export interface BoundRunResult {
  /** Without the final newline. */
  stdout: string;
  stderr: string;
  /** Undefined when it could not start (`startError`) or ended by a signal. */
  exitCode?: number;
  /** Why it could not start (the errno code, e.g. ENOENT). */
  startError?: string;
  timedOut: boolean;
  truncated: boolean;
}

/** What is kept of a command's stderr: its end, where the error is. */
const STDERR_KEPT_BYTES = 64 * 1024;

/**
 * Run a short command (git) to its end with spawnBound, and collect its output. No wrapper library: a
 * command runs several times per task, and a wrapper's per-call work (environment copies, stream
 * plumbing) showed in the benchmark's profile.
 */
export function runBound(command: string, args: string[], o: BoundRunOptions): Promise<BoundRunResult> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const [key, value] of Object.entries(o.env ?? {})) {
    if (value === undefined) delete env[key];
    else env[key] = value;
  }
  return new Promise((resolve) => {
    const stdout: Buffer[] = [];
    const stderr: Buffer[] = [];
    let [stdoutBytes, stderrBytes] = [0, 0];
    let [timedOut, truncated, settled] = [false, false, false];
    let startError: string | undefined;
    let timer: NodeJS.Timeout | undefined;
    const child = spawnBound(command, args, { cwd: o.cwd, env, stdio: [o.input === undefined ? "ignore" : "pipe", "pipe", "pipe"] }, { brief: o.brief === true });
    const pid = child.pid;
    const done = (exitCode: number | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      let out = Buffer.concat(stdout);
      if (truncated && o.maxOutputBytes !== undefined) out = out.subarray(0, o.maxOutputBytes);
      resolve({
        stdout: withoutFinalNewline(out.toString(o.encoding ?? "utf8")),
        stderr: withoutFinalNewline(Buffer.concat(stderr).toString("utf8")),
        ...(exitCode !== null && startError === undefined ? { exitCode } : {}),
        ...(startError !== undefined ? { startError } : {}),
        timedOut,
        truncated,
      });
    };
    child.on("error", (err: NodeJS.ErrnoException) => {
      startError ??= err.code ?? err.message;
      if (pid === undefined) done(null); // it never ran: no close follows for sure
    });
    child.on("close", (code) => done(code));
    if (pid !== undefined && o.timeoutMs !== undefined) {
      timer = setTimeout(() => {
        timedOut = true;
        killGroup(pid);
      }, o.timeoutMs);
    }
    child.stdout!.on("data", (chunk: Buffer) => {
      if (truncated) return;
      stdout.push(chunk);
      stdoutBytes += chunk.length;
      if (o.maxOutputBytes !== undefined && stdoutBytes > o.maxOutputBytes && pid !== undefined) {
        truncated = true;
        killGroup(pid);
      }
    });
    child.stderr!.on("data", (chunk: Buffer) => {
      stderr.push(chunk);
      stderrBytes += chunk.length;
      while (stderrBytes > STDERR_KEPT_BYTES && stderr.length > 1) stderrBytes -= stderr.shift()!.length;
    });
    if (o.input !== undefined) {
      child.stdin!.on("error", () => undefined); // it may exit without reading it
      child.stdin!.end(o.input);
    }
  });
}

function withoutFinalNewline(text: string): string {
  return text.endsWith("\r\n") ? text.slice(0, -2) : text.endsWith("\n") ? text.slice(0, -1) : text;
}
