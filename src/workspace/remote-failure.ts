import { UserError } from "../errors.js";
import { type GitAuth } from "./credentials.js";
import { type Git, type GitError, summarize } from "./git.js";

// What a failed clone or push means, in words a caller can act on.

type RemoteFailure = "branch" | "access" | "hostkey" | "network" | "other";

const FAILURE_PATTERNS: [RemoteFailure, RegExp][] = [
  ["branch", /remote branch .* not found|couldn't find remote ref/i],
  ["hostkey", /host key verification failed/i],
  [
    "network",
    /could not resolve host|could not resolve hostname|failed to connect|couldn't connect|connection refused|connection timed out|network is unreachable|no route to host|name or service not known|temporary failure in name resolution|connection reset|ssl_connect/i,
  ],
  [
    "access",
    /not found|does not exist|authentication failed|could not read (username|password)|terminal prompts disabled|permission denied|invalid username or password|access denied|returned error: 40[134]|not appear to be a git repository|could not read from remote repository/i,
  ],
];

export function classify(stderr: string): RemoteFailure {
  return FAILURE_PATTERNS.find(([, re]) => re.test(stderr))?.[0] ?? "other";
}

function authHint(auth: GitAuth | undefined): string {
  const variable = auth?.tokenEnv ?? "the variable named by git.token_env";
  if (auth?.withheldFrom) {
    return `the token in ${variable} is sent only to the hosts in git.token_hosts, and ${auth.withheldFrom} is not one of them; add it there if you trust it with the token`;
  }
  return auth?.hasToken
    ? `check the URL, and that the token in ${variable} can access this repository`
    : `check the URL; for a private repository set a token in ${variable} (git.token_env) or git.ssh_key_path for ssh`;
}

export function remoteFailure(git: Git, err: GitError, what: string, url: string, auth: GitAuth | undefined): UserError {
  const u = git.redact(url);
  const detail = summarize(err.stderr);
  switch (classify(err.stderr)) {
    case "access":
      return new UserError(`${what}: repository ${u} not found or authentication failed (${detail})`, authHint(auth), "auth_failed");
    case "hostkey":
      return new UserError(
        `${what}: the ssh host key of ${u} could not be verified (${detail})`,
        "add the host's key to ~/.ssh/known_hosts after checking its fingerprint",
        "host_key_unknown",
      );
    case "network":
      return new UserError(`${what}: could not connect to the host of ${u} (${detail})`, "check the URL, the network and any proxy settings", "network_error");
    default:
      return new UserError(`${what}: ${detail || err.message}`, undefined, "git_failed");
  }
}
