import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { SetLevelRequestSchema, type ElicitRequestFormParams } from "@modelcontextprotocol/sdk/types.js";
import { registerDiffResource } from "./resources/diff.js";
import { registerTool, type ConnectionState, type ToolContext } from "./tools/define.js";
import { allTools } from "./tools/index.js";
import { offerSessionView } from "./view/index.js";
import { VERSION } from "./version.js";

const INSTRUCTIONS = `coding-mcp delegates whole coding tasks to a coding agent (OpenCode, or another configured backend chosen at coding_open) inside git workspaces.
Typical flow: coding_open (new, cloned or existing repository) -> code (one or more tasks) -> coding_commit -> coding_push -> coding_close.
For parallel work on one repository, open each session with workspace_path and isolation "worktree": each gets its own worktree and branch. Read a session's change with coding_diff (or the resource coding://sessions/{session_id}/diff) before committing.
code answers with the agent's summary, the files changed and a trace of its tool calls. For long tasks pass background: true and follow the task with coding_status; stop a running task with coding_cancel.
When the agent asks a person (a permission the policy marks ask, or a question), coding-mcp asks through elicitation if this client supports it; otherwise the request waits in coding_status (task.pending_requests) until coding_respond answers it or it times out.
Close sessions when done.`;

const ELICIT_TIMEOUT_MS = 25 * 3600 * 1000;

/** The MCP server with every coding tool registered; one per MCP connection, all sharing one context. */
export function createServer(ctx: ToolContext): McpServer {
  const server = new McpServer(
    { name: "coding-mcp", title: "coding-mcp", version: VERSION },
    { capabilities: { tools: {}, logging: {} }, instructions: INSTRUCTIONS },
  );
  const connection: ConnectionState = {};
  // Remember the client's level ourselves: task progress goes out as log messages only once it asked.
  server.server.setRequestHandler(SetLevelRequestSchema, async (request) => {
    connection.logLevel = request.params.level;
    return {};
  });
  connection.canElicit = () => Boolean(server.server.getClientCapabilities()?.elicitation?.form);
  connection.elicit = (form, options) =>
    server.server.elicitInput({ mode: "form", ...(form as ElicitRequestFormParams) }, {
      relatedRequestId: options.relatedRequestId,
      signal: options.signal,
      // The approval timeout bounds the wait (and withdraws the form); the SDK's 60 s default would cut it short.
      timeout: ELICIT_TIMEOUT_MS,
    });
  connection.notify = (notification) => server.server.notification(notification);
  const registered = allTools.map((tool) => ({ tool, registered: registerTool(server, tool, { ...ctx, connection }) }));
  registerDiffResource(server, ctx);
  offerSessionView(server, registered.filter((r) => r.tool.showsSessionView).map((r) => r.registered));
  return server;
}
