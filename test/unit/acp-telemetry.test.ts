import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { CallToolResultSchema } from "@modelcontextprotocol/sdk/types.js";
import { InMemorySpanExporter, NodeTracerProvider, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp, type App } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { createLogger } from "../../src/log.js";
import { Redactor } from "../../src/redact.js";
import { createServer } from "../../src/server.js";
import { stringify } from "yaml";
import { structured } from "../support/harness.js";

// An ACP backend's spans, in process: coding-mcp's app (a `backends` entry running a scripted ACP
// agent that reports one command, a message, tokens and a cost) with the OpenTelemetry SDK and an
// in-memory exporter. The span names and GenAI attributes are the same as OpenCode's, under `acp.`.

const SCRIPT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "support", "scripted-acp-agent.mjs");
const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
provider.register();

let dir: string;
let app: App;
let client: Client;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "acp-telemetry-"));
  const configFile = path.join(dir, "config.yaml");
  fs.writeFileSync(
    configFile,
    stringify({
      workspace: { base_path: path.join(dir, "workspaces") },
      // The protocol alone: the scripted agent runs no command.
      backends: { scripted: { type: "acp", command: [process.execPath, SCRIPT, "work"], sandbox: "off" } },
      default_backend: "scripted",
    }),
  );
  const env = { PATH: process.env.PATH ?? "", HOME: dir };
  app = await createApp(loadConfig({ configPath: configFile, env }), { env, log: createLogger(new Redactor(), "error") });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await createServer(app).connect(serverSide);
  client = new Client({ name: "acp-telemetry-test", version: "1.0.0" });
  await client.connect(clientSide);
});

afterAll(async () => {
  await client?.close();
  await app?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
  await provider.shutdown();
});

const call = (name: string, args: Record<string, unknown>) => client.request({ method: "tools/call", params: { name, arguments: args } }, CallToolResultSchema, { timeout: 60_000 });

describe("ACP task spans", () => {
  it("names the task and tool spans acp.*, with the backend's name and the agent's usage and cost", async () => {
    const opened = structured(await call("coding_open", {}));
    expect(opened.backend).toBe("scripted");
    const result = structured(await call("code", { session_id: opened.session_id, task: "Say hi" }));
    expect(result).toMatchObject({ success: true, summary: "Said hi.", trace: { cost: 0.25, tokens: { input: 10, output: 5 } } });
    const task = exporter.getFinishedSpans().find((s) => s.name === "acp.task")!;
    expect(task.attributes).toMatchObject({
      "gen_ai.operation.name": "invoke_agent",
      "gen_ai.agent.name": "scripted",
      "acp.session_id": opened.backend_session_id,
      "acp.cost": 0.25,
      "acp.tokens.input": 10,
      "acp.tool_calls": 1,
      "acp.finish_reason": "end_turn",
      "gen_ai.usage.output_tokens": 5,
    });
    const tool = exporter.getFinishedSpans().find((s) => s.name === "acp.tool.bash")!;
    expect(tool.parentSpanContext?.spanId).toBe(task.spanContext().spanId);
    expect(tool.attributes).toMatchObject({ "gen_ai.tool.name": "bash", "gen_ai.tool.call.id": "call_1", "acp.tool.status": "completed" });
    const ms = (t: [number, number]) => t[0] * 1000 + t[1] / 1e6;
    // The command's span lasts as long as the agent said it ran (400 ms in the script), as coding-mcp
    // saw its start and end arrive: on a loaded machine either may be seen tens of ms late.
    expect(ms(tool.endTime) - ms(tool.startTime)).toBeGreaterThanOrEqual(250);
  });

  it("marks tokens and cost unknown when the agent reports none, and leaves them off the span", async () => {
    exporter.reset();
    const opened = structured(await call("coding_open", {}));
    const answer = await call("code", { session_id: opened.session_id, task: "Say hi [[no usage]]" });
    expect(structured(answer).trace).toMatchObject({ unknown: ["tokens", "cost"] });
    expect(JSON.stringify(answer.content)).toContain("tokens unknown; cost unknown");
    const task = exporter.getFinishedSpans().find((s) => s.name === "acp.task")!;
    expect(Object.keys(task.attributes).filter((k) => /cost|tokens/.test(k))).toEqual([]);
    await call("code", { session_id: opened.session_id, task: "Say hi" });
    const closed = await call("coding_close", { session_id: opened.session_id });
    expect(structured(closed).totals).toMatchObject({ tasks: 2, cost: 0.25, unknown: ["tokens", "cost"] });
    expect(JSON.stringify(closed.content)).toContain("cost at least 0.25");
  });
});
