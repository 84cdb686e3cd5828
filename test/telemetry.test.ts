import { randomBytes } from "node:crypto";
import fs from "node:fs";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { CallToolResultSchema, type CallToolResult } from "@modelcontextprotocol/sdk/types.js";
import { SpanKind, SpanStatusCode, type HrTime } from "@opentelemetry/api";
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor, type ReadableSpan } from "@opentelemetry/sdk-trace-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp, type App } from "../src/app.js";
import { loadConfig } from "../src/config.js";
import { createLogger } from "../src/log.js";
import { Redactor } from "../src/redact.js";
import { createServer } from "../src/server.js";
import { tracingRequested } from "../src/telemetry.js";
import { coder } from "./support/fake-model.mjs";
import { makeBareRemote, prepare, structured, until } from "./support/harness.js";

// The span tree of real tasks, in process: coding-mcp's app and MCP server with an SDK Client over an
// in-memory transport, the real managed OpenCode and the scripted fake model, and the OpenTelemetry
// SDK with an in-memory exporter registered globally (as the CLI registers its OTLP one).

// Only word characters, so the scripted model uses it in a file name: it reaches tool titles.
const SECRET = `tok${randomBytes(12).toString("hex")}`;

const exporter = new InMemorySpanExporter();
/** Wall-clock time at which each span was started, by span id. */
const startedAt = new Map<string, number>();
const provider = new NodeTracerProvider({
  spanProcessors: [
    new SimpleSpanProcessor(exporter),
    { onStart: (span) => void startedAt.set(span.spanContext().spanId, Date.now()), onEnd: () => undefined, forceFlush: async () => undefined, shutdown: async () => undefined },
  ],
});
provider.register();

let prepared: Awaited<ReturnType<typeof prepare>>;
let app: App;
let client: Client;
const logLines: string[] = [];

beforeAll(async () => {
  prepared = await prepare({ env: { GITHUB_TOKEN: SECRET } });
  // The coder script, with a pause before the second tool call: time in which the first call's span must already exist.
  prepared.fake.setScenario("traced", (ctx) => ({ ...coder(ctx), ...(ctx.step === 1 ? { delayMs: 300 } : {}) }));
  const config = loadConfig({ configPath: prepared.configFile, env: prepared.env });
  app = await createApp(config, { env: prepared.env, log: createLogger(new Redactor([SECRET]), "debug", (l) => logLines.push(l)) });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await createServer(app).connect(serverSide);
  client = new Client({ name: "telemetry-test", version: "1.0.0" });
  await client.connect(clientSide);
});

