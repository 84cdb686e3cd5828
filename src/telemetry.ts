import { format } from "node:util";
import {
  context,
  defaultTextMapGetter,
  diag,
  DiagLogLevel,
  SpanKind,
  SpanStatusCode,
  trace,
  type AttributeValue,
  type Attributes,
  type Context,
  type DiagLogger,
  type Span,
} from "@opentelemetry/api";
import { W3CTraceContextPropagator } from "@opentelemetry/core";
import type { TaskEvent, TelemetryLabels } from "./backend.js";
import { UserError, errorMessage } from "./errors.js";
import type { Logger } from "./log.js";
import type { TaskResult, ToolCallTrace } from "./model.js";
import { Redactor } from "./redact.js";
import { VERSION } from "./version.js";

/**
 * OpenTelemetry tracing. Code is instrumented with @opentelemetry/api only: without an SDK every
 * span is a no-op. startTelemetry registers the SDK (OTLP/HTTP exporter) only when the standard
 * OTEL_* variables ask for it. Span attributes are set through safeAttributes/setAttributes, which
 * pass every string through the redactor, so no secret reaches a collector.
 */

/** The one tracer; a proxy that follows whichever provider is registered (ours, or a test's). */
export const tracer = trace.getTracer("coding-mcp", VERSION);

// Module-wide like the global tracer provider it serves; replaced by the app's redactor at start.
let redactor = new Redactor();

type AttributeInput = Record<string, AttributeValue | undefined>;

/** Attributes with every string redacted and undefined values left out. */
export function safeAttributes(attributes: AttributeInput): Attributes {
  const out: Attributes = {};
  for (const [key, value] of Object.entries(attributes)) {
    if (value === undefined) continue;
    out[key] = typeof value === "string" ? redactor.text(value) : Array.isArray(value) ? (redactor.value(value)) : value;
  }
  return out;
}

export function setAttributes(span: Span, attributes: AttributeInput): void {
  if (span.isRecording()) span.setAttributes(safeAttributes(attributes));
}

/** Mark a span failed: `type` is a short, low-cardinality error.type; the message is redacted. */
export function failSpan(span: Span, type: string, message?: string): void {
  span.setAttribute("error.type", type);
  span.setStatus({ code: SpanStatusCode.ERROR, ...(message ? { message: redactor.text(message).slice(0, 1000) } : {}) });
}

export function errorType(err: unknown): string {
  if (err instanceof UserError) return err.code;
  return err instanceof Error ? err.name : "Error";
}

/** Run `fn` inside a new active span; a throw marks the span failed. */
export function withSpan<T>(
  name: string,
  attributes: AttributeInput,
  fn: (span: Span) => Promise<T>,
  options: { kind?: SpanKind; parent?: Context } = {},
): Promise<T> {
  return tracer.startActiveSpan(name, { kind: options.kind ?? SpanKind.INTERNAL, attributes: safeAttributes(attributes) }, options.parent ?? context.active(), async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      failSpan(span, errorType(err), errorMessage(err));
      throw err;
    } finally {
      span.end();
    }
  });
}

const w3c = new W3CTraceContextPropagator();

/** The context an MCP request asks for: its `_meta.traceparent` (and `tracestate`), when it sent one. */
export function contextFromMeta(meta: Record<string, unknown> | undefined, base: Context = context.active()): Context {
  const carrier: Record<string, string> = {};
  for (const key of ["traceparent", "tracestate"]) {
    const value = meta?.[key];
    if (typeof value === "string") carrier[key] = value;
  }
  return carrier.traceparent ? w3c.extract(base, carrier, defaultTextMapGetter) : base;
}

/**
 * The span of one coding task (`<prefix>.task`, e.g. `opencode.task`), and under it one span per tool
 * call of the agent (`<prefix>.tool.<name>`), opened and closed as the task's events arrive, with the
 * backend's own start and end times. The backend's labels choose the names.
 */
export class TaskSpan {
  readonly context: Context;
  private readonly span: Span;
  private readonly tools = new Map<string, { span: Span; start: number }>();
  private readonly prefix: string;

  constructor(
    labels: TelemetryLabels,
    attributes: AttributeInput,
    private readonly requested?: { provider?: string; model: string },
    parent: Context = context.active(),
  ) {
    this.prefix = labels.prefix;
    this.span = tracer.startSpan(
      `${this.prefix}.task`,
      {
        attributes: safeAttributes({
          "gen_ai.operation.name": "invoke_agent",
          "gen_ai.agent.name": labels.agent,
          "gen_ai.provider.name": requested?.provider,
          "gen_ai.request.model": requested?.model,
          [`${this.prefix}.provider`]: requested?.provider,
          [`${this.prefix}.model`]: requested?.model,
          ...attributes,
        }),
      },
      parent,
    );
    this.context = trace.setSpan(parent, this.span);
  }

