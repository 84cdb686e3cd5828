#!/usr/bin/env -S node --max-semi-space-size=1
// A 1 MB young generation (V8's default grows to 16 MB) keeps a long-running server's memory near its
// idle size for a tiny cost in garbage collection (npm run bench, growth). `node dist/cli.js` skips
// this line: pass the flag there yourself.
import { parseArgs } from "node:util";
import { createApp, type App } from "./app.js";
import { ConfigError, loadConfig, type ResolvedConfig } from "./config.js";
import { createServer } from "./server.js";
import { isLoopbackHost } from "./net.js";
import { createAuthenticator } from "./callers/authenticate.js";
import type { JwtCheck } from "./callers/oauth.js";
import type { HttpOptions, HttpService } from "./transports/http.js";
import { serveStdio } from "./transports/stdio.js";
import { VERSION } from "./version.js";

const MIN_TOKEN_LENGTH = 16;

const HELP = `coding-mcp ${VERSION}: an MCP server that delegates coding tasks to OpenCode in git workspaces

Usage:
  coding-mcp [--config FILE]          serve MCP over stdio (what MCP clients start)
  coding-mcp --transport http [--host H] [--port P] [--config FILE]
                                      serve Streamable HTTP at /mcp and legacy SSE at /sse on one port
  coding-mcp doctor [--config FILE] [--task]
                                      check the setup (Node, git, ripgrep, OpenCode, config, paths, token),
                                      one line per check with the fix; --task also runs one real task
  coding-mcp --help | --version

Options:
  --config FILE   YAML config (default: $CODING_MCP_CONFIG, else ~/.config/coding-mcp/config.yaml if present)
  --transport T   stdio (default) or http
  --host H        address to bind for http (default http.host, 127.0.0.1); anything but loopback needs a token
  --port P        port for http (default http.port, 8765); 0 picks a free one (the log names it)

Environment:
  OPENCODE_URL                 use this OpenCode server instead of starting one
  OPENCODE_SERVER_PASSWORD     its password (variable name set by opencode.password_env)
  GITHUB_TOKEN                 token for clone and push (variable name set by git.token_env)
  CODING_MCP_TOKEN             bearer token HTTP clients must send (required off loopback; 16+ characters)
  CODING_MCP_<SECTION>_<KEY>   override one config key, e.g. CODING_MCP_LIMITS_TASK_TIMEOUT_MIN=30
  CODING_MCP_LOG_LEVEL         debug | info | warn | error (logs go to stderr)
  OTEL_EXPORTER_OTLP_ENDPOINT  send OpenTelemetry traces over OTLP/HTTP, e.g. http://127.0.0.1:4318
                               (also OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_SERVICE_NAME, OTEL_SDK_DISABLED)
`;

