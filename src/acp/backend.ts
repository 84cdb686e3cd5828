import { randomUUID } from "node:crypto";
import type * as acp from "@agentclientprotocol/sdk/unstable";
import { taskTimeoutMessage, type CodingBackend, type ModelCatalog, type PermissionAsk, type ResumeTaskRequest, type RunTaskRequest, type TaskEvent } from "../backend.js";
import { UserError, errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import type { PermissionReply, TaskResult } from "../model.js";
import { AgentGoneError, AgentProcess, AgentStartError } from "./agent-process.js";
import { sandboxKey } from "../confinement/index.js";
import { claudeSessionMeta, confinementRoute, unconfinableError, writeClaudeShell, type AcpConfinementRoute, type AcpSandboxOptions } from "./confinement.js";
import { AcpTurn, permissionAskOf } from "./mapping.js";

/**
 * A coding backend on any agent that speaks the Agent Client Protocol over stdio (OpenCode's
 * `opencode acp`, Claude Code through claude-agent-acp, Codex through codex-acp, Gemini CLI with
 * --acp): one agent process per configured backend, started on first use and again after it died,
 * several sessions on it (`session/new` with the workspace as cwd), one `session/prompt` per task.
 */

export interface AcpBackendOptions {
  /** The configured name (e.g. "claude"): sessions, logs and spans say it. */
  name: string;
  command: string[];
  /** The agent's whole environment (coding-mcp's without the secrets, plus the entry's env). */
  env: NodeJS.ProcessEnv;
  /** Where the agent process runs (its sessions each get their workspace as cwd). */
  cwd: string;
  /** The ACP session mode selected after session/new, when the agent has modes. */
  mode?: string;
  log: Logger;
  /** How long the agent may take to start and to answer initialize and session/new (backends.X.startup_timeout_sec). */
  startupTimeoutMs: number;
  /** How long a cancelled turn may take to end before the agent is taken as hung (default 10 s). */
  cancelGraceMs?: number;
  /** Whether the agent's commands must be confined, and whether `env` already points its shell at coding-mcp's confined shell (./confinement.ts). */
  sandbox?: { required: boolean; shellConfigured: boolean; keys?: Pick<AcpSandboxOptions, "confinement" | "profileVariable"> };
}

/** How long a cancelled turn may take to answer before the agent is considered hung and restarted. */
const CANCEL_GRACE_MS = 10_000;
/** How long after a cancelled turn a running command may take to report its end before the agent is restarted. */
const COMMAND_GRACE_MS = 2_000;

interface SessionState {
  directory: string;
  /** The agent session that serves this coding-mcp session now (differs after a fresh start without session/load). */
  agentSessionId: string;
  /** The process the agent session lives in. */
  process?: AgentProcess;
  modes?: acp.SessionModeState;
  configOptions?: acp.SessionConfigOption[];
  /** The session's cumulative cost as the agent last reported it. */
  cost?: number;
  /** The sandbox key the agent was given for this session (an alias of the session's own; Claude Code). */
  profileAlias?: string;
}

interface LiveTurn {
  turn: AcpTurn;
  emit: (event: TaskEvent) => void;
  directory: string;
  decide: (ask: PermissionAsk) => Promise<PermissionReply>;
  /** The last request of the turn that was rejected: Codex ends the whole turn on a rejection. */
  rejected?: PermissionAsk;
}

export class AcpBackend implements CodingBackend {
  readonly name: string;
  /** Spans `acp.task` and `acp.tool.<name>`, with gen_ai.agent.name the configured name. */
  readonly telemetry: { agent: string; prefix: string };
  /**
   * Under sandbox.mode on (and no `sandbox: off` on the entry) the core prepares each session's
   * sandbox; sessions run only on an agent whose commands go through it (./confinement.ts), others are refused.
   */
  readonly confinesCommands: boolean;
  private agent?: AgentProcess;
  private starting?: Promise<AgentProcess>;
  private readonly sessions = new Map<string, SessionState>();
  /** Turns in progress by agent session id, to route updates and permission requests. */
  private readonly live = new Map<string, LiveTurn>();
  /** Agent sessions being loaded: the history they replay is not part of any turn. */
  private readonly loading = new Set<string>();
  private stopped = false;
  /** Config options of a fresh session: where the model catalog comes from. */
  private catalogOptions?: acp.SessionConfigOption[];
  /** Claude Code's confined shell, written on first use. */
  private claudeShell?: string;

  constructor(private readonly options: AcpBackendOptions) {
    this.name = options.name;
    this.telemetry = { agent: options.name, prefix: "acp" };
    this.confinesCommands = options.sandbox?.required ?? false;
  }

  /** How the running agent's commands are confined (decided by what it says it is, once started). */
  private routeOf(agent: AgentProcess): AcpConfinementRoute {
    return confinementRoute(agent.agentInfo?.name, this.options.sandbox?.shellConfigured ?? false);
  }

  /**
   * For an agent confined per session (Claude Code): a fresh sandbox key for it, and the `_meta`
   * that hands it over with the confined shell. The key becomes an alias of the session's sandbox.
   */
  private sessionConfinement(agent: AgentProcess): { alias: string; meta: Record<string, unknown> } | undefined {
    const keys = this.options.sandbox?.keys;
    if (!this.confinesCommands || !keys || this.routeOf(agent) !== "claude-shell") return undefined;
    this.claudeShell ??= writeClaudeShell(keys.confinement.launcherPath);
    const alias = `acp-${randomUUID()}`;
    return { alias, meta: claudeSessionMeta(this.claudeShell, keys.profileVariable, alias) };
  }

  /** Refuse a session on an agent whose commands cannot be confined when they must be. */
  private assertConfinable(agent: AgentProcess): void {
    if (this.confinesCommands && this.routeOf(agent) === "none") {
      throw unconfinableError(this.name, `${agent.agentInfo?.name ?? this.options.command[0]} ${agent.agentInfo?.version ?? ""}`.trim());
    }
  }

  /** Start the agent (once; again after it died). A command that cannot start is a clear error. */
  async start(): Promise<void> {
    await this.process();
  }

  private process(): Promise<AgentProcess> {
    if (this.agent?.alive) return Promise.resolve(this.agent);
    if (this.stopped) return Promise.reject(new Error(`backend "${this.name}" is stopped`));
    this.starting ??= AgentProcess.start({
      backend: this.name,
      command: this.options.command,
      env: this.options.env,
      cwd: this.options.cwd,
      log: this.options.log,
      startupTimeoutMs: this.options.startupTimeoutMs,
      onUpdate: (n) => this.onUpdate(n),
      onPermission: (req) => this.onPermission(req),
    })
      .then((agent) => {
        this.agent = agent;
        void agent.exited.then((why) => {
          if (!this.stopped) this.options.log.warn(`ACP agent of backend "${this.name}" (pid ${agent.pid}) ${why}; it is started again for the next task`);
        });
        return agent;
      })
      .finally(() => {
        this.starting = undefined;
      });
    return this.starting;
  }

  /**
   * The models the agent lets its client choose (its "model" config option), and the one a new
   * session starts with; undefined when it offers no choice. Read from the sessions' config options;
   * before the first session, from a probe session in the backend's directory, closed again.
   */
  async models(): Promise<ModelCatalog | undefined> {
    if (!this.catalogOptions) {
      const agent = await this.process();
      const probe = await agent.within(agent.request("session/new", { cwd: this.options.cwd, mcpServers: [] }), this.requestTimeout, "session/new");
      this.catalogOptions = probe.configOptions ?? [];
      if (agent.capabilities.sessionCapabilities?.close) await agent.request("session/close", { sessionId: probe.sessionId }).catch(() => undefined);
    }
    const option = this.catalogOptions.find((o) => o.category === "model" && o.type === "select");
    if (!option || option.type !== "select") return undefined;
    return { available: selectValues(option), ...(typeof option.currentValue === "string" ? { default: option.currentValue } : {}) };
  }

  /** Agents that name models provider/model (OpenCode) say both; others only the model. */
  describeModel(model: string): { provider?: string; model: string } {
    const slash = model.indexOf("/");
    return slash > 0 ? { provider: model.slice(0, slash), model: model.slice(slash + 1) } : { model };
  }

  async openSession(directory: string, _options: { title: string }): Promise<{ id: string }> {
    const agent = await this.process();
    this.assertConfinable(agent);
    const confined = this.sessionConfinement(agent);
    const created = await agent.within(
      agent.request("session/new", { cwd: directory, mcpServers: [], ...(confined ? { _meta: confined.meta } : {}) }),
      this.requestTimeout,
      "session/new",
    );
    if (confined) await this.options.sandbox!.keys!.confinement.alias(confined.alias, sandboxKey(created.sessionId));
    const state: SessionState = { directory, agentSessionId: created.sessionId, process: agent, ...(confined ? { profileAlias: confined.alias } : {}) };
    if (created.modes) state.modes = created.modes;
    if (created.configOptions) state.configOptions = created.configOptions;
    this.sessions.set(created.sessionId, state);
    this.catalogOptions ??= created.configOptions ?? [];
    try {
      if (this.options.mode) await this.setMode(state, this.options.mode);
    } catch (err) {
      this.sessions.delete(created.sessionId);
      throw err;
    }
    this.options.log.info(`ACP session ${created.sessionId} of backend "${this.name}" opened in ${directory}`);
    return { id: created.sessionId };
  }

  private get requestTimeout(): number {
    return this.options.startupTimeoutMs;
  }

  /** Select a mode: session/set_mode where the agent lists modes, else its "mode" config option. */
  private async setMode(state: SessionState, mode: string): Promise<void> {
    const agent = state.process!;
    const modeOption = state.configOptions?.find((o) => o.category === "mode" && o.type === "select");
    if (state.modes) {
      const ids = state.modes.availableModes.map((m) => m.id);
      if (!ids.includes(mode)) throw new UserError(`backend "${this.name}" has no mode "${mode}"`, `Use one of: ${ids.join(", ")} (as code's agent, or backends.${this.name}.mode).`);
      if (state.modes.currentModeId === mode) return;
      await agent.within(agent.request("session/set_mode", { sessionId: state.agentSessionId, modeId: mode }), this.requestTimeout, "session/set_mode");
      state.modes = { ...state.modes, currentModeId: mode };
    } else if (modeOption && modeOption.type === "select") {
      const values = selectValues(modeOption);
      if (!values.includes(mode)) throw new UserError(`backend "${this.name}" has no mode "${mode}"`, `Use one of: ${values.join(", ")} (as code's agent, or backends.${this.name}.mode).`);
      if (modeOption.currentValue === mode) return;
      await this.setOption(state, modeOption.id, mode);
    } else {
      throw new UserError(`backend "${this.name}" offers no modes, so agent "${mode}" cannot be selected`, `Leave out agent (and backends.${this.name}.mode).`);
    }
  }

  private async setModel(state: SessionState, model: string): Promise<void> {
    const option = state.configOptions?.find((o) => o.category === "model" && o.type === "select");
    if (!option || option.type !== "select") {
      throw new UserError(`backend "${this.name}" does not let its client choose a model`, "Leave out model; the agent uses the model its own configuration names.");
    }
    const values = selectValues(option);
    if (!values.includes(model)) throw new UserError(`backend "${this.name}" has no model "${model}"`, `Use one of: ${values.join(", ")}.`);
    if (option.currentValue !== model) await this.setOption(state, option.id, model);
  }

  private async setOption(state: SessionState, configId: string, value: string): Promise<void> {
    const agent = state.process!;
    const answer = await agent.within(
      agent.request("session/set_config_option", { sessionId: state.agentSessionId, configId, value }),
      this.requestTimeout,
      "session/set_config_option",
    );
    if (answer?.configOptions) state.configOptions = answer.configOptions;
  }

  /**
   * The session ready on the running agent: as it is, or (after the agent or coding-mcp restarted)
   * loaded with session/load where the agent supports it, else a fresh agent session in the same workspace.
   */
  private async ready(sessionId: string, directory: string): Promise<SessionState> {
    const agent = await this.process();
    this.assertConfinable(agent);
    let state = this.sessions.get(sessionId);
    if (state && state.process === agent) return state;
    state ??= { directory, agentSessionId: sessionId };
    state.directory = directory;
    // The agent process is new: a per-session confined agent gets a fresh key, an alias of this session's sandbox.
    const confined = this.sessionConfinement(agent);
    if (confined) {
      if (state.profileAlias) await this.options.sandbox!.keys!.confinement.unalias(state.profileAlias);
      await this.options.sandbox!.keys!.confinement.alias(confined.alias, sandboxKey(sessionId));
      state.profileAlias = confined.alias;
    }
    const meta = confined ? { _meta: confined.meta } : {};
    if (agent.capabilities.loadSession) {
      this.loading.add(state.agentSessionId);
      try {
        const loaded = await agent.within(
          agent.request("session/load", { sessionId: state.agentSessionId, cwd: directory, mcpServers: [], ...meta }),
          this.requestTimeout,
          "session/load",
        );
        state.process = agent;
        if (loaded?.modes) state.modes = loaded.modes;
        if (loaded?.configOptions) state.configOptions = loaded.configOptions;
        this.sessions.set(sessionId, state);
        this.options.log.info(`ACP session ${state.agentSessionId} of backend "${this.name}" loaded again`);
        return state;
      } catch (err) {
        if (err instanceof AgentGoneError) throw err;
        this.options.log.warn(`session/load of ${state.agentSessionId} failed (${errorMessage(err)}); starting a fresh agent session in ${directory}`);
      } finally {
        this.loading.delete(state.agentSessionId);
      }
    }
    const created = await agent.within(agent.request("session/new", { cwd: directory, mcpServers: [], ...meta }), this.requestTimeout, "session/new");
    const fresh: SessionState = { directory, agentSessionId: created.sessionId, process: agent, ...(state.profileAlias ? { profileAlias: state.profileAlias } : {}) };
    if (created.modes) fresh.modes = created.modes;
    if (created.configOptions) fresh.configOptions = created.configOptions;
    if (this.options.mode) await this.setMode(fresh, this.options.mode).catch((e) => this.options.log.warn(`mode ${this.options.mode}: ${errorMessage(e)}`));
    this.sessions.set(sessionId, fresh);
    this.options.log.info(`coding-mcp session's agent session ${sessionId} continues as ${created.sessionId} (backend "${this.name}" cannot load sessions)`);
    return fresh;
  }

  async runTask(request: RunTaskRequest): Promise<TaskResult> {
    const started = Date.now();
    const emit = (event: TaskEvent) => request.onEvent?.(event);
    let state: SessionState;
    try {
      state = await this.ready(request.sessionId, request.directory);
      if (request.agent) await this.setMode(state, request.agent);
      if (request.model) await this.setModel(state, request.model);
    } catch (err) {
      // A mode or model the agent does not offer: the task ends before any prompt, saying what to use.
      // Otherwise the agent could not be (re)started or did not answer: nothing ran, so the task may be repeated.
      const refused = err instanceof UserError && !(err instanceof AgentStartError);
      const hint = err instanceof UserError && err.hint ? ` ${err.hint}` : "";
      const result = this.failed(new AcpTurn(), started, refused ? "agent_error" : "backend_unavailable", errorMessage(err) + hint);
      if (!refused && !(err instanceof AgentStartError)) result.retryable = true;
      emit({ type: "finished", result });
      return result;
    }
    // The agent was made ready while coding-mcp took its snapshot; the prompt waits for the snapshot.
    await request.workspaceReady;
    const agent = state.process!;
    const model = currentValue(state.configOptions, "model");
    const turn = new AcpTurn({ ...(state.cost !== undefined ? { costBefore: state.cost } : {}), ...(model ? { model } : {}) });
    const live: LiveTurn = { turn, emit, directory: request.directory, decide: request.decide };
    this.live.set(state.agentSessionId, live);
    emit({ type: "started", directory: request.directory });

    let timedOut = false;
    let cancelled = false;
    const prompt = agent.request("session/prompt", { sessionId: state.agentSessionId, prompt: [{ type: "text", text: request.prompt }] });
    prompt.catch(() => undefined);
    const stop = new Promise<"timeout" | "cancel">((resolve) => {
      const timer = setTimeout(() => resolve("timeout"), request.timeoutMs);
      const onAbort = () => resolve("cancel");
      if (request.signal?.aborted) onAbort();
      request.signal?.addEventListener("abort", onAbort, { once: true });
      void prompt.finally(() => {
        clearTimeout(timer);
        request.signal?.removeEventListener("abort", onAbort);
      }).catch(() => undefined);
    });

    let response: acp.PromptResponse | undefined;
    let failure: TaskResult["failure"];
    let message: string | undefined;
    try {
      const first = await Promise.race([prompt.then((r) => ({ done: r })), stop.then((why) => ({ stop: why }))]);
      if ("done" in first) {
        response = first.done;
      } else {
        timedOut = first.stop === "timeout";
        cancelled = !timedOut;
        await agent.notify("session/cancel", { sessionId: state.agentSessionId }).catch(() => undefined);
        response = await agent.within(prompt, this.options.cancelGraceMs ?? CANCEL_GRACE_MS, "session/cancel");
      }
    } catch (err) {
      failure = "backend_unavailable";
      if (err instanceof AgentGoneError && agent.alive) {
        // Hung: it answered neither the turn nor the cancel. Stop it (and what it runs); the next task starts it again.
        message = `${err.message}; it was stopped and is started again for the next task`;
        await agent.stop();
      } else {
        message = `${errorMessage(err)}; it is started again for the next task`;
      }
    }

    // A cancelled turn may leave a command running (Codex does): give it a moment to report its end, then stop the agent.
    if (response && (timedOut || cancelled)) {
      const deadline = Date.now() + COMMAND_GRACE_MS;
      while (turn.unfinished("execute").length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      if (turn.unfinished("execute").length && agent.alive) {
        this.options.log.warn(`backend "${this.name}" left a command running after the cancel; stopping the agent (it is started again for the next task)`);
        await agent.stop();
      }
    }
    this.live.delete(state.agentSessionId);

    if (!failure && (timedOut || cancelled)) {
      failure = timedOut ? "timeout" : "cancelled";
      message = timedOut
        ? taskTimeoutMessage(request.timeoutMs, "cancelled")
        : `the task was cancelled by the client and the agent stopped it`;
    } else if (!failure && response && response.stopReason !== "end_turn") {
      failure = "agent_error";
      const after = live.rejected ? ` after its ${live.rejected.permission} request (${live.rejected.patterns.join(", ").slice(0, 200)}) was rejected` : "";
      message = `the agent ended its turn with "${response.stopReason}"${after}`;
    }
    const outcome = turn.finish(response, Date.now() - started);
    for (const event of outcome.ended) emit(event);
    if (turn.sessionCost !== undefined) state.cost = turn.sessionCost;
    const result: TaskResult = { success: !failure, summary: outcome.summary, trace: outcome.trace };
    if (failure) {
      result.failure = failure;
      result.error = message ?? failure;
      if (outcome.trace.finish_reason === "unknown") outcome.trace.finish_reason = failure;
      if (failure === "backend_unavailable" && outcome.trace.tool_calls.length === 0) result.retryable = true;
    }
    emit({ type: "finished", result });
    return result;
  }

  private failed(turn: AcpTurn, started: number, failure: NonNullable<TaskResult["failure"]>, error: string): TaskResult {
    const outcome = turn.finish(undefined, Date.now() - started);
    outcome.trace.finish_reason = failure;
    return { success: false, summary: "", trace: outcome.trace, failure, error };
  }

  /**
   * After a restart of coding-mcp the agent process that ran the task is gone with the old process
   * (its turn cannot be followed), so the task is reported interrupted; the session itself goes on
   * (session/load, or a fresh agent session in the same workspace) with the next task.
   */
  async resumeTask(request: ResumeTaskRequest): Promise<TaskResult> {
    const result = this.failed(
      new AcpTurn(),
      Date.now(),
      "backend_unavailable",
      `the task was interrupted: coding-mcp restarted while it ran, and the ACP agent of backend "${this.name}" that ran it stopped with it; run it again`,
    );
    request.onEvent?.({ type: "finished", result });
    return result;
  }

  async abort(sessionId: string): Promise<void> {
    const state = this.sessions.get(sessionId);
    if (state?.process?.alive) await state.process.notify("session/cancel", { sessionId: state.agentSessionId });
  }

  async closeSession(sessionId: string): Promise<void> {
    const state = this.sessions.get(sessionId);
    this.sessions.delete(sessionId);
    if (state?.profileAlias) await this.options.sandbox?.keys?.confinement.unalias(state.profileAlias);
    if (state?.process?.alive && state.process.capabilities.sessionCapabilities?.close) {
      await state.process.within(state.process.request("session/close", { sessionId: state.agentSessionId }), this.requestTimeout, "session/close");
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const agent = this.agent ?? (await this.starting?.catch(() => undefined));
    await agent?.stop();
  }

  private onUpdate(notification: acp.SessionNotification): void {
    if (this.loading.has(notification.sessionId)) return;
    const live = this.live.get(notification.sessionId);
    if (!live || !notification.update) return;
    for (const event of live.turn.update(notification.update, Date.now())) live.emit(event);
  }

  private async onPermission(request: acp.RequestPermissionRequest): Promise<acp.RequestPermissionResponse> {
    const live = this.live.get(request.sessionId);
    // Not part of a running task (e.g. after a cancel): nobody asked for it.
    if (!live) return { outcome: { outcome: "cancelled" } };
    for (const event of live.turn.permissionAsked(request.toolCall, Date.now())) live.emit(event);
    const ask = permissionAskOf(request, live.directory);
    let reply: PermissionReply;
    try {
      reply = await live.decide(ask);
    } catch (err) {
      this.options.log.warn(`permission ${ask.permission}: ${errorMessage(err)}; rejected`);
      reply = "reject";
    }
    if (reply === "reject") live.rejected = ask;
    // The core records the request and its answer (trace.permissions, the permission event): not here.
    const wanted: acp.PermissionOptionKind[] =
      reply === "reject" ? ["reject_once", "reject_always"] : reply === "always" ? ["allow_always", "allow_once"] : ["allow_once", "allow_always"];
    for (const kind of wanted) {
      const option = request.options.find((o) => o.kind === kind);
      if (option) return { outcome: { outcome: "selected", optionId: option.optionId } };
    }
    return { outcome: { outcome: "cancelled" } };
  }
}

function selectValues(option: acp.SessionConfigOption): string[] {
  if (option.type !== "select") return [];
  const out: string[] = [];
  for (const entry of option.options as unknown[]) {
    const e = entry as { value?: string; options?: { value: string }[] };
    if (typeof e.value === "string") out.push(e.value);
    for (const inner of e.options ?? []) out.push(inner.value);
  }
  return out;
}

function currentValue(options: acp.SessionConfigOption[] | undefined, category: string): string | undefined {
  const option = options?.find((o) => o.category === category);
  return option && typeof option.currentValue === "string" ? option.currentValue : undefined;
}

