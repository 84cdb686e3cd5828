import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { parseAllowEntry } from "./confinement/network-allow.js";
import { errorMessage } from "./errors.js";
import { DEFAULT_PERMISSIONS, type PermissionRules } from "./permissions.js";

/**
 * coding-mcp's configuration: an optional YAML file, then environment variables on top, validated
 * once at start. A wrong key or value stops the server with a message naming the key and what is
 * allowed, rather than being ignored.
 */

const positiveInt = (what: string) => z.number({ error: `expected a whole number of ${what}` }).int().min(1);

const OpencodeSection = z.strictObject({
  url: z.url({ error: "expected an http(s) URL such as http://127.0.0.1:4096" }).optional(),
  password_env: z.string().min(1).default("OPENCODE_SERVER_PASSWORD"),
  /** Discouraged: prefer password_env. */
  password: z.string().min(1).optional(),
  username: z.string().min(1).default("opencode"),
  model: z
    .string()
    .regex(/^[^/\s]+\/\S+$/, { error: "expected provider/model, e.g. anthropic/claude-sonnet-4-5" })
    .optional(),
  agent: z.string().min(1).optional(),
  path_map: z.record(z.string().min(1), z.string().min(1)).default({}),
  /** Superseded by the top-level `permissions` (which adds "ask"); still read, and mapped onto it when that is absent. */
  permissions: z.record(z.string().min(1), z.enum(["allow", "deny"])).optional(),
  startup_timeout_sec: positiveInt("seconds").default(60),
});

const WorkspaceSection = z.strictObject({
  base_path: z.string().min(1).default("~/.local/share/coding-mcp/workspaces"),
  allowed_roots: z.array(z.string().min(1)).default([]),
  cleanup_policy: z.enum(["on_session_end", "on_success", "manual"]).default("on_session_end"),
});

const GitSection = z.strictObject({
  token_env: z.string().min(1).default("GITHUB_TOKEN"),
  /** Discouraged: prefer token_env. */
  token: z.string().min(1).optional(),
  username: z.string().min(1).default("x-access-token"),
  /** Hosts the token may be sent to (https only); "*" for any. A repo_url elsewhere is cloned without it. */
  token_hosts: z.array(z.string().min(1)).default(["github.com"]),
  ssh_key_path: z.string().min(1).optional(),
  allow_insecure_http: z.boolean().default(false),
  allow_file_remotes: z.boolean().default(false),
  user_name: z.string().min(1).default("coding-mcp"),
  user_email: z.string().min(3).default("coding-mcp@localhost"),
  /** Run the repository's hooks on coding-mcp's commits. Off: the agent can write hooks. */
  run_hooks: z.boolean().default(false),
  /** Named and OAuth callers without a git token of their own clone and push with the server's (off: without any). */
  shared_token: z.boolean().default(false),
});

const LimitsSection = z.strictObject({
  task_timeout_min: positiveInt("minutes").default(10),
  max_attempts: positiveInt("attempts").max(10).default(3),
  clone_timeout_min: positiveInt("minutes").default(5),
  push_timeout_min: positiveInt("minutes").default(5),
  /** A permission request or question of the agent that nobody answers in this time is rejected. */
  approval_timeout_sec: positiveInt("seconds").max(24 * 3600).default(300),
  /** Open coding sessions one caller may hold at once. */
  per_client_sessions: positiveInt("sessions").default(100),
  /** Tasks one caller may have running at once. */
  per_client_tasks: positiveInt("tasks").default(10),
});

/** What the agent may do, by permission kind; "*" for every kind not named (see src/permissions.ts). */
const PermissionsSection = z.record(
  z.string().min(1),
  z.enum(["allow", "deny", "ask"], { error: 'expected allow, deny or ask (ask: a person decides)' }),
);

/** A coding agent besides OpenCode, started as a subprocess that speaks the Agent Client Protocol over stdio. */
const AcpBackendSection = z.strictObject({
  type: z.literal("acp", { error: 'expected type: acp (an Agent Client Protocol agent started over stdio)' }),
  command: z.array(z.string().min(1)).min(1, { error: "expected the agent's argv, e.g. [claude-agent-acp]" }),
  /** Added to the agent's environment; "${VAR}" is read from coding-mcp's environment. */
  env: z.record(z.string().min(1), z.string()).default({}),
  /** The ACP session mode selected after session/new, when the agent has modes. */
  mode: z.string().min(1).optional(),
  /** How long the agent may take to start and to answer initialize and session/new. */
  startup_timeout_sec: positiveInt("seconds").default(60),
  /** off: this agent's commands run unconfined (only where the machine or its container is the boundary). */
  sandbox: z.enum(["on", "off"], { error: "expected on or off (off only where the machine or its container is the boundary)" }).default("on"),
});