afterAll(async () => {
  await client?.close();
  await app?.stop();
  await prepared?.fake.close();
  if (prepared) fs.rmSync(prepared.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  await provider.shutdown();
});

async function call(name: string, args: Record<string, unknown>, meta?: Record<string, unknown>): Promise<CallToolResult> {
  return client.request({ method: "tools/call", params: { name, arguments: args, ...(meta ? { _meta: meta } : {}) } }, CallToolResultSchema, { timeout: 180_000 });
}

const spans = () => exporter.getFinishedSpans();
const ms = (t: HrTime) => t[0] * 1000 + t[1] / 1e6;
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId;
const childrenOf = (parent: ReadableSpan) =>
  spans()
    .filter((s) => parentOf(s) === parent.spanContext().spanId)
    .sort((a, b) => ms(a.startTime) - ms(b.startTime));
function serverSpan(tool: string, sessionId: string): ReadableSpan[] {
  return spans().filter((s) => s.name === `tools/call ${tool}` && s.attributes["coding_mcp.session_id"] === sessionId);
}

describe("traces", () => {
  it("gives a task a span under its tools/call span, one span per tool call with real timings, and git spans", async () => {
    const remote = makeBareRemote(prepared.dir, "traced.git");
    const opened = structured(await call("coding_open", { repo_url: remote }));
    const traceId = randomBytes(16).toString("hex");
    const clientSpanId = randomBytes(8).toString("hex");
    const result = structured(
      await call("code", { session_id: opened.session_id, task: `Create notes_${SECRET}.md [[fake:traced]]` }, { traceparent: `00-${traceId}-${clientSpanId}-01` }),
    );
    expect(result.success).toBe(true);
    structured(await call("coding_commit", { session_id: opened.session_id, message: "Add notes" }));
    structured(await call("coding_push", { session_id: opened.session_id }));
    structured(await call("coding_close", { session_id: opened.session_id }));

    // The client's traceparent is honoured: the SERVER span continues its trace, under its span.
    const [server] = serverSpan("code", opened.session_id);
    expect(server).toBeDefined();
    expect(server!.kind).toBe(SpanKind.SERVER);
    expect(server!.spanContext().traceId).toBe(traceId);
    expect(parentOf(server!)).toBe(clientSpanId);
    // The caller (over an in-memory transport, like stdio: the local user) names both spans.
    expect(server!.attributes).toMatchObject({ "mcp.method.name": "tools/call", "gen_ai.tool.name": "code", "enduser.id": "local" });

    const [task, ...others] = childrenOf(server!);
    expect(others).toEqual([]);
    expect(task!.name).toBe("opencode.task");
    expect(task!.spanContext().traceId).toBe(traceId);
    const t = result.trace;
    expect(task!.attributes).toMatchObject({
      "enduser.id": "local",
      "opencode.session_id": opened.backend_session_id,
      "opencode.workspace": opened.workspace_path,
      "opencode.model": "fake-coder",
      "opencode.provider": "fake",
      "opencode.cost": t.cost,
      "opencode.tokens.input": t.tokens.input,
      "opencode.tokens.output": t.tokens.output,
      "opencode.tool_calls": 2,
      "gen_ai.operation.name": "invoke_agent",
      "gen_ai.provider.name": "fake",
      "gen_ai.request.model": "fake-coder",
      "gen_ai.usage.input_tokens": t.tokens.input + t.tokens.cache_read + t.tokens.cache_write,
      "gen_ai.usage.output_tokens": t.tokens.output,
    });
    expect(t.cost).toBeGreaterThan(0);
    expect(task!.status.code).not.toBe(SpanStatusCode.ERROR);

    const tools = childrenOf(task!);
    expect(tools.map((s) => s.name)).toEqual(["opencode.tool.write", "opencode.tool.bash"]);
    expect(tools.map((s) => s.attributes["gen_ai.tool.name"])).toEqual(["write", "bash"]);
    const [write, bash] = tools as [ReadableSpan, ReadableSpan];
    // Real timings: the backend's own start and end of each call, in order, inside the task and the call.
    expect(ms(bash.endTime) - ms(bash.startTime)).toBeGreaterThan(0);
    expect(ms(write.endTime)).toBeGreaterThanOrEqual(ms(write.startTime));
    expect(ms(write.endTime)).toBeLessThanOrEqual(ms(bash.startTime));
    expect(ms(task!.startTime)).toBeLessThanOrEqual(ms(write.startTime));
    expect(ms(bash.endTime)).toBeLessThanOrEqual(ms(task!.endTime));
    expect(ms(server!.startTime)).toBeLessThanOrEqual(ms(task!.startTime));
    expect(ms(task!.endTime)).toBeLessThanOrEqual(ms(server!.endTime));
    expect(tools.map((s) => Math.round(ms(s.endTime) - ms(s.startTime)))).toEqual(t.tool_calls.map((c: { duration_ms: number }) => c.duration_ms));
    // Created as the calls happen: the write span existed before the bash call started, not only at the end.
    expect(startedAt.get(write.spanContext().spanId)!).toBeLessThan(ms(bash.startTime));

    // Clone, commit and push, each under its tool call's span.
    for (const [tool, name] of [["coding_open", "git.clone"], ["coding_commit", "git.commit"], ["coding_push", "git.push"]] as const) {
      const [parent] = serverSpan(tool, opened.session_id);
      expect(childrenOf(parent!).map((s) => s.name), tool).toEqual([name]);
    }

    // No secret in any span: the configured token, used in a file name, is redacted from the tool titles.
    const everything = JSON.stringify(spans().map((s) => ({ name: s.name, attributes: s.attributes, status: s.status, events: s.events })));
    expect(everything).not.toContain(SECRET);
    expect(String(write.attributes["opencode.tool.title"])).toContain("[REDACTED]");
  });

  it("marks a refused call's span failed with error.type", async () => {
    const answer = await call("code", { session_id: "cs_doesnotexist", task: "anything" });
    expect(answer.isError).toBe(true);
    const [span] = serverSpan("code", "cs_doesnotexist");
    expect(span!.status.code).toBe(SpanStatusCode.ERROR);
    expect(span!.attributes["error.type"]).toBe("unknown_session");
  });

  it("keeps a background task's span under the call that started it", async () => {
    const opened = structured(await call("coding_open", {}));
    const started = structured(await call("code", { session_id: opened.session_id, task: "Create later.md", background: true }));
    expect(started.state).toBe("running");
    const done = await until(async () => {
      const [s] = structured(await call("coding_status", { session_id: opened.session_id })).sessions;
      return s.task?.state === "done" ? s : undefined;
    }, 60_000);
    expect(done?.task.result.success).toBe(true);
    const [server] = serverSpan("code", opened.session_id);
    const task = await until(() => childrenOf(server!).find((s) => s.name === "opencode.task"), 5_000);
    expect(task?.attributes["coding_mcp.task_id"]).toBe(started.task_id);
    expect(childrenOf(task!).map((s) => s.name)).toEqual(["opencode.tool.write", "opencode.tool.bash"]);
    // The call answered before the task ended.
    expect(ms(server!.endTime)).toBeLessThan(ms(task!.endTime));
    structured(await call("coding_close", { session_id: opened.session_id }));
  });
});

describe("cost accounting", () => {
  it("keeps per-session totals, the sum of the tasks' traces, readable while open and returned on close", async () => {
    const opened = structured(await call("coding_open", {}));
    const first = structured(await call("code", { session_id: opened.session_id, task: "Create one.md" }));
    const second = structured(await call("code", { session_id: opened.session_id, task: "Create two.md" }));
    const traces = [first.trace, second.trace];
    const sum = (f: (t: (typeof traces)[number]) => number) => traces.reduce((n, t) => n + f(t), 0);
    const expected = {
      tasks: 2,
      cost: expect.closeTo(sum((t) => t.cost), 6),
      tokens: Object.fromEntries(["input", "output", "reasoning", "cache_read", "cache_write"].map((k) => [k, sum((t) => t.tokens[k])])),
      duration_ms: sum((t) => t.duration_ms),
    };
    expect(sum((t) => t.cost)).toBeGreaterThan(0);

    const [status] = structured(await call("coding_status", { session_id: opened.session_id })).sessions;
    expect(status.state).toBe("idle");
    expect(status.totals).toEqual(expected);
    // The last task's own cost and tokens, beside the totals.
    expect(status.task.result.trace.cost).toBe(second.trace.cost);
    expect(status.task.result.trace.tokens).toEqual(second.trace.tokens);

    const closed = structured(await call("coding_close", { session_id: opened.session_id }));
    expect(closed.totals).toEqual(expected);
  });
});

describe("when tracing starts", () => {
  it("starts the SDK only when an OTLP endpoint is set and the SDK is not disabled", () => {
    expect(tracingRequested({})).toBe(false);
    expect(tracingRequested({ OTEL_SERVICE_NAME: "x" })).toBe(false);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318" })).toBe(true);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "http://127.0.0.1:4318/v1/traces" })).toBe(true);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318", OTEL_SDK_DISABLED: "TRUE" })).toBe(false);
    expect(tracingRequested({ OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:4318", OTEL_TRACES_EXPORTER: "none" })).toBe(false);
  });
});
