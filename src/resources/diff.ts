import { ResourceTemplate, type McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { ErrorCode, McpError, type ResourceLink } from "@modelcontextprotocol/sdk/types.js";
import { UserError, errorMessage } from "../errors.js";
import { callerOf } from "../callers/caller.js";
import type { ToolContext } from "../tools/define.js";

/**
 * A session's change as an MCP resource, `coding://sessions/{session_id}/diff` (text/x-diff): the same
 * content as coding_diff with its defaults (everything since the session opened, bounded), for hosts
 * that show or attach resources. `code` answers link to it.
 */

export const DIFF_MIME_TYPE = "text/x-diff";
const TEMPLATE = "coding://sessions/{session_id}/diff";

export function diffResourceUri(sessionId: string): string {
  return `coding://sessions/${encodeURIComponent(sessionId)}/diff`;
}

/** The resource_link a tool answer carries to a session's diff. */
export function diffResourceLink(sessionId: string): ResourceLink {
  return {
    type: "resource_link",
    uri: diffResourceUri(sessionId),
    name: `diff-${sessionId}`,
    title: `Changes of session ${sessionId}`,
    description: "The session's change since it opened, as a unified diff (read it before committing or pushing)",
    mimeType: DIFF_MIME_TYPE,
  };
}

export function registerDiffResource(server: McpServer, ctx: ToolContext): void {
  const template = new ResourceTemplate(TEMPLATE, {
    // The open sessions' diffs, so a host can offer them without knowing the ids.
    list: async (extra) => ({
      resources: (await ctx.sessions.as(callerOf(extra.authInfo)).status()).map((s) => ({
        uri: diffResourceUri(s.session_id),
        name: `diff-${s.session_id}`,
        title: `Changes of ${s.title}`,
        mimeType: DIFF_MIME_TYPE,
      })),
    }),
  });
  server.registerResource(
    "session-diff",
    template,
    {
      title: "A coding session's change",
      description: "Everything the session changed since it opened (committed or not) as a unified diff; the same as coding_diff with its defaults",
      mimeType: DIFF_MIME_TYPE,
    },
    async (uri, variables, extra) => {
      const raw = variables.session_id;
      try {
        const sessionId = decodeURIComponent(Array.isArray(raw) ? (raw[0] ?? "") : (raw ?? ""));
        const diff = await ctx.sessions.as(callerOf(extra.authInfo)).diff({ session_id: sessionId });
        return {
          contents: [{ uri: uri.href, mimeType: DIFF_MIME_TYPE, text: ctx.redactor.text(diff.diff), _meta: { truncated: diff.truncated, base: diff.base } }],
        };
      } catch (err) {
        const message = err instanceof UserError ? `${err.message}${err.hint ? `. ${err.hint}` : ""}` : `reading ${uri.href} failed: ${errorMessage(err)}`;
        if (!(err instanceof UserError)) ctx.log.error(message);
        throw new McpError(err instanceof UserError ? ErrorCode.InvalidParams : ErrorCode.InternalError, ctx.redactor.text(message));
      }
    },
  );
}
