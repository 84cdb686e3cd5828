import path from "node:path";
import { UserError } from "../errors.js";
import { isLoopbackHost } from "../net.js";

/**
 * The transports a caller may name as `repo_url` (spec: "Remote URLs"). Anything else is refused before
 * git sees it, because git treats some URL shapes as commands (`ext::sh -c …`), file descriptors
 * (`fd::17`) or options (`-oProxyCommand=…`).
 *
 * Plain `git://` is unauthenticated and unencrypted, like non-loopback `http:`, so it is accepted only
 * when `git.allow_insecure_http` is true.
 */
export type RepoUrlKind = "https" | "http" | "ssh" | "scp" | "file" | "git";

export interface RepoUrlPolicy {
  allowInsecureHttp: boolean;
  allowFileRemotes: boolean;
}

export interface ValidRepoUrl {
  kind: RepoUrlKind;
  /** The URL to hand to git: as given, except that a local path is made absolute. */
  url: string;
}

const ALLOWED =
  "allowed: https://host/path, ssh://[user@]host/path, user@host:path, " +
  "http:// to a loopback host (127.0.0.1, ::1, localhost), and local paths or file:// URLs when git.allow_file_remotes is true";

const SCHEME_URL = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
// git's `<transport>::<address>` form runs a remote helper (ext::, fd::, or any git-remote-<name>).
const TRANSPORT_HELPER = /^[A-Za-z0-9+.-]+::/;
// scp-like syntax as git parses it: a colon before any slash, with an optional user.
const SCP_LIKE = /^(?:([^@/:]+)@)?(\[[^\]]+\]|[^@/:[\]]+):(.+)$/;
// URL schemes that, written without `//`, are a mistake rather than an scp-like host name.
const SCHEME_NAMES = new Set(["http", "https", "ssh", "git", "file", "ftp", "ftps", "ext", "fd"]);
const HOST_NAME = /^(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?|\[[0-9A-Fa-f:.]+\])$/;
const USER_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.+-]*$/;

function refuse(what: string, hint: string = ALLOWED): never {
  throw new UserError(`repo_url ${what}`, hint, "invalid_repo_url");
}

export function validateRepoUrl(url: string, opts: RepoUrlPolicy): ValidRepoUrl {
  if (url.length === 0) refuse("is empty");
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused here
  if (/[\s\x00-\x1f\x7f]/.test(url)) refuse("contains whitespace or control characters");
  if (url.startsWith("-")) refuse("starts with '-', which git would read as an option");
  if (TRANSPORT_HELPER.test(url)) refuse("uses a git remote helper (transport::address), which is never allowed");

  const scheme = SCHEME_URL.exec(url)?.[1]?.toLowerCase();
  if (scheme) return schemeUrl(url, scheme, opts);

  // user:password@host:path — refused like credentials in a URL (and never echoed).
  if (/^[^/@]*:[^/@]*@/.test(url)) {
    refuse("carries credentials (user:password@ before the host)", "remove them; the token comes from git.token_env");
  }
  const scp = SCP_LIKE.exec(url);
  if (scp && !SCHEME_NAMES.has((scp[2] ?? "").toLowerCase())) return scpUrl(url, scp[1], scp[2] ?? "");
  if (scp || /^[A-Za-z][A-Za-z0-9+.-]*:/.test(url)) refuse(`is not a URL git can use safely (a scheme needs "://")`);

  // No scheme and no scp-like host: git reads it as a path on this machine.
  if (!opts.allowFileRemotes) {
    refuse("is a local path; local paths are refused unless git.allow_file_remotes is true", ALLOWED);
  }
  return { kind: "file", url: path.resolve(url) };
}

function schemeUrl(url: string, scheme: string, opts: RepoUrlPolicy): ValidRepoUrl {
  if (scheme === "file") {
    if (!opts.allowFileRemotes) refuse("is a file:// URL; these are refused unless git.allow_file_remotes is true");
    return { kind: "file", url };
  }
  if (!["https", "http", "ssh", "git"].includes(scheme)) refuse(`uses the unsupported scheme "${scheme}:"`);

  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    refuse(`is not a valid ${scheme}:// URL`);
  }
  const host = parsed.hostname;
  if (!host) refuse("has no host name");
  if (!HOST_NAME.test(host)) refuse(`has an invalid host name`);
  checkUserinfo(parsed, scheme);

  if (scheme === "http" && !isLoopbackHost(host) && !opts.allowInsecureHttp) {
    refuse(
      "uses plain http:// to a non-loopback host, which sends code and credentials unencrypted",
      "use https://, or set git.allow_insecure_http: true to allow it (" + ALLOWED + ")",
    );
  }
  if (scheme === "git" && !opts.allowInsecureHttp) {
    refuse(
      "uses git://, which is unauthenticated and unencrypted",
      "use https:// or ssh://, or set git.allow_insecure_http: true to allow it",
    );
  }
  return { kind: scheme as RepoUrlKind, url };
}

/** Credentials belong in git.token_env, never in the URL (git would store them in .git/config). */
function checkUserinfo(parsed: URL, scheme: string): void {
  const carriesSecret = parsed.password !== "" || ((scheme === "https" || scheme === "http") && parsed.username !== "");
  if (carriesSecret) {
    // Rebuilt without the userinfo, so the message never echoes the credential.
    const shown = `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
    refuse(
      `carries credentials (user or password before the host): ${shown}`,
      "remove them from the URL; coding-mcp hands git the token from the variable named by git.token_env",
    );
  }
  if (parsed.username && !USER_NAME.test(decodeURIComponent(parsed.username))) refuse("has an invalid user name");
}

function scpUrl(url: string, user: string | undefined, host: string): ValidRepoUrl {
  if (user !== undefined && !USER_NAME.test(user)) refuse("has an invalid user name (user@host:path)");
  if (!HOST_NAME.test(host)) refuse("has an invalid host name (user@host:path)");
  return { kind: "scp", url };
}
