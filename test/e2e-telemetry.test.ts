import { randomBytes } from "node:crypto";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, structured, until, type Harness } from "./support/harness.js";
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from "./support/otlp-receiver.js";

// The built coding-mcp over stdio, started with the standard OTEL_* variables, exports its spans over
// OTLP/HTTP to a receiver on loopback; the MCP stream on stdout stays clean meanwhile.

const SERVICE = "coding-mcp-e2e";
const SPAN_KIND_SERVER = 2;

let receiver: OtlpReceiver;
let h: Harness;

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  h = await startHarness({
    env: {
      // The general variable, as an operator would set it; the managed OpenCode exports there too (service "opencode").
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_SERVICE_NAME: SERVICE,
      // Export within a fraction of a second instead of the default 5 s.
      OTEL_BSP_SCHEDULE_DELAY: "200",
    },
  });
});

afterAll(async () => {
  await h?.close();
  await receiver?.close();
});

describe("traces over OTLP/HTTP", () => {
  it("exports the tool-call, task and agent tool spans of open, code and close", async () => {
    // Anything on stdout that is not MCP would surface here as a transport error.
    const transportErrors: Error[] = [];
    h.client.onerror = (err) => transportErrors.push(err);

    const opened = structured(await h.call("coding_open", {}));
    const traceId = randomBytes(16).toString("hex");
    const clientSpanId = randomBytes(8).toString("hex");
    const result = structured(
      await h.client.request(
        { method: "tools/call", params: { name: "code", arguments: { session_id: opened.session_id, task: "Create hello.py" }, _meta: { traceparent: `00-${traceId}-${clientSpanId}-01` } } },
        CallToolResultSchema,
        { timeout: 180_000 },
      ),
    );
    expect(result.success).toBe(true);
    structured(await h.call("coding_close", { session_id: opened.session_id }));

    const ours = () => receiver.spans.filter((s) => s.service === SERVICE);
    const closeSpan = await until(() => ours().find((s) => s.name === "tools/call coding_close"), 15_000);
    expect(closeSpan, `received: ${receiver.posts.length} posts`).toBeDefined();
    expect(receiver.posts).toContain("application/json");

    const spans = ours();
    const one = (name: string): ReceivedSpan => {
      const found = spans.filter((s) => s.name === name);
      expect(found, name).toHaveLength(1);
      return found[0]!;
    };
    expect(one("tools/call coding_open").kind).toBe(SPAN_KIND_SERVER);
    const server = one("tools/call code");
    expect(server).toMatchObject({ kind: SPAN_KIND_SERVER, traceId, parentSpanId: clientSpanId });
    const task = one("opencode.task");
    expect(task).toMatchObject({ traceId, parentSpanId: server.spanId });
    expect(task.attributes).toMatchObject({
      "opencode.session_id": opened.backend_session_id,
      "opencode.cost": result.trace.cost,
      "opencode.tool_calls": 2,
      "gen_ai.operation.name": "invoke_agent",
    });
    const tools = spans.filter((s) => s.parentSpanId === task.spanId).sort((a, b) => (a.start < b.start ? -1 : 1));
    expect(tools.map((s) => s.name)).toEqual(["opencode.tool.write", "opencode.tool.bash"]);
    const [write, bash] = tools as [ReceivedSpan, ReceivedSpan];
    expect(bash.end).toBeGreaterThan(bash.start);
    expect(write.end).toBeGreaterThanOrEqual(write.start);
    expect(write.end).toBeLessThanOrEqual(bash.start);
    expect(task.start).toBeLessThanOrEqual(write.start);
    expect(bash.end).toBeLessThanOrEqual(task.end);

    expect(transportErrors).toEqual([]);
    // Nothing of OpenTelemetry's own output (a console exporter, diagnostics) went to the log either.
    expect(h.stderr.filter((l) => /resourceSpans|instrumentationScope|OpenTelemetry:/.test(l))).toEqual([]);
  });
});
