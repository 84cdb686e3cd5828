/* global window, document, location, URLSearchParams */
// The test's MCP Apps host page: embeds the session view in a sandboxed iframe through the extension's
// own AppBridge, as a host does, and hands the view's tool calls to the test (window.hostCallTool,
// exposed by Playwright), which makes them with the real MCP SDK client connected to coding-mcp.
// Bundled by test/e2e-session-view.test.ts with esbuild; served on 127.0.0.1.
import { AppBridge, PostMessageTransport } from "@modelcontextprotocol/ext-apps/app-bridge";

const theme = new URLSearchParams(location.search).get("theme") === "dark" ? "dark" : "light";
document.documentElement.style.background = theme === "dark" ? "#0d0f12" : "#ffffff";

const iframe = document.createElement("iframe");
// No allow-same-origin: the view runs in an opaque origin, as in a host's sandbox.
iframe.setAttribute("sandbox", "allow-scripts");
iframe.style.cssText = "width: 100%; height: 400px; border: 0; display: block;";
document.body.append(iframe);

const bridge = new AppBridge(null, { name: "coding-mcp test host", version: "1.0.0" }, { serverTools: {} }, { hostContext: { theme, displayMode: "inline" } });
bridge.oncalltool = async (params) => window.hostCallTool(params);
bridge.onsizechange = ({ height }) => {
  if (height) iframe.style.height = `${Math.ceil(height)}px`;
};
const initialized = new Promise((resolve) => {
  bridge.oninitialized = resolve;
});

await bridge.connect(new PostMessageTransport(iframe.contentWindow, iframe.contentWindow));
iframe.src = "/view";

/** Show the view with a tool call: its arguments, then its result. */
window.showToolCall = async (args, result) => {
  await initialized;
  await bridge.sendToolInput({ arguments: args });
  await bridge.sendToolResult(result);
};
window.setTheme = (next) => {
  document.documentElement.style.background = next === "dark" ? "#0d0f12" : "#ffffff";
  bridge.setHostContext({ theme: next, displayMode: "inline" });
};
window.hostReady = true;
