import type { AuthInfo } from "@modelcontextprotocol/sdk/server/auth/types.js";
import type { GitCredential } from "../workspace/credentials.js";

/**
 * Who is calling: every coding session, workspace, task and pending request belongs to one caller.
 * stdio and the holder of CODING_MCP_TOKEN are the server's own user ("local"); a named HTTP client
 * is "client:<name>"; an OAuth subject is "oauth:<sub>". The prefixes keep the kinds apart, so no
 * client name can pass for an OAuth subject or for the local user.
 */

/**
 * The git token a caller's clone and push use: the server's (stdio and CODING_MCP_TOKEN), its own
 * (git_token_env), or none (a named or OAuth caller without one while git.shared_token is off).
 */
export type CallerGit = GitCredential;

export interface Caller {
  /** Stable id, stored as the owner of what the caller opens. */
  id: string;
  git: CallerGit;
  /** The OAuth token's scopes (empty for the other kinds). */
  scopes: string[];
}

export const LOCAL_CALLER_ID = "local";

export const LOCAL_CALLER: Caller = { id: LOCAL_CALLER_ID, git: { kind: "server" }, scopes: [] };

/** The owner of a record; records written before callers existed belong to the local user. */
export function ownerOf(record: { owner?: string | undefined }): string {
  return record.owner ?? LOCAL_CALLER_ID;
}

/** Whether `caller` may see and use a record: only its owner may; to anyone else it does not exist. */
export function owns(caller: Caller, record: { owner?: string | undefined }): boolean {
  return ownerOf(record) === caller.id;
}

/** The AuthInfo the HTTP transport hands the SDK for an authenticated request (`extra.authInfo` in handlers). */
export function authInfoFor(caller: Caller): AuthInfo {
  // The bearer token itself is not kept: nothing after the check needs it.
  return { token: "", clientId: caller.id, scopes: caller.scopes, extra: { caller } };
}

/** The caller of a request: the one the HTTP transport authenticated, else (stdio) the local user. */
export function callerOf(authInfo: AuthInfo | undefined): Caller {
  const caller = authInfo?.extra?.caller as Caller | undefined;
  return caller ?? LOCAL_CALLER;
}
