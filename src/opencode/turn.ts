import { endedWithTurn, taskTimeoutMessage, type ResumeTaskRequest, type RunTaskRequest, type TaskEvent } from "../backend.js";
import { errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import type { Failure, QuestionInfo, TaskResult, ToolCallTrace } from "../model.js";
import {
  OpencodeHttpError,
  OpencodeTimeoutError,
  OpencodeUnavailableError,
  type OpencodeClient,
  type OpencodeMessage,
  type OpencodePart,
  type OpencodePermissionRequest,
  type OpencodeQuestionRequest,
  type PromptBody,
} from "./client.js";
import { EventSubscription, type OpencodeEvent } from "./events.js";
import type { PathMap } from "./path-map.js";
import { filesWrittenByTurn } from "./files-written.js";
import { summarizeTurn, toolCallOf, turnMessages } from "./trace.js";
import { TurnRecorder, type RecordOutcome } from "./turn-recorder.js";

/**
 * One task's turn in OpenCode: the prompt sent and followed through the event stream (or a turn
 * picked up after a restart, followed by polling), the agent's permission requests and questions
 * answered as the core decides, each tool call reported live once as it starts and ends, and the
 * result made from the turn's messages. The backend (backend.ts) connects and hands it a client.
 */

/** What a turn needs of the backend around it. */
export interface TurnContext {
  paths: PathMap;
  log: Logger;
  /** Abort the session's run in OpenCode. */
  abort(sessionId: string, directory: string): Promise<void>;
  /** What to do when OpenCode is gone (a managed one is restarted; an external one must be). */
  unavailableHint: string;
}

/** How long the answer's message may take to show up in the event stream before the messages are read instead. */
const TURN_EVENTS_WAIT_MS = 1_500;

export class OpencodeTurn {
  private readonly directory: string;
  private readonly live: LiveTurn;
  private readonly answer: RequestAnswerer;

  constructor(
    private readonly client: OpencodeClient,
    private readonly request: RunTaskRequest | ResumeTaskRequest,
    private readonly context: TurnContext,
  ) {
    this.directory = context.paths.toBackend(request.directory);
    this.live = new LiveTurn(request.sessionId, (event) => request.onEvent?.(event), (p) => context.paths.fromBackend(p));
    this.answer = this.answerer();
  }

  /** Sends the task's prompt and follows the turn to its result. */
  async run(body: PromptBody): Promise<TaskResult> {
    const { client, directory, live } = this;
    const request = this.request as RunTaskRequest;
    const started = Date.now();
    const recorder = new TurnRecorder(request.sessionId);
    let promptSent = false;
    let before: string | undefined;
    const subscription = new EventSubscription(
      client,
      directory,
      {
        event: (event, size) => {
          recorder.event(event, size);
          this.onEvent(event);
        },
        // After a (re)connection: report what happened meanwhile, and answer requests that arrived unseen.
        // Before the prompt is sent there is nothing of this task to catch up on.
        connected: async () => {
          recorder.connected();
          if (!promptSent) return;
          const messages = await client.messages(request.sessionId, directory);
          live.replay(messages, before);
          await this.catchUpRequests();
        },
        dropped: () => recorder.dropped(),
      },
      this.context.log,
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
      this.context.log.debug(`prompt of ${request.sessionId} sent after ${Date.now() - started} ms: event stream ${stream.ms} ms, newest message ${newest.ms} ms, workspace ${workspace.ms} ms`);
      request.onEvent?.({ type: "started", directory: request.directory, ...(before ? { checkpoint: before } : {}) });
      promptSent = true;
      recorder.start(before);
      return await this.prompt(body, request, { started, before, subscription, recorder });
    } finally {
      subscription.stop();
      recorder.clear();
    }
  }

  /** Sends the task's prompt and makes its result: from the events of the turn, or from the session's messages read back. */
  private async prompt(
    body: PromptBody,
    request: RunTaskRequest,
    turnState: { started: number; before: string | undefined; subscription: EventSubscription; recorder: TurnRecorder },
  ): Promise<TaskResult> {
    const { client, directory, live } = this;
    const { started, before, subscription, recorder } = turnState;
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
        await this.context.abort(request.sessionId, request.directory).catch((e) => this.context.log.warn(`abort after ${failure} failed: ${errorMessage(e)}`));
      } else if (err instanceof OpencodeUnavailableError || err instanceof OpencodeTimeoutError) {
        failure = "backend_unavailable";
        failureMessage = `${err.message}. ${this.context.unavailableHint}`;
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
      this.context.log.debug(`turn of ${request.sessionId} taken from the event stream, ${Date.now() - answered} ms after the answer (the prompt took ${answered - prompted} ms)`);
    } else {
      try {
        messages = await client.messages(request.sessionId, directory);
        this.context.log.debug(`turn of ${request.sessionId} read back (${recorded.lost}), ${Date.now() - answered} ms after the answer`);
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
    const result = this.result(turn, started, {
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
  private result(turn: OpencodeMessage[], started: number, outcome: { failure?: Failure; message?: string; retryable?: boolean }): TaskResult {
    const live = this.live;
    const endedAt = Date.now();
    const { trace, summary, error } = summarizeTurn(turn, endedAt - started, (p) => this.context.paths.fromBackend(p));
    live.replay(turn);
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
    if (!failure && turn.length) {
      const written = filesWrittenByTurn(turn, this.request.directory, (p) => this.context.paths.fromBackend(p));
      if (written) result.files_written = written;
    }
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
  private answerer(): RequestAnswerer {
    const { client, directory, live, request } = this;
    const fromBackend = (p: string) => this.context.paths.fromBackend(p);
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
              this.context.log.warn(`permission ${asked.id}: no decision (${errorMessage(err)}); rejecting`);
              return { reply: "reject" as const, message: "coding-mcp could not decide this request" };
            });
          // OpenCode keeps an `always` for the whole project, beyond this session (seen on 1.18.33): the core
          // remembers "for the session" itself, so OpenCode is told once each time.
          const reply = answer.reply === "always" ? "once" : answer.reply;
          // A refusal without a message ends the agent's turn; with one, the agent reads it and goes on.
          const message = answer.reply === "reject" ? (answer.message ?? "Denied by coding-mcp") : undefined;
          await client.replyPermission(asked.id, directory, reply, message);
        })().catch((err) => this.context.log.warn(`could not answer permission ${asked.id}: ${errorMessage(err)}`));
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
            this.context.log.warn(`question ${asked.id}: no answer (${errorMessage(err)}); dismissing it`);
            return { rejected: true as const };
          });
          if ("answers" in answer) await client.replyQuestion(asked.id, directory, answer.answers);
          else await client.rejectQuestion(asked.id, directory);
        })().catch((err) => this.context.log.warn(`could not answer question ${asked.id}: ${errorMessage(err)}`));
      },
    };
  }

  /** Requests that arrived while the event stream was down. */
  private async catchUpRequests(): Promise<void> {
    const { client, directory, answer } = this;
    const [permissions, questions] = await Promise.all([client.permissions(directory), client.questions(directory).catch(() => [])]);
    for (const asked of permissions) answer.permission(asked);
    for (const asked of questions) answer.question(asked);
  }

  /**
   * Follows a turn that was running when coding-mcp restarted (its prompt was sent by the process
   * before), by polling the session until it ends, and makes its result.
   */
  async resume(): Promise<TaskResult> {
    const { client, directory, live } = this;
    const request = this.request as ResumeTaskRequest;
    const started = Date.now();
    const deadline = started + request.timeoutMs;
    let idlePolls = 0;
    for (;;) {
      await this.catchUpRequests().catch(() => undefined);
      const messages = await client.messages(request.sessionId, directory).catch(() => undefined);
      const userId = messages?.filter((m) => m.info.role === "user" && (!request.checkpoint || m.info.id > request.checkpoint)).at(-1)?.info.id;
      const turn = messages && userId ? turnMessages(messages, userId) : [];
      live.replay(turn);
      const last = turn.at(-1)?.info;
      const finished = Boolean(last?.error || (last?.time.completed && last.finish && last.finish !== "tool-calls"));
      const status = await client.sessionStatus(directory).catch(() => undefined);
      const busy = status?.[request.sessionId] !== undefined && status[request.sessionId]?.type !== "idle";
      if (!busy && status) idlePolls += 1;
      const stop = request.signal?.aborted || Date.now() > deadline;
      // Idle twice in a row without a finished reply: OpenCode no longer runs this turn.
      if ((finished && !busy) || idlePolls >= 2 || stop) {
        if (stop && busy) await this.context.abort(request.sessionId, request.directory).catch(() => undefined);
        const cancelled = request.signal?.aborted === true;
        const outcome: { failure?: Failure; message?: string } = stop
          ? cancelled
            ? { failure: "cancelled", message: "the task was cancelled and aborted in OpenCode" }
            : { failure: "timeout", message: taskTimeoutMessage(request.timeoutMs, "aborted") }
          : finished
            ? {}
            : { failure: "backend_unavailable", message: "the task was interrupted: coding-mcp restarted while it ran, and OpenCode no longer runs it; run it again" };
        const result = this.result(turn, started, outcome);
        request.onEvent?.({ type: "finished", result });
        return result;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
  }

  private onEvent(event: OpencodeEvent): void {
    const { answer, live } = this;
    const sessionId = this.request.sessionId;
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

  /** Every part of these messages, in order (those of messages not newer than `after` left out). */
  replay(messages: OpencodeMessage[], after?: string): void {
    for (const m of messages) if (!after || m.info.id > after) for (const part of m.parts) this.part(part);
  }

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
