import net from "node:net";

/**
 * Which Host and Origin headers the HTTP server answers (DNS rebinding): pure, so every rule is
 * tested fast (test/unit/http-guard.test.ts). The server's own addresses on its port are always
 * allowed; `http.allowed_hosts` and `http.allowed_origins` add more.
 */

export interface HostGuardOptions {
  /** The address the server is bound to, IPv6 without brackets. */
  bindHost: string;
  /** The port it listens on (known after listen). */
  port: number;
  /** Extra Host values: "name" (any port), "name:port", or "*". */
  allowedHosts: string[];
  /** Extra Origins (exact), or "*". */
  allowedOrigins: string[];
  /** The machine's interface addresses and name, used when bound to every interface. */
  machine: { addresses: string[]; hostname: string };
}

export interface HostGuard {
  /** The Host header names this server (absent is refused). */
  hostAllowed(header: string | undefined): boolean;
  /** An Origin is fine when listed, or the origin of an allowed host; "null" and other schemes are not. */
  originAllowed(origin: string): boolean;
  /** `http.allowed_hosts` entries that are not a host, so the server can warn about them. */
  ignored: string[];
}

const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]"];
const WILDCARD_HOSTS = new Set(["0.0.0.0", "::"]);

/** "name", "name:port", "[v6]:port" or a bare IPv6 address -> lower-case name (IPv6 bracketed) and optional port. */
export function parseHostPort(value: string): { name: string; port?: string } | undefined {
  const v = value.trim().toLowerCase();
  if (net.isIPv6(v)) return { name: `[${v}]` };
  const m = /^(\[[0-9a-f:.]+\]|[^\s:[\]/\\@?#]+)(?::(\d{1,5}))?$/.exec(v);
  if (!m?.[1]) return undefined;
  return m[2] ? { name: m[1], port: m[2] } : { name: m[1] };
}

/** An address as it appears in a URL or Host header (IPv6 bracketed). */
export function formatHost(host: string): string {
  return net.isIPv6(host) ? `[${host}]` : host;
}

export function createHostGuard(options: HostGuardOptions): HostGuard {
  const patterns: { name: string; port?: string }[] = [];
  const ignored: string[] = [];
  let anyHost = false;
  const own = [...LOOPBACK_NAMES];
  if (WILDCARD_HOSTS.has(options.bindHost)) {
    // Bound to every interface: clients may use any of its addresses or the machine's name.
    own.push(...options.machine.addresses.map(formatHost), options.machine.hostname);
  } else {
    own.push(formatHost(options.bindHost));
  }
  for (const name of own) {
    const parsed = parseHostPort(name);
    if (parsed) patterns.push({ name: parsed.name, port: String(options.port) });
  }
  for (const entry of options.allowedHosts) {
    const parsed = entry === "*" ? undefined : parseHostPort(entry);
    if (entry === "*") anyHost = true;
    else if (parsed) patterns.push(parsed);
    else ignored.push(entry);
  }
  const anyOrigin = options.allowedOrigins.includes("*");
  const exactOrigins = new Set(options.allowedOrigins.map((o) => o.toLowerCase().replace(/\/+$/, "")));

  const hostMatches = (name: string, port: string) => anyHost || patterns.some((p) => p.name === name && (p.port === undefined || p.port === port));

  return {
    ignored,
    hostAllowed(header) {
      const parsed = header ? parseHostPort(header) : undefined;
      return parsed !== undefined && hostMatches(parsed.name, parsed.port ?? "80");
    },
    originAllowed(origin) {
      if (anyOrigin || exactOrigins.has(origin.toLowerCase().replace(/\/+$/, ""))) return true;
      let url: URL;
      try {
        url = new URL(origin);
      } catch {
        return false; // includes "null" (sandboxed frames, file: pages)
      }
      if (url.protocol !== "http:" && url.protocol !== "https:") return false;
      return hostMatches(url.hostname, url.port || (url.protocol === "https:" ? "443" : "80"));
    },
  };
}

/** The token of an `Authorization: Bearer <token>` header, else undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  return /^Bearer\s+(\S+)\s*$/i.exec(header ?? "")?.[1];
}
