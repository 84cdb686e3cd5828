import fs from "node:fs/promises";
import path from "node:path";
import { UserError } from "../errors.js";
import { PRISTINE_CONFIG_ENV, type GitAuth } from "./credentials.js";
import { type Git, GitError, type GitResult, type GitRunOptions, STDERR_LIMIT } from "./git.js";
import { checkBranchName, checkRemoteName, type CommitInfo, currentBranch, logCommits, resolveCommit } from "./refs.js";
import { remoteFailure } from "./remote-failure.js";

// Pushing: the token-carrying push from a scratch repository, the token-less one in the workspace.

export interface PushOptions {
  remote: string;
  branch: string;
  setUpstream: boolean;
  timeoutMs: number;
  /** The authentication for a push to `url`, asked for once the URL the remote pushes to is known. */
  authFor?: (url: string) => Promise<GitAuth>;
}

export interface PushResult {
  /** The commits the remote did not have, as far as the remote-tracking refs tell (at most 100). */
  commits: CommitInfo[];
  /** The URL pushed to (the remote's push URL, insteadOf applied). */
  url: string;
}

/** A push about to run: what goes where, with which authentication. */
interface PushPlan extends PushOptions {
  url: string;
  auth: GitAuth | undefined;
  /** refs/heads/<branch> when the workspace has that branch, else HEAD. */
  source: string;
}

/**
 * Push the local branch `branch` (or, when there is none, HEAD) to refs/heads/<branch> on `remote`.
 *
 * A push that carries the token does not run in the workspace, whose config the agent can write: it
 * runs from a scratch repository with a config coding-mcp wrote, which borrows the workspace's objects
 * (see pushFromScratch). A push without the token is the owner's own business and runs in the
 * workspace, as `git push` would.
 */
export async function pushBranch(git: Git, dir: string, o: PushOptions): Promise<PushResult> {
  await checkRemoteName(git, dir, o.remote);
  await checkBranchName(git, o.branch);
  const local = `refs/heads/${o.branch}`;
  const source = (await git.exec(["rev-parse", "--verify", "--quiet", local], { cwd: dir })).exitCode === 0 ? local : "HEAD";
  const { url, auth } = await pushTarget(git, dir, o);
  const commits = await unpushedCommits(git, dir, o.remote, o.branch, source);
  const plan: PushPlan = { ...o, url, auth, source };
  if (auth?.hasToken) await pushFromScratch(git, dir, plan);
  else await pushInWorkspace(git, dir, plan);
  return { commits, url };
}

/**
 * The one URL the remote pushes to, and its authentication. git pushes to every push URL a remote has,
 * so a remote with several is refused when the token would go along: it goes to exactly one URL.
 */
async function pushTarget(git: Git, dir: string, o: PushOptions): Promise<{ url: string; auth: GitAuth | undefined }> {
  const listed = await git.exec(["remote", "get-url", "--push", "--all", "--", o.remote], { cwd: dir });
  const urls = listed.exitCode === 0 ? listed.stdout.split("\n").filter(Boolean) : [];
  const auths = o.authFor ? await Promise.all(urls.map((u) => o.authFor!(u))) : [];
  if (urls.length > 1 && auths.some((a) => a.hasToken)) {
    const pushUrls = await git.exec(["config", "--get-all", `remote.${o.remote}.pushurl`], { cwd: dir });
    const key = pushUrls.exitCode === 0 && pushUrls.stdout ? `remote.${o.remote}.pushurl` : `remote.${o.remote}.url`;
    const remove =
      key.endsWith(".pushurl")
        ? `\`git -C ${dir} config --unset-all ${key}\` (then \`git remote set-url --push ${o.remote} <url>\` if it needs a push URL of its own)`
        : `\`git -C ${dir} remote set-url --delete ${o.remote} <url>\` for each URL but one`;
    throw new UserError(
      `remote ${o.remote} pushes to ${urls.length} URLs (${key} is set ${urls.length} times: ${urls.map((u) => git.redact(u)).join(", ")}); ` +
        "a push that carries the token goes to exactly one URL, so nothing was pushed",
      `keep only the URL to push to: ${remove}`,
      "push_refused",
    );
  }
  if (urls.length === 0) throw new UserError(`remote ${o.remote} has no URL`, `set one with \`git -C ${dir} remote set-url ${o.remote} <url>\``, "push_refused");
  return { url: urls[0]!, auth: auths[0] };
}

