import fs from "node:fs";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { ElicitRequestSchema, type CallToolResult, type ElicitRequestFormParams, type ElicitResult } from "@modelcontextprotocol/sdk/types.js";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { CLI, prepare, structured, type FakeModel } from "./support/harness.js";

// People in the loop, with a client that declares elicitation (as Claude Code, VS Code and Cursor do):
// the agent's permission requests that the policy marks `ask`, and its questions, reach the person as
// forms; their answers (allow, allow for the session, reject, an option, nothing at all) reach the
// agent. Built server over stdio, real opencode serve (whose own config allows everything and denies
// questions: coding-mcp's session rules must win), scripted fake model, real MCP SDK client.

const APPROVAL_TIMEOUT_SEC = 8;

let dir: string;
let fake: FakeModel;
let client: Client;
const stderr: string[] = [];

type Form = ElicitRequestFormParams;
/** What the person does with the next form; each test sets it. */
let person: (form: Form, signal: AbortSignal) => Promise<ElicitResult>;
let forms: Form[] = [];

beforeAll(async () => {
  const prepared = await prepare({
    config: {
      permissions: { "*": "allow", external_directory: "ask", bash: "ask", edit: "deny" },
      limits: { approval_timeout_sec: APPROVAL_TIMEOUT_SEC },
    },
  });
  ({ dir, fake } = prepared);
  const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, "--config", prepared.configFile], env: prepared.env, stderr: "pipe" });
  transport.stderr?.on("data", (chunk: Buffer) => stderr.push(...chunk.toString("utf8").split("\n").filter(Boolean)));
  client = new Client({ name: "person-at-a-client", version: "1.0.0" }, { capabilities: { elicitation: { form: {} } } });
  client.setRequestHandler(ElicitRequestSchema, async (request, extra) => {
    const form = request.params as Form;
    forms.push(form);
    return person(form, extra.signal);
  });
  await client.connect(transport);

  fake.setScenario("two-commands", [
    { tools: [{ name: "bash", args: { command: "echo one > one.txt", description: "Write one.txt" } }] },
    { tools: [{ name: "bash", args: { command: "echo two > two.txt", description: "Write two.txt" } }] },
    { text: "Wrote both." },
  ]);
  fake.setScenario("one-command", [{ tools: [{ name: "bash", args: { command: "echo allowed > bash.txt", description: "Write bash.txt" } }] }, { text: "Tried it." }]);
  fake.setScenario("write-file", (ctx) =>
    ctx.step === 0 ? { tools: [{ name: "write", args: { filePath: `${ctx.directory}/written.txt`, content: "x\n" } }] } : { text: "Tried to write." },
  );
});

afterAll(async () => {
  await client?.close();
  await fake?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
});

beforeEach(() => {
  forms = [];
  person = async () => {
    throw new Error("this test expected no form");
  };
});

async function call(name: string, args: Record<string, unknown>, onprogress?: (p: { message?: string }) => void): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args }, undefined, { timeout: 180_000, ...(onprogress ? { onprogress } : {}) })) as CallToolResult;
}

async function open(): Promise<{ session_id: string; workspace_path: string }> {
  return structured(await call("coding_open", {}));
}

