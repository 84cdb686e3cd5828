import { describe, expect, it } from "vitest";
import { confinementRoute, startsOpencodeAcp, unconfinableError } from "../../src/acp/confinement.js";

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

  it("confines only an agent that says it is OpenCode and was started with the confined shell", () => {
    expect(confinementRoute("OpenCode", true)).toBe("opencode-shell");
    expect(confinementRoute("OpenCode", false)).toBe("none");
    // An argv that looked like OpenCode but started another agent: its commands would not use our shell.
    expect(confinementRoute("@agentclientprotocol/claude-agent-acp", true)).toBe("none");
    expect(confinementRoute(undefined, true)).toBe("none");
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
