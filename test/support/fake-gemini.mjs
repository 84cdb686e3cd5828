// @ts-check
// A scripted Gemini API (generativelanguage) on loopback, for Gemini CLI (`gemini --acp`): it answers
// by script instead of by model, with the scenarios of fake-scenarios.mjs. The step is the number of
// `functionResponse` parts after the last user text. Scenarios name tools as OpenCode does; they are
// turned into Gemini CLI's tools here (run_shell_command, write_file, read_file, replace).
import fs from "node:fs";
import path from "node:path";
import { sse, startScriptedServer, usageOf } from "./fake-scenarios.mjs";

/**
 * @typedef {import("./fake-scenarios.mjs").Step} Step
 * @typedef {import("./fake-scenarios.mjs").Scenario} Scenario
 * @typedef {import("./fake-scenarios.mjs").StepContext} StepContext
 */

/** @param {any} content */
const partsOf = (content) => (Array.isArray(content?.parts) ? content.parts : []);

/** @param {any[]} parts */
const textOf = (parts) => parts.map((p) => (typeof p?.text === "string" && !p.thought ? p.text : "")).join("");

/** Gemini CLI puts its own context (the setup, reminders) in user text parts too: not the person speaking. @param {any} part */
const isUserText = (part) => typeof part?.text === "string" && !part.thought && part.text.trim() !== "" && !/^\s*<(session_context|system-reminder)/.test(part.text);

/** @param {any} request @returns {StepContext} */
export function geminiContextOf(request) {
  /** @type {any[]} */
  const contents = Array.isArray(request.contents) ? request.contents : [];
  const parts = contents.flatMap((c) => partsOf(c).map((/** @type {any} */ part) => ({ role: c.role, part })));
  let lastUser = -1;
  parts.forEach(({ role, part }, i) => {
    if (role === "user" && isUserText(part)) lastUser = i;
  });
  const responses = parts.slice(lastUser + 1).filter(({ part }) => part.functionResponse).map(({ part }) => part.functionResponse);
  const everything = [textOf(partsOf(request.systemInstruction)), ...contents.map((c) => textOf(partsOf(c)))].join("\n");
  return {
    task: lastUser >= 0 ? parts[lastUser]?.part.text : "",
    directory: /Workspace Directories:\**\s*(?:-\s*)?(\/\S+)/.exec(everything)?.[1],
    step: responses.length,
    toolResults: responses.map((r) => {
      const response = r.response ?? {};
      const text = typeof response.output === "string" ? response.output : typeof response.error === "string" ? response.error : JSON.stringify(response);
      // Shell output comes wrapped: <untrusted_context>\nOutput: ...\nProcess Group PGID: N\n</untrusted_context>
      return /Output: ([\s\S]*?)\n(?:Process Group PGID|Exit Code|<\/untrusted_context>)/.exec(text)?.[1] ?? text;
    }),
    request,
  };
}

/** A scenario's tool call, as Gemini CLI names it. @param {{ name: string, args: Record<string, any> }} tool */
export function geminiTool(tool) {
  const a = tool.args;
  switch (tool.name) {
    case "bash":
      return { name: "run_shell_command", args: { command: a.command, description: a.description ?? "Run a command" } };
    case "write":
      return { name: "write_file", args: { file_path: a.filePath, content: a.content } };
    case "read":
      return { name: "read_file", args: { file_path: a.filePath } };
    case "edit":
      return { name: "replace", args: { file_path: a.filePath, old_string: a.oldString, new_string: a.newString, instruction: "Edit as scripted" } };
    default:
      return { name: tool.name, args: a };
  }
}

/** @param {Step} step */
function geminiUsage(step) {
  const u = usageOf(step);
  return {
    promptTokenCount: u.prompt_tokens,
    candidatesTokenCount: u.completion_tokens,
    cachedContentTokenCount: u.cached_tokens ?? 0,
    thoughtsTokenCount: u.reasoning_tokens ?? 0,
    totalTokenCount: u.prompt_tokens + u.completion_tokens,
  };
}

