import type { McpServer, RegisteredTool } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { CallToolResult, LoggingLevel, ResourceLink, ServerNotification, ServerRequest, ToolAnnotations } from "@modelcontextprotocol/sdk/types.js";
import type { ElicitForm, ElicitReply } from "../approvals.js";
import { SpanKind } from "@opentelemetry/api";
import { z } from "zod";
import { UserError, errorMessage } from "../errors.js";
import type { Logger } from "../log.js";
import type { Redactor } from "../redact.js";
import { callerOf, type Caller } from "../callers/caller.js";
import type { SessionManager } from "../sessions.js";
import { contextFromMeta, errorType, failSpan, setAttributes, withSpan } from "../telemetry.js";

/**
 * One tool = one `defineTool({...})` object: its schemas, annotations and handler side by side.
 * The handler returns the structured answer and a short text; registration adds what every tool
 * shares: redaction of everything sent out, `isError` answers that say what to do, and a span per call.
 */

export interface ToolContext {
  sessions: SessionManager;
  redactor: Redactor;
  log: Logger;
  /** Where workspaces live: named when the disk there is full. */
  config?: { workspace: { base_path: string } };
}

/** What one MCP connection has told the server about itself. */
export interface ConnectionState {
  /** Set by the client's logging/setLevel; until then no log messages are sent to it. */
  logLevel?: LoggingLevel;
  /** Whether the client declared form elicitation (read when needed: known only after initialize). */
  canElicit?: () => boolean;
  /** `elicitation/create` (form) to this client; `relatedRequestId` routes it with the tool call that needs it. */
  elicit?: (form: ElicitForm, options: { relatedRequestId: string | number; signal: AbortSignal }) => Promise<ElicitReply>;
  /** A notification not tied to a request (e.g. about a background task, after its call answered). */
  notify?: (notification: ServerNotification) => Promise<void>;
}

/** What a handler gets: the sessions as the calling caller sees them, and its connection. */
export interface ToolContextWithConnection extends Omit<ToolContext, "sessions"> {
  sessions: ReturnType<SessionManager["as"]>;
  caller: Caller;
  connection: ConnectionState;
}

export type ToolExtra = RequestHandlerExtra<ServerRequest, ServerNotification>;

export interface ToolAnswer<O> {
  structured: O;
  text: string;
  /** Resources the answer points at, sent as resource_link content after the text. */
  links?: ResourceLink[];
}

export interface ToolDefinition<I extends z.ZodRawShape, O extends z.ZodRawShape> {
  name: string;
  title: string;
  description: string;
  inputSchema: I;
  outputSchema: O;
  annotations: Omit<ToolAnnotations, "title">;
  /** Hosts that render MCP Apps show this tool's answer in the live session view (src/view/). */
  showsSessionView?: boolean;
  handle(args: z.infer<z.ZodObject<I>>, ctx: ToolContextWithConnection, extra: ToolExtra): Promise<ToolAnswer<z.infer<z.ZodObject<O>>>>;
}

export function defineTool<I extends z.ZodRawShape, O extends z.ZodRawShape>(definition: ToolDefinition<I, O>): ToolDefinition<I, O> {
  return definition;
}

export function errorResult(redactor: Redactor, message: string, hint?: string): CallToolResult {
  const text = hint ? `${message}. ${hint}` : message;
  return { isError: true, content: [{ type: "text", text: redactor.text(text) }] };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- every tool, whatever its shapes, goes through this one registration
export type AnyTool = ToolDefinition<any, any>;

export function registerTool(server: McpServer, tool: AnyTool, ctx: ToolContext & { connection: ConnectionState }): RegisteredTool {
  const inputSchema = tool.inputSchema as z.ZodRawShape;
  const outputSchema = tool.outputSchema as z.ZodRawShape;
  // Parsing the answer with the output schema drops internal fields (e.g. span timestamps), so
  // clients get exactly the declared shape.
  const output = z.object(outputSchema);
  return server.registerTool(
    tool.name,
    {
      title: tool.title,
      description: tool.description,
      inputSchema,
      outputSchema,
      annotations: { title: tool.title, ...tool.annotations },
    },
    // One SERVER span per call, a child of the client's trace when its request carries _meta.traceparent;
    // the handler runs with it active, so the spans of the work done inside nest under it.
    (args: unknown, extra: ToolExtra): Promise<CallToolResult> => {
      const input = args as Record<string, unknown>;
      const caller = callerOf(extra.authInfo);
      const attributes = {
        "enduser.id": caller.id,
        "mcp.method.name": "tools/call",
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": tool.name,
        "jsonrpc.request.id": String(extra.requestId),
        "mcp.session.id": extra.sessionId,
        "coding_mcp.session_id": typeof input.session_id === "string" ? input.session_id : undefined,
      };
      return withSpan(`tools/call ${tool.name}`, attributes, async (span) => {
        const started = Date.now();
        try {
          const answer = await tool.handle(input, { ...ctx, caller, sessions: ctx.sessions.as(caller) }, extra);
          ctx.log.debug(`${tool.name} answered in ${Date.now() - started} ms`);
          if (typeof answer.structured.session_id === "string") setAttributes(span, { "coding_mcp.session_id": answer.structured.session_id });
          return {
            content: [{ type: "text", text: ctx.redactor.text(answer.text) }, ...(answer.links ?? []).map((link) => ctx.redactor.value(link))],
            structuredContent: ctx.redactor.value<Record<string, unknown>>(output.parse(answer.structured)),
          };
        } catch (err) {
          failSpan(span, errorType(err), errorMessage(err));
          if (err instanceof UserError) {
            ctx.log.info(`${tool.name} refused: ${err.message}`);
            return errorResult(ctx.redactor, `${tool.name}: ${err.message}`, err.hint);
          }
          ctx.log.error(`${tool.name} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
          if (isDiskFull(err)) {
            const where = ctx.config?.workspace.base_path ?? (err as NodeJS.ErrnoException).path ?? "workspace.base_path";
            return errorResult(
              ctx.redactor,
              `${tool.name} failed: no space left on the disk under ${where} (${errorMessage(err)})`,
              `Free some space there (df -h ${where} shows what is left), or set workspace.base_path to a bigger disk, then call ${tool.name} again; nothing else needs to change.`,
            );
          }
          return errorResult(
            ctx.redactor,
            `${tool.name} failed: ${errorMessage(err)}`,
            "This is likely a problem on coding-mcp's side or its OpenCode server; the server log (stderr) has details, and coding-mcp doctor checks the setup.",
          );
        }
      }, { kind: SpanKind.SERVER, parent: contextFromMeta(extra._meta) });
    },
  );
}

/**
 * A full disk (or quota), as node's fs reports it (ENOSPC, EDQUOT) or as git or another process
 * writes it in its message; also when it is the cause of the error.
 */
export function isDiskFull(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOSPC" || code === "EDQUOT") return true;
    const stderr = (e as { stderr?: unknown }).stderr;
    const text = `${(e as Error).message ?? ""}\n${typeof stderr === "string" ? stderr : ""}`;
    // git's hashfile writes (the index, packs) say ENOSPC as "... write error. Out of diskspace".
    if (/No space left on device|Disk quota exceeded|write error\. Out of diskspace/i.test(text)) return true;
  }
  return false;
}