const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: "expected an environment variable name" });

/** A named HTTP caller: its bearer token as a SHA-256 hash or from a variable, and optionally its own git token. */
const HttpClientEntry = z
  .strictObject({
    token_sha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, { error: "expected the token's SHA-256 as 64 hex digits (printf %s \"$TOKEN\" | sha256sum)" })
      .transform((h) => h.toLowerCase())
      .optional(),
    token_env: envName.optional(),
    git_token_env: envName.optional(),
  })
  .refine((c) => (c.token_sha256 === undefined) !== (c.token_env === undefined), { error: "give the client's token as exactly one of token_sha256 or token_env" });

const ASYMMETRIC_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"] as const;

/** OAuth 2.1 access tokens (JWTs) from one issuer, checked against its keys. */
const OauthSection = z.strictObject({
  issuer: z.url({ error: "expected the issuer's URL, e.g. https://id.example.com" }),
  /** This server's resource URL as the issuer puts it in `aud`, e.g. https://coding.example.com/mcp. */
  audience: z.url({ error: "expected this server's public MCP URL, e.g. https://coding.example.com/mcp" }),
  /** Omitted: read from the issuer's metadata (/.well-known/oauth-authorization-server, else openid-configuration). */
  jwks_url: z.url().optional(),
  /** Signature algorithms accepted; asymmetric only, so a shared secret can never forge a token. */
  algorithms: z.array(z.enum(ASYMMETRIC_ALGORITHMS, { error: `expected asymmetric algorithms: ${ASYMMETRIC_ALGORITHMS.join(", ")}` })).min(1).default([...ASYMMETRIC_ALGORITHMS]),
  /** Scopes every token must carry (none by default). */
  required_scopes: z.array(z.string().min(1)).default([]),
});

/** `--transport http` only; `--host` and `--port` override host and port. */
const HttpSection = z.strictObject({
  host: z.string().min(1).default("127.0.0.1"),
  port: z.number({ error: "expected a port number" }).int().min(0).max(65535).default(8765),
  /** Discouraged: prefer CODING_MCP_TOKEN. */
  token: z.string().min(1).optional(),
  /** Host header values accepted besides the loopback names and the bound address: "name" (any port), "name:port", or "*". */
  allowed_hosts: z.array(z.string().min(1)).default([]),
  /** Origins accepted besides those of an allowed host, e.g. https://app.example.com; "*" for any. */
  allowed_origins: z.array(z.string().min(1)).default([]),
  max_body_bytes: positiveInt("bytes").default(4 * 1024 * 1024),
  max_sessions: positiveInt("sessions").default(100),
  /** An MCP session with no request, no open stream and no running call for this long is closed. */
  session_idle_min: positiveInt("minutes").default(60),
  /** On SIGTERM/SIGINT, how long running calls may take to answer before they are stopped. */
  shutdown_timeout_sec: positiveInt("seconds").default(10),
  /** Named callers, each with a token of its own (see README, Callers). */
  clients: z.record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, { error: "client names: letters, digits, '.', '_' and '-'" }), HttpClientEntry).default({}),
  oauth: OauthSection.optional(),
});

/** A sandbox.network.allow entry the proxy can use, or the issue that says what to write instead. */
function checkAllowEntry(entry: string, ctx: z.RefinementCtx): void {
  try {
    parseAllowEntry(entry);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message.replace(/^sandbox\.network\.allow: /, "") });
  }
}

/** Confinement of every command the agent runs (README, "Confinement"). */
const SandboxSection = z.strictObject({
  /** off only where the machine or its container is the boundary. */
  mode: z.enum(["on", "off"], { error: "expected on or off (off only where the machine or its container is the boundary)" }).default("on"),
  network: z
    .strictObject({
      /** Hosts the agent's commands may reach: "host", "host:port", "*.example.com". Empty: none. */
      allow: z.array(z.string().min(1).superRefine(checkAllowEntry)).default([]),
    })
    .prefault({}),
  /** Hidden from the agent's commands besides the built-in credential stores. */
  deny_read: z.array(z.string().min(1)).default([]),
  /** Writable besides the session's workspace and its private temp dir. */
  allow_write: z.array(z.string().min(1)).default([]),
});

