import { endedWithTurn, taskTimeoutMessage, type CodingBackend, type ModelCatalog, type ResumeTaskRequest, type RunTaskRequest, type TaskEvent } from "../backend.js";
import { UserError, errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import type { Failure, QuestionInfo, TaskResult, ToolCallTrace } from "../model.js";
import type { PermissionRules } from "../permissions.js";
import {
  OpencodeClient,
  OpencodeHttpError,
  OpencodeTimeoutError,
  OpencodeUnavailableError,
  type OpencodeMessage,
  type OpencodePart,
  type OpencodePermissionRequest,
  type OpencodePermissionRule,
  type OpencodeQuestionRequest,
  type PromptBody,
} from "./client.js";
import { EventSubscription, type OpencodeEvent } from "./events.js";
import { ManagedOpencode, type ManagedOpencodeOptions } from "./managed.js";
import { PathMap } from "./path-map.js";
import { summarizeTurn, toolCallOf, turnMessages } from "./trace.js";
import { TurnRecorder, type RecordOutcome } from "./turn-recorder.js";

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

/** How long the answer's message may take to show up in the event stream before the messages are read instead. */
const TURN_EVENTS_WAIT_MS = 1_500;

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
    const directory = this.paths.toBackend(request.directory);
    const started = Date.now();
    const body: PromptBody = { parts: [{ type: "text", text: request.prompt }] };
    if (request.model) body.model = parseModel(request.model);
    const agent = request.agent ?? this.options.agent;
    if (agent) body.agent = agent;

    const live = new LiveTurn(request.sessionId, (event) => request.onEvent?.(event), (p) => this.paths.fromBackend(p));
    const recorder = new TurnRecorder(request.sessionId);
    let promptSent = false;
    let before: string | undefined;
    const answer = this.requestAnswerer(client, directory, request, live);
    const subscription = new EventSubscription(
      client,
      directory,
      {
        event: (event, size) => {
          recorder.event(event, size);
          this.onEvent(event, request.sessionId, live, answer);
        },
        // After a (re)connection: report what happened meanwhile, and answer requests that arrived unseen.
        // Before the prompt is sent there is nothing of this task to catch up on.
        connected: async () => {
          recorder.connected();
          if (!promptSent) return;
          const messages = await client.messages(request.sessionId, directory);
          for (const m of messages) if (!before || m.info.id > before) for (const part of m.parts) live.part(part);
          await this.catchUpRequests(client, directory, answer);
        },
        dropped: () => recorder.dropped(),
      },
      this.log,
    );
    try {
      // The stream connects while we read the newest message before ours (the turn's user message is
      // the first user message after it), both while coding-mcp takes its snapshot of the workspace.
      const timed = <T>(p: Promise<T>) => p.then((value) => ({ value, ms: Date.now() - started }));
      const [newest, stream, workspace] = await Promise.all([
        timed(client.messages(request.sessionId, directory, 1).then((m) => m.at(-1)?.info.id)),
        timed(subscription.ready()),
        timed(request.workspaceReady ?? Promise.resolve()),
      ]);
      before = newest.value;
      // Where the wait before the prompt went (npm run bench reads it).
      this.log.debug(`prompt of ${request.sessionId} sent after ${Date.now() - started} ms: event stream ${stream.ms} ms, newest message ${newest.ms} ms, workspace ${workspace.ms} ms`);
      request.onEvent?.({ type: "started", directory: request.directory, ...(before ? { checkpoint: before } : {}) });
      promptSent = true;
      recorder.start(before);
      return await this.promptTurn(client, directory, body, request, { started, before, live, subscription, recorder });
    } finally {
      subscription.stop();
      recorder.clear();
    }
  }

  /** Sends the task's prompt and makes its result: from the events of the turn, or from the session's messages read back. */
  private async promptTurn(
    client: OpencodeClient,
    directory: string,
    body: PromptBody,
    request: RunTaskRequest,
    turnState: { started: number; before: string | undefined; live: LiveTurn; subscription: EventSubscription; recorder: TurnRecorder },
  ): Promise<TaskResult> {
    const { started, before, live, subscription, recorder } = turnState;
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort(new Error("task timeout"));
    }, request.timeoutMs);
    const onCancel = () => controller.abort(new Error("cancelled"));
    if (request.signal?.aborted) onCancel();
    request.signal?.addEventListener("abort", onCancel, { once: true });

    let response: OpencodeMessage | undefined;
    let failure: TaskResult["failure"];
    let failureMessage: string | undefined;
    const prompted = Date.now();
    try {
      response = await client.prompt(request.sessionId, directory, body, {
        // The task timer above ends the call; this only keeps undici from cutting it first.
        timeoutMs: request.timeoutMs + 30_000,
        signal: controller.signal,
      });
    } catch (err) {
      if (controller.signal.aborted) {
        failure = timedOut ? "timeout" : "cancelled";
        failureMessage = timedOut
          ? taskTimeoutMessage(request.timeoutMs, "aborted")
          : "the task was cancelled by the client and aborted in OpenCode";
        await this.abort(request.sessionId, request.directory).catch((e) => this.log.warn(`abort after ${failure} failed: ${errorMessage(e)}`));
      } else if (err instanceof OpencodeUnavailableError || err instanceof OpencodeTimeoutError) {
        failure = "backend_unavailable";
        failureMessage = `${err.message}. ${this.managed ? "The managed OpenCode is restarted on the next call; try again." : "Check that the OpenCode server is running."}`;
      } else if (err instanceof OpencodeHttpError) {
        failure = "agent_error";
        failureMessage = err.message;
      } else {
        throw err;
      }
    } finally {
      clearTimeout(timer);
      request.signal?.removeEventListener("abort", onCancel);
    }

    // The synchronous answer holds only the last step; the whole turn comes from the events the task
    // followed, once they show that last step begun (see TurnRecorder.until). Anything else (a failure,
    // an empty answer, a stream that was down or late) reads the session's messages, as before.
    const answered = Date.now();
    const recorded: RecordOutcome = response && !failure ? await recorder.until(response, TURN_EVENTS_WAIT_MS) : { lost: failure ? `the task failed (${failure})` : "the prompt's answer was empty" };
    subscription.stop();
    let messages: OpencodeMessage[] = [];
    if ("messages" in recorded) {
      messages = recorded.messages;
      this.log.debug(`turn of ${request.sessionId} taken from the event stream, ${Date.now() - answered} ms after the answer (the prompt took ${answered - prompted} ms)`);
    } else {
      try {
        messages = await client.messages(request.sessionId, directory);
        this.log.debug(`turn of ${request.sessionId} read back (${recorded.lost}), ${Date.now() - answered} ms after the answer`);
      } catch (err) {
        if (!failure) {
          failure = "backend_unavailable";
          failureMessage = `OpenCode finished the task but its messages could not be read: ${errorMessage(err)}`;
        }
      }
    }
    const userMessageId =
      response?.info.parentID ?? messages.filter((m) => m.info.role === "user" && (!before || m.info.id > before)).at(-1)?.info.id;
    const turn = userMessageId ? turnMessages(messages, userMessageId) : [];
    if (!response && !failure && turn.at(-1)?.info.finish !== "stop") {
      // OpenCode answered 200 with an empty body: a failed run, unless the messages show it finished.
      failure = "agent_error";
      failureMessage = "OpenCode answered with an empty body and the session shows no finished reply";
    }
    // Repeating is safe only when we know no tool ran: the live feed was up and saw none.
    const nothingRan = subscription.connectedOnce && live.calls().length === 0 && !turn.some((m) => m.parts.some((p) => p.type === "tool"));
    const result = this.turnResult(turn, started, live, {
      ...(failure ? { failure, message: failureMessage ?? failure } : {}),
      retryable: failure === "backend_unavailable" && nothingRan,
    });
    request.onEvent?.({ type: "finished", result });
    return result;
  }

  /**
   * The task's result from the turn's messages: its trace, summary and how it ended. `outcome` is what
   * coding-mcp itself saw go wrong (timeout, cancel, OpenCode gone); otherwise the agent's own error
   * in the messages decides. Calls not yet reported live are reported now, once.
   */
  private turnResult(
    turn: OpencodeMessage[],
    started: number,
    live: LiveTurn,
    outcome: { failure?: Failure; message?: string; retryable?: boolean },
  ): TaskResult {
    const endedAt = Date.now();
    const { trace, summary, error } = summarizeTurn(turn, endedAt - started, (p) => this.paths.fromBackend(p));
    for (const m of turn) for (const part of m.parts) live.part(part);
    live.endUnreported(endedAt);
    // Messages unreadable (OpenCode died): the calls seen live are the partial trace.
    // No call stays pending or running in a finished trace.
    trace.tool_calls = (turn.length === 0 ? live.calls() : trace.tool_calls).map((call) => endedWithTurn(call, endedAt));
    let { failure, message } = outcome;
    let retryable = outcome.retryable === true;
    if (error && !failure) {
      failure = "agent_error";
      message = `${error.name}: ${error.message}`;
      retryable = error.retryable === true;
    }
    const result: TaskResult = { success: !failure, summary, trace };
    if (retryable) result.retryable = true;
    if (failure) {
      result.failure = failure;
      result.error = message ?? failure;
      if (failure !== "agent_error" && trace.finish_reason === "unknown") trace.finish_reason = failure;
    }
    return result;
  }

  /**
   * Answers the turn's permission requests and questions, each once, as the core decides (policy, or a
   * person: this may take minutes, so each is answered on its own).
   */
  private requestAnswerer(client: OpencodeClient, directory: string, request: RunTaskRequest | ResumeTaskRequest, live: LiveTurn): RequestAnswerer {
    const fromBackend = (p: string) => this.paths.fromBackend(p);
    return {
      permission: (asked) => {
        if (asked.sessionID !== request.sessionId || !live.firstAsk(asked.id)) return;
        const metadata = { ...(asked.metadata ?? {}) };
        if (typeof metadata.filepath === "string") metadata.filepath = fromBackend(metadata.filepath);
        void (async () => {
          const answer = await request
            .permission({
              permission: asked.permission,
              patterns: (asked.patterns ?? []).slice(0, 10).map(fromBackend),
              metadata,
              ...(asked.always?.length ? { always: asked.always.slice(0, 10).map(fromBackend) } : {}),
            })
            .catch((err) => {
              this.log.warn(`permission ${asked.id}: no decision (${errorMessage(err)}); rejecting`);
              return { reply: "reject" as const, message: "coding-mcp could not decide this request" };
            });
          // OpenCode keeps an `always` for the whole project, beyond this session (seen on 1.18.33): the core
          // remembers "for the session" itself, so OpenCode is told once each time.
          const reply = answer.reply === "always" ? "once" : answer.reply;
          // A refusal without a message ends the agent's turn; with one, the agent reads it and goes on.
          const message = answer.reply === "reject" ? (answer.message ?? "Denied by coding-mcp") : undefined;
          await client.replyPermission(asked.id, directory, reply, message);
        })().catch((err) => this.log.warn(`could not answer permission ${asked.id}: ${errorMessage(err)}`));
      },
      question: (asked) => {
        if (asked.sessionID !== request.sessionId || !live.firstAsk(asked.id)) return;
        const questions: QuestionInfo[] = asked.questions.map((q) => ({
          question: q.question,
          ...(q.header ? { header: q.header } : {}),
          options: (q.options ?? []).map((o) => ({ label: o.label, ...(o.description ? { description: o.description } : {}) })),
          ...(q.multiple ? { multiple: true } : {}),
          // OpenCode offers the person their own words unless the agent says otherwise.
          custom: q.custom !== false,
        }));
        void (async () => {
          const answer = await request.ask({ questions }).catch((err) => {
            this.log.warn(`question ${asked.id}: no answer (${errorMessage(err)}); dismissing it`);
            return { rejected: true as const };
          });
          if ("answers" in answer) await client.replyQuestion(asked.id, directory, answer.answers);
          else await client.rejectQuestion(asked.id, directory);
        })().catch((err) => this.log.warn(`could not answer question ${asked.id}: ${errorMessage(err)}`));
      },
    };
  }

  /** Requests that arrived while the event stream was down. */
  private async catchUpRequests(client: OpencodeClient, directory: string, answer: RequestAnswerer): Promise<void> {
    const [permissions, questions] = await Promise.all([client.permissions(directory), client.questions(directory).catch(() => [])]);
    for (const asked of permissions) answer.permission(asked);
    for (const asked of questions) answer.question(asked);
  }

  async resumeTask(request: ResumeTaskRequest): Promise<TaskResult> {
    const client = await this.ready();
    const directory = this.paths.toBackend(request.directory);
    const started = Date.now();
    const deadline = started + request.timeoutMs;
    const live = new LiveTurn(request.sessionId, (event) => request.onEvent?.(event), (p) => this.paths.fromBackend(p));
    const after = (m: OpencodeMessage) => !request.checkpoint || m.info.id > request.checkpoint;
    const answer = this.requestAnswerer(client, directory, request, live);
    let idlePolls = 0;
    for (;;) {
      await this.catchUpRequests(client, directory, answer).catch(() => undefined);
      const messages = await client.messages(request.sessionId, directory).catch(() => undefined);
      const userId = messages?.filter((m) => m.info.role === "user" && after(m)).at(-1)?.info.id;
      const turn = messages && userId ? turnMessages(messages, userId) : [];
      for (const m of turn) for (const part of m.parts) live.part(part);
      const last = turn.at(-1)?.info;
      const finished = Boolean(last?.error || (last?.time.completed && last.finish && last.finish !== "tool-calls"));
      const status = await client.sessionStatus(directory).catch(() => undefined);
      const busy = status?.[request.sessionId] !== undefined && status[request.sessionId]?.type !== "idle";
      if (!busy && status) idlePolls += 1;
      const stop = request.signal?.aborted || Date.now() > deadline;
      // Idle twice in a row without a finished reply: OpenCode no longer runs this turn.
      if ((finished && !busy) || idlePolls >= 2 || stop) {
        if (stop && busy) await this.abort(request.sessionId, request.directory).catch(() => undefined);
        const cancelled = request.signal?.aborted === true;
        const outcome: { failure?: Failure; message?: string } = stop
          ? cancelled
            ? { failure: "cancelled", message: "the task was cancelled and aborted in OpenCode" }
            : { failure: "timeout", message: "the task did not finish in time and was aborted" }
          : finished
            ? {}
            : { failure: "backend_unavailable", message: "the task was interrupted: coding-mcp restarted while it ran, and OpenCode no longer runs it; run it again" };
        const result = this.turnResult(turn, started, live, outcome);
        request.onEvent?.({ type: "finished", result });
        return result;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  private onEvent(event: OpencodeEvent, sessionId: string, live: LiveTurn, answer: RequestAnswerer): void {
    const props = event.properties;
    if (event.type === "message.part.updated") {
      const part = props.part as OpencodePart | undefined;
      if (part && part.sessionID === sessionId) live.part(part);
    } else if (event.type === "permission.asked") {
      answer.permission(props as unknown as OpencodePermissionRequest);
    } else if (event.type === "question.asked") {
      answer.question(props as unknown as OpencodeQuestionRequest);
    }
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

interface RequestAnswerer {
  permission(asked: OpencodePermissionRequest): void;
  question(asked: OpencodeQuestionRequest): void;
}


/**
 * What a running turn has reported so far: each tool call once as it starts and once as it ends,
 * however often (and from whichever source: events, catch-up, the final messages) it is seen.
 */
class LiveTurn {
  private readonly reported = new Map<string, "started" | "ended">();
  private readonly latest = new Map<string, ToolCallTrace>();
  private readonly asked = new Set<string>();

  constructor(
    private readonly sessionId: string,
    private readonly emit: (event: TaskEvent) => void,
    private readonly mapPath: (p: string) => string,
  ) {}

  part(part: OpencodePart): void {
    if (part.type !== "tool" || !part.state || (part.sessionID && part.sessionID !== this.sessionId)) return;
    const key = String(part.callID ?? part.id);
    const phase = part.state.status === "completed" || part.state.status === "error" ? "ended" : part.state.status === "running" ? "started" : undefined;
    if (!phase) return;
    const seen = this.reported.get(key);
    if (seen === "ended" || seen === phase) return;
    const call = toolCallOf(part, this.mapPath);
    if (!call) return;
    this.latest.set(key, call);
    if (phase === "ended" && !seen) this.emit({ type: "tool", phase: "started", call });
    this.reported.set(key, phase);
    this.emit({ type: "tool", phase, call });
  }

  /** The turn is over: a call reported as started and never as ended ends now, as `unreported`. */
  endUnreported(now: number): void {
    for (const [key, seen] of this.reported) {
      const call = this.latest.get(key);
      if (seen !== "started" || !call) continue;
      const ended = endedWithTurn(call, now);
      this.latest.set(key, ended);
      this.reported.set(key, "ended");
      this.emit({ type: "tool", phase: "ended", call: ended });
    }
  }

  /** The tool calls seen so far, in the order they started. */
  calls(): ToolCallTrace[] {
    return [...this.latest.values()];
  }

  /** True the first time a permission request or question is seen. */
  firstAsk(id: string): boolean {
    if (this.asked.has(id)) return false;
    this.asked.add(id);
    return true;
  }
}
