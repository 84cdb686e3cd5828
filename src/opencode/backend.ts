import type { CodingBackend, ModelCatalog, ResumeTaskRequest, RunTaskRequest } from "../backend.js";
import { UserError, errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import type { TaskResult } from "../model.js";
import type { PermissionRules } from "../permissions.js";
import { OpencodeClient, type OpencodePermissionRule, type PromptBody } from "./client.js";
import { ManagedOpencode, type ManagedOpencodeOptions } from "./managed.js";
import { PathMap } from "./path-map.js";
import { OpencodeTurn, type TurnContext } from "./turn.js";

/** The API generation this backend speaks; 2.x moved everything under /api with other shapes. */
const SUPPORTED_MAJOR = 1;
const TESTED_MINOR = 18;

export interface OpencodeBackendOptions {
  /** An OpenCode server to use; omitted: start and supervise our own. */
  url?: string;
  username: string;
  password?: string;
  pathMap: Record<string, string>;
  /** provider/model for tasks that name none (opencode.model); omitted: the server's own default. */
  model?: string;
  /** OpenCode agent for tasks that name none (opencode.agent). */
  agent?: string;
  /** coding-mcp's permission policy: what it does not simply allow is given to every new session as its rules. */
  permissions?: PermissionRules;
  log: Logger;
  /** For a managed server: the environment it gets (secrets already removed) and where it runs. */
  managed?: Omit<ManagedOpencodeOptions, "log">;
  /** Never reachable by the agent's in-process tools, whatever the policy: coding-mcp's state (its sandbox profiles). */
  protectedPaths?: string[];
  /** The managed server's bash runs through coding-mcp's confined shell (its env says so: src/opencode/confined-shell.ts). */
  confined?: boolean;
}

/** OpenCode names a model provider/model. */
export function parseModel(model: string): { providerID: string; modelID: string } {
  const slash = model.indexOf("/");
  if (slash <= 0 || slash === model.length - 1) {
    throw new UserError(`model "${model}" is not of the form provider/model`, "Pass e.g. anthropic/claude-sonnet-4-5, as OpenCode names it.");
  }
  return { providerID: model.slice(0, slash), modelID: model.slice(slash + 1) };
}

/**
 * A session's permission rules from coding-mcp's policy, so that OpenCode asks (and coding-mcp
 * decides) whatever OpenCode's own config says: a session's rules come after the config's, and the
 * last matching rule wins. `deny` kinds are asked too, and refused by coding-mcp with a reason: the
 * refusal is then in the trace and the agent reads why (a bare refusal would end its turn). The agent's
 * questions are let through to the person unless the policy denies them.
 */
export function sessionPermissionRules(policy: PermissionRules, protectedPaths: string[] = []): OpencodePermissionRule[] {
  const rules: OpencodePermissionRule[] = [];
  const others = policy["*"] ?? "allow";
  if (others !== "allow") rules.push({ permission: "*", pattern: "*", action: "ask" });
  for (const [kind, rule] of Object.entries(policy)) {
    if (kind === "*" || kind === "question") continue;
    if (rule !== "allow") rules.push({ permission: kind, pattern: "*", action: "ask" });
    else if (others !== "allow") rules.push({ permission: kind, pattern: "*", action: "allow" });
  }
  rules.push({ permission: "question", pattern: "*", action: policy.question === "deny" ? "deny" : "allow" });
  // Last, so no policy lets the in-process tools into coding-mcp's own state (the sandbox profiles among it).
  for (const dir of protectedPaths) rules.push({ permission: "external_directory", pattern: dir, action: "deny" }, { permission: "external_directory", pattern: `${dir}/*`, action: "deny" });
  return rules;
}

/** How long the model catalog is trusted before it is read again (a managed restart reads it anew). */
const CATALOG_TTL_MS = 60_000;

export class OpencodeBackend implements CodingBackend {
  readonly name = "opencode";
  readonly telemetry = { agent: "opencode", prefix: "opencode" };
  readonly confinesCommands: boolean;
  private client?: OpencodeClient;
  private catalog?: { at: number; url: string; value: Promise<ModelCatalog> };
  private started?: Promise<void>;
  private clientUrl?: string;
  private readonly managed?: ManagedOpencode;
  private readonly paths: PathMap;
  private readonly log: Logger;

  constructor(private readonly options: OpencodeBackendOptions) {
    this.log = options.log;
    this.paths = new PathMap(options.pathMap);
    this.confinesCommands = Boolean(options.confined && !options.url);
    if (!options.url) {
      if (!options.managed) throw new Error("OpencodeBackend needs either a url or managed options");
      this.managed = new ManagedOpencode({ log: options.log, ...options.managed });
    }
  }

  /** Connect (starting a managed server) and check the server's version; once, retried after a failure. */
  start(): Promise<void> {
    this.started ??= this.checkServer().catch((err) => {
      this.started = undefined;
      throw err;
    });
    return this.started;
  }

  private async checkServer(): Promise<void> {
    const client = await this.connect();
    let health: { healthy: boolean; version: string };
    try {
      health = await client.health();
    } catch (err) {
      throw new Error(`OpenCode at ${client.baseUrl} is not reachable: ${errorMessage(err)}. Check OPENCODE_URL, or unset it to let coding-mcp start its own.`);
    }
    const [major, minor] = health.version.split(".").map(Number);
    if (major !== SUPPORTED_MAJOR) {
      throw new Error(
        `OpenCode at ${client.baseUrl} reports version ${health.version}; coding-mcp speaks OpenCode's ${SUPPORTED_MAJOR}.x server API ` +
          `(tested with 1.${TESTED_MINOR}). Point OPENCODE_URL at an OpenCode 1.${TESTED_MINOR} server, or unset it to use the bundled one.`,
      );
    }
    if (minor !== TESTED_MINOR) this.log.warn(`OpenCode ${health.version} is not the tested 1.${TESTED_MINOR}.x; continuing`);
    this.log.info(`OpenCode ${health.version} at ${client.baseUrl} is healthy`);
  }

  /** A checked client for a live server. */
  private async ready(): Promise<OpencodeClient> {
    await this.start();
    return this.connect();
  }

  /** A client for the server; a managed one that died is started again here. */
  private async connect(): Promise<OpencodeClient> {
    let url = this.options.url!;
    let password = this.options.password;
    let username = this.options.username;
    if (this.managed) {
      const running = await this.managed.ensure();
      ({ url, password, username } = running);
    }
    if (!this.client || this.clientUrl !== url) {
      await this.client?.close();
      this.client = new OpencodeClient({ baseUrl: url, username, ...(password ? { password } : {}) });
      this.clientUrl = url;
    }
    return this.client;
  }

  /** Every provider/model the server has configured; the default is opencode.model, else the server's own. */
  async models(): Promise<ModelCatalog> {
    const client = await this.ready();
    const cached = this.catalog;
    if (cached && cached.url === client.baseUrl && Date.now() - cached.at < CATALOG_TTL_MS) return cached.value;
    const value = this.readCatalog(client);
    this.catalog = { at: Date.now(), url: client.baseUrl, value };
    value.catch(() => (this.catalog = undefined));
    return value;
  }

  private async readCatalog(client: OpencodeClient): Promise<ModelCatalog> {
    const [{ providers, default: defaults }, config] = await Promise.all([client.providers(), client.config()]);
    const available = providers.flatMap((p) => Object.keys(p.models).map((m) => `${p.id}/${m}`));
    const first = providers.find((p) => defaults?.[p.id]);
    const serverDefault = config.model ?? (first ? `${first.id}/${defaults![first.id]}` : undefined);
    if (this.options.model && !available.includes(this.options.model)) {
      throw new UserError(
        `opencode.model "${this.options.model}" is not a model the OpenCode server offers`,
        `Set opencode.model (or CODING_MCP_OPENCODE_MODEL) to one of: ${available.slice(0, 30).join(", ") || "(none configured)"}, or remove it to use OpenCode's default.`,
        "unknown_model",
      );
    }
    const fallback = this.options.model ?? serverDefault;
    return { available, ...(fallback ? { default: fallback } : {}) };
  }

  describeModel(model: string): { provider: string; model: string } {
    const { providerID, modelID } = parseModel(model);
    return { provider: providerID, model: modelID };
  }

  async openSession(directory: string, options: { title: string }): Promise<{ id: string }> {
    const client = await this.ready();
    const agent = this.options.agent;
    const session = await client.createSession(this.paths.toBackend(directory), {
      title: options.title,
      ...(agent ? { agent } : {}),
      ...(this.options.permissions || this.options.protectedPaths?.length
        ? { permission: sessionPermissionRules(this.options.permissions ?? {}, this.options.protectedPaths) }
        : {}),
    });
    return { id: session.id };
  }

  async runTask(request: RunTaskRequest): Promise<TaskResult> {
    const client = await this.ready();
    const body: PromptBody = { parts: [{ type: "text", text: request.prompt }] };
    if (request.model) body.model = parseModel(request.model);
    const agent = request.agent ?? this.options.agent;
    if (agent) body.agent = agent;
    return new OpencodeTurn(client, request, this.turnContext()).run(body);
  }

  async resumeTask(request: ResumeTaskRequest): Promise<TaskResult> {
    const client = await this.ready();
    return new OpencodeTurn(client, request, this.turnContext()).resume();
  }

  /** What a turn needs of the backend around it. */
  private turnContext(): TurnContext {
    return {
      paths: this.paths,
      log: this.log,
      abort: (sessionId, directory) => this.abort(sessionId, directory),
      unavailableHint: this.managed ? "The managed OpenCode is restarted on the next call; try again." : "Check that the OpenCode server is running.",
    };
  }

  async abort(sessionId: string, directory: string): Promise<void> {
    const client = await this.ready();
    await client.abort(sessionId, this.paths.toBackend(directory));
  }

  async closeSession(sessionId: string, directory: string): Promise<void> {
    const client = await this.ready();
    await client.deleteSession(sessionId, this.paths.toBackend(directory));
  }

  async stop(): Promise<void> {
    await this.client?.close();
    await this.managed?.stop();
  }
}