export const ConfigSchema = z.strictObject({
  opencode: OpencodeSection.prefault({}),
  workspace: WorkspaceSection.prefault({}),
  git: GitSection.prefault({}),
  limits: LimitsSection.prefault({}),
  http: HttpSection.prefault({}),
  sandbox: SandboxSection.prefault({}),
  /** Omitted: opencode.permissions if given (mapped), else DEFAULT_PERMISSIONS. */
  permissions: PermissionsSection.optional(),
  /** Coding agents besides the built-in `opencode`, by the name coding_open's `backend` uses. */
  backends: z
    .record(z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/, { error: "backend names: lowercase letters, digits, - and _, starting with a letter" }), AcpBackendSection)
    .refine((b) => !("opencode" in b), { error: '"opencode" is the built-in backend (configure it in the opencode section); give this one another name' })
    .default({}),
  /** The backend of a coding_open that names none. */
  default_backend: z.string().min(1).default("opencode"),
  log_level: z.enum(["debug", "info", "warn", "error"]).default("info"),
}).refine((c) => c.default_backend === "opencode" || c.default_backend in c.backends, {
  error: "default_backend must be opencode or a name under backends",
  path: ["default_backend"],
});

export type Config = z.infer<typeof ConfigSchema>;

/** What the running server needs beyond the validated file: resolved paths and the secrets read from the environment. */
export interface ResolvedConfig extends Omit<Config, "permissions"> {
  /** The effective policy: `permissions`, else the mapped `opencode.permissions`, else the default. */
  permissions: PermissionRules;
  /** Things worth one line in the log at start (e.g. a superseded key that was mapped). */
  notes: string[];
  /** Where the config came from, for the start-up log line. */
  source: string;
  /** The config file read, if any (hidden from the agent's commands). */
  configFile?: string;
  /** Directory for coding-mcp's own state (registry, askpass helper), inside base_path. */
  stateDir: string;
  /**
   * httpToken: the bearer token HTTP clients must send (CODING_MCP_TOKEN, else http.token);
   * clientTokens / clientGitTokens: by http.clients name, read from their token_env / git_token_env.
   */
  secrets: { opencodePassword?: string; gitToken?: string; httpToken?: string; clientTokens?: Record<string, string>; clientGitTokens?: Record<string, string> };
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

const SECTIONS = {
  opencode: OpencodeSection,
  workspace: WorkspaceSection,
  git: GitSection,
  limits: LimitsSection,
  http: HttpSection,
  sandbox: SandboxSection,
} as const;

/** List variables split on commas rather than the path delimiter. */
const COMMA_LISTS = new Set(["CODING_MCP_HTTP_ALLOWED_HOSTS", "CODING_MCP_HTTP_ALLOWED_ORIGINS"]);

/** Environment variables that are not CODING_MCP_<SECTION>_<KEY> overrides but are still ours. */
const OWN_VARIABLES = new Set(["CODING_MCP_CONFIG", "CODING_MCP_TOKEN", "CODING_MCP_LOG_LEVEL", "CODING_MCP_DEFAULT_BACKEND", "CODING_MCP_PERMISSIONS"]);

export function expandHome(p: string): string {
  if (p === "~") return os.homedir();
  if (p.startsWith("~/")) return path.join(os.homedir(), p.slice(2));
  return p;
}

function configFilePath(explicit: string | undefined, env: NodeJS.ProcessEnv): { file?: string; required: boolean } {
  if (explicit) return { file: explicit, required: true };
  if (env.CODING_MCP_CONFIG) return { file: env.CODING_MCP_CONFIG, required: true };
  const fallback = path.join(os.homedir(), ".config", "coding-mcp", "config.yaml");
  return fs.existsSync(fallback) ? { file: fallback, required: false } : { required: false };
}

/** Turn one environment value into what the schema of that key expects (number, boolean, list, map). */
function envValue(schema: z.ZodType, raw: string, name: string): unknown {
  const inner = unwrap(schema);
  if (inner instanceof z.ZodNumber) {
    const n = Number(raw);
    if (raw.trim() === "" || Number.isNaN(n)) throw new ConfigError(`${name}=${JSON.stringify(raw)}: expected a number`);
    return n;
  }
  if (inner instanceof z.ZodBoolean) {
    if (/^(1|true|yes|on)$/i.test(raw)) return true;
    if (/^(0|false|no|off)$/i.test(raw)) return false;
    throw new ConfigError(`${name}=${JSON.stringify(raw)}: expected true or false`);
  }
  if (inner instanceof z.ZodArray) {
    // Host and origin entries contain ":" themselves, so those lists are comma-separated.
    if (COMMA_LISTS.has(name)) return raw.split(",").map((v) => v.trim()).filter(Boolean);
    return raw.split(path.delimiter).filter(Boolean);
  }
  if (inner instanceof z.ZodRecord) {
    try {
      return JSON.parse(raw);
    } catch {
      throw new ConfigError(`${name}: expected a JSON object such as {"/host/path": "/container/path"}`);
    }
  }
  return raw;
}

function unwrap(schema: z.ZodType): z.ZodType {
  let s: z.ZodType = schema;
  while (s instanceof z.ZodDefault || s instanceof z.ZodOptional || s instanceof z.ZodPrefault) {
    s = s.unwrap() as z.ZodType;
  }
  return s;
}

/** CODING_MCP_<SECTION>_<KEY> variables (e.g. CODING_MCP_LIMITS_TASK_TIMEOUT_MIN=30) override the file. */
/** The config as read from YAML, before validation: sections of untyped values. */
type RawConfig = Record<string, unknown>;

function sectionOf(raw: RawConfig, name: string): Record<string, unknown> {
  const value = raw[name];
  return value && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function applyEnvironment(raw: RawConfig, env: NodeJS.ProcessEnv): void {
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith("CODING_MCP_") || value === undefined || OWN_VARIABLES.has(name)) continue;
    const rest = name.slice("CODING_MCP_".length).toLowerCase();
    const section = (Object.keys(SECTIONS) as (keyof typeof SECTIONS)[]).find((s) => rest.startsWith(s + "_"));
    const key = section ? rest.slice(section.length + 1) : undefined;
    const shape = section ? (SECTIONS[section].shape as Record<string, z.ZodType>) : undefined;
    if (!section || !key || !shape?.[key]) {
      throw new ConfigError(
        `unknown environment variable ${name}: coding-mcp reads CODING_MCP_<SECTION>_<KEY> with SECTION one of ` +
          `${Object.keys(SECTIONS).join(", ")} and KEY a key of that section (see README), plus ${[...OWN_VARIABLES].join(", ")}`,
      );
    }
    raw[section] = { ...sectionOf(raw, section), [key]: envValue(shape[key], value, name) };
  }
  if (env.OPENCODE_URL) raw.opencode = { ...sectionOf(raw, "opencode"), url: env.OPENCODE_URL };
  if (env.CODING_MCP_LOG_LEVEL) raw.log_level = env.CODING_MCP_LOG_LEVEL;
  if (env.CODING_MCP_DEFAULT_BACKEND) raw.default_backend = env.CODING_MCP_DEFAULT_BACKEND;
  if (env.CODING_MCP_PERMISSIONS) {
    try {
      raw.permissions = JSON.parse(env.CODING_MCP_PERMISSIONS);
    } catch {
      throw new ConfigError('CODING_MCP_PERMISSIONS: expected a JSON object such as {"*": "allow", "bash": "ask"}');
    }
  }
}

