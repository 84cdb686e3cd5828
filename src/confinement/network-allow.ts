import net from "node:net";

/**
 * `sandbox.network.allow`: the hosts a confined command may reach through coding-mcp's proxy
 * (./network-proxy.ts). Entries are "host", "host:port", "*.example.com" (its subdomains, not
 * itself), "[::1]:8080". Requests are matched after the same normalization a URL gets (case,
 * a trailing dot, IDN, "127.1" or "2130706433" as 127.0.0.1), so the name checked is the name
 * connected to. An IP literal is reached only when that literal is listed; this machine's own
 * addresses (loopback, unspecified, link-local) only through an entry that names them with a port.
 */

export interface AllowEntry {
  /** As written in the config. */
  text: string;
  /** Normalized: lowercase, no trailing dot, punycode; an IPv6 literal without brackets. */
  host: string;
  /** "*.host": any subdomain of host (not host itself). */
  wildcard: boolean;
  /** Undefined: any port. */
  port?: number;
  /** The entry names this machine ("localhost", 127.0.0.1, ::1, 0.0.0.0, link-local): the only way to reach it. */
  local: boolean;
}

const ENTRY = /^(\*\.)?(\[[0-9A-Fa-f:.]+\]|[^:[\]/\\@?#%*\s]+)(?::(\d{1,5}))?$/;

/** One entry, or an Error that says what is wrong with it and what to write instead. */
export function parseAllowEntry(text: string): AllowEntry {
  const bad = (why: string) => new Error(`sandbox.network.allow: ${JSON.stringify(text)} ${why}`);
  if (text.includes("://")) return raise(bad(`is a URL; give the host only ("example.com", "example.com:443")`));
  const match = ENTRY.exec(text.trim());
  if (!match) return raise(bad(`is not a host, host:port or *.domain (e.g. "registry.npmjs.org", "example.com:8080", "*.example.com", "127.0.0.1:3000")`));
  const wildcard = Boolean(match[1]);
  const host = normalizeHost(match[2]!);
  if (!host) return raise(bad("is not a valid host name"));
  const port = match[3] === undefined ? undefined : Number(match[3]);
  if (port !== undefined && (port < 1 || port > 65535)) return raise(bad("has a port outside 1-65535"));
  if (wildcard && net.isIP(host)) return raise(bad("puts a wildcard before an IP address; list the address itself"));
  const local = !wildcard && (host === "localhost" || host.endsWith(".localhost") || (net.isIP(host) !== 0 && isLocalAddress(host)));
  if (local && port === undefined) {
    return raise(bad(`reaches this machine's own services; name the one port to allow ("${net.isIPv6(host) ? `[${host}]` : host}:PORT")`));
  }
  return { text, host, wildcard, ...(port !== undefined ? { port } : {}), local };
}

export function parseAllowList(list: readonly string[]): AllowEntry[] {
  return list.map(parseAllowEntry);
}

/**
 * A host as a URL parser reads it (what a client that parses URLs would connect to): lowercase,
 * punycode, numeric IPv4 forms made dotted, no trailing dot, IPv6 without brackets. Undefined when
 * it is not a host.
 */
export function normalizeHost(host: string): string | undefined {
  let hostname: string;
  try {
    const url = new URL(`http://${host}/`);
    if (url.username || url.password || url.port || url.pathname !== "/" || url.search || url.hash) return undefined;
    hostname = url.hostname;
  } catch {
    return undefined;
  }
  if (hostname.startsWith("[")) return hostname.slice(1, -1);
  hostname = hostname.replace(/\.$/, "");
  return hostname === "" ? undefined : hostname;
}

/** The first entry that allows host (normalized) on port, if any. IP literals match only listed literals. */
export function allowedBy(entries: readonly AllowEntry[], host: string, port: number): AllowEntry | undefined {
  const literal = net.isIP(host) !== 0;
  return entries.find((e) => {
    if (e.port !== undefined && e.port !== port) return false;
    // Both sides are normalized (./normalizeHost), so an IPv6 literal has one spelling.
    return e.wildcard ? !literal && host.endsWith(`.${e.host}`) : host === e.host;
  });
}

const LOCAL = new net.BlockList();
LOCAL.addSubnet("127.0.0.0", 8, "ipv4"); // loopback
LOCAL.addSubnet("0.0.0.0", 8, "ipv4"); // "this host": connecting to 0.0.0.0 reaches loopback
LOCAL.addSubnet("169.254.0.0", 16, "ipv4"); // link-local (cloud metadata services)
LOCAL.addAddress("::1", "ipv6");
LOCAL.addAddress("::", "ipv6");
LOCAL.addSubnet("fe80::", 10, "ipv6");

/** An address of this machine or its link: loopback, unspecified, link-local (IPv4-mapped forms too). */
export function isLocalAddress(address: string): boolean {
  const family = net.isIP(address);
  if (family === 4) return LOCAL.check(address, "ipv4");
  if (family === 6) return LOCAL.check(address, "ipv6");
  return false;
}

function raise(err: Error): never {
  throw err;
}
