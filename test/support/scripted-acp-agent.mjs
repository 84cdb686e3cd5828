// @ts-check
// A misbehaving ACP agent for the fault tests of the ACP backend (test/acp-backend.test.ts): raw
// JSON-RPC over stdio, as little as it takes to be one. Its first argument says how it misbehaves:
//   hang    answers initialize and session/new, then never answers a prompt and ignores session/cancel
//   silent  answers nothing at all
//   crash   answers initialize and session/new, and exits (code 7) when a prompt comes
//   work    answers a prompt like a real agent: one command (a tool call that runs 400 ms), a message,
//           the session's cost and the turn's tokens (neither when the prompt says [[no usage]])
//   abort   asks permission for an edit and, when it is rejected, ends the turn "cancelled" (as Codex does)
import readline from "node:readline";

const mode = process.argv[2] ?? "hang";
let sessions = 0;
/** @param {unknown} message */
const send = (message) => process.stdout.write(JSON.stringify(message) + "\n");
readline.createInterface({ input: process.stdin }).on("line", (line) => {
  if (mode === "silent") return;
  const message = JSON.parse(line);
  if (message.method === "initialize") {
    send({ jsonrpc: "2.0", id: message.id, result: { protocolVersion: 1, agentCapabilities: { loadSession: false }, agentInfo: { name: `scripted-${mode}`, version: "0" } } });
  } else if (message.method === "session/new") {
    send({ jsonrpc: "2.0", id: message.id, result: { sessionId: `scripted-${++sessions}` } });
  } else if (message.method === "session/prompt") {
    process.stderr.write(`prompt for ${message.params.sessionId}\n`);
    if (mode === "crash") process.exit(7);
    if (mode === "work") work(message);
    if (mode === "abort") askThenAbort(message);
  } else if (message.id !== undefined && !message.method && waiting.has(message.id)) {
    waiting.get(message.id)?.(message.result);
    waiting.delete(message.id);
  }
});

/** Answers to this agent's own requests, by id (a string, as Codex's are). @type {Map<string, (result: any) => void>} */
const waiting = new Map();

/** @param {any} prompt */
function askThenAbort(prompt) {
  const sessionId = prompt.params.sessionId;
  const toolCall = { toolCallId: "call_1", title: "Edit /etc/hosts", kind: "edit", status: "pending", locations: [{ path: "/etc/hosts" }] };
  const options = [{ optionId: "approved", name: "Yes", kind: "allow_once" }, { optionId: "abort", name: "No", kind: "reject_once" }];
  waiting.set("ask-1", (/** @type {any} */ result) => {
    const rejected = result?.outcome?.optionId === "abort";
    send({ jsonrpc: "2.0", id: prompt.id, result: { stopReason: rejected ? "cancelled" : "end_turn" } });
  });
  send({ jsonrpc: "2.0", id: "ask-1", method: "session/request_permission", params: { sessionId, toolCall, options } });
}

/** @param {any} prompt */
function work(prompt) {
  const sessionId = prompt.params.sessionId;
  /** @param {any} update */
  const update = (update) => send({ jsonrpc: "2.0", method: "session/update", params: { sessionId, update } });
  update({ sessionUpdate: "tool_call", toolCallId: "call_1", title: "bash", kind: "execute", status: "pending", rawInput: {} });
  update({ sessionUpdate: "tool_call_update", toolCallId: "call_1", status: "in_progress", rawInput: { command: "echo hi" } });
  setTimeout(() => {
    update({ sessionUpdate: "tool_call_update", toolCallId: "call_1", status: "completed", content: [{ type: "content", content: { type: "text", text: "hi\n" } }] });
    update({ sessionUpdate: "agent_message_chunk", content: { type: "text", text: "Said hi." } });
    if (JSON.stringify(prompt.params.prompt).includes("[[no usage]]")) {
      send({ jsonrpc: "2.0", id: prompt.id, result: { stopReason: "end_turn" } });
      return;
    }
    update({ sessionUpdate: "usage_update", used: 100, size: 1000, cost: { amount: 0.25, currency: "USD" } });
    send({ jsonrpc: "2.0", id: prompt.id, result: { stopReason: "end_turn", usage: { inputTokens: 10, outputTokens: 5, totalTokens: 15 } } });
  }, 400);
}