/** The policy in force, and a note when the superseded opencode.permissions had to be mapped. */
function resolvePermissions(config: Config): { permissions: PermissionRules; notes: string[] } {
  if (config.permissions) {
    const notes = config.opencode.permissions ? ["opencode.permissions is ignored: the top-level permissions section is set and wins"] : [];
    return { permissions: config.permissions, notes };
  }
  if (config.opencode.permissions) {
    return {
      permissions: { ...config.opencode.permissions },
      notes: ["opencode.permissions is superseded by the top-level permissions section (which also offers ask); its rules are used as they are: move them there"],
    };
  }
  return { permissions: { ...DEFAULT_PERMISSIONS }, notes: [] };
}

function describeIssues(error: z.ZodError, source: string): string {
  const lines = error.issues.map((issue) => {
    const at = issue.path.join(".") || "(top level)";
    if (issue.code === "unrecognized_keys") {
      const parent = issue.path.reduce<z.ZodType | undefined>((s, k) => {
        const inner = s && unwrap(s);
        return inner instanceof z.ZodObject ? (inner.shape as Record<PropertyKey, z.ZodType>)[k] : undefined;
      }, ConfigSchema);
      const inner = parent ? unwrap(parent) : undefined;
      const allowed = inner instanceof z.ZodObject ? Object.keys(inner.shape).join(", ") : "";
      return `  ${issue.keys.map((k) => (issue.path.length ? `${at}.${k}` : k)).join(", ")}: unknown key; allowed here: ${allowed}`;
    }
    if (issue.code === "invalid_value" && "values" in issue) {
      return `  ${at}: expected one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`;
    }
    return `  ${at}: ${issue.message}`;
  });
  return `invalid configuration (${source}):\n${lines.join("\n")}`;
}

