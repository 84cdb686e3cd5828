import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { ClientCapabilities } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp, type App } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { createServer } from "../../src/server.js";
import { ScriptedBackend } from "../support/scripted-backend.js";

/**
 * The session view is offered only to a client that declared the MCP Apps extension
 * (io.modelcontextprotocol/ui with its HTML MIME type): its tools link the view and the view is
 * listed; any other client sees the tools and resources exactly as before (the schema snapshot
 * guards their shapes, _meta included). The view itself is exercised in a browser by
 * test/e2e-session-view.test.ts.
 */

const UI = { "io.modelcontextprotocol/ui": { mimeTypes: ["text/html;profile=mcp-app"] } };
const VIEW = "ui://coding/session";

let app: App;
let dir: string;
const clients: Client[] = [];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "coding-mcp-view-"));
  const backend = new ScriptedBackend(() => []);
  app = await createApp(loadConfig({ env: { CODING_MCP_WORKSPACE_BASE_PATH: path.join(dir, "workspaces") } }), { env: {}, backends: () => [backend], defaultBackend: backend.name });
});

afterAll(async () => {
  for (const c of clients) await c.close();
  await app.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function connect(capabilities: ClientCapabilities): Promise<Client> {
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  await createServer(app).connect(serverSide);
  const client = new Client({ name: "view-offer", version: "1.0.0" }, { capabilities });
  await client.connect(clientSide);
  clients.push(client);
  return client;
}

describe("who is offered the session view", () => {
  it("a client that declared the UI extension: code, coding_status and coding_open link the view, which is listed", async () => {
    const client = await connect({ extensions: UI });
    const { tools } = await client.listTools();
    const linked = tools.filter((t) => (t._meta?.ui as { resourceUri?: string } | undefined)?.resourceUri === VIEW).map((t) => t.name);
    expect(linked.sort()).toEqual(["code", "coding_open", "coding_status"]);
    expect(tools.find((t) => t.name === "code")!._meta).toEqual({ ui: { resourceUri: VIEW }, "ui/resourceUri": VIEW });
    expect(tools.filter((t) => t._meta).length).toBe(3);
    const { resources } = await client.listResources();
    expect(resources).toContainEqual(expect.objectContaining({ uri: VIEW, mimeType: "text/html;profile=mcp-app" }));
  });

  it("a client without it (or declaring the extension without the HTML MIME type) gets no UI metadata and no view", async () => {
    for (const capabilities of [{}, { elicitation: { form: {} } }, { extensions: { "io.modelcontextprotocol/ui": { mimeTypes: ["text/plain"] } } }]) {
      const client = await connect(capabilities);
      const { tools } = await client.listTools();
      expect(tools.map((t) => t._meta).filter(Boolean)).toEqual([]);
      const { resources } = await client.listResources();
      expect(resources.map((r) => r.uri)).not.toContain(VIEW);
      await expect(client.readResource({ uri: VIEW })).rejects.toThrow(/not found/i);
    }
  });
});