describe("a permission request the policy marks ask", () => {
  it("asks the person with a form naming the session and the command; allow lets the command run", async () => {
    const session = await open();
    person = async () => ({ action: "accept", content: { decision: "allow" } });
    const progress: string[] = [];
    const result = structured(await call("code", { session_id: session.session_id, task: "Run it [[fake:one-command]]" }, (p) => progress.push(p.message ?? "")));

    expect(forms).toHaveLength(1);
    const form = forms[0]!;
    expect(form.message).toContain(`session ${session.session_id}`);
    expect(form.message).toContain("asks for permission to run a command: echo allowed > bash.txt");
    expect(form.message).toContain(`Workspace: ${session.workspace_path}`);
    expect(form.requestedSchema.properties.decision).toEqual({
      type: "string",
      title: "Your decision",
      oneOf: [
        { const: "allow", title: "Allow once" },
        { const: "allow_session", title: "Allow for the rest of this session" },
        { const: "reject", title: "Reject" },
      ],
    });
    expect(form.requestedSchema.required).toEqual(["decision"]);

    expect(fs.readFileSync(path.join(session.workspace_path, "bash.txt"), "utf8")).toBe("allowed\n");
    expect(result.trace.permissions).toEqual([
      expect.objectContaining({ permission: "bash", patterns: ["echo allowed > bash.txt"], reply: "once", decided_by: "person", request_id: expect.stringMatching(/^req_/) }),
    ]);
    expect(progress).toContainEqual(expect.stringMatching(/^asking the person \(permission req_\w+\): run a command: echo allowed > bash.txt/));
    expect(progress).toContain("permission bash allowed by the person: echo allowed > bash.txt");
    structured(await call("coding_close", { session_id: session.session_id }));
  }, 240_000);

  it("reject keeps the command from running, and the agent reads the person's message", async () => {
    const session = await open();
    person = async () => ({ action: "accept", content: { decision: "reject", message: "Not on this machine" } });
    const result = structured(await call("code", { session_id: session.session_id, task: "Run it [[fake:one-command]]" }));
    expect(fs.existsSync(path.join(session.workspace_path, "bash.txt"))).toBe(false);
    expect(result.trace.permissions).toEqual([expect.objectContaining({ reply: "reject", decided_by: "person", message: "Not on this machine" })]);
    expect(result.trace.tool_calls.map((c: { tool: string; status: string }) => `${c.tool}:${c.status}`)).toEqual(["bash:error"]);
    // With the reason, the agent went on to its next step instead of ending the turn.
    const toolMessage = fake.requests.at(-1).messages.filter((m: { role: string }) => m.role === "tool").at(-1);
    expect(JSON.stringify(toolMessage.content)).toContain("Not on this machine");
    expect(result.summary).toBe("Tried it.");
    structured(await call("coding_close", { session_id: session.session_id }));
  }, 240_000);

  it("allow for the session answers later requests of that session without asking again", async () => {
    const session = await open();
    person = async () => ({ action: "accept", content: { decision: "allow_session" } });
    const result = structured(await call("code", { session_id: session.session_id, task: "Both [[fake:two-commands]]" }));
    expect(forms).toHaveLength(1);
    expect(fs.readFileSync(path.join(session.workspace_path, "one.txt"), "utf8")).toBe("one\n");
    expect(fs.readFileSync(path.join(session.workspace_path, "two.txt"), "utf8")).toBe("two\n");
    expect(result.trace.permissions.map((d: { reply: string; decided_by: string }) => `${d.reply}:${d.decided_by}`)).toEqual(["always:person", "once:session"]);

    // Another session on the same project is asked again (OpenCode's own "always" would have outlived the session).
    const other = await open();
    person = async () => ({ action: "decline" });
    const again = structured(await call("code", { session_id: other.session_id, task: "Both [[fake:one-command]]" }));
    expect(forms).toHaveLength(2);
    expect(again.trace.permissions).toEqual([expect.objectContaining({ reply: "reject", decided_by: "person" })]);
    structured(await call("coding_close", { session_id: session.session_id }));
    structured(await call("coding_close", { session_id: other.session_id }));
  }, 240_000);

  it("rejects a request nobody answers after limits.approval_timeout_sec, and withdraws the form", async () => {
    const session = await open();
    let withdrawn = false;
    person = (_form, signal) =>
      new Promise((resolve) => {
        signal.addEventListener("abort", () => {
          withdrawn = true;
          resolve({ action: "cancel" });
        });
      });
    const result = structured(await call("code", { session_id: session.session_id, task: "Run it [[fake:one-command]]" }));
    expect(forms).toHaveLength(1);
    expect(forms[0]!.message).toContain(`rejected in ${APPROVAL_TIMEOUT_SEC} s`);
    expect(withdrawn).toBe(true);
    expect(fs.existsSync(path.join(session.workspace_path, "bash.txt"))).toBe(false);
    const [decision] = result.trace.permissions;
    expect(decision).toMatchObject({ reply: "reject", decided_by: "timeout" });
    expect(decision.duration_ms).toBeGreaterThanOrEqual(APPROVAL_TIMEOUT_SEC * 1000 - 50);
    structured(await call("coding_close", { session_id: session.session_id }));
  }, 240_000);
});

