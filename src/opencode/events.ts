import { EventSourceParserStream } from "eventsource-parser/stream";
import type { Logger } from "../log.js";
import type { OpencodeClient } from "./client.js";

/**
 * Follows an OpenCode instance's event stream for the length of a task. The stream has no replay,
 * so on every connection (the first included) `connected` catches up from the session's state, and
 * a dropped stream is reconnected with backoff; consumers deduplicate. A stream silent for longer than OpenCode's heartbeat interval is
 * treated as dropped.
 */

export interface OpencodeEvent {
  type: string;
  properties: Record<string, unknown>;
}

export interface EventHandlers {
  /** Every event, with the length of its JSON (what holding on to it costs). */
  event(event: OpencodeEvent, size: number): void;
  /** After every connection, the first included (called before that connection's first event is handed on). */
  connected(): Promise<void>;
  /** The stream went down: its events are missed until the next `connected`. */
  dropped(): void;
}

const SILENCE_LIMIT_MS = 60_000;
const RECONNECT_DELAYS_MS = [100, 250, 500, 1000, 2000];

export class EventSubscription {
  private readonly controller = new AbortController();
  private readonly connected: Promise<void>;
  private markConnected!: () => void;
  private stopped = false;
  /** Whether the stream was ever up: without it, "no tool call seen" proves nothing. */
  connectedOnce = false;

  constructor(
    private readonly client: OpencodeClient,
    private readonly directory: string,
    private readonly handlers: EventHandlers,
    private readonly log: Logger,
  ) {
    this.connected = new Promise((resolve) => (this.markConnected = resolve));
    void this.run();
  }

  /** Resolves once the first connection is up (bounded: a task never waits long on its progress feed). */
  ready(timeoutMs = 3_000): Promise<void> {
    return Promise.race([this.connected, new Promise<void>((r) => setTimeout(r, timeoutMs).unref())]);
  }

  stop(): void {
    this.stopped = true;
    this.controller.abort();
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      try {
        const body = await this.client.eventStream(this.directory, this.controller.signal);
        attempt = 0;
        await this.consume(body, () => {
          // Catch up on what happened before this connection (also the first: the task may have started already).
          void this.handlers.connected().catch((err) => this.log.debug(`event catch-up failed: ${(err as Error).message}`));
        });
      } catch (err) {
        if (this.stopped) return;
        this.log.debug(`event stream for ${this.directory} dropped: ${(err as Error).message}`);
      }
      if (this.stopped) return;
      this.handlers.dropped();
      const delay = RECONNECT_DELAYS_MS[Math.min(attempt, RECONNECT_DELAYS_MS.length - 1)]!;
      attempt += 1;
      await new Promise((r) => setTimeout(r, delay));
    }
  }

  private async consume(body: AsyncIterable<Uint8Array>, onConnected: () => void): Promise<void> {
    const events = ReadableStream.from(body).pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream());
    const reader = events.getReader();
    let silence: NodeJS.Timeout | undefined;
    const armSilence = () => {
      clearTimeout(silence);
      silence = setTimeout(() => void reader.cancel("silent"), SILENCE_LIMIT_MS);
    };
    try {
      armSilence();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        armSilence();
        let event: OpencodeEvent;
        try {
          event = JSON.parse(value.data) as OpencodeEvent;
        } catch {
          continue;
        }
        if (event.type === "server.connected") {
          this.connectedOnce = true;
          this.markConnected();
          onConnected();
        }
        this.handlers.event(event, value.data.length);
      }
    } finally {
      clearTimeout(silence);
    }
  }
}
