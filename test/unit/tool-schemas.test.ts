import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp, type App } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { createServer } from "../../src/server.js";
import { ScriptedBackend } from "../support/scripted-backend.js";

/**
 * What clients see of the tools, compared with a stored snapshot: a change to a name, a schema or an
 * annotation is always a visible diff in tool-schemas.snapshot.json (update it with `npx vitest -u`
 * after checking the change is meant).
 */

let app: App;
let client: Client;
let dir: string;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "coding-mcp-schemas-"));
  const env = { CODING_MCP_WORKSPACE_BASE_PATH: path.join(dir, "workspaces") };
  const backend = new ScriptedBackend(() => []);
  app = await createApp(loadConfig({ env }), { env: {}, backends: () => [backend], defaultBackend: backend.name });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await createServer(app).connect(serverSide);
  client = new Client({ name: "schema-snapshot", version: "1.0.0" });
  await client.connect(clientSide);
});

afterAll(async () => {
  await client.close();
  await app.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe("what clients see", () => {
  it("lists the tools with the stored names, schemas and annotations", async () => {
    const { tools } = await client.listTools();
    // _meta too: a client without the MCP Apps extension gets none (the session view's link is for clients that declared it).
    const seen = tools.map((t) => ({ name: t.name, title: t.title, annotations: t.annotations, inputSchema: t.inputSchema, outputSchema: t.outputSchema, _meta: t._meta }));
    await expect(JSON.stringify(seen, null, 2) + "\n").toMatchFileSnapshot("./tool-schemas.snapshot.json");
  });

  it("names every tool in the server's instructions", async () => {
    const instructions = client.getInstructions() ?? "";
    const { tools } = await client.listTools();
    for (const tool of tools) expect(instructions, tool.name).toContain(tool.name);
  });
});
