// @ts-check
// A scripted Anthropic Messages API on loopback, for Claude Code (through claude-agent-acp): it
// answers by script instead of by model, in the same style as fake-model.mjs (the OpenAI-compatible
// fake OpenCode uses), and accepts the same scenarios.
//
// How a script is chosen: the task text may carry a marker `[[fake:NAME]]`; the scenario NAME then
// answers. Without a marker the built-in "coder" scenario of fake-model.mjs answers. The step is the
// number of `tool_result` blocks after the last user text, so the server is stateless per request.
// Scenarios name tools as OpenCode does (write, bash, read, edit with filePath/command/...); they are
// turned into Claude Code's tools (Write, Bash, Read, Edit with file_path/command/...) here.
import http from "node:http";
import { coder, scripted } from "./fake-model.mjs";

/**
 * @typedef {import("./fake-model.mjs").Step} Step
 * @typedef {import("./fake-model.mjs").Scenario} Scenario
 * @typedef {import("./fake-model.mjs").StepContext} StepContext
 */

const MARKER = /\[\[fake:([\w-]+)\]\]/;

/** @param {any} block */
const isToolResult = (block) => block && typeof block === "object" && block.type === "tool_result";

/** Claude Code adds <system-reminder> text blocks beside tool results; they are not the user speaking. @param {any} block */
const isUserText = (block) =>
  typeof block === "string" || (block?.type === "text" && typeof block.text === "string" && !block.text.trimStart().startsWith("<system-reminder>"));

/** @param {any} content @returns {any[]} */
const blocks = (content) => (typeof content === "string" ? [{ type: "text", text: content }] : Array.isArray(content) ? content : []);

/** @param {any} block */
function resultText(block) {
  if (typeof block.content === "string") return block.content;
  return blocks(block.content).map((b) => b.text ?? "").join("");
}

/** The working directory Claude Code states in its system prompt ("Primary working directory: …"). @param {any} request */
function directoryOf(request) {
  const texts = [...blocks(request.system).map((b) => b.text ?? ""), ...(request.messages ?? []).flatMap((/** @type {any} */ m) => blocks(m.content).map((b) => b.text ?? ""))];
  for (const text of texts) {
    const match = /Primary working directory:\s*(\S+)/.exec(text) ?? /Working directory:\s*(\S+)/.exec(text);
    if (match) return match[1];
  }
  return undefined;
}

/** @param {any} request @returns {StepContext} */
export function anthropicContextOf(request) {
  /** @type {any[]} */
  const messages = request.messages ?? [];
  let lastUser = -1;
  let lastTextBlock = -1;
  messages.forEach((m, i) => {
    if (m.role !== "user") return;
    const list = blocks(m.content);
    list.forEach((b, j) => {
      if (isUserText(b)) {
        lastUser = i;
        lastTextBlock = j;
      }
    });
  });
  /** @type {any[]} */
  const after = lastUser < 0 ? [] : [...blocks(messages[lastUser].content).slice(lastTextBlock + 1), ...messages.slice(lastUser + 1).flatMap((m) => blocks(m.content))];
  const results = after.filter(isToolResult);
  return {
    task: lastUser >= 0 ? blocks(messages[lastUser].content).filter(isUserText).map((b) => (typeof b === "string" ? b : b.text)).join("\n") : "",
    directory: directoryOf(request),
    step: results.length,
    toolResults: results.map(resultText),
    request,
  };
}

/** A scenario's tool call, as Claude Code names it. @param {{ name: string, args: Record<string, any> }} tool */
export function claudeTool(tool) {
  const a = tool.args;
  switch (tool.name) {
    case "bash":
      return { name: "Bash", input: { command: a.command, description: a.description ?? "Run a command", ...(a.timeout ? { timeout: a.timeout } : {}) } };
    case "write":
      return { name: "Write", input: { file_path: a.filePath, content: a.content } };
    case "read":
      return { name: "Read", input: { file_path: a.filePath } };
    case "edit":
      return { name: "Edit", input: { file_path: a.filePath, old_string: a.oldString, new_string: a.newString } };
    case "glob":
      return { name: "Glob", input: { pattern: a.pattern } };
    default:
      return { name: tool.name, input: a };
  }
}

/**
 * @param {{ scenarios?: Record<string, Scenario>, log?: (line: string) => void }} [options]
 */