/** The token-less push: plain `git push` in the workspace, with the owner's (and the agent's) config. */
async function pushInWorkspace(git: Git, dir: string, p: PushPlan): Promise<void> {
  const args = [...(p.auth?.configArgs ?? []), "push", "--porcelain", ...(p.setUpstream ? ["--set-upstream"] : []), "--", p.remote, `${p.source}:refs/heads/${p.branch}`];
  const result = await runPush(git, args, { cwd: dir, ...(p.auth && { env: p.auth.env }) }, p);
  if (result.exitCode !== 0) throw await pushError(git, dir, p, result);
}

/**
 * The push that carries the token. The commit is resolved in the workspace by a token-less rev-parse;
 * the network step runs in a new bare repository under the state directory whose config coding-mcp
 * wrote, whose objects/info/alternates points at the workspace's objects, and which reads no system or
 * global config (PRISTINE_CONFIG_ENV). The URL is passed explicitly. So no proxy, TLS setting,
 * credential helper, askpass, header, hook or include the agent wrote is in play, without a list of
 * such keys to keep up to date. Afterwards the workspace gets, by local token-less commands, what a
 * plain push records: the remote-tracking ref and, when asked for, the upstream.
 */
async function pushFromScratch(git: Git, dir: string, p: PushPlan): Promise<void> {
  const auth = p.auth!;
  const commit = await resolveCommit(git, dir, p.source);
  const scratch = await scratchRepository(git, dir, auth.scratchDir!);
  try {
    const args = [...auth.configArgs, "push", "--porcelain", "--", p.url, `${commit}:refs/heads/${p.branch}`];
    const result = await runPush(git, args, { cwd: scratch, env: { ...auth.env, GIT_DIR: scratch } }, p);
    if (result.exitCode !== 0) throw await pushError(git, dir, p, result);
  } finally {
    await fs.rm(scratch, { recursive: true, force: true });
  }
  await recordPush(git, dir, p, commit);
}

/**
 * After a push from the scratch repository, what `git push [-u]` would have recorded in the workspace.
 * The push has landed by then, so like git this bookkeeping does not fail it: a ref or config git will
 * not write (say, an odd hand-made remote name) is skipped.
 */
async function recordPush(git: Git, dir: string, p: PushPlan, commit: string): Promise<void> {
  await git.exec(["update-ref", "-m", `push to ${p.remote}`, `refs/remotes/${p.remote}/${p.branch}`, commit], { cwd: dir });
  if (!p.setUpstream) return;
  const localBranch = p.source === "HEAD" ? await currentBranch(git, dir) : p.branch;
  if (localBranch === undefined) return; // A detached HEAD has no branch to track anything, as with git push -u.
  const remote = await git.exec(["config", `branch.${localBranch}.remote`, p.remote], { cwd: dir });
  if (remote.exitCode === 0) await git.exec(["config", `branch.${localBranch}.merge`, `refs/heads/${p.branch}`], { cwd: dir });
}

/** A bare repository under `parent` that sees the workspace's objects (and its shallow boundary) and nothing else of it. */
async function scratchRepository(git: Git, dir: string, parent: string): Promise<string> {
  const [objects, shallow, format] = await Promise.all([
    git.run(["rev-parse", "--git-path", "objects"], { cwd: dir }).then((p) => path.resolve(dir, p)),
    git.run(["rev-parse", "--git-path", "shallow"], { cwd: dir }).then((p) => path.resolve(dir, p)),
    git.run(["rev-parse", "--show-object-format"], { cwd: dir }),
  ]);
  if (/[\n\r]/.test(objects)) throw new UserError(`the workspace's git directory ${JSON.stringify(objects)} has a line break in its path`, "move the repository", "push_refused");
  await fs.mkdir(parent, { recursive: true, mode: 0o700 });
  const scratch = await fs.mkdtemp(path.join(parent, "push-"));
  try {
    // --template= copies no template (no hooks, whatever templateDir says).
    await git.run(["init", "--quiet", "--bare", "--template=", `--object-format=${format}`, scratch], { cwd: scratch, env: { ...PRISTINE_CONFIG_ENV } });
    await fs.mkdir(path.join(scratch, "objects", "info"), { recursive: true });
    await fs.writeFile(path.join(scratch, "objects", "info", "alternates"), `${objects}\n`);
    // A shallow workspace (shallow: true) pushes from its shallow history: git needs to know where it ends.
    await fs.copyFile(shallow, path.join(scratch, "shallow")).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err;
    });
  } catch (err) {
    await fs.rm(scratch, { recursive: true, force: true });
    throw err;
  }
  return scratch;
}

