import type { OpencodeMessage, OpencodeMessageInfo, OpencodePart } from "./client.js";
import type { OpencodeEvent } from "./events.js";

/**
 * A task's messages as the event stream shows them, so that the trace needs no read of the session
 * afterwards. OpenCode publishes every stored change of a message (`message.updated`, the whole info)
 * and of a part (`message.part.updated`, the whole part) in order on one stream; the last event of
 * each is the stored state, so the record equals what `GET /session/{id}/message` answers (parts and
 * messages in id order, as OpenCode sorts them). The stream has no replay: a record that may have
 * missed an event (the stream was down, or came up only after the prompt was sent) says so, and the
 * caller reads the messages instead. Bounded by the size of what it holds; dropped with the task.
 */

/** Above this (the JSON size of the latest version of every message and part) the record gives up. */
export const RECORD_LIMIT_CHARS = 4 * 1024 * 1024;

interface Recorded {
  info?: OpencodeMessageInfo;
  infoSize: number;
  parts: Map<string, { part: OpencodePart; size: number }>;
}

export type RecordOutcome = { messages: OpencodeMessage[] } | { lost: string };

export class TurnRecorder {
  private readonly messages = new Map<string, Recorded>();
  private recording = false;
  private streamUp = false;
  private after?: string;
  private size = 0;
  private lostReason?: string;
  private waiter?: { final: OpencodeMessage; done: (outcome: RecordOutcome) => void };

  constructor(
    private readonly sessionId: string,
    private readonly limitChars = RECORD_LIMIT_CHARS,
  ) {}

  /** The stream is (again) connected. Events of the gap are gone, so a reconnection while recording loses the record. */
  connected(): void {
    this.streamUp = true;
    if (this.recording) this.lose("the event stream reconnected during the turn");
  }

  /** The stream went down: what happens until it is back is not seen. */
  dropped(): void {
    this.streamUp = false;
    if (this.recording) this.lose("the event stream dropped during the turn");
  }

  /** Record from now on (just before the prompt is sent), only messages newer than `after`. */
  start(after: string | undefined): void {
    this.after = after;
    this.recording = true;
    if (!this.streamUp) this.lose("the event stream was not connected when the prompt was sent");
  }

  event(event: OpencodeEvent, size: number): void {
    if (!this.recording || this.lostReason) return;
    const props = event.properties;
    switch (event.type) {
      case "message.updated": {
        const info = props.info as OpencodeMessageInfo | undefined;
        if (!info || !this.mine(info.sessionID, info.id)) return;
        const recorded = this.entry(info.id);
        this.resize(recorded.infoSize, size);
        recorded.info = info;
        recorded.infoSize = size;
        break;
      }
      case "message.part.updated": {
        const part = props.part as (OpencodePart & { sessionID?: string; messageID?: string }) | undefined;
        if (!part?.id || !part.messageID || !this.mine(part.sessionID, part.messageID)) return;
        const parts = this.entry(part.messageID).parts;
        this.resize(parts.get(part.id)?.size ?? 0, size);
        parts.set(part.id, { part, size });
        break;
      }
      case "message.part.removed": {
        const { messageID, partID } = props as { sessionID?: string; messageID?: string; partID?: string };
        if (!messageID || !partID || !this.mine(props.sessionID, messageID)) return;
        const parts = this.messages.get(messageID)?.parts;
        this.resize(parts?.get(partID)?.size ?? 0, 0);
        parts?.delete(partID);
        break;
      }
      case "message.removed": {
        const { messageID } = props as { messageID?: string };
        const recorded = messageID && this.mine(props.sessionID, messageID) ? this.messages.get(messageID) : undefined;
        if (!recorded) return;
        this.resize(recorded.infoSize + [...recorded.parts.values()].reduce((n, p) => n + p.size, 0), 0);
        this.messages.delete(messageID!);
        break;
      }
      default:
        return;
    }
    if (this.size > this.limitChars) this.lose(`the turn's events exceed ${Math.ceil(this.limitChars / 1024)} KB`);
    else this.check();
  }

  /**
   * The recorded messages, with `final` (the prompt's answer: the turn's last message, as OpenCode
   * stored it) in its place, once the stream has shown that message begin. OpenCode completes each
   * step's message (its last event) before it creates the next, and the stream is in order, so by
   * then every earlier message of the turn is complete here; the answer's own last events may still
   * trail it, but the answer already is that final state. The answer may also come before the
   * message's first event: wait at most `timeoutMs` for it.
   */
  until(final: OpencodeMessage, timeoutMs: number): Promise<RecordOutcome> {
    if (this.lostReason) return Promise.resolve({ lost: this.lostReason });
    if (this.shows(final)) return Promise.resolve({ messages: this.list(final) });
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        resolve({ lost: `the event stream did not show the answer's message within ${timeoutMs} ms of the answer` });
      }, timeoutMs);
      this.waiter = {
        final,
        done: (outcome) => {
          clearTimeout(timer);
          this.waiter = undefined;
          resolve(outcome);
        },
      };
    });
  }

  /** Stop recording and drop what was held. */
  clear(): void {
    this.recording = false;
    this.messages.clear();
    this.size = 0;
    this.waiter?.done({ lost: "the task ended" });
  }

  private mine(sessionId: unknown, messageId: string): boolean {
    return sessionId === this.sessionId && (!this.after || messageId > this.after);
  }

  private entry(messageId: string): Recorded {
    let recorded = this.messages.get(messageId);
    if (!recorded) this.messages.set(messageId, (recorded = { infoSize: 0, parts: new Map() }));
    return recorded;
  }

  private resize(old: number, now: number): void {
    this.size += now - old;
  }

  private lose(reason: string): void {
    this.lostReason ??= reason;
    this.messages.clear();
    this.size = 0;
    this.waiter?.done({ lost: this.lostReason });
  }

  private check(): void {
    if (this.waiter && this.shows(this.waiter.final)) this.waiter.done({ messages: this.list(this.waiter.final) });
  }

  private shows(final: OpencodeMessage): boolean {
    return this.messages.get(final.info.id)?.info !== undefined;
  }

  /** Messages and their parts in id order, as OpenCode lists them, `final` as answered; a message whose info was never seen is left out. */
  private list(final: OpencodeMessage): OpencodeMessage[] {
    return [...this.messages.entries()]
      .filter((e): e is [string, Recorded & { info: OpencodeMessageInfo }] => e[1].info !== undefined)
      .sort(byId)
      .map(([id, recorded]) => (id === final.info.id ? final : { info: recorded.info, parts: sortedParts(recorded) }));
  }
}

function sortedParts(recorded: Recorded): OpencodePart[] {
  return [...recorded.parts.entries()].sort(byId).map(([, p]) => p.part);
}

/** OpenCode's ids sort by creation; it lists messages and parts in that order (plain string order, not locale). */
function byId([a]: [string, unknown], [b]: [string, unknown]): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