export async function startFakeAnthropic(options = {}) {
  /** @type {Map<string, Scenario>} */
  const scenarios = new Map(Object.entries({ coder, ...(options.scenarios ?? {}) }));
  /** @type {any[]} every Messages request body received, in order */
  const requests = [];
  /** @type {Set<import("node:http").ServerResponse>} */
  const open = new Set();
  let n = 0;

  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const raw = Buffer.concat(chunks).toString("utf8");
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (req.method === "POST" && url.pathname === "/v1/messages/count_tokens") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ input_tokens: Math.ceil(raw.length / 4) }));
      return;
    }
    if (req.method !== "POST" || url.pathname !== "/v1/messages") {
      res.writeHead(404, { "content-type": "application/json" });
      res.end(JSON.stringify({ type: "error", error: { type: "not_found_error", message: `fake anthropic: no ${req.method} ${url.pathname}` } }));
      return;
    }
    /** @type {any} */
    let body;
    try {
      body = JSON.parse(raw);
    } catch {
      res.writeHead(400).end("bad json");
      return;
    }
    requests.push(body);
    const ctx = anthropicContextOf(body);
    /** @type {Step} */
    let step;
    if (!body.tools || body.tools.length === 0) {
      // Title generation, quota checks and other helper calls come without tools.
      step = { text: "Scripted session", usage: { prompt_tokens: 50, completion_tokens: 3 } };
    } else {
      const name = MARKER.exec(ctx.task)?.[1] ?? "coder";
      const scenario = scenarios.get(name);
      step = scenario ? scenario(ctx) : { text: `fake anthropic: no scenario named ${name}` };
    }
    options.log?.(`fake anthropic: step ${ctx.step} -> ${step.tools ? step.tools.map((t) => t.name).join(",") : "text"}`);
    if (step.error) {
      res.writeHead(step.error.status, { "content-type": "application/json" });
      res.end(JSON.stringify({ type: "error", error: { type: "api_error", message: step.error.message } }));
      return;
    }
    open.add(res);
    res.on("close", () => open.delete(res));
    if (step.delayMs) await new Promise((r) => setTimeout(r, step.delayMs));
    if (res.destroyed) return;
    n += 1;
    const message = { model: body.model ?? "claude-fake", step };
    if (body.stream === false) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(wholeMessage(message.model, step, n)));
    } else {
      streamStep(res, message.model, step, n);
    }
  });

  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("fake anthropic: no address");
  const port = address.port;
  return {
    port,
    /** For ANTHROPIC_BASE_URL. */
    baseURL: `http://127.0.0.1:${port}`,
    requests,
    /** @param {string} name @param {Scenario | Step[]} scenario */
    setScenario(name, scenario) {
      scenarios.set(name, Array.isArray(scenario) ? scripted(scenario) : scenario);
    },
    async close() {
      for (const res of open) res.destroy();
      await new Promise((resolve) => server.close(() => resolve(undefined)));
    },
  };
}

/** @param {Step} step */
function usageOf(step) {
  const u = step.usage ?? { prompt_tokens: 100, completion_tokens: 10 };
  return {
    input_tokens: u.prompt_tokens - (u.cached_tokens ?? 0),
    output_tokens: u.completion_tokens,
    cache_read_input_tokens: u.cached_tokens ?? 0,
    cache_creation_input_tokens: 0,
  };
}

/** @param {Step} step @param {number} n */
function contentOf(step, n) {
  /** @type {any[]} */
  const content = [];
  if (step.reasoning) content.push({ type: "thinking", thinking: step.reasoning, signature: "fake-signature" });
  if (step.text) content.push({ type: "text", text: step.text });
  (step.tools ?? []).forEach((tool, i) => content.push({ type: "tool_use", id: `toolu_fake_${n}_${i}`, ...claudeTool(tool) }));
  return content;
}

/** @param {string} model @param {Step} step @param {number} n */
function wholeMessage(model, step, n) {
  return {
    id: `msg_fake_${n}`,
    type: "message",
    role: "assistant",
    model,
    content: contentOf(step, n),
    stop_reason: step.tools?.length ? "tool_use" : "end_turn",
    stop_sequence: null,
    usage: usageOf(step),
  };
}

/** @param {import("node:http").ServerResponse} res @param {string} model @param {Step} step @param {number} n */
function streamStep(res, model, step, n) {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  /** @param {string} event @param {any} data */
  const send = (event, data) => res.write(`event: ${event}\ndata: ${JSON.stringify({ type: event, ...data })}\n\n`);
  const usage = usageOf(step);
  send("message_start", {
    message: { id: `msg_fake_${n}`, type: "message", role: "assistant", model, content: [], stop_reason: null, stop_sequence: null, usage: { ...usage, output_tokens: 1 } },
  });
  contentOf(step, n).forEach((block, index) => {
    if (block.type === "thinking") {
      send("content_block_start", { index, content_block: { type: "thinking", thinking: "", signature: "" } });
      send("content_block_delta", { index, delta: { type: "thinking_delta", thinking: block.thinking } });
      send("content_block_delta", { index, delta: { type: "signature_delta", signature: block.signature } });
    } else if (block.type === "text") {
      send("content_block_start", { index, content_block: { type: "text", text: "" } });
      send("content_block_delta", { index, delta: { type: "text_delta", text: block.text } });
    } else {
      send("content_block_start", { index, content_block: { type: "tool_use", id: block.id, name: block.name, input: {} } });
      send("content_block_delta", { index, delta: { type: "input_json_delta", partial_json: JSON.stringify(block.input) } });
    }
    send("content_block_stop", { index });
  });
  send("message_delta", { delta: { stop_reason: step.tools?.length ? "tool_use" : "end_turn", stop_sequence: null }, usage: { output_tokens: usage.output_tokens } });
  send("message_stop", {});
  res.end();
}

/**
 * The environment that points Claude Code at this fake, offline and hermetic (see the ACP reference).
 * @param {string} baseURL @param {string} home
 */
export function claudeEnvFor(baseURL, home) {
  return {
    ANTHROPIC_BASE_URL: baseURL,
    ANTHROPIC_API_KEY: "fake-anthropic-key",
    HOME: home,
    CLAUDE_CONFIG_DIR: `${home}/.claude`,
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
    DISABLE_TELEMETRY: "1",
    DISABLE_AUTOUPDATER: "1",
    DISABLE_ERROR_REPORTING: "1",
    // claude-agent-acp refuses to run as root without it.
    IS_SANDBOX: "1",
  };
}
