import { describe, expect, it } from "vitest";
import { bearerToken, createHostGuard, parseHostPort } from "../../src/transports/http-guard.js";

const machine = { addresses: ["10.1.2.3", "fe80::1"], hostname: "buildbox" };

describe("Host and Origin guard", () => {
  it("allows the server's own loopback names on its port only", () => {
    const g = createHostGuard({ bindHost: "127.0.0.1", port: 8765, allowedHosts: [], allowedOrigins: [], machine });
    for (const host of ["127.0.0.1:8765", "localhost:8765", "LOCALHOST:8765", "[::1]:8765"]) expect(g.hostAllowed(host), host).toBe(true);
    for (const host of ["127.0.0.1:8766", "localhost", "attacker.example:8765", "10.1.2.3:8765", "buildbox:8765", "", undefined]) {
      expect(g.hostAllowed(host), String(host)).toBe(false);
    }
  });

  it("bound to every interface, allows the machine's addresses and name", () => {
    const g = createHostGuard({ bindHost: "0.0.0.0", port: 80, allowedHosts: [], allowedOrigins: [], machine });
    for (const host of ["10.1.2.3", "10.1.2.3:80", "[fe80::1]", "buildbox:80"]) expect(g.hostAllowed(host), host).toBe(true);
    expect(g.hostAllowed("10.9.9.9")).toBe(false);
  });

  it("adds http.allowed_hosts entries by name, name:port or *", () => {
    const g = createHostGuard({ bindHost: "127.0.0.1", port: 8765, allowedHosts: ["mcp.example.com", "proxy.example:8443", "bad host/x"], allowedOrigins: [], machine });
    expect(g.hostAllowed("mcp.example.com:1234")).toBe(true);
    expect(g.hostAllowed("mcp.example.com")).toBe(true);
    expect(g.hostAllowed("proxy.example:8443")).toBe(true);
    expect(g.hostAllowed("proxy.example:8444")).toBe(false);
    expect(g.ignored).toEqual(["bad host/x"]);
    const any = createHostGuard({ bindHost: "127.0.0.1", port: 8765, allowedHosts: ["*"], allowedOrigins: [], machine });
    expect(any.hostAllowed("anything.example")).toBe(true);
    expect(any.hostAllowed(undefined)).toBe(false);
  });

  it("allows an Origin that is listed or names an allowed host, and nothing else", () => {
    const g = createHostGuard({ bindHost: "127.0.0.1", port: 8765, allowedHosts: [], allowedOrigins: ["https://app.example/"], machine });
    expect(g.originAllowed("http://127.0.0.1:8765")).toBe(true);
    expect(g.originAllowed("http://localhost:8765")).toBe(true);
    expect(g.originAllowed("https://APP.example")).toBe(true);
    for (const origin of ["http://attacker.example", "http://127.0.0.1:9999", "null", "file://", "chrome-extension://abc", "ftp://127.0.0.1:8765", "ws://localhost:8765", "https://app.example.evil"]) {
      expect(g.originAllowed(origin), origin).toBe(false);
    }
    expect(createHostGuard({ bindHost: "127.0.0.1", port: 1, allowedHosts: [], allowedOrigins: ["*"], machine }).originAllowed("null")).toBe(true);
  });

  it("parses Host values strictly", () => {
    expect(parseHostPort("Example.COM:80")).toEqual({ name: "example.com", port: "80" });
    expect(parseHostPort("::1")).toEqual({ name: "[::1]" });
    expect(parseHostPort("[::1]:9")).toEqual({ name: "[::1]", port: "9" });
    for (const bad of ["a b", "user@host", "host:port", "host/path", ""]) expect(parseHostPort(bad), bad).toBeUndefined();
  });

  it("reads a bearer token and nothing else", () => {
    expect(bearerToken("Bearer abc.def")).toBe("abc.def");
    expect(bearerToken("bearer   tok  ")).toBe("tok");
    for (const bad of [undefined, "", "Basic abc", "Bearer", "Bearer a b", "Bearerabc"]) expect(bearerToken(bad), String(bad)).toBeUndefined();
  });
});
