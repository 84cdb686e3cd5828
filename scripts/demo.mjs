#!/usr/bin/env node
// `npm run demo`: coding-mcp's main job, end to end, as an MCP client sees it. A real MCP client (the
// SDK's) starts the built server over stdio; the server starts its own OpenCode; OpenCode writes and
// runs code in a fresh git workspace; the client commits and closes, printing the trace and the commit.
//
// Offline by default: OpenCode talks to the scripted fake model from test/support. Set
// OPENCODE_CONFIG or OPENCODE_CONFIG_CONTENT (a real provider) or OPENCODE_URL (a running OpenCode)
// to use a real model instead; DEMO_TASK changes the task. Without bubblewrap (Linux) or on another
// platform, the agent's commands cannot be confined: the demo then runs with sandbox.mode off (its
// model is scripted) and says so, with the fix. With a real model it stays on.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { opencodeConfigFor, startFakeModel } from "../test/support/fake-model.mjs";
import { checkBubblewrap } from "../src/prerequisites.js";
import { hermeticOpencodeEnv } from "../test/support/opencode-home.mjs";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const task = process.env.DEMO_TASK ?? "Create fizzbuzz.py that prints FizzBuzz for the numbers 1 to 15, then run it to check it.";
const realModel = Boolean(process.env.OPENCODE_CONFIG || process.env.OPENCODE_CONFIG_CONTENT || process.env.OPENCODE_URL);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "coding-mcp-demo-"));
const say = (line = "") => process.stdout.write(line + "\n");

let fake;
const env = { ...process.env, CODING_MCP_WORKSPACE_BASE_PATH: path.join(dir, "workspaces"), CODING_MCP_LOG_LEVEL: process.env.CODING_MCP_LOG_LEVEL ?? "warn" };
// With a real model the sandbox stays on: coding-mcp then refuses the task and says what to install.
const bubblewrap = checkBubblewrap();
if (!realModel && (process.platform !== "linux" || !bubblewrap?.ok)) {
  env.CODING_MCP_SANDBOX_MODE = "off";
  const why = bubblewrap ? `${bubblewrap.name}: ${bubblewrap.detail}` : `confinement is implemented for Linux only, this is ${process.platform}`;
  say(`NOTE: the agent's commands cannot be confined on this machine (${why}).`);
  say("      This demo runs with the sandbox OFF (sandbox.mode: off): its model is scripted, so nothing untrusted runs.");
  say(`      Before real use: ${bubblewrap?.fix ?? "run coding-mcp on Linux with bubblewrap, or set sandbox.mode: off only where the machine or its container is the boundary"}.`);
  say();
}
if (!realModel) {
  fake = await startFakeModel();
  Object.assign(env, hermeticOpencodeEnv(path.join(dir, "opencode-home")), {
    OPENCODE_CONFIG_CONTENT: JSON.stringify(opencodeConfigFor(fake.baseURL)),
  });
}

const client = new Client({ name: "coding-mcp-demo", version: "1.0.0" });
const transport = new StdioClientTransport({ command: process.execPath, args: [path.join(root, "dist", "cli.js")], env, stderr: "inherit" });

function show(result) {
  const text = result.content?.find((c) => c.type === "text")?.text ?? "";
  if (result.isError) throw new Error(text);
  return result.structuredContent;
}

try {
  await client.connect(transport);
  const { tools } = await client.listTools();
  say(`coding-mcp is up (${realModel ? "your OpenCode model" : "offline: the scripted fake model"}); tools: ${tools.map((t) => t.name).join(", ")}`);

  say("\n> coding_open {}");
  const opened = show(await client.callTool({ name: "coding_open", arguments: { title: "coding-mcp demo" } }));
  say(`  session ${opened.session_id}, workspace ${opened.workspace_path} (branch ${opened.branch}), commands ${opened.confined ? "confined (sandbox on)" : "NOT confined"}`);

  say(`\n> code "${task}"`);
  const result = show(
    await client.callTool({ name: "code", arguments: { session_id: opened.session_id, task } }, undefined, {
      timeout: 15 * 60_000,
      onprogress: (p) => say(`  … ${p.message}`),
    }),
  );
  say(`  success: ${result.success}${result.error ? ` (${result.error})` : ""}`);
  say(`  summary: ${result.summary}`);
  const t = result.trace;
  say(`  model ${t.provider}/${t.model}, finish ${t.finish_reason}, ${(t.duration_ms / 1000).toFixed(1)} s, cost $${t.cost}`);
  say(`  tokens: input ${t.tokens.input}, output ${t.tokens.output}, reasoning ${t.tokens.reasoning}, cache read ${t.tokens.cache_read}, cache write ${t.tokens.cache_write}`);
  say("  tool calls:");
  for (const c of t.tool_calls) {
    say(`    ${c.status.padEnd(9)} ${c.tool.padEnd(6)} ${String(c.duration_ms).padStart(6)} ms  ${c.title ?? ""}`);
    const preview = c.output_preview.trim().split("\n").slice(0, 3).join(" | ");
    if (preview) say(`              ${preview.slice(0, 100)}`);
  }
  say(`  files changed: ${result.files_changed.map((f) => `${f.path} (${f.status} +${f.additions ?? "?"} -${f.deletions ?? "?"})`).join(", ") || "none"}`);

  say('\n> coding_commit "Add FizzBuzz"');
  const commit = show(await client.callTool({ name: "coding_commit", arguments: { session_id: opened.session_id, message: "Add FizzBuzz" } }));
  say(`  committed ${commit.commit_hash}: ${commit.files_changed} file(s), +${commit.insertions} -${commit.deletions}`);
  if (commit.committed) say(execFileSync("git", ["show", "--stat", "--format=  %h %an <%ae>%n  %s", "HEAD"], { cwd: opened.workspace_path, encoding: "utf8" }).trimEnd());

  say("\n> coding_close");
  const closed = show(await client.callTool({ name: "coding_close", arguments: { session_id: opened.session_id } }));
  say(`  cleaned up: ${closed.cleaned_up}; session totals: ${closed.totals.tasks} task(s), $${closed.totals.cost}, ${(closed.totals.duration_ms / 1000).toFixed(1)} s`);
} catch (err) {
  process.exitCode = 1;
  process.stderr.write(`demo failed: ${err instanceof Error ? err.message : err}\n`);
} finally {
  await client.close().catch(() => undefined);
  await fake?.close();
  fs.rmSync(dir, { recursive: true, force: true });
}
