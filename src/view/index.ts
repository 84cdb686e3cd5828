import type { McpServer, RegisteredTool } from "@modelcontextprotocol/sdk/server/mcp.js";
import { RESOURCE_MIME_TYPE, RESOURCE_URI_META_KEY, getUiCapability, registerAppResource } from "@modelcontextprotocol/ext-apps/server";

/**
 * The live session view (MCP Apps extension, io.modelcontextprotocol/ui): one HTML resource that
 * hosts rendering MCP Apps show with the answers of code, coding_status and coding_open. It follows
 * the session by polling coding_status and steers it through coding_respond, coding_cancel and
 * coding_commit: the same tools (and so the same checks and errors) every client has.
 *
 * Offered only to a client that declared the extension with this MIME type: the resource and the
 * tools' `_meta` are added once it has initialized, so every other client gets exactly the answers
 * it got before the view existed.
 */

export const SESSION_VIEW_URI = "ui://coding/session";

export function offerSessionView(server: McpServer, shownIn: RegisteredTool[]): void {
  const before = server.server.oninitialized;
  server.server.oninitialized = () => {
    before?.();
    // The package's .d.ts files import without extensions, which NodeNext resolution cannot follow: its types are named here.
    const ui = getUiCapability(server.server.getClientCapabilities()) as { mimeTypes?: string[] } | undefined;
    if (!ui?.mimeTypes?.includes(RESOURCE_MIME_TYPE)) return;
    registerAppResource(
      server,
      "session-view",
      SESSION_VIEW_URI,
      {
        title: "Coding session (live view)",
        description: "Watch a coding session's task as it runs (tool calls, requests for a person, the diff) and steer it: answer, cancel, commit",
        mimeType: RESOURCE_MIME_TYPE,
      },
      async (uri) => ({
        contents: [{ uri: uri.href, mimeType: RESOURCE_MIME_TYPE, text: await sessionViewHtml(), _meta: { ui: { prefersBorder: true } } }],
      }),
    );
    // Both spellings of the link, as the extension's registerAppTool writes them (older hosts read the flat key).
    for (const tool of shownIn) tool.update({ _meta: { ...tool._meta, ui: { resourceUri: SESSION_VIEW_URI }, [RESOURCE_URI_META_KEY]: SESSION_VIEW_URI } });
  };
}

/** The view's HTML, script and styles inline: built by scripts/build.mjs from src/view/app/ into a chunk of its own, loaded on first read. */
async function sessionViewHtml(): Promise<string> {
  const { default: html } = await import("coding-mcp:session-view-html");
  return html;
}
