import { describe, expect, it } from "vitest";
import { claudeSessionMeta, confinementRoute, startsOpencodeAcp, unconfinableError } from "../../src/acp/confinement.js";

describe("ACP confinement routes", () => {
  it("recognises the argv of OpenCode's ACP server, and nothing else", () => {
    expect(startsOpencodeAcp(["/x/node_modules/.bin/opencode", "acp"])).toBe(true);
    expect(startsOpencodeAcp(["opencode", "acp", "--port", "0"])).toBe(true);
    expect(startsOpencodeAcp(["npx", "-y", "opencode-ai@1.18.33", "acp"])).toBe(true);
    expect(startsOpencodeAcp(["opencode", "serve"])).toBe(false);
    expect(startsOpencodeAcp(["claude-agent-acp"])).toBe(false);
    expect(startsOpencodeAcp(["node", "/x/gemini.js", "--acp"])).toBe(false);
    expect(startsOpencodeAcp(["/opt/not-opencode", "acp"])).toBe(false);
  });

  it("confines OpenCode started with the confined shell, and Claude Code per session; no other agent", () => {
    expect(confinementRoute("OpenCode", true)).toBe("opencode-shell");
    expect(confinementRoute("OpenCode", false)).toBe("none");
    expect(confinementRoute("@agentclientprotocol/claude-agent-acp", false)).toBe("claude-shell");
    expect(confinementRoute("codex-acp", true)).toBe("none");
    expect(confinementRoute("gemini-cli", false)).toBe("none");
    expect(confinementRoute(undefined, true)).toBe("none");
  });

  it("hands Claude Code the confined shell and the session's key, and reads no project settings", () => {
    expect(claudeSessionMeta("/s/claude/bash", "CODING_MCP_SANDBOX_PROFILE", "acp-1")).toEqual({
      claudeCode: { options: { env: { CLAUDE_CODE_SHELL: "/s/claude/bash", CODING_MCP_SANDBOX_PROFILE: "acp-1" }, settingSources: ["user"] } },
    });
  });

  it("refuses with the way out", () => {
    const err = unconfinableError("codex", "codex-acp 0.16.0");
    expect(err.message).toBe(
      'backend "codex" (codex-acp 0.16.0) runs the agent\'s commands itself, where coding-mcp cannot confine them, and sandbox.mode is on, so it runs no task',
    );
    expect(err.hint).toContain("backends.codex.sandbox: off");
    expect(err.code).toBe("sandbox_unavailable");
  });
});
