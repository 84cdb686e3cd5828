// @ts-check
// A scripted Anthropic Messages API on loopback, for Claude Code (through claude-agent-acp): it
// answers by script instead of by model, in the same style as fake-model.mjs (the OpenAI-compatible
// fake OpenCode uses), and accepts the same scenarios.
//
// The scenarios and the server are shared (fake-scenarios.mjs). The step is the number of
// `tool_result` blocks after the last user text. Scenarios name tools as OpenCode does; they are
// turned into Claude Code's tools (Write, Bash, Read, Edit with file_path/command/...) here.
import { sse, startScriptedServer, usageOf } from "./fake-scenarios.mjs";

/**
 * @typedef {import("./fake-scenarios.mjs").Step} Step
 * @typedef {import("./fake-scenarios.mjs").Scenario} Scenario
 * @typedef {import("./fake-scenarios.mjs").StepContext} StepContext
 */

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

/** @type {import("./fake-scenarios.mjs").WireFormat} */
const messagesApi = {
  label: "fake anthropic",
  fixed: (method, url, raw) =>
    method === "POST" && url.pathname === "/v1/messages/count_tokens" ? { status: 200, body: { input_tokens: Math.ceil(raw.length / 4) } } : undefined,
  isModelCall: (method, url) => method === "POST" && url.pathname === "/v1/messages",
  contextOf: anthropicContextOf,
  hasTools: (body) => Array.isArray(body.tools) && body.tools.length > 0,
  sendError(res, status, message) {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify({ type: "error", error: { type: status === 404 ? "not_found_error" : "api_error", message } }));
  },
  send(res, { body, step, n }) {
    const model = body.model ?? "claude-fake";
    if (body.stream === false) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(wholeMessage(model, step, n)));
    } else {
      streamStep(res, model, step, n);
    }
  },
};

/**
 * @param {{ scenarios?: Record<string, Scenario>, log?: (line: string) => void }} [options]
 */
export async function startFakeAnthropic(options = {}) {
  const server = await startScriptedServer(messagesApi, options);
  /** For ANTHROPIC_BASE_URL. */
  return { ...server, baseURL: server.origin };
}

/** Anthropic's usage fields for a step. @param {Step} step */
function anthropicUsage(step) {
  const u = usageOf(step);
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
    usage: anthropicUsage(step),
  };
}

/** @param {import("node:http").ServerResponse} res @param {string} model @param {Step} step @param {number} n */
function streamStep(res, model, step, n) {
  const stream = sse(res);
  /** @param {string} event @param {any} data */
  const send = (event, data) => stream.send({ type: event, ...data }, event);
  const usage = anthropicUsage(step);
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
  stream.end();
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
