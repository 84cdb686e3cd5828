import { describe, expect, it } from "vitest";
import { sessionPermissionRules } from "../../src/opencode/backend.js";
import { DEFAULT_PERMISSIONS } from "../../src/permissions.js";

// coding-mcp's policy as an OpenCode session's permission rules (the last matching rule wins, and a
// session's rules come after OpenCode's config): what is not simply allowed is asked of coding-mcp.

describe("sessionPermissionRules", () => {
  it("asks for the default's ask kinds and lets questions through to the person", () => {
    expect(sessionPermissionRules(DEFAULT_PERMISSIONS)).toEqual([
      { permission: "external_directory", pattern: "*", action: "ask" },
      { permission: "doom_loop", pattern: "*", action: "ask" },
      { permission: "question", pattern: "*", action: "allow" },
    ]);
  });

  it("asks for deny kinds too (coding-mcp refuses them with a reason), and keeps allow kinds under an ask-all", () => {
    expect(sessionPermissionRules({ "*": "ask", read: "allow", bash: "deny", question: "deny" })).toEqual([
      { permission: "*", pattern: "*", action: "ask" },
      { permission: "read", pattern: "*", action: "allow" },
      { permission: "bash", pattern: "*", action: "ask" },
      { permission: "question", pattern: "*", action: "deny" },
    ]);
  });

  it("denies the in-process tools coding-mcp's own state last, so no policy lets them in", () => {
    const rules = sessionPermissionRules({ "*": "allow" }, ["/base/.coding-mcp"]);
    expect(rules.slice(-2)).toEqual([
      { permission: "external_directory", pattern: "/base/.coding-mcp", action: "deny" },
      { permission: "external_directory", pattern: "/base/.coding-mcp/*", action: "deny" },
    ]);
  });
});
