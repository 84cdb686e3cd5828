// @ts-check
// A scripted, OpenAI-compatible chat-completions server on loopback. OpenCode calls it like any
// provider; it answers by script instead of by model. Used by the tests, the demo and the benchmark.
//
// How a script is chosen: the task text may carry a marker `[[fake:NAME]]`; the scenario NAME then
// answers. Without a marker the built-in "coder" scenario answers (write a file, run it, summarise).
// Which step of a scenario answers is derived from the request itself: the number of assistant
// messages after the last user message. So the server is stateless per request and a retried
// request gets the same answer.
import http from "node:http";

/**
 * @typedef {{ name: string, args: Record<string, unknown> }} ToolCall
 * @typedef {{ tools?: ToolCall[], text?: string, reasoning?: string, delayMs?: number,
 *   usage?: { prompt_tokens: number, completion_tokens: number, reasoning_tokens?: number, cached_tokens?: number },
 *   error?: { status: number, message: string } }} Step
 * @typedef {{ task: string, directory: string | undefined, step: number, toolResults: string[], request: any }} StepContext
 * @typedef {(ctx: StepContext) => Step} Scenario
 */

const MARKER = /\[\[fake:([\w-]+)\]\]/;

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

const FIZZBUZZ = `def fizzbuzz(n):
    if n % 15 == 0:
        return "FizzBuzz"
    if n % 3 == 0:
        return "Fizz"
    if n % 5 == 0:
        return "Buzz"
    return str(n)


if __name__ == "__main__":
    for i in range(1, 16):
        print(fizzbuzz(i))
`;

/**
 * The default scenario: write the file the task names (or NOTES.md), run or list it, then summarise.
 * @type {Scenario}
 */
export const coder = (ctx) => {
  const named = /\b([\w-]+(?:\/[\w-]+)*\.(?:py|js|mjs|ts|md|txt|sh|json))\b/.exec(ctx.task)?.[1] ?? "NOTES.md";
  const filePath = ctx.directory ? `${ctx.directory}/${named}` : named;
  const content = named.endsWith(".py")
    ? /fizz/i.test(named) ? FIZZBUZZ : `print("hello from the scripted model")\n`
    : `# ${named}\n\nWritten by the scripted model for the task:\n\n> ${ctx.task.split("\n")[0]}\n`;
  switch (ctx.step) {
    case 0:
      return {
        reasoning: `The task asks for ${named}; I will write it, then check it.`,
        tools: [{ name: "write", args: { filePath, content } }],
        usage: { prompt_tokens: 1200, completion_tokens: 80, reasoning_tokens: 12, cached_tokens: 200 },
      };
    case 1:
      return {
        tools: [{
          name: "bash",
          args: {
            command: named.endsWith(".py") ? `python3 ${named} | head -n 15` : `wc -l ${named}`,
            description: named.endsWith(".py") ? `Run ${named}` : `Count lines of ${named}`,
          },
        }],
        usage: { prompt_tokens: 1400, completion_tokens: 40 },
      };
    default:
      return {
        text: `Created ${named} and checked it: ${(ctx.toolResults.at(-1) ?? "").split("\n").slice(0, 3).join(" / ")}`,
        usage: { prompt_tokens: 1600, completion_tokens: 30 },
      };
  }
};

/**
 * Asks the person a question with the `question` tool, then says what the answer was. A dismissed
 * question ends OpenCode's turn, so no later step runs then.
 * @type {Scenario}
 */
export const question = (ctx) => {
  switch (ctx.step) {
    case 0:
      return {
        tools: [{
          name: "question",
          args: {
            questions: [{
              question: "Which color should the button be?",
              header: "Color",
              options: [{ label: "Green", description: "Calm, matches the logo" }, { label: "Red", description: "Loud, for a warning" }],
            }],
          },
        }],
      };
    default:
      return { text: `The person chose: ${answerOf(ctx.toolResults[0])}` };
  }
};

