// @ts-check
// A scripted OpenAI Responses API on loopback, for Codex (codex-acp): it answers by script instead
// of by model, with the scenarios of fake-scenarios.mjs. The step is the number of tool outputs
// (`function_call_output`, `custom_tool_call_output`) after the last user text. Scenarios name tools
// as OpenCode does; they are turned into Codex's tools here: `bash` is `exec_command {cmd}`, `write`
// and `edit` are `apply_patch` patches.
import fs from "node:fs";
import path from "node:path";
import { sse, startScriptedServer, usageOf } from "./fake-scenarios.mjs";

/**
 * @typedef {import("./fake-scenarios.mjs").Step} Step
 * @typedef {import("./fake-scenarios.mjs").Scenario} Scenario
 * @typedef {import("./fake-scenarios.mjs").StepContext} StepContext
 */

/** @param {any} content */
function textOf(content) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((c) => (typeof c === "string" ? c : c?.text ?? "")).join("");
  return "";
}

/**
 * Codex sends its context as user messages too (`<environment_context>`, `<user_instructions>`,
 * AGENTS.md): they are not the person speaking.
 * @param {any} item
 */
const isUserText = (item) => item?.type === "message" && item.role === "user" && !/^\s*(<[\w_-]+>|# AGENTS\.md)/.test(textOf(item.content));

const isToolOutput = (/** @type {any} */ item) => item?.type === "function_call_output" || item?.type === "custom_tool_call_output";

/** @param {any} request @returns {StepContext} */
export function responsesContextOf(request) {
  /** @type {any[]} */
  const input = Array.isArray(request.input) ? request.input : [];
  let lastUser = -1;
  input.forEach((item, i) => {
    if (isUserText(item)) lastUser = i;
  });
  const outputs = input.slice(lastUser + 1).filter(isToolOutput);
  const everything = [textOf(request.instructions), ...input.map((item) => textOf(item?.content))].join("\n");
  return {
    task: lastUser >= 0 ? textOf(input[lastUser].content) : "",
    directory: /<cwd>([^<]+)<\/cwd>/.exec(everything)?.[1],
    step: outputs.length,
    toolResults: outputs.map((o) => (typeof o.output === "string" ? o.output : textOf(o.output?.content ?? o.output))),
    request,
  };
}

/** The lines of a file as an apply_patch hunk adds them. @param {string} content */
const added = (content) => content.replace(/\n$/, "").split("\n").map((line) => `+${line}`).join("\n");

/**
 * A scenario's tool call, as Codex names it.
 * @param {{ name: string, args: Record<string, any> }} tool
 * @returns {{ type: "function_call", name: string, arguments: string } | { type: "custom_tool_call", name: string, input: string }}
 */
export function codexTool(tool) {
  const a = tool.args;
  switch (tool.name) {
    case "bash":
      return { type: "function_call", name: "exec_command", arguments: JSON.stringify({ cmd: a.command, ...(a.timeout ? { yield_time_ms: a.timeout } : {}) }) };
    case "write":
      return { type: "custom_tool_call", name: "apply_patch", input: `*** Begin Patch\n*** Add File: ${a.filePath}\n${added(a.content)}\n*** End Patch` };
    case "edit":
      return {
        type: "custom_tool_call",
        name: "apply_patch",
        input: `*** Begin Patch\n*** Update File: ${a.filePath}\n@@\n-${a.oldString}\n+${a.newString}\n*** End Patch`,
      };
    default:
      return { type: "function_call", name: tool.name, arguments: JSON.stringify(a) };
  }
}

/** @type {import("./fake-scenarios.mjs").WireFormat} */
const responsesApi = {
  label: "fake responses",
  fixed: (method, url) => (method === "GET" && url.pathname.endsWith("/models") ? { status: 200, body: { models: [] } } : undefined),
  isModelCall: (method, url) => method === "POST" && url.pathname.endsWith("/responses"),
  contextOf: responsesContextOf,
  hasTools: (body) => Array.isArray(body.tools) && body.tools.length > 0,
  sendError(res, status, message) {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: { message, type: "fake_error", code: null } }));
  },
  send(res, { body, step, n }) {
    const stream = sse(res);
    const id = `resp_fake_${n}`;
    /** @param {string} type @param {any} data */
    const send = (type, data) => stream.send({ type, ...data }, type);
    send("response.created", { response: { id, object: "response", model: body.model, status: "in_progress", output: [] } });
    /** @type {any[]} */
    const items = [];
    if (step.reasoning) items.push({ type: "reasoning", id: `rs_${n}`, summary: [{ type: "summary_text", text: step.reasoning }] });
    if (step.text) items.push({ type: "message", id: `msg_${n}`, role: "assistant", status: "completed", content: [{ type: "output_text", text: step.text, annotations: [] }] });
    (step.tools ?? []).forEach((tool, i) => items.push({ id: `fc_${n}_${i}`, call_id: `call_${n}_${i}`, status: "completed", ...codexTool(tool) }));
    items.forEach((item, output_index) => {
      send("response.output_item.added", { output_index, item });
      send("response.output_item.done", { output_index, item });
    });
    const u = usageOf(step);
    send("response.completed", {
      response: {
        id,
        object: "response",
        model: body.model,
        status: "completed",
        output: items,
        usage: {
          input_tokens: u.prompt_tokens,
          input_tokens_details: { cached_tokens: u.cached_tokens ?? 0 },
          output_tokens: u.completion_tokens,
          output_tokens_details: { reasoning_tokens: u.reasoning_tokens ?? 0 },
          total_tokens: u.prompt_tokens + u.completion_tokens,
        },
      },
    });
    stream.end();
  },
};

/**
 * @param {{ scenarios?: Record<string, Scenario>, log?: (line: string) => void }} [options]
 */
export async function startFakeResponses(options = {}) {
  const server = await startScriptedServer(responsesApi, options);
  /** For a Codex model provider's base_url. */
  return { ...server, baseURL: `${server.origin}/v1` };
}

/**
 * Write CODEX_HOME/config.toml pointing Codex at this fake (see the ACP reference), and answer the
 * environment that goes with it.
 * @param {string} baseURL @param {string} codexHome @param {{ approvalPolicy?: "never" | "untrusted" | "on-request" }} [options]
 */
export function codexEnvFor(baseURL, codexHome, options = {}) {
  fs.mkdirSync(codexHome, { recursive: true });
  fs.writeFileSync(path.join(codexHome, "config.toml"), codexConfigToml(baseURL, options.approvalPolicy ?? "never"));
  return { CODEX_HOME: codexHome, FAKE_API_KEY: "fake-openai-key" };
}

/**
 * A model Codex knows: it gives an unknown one no apply_patch tool and warns about it in its answer.
 * The provider decides where the requests go, so this name never leaves the machine.
 */
export const CODEX_MODEL = "gpt-5.4";

/** @param {string} baseURL @param {string} approvalPolicy */
export function codexConfigToml(baseURL, approvalPolicy) {
  return [
    `model = "${CODEX_MODEL}"`,
    `model_provider = "fake"`,
    `approval_policy = "${approvalPolicy}"`,
    `sandbox_mode = "danger-full-access"`,
    ``,
    `[model_providers.fake]`,
    `name = "Fake"`,
    `base_url = "${baseURL}"`,
    `wire_api = "responses"`,
    `env_key = "FAKE_API_KEY"`,
    ``,
  ].join("\n");
}
