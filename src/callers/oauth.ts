import { createRemoteJWKSet, errors, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from "jose";

/**
 * OAuth 2.1 access tokens as JWTs (RFC 9068) from the one issuer the config names: the signature
 * through the issuer's JWKS, issuer, audience (this server's resource URL, RFC 8707), expiry and
 * not-before, with asymmetric algorithms only (so `alg: none` and an HS256 token "signed" with a
 * public key are refused). Loaded only when http.oauth is configured.
 */

export interface JwtSettings {
  issuer: string;
  audience: string;
  jwksUrl?: string | undefined;
  algorithms: string[];
}

export type JwtCheck = { ok: true; subject: string; scopes: string[] } | { ok: false; why: string; unavailable?: boolean };

/** Leeway for clocks that differ a little between the issuer and this server. */
const CLOCK_TOLERANCE_SEC = 30;
const METADATA_TIMEOUT_MS = 5_000;

/** RFC 8414 metadata first (path inserted after the host), then OpenID Connect discovery. */
export function metadataUrls(issuer: string): string[] {
  const url = new URL(issuer);
  const path = url.pathname.replace(/\/+$/, "");
  return [`${url.origin}/.well-known/oauth-authorization-server${path}`, `${url.origin}${path}/.well-known/openid-configuration`];
}

async function discoverJwks(issuer: string): Promise<string> {
  const problems: string[] = [];
  for (const url of metadataUrls(issuer)) {
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(METADATA_TIMEOUT_MS), headers: { accept: "application/json" } });
      if (!response.ok) {
        problems.push(`${url}: HTTP ${response.status}`);
        continue;
      }
      const metadata = (await response.json()) as { issuer?: unknown; jwks_uri?: unknown };
      // RFC 8414 §3.3: metadata naming another issuer must not be used.
      if (metadata.issuer !== issuer) problems.push(`${url}: names issuer ${JSON.stringify(metadata.issuer)}, not ${issuer}`);
      else if (typeof metadata.jwks_uri !== "string") problems.push(`${url}: has no jwks_uri`);
      else return metadata.jwks_uri;
    } catch (err) {
      problems.push(`${url}: ${(err as Error).message}`);
    }
  }
  throw new Error(`cannot find the issuer's keys (set http.oauth.jwks_url): ${problems.join("; ")}`);
}

export function createJwtChecker(settings: JwtSettings): (token: string) => Promise<JwtCheck> {
  let keys: Promise<JWTVerifyGetKey> | undefined;
  const keySet = () => {
    keys ??= (settings.jwksUrl ? Promise.resolve(settings.jwksUrl) : discoverJwks(settings.issuer)).then((url) => createRemoteJWKSet(new URL(url)));
    // A failed discovery is tried again on the next token, not remembered.
    keys.catch(() => (keys = undefined));
    return keys;
  };
  return async (token) => {
    let getKey: JWTVerifyGetKey;
    try {
      getKey = await keySet();
    } catch (err) {
      return { ok: false, why: (err as Error).message, unavailable: true };
    }
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, getKey, {
        issuer: settings.issuer,
        audience: settings.audience,
        algorithms: settings.algorithms,
        clockTolerance: CLOCK_TOLERANCE_SEC,
        requiredClaims: ["exp", "sub"],
      }));
    } catch (err) {
      // Not the token's fault: the issuer's keys could not be fetched.
      const unavailable = err instanceof errors.JWKSTimeout || !(err instanceof errors.JOSEError);
      return { ok: false, why: describe(err, settings), ...(unavailable ? { unavailable } : {}) };
    }
    return { ok: true, subject: payload.sub!, scopes: scopesOf(payload) };
  };
}

/** `scope` (space-separated, RFC 9068) or `scp` (a list, as some issuers write it). */
function scopesOf(payload: JWTPayload): string[] {
  if (typeof payload.scope === "string") return payload.scope.split(/\s+/).filter(Boolean);
  if (Array.isArray(payload.scp)) return payload.scp.filter((s): s is string => typeof s === "string");
  return [];
}

/** What was wrong with the token, for the 401's error_description and the log (never the token). */
function describe(err: unknown, settings: JwtSettings): string {
  if (err instanceof errors.JWTExpired) return "the token has expired";
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === "aud") return `the token's audience is not this server (expected ${settings.audience})`;
    if (err.claim === "iss") return `the token's issuer is not ${settings.issuer}`;
    if (err.claim === "nbf") return "the token is not valid yet (nbf)";
    if (err.reason === "missing") return `the token has no ${err.claim} claim`;
    return `the token's ${err.claim} claim is not accepted (${err.reason})`;
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return `the token's signature algorithm is not accepted (allowed: ${settings.algorithms.join(", ")})`;
  if (err instanceof errors.JWKSNoMatchingKey) return "no key of the issuer matches the token's key id";
  if (err instanceof errors.JWSSignatureVerificationFailed) return "the token's signature does not verify";
  if (err instanceof errors.JWKSTimeout) return "the issuer's keys could not be fetched in time";
  if (err instanceof errors.JOSEError) return `the token is not a valid JWT (${err.code})`;
  return `the token could not be checked: ${(err as Error).message}`;
}
