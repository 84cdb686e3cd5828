// @ts-check
// A misbehaving ACP agent for the fault tests of the ACP backend (test/acp-backend.test.ts): raw
// JSON-RPC over stdio, as little as it takes to be one. Its first argument says how it misbehaves:
//   hang    answers initialize and session/new, then never answers a prompt and ignores session/cancel
//   silent  answers nothing at all
//   crash   answers initialize and session/new, and exits (code 7) when a prompt comes
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
  }
});
