// @ts-check
// A scripted, OpenAI-compatible chat-completions server on loopback. OpenCode calls it like any
// provider; it answers by script instead of by model. Used by the tests, the demo and the benchmark.
// The scenarios and the server are shared with the other fakes (fake-scenarios.mjs); here is only how
// chat completions read a conversation (the step is the number of assistant messages after the last
// user message) and stream a step.
import { coder, outside, question, scripted, sse, startScriptedServer, usageOf } from "./fake-scenarios.mjs";

export { coder, outside, question, scripted };

/**
 * @typedef {import("./fake-scenarios.mjs").Step} Step
 * @typedef {import("./fake-scenarios.mjs").Scenario} Scenario
 * @typedef {import("./fake-scenarios.mjs").StepContext} StepContext
 */

/** @param {unknown} content */
function textOf(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((c) => (typeof c === "string" ? c : c?.text ?? "")).join("");
  return "";
}

/** The working directory OpenCode states in its system prompt. @param {any[]} messages */
function directoryOf(messages) {
  for (const m of messages) {
    if (m.role !== "system") continue;
    const match = /Working directory:\s*(\S+)/.exec(textOf(m.content));
    if (match) return match[1];
  }
  return undefined;
}

/** @param {any} request @returns {StepContext} */
export function contextOf(request) {
  /** @type {any[]} */
  const messages = request.messages ?? [];
  let lastUser = -1;
  messages.forEach((/** @type {any} */ m, /** @type {number} */ i) => {
    if (m.role === "user") lastUser = i;
  });
  const after = messages.slice(lastUser + 1);
  return {
    task: lastUser >= 0 ? textOf(messages[lastUser].content) : "",
    directory: directoryOf(messages),
    step: after.filter((m) => m.role === "assistant").length,
    toolResults: after.filter((m) => m.role === "tool").map((m) => textOf(m.content)),
    request,
  };
}

/** @type {import("./fake-scenarios.mjs").WireFormat} */
const chatCompletions = {
  label: "fake model",
  fixed: (method, url) =>
    method === "GET" && url.pathname.endsWith("/models") ? { status: 200, body: { object: "list", data: [{ id: "fake-coder", object: "model" }] } } : undefined,
  isModelCall: (method, url) => method === "POST" && url.pathname.endsWith("/chat/completions"),
  contextOf,
  hasTools: (body) => Array.isArray(body.tools) && body.tools.length > 0,
  sendError(res, status, message) {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: { message, type: "fake_error" } }));
  },
  send(res, { body, step, n }) {
    const stream = sse(res);
    const id = `chatcmpl-fake-${n}`;
    const created = Math.floor(Date.now() / 1000);
    const model = body.model ?? "fake-coder";
    /** @param {any} delta @param {string | null} finish @param {any} [usage] */
    const send = (delta, finish, usage) => {
      const chunk = { id, object: "chat.completion.chunk", created, model, choices: [{ index: 0, delta, finish_reason: finish }] };
      if (usage) Object.assign(chunk, { usage });
      stream.send(chunk);
    };
    send({ role: "assistant", content: "" }, null);
    if (step.reasoning) send({ reasoning_content: step.reasoning }, null);
    if (step.text) send({ content: step.text }, null);
    (step.tools ?? []).forEach((tool, index) => {
      send({
        tool_calls: [{ index, id: `call_${n}_${index}`, type: "function", function: { name: tool.name, arguments: JSON.stringify(tool.args) } }],
      }, null);
    });
    const u = usageOf(step);
    send({}, step.tools?.length ? "tool_calls" : "stop", {
      prompt_tokens: u.prompt_tokens,
      completion_tokens: u.completion_tokens,
      total_tokens: u.prompt_tokens + u.completion_tokens,
      prompt_tokens_details: { cached_tokens: u.cached_tokens ?? 0 },
      completion_tokens_details: { reasoning_tokens: u.reasoning_tokens ?? 0 },
    });
    stream.send("[DONE]");
    stream.end();
  },
};

/**
 * @param {{ scenarios?: Record<string, Scenario>, log?: (line: string) => void }} [options]
 */
export async function startFakeModel(options = {}) {
  const server = await startScriptedServer(chatCompletions, options);
  return { ...server, baseURL: `${server.origin}/v1` };
}

/**
 * The OpenCode config that points it at this fake model (for OPENCODE_CONFIG_CONTENT).
 * @param {string} baseURL
 */
export function opencodeConfigFor(baseURL) {
  return {
    $schema: "https://opencode.ai/config.json",
    model: "fake/fake-coder",
    small_model: "fake/fake-coder",
    enabled_providers: ["fake"],
    autoupdate: false,
    share: "disabled",
    lsp: false,
    formatter: false,
    permission: {
      "*": "allow", edit: "allow", bash: "allow", external_directory: "allow",
      doom_loop: "allow", question: "deny", webfetch: "deny",
    },
    provider: {
      fake: {
        npm: "@ai-sdk/openai-compatible",
        name: "Fake",
        options: { baseURL, apiKey: "fake-key" },
        models: {
          "fake-coder": { name: "Fake Coder", tool_call: true, cost: { input: 3, output: 15, cache_read: 0.3, cache_write: 3.75 } },
          // A second model, so tests can tell which one a prompt really named.
          "fake-alt": { name: "Fake Alternative", tool_call: true },
        },
      },
    },
  };
}
