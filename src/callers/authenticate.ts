import { createHash, timingSafeEqual } from "node:crypto";
import type { ResolvedConfig } from "../config.js";
import { LOCAL_CALLER, type Caller, type CallerGit } from "./caller.js";
import type { JwtCheck } from "./oauth.js";

/**
 * Who is behind an HTTP request's bearer token: the CODING_MCP_TOKEN holder (the local user), a
 * named `http.clients` entry, or the subject of an OAuth access token from `http.oauth`. Everything
 * here but the JWT check is pure and fast (test/unit/callers.test.ts).
 */

export type Authentication =
  | { ok: true; caller: Caller }
  /** `status` 401 (no or bad token), 403 (missing scope) or 503 (the issuer cannot be reached); `challenge` goes in WWW-Authenticate. */
  | { ok: false; status: number; message: string; challenge: string };

export interface Authenticator {
  /** false only when no token of any kind is configured (then loopback only, everyone the local user). */
  required: boolean;
  authenticate(bearer: string | undefined): Promise<Authentication>;
  /** RFC 9728 protected resource metadata, when OAuth is configured. */
  resourceMetadata?: ProtectedResourceMetadata;
  /** The paths it is served at: /.well-known/oauth-protected-resource, and that with the resource's path. */
  resourceMetadataPaths: string[];
}

export interface ProtectedResourceMetadata {
  resource: string;
  authorization_servers: string[];
  bearer_methods_supported: string[];
  scopes_supported?: string[];
  resource_name: string;
}

type AuthConfig = Pick<ResolvedConfig, "http" | "git" | "secrets">;

const WELL_KNOWN = "/.well-known/oauth-protected-resource";

function sha256(value: string): Buffer {
  return createHash("sha256").update(value).digest();
}

/** RFC 9728 §3.1: the metadata of https://host/path is at https://host/.well-known/oauth-protected-resource/path. */
export function resourceMetadataUrl(resource: string): string {
  const url = new URL(resource);
  const path = url.pathname === "/" ? "" : url.pathname.replace(/\/+$/, "");
  return `${url.origin}${WELL_KNOWN}${path}`;
}

/**
 * @param checkJwt the OAuth token check (src/callers/oauth.ts, which loads jose); required when
 *   http.oauth is set.
 */
export function createAuthenticator(config: AuthConfig, checkJwt?: (token: string) => Promise<JwtCheck>): Authenticator {
  const shared = config.secrets.httpToken;
  const sharedDigest = shared === undefined ? undefined : sha256(shared);
  // Digests only: a token_sha256 entry never held the token, and comparing digests leaks neither length nor prefix.
  const clients = Object.entries(config.http.clients).map(([name, entry]) => ({
    name,
    digest: entry.token_sha256 ? Buffer.from(entry.token_sha256, "hex") : sha256(config.secrets.clientTokens?.[name] ?? ""),
    git: clientGit(config, name),
  }));
  const oauth = config.http.oauth;
  if (oauth && !checkJwt) throw new Error("http.oauth is configured but no JWT check was given");
  const metadataUrl = oauth ? resourceMetadataUrl(oauth.audience) : undefined;

  const challenge = (error?: { code: string; description: string }) =>
    [
      'Bearer realm="coding-mcp"',
      ...(error ? [`error="${error.code}"`, `error_description="${error.description.replace(/["\\]/g, "'")}"`] : []),
      ...(metadataUrl ? [`resource_metadata="${metadataUrl}"`] : []),
      ...(oauth?.required_scopes.length ? [`scope="${oauth.required_scopes.join(" ")}"`] : []),
    ].join(", ");
  const refuse = (status: number, message: string, code?: string): Authentication => ({
    ok: false,
    status,
    message,
    challenge: challenge(code ? { code, description: message } : undefined),
  });
  const howToSend = [
    shared !== undefined ? "the server's CODING_MCP_TOKEN" : undefined,
    clients.length ? "your http.clients token" : undefined,
    oauth ? `an access token from ${oauth.issuer} for ${oauth.audience}` : undefined,
  ]
    .filter(Boolean)
    .join(", or ");

  return {
    required: shared !== undefined || clients.length > 0 || oauth !== undefined,
    resourceMetadataPaths: oauth ? [...new Set([WELL_KNOWN, new URL(metadataUrl!).pathname])] : [],
    ...(oauth
      ? {
          resourceMetadata: {
            resource: oauth.audience,
            authorization_servers: [oauth.issuer],
            bearer_methods_supported: ["header"],
            ...(oauth.required_scopes.length ? { scopes_supported: oauth.required_scopes } : {}),
            resource_name: "coding-mcp",
          },
        }
      : {}),
    async authenticate(bearer) {
      if (shared === undefined && clients.length === 0 && !oauth) return { ok: true, caller: LOCAL_CALLER };
      if (bearer === undefined) return refuse(401, `missing bearer token: send the header Authorization: Bearer <token> (${howToSend})`);
      const digest = sha256(bearer);
      if (sharedDigest && timingSafeEqual(digest, sharedDigest)) return { ok: true, caller: LOCAL_CALLER };
      // Every entry is compared, so the time taken does not tell which one matched.
      let named: (typeof clients)[number] | undefined;
      for (const client of clients) if (timingSafeEqual(digest, client.digest)) named ??= client;
      if (named) return { ok: true, caller: { id: `client:${named.name}`, git: named.git, scopes: [] } };
      if (!oauth || !checkJwt || bearer.split(".").length !== 3) return refuse(401, "wrong bearer token", "invalid_token");
      const checked = await checkJwt(bearer);
      if (!checked.ok) {
        return checked.unavailable
          ? refuse(503, `cannot check the access token now: ${checked.why}`)
          : refuse(401, `invalid access token: ${checked.why}`, "invalid_token");
      }
      const missing = oauth.required_scopes.filter((s) => !checked.scopes.includes(s));
      if (missing.length) return refuse(403, `the access token lacks the scope ${missing.join(" ")}`, "insufficient_scope");
      return { ok: true, caller: { id: `oauth:${checked.subject}`, git: sharedOrNone(config, `OAuth caller ${checked.subject}`), scopes: checked.scopes } };
    },
  };
}

function clientGit(config: AuthConfig, name: string): CallerGit {
  const entry = config.http.clients[name];
  const token = config.secrets.clientGitTokens?.[name];
  if (entry?.git_token_env && token) return { kind: "own", token, tokenEnv: entry.git_token_env };
  return sharedOrNone(config, `client ${name}`);
}

function sharedOrNone(config: AuthConfig, who: string): CallerGit {
  if (config.git.shared_token) return { kind: "server" };
  return { kind: "none", why: `${who} has no git token of its own (http.clients.<name>.git_token_env) and git.shared_token is off` };
}
