import http from "node:http";
import type { AddressInfo } from "node:net";
import { createHmac } from "node:crypto";
import { SignJWT, exportJWK, exportSPKI, generateKeyPair, type JWK, type JWTPayload } from "jose";

/**
 * A local OAuth issuer for tests: an RS256 key pair, its JWKS and RFC 8414 metadata served on
 * 127.0.0.1, and tokens minted with it, including the bad ones a resource server must refuse.
 */
export interface TestIssuer {
  issuer: string;
  jwksUrl: string;
  /** Requests the issuer got (paths), to see that the server fetched the keys. */
  requests: string[];
  /** A valid token for `audience` with `sub`, unless `claims` or `options` say otherwise. */
  token(claims: JWTPayload & { sub?: string }, options?: { audience?: string; issuer?: string; expiresIn?: string | number; notBefore?: string | number; otherKey?: boolean }): Promise<string>;
  /** The kinds of bad token a resource server must refuse, each with its reason. */
  badTokens(audience: string): Promise<Record<string, string>>;
  close(): Promise<void>;
}

function b64url(value: unknown): string {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
}

export async function startTestIssuer(): Promise<TestIssuer> {
  const { publicKey, privateKey } = await generateKeyPair("RS256", { extractable: true });
  const other = await generateKeyPair("RS256");
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid: "test-key-1", alg: "RS256", use: "sig" };
  const requests: string[] = [];
  let base = "";
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? "");
    if (req.url === "/.well-known/oauth-authorization-server") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ issuer: base, jwks_uri: `${base}/jwks.json`, token_endpoint: `${base}/token` }));
    } else if (req.url === "/jwks.json") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ keys: [publicJwk] }));
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const token: TestIssuer["token"] = async (claims, options = {}) => {
    let jwt = new SignJWT({ sub: "alice@example.com", ...claims })
      .setProtectedHeader({ alg: "RS256", kid: options.otherKey ? "unknown-key" : "test-key-1", typ: "at+jwt" })
      .setIssuer(options.issuer ?? base)
      .setIssuedAt()
      .setExpirationTime(options.expiresIn ?? "10m");
    if (options.audience) jwt = jwt.setAudience(options.audience);
    if (options.notBefore !== undefined) jwt = jwt.setNotBefore(options.notBefore);
    return jwt.sign(options.otherKey ? other.privateKey : privateKey);
  };

  return {
    issuer: base,
    jwksUrl: `${base}/jwks.json`,
    requests,
    token,
    async badTokens(audience) {
      const good = await token({}, { audience });
      const [header, payload] = good.split(".");
      const claims = JSON.parse(Buffer.from(payload!, "base64url").toString());
      const now = Math.floor(Date.now() / 1000);
      // HS256 "signed" with the issuer's public key as the HMAC secret: the classic key-confusion forgery.
      const pem = await exportSPKI(publicKey);
      const hsHead = b64url({ alg: "HS256", typ: "JWT", kid: "test-key-1" });
      const hsBody = b64url({ ...claims, sub: "mallory" });
      const hs256 = `${hsHead}.${hsBody}.${createHmac("sha256", pem).update(`${hsHead}.${hsBody}`).digest("base64url")}`;
      return {
        "wrong audience": await token({}, { audience: "https://other.example/mcp" }),
        "wrong issuer": await token({}, { audience, issuer: "https://evil.example" }),
        expired: await token({}, { audience, expiresIn: now - 300 }),
        "not yet valid": await token({}, { audience, notBefore: now + 600 }),
        "alg none": `${b64url({ alg: "none", typ: "JWT" })}.${b64url(claims)}.`,
        "unknown key": await token({}, { audience, otherKey: true }),
        "tampered payload": `${header}.${b64url({ ...claims, sub: "mallory" })}.${good.split(".")[2]}`,
        "HS256 with the public key": hs256,
      };
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