export function loadConfig(options: { configPath?: string; env?: NodeJS.ProcessEnv } = {}): ResolvedConfig {
  const env = options.env ?? process.env;
  const { file } = configFilePath(options.configPath, env);
  let raw: RawConfig = {};
  if (file) {
    let text: string;
    try {
      text = fs.readFileSync(expandHome(file), "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new ConfigError(
        code === "ENOENT"
          ? `config file ${file} does not exist; fix the path given by --config or CODING_MCP_CONFIG, or leave both out to use the defaults`
          : `cannot read config file ${file}: ${code ?? errorMessage(err)}`,
      );
    }
    let parsed: unknown;
    try {
      parsed = parseYaml(text);
    } catch (err) {
      throw new ConfigError(`config file ${file} is not valid YAML: ${(err as Error).message}`);
    }
    if (parsed !== null && parsed !== undefined && (typeof parsed !== "object" || Array.isArray(parsed))) {
      throw new ConfigError(`config file ${file} must be a YAML mapping with the sections opencode, workspace, git, limits, http, permissions, backends`);
    }
    raw = (parsed as RawConfig | null) ?? {};
  }
  applyEnvironment(raw, env);
  const source = file ? `file ${file} and environment` : "environment and defaults";
  const result = ConfigSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(describeIssues(result.error, source));
  const config = result.data;

  config.workspace.base_path = path.resolve(expandHome(config.workspace.base_path));
  config.workspace.allowed_roots = config.workspace.allowed_roots.map((r) => path.resolve(expandHome(r)));
  config.sandbox.deny_read = config.sandbox.deny_read.map((p) => path.resolve(expandHome(p)));
  config.sandbox.allow_write = config.sandbox.allow_write.map((p) => path.resolve(expandHome(p)));
  if (config.git.ssh_key_path) config.git.ssh_key_path = path.resolve(expandHome(config.git.ssh_key_path));
  for (const [from, to] of Object.entries(config.opencode.path_map)) {
    if (!path.isAbsolute(expandHome(from)) || !path.isAbsolute(to)) {
      throw new ConfigError(`invalid configuration (${source}):\n  opencode.path_map: both sides must be absolute paths, got ${from} -> ${to}`);
    }
  }

  return {
    ...config,
    ...resolvePermissions(config),
    source,
    ...(file ? { configFile: path.resolve(expandHome(file)) } : {}),
    stateDir: path.join(config.workspace.base_path, ".coding-mcp"),
    secrets: {
      opencodePassword: config.opencode.password ?? (env[config.opencode.password_env] || undefined),
      gitToken: config.git.token ?? (env[config.git.token_env] || undefined),
      httpToken: env.CODING_MCP_TOKEN || config.http.token || undefined,
      ...clientSecrets(config, env),
    },
  };
}

/** The named callers' tokens and git tokens from the variables their entries name; an unset token variable stops the start. */
function clientSecrets(config: Config, env: NodeJS.ProcessEnv): { clientTokens: Record<string, string>; clientGitTokens: Record<string, string> } {
  const clientTokens: Record<string, string> = {};
  const clientGitTokens: Record<string, string> = {};
  for (const [name, entry] of Object.entries(config.http.clients)) {
    if (entry.token_env) {
      const token = env[entry.token_env];
      if (!token) throw new ConfigError(`http.clients.${name}.token_env: the variable ${entry.token_env} is not set; set it to the client's token, or give token_sha256 instead`);
      if (token.length < 16) throw new ConfigError(`http.clients.${name}: the token in ${entry.token_env} is too short: use at least 16 random characters (openssl rand -hex 32)`);
      clientTokens[name] = token;
    }
    if (entry.git_token_env) {
      const token = env[entry.git_token_env];
      if (!token) throw new ConfigError(`http.clients.${name}.git_token_env: the variable ${entry.git_token_env} is not set; set it to the client's git token, or remove git_token_env`);
      clientGitTokens[name] = token;
    }
  }
  return { clientTokens, clientGitTokens };
}

/** Every secret value the config holds: redacted everywhere, and no agent or git process inherits a variable holding one. */
export function secretValues(config: Pick<ResolvedConfig, "secrets">): string[] {
  const { clientTokens, clientGitTokens, ...single } = config.secrets;
  return [...Object.values(single), ...Object.values(clientTokens ?? {}), ...Object.values(clientGitTokens ?? {})].filter((v): v is string => Boolean(v));
}
