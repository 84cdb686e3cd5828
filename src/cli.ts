#!/usr/bin/env node
import { parseArgs } from "node:util";
import { createApp } from "./app.js";
import { ConfigError, loadConfig } from "./config.js";
import { createServer } from "./server.js";
import { serveStdio } from "./transports/stdio.js";
import { VERSION } from "./version.js";

const HELP = `coding-mcp ${VERSION}: an MCP server that delegates coding tasks to OpenCode in git workspaces

Usage:
  coding-mcp [--config FILE]          serve MCP over stdio (what MCP clients start)
  coding-mcp --help | --version

Options:
  --config FILE   YAML config (default: $CODING_MCP_CONFIG, else ~/.config/coding-mcp/config.yaml if present)
  --transport T   stdio (default); http is planned
  --host H, --port P   for --transport http

Environment:
  OPENCODE_URL                 use this OpenCode server instead of starting one
  OPENCODE_SERVER_PASSWORD     its password (variable name set by opencode.password_env)
  GITHUB_TOKEN                 token for clone and push (variable name set by git.token_env)
  CODING_MCP_<SECTION>_<KEY>   override one config key, e.g. CODING_MCP_LIMITS_TASK_TIMEOUT_MIN=30
  CODING_MCP_LOG_LEVEL         debug | info | warn | error (logs go to stderr)
`;

function fail(message: string): never {
  process.stderr.write(`coding-mcp: ${message}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  let values: { config?: string; transport?: string; host?: string; port?: string; help?: boolean; version?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        config: { type: "string" },
        transport: { type: "string", default: "stdio" },
        host: { type: "string" },
        port: { type: "string" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "v" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    fail(`${(err as Error).message}\nRun coding-mcp --help for the options.`);
  }
  if (values.help) {
    process.stdout.write(HELP);
    return;
  }
  if (values.version) {
    process.stdout.write(`${VERSION}\n`);
    return;
  }
  if (values.transport !== "stdio") {
    fail(`--transport ${values.transport} is not available in this version; use stdio (the default)`);
  }

  let config;
  try {
    config = loadConfig(values.config ? { configPath: values.config } : {});
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
  const app = await createApp(config);
  app.log.info(`coding-mcp ${VERSION} starting (config from ${config.source}; workspaces under ${config.workspace.base_path})`);

  let stopping: Promise<void> | undefined;
  const shutdown = (why: string) => {
    stopping ??= (async () => {
      app.log.info(`shutting down (${why})`);
      await app.stop().catch((err) => app.log.error(`shutdown: ${(err as Error).message}`));
    })();
    return stopping;
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(signal, () => void shutdown(signal).then(() => process.exit(0)));
  }

  // Serve at once; OpenCode starts meanwhile and tool calls wait for it (and report it if it cannot start).
  app.backend.start().catch((err) => app.log.error(`OpenCode is not available yet: ${(err as Error).message}`));
  await serveStdio(createServer(app));
  await shutdown("client disconnected");
  process.exit(0);
}

main().catch((err) => {
  process.stderr.write(`coding-mcp: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