/** OpenCode's question tool output reads: User has answered your questions: "<question>"="<answer>". ... @param {string | undefined} output */
function answerOf(output) {
  return /"="([^"]*)"/.exec(output ?? "")?.[1] ?? "(no answer)";
}

/**
 * Writes outside its workspace: to the absolute path named in the task (`... /tmp/x/out.txt ...`),
 * then reports how that went.
 * @type {Scenario}
 */
export const outside = (ctx) => {
  const target = /(\/[\w./-]+\.txt)\b/.exec(ctx.task)?.[1] ?? "/tmp/coding-mcp-outside.txt";
  if (ctx.step === 0) return { tools: [{ name: "write", args: { filePath: target, content: "written from outside the workspace\n" } }] };
  return { text: `Tried to write ${target}: ${(ctx.toolResults.at(-1) ?? "").slice(0, 200)}` };
};

/** Make a scenario from a fixed list of steps; past the end it says "done". @param {Step[]} steps @returns {Scenario} */
export function scripted(steps) {
  return (ctx) => steps[ctx.step] ?? { text: "Done." };
}

/**
 * @param {{ scenarios?: Record<string, Scenario>, log?: (line: string) => void }} [options]
 */
export async function startFakeModel(options = {}) {
  /** @type {Map<string, Scenario>} */
  const scenarios = new Map(Object.entries({ coder, question, outside, ...(options.scenarios ?? {}) }));
  /** @type {any[]} every request body received, in order */
  const requests = [];
  /** @type {Set<import("node:http").ServerResponse>} */
  const open = new Set();

  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const raw = Buffer.concat(chunks).toString("utf8");
    if (req.method === "GET" && req.url?.endsWith("/models")) {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ object: "list", data: [{ id: "fake-coder", object: "model" }] }));
      return;
    }
    if (req.method !== "POST" || !req.url?.endsWith("/chat/completions")) {
      res.writeHead(404).end();
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
    const ctx = contextOf(body);
    /** @type {Step} */
    let step;
    if (!body.tools || body.tools.length === 0) {
      // Title generation and other helper calls come without tools.
      step = { text: "Scripted session", usage: { prompt_tokens: 50, completion_tokens: 3 } };
    } else {
      const name = MARKER.exec(ctx.task)?.[1] ?? "coder";
      const scenario = scenarios.get(name);
      step = scenario ? scenario(ctx) : { text: `fake model: no scenario named ${name}` };
    }
    options.log?.(`fake model: step ${ctx.step} -> ${step.tools ? step.tools.map((t) => t.name).join(",") : "text"}`);
    if (step.error) {
      res.writeHead(step.error.status, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: { message: step.error.message, type: "fake_error" } }));
      return;
    }
    open.add(res);
    res.on("close", () => open.delete(res));
    if (step.delayMs) await new Promise((r) => setTimeout(r, step.delayMs));
    if (res.destroyed) return;
    streamStep(res, body.model ?? "fake-coder", step, requests.length);
  });

  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error("fake model: no address");
  const port = address.port;
  return {
    port,
    baseURL: `http://127.0.0.1:${port}/v1`,
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

/** @param {import("node:http").ServerResponse} res @param {string} model @param {Step} step @param {number} n */
function streamStep(res, model, step, n) {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  const id = `chatcmpl-fake-${n}`;
  const created = Math.floor(Date.now() / 1000);
  /** @param {any} delta @param {string | null} finish @param {any} [usage] */
  const send = (delta, finish, usage) => {
    const chunk = { id, object: "chat.completion.chunk", created, model, choices: [{ index: 0, delta, finish_reason: finish }] };
    if (usage) Object.assign(chunk, { usage });
    res.write(`data: ${JSON.stringify(chunk)}\n\n`);
  };
  send({ role: "assistant", content: "" }, null);
  if (step.reasoning) send({ reasoning_content: step.reasoning }, null);
  if (step.text) send({ content: step.text }, null);
  (step.tools ?? []).forEach((tool, index) => {
    send({
      tool_calls: [{ index, id: `call_${n}_${index}`, type: "function", function: { name: tool.name, arguments: JSON.stringify(tool.args) } }],
    }, null);
  });
  const u = step.usage ?? { prompt_tokens: 100, completion_tokens: 10 };
  send({}, step.tools?.length ? "tool_calls" : "stop", {
    prompt_tokens: u.prompt_tokens,
    completion_tokens: u.completion_tokens,
    total_tokens: u.prompt_tokens + u.completion_tokens,
    prompt_tokens_details: { cached_tokens: u.cached_tokens ?? 0 },
    completion_tokens_details: { reasoning_tokens: u.reasoning_tokens ?? 0 },
  });
  res.write("data: [DONE]\n\n");
  res.end();
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

/** Environment that keeps a spawned OpenCode hermetic: no downloads, its own state dirs. @param {string} home */
export function hermeticOpencodeEnv(home) {
  return {
    OPENCODE_DISABLE_AUTOUPDATE: "1",
    OPENCODE_DISABLE_MODELS_FETCH: "1",
    OPENCODE_DISABLE_DEFAULT_PLUGINS: "1",
    OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
    OPENCODE_DISABLE_SHARE: "1",
    OPENCODE_DISABLE_PROJECT_CONFIG: "1",
    XDG_DATA_HOME: `${home}/data`,
    XDG_CONFIG_HOME: `${home}/config`,
    XDG_CACHE_HOME: `${home}/cache`,
    XDG_STATE_HOME: `${home}/state`,
  };
}
