import net from "node:net";

/** localhost, ::1 or 127.x.x.x (brackets allowed): addresses only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, "$1");
  return h === "localhost" || h === "::1" || (net.isIPv4(h) && h.startsWith("127."));
}