describe("the policy decides without a person", () => {
  it("denies a kind the policy denies, even where OpenCode's own config allows it", async () => {
    const session = await open();
    const result = structured(await call("code", { session_id: session.session_id, task: "Write [[fake:write-file]]" }));
    expect(forms).toHaveLength(0);
    expect(fs.existsSync(path.join(session.workspace_path, "written.txt"))).toBe(false);
    expect(result.trace.permissions).toEqual([
      expect.objectContaining({ permission: "edit", patterns: ["written.txt"], reply: "reject", decided_by: "policy", message: "coding-mcp's permission policy denies edit" }),
    ]);
    structured(await call("coding_close", { session_id: session.session_id }));
  }, 240_000);

  it("asks before the agent writes outside its workspace, whatever OpenCode's config says", async () => {
    const session = await open();
    const target = path.join(dir, "outside", "escaped.txt");
    fs.mkdirSync(path.dirname(target), { recursive: true });
    person = async () => ({ action: "accept", content: { decision: "reject" } });
    const result = structured(await call("code", { session_id: session.session_id, task: `Write ${target} [[fake:outside]]` }));
    expect(forms).toHaveLength(1);
    expect(forms[0]!.message).toContain(`asks for permission to reach outside its workspace: ${path.dirname(target)}/*`);
    expect(fs.existsSync(target)).toBe(false);
    expect(result.trace.permissions).toEqual([expect.objectContaining({ permission: "external_directory", reply: "reject", decided_by: "person" })]);
    structured(await call("coding_close", { session_id: session.session_id }));
  }, 240_000);
});

describe("a question of the agent", () => {
  it("offers the question's options (and own words) as a form, and the chosen option reaches the agent", async () => {
    const session = await open();
    person = async () => ({ action: "accept", content: { answer_1: "Green" } });
    const progress: string[] = [];
    const result = structured(await call("code", { session_id: session.session_id, task: "Ask me [[fake:question]]" }, (p) => progress.push(p.message ?? "")));
    expect(forms).toHaveLength(1);
    expect(forms[0]).toMatchObject({
      message: expect.stringContaining(`session ${session.session_id}`),
      requestedSchema: {
        type: "object",
        properties: {
          answer_1: {
            type: "string",
            title: "Color",
            description: "Which color should the button be?",
            oneOf: [
              { const: "Green", title: "Green: Calm, matches the logo" },
              { const: "Red", title: "Red: Loud, for a warning" },
            ],
          },
          answer_1_own: { type: "string" },
        },
      },
    });
    expect(forms[0]!.message).toContain("Which color should the button be?");
    // The agent's next step was asked with the answer as the tool's output, and said so.
    const toolMessage = fake.requests.at(-1).messages.filter((m: { role: string }) => m.role === "tool").at(-1);
    expect(JSON.stringify(toolMessage.content)).toContain('\\"Which color should the button be?\\"=\\"Green\\"');
    expect(result.summary).toBe("The person chose: Green");
    expect(result.trace.questions).toEqual([
      expect.objectContaining({ questions: [{ question: "Which color should the button be?", header: "Color" }], answers: [["Green"]], rejected: false, decided_by: "person" }),
    ]);
    expect(progress).toContain("question answered by the person: Green");
    structured(await call("coding_close", { session_id: session.session_id }));
  }, 240_000);

  it("a declined question is dismissed, and the agent is told", async () => {
    const session = await open();
    person = async () => ({ action: "decline" });
    const result = structured(await call("code", { session_id: session.session_id, task: "Ask me [[fake:question]]" }));
    expect(result.summary).not.toMatch(/The person chose/);
    expect(result.trace.questions).toEqual([expect.objectContaining({ rejected: true, decided_by: "person" })]);
    expect(result.trace.tool_calls).toEqual([expect.objectContaining({ tool: "question", status: "error", error: expect.stringMatching(/dismissed/) })]);
    structured(await call("coding_close", { session_id: session.session_id }));
  }, 240_000);
});