async function runPush(git: Git, args: string[], run: GitRunOptions, p: PushPlan): Promise<GitResult> {
  try {
    return await git.exec(args, { ...run, timeoutMs: p.timeoutMs });
  } catch (err) {
    if (err instanceof GitError && err.timedOut) {
      throw new UserError(
        `pushing to ${p.remote} timed out after ${Math.round(p.timeoutMs / 60_000)} min`,
        "raise limits.push_timeout_min, or check the network",
        "timeout",
      );
    }
    throw err;
  }
}

async function unpushedCommits(git: Git, dir: string, remote: string, branch: string, source: string): Promise<CommitInfo[]> {
  const tracking = `refs/remotes/${remote}/${branch}`;
  const known = (await git.exec(["rev-parse", "--verify", "--quiet", `${tracking}^{commit}`], { cwd: dir })).exitCode === 0;
  return logCommits(git, dir, known ? [`${tracking}..${source}`] : [source, "--not", `--remotes=${remote}`]);
}

// Settings a push from the workspace would use for its connection, and a push with the token ignores.
const CONNECTION_SETTINGS = "^(https?|credential)\\.|^core\\.(askpass|sshcommand|gitproxy)$|^remote\\..*\\.(proxy|proxyauthmethod)$";

/**
 * The connection settings in the workspace's config (its own, global, system and included files) that a
 * push with the token left out, for the hint of a failed push. Names only: values may hold secrets.
 */
async function ignoredSettings(git: Git, dir: string): Promise<{ key: string; file: string }[]> {
  const result = await git.exec(["config", "--show-origin", "--name-only", "--get-regexp", CONNECTION_SETTINGS], { cwd: dir });
  if (result.exitCode !== 0) return [];
  const lines = new Set(result.stdout.split("\n").filter((line) => line.startsWith("file:")));
  return [...lines].map((line) => {
    const tab = line.indexOf("\t");
    return { file: line.slice("file:".length, tab), key: line.slice(tab + 1) };
  });
}

function ignoredHint(dir: string, ignored: { key: string; file: string }[]): string {
  const names = ignored.map((s) => `${s.key} (${s.file})`).join(", ");
  const removals = ignored.slice(0, 3).map((s) => `\`git -C ${dir} config --file ${s.file} --unset-all ${s.key}\``).join(", ");
  return (
    `a push with the token uses no git config of the workspace or the user, so it ignored ${names}. ` +
    "For a proxy or a CA bundle set HTTPS_PROXY / NO_PROXY / GIT_SSL_CAINFO in coding-mcp's environment instead, " +
    `and remove what you did not write: ${removals}`
  );
}

async function pushError(git: Git, dir: string, p: PushPlan, result: GitResult): Promise<UserError> {
  const where = `${p.remote}/${p.branch}`;
  // Porcelain status lines: "!\t<src>:<dst>\t[rejected] (non-fast-forward)" or "[remote rejected] (reason)".
  const refLine = result.stdout.split("\n").find((l) => l.startsWith("!\t")) ?? "";
  const summary = git.redact(refLine.split("\t")[2] ?? "");
  if (/^\[rejected\]/.test(summary)) {
    return new UserError(
      `push to ${where} was rejected: the remote branch has commits this workspace does not have ${summary.replace("[rejected]", "").trim()}`,
      "fetch and rebase or merge the remote branch first, or push to a new branch",
      "push_rejected",
    );
  }
  if (/^\[remote rejected\]/.test(summary)) {
    return new UserError(`the remote refused the push to ${where}: ${summary}`, "check the remote's branch protection and hooks", "push_rejected");
  }
  const err = new GitError("git push failed", [], result.exitCode, git.redact(result.stderr).slice(-STDERR_LIMIT), false);
  const failure = remoteFailure(git, err, `pushing to ${where} failed`, p.url, p.auth);
  const ignored = p.auth?.hasToken && ["network_error", "auth_failed"].includes(failure.code) ? await ignoredSettings(git, dir) : [];
  if (ignored.length === 0) return failure;
  return new UserError(failure.message, `${failure.hint ?? ""}; ${ignoredHint(dir, ignored)}`, failure.code);
}
