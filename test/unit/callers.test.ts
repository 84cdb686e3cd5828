import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { stringify } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAuthenticator, resourceMetadataUrl, type Authentication } from "../../src/callers/authenticate.js";
import { createJwtChecker, metadataUrls } from "../../src/callers/oauth.js";
import { loadConfig, type ResolvedConfig } from "../../src/config.js";
import { startTestIssuer, type TestIssuer } from "../support/oauth-issuer.js";

const SHARED = "shared-token-0123456789abcdef";
const ALICE = "alice-token-0123456789abcdef";
const CI = "ci-token-0123456789abcdef0123";
const AUDIENCE = "https://coding.example.com/mcp";

/** A config read as coding-mcp reads it: from a YAML file (http.clients has no environment form). */
function config(raw: Record<string, unknown>, env: Record<string, string> = {}): ResolvedConfig {
  return loadConfig({ configPath: writeYaml(raw), env });
}

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "callers-test-"));
let n = 0;
function writeYaml(raw: Record<string, unknown>): string {
  const file = path.join(dir, `c${n++}.yaml`);
  fs.writeFileSync(file, stringify({ workspace: { base_path: dir }, ...raw }));
  return file;
}

const sha = (s: string) => createHash("sha256").update(s).digest("hex");
const callerId = (a: Authentication) => (a.ok ? a.caller.id : `refused ${a.status}`);

describe("named callers", () => {
  const env = { CODING_MCP_TOKEN: SHARED, ALICE_MCP_TOKEN: ALICE, ALICE_GIT: "ghp_alice_git_token" };
  const c = config({ http: { clients: { alice: { token_env: "ALICE_MCP_TOKEN", git_token_env: "ALICE_GIT" }, ci: { token_sha256: sha(CI).toUpperCase() } } } }, env);
  const auth = createAuthenticator(c);

  it("knows the shared token's holder, each client by its token, and nobody else", async () => {
    expect(auth.required).toBe(true);
    expect(callerId(await auth.authenticate(SHARED))).toBe("local");
    expect(callerId(await auth.authenticate(ALICE))).toBe("client:alice");
    expect(callerId(await auth.authenticate(CI))).toBe("client:ci");
    for (const bad of [ALICE + "x", ALICE.slice(0, -1), sha(CI), "", "a.b.c"]) expect(callerId(await auth.authenticate(bad)), bad).toBe("refused 401");
  });

  it("refuses a missing token with a challenge and a wrong one with invalid_token", async () => {
    const missing = await auth.authenticate(undefined);
    expect(missing.ok).toBe(false);
    if (missing.ok) return;
    expect(missing.message).toMatch(/missing bearer token.*http.clients token/);
    expect(missing.challenge).toBe('Bearer realm="coding-mcp"');
    const wrong = await auth.authenticate("not-a-known-token-at-all");
    expect(!wrong.ok && wrong.challenge).toContain('error="invalid_token"');
  });

  it("gives a client its own git token, the shared one only with git.shared_token, else none", async () => {
    const alice = await auth.authenticate(ALICE);
    expect(alice.ok && alice.caller.git).toEqual({ kind: "own", token: "ghp_alice_git_token", tokenEnv: "ALICE_GIT" });
    const ci = await auth.authenticate(CI);
    expect(ci.ok && ci.caller.git.kind).toBe("none");
    const shared = createAuthenticator(config({ git: { shared_token: true }, http: { clients: { ci: { token_sha256: sha(CI) } } } }));
    const ciShared = await shared.authenticate(CI);
    expect(ciShared.ok && ciShared.caller.git).toEqual({ kind: "server" });
    expect(callerId(await shared.authenticate(SHARED))).toBe("refused 401"); // no CODING_MCP_TOKEN in this config
  });

  it("needs no token only when none of any kind is configured", async () => {
    const open = createAuthenticator(config({}));
    expect(open.required).toBe(false);
    expect(callerId(await open.authenticate(undefined))).toBe("local");
  });

  it("refuses a client entry without exactly one token source, and an unset variable", () => {
    expect(() => config({ http: { clients: { x: {} } } })).toThrow(/exactly one of token_sha256 or token_env/);
    expect(() => config({ http: { clients: { x: { token_sha256: sha(CI), token_env: "X" } } } })).toThrow(/exactly one/);
    expect(() => config({ http: { clients: { x: { token_sha256: "abc" } } } })).toThrow(/64 hex digits/);
    expect(() => config({ http: { clients: { x: { token_env: "NOPE_UNSET" } } } })).toThrow(/NOPE_UNSET is not set/);
    expect(() => config({ http: { clients: { x: { token_env: "SHORT" } } } }, { SHORT: "short" })).toThrow(/too short/);
    expect(() => config({ http: { oauth: { issuer: "https://id.example", audience: AUDIENCE, algorithms: ["HS256"] } } })).toThrow(/algorithms.0: expected one of "RS256"/);
  });
});

