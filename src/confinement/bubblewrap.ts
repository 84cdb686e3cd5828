import fs from "node:fs";
import { SANDBOX_PROXY_DIR } from "./network-proxy.js";
import type { SandboxPolicy } from "./policy.js";

/**
 * A policy as bubblewrap arguments (Linux). What each flag is for, measured in
 * ../shared/reference/sandboxing.md: new user, pid, ipc, uts, cgroup and network namespaces (it sees
 * no other process and has only its own loopback), no capabilities and no nested user namespaces
 * (a root caller could otherwise unmount what hides the credentials), the whole system read-only,
 * /tmp /run and $HOME replaced, then the session's own places bound writable. Binds apply in order.
 */

export function bubblewrapArgs(policy: SandboxPolicy): string[] {
  const args = [
    "--die-with-parent",
    "--new-session",
    "--unshare-user",
    "--disable-userns",
    "--cap-drop",
    "ALL",
    "--unshare-pid",
    "--unshare-ipc",
    "--unshare-uts",
    "--unshare-cgroup-try",
    "--unshare-net",
    "--ro-bind",
    "/",
    "/",
    "--dev",
    "/dev",
    "--proc",
    "/proc",
    // Host sockets (an ssh agent, docker, dbus) stay connectable through a read-only bind: hide them (/var/run links here).
    "--tmpfs",
    "/run",
    "--bind",
    policy.tmpDir,
    "/tmp",
    "--bind",
    policy.tmpDir,
    "/var/tmp",
    // The whole home goes; what the PATH needs from it (and from the host's /tmp) comes back read-only.
    "--tmpfs",
    policy.home,
  ];
  for (const dir of policy.showAgain) args.push("--ro-bind-try", dir, dir);
  for (const hidden of policy.hide) args.push(...hideArgs(hidden));
  for (const dir of policy.writable) args.push("--bind-try", dir, dir);
  for (const file of policy.readOnly) args.push("--ro-bind-try", file, file);
  // Last, after the state dir is hidden: only the proxy's socket directory comes back (a socket connects through a read-only bind).
  if (policy.proxySocketDir) args.push("--ro-bind", policy.proxySocketDir, SANDBOX_PROXY_DIR);
  return args;
}

/** An existing directory becomes an empty tmpfs, an existing file reads as empty; a missing one needs nothing. */
function hideArgs(p: string): string[] {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(p);
  } catch {
    return [];
  }
  if (stat.isDirectory()) return ["--tmpfs", p];
  return ["--ro-bind", "/dev/null", p];
}