  event = (event: TaskEvent): void => {
    if (event.type === "tool") {
      // The key is the backend's call id: a call's "started" and "ended" events carry the same one.
      const key = event.call.call_id ?? event.call.tool;
      if (event.phase === "started") this.startTool(key, event.call);
      else this.endTool(key, event.call);
    } else if (event.type === "retry") {
      this.span.addEvent("retry", safeAttributes({ [`${this.prefix}.attempt`]: event.attempt, "error.message": event.error }));
    } else if (event.type === "request") {
      this.span.addEvent(
        "request",
        safeAttributes({
          "coding_mcp.request.id": event.request.request_id,
          "coding_mcp.request.kind": event.request.kind,
          "coding_mcp.request.summary": event.request.summary,
          "coding_mcp.request.elicited": event.request.elicited,
        }),
      );
    } else if (event.type === "permission") {
      const d = event.decision;
      this.span.addEvent(
        "permission",
        safeAttributes({
          [`${this.prefix}.permission`]: d.permission,
          [`${this.prefix}.permission.reply`]: d.reply,
          "coding_mcp.request.id": d.request_id,
          "coding_mcp.request.decided_by": d.decided_by,
          "coding_mcp.request.duration_ms": d.duration_ms,
        }),
      );
    } else if (event.type === "question") {
      const d = event.decision;
      this.span.addEvent(
        "question",
        safeAttributes({
          "coding_mcp.request.id": d.request_id,
          "coding_mcp.question.rejected": d.rejected,
          "coding_mcp.request.decided_by": d.decided_by,
          "coding_mcp.request.duration_ms": d.duration_ms,
        }),
      );
    }
  };

  private startTool(key: string, call: ToolCallTrace): void {
    if (this.tools.has(key)) return;
    const start = call.started_at ?? Date.now();
    const span = tracer.startSpan(
      `${this.prefix}.tool.${call.tool}`,
      {
        // A Date, not a number: OpenTelemetry reads a small number as time since process start.
        startTime: new Date(start),
        attributes: safeAttributes({
          "gen_ai.operation.name": "execute_tool",
          "gen_ai.tool.name": call.tool,
          "gen_ai.tool.call.id": call.call_id,
          [`${this.prefix}.tool.title`]: call.title,
        }),
      },
      this.context,
    );
    this.tools.set(key, { span, start });
  }

  private endTool(key: string, call: ToolCallTrace): void {
    if (!this.tools.has(key)) this.startTool(key, call);
    const { span, start } = this.tools.get(key)!;
    this.tools.delete(key);
    setAttributes(span, { [`${this.prefix}.tool.status`]: call.status, [`${this.prefix}.tool.title`]: call.title });
    if (call.status === "error") failSpan(span, "tool_error", call.error);
    span.end(new Date(Math.max(start, call.ended_at ?? Date.now())));
  }

  /** The task's result: usage, cost and model on the span, which then ends. */
  end(result: TaskResult, filesChanged?: number): void {
    const { trace: t } = result;
    const p = this.prefix;
    // A figure the agent did not report is left off the span rather than recorded as 0.
    const unknown = new Set(t.unknown);
    const cost = unknown.has("cost") ? {} : { [`${p}.cost`]: t.cost };
    const tokens = unknown.has("tokens")
      ? {}
      : {
          [`${p}.tokens.input`]: t.tokens.input,
          [`${p}.tokens.output`]: t.tokens.output,
          [`${p}.tokens.reasoning`]: t.tokens.reasoning,
          [`${p}.tokens.cache_read`]: t.tokens.cache_read,
          [`${p}.tokens.cache_write`]: t.tokens.cache_write,
          // GenAI conventions count cached input in input_tokens; the trace's "input" leaves it out.
          "gen_ai.usage.input_tokens": t.tokens.input + t.tokens.cache_read + t.tokens.cache_write,
          "gen_ai.usage.output_tokens": t.tokens.output,
          "gen_ai.usage.cache_read.input_tokens": t.tokens.cache_read,
          "gen_ai.usage.cache_creation.input_tokens": t.tokens.cache_write,
        };
    setAttributes(this.span, {
      [`${p}.model`]: t.model,
      [`${p}.provider`]: t.provider,
      ...cost,
      ...tokens,
      [`${p}.tool_calls`]: t.tool_calls.length + (t.tool_calls_omitted ?? 0),
      [`${p}.finish_reason`]: t.finish_reason,
      [`${p}.attempts`]: result.attempts,
      [`${p}.files_changed`]: filesChanged,
      "gen_ai.provider.name": t.provider,
      "gen_ai.request.model": this.requested?.model ?? t.model,
      "gen_ai.response.model": t.model,
      "gen_ai.response.finish_reasons": [t.finish_reason],
    });
    if (!result.success) failSpan(this.span, result.failure ?? "agent_error", result.error);
    this.close();
  }

