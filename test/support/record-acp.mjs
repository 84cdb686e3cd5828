// @ts-check
// Records what a real ACP agent says over stdio while it runs one task against a scripted fake
// model, as JSON lines (one JSON-RPC message each, with its direction), for the unit tests of the
// ACP event mapping (test/fixtures/acp/). A raw JSON-RPC client on purpose: the transcript is the wire.
//
//   node test/support/record-acp.mjs opencode|claude|codex|gemini OUT.jsonl "task [[fake:NAME]]" [mode]
//
// The agents other than OpenCode must be installed first (scripts/install-agents.sh claude codex gemini).
// mode: the ACP session mode (Claude Code: default; Gemini CLI: default); for Codex, its approval_policy
// (untrusted, to get permission requests). FAKE_REQUESTS=FILE also writes the requests the fake model received (JSON).
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { claudeEnvFor, startFakeAnthropic } from "./fake-anthropic.mjs";
import { geminiEnvFor, startFakeGemini } from "./fake-gemini.mjs";
import { codexEnvFor, startFakeResponses } from "./fake-responses.mjs";
import { opencodeConfigFor, startFakeModel } from "./fake-model.mjs";
import { hermeticOpencodeEnv } from "./opencode-home.mjs";
import { agentCommand } from "./agents.mjs";

const [agent = "opencode", out = "transcript.jsonl", task = "Create hello.py", mode] = process.argv.slice(2);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "acp-record-"));
const repo = path.join(dir, "repo");
fs.mkdirSync(repo);
execFileSync("git", ["init", "-q", repo]);
const sleepy = { tools: [{ name: "bash", args: { command: "sleep 0.3 && echo slept", description: "Nap" } }] };
const scenarios = {
  // A plan, a thought, a write, a command that fails, and an answer.
  mixed: (/** @type {any} */ ctx) =>
    [
      { reasoning: "Plan: write then run.", tools: [{ name: "write", args: { filePath: `${ctx.directory}/hello.py`, content: "print('hello')\n" } }], usage: { prompt_tokens: 900, completion_tokens: 40, cached_tokens: 100 } },
      { tools: [{ name: "bash", args: { command: "python3 hello.py && exit 3", description: "Run it" } }] },
      sleepy,
      { text: "Wrote hello.py; running it printed hello and exited 3." },
    ][ctx.step] ?? { text: "Done." },
  // Claude Code's TodoWrite, which it reports as ACP plan updates.
  plan: (/** @type {any} */ ctx) =>
    [
      { tools: [{ name: "TodoWrite", args: { todos: [{ content: "Write hello.py", status: "completed", activeForm: "Writing" }, { content: "Run it", status: "in_progress", activeForm: "Running" }] } }] },
      { text: "Planned." },
    ][ctx.step] ?? { text: "Done." },
};
const home = path.join(dir, "home");
fs.mkdirSync(home, { recursive: true });
// FAKE_LOG=1 prints what the fake model answers.
const log = process.env.FAKE_LOG ? (/** @type {string} */ line) => console.error(line) : undefined;
const starts = {
  claude: async () => {
    const fake = await startFakeAnthropic({ scenarios, log });
    return { fake, env: claudeEnvFor(fake.baseURL, home) };
  },
  codex: async () => {
    const fake = await startFakeResponses({ scenarios, log });
    return { fake, env: codexEnvFor(fake.baseURL, path.join(home, ".codex"), { approvalPolicy: mode === "untrusted" ? "untrusted" : "never" }) };
  },
  gemini: async () => {
    const fake = await startFakeGemini({ scenarios, log });
    return { fake, env: geminiEnvFor(fake.baseURL, home) };
  },
  opencode: async () => {
    const fake = await startFakeModel({ scenarios, log });
    const config = opencodeConfigFor(fake.baseURL);
    return { fake, env: { ...hermeticOpencodeEnv(home), OPENCODE_CONFIG_CONTENT: JSON.stringify({ ...config, permission: { ...config.permission, bash: "ask" } }) } };
  },
};
const start = starts[/** @type {keyof typeof starts} */ (agent)];
if (!start) throw new Error(`unknown agent ${agent}`);
const { fake, env: agentEnv } = await start();
const env = { ...process.env, ...agentEnv };
const [command, ...args] = agentCommand(agent);
// Its own process group, stopped as a whole: codex-acp's launcher leaves the native binary behind otherwise.
const child = spawn(/** @type {string} */ (command), args, { cwd: repo, env, stdio: ["pipe", "pipe", "pipe"], detached: true });
/** @type {string[]} */
const lines = [];
/** @type {Map<number, (m: any) => void>} */
const waiting = new Map();
let nextId = 1;
const record = (/** @type {"in" | "out"} */ dirn, /** @type {any} */ message) => lines.push(JSON.stringify({ dir: dirn, at: Date.now(), message }));
const send = (/** @type {any} */ message) => {
  record("out", message);
  child.stdin.write(JSON.stringify(message) + "\n");
};
const request = (/** @type {string} */ method, /** @type {any} */ params) =>
  new Promise((resolve) => {
    const id = nextId++;
    waiting.set(id, resolve);
    send({ jsonrpc: "2.0", id, method, params });
  });
child.stderr.on("data", (/** @type {Buffer} */ d) => process.stderr.write(d));
readline.createInterface({ input: child.stdout }).on("line", (line) => {
  let m;
  try {
    m = JSON.parse(line);
  } catch {
    return;
  }
  record("in", m);
  if (m.id !== undefined && !m.method) waiting.get(m.id)?.(m);
  else if (m.method === "session/request_permission") {
    const option = m.params.options.find((/** @type {any} */ o) => o.kind === "allow_once") ?? m.params.options[0];
    send({ jsonrpc: "2.0", id: m.id, result: { outcome: { outcome: "selected", optionId: option.optionId } } });
  } else if (m.method && m.id !== undefined) {
    send({ jsonrpc: "2.0", id: m.id, result: {} });
  }
});
const init = await request("initialize", { protocolVersion: 1, clientCapabilities: { fs: { readTextFile: false, writeTextFile: false }, terminal: false } });
console.error("initialize:", JSON.stringify(init).slice(0, 600));
const session = /** @type {any} */ (await request("session/new", { cwd: repo, mcpServers: [] }));
console.error("session/new:", JSON.stringify(session).slice(0, 2000));
const sessionId = session.result.sessionId;
if (mode && agent !== "codex") console.error("set_mode:", JSON.stringify(await request("session/set_mode", { sessionId, modeId: mode })));
const answer = await request("session/prompt", { sessionId, prompt: [{ type: "text", text: task }] });
console.error("prompt:", JSON.stringify(answer));
await new Promise((r) => setTimeout(r, 500));
fs.writeFileSync(out, lines.join("\n") + "\n");
console.error(`files: ${fs.readdirSync(repo).join(", ")}; ${lines.length} messages in ${out}`);
if (process.env.FAKE_REQUESTS) fs.writeFileSync(process.env.FAKE_REQUESTS, JSON.stringify(fake.requests, null, 2));
process.kill(-(/** @type {number} */ (child.pid)), "SIGTERM");
await fake.close();
fs.rmSync(dir, { recursive: true, force: true });