describe("OAuth access tokens", () => {
  let issuer: TestIssuer;
  beforeAll(async () => {
    issuer = await startTestIssuer();
  });
  afterAll(() => issuer.close());

  const authFor = (extra: Record<string, unknown> = {}) =>
    createAuthenticator(config({ http: { oauth: { issuer: issuer.issuer, audience: AUDIENCE, ...extra } } }), (t) => jwtCheck(t));
  let checker: ReturnType<typeof createJwtChecker> | undefined;
  const jwtCheck = (t: string) => (checker ??= createJwtChecker({ issuer: issuer.issuer, audience: AUDIENCE, algorithms: ["RS256", "ES256"] }))(t);

  it("accepts the issuer's token for this server, found through the issuer's metadata; the subject is the caller", async () => {
    const auth = authFor();
    const ok = await auth.authenticate(await issuer.token({ sub: "alice@example.com", scope: "code push" }, { audience: AUDIENCE }));
    expect(ok.ok && ok.caller).toEqual({ id: "oauth:alice@example.com", git: expect.objectContaining({ kind: "none" }), scopes: ["code", "push"] });
    expect(issuer.requests).toContain("/.well-known/oauth-authorization-server");
    expect(issuer.requests).toContain("/jwks.json");
  });

  it.each(["wrong audience", "wrong issuer", "expired", "not yet valid", "alg none", "unknown key", "tampered payload", "HS256 with the public key"])(
    "refuses %s with 401 and a challenge that names the problem and the metadata",
    async (kind) => {
      const tokens = await issuer.badTokens(AUDIENCE);
      const refused = await authFor().authenticate(tokens[kind]);
      expect(refused.ok, kind).toBe(false);
      if (refused.ok) return;
      expect(refused.status).toBe(401);
      expect(refused.challenge).toContain('error="invalid_token"');
      expect(refused.challenge).toContain(`resource_metadata="https://coding.example.com/.well-known/oauth-protected-resource/mcp"`);
      const reasons: Record<string, RegExp> = {
        "wrong audience": /audience is not this server/,
        "wrong issuer": /issuer is not/,
        expired: /expired/,
        "not yet valid": /not valid yet/,
        "alg none": /algorithm is not accepted/,
        "unknown key": /no key of the issuer matches/,
        "tampered payload": /signature does not verify/,
        "HS256 with the public key": /algorithm is not accepted/,
      };
      expect(refused.message).toMatch(reasons[kind]!);
    },
  );

  it("refuses a token without a required scope with 403 insufficient_scope", async () => {
    const auth = authFor({ required_scopes: ["coding"] });
    const refused = await auth.authenticate(await issuer.token({ scope: "read" }, { audience: AUDIENCE }));
    expect(!refused.ok && refused.status).toBe(403);
    expect(!refused.ok && refused.challenge).toContain('error="insufficient_scope"');
    expect(callerId(await auth.authenticate(await issuer.token({ scope: "coding" }, { audience: AUDIENCE })))).toBe("oauth:alice@example.com");
  });

  it("answers 503, not 401, when the issuer's keys cannot be found", async () => {
    const check = createJwtChecker({ issuer: "http://127.0.0.1:9", audience: AUDIENCE, algorithms: ["RS256"] });
    const result = await check(await issuer.token({}, { audience: AUDIENCE }));
    expect(result).toMatchObject({ ok: false, unavailable: true });
  });

  it("serves its metadata where RFC 9728 puts it", () => {
    expect(resourceMetadataUrl(AUDIENCE)).toBe("https://coding.example.com/.well-known/oauth-protected-resource/mcp");
    expect(resourceMetadataUrl("https://coding.example.com/")).toBe("https://coding.example.com/.well-known/oauth-protected-resource");
    expect(metadataUrls("https://id.example.com/tenant1")).toEqual([
      "https://id.example.com/.well-known/oauth-authorization-server/tenant1",
      "https://id.example.com/tenant1/.well-known/openid-configuration",
    ]);
    const auth = authFor();
    expect(auth.resourceMetadataPaths).toEqual(["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"]);
    expect(auth.resourceMetadata).toMatchObject({ resource: AUDIENCE, authorization_servers: [issuer.issuer] });
  });
});