  /** The task could not be run or followed to its end. */
  fail(err: unknown): void {
    failSpan(this.span, errorType(err), errorMessage(err));
    this.close();
  }

  private close(): void {
    // Calls cut off with the task (cancel, timeout) end with it.
    for (const { span } of this.tools.values()) {
      setAttributes(span, { [`${this.prefix}.tool.status`]: "interrupted" });
      span.end();
    }
    this.tools.clear();
    this.span.end();
  }
}

export interface Telemetry {
  /** Export what is buffered and stop; bounded, so an unreachable collector cannot hold up an exit. */
  shutdown(): Promise<void>;
}

const SHUTDOWN_MS = 5_000;

/** Whether the standard variables ask for traces to be exported. */
export function tracingRequested(env: NodeJS.ProcessEnv): boolean {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return false;
  if (env.OTEL_TRACES_EXPORTER?.trim().toLowerCase() === "none") return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT);
}

/**
 * Use the app's redactor for span attributes, and start the SDK with an OTLP/HTTP (JSON) exporter
 * when the environment asks for it. The exporter reads its endpoint, headers and timeout from the
 * standard variables itself; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES name the service.
 */
export async function startTelemetry(options: { env: NodeJS.ProcessEnv; log: Logger; redactor: Redactor }): Promise<Telemetry> {
  redactor = options.redactor;
  const { env, log } = options;
  if (!tracingRequested(env)) return { shutdown: async () => undefined };

  // Loaded only when asked for: with tracing off, coding-mcp does not even load the SDK.
  const [{ NodeTracerProvider, BatchSpanProcessor }, { OTLPTraceExporter }, { defaultResource, detectResources, envDetector, resourceFromAttributes }] = await Promise.all([
    import("@opentelemetry/sdk-trace-node"),
    import("@opentelemetry/exporter-trace-otlp-http"),
    import("@opentelemetry/resources"),
  ]);
  // The SDK's own messages (e.g. a collector that cannot be reached) go to our log, on stderr: stdout is MCP's.
  diag.setLogger(diagLogger(log), { logLevel: diagLevel(env.OTEL_LOG_LEVEL), suppressOverrideMessage: true });
  const provider = new NodeTracerProvider({
    resource: defaultResource()
      .merge(resourceFromAttributes({ "service.name": "coding-mcp", "service.version": VERSION }))
      .merge(detectResources({ detectors: [envDetector] })),
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  // Global provider, W3C propagator and the async-hooks context manager that carries the active span across awaits.
  provider.register();
  log.info(`exporting traces over OTLP/HTTP to ${env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || `${env.OTEL_EXPORTER_OTLP_ENDPOINT?.replace(/\/+$/, "")}/v1/traces`}`);
  return {
    async shutdown() {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        provider.shutdown().catch((err: unknown) => log.warn(`OpenTelemetry shutdown: ${errorMessage(err)}`)),
        new Promise((resolve) => (timer = setTimeout(resolve, SHUTDOWN_MS))),
      ]);
      clearTimeout(timer);
    },
  };
}

function diagLevel(value: string | undefined): DiagLogLevel {
  const level = DiagLogLevel[(value ?? "").trim().toUpperCase() as keyof typeof DiagLogLevel];
  return typeof level === "number" ? level : DiagLogLevel.WARN;
}

function diagLogger(log: Logger): DiagLogger {
  const line = (message: string, args: unknown[]) => `OpenTelemetry: ${format(message, ...args)}`.slice(0, 2000);
  return {
    error: (m, ...a) => log.warn(line(m, a)),
    warn: (m, ...a) => log.warn(line(m, a)),
    info: (m, ...a) => log.info(line(m, a)),
    debug: (m, ...a) => log.debug(line(m, a)),
    verbose: (m, ...a) => log.debug(line(m, a)),
  };
}