/**
 * A value that fits a response schema, for Gemini CLI's helper calls that want JSON (the model
 * router's complexity score, the next-speaker check): the first enum value, 1, false, "scripted".
 * @param {any} schema @returns {unknown}
 */
function valueFor(schema) {
  if (Array.isArray(schema?.enum) && schema.enum.length) return schema.enum[0];
  switch (String(schema?.type ?? "string").toLowerCase()) {
    case "object":
      return Object.fromEntries(Object.entries(schema.properties ?? {}).map(([key, value]) => [key, valueFor(value)]));
    case "array":
      return [];
    case "integer":
    case "number":
      return 1;
    case "boolean":
      return false;
    default:
      return "scripted";
  }
}

/** @param {Step} step @param {string} model */
function candidateOf(step, model) {
  /** @type {any[]} */
  const parts = [];
  if (step.reasoning) parts.push({ text: step.reasoning, thought: true });
  if (step.text) parts.push({ text: step.text });
  for (const tool of step.tools ?? []) parts.push({ functionCall: geminiTool(tool) });
  return { candidates: [{ content: { role: "model", parts }, finishReason: "STOP", index: 0 }], usageMetadata: geminiUsage(step), modelVersion: model };
}

const MODEL_CALL = /\/models\/([^/:]+):(streamGenerateContent|generateContent|countTokens)$/;

/** @type {import("./fake-scenarios.mjs").WireFormat} */
const geminiApi = {
  label: "fake gemini",
  fixed(method, url, raw) {
    const match = MODEL_CALL.exec(url.pathname);
    if (method === "POST" && match?.[2] === "countTokens") return { status: 200, body: { totalTokens: Math.ceil(raw.length / 4) } };
    return undefined;
  },
  isModelCall: (method, url) => method === "POST" && MODEL_CALL.test(url.pathname),
  contextOf: geminiContextOf,
  hasTools: (body) => Array.isArray(body.tools) && body.tools.some((/** @type {any} */ t) => t.functionDeclarations?.length),
  sendError(res, status, message) {
    res.writeHead(status, { "content-type": "application/json" });
    res.end(JSON.stringify({ error: { code: status, message, status: status === 404 ? "NOT_FOUND" : "INTERNAL" } }));
  },
  send(res, { body, url, step }) {
    const [, model = "gemini-fake", call] = MODEL_CALL.exec(url.pathname) ?? [];
    const schema = body.generationConfig?.responseJsonSchema ?? body.generationConfig?.responseSchema;
    const answer = candidateOf(schema && !geminiApi.hasTools(body) ? { ...step, text: JSON.stringify(valueFor(schema)) } : step, model);
    if (call === "generateContent") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify(answer));
      return;
    }
    const stream = sse(res);
    stream.send(answer);
    stream.end();
  },
};

/**
 * @param {{ scenarios?: Record<string, Scenario>, log?: (line: string) => void }} [options]
 */
export async function startFakeGemini(options = {}) {
  const server = await startScriptedServer(geminiApi, options);
  /** For GOOGLE_GEMINI_BASE_URL. */
  return { ...server, baseURL: server.origin };
}

/**
 * Write HOME/.gemini/settings.json pointing Gemini CLI at this fake, offline (see the ACP reference),
 * and answer the environment that goes with it.
 * @param {string} baseURL @param {string} home
 */
export function geminiEnvFor(baseURL, home) {
  fs.mkdirSync(path.join(home, ".gemini"), { recursive: true });
  fs.writeFileSync(path.join(home, ".gemini", "settings.json"), JSON.stringify(geminiSettings(), null, 2));
  return { GOOGLE_GEMINI_BASE_URL: baseURL, GEMINI_API_KEY: "fake-gemini-key", HOME: home, GEMINI_CLI_TRUST_WORKSPACE: "true" };
}

/** The settings.json that keeps Gemini CLI on the API key and off its statistics and update hosts. */
export function geminiSettings() {
  return {
    security: { auth: { selectedType: "gemini-api-key" } },
    privacy: { usageStatisticsEnabled: false },
    telemetry: { enabled: false },
    general: { enableAutoUpdate: false, enableAutoUpdateNotification: false },
  };
}
