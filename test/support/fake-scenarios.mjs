// @ts-check
// What every scripted fake model server shares (fake-model.mjs: OpenAI chat completions for OpenCode;
// fake-anthropic.mjs: Anthropic Messages for Claude Code; fake-responses.mjs: OpenAI Responses for
// Codex; fake-gemini.mjs: the Gemini API for Gemini CLI): the scenarios, how one is chosen, and the
// loopback HTTP server that records requests and answers each one with the scenario's next step.
// Each fake only says how its wire format reads a conversation and writes a step.
//
// How a script is chosen: the task text may carry a marker `[[fake:NAME]]`; the scenario NAME then
// answers. Without a marker the built-in "coder" scenario answers (write a file, run it, summarise).
// Which step of a scenario answers is derived from the request itself (how many tool results follow
// the last user text), so a server is stateless per request and a retried request gets the same answer.
// Scenarios name tools as OpenCode does (write, bash, read, edit with filePath/command/...); the
// fakes of other agents turn them into that agent's tools.
import http from "node:http";

/**
 * @typedef {{ name: string, args: Record<string, any> }} ToolCall
 * @typedef {{ tools?: ToolCall[], text?: string, reasoning?: string, delayMs?: number,
 *   usage?: { prompt_tokens: number, completion_tokens: number, reasoning_tokens?: number, cached_tokens?: number },
 *   error?: { status: number, message: string } }} Step
 * @typedef {{ task: string, directory: string | undefined, step: number, toolResults: string[], request: any }} StepContext
 * @typedef {(ctx: StepContext) => Step} Scenario
 */

export const MARKER = /\[\[fake:([\w-]+)\]\]/;

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

/**
 * Runs the task's commands one by one with the bash tool: each line `RUN: <command>`, or
 * `RUN@<directory>: <command>` to run it with that working directory (the model moving `workdir`),
 * then reports every output. For probing what an agent's commands can and cannot do.
 * @type {Scenario}
 */
export const commands = (ctx) => {
  const lines = [...ctx.task.matchAll(/^RUN(?:@(\S+))?: (.+)$/gm)];
  const line = lines[ctx.step];
  if (line) {
    const args = { command: line[2], description: `Probe ${ctx.step + 1}`, ...(line[1] ? { workdir: line[1] } : {}) };
    return { tools: [{ name: "bash", args }] };
  }
  return { text: ctx.toolResults.map((r, i) => `#${i + 1}: ${r}`).join("\n") };
};

/**
 * Writes the task's files with the write tool, all in the first step: each line `WRITE <path>: <content>`
 * (relative to the session's directory, or absolute); then runs its `RUN: <command>` lines one by one
 * with the bash tool, as `commands` does. For what coding-mcp reads of the workspace after each kind of tool.
 * @type {Scenario}
 */
export const files = (ctx) => {
  const writes = [...ctx.task.matchAll(/^WRITE (\S+): (.*)$/gm)];
  const runs = [...ctx.task.matchAll(/^RUN: (.+)$/gm)];
  if (ctx.toolResults.length === 0 && writes.length) {
    return { tools: writes.map(([, p = "", content]) => ({ name: "write", args: { filePath: p.startsWith("/") || !ctx.directory ? p : `${ctx.directory}/${p}`, content: `${content}\n` } })) };
  }
  const run = runs[ctx.toolResults.length - (writes.length ? writes.length : 0)];
  if (run) return { tools: [{ name: "bash", args: { command: run[1], description: "Run" } }] };
  return { text: `Done: ${writes.length} files written, ${runs.length} commands run.` };
};

/** Make a scenario from a fixed list of steps; past the end it says "done". @param {Step[]} steps @returns {Scenario} */
export function scripted(steps) {
  return (ctx) => steps[ctx.step] ?? { text: "Done." };
}

/** Usage of a step, with the default every fake reports when the scenario names none. @param {Step} step */
export function usageOf(step) {
  return step.usage ?? { prompt_tokens: 100, completion_tokens: 10 };
}

/**
 * One wire format: how a fake reads a request and writes a step. The server does the rest.
 * @typedef {{
 *   label: string,
 *   fixed?: (method: string, url: URL, raw: string) => { status: number, body: unknown } | undefined,
 *   isModelCall: (method: string, url: URL) => boolean,
 *   contextOf: (body: any) => StepContext,
 *   hasTools: (body: any) => boolean,
 *   sendError: (res: import("node:http").ServerResponse, status: number, message: string) => void,
 *   send: (res: import("node:http").ServerResponse, answer: { body: any, url: URL, step: Step, n: number }) => void,
 * }} WireFormat
 */

/**
 * Start a scripted model server on 127.0.0.1 speaking `wire`.
 * @param {WireFormat} wire
 * @param {{ scenarios?: Record<string, Scenario>, log?: (line: string) => void }} [options]
 */
export async function startScriptedServer(wire, options = {}) {
  /** @type {Map<string, Scenario>} */
  const scenarios = new Map(Object.entries({ coder, question, outside, commands, files, ...(options.scenarios ?? {}) }));
  /** @type {any[]} every model request body received, in order */
  const requests = [];
  /** @type {Set<import("node:http").ServerResponse>} */
  const open = new Set();
  let n = 0;

  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const raw = Buffer.concat(chunks).toString("utf8");
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    const method = req.method ?? "GET";
    const fixed = wire.fixed?.(method, url, raw);
    if (fixed) {
      res.writeHead(fixed.status, { "content-type": "application/json" });
      res.end(JSON.stringify(fixed.body));
      return;
    }
    if (!wire.isModelCall(method, url)) {
      options.log?.(`${wire.label}: no ${method} ${url.pathname}`);
      wire.sendError(res, 404, `${wire.label}: no ${method} ${url.pathname}`);
      return;
    }
    /** @type {any} */
    let body;
    try {
      body = JSON.parse(raw);
    } catch {
      wire.sendError(res, 400, `${wire.label}: the body is not JSON`);
      return;
    }
    requests.push(body);
    const ctx = wire.contextOf(body);
    /** @type {Step} */
    let step;
    if (!wire.hasTools(body)) {
      // Title generation, routing, quota checks and other helper calls come without tools.
      step = { text: "Scripted session", usage: { prompt_tokens: 50, completion_tokens: 3 } };
    } else {
      const name = MARKER.exec(ctx.task)?.[1] ?? "coder";
      const scenario = scenarios.get(name);
      step = scenario ? scenario(ctx) : { text: `${wire.label}: no scenario named ${name}` };
    }
    options.log?.(`${wire.label}: step ${ctx.step} -> ${step.tools ? step.tools.map((t) => t.name).join(",") : "text"}`);
    if (step.error) {
      wire.sendError(res, step.error.status, step.error.message);
      return;
    }
    open.add(res);
    res.on("close", () => open.delete(res));
    if (step.delayMs) await new Promise((r) => setTimeout(r, step.delayMs));
    if (res.destroyed) return;
    n += 1;
    wire.send(res, { body, url, step, n });
  });

  await new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(undefined)));
  const address = server.address();
  if (!address || typeof address === "string") throw new Error(`${wire.label}: no address`);
  const port = address.port;
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
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

/** Server-sent events on `res`. @param {import("node:http").ServerResponse} res */
export function sse(res) {
  res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  return {
    /** @param {unknown} data @param {string} [event] */
    send(data, event) {
      res.write(`${event ? `event: ${event}\n` : ""}data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`);
    },
    end() {
      res.end();
    },
  };
}
