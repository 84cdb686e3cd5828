import { describe, expect, it } from "vitest";
import { Redactor } from "../../src/redact.js";

describe("Redactor", () => {
  const secret = "s3cr3t-Value/with+chars";
  const r = new Redactor([secret]);

  it("removes a configured secret, also URL-encoded and base64", () => {
    const out = r.text(`a ${secret} b ${encodeURIComponent(secret)} c ${Buffer.from(secret).toString("base64")}`);
    expect(out).not.toContain(secret);
    expect(out).not.toContain(encodeURIComponent(secret));
    expect(out).not.toContain(Buffer.from(secret).toString("base64"));
    expect(out.match(/\[REDACTED\]/g)).toHaveLength(3);
  });

  it.each([
    ["ghp_" + "a".repeat(36)],
    ["github_pat_" + "B".repeat(40)],
    ["glpat-" + "c".repeat(20)],
    ["sk-ant-" + "d".repeat(40)],
    ["AKIA" + "E".repeat(16)],
  ])("removes token shape %s", (token) => {
    expect(r.text(`token=${token};`)).toBe("token=[REDACTED];");
  });

  it("removes Bearer values and passwords in URLs but keeps the rest readable", () => {
    expect(r.text("Authorization: Bearer abc.def.ghi123")).toBe("Authorization: Bearer [REDACTED]");
    expect(r.text("fatal: https://user:hunter22@example.com/r.git")).toBe("fatal: https://user:[REDACTED]@example.com/r.git");
    expect(r.text("https://" + "x".repeat(30) + "@example.com/r.git")).toBe("https://[REDACTED]@example.com/r.git");
  });

  it("walks nested values without touching non-strings", () => {
    expect(r.value({ a: [secret, 1, true, null], b: { c: `x${secret}` } })).toEqual({ a: ["[REDACTED]", 1, true, null], b: { c: "x[REDACTED]" } });
  });

  it("ignores too-short secrets instead of shredding ordinary text", () => {
    expect(new Redactor(["abc"]).text("abcdef")).toBe("abcdef");
  });
});