function fail(message: string): never {
  process.stderr.write(`coding-mcp: ${message}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  let values: { config?: string; transport?: string; host?: string; port?: string; task?: boolean; help?: boolean; version?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      options: {
        config: { type: "string" },
        transport: { type: "string", default: "stdio" },
        host: { type: "string" },
        port: { type: "string" },
        task: { type: "boolean" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "v" },
      },
      strict: true,
      allowPositionals: true,
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
  const [command, ...extra] = positionals;
  if (command !== undefined && command !== "doctor") fail(`unknown command ${command}; the only command is doctor (coding-mcp --help)`);
  if (extra.length > 0) fail(`unexpected argument ${extra[0]}; run coding-mcp --help for the usage`);
  if (command === "doctor") {
    // Loaded only here: a server starts faster without it.
    const { runDoctor } = await import("./doctor.js");
    process.exit(await runDoctor({ ...(values.config ? { configPath: values.config } : {}), ...(values.task ? { task: true } : {}) }));
  }
  if (values.task) fail("--task applies to coding-mcp doctor only");
  if (values.transport !== "stdio" && values.transport !== "http") {
    fail(`--transport ${values.transport} is not known; use stdio (the default) or http`);
  }
  if (values.transport === "stdio" && (values.host !== undefined || values.port !== undefined)) {
    fail("--host and --port apply to --transport http only");
  }

  let config;
  try {
    config = loadConfig(values.config ? { configPath: values.config } : {});
  } catch (err) {
    if (err instanceof ConfigError) fail(`${err.message}\nRun coding-mcp doctor to check the whole setup.`);
    throw err;
  }
  // Checked before anything starts, so a refused start leaves nothing behind.
  const http = values.transport === "http" ? httpOptions(config, values.host, values.port) : undefined;

  const app = await createApp(config);
  app.log.info(`coding-mcp ${VERSION} starting (config from ${config.source}; workspaces under ${config.workspace.base_path})`);
  if (http) await runHttp(app, http);
  else await runStdio(app);
}

/** The HTTP settings: flags over config; a token is required off loopback and must not be trivially guessable. */
function httpOptions(config: ResolvedConfig, hostFlag: string | undefined, portFlag: string | undefined): HttpOptions {
  const host = hostFlag ?? config.http.host;
  let port = config.http.port;
  if (portFlag !== undefined) {
    port = Number(portFlag);
    if (!/^\d+$/.test(portFlag) || port > 65535) fail(`--port ${portFlag}: expected a port number from 0 to 65535`);
  }
  const token = config.secrets.httpToken;
  if (token !== undefined && token.length < MIN_TOKEN_LENGTH) {
    fail(`the HTTP token (CODING_MCP_TOKEN or http.token) is too short: use at least ${MIN_TOKEN_LENGTH} random characters, e.g. from openssl rand -hex 32`);
  }
  const oauth = config.http.oauth;
  const authenticator = createAuthenticator(config, oauth ? lazyJwtCheck(oauth) : undefined);
  if (!authenticator.required && !isLoopbackHost(host)) {
    fail(
      `refusing to serve on ${host} without a token: set CODING_MCP_TOKEN (e.g. to the output of openssl rand -hex 32), ` +
        "or configure http.clients or http.oauth, or bind a loopback address such as 127.0.0.1",
    );
  }
  return {
    host,
    port,
    authenticator,
    allowedHosts: config.http.allowed_hosts,
    allowedOrigins: config.http.allowed_origins,
    maxBodyBytes: config.http.max_body_bytes,
    maxSessions: config.http.max_sessions,
    sessionIdleMs: config.http.session_idle_min * 60_000,
  };
}

/** The JWT check, with jose loaded on the first token (a server without OAuth never loads it). */
function lazyJwtCheck(oauth: NonNullable<ResolvedConfig["http"]["oauth"]>): (token: string) => Promise<JwtCheck> {
  let check: Promise<(token: string) => Promise<JwtCheck>> | undefined;
  return async (token) => {
    check ??= import("./callers/oauth.js").then(({ createJwtChecker }) =>
      createJwtChecker({ issuer: oauth.issuer, audience: oauth.audience, jwksUrl: oauth.jwks_url, algorithms: oauth.algorithms }),
    );
    return (await check)(token);
  };
}

/** One client on stdin/stdout; shuts down when it goes away or on a signal. */
async function runStdio(app: App): Promise<void> {
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
  warmUpBackend(app);
  await serveStdio(createServer(app));
  await shutdown("client disconnected");
  process.exit(0);
}

/**
 * Many clients over HTTP until a signal: then stop taking requests, let running calls answer within
 * http.shutdown_timeout_sec (a second signal cuts that short), flush the registry, stop a managed OpenCode.
 */
async function runHttp(app: App, options: HttpOptions): Promise<void> {
  // CODING_MCP_TOKEN is redacted already; a token from the config file is not yet.
  if (app.config.secrets.httpToken) app.redactor.addSecret(app.config.secrets.httpToken);
  if (!options.authenticator.required) app.log.warn("no CODING_MCP_TOKEN: every local user and process can use this server; set one to require it");
  const named = Object.keys(app.config.http.clients);
  if (named.length || app.config.http.oauth) {
    app.log.info(`callers: ${named.length ? `clients ${named.join(", ")}` : "no named clients"}${app.config.http.oauth ? `; OAuth tokens from ${app.config.http.oauth.issuer}` : ""}`);
  }
  let service: HttpService;
  try {
    // Loaded only for HTTP: a stdio server (the common case) starts faster without it.
    const { serveHttp } = await import("./transports/http.js");
    service = await serveHttp(() => createServer(app), app.log, options);
  } catch (err) {
    app.log.error(`cannot listen on ${options.host}:${options.port}: ${(err as Error).message}`);
    await app.stop().catch(() => undefined);
    process.exit(1);
  }
  const hurry = new AbortController();
  let stopping = false;
  const shutdown = async (why: string) => {
    if (stopping) {
      app.log.warn(`${why} again: not waiting for running calls any longer`);
      hurry.abort();
      return;
    }
    stopping = true;
    app.log.info(`shutting down (${why})`);
    await service.close(app.config.http.shutdown_timeout_sec * 1000, hurry.signal).catch((err) => app.log.error(`shutdown: ${(err as Error).message}`));
    await app.stop().catch((err) => app.log.error(`shutdown: ${(err as Error).message}`));
    app.log.info("stopped");
    process.exit(0);
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, () => void shutdown(signal));
  warmUpBackend(app);
}

/**
 * Start OpenCode (or check the configured one) shortly after start-up, so the first task need not
 * wait for it. Shortly: the handshake and tools/list a client sends first are answered before the
 * HTTP client's code loads. A tool call before then starts it on demand (start() is shared).
 */
function warmUpBackend(app: App): void {
  setTimeout(() => {
    const backend = app.backends.get();
    backend.start().catch((err) => app.log.error(`backend ${backend.name} is not available yet: ${(err as Error).message} (coding-mcp doctor checks the whole setup)`));
  }, 300).unref();
}

main().catch((err) => {
  process.stderr.write(`coding-mcp: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
