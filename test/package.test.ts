import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { opencodeConfigFor, startFakeModel } from "./support/fake-model.mjs";
import { hermeticOpencodeEnv } from "./support/opencode-home.mjs";
import { ROOT, structured, type FakeModel } from "./support/harness.js";

// coding-mcp as a package: `npm pack` of a clean checkout (its prepack builds dist/), the tarball
// installed into an empty folder with nothing else, then started from there by the SDK's Client over
// stdio, and `npx coding-mcp doctor` run there. The npm registry is used for the dependencies.

let dir: string;
let fake: FakeModel;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "coding-mcp-package-"));
  fake = await startFakeModel();
});
afterAll(async () => {
  await fake?.close();
  fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
});

const npm = (args: string[], cwd: string) => execFileSync("npm", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 400_000 });

describe("the packed tarball", () => {
  it("installs into an empty folder and runs as coding-mcp, serving MCP and doctor", async () => {
    // A checkout without dist/: the tarball's build comes from prepack. Its dev dependencies (esbuild) come
    // from this checkout's node_modules; the installed package gets none.
    const checkout = path.join(dir, "checkout");
    fs.mkdirSync(checkout);
    for (const entry of ["package.json", "tsconfig.json", "src", "scripts", "README.md", "mcp.json.example"]) {
      fs.cpSync(path.join(ROOT, entry), path.join(checkout, entry), { recursive: true });
    }
    fs.symlinkSync(path.join(ROOT, "node_modules"), path.join(checkout, "node_modules"));
    const packed = JSON.parse(npm(["pack", "--json", "--pack-destination", dir], checkout)) as { filename: string; files: { path: string }[] }[];
    const files = packed[0]!.files.map((f) => f.path);
    expect(files).toContain("dist/cli.js");
    // The bundle holds the prerequisite checks that `coding-mcp doctor` runs.
    expect(files.filter((f) => f.startsWith("dist/chunks/doctor-") && f.endsWith(".js"))).toHaveLength(1);
    expect(files.filter((f) => f.startsWith("src/") || f.startsWith("test/"))).toEqual([]);
    const tarball = path.join(dir, packed[0]!.filename);

    const app = path.join(dir, "app");
    fs.mkdirSync(app);
    fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "empty", private: true }));
    npm(["install", "--prefer-offline", "--no-audit", "--no-fund", tarball], app);
    expect(fs.existsSync(path.join(app, "node_modules", "typescript"))).toBe(false);
    expect(fs.existsSync(path.join(app, "node_modules", "vitest"))).toBe(false);
    const bin = path.join(app, "node_modules", ".bin", "coding-mcp");

    const env: Record<string, string> = {
      ...(process.env as Record<string, string>),
      ...hermeticOpencodeEnv(path.join(dir, "opencode-home")),
      OPENCODE_CONFIG_CONTENT: JSON.stringify(opencodeConfigFor(fake.baseURL)),
      CODING_MCP_WORKSPACE_BASE_PATH: path.join(dir, "workspaces"),
    };
    delete env.OPENCODE_URL;
    for (const key of Object.keys(env)) if (key.startsWith("CODING_MCP_") && key !== "CODING_MCP_WORKSPACE_BASE_PATH") delete env[key];

    const client = new Client({ name: "coding-mcp-package-test", version: "1.0.0" });
    await client.connect(new StdioClientTransport({ command: bin, args: [], env, cwd: app, stderr: "ignore" }));
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual(["code", "coding_cancel", "coding_close", "coding_commit", "coding_diff", "coding_open", "coding_push", "coding_respond", "coding_status"]);
      // The installed package starts the OpenCode binary it brought along.
      const opened = structured(await client.callTool({ name: "coding_open", arguments: {} }, undefined, { timeout: 180_000 }) as never);
      expect(opened.backend_session_id).toMatch(/\S/);
      structured(await client.callTool({ name: "coding_close", arguments: { session_id: opened.session_id } }) as never);
    } finally {
      await client.close();
    }

    const doctor = execFileSync("npx", ["--no", "coding-mcp", "doctor"], { cwd: app, env, encoding: "utf8", timeout: 120_000 });
    expect(doctor).toMatch(new RegExp(`^ok +OpenCode: 1\\.\\d+\\.\\d+ \\(${app.replaceAll("/", "\\/")}\\/node_modules\\/opencode-`, "m"));
    expect(doctor).toContain("Everything coding-mcp needs is in place.");
  }, 900_000);
});
