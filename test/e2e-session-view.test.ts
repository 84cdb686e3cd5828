import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import type { CallToolResult, ClientCapabilities } from "@modelcontextprotocol/sdk/types.js";
import { build } from "esbuild";
import { chromium, type Browser, type Frame, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, ROOT, git, prepare, sleepers, structured, until, type FakeModel } from "./support/harness.js";

// The session view in a real browser: headless Chromium (Debian's package, driven by playwright-core)
// loads a test host page that embeds the view through the MCP Apps AppBridge; the view's tool calls go
// to the BUILT coding-mcp over the MCP SDK client (stdio), which runs a real OpenCode on the scripted
// fake model with coding-mcp's default policy (writing outside the workspace asks a person).
// Screenshots of the view go to docs/session-view/ (shown in the README).

const CHROMIUM = process.env.CODING_MCP_CHROMIUM ?? "/usr/bin/chromium";
const SHOTS = path.join(ROOT, "docs", "session-view");
const MARKUP_FILE = "<img src=x onerror=window.__viewPwned=2>.html";
const MARKUP_LINE = "<script>window.__viewPwned = 1</script>";

/** What the checks below read of the view's document (the tests are type-checked without the DOM's types). */
interface BrowserDocument {
  querySelectorAll(selector: string): { length: number };
  documentElement: { scrollWidth: number; clientWidth: number };
}

let prepared: Awaited<ReturnType<typeof prepare>>;
let fake: FakeModel;
let client: Client;
let browser: Browser;
let server: http.Server;
let origin: string;
/** Every tool call the view made through the host, in order. */
const viewCalls: string[] = [];
/** Requests the browser made and CSP complaints it logged: the view fetches nothing and breaks no policy. */
const requested: string[] = [];
const cspViolations: string[] = [];
const stderr: string[] = [];
const sleep = sleepers();

async function call(name: string, args: Record<string, unknown>): Promise<CallToolResult> {
  return (await client.callTool({ name, arguments: args }, undefined, { timeout: 120_000 })) as CallToolResult;
}

beforeAll(async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: install Debian's chromium (apt-get install chromium; .ci/run does) or set CODING_MCP_CHROMIUM to a Chromium binary`);
  prepared = await prepare();
  fake = prepared.fake;
  const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, "--config", prepared.configFile], env: prepared.env, stderr: "pipe" });
  transport.stderr?.on("data", (chunk: Buffer) => stderr.push(...chunk.toString("utf8").split("\n").filter(Boolean)));
  // A host that renders MCP Apps declares the extension.
  const capabilities = { extensions: { "io.modelcontextprotocol/ui": { mimeTypes: ["text/html;profile=mcp-app"] } } } as ClientCapabilities;
  client = new Client({ name: "view-host", version: "1.0.0" }, { capabilities });
  await client.connect(transport);

  const { tools } = await client.listTools();
  const resourceUri = (tools.find((t) => t.name === "code")?._meta?.ui as { resourceUri?: string } | undefined)?.resourceUri;
  expect(resourceUri).toBe("ui://coding/session");
  const resource = await client.readResource({ uri: resourceUri! });
  const view = resource.contents[0] as { text: string; mimeType: string };
  expect(view.mimeType).toBe("text/html;profile=mcp-app");

  const host = await build({ entryPoints: [path.join(ROOT, "test/support/view-host.mjs")], bundle: true, write: false, format: "esm", platform: "browser", logLevel: "warning" });
  const hostPage = `<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>test host</title></head><body style="margin:0"><script type="module">${host.outputFiles[0]!.text}</script></body></html>`;
  server = http.createServer((req, res) => {
    requested.push(req.url ?? "");
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (url.pathname === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(hostPage);
    } else if (url.pathname === "/view") {
      // The strict policy of a host's sandbox: inline script and styles only, nothing fetched.
      res.writeHead(200, {
        "content-type": "text/html; charset=utf-8",
        "content-security-policy": "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
      });
      res.end(view.text);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  // Playwright gives the browser a fresh profile of its own (--user-data-dir) and, as root, --no-sandbox.
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
  fs.mkdirSync(SHOTS, { recursive: true });
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => server?.close(resolve));
  await client?.close();
  await fake?.close();
  sleep.kill("45.");
  if (prepared) fs.rmSync(prepared.dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
});

/** A host page showing the view for one tool call (its arguments and result), as a host does. */
async function showView(args: Record<string, unknown>, result: CallToolResult, theme: "light" | "dark" = "light"): Promise<{ page: Page; view: Frame }> {
  const page = await browser.newPage({ viewport: { width: 760, height: 900 } });
  page.on("console", (m) => {
    if (/Content Security Policy/i.test(m.text())) cspViolations.push(m.text());
  });
  await page.exposeFunction("hostCallTool", async (params: { name: string; arguments?: Record<string, unknown> }) => {
    viewCalls.push(params.name);
    return call(params.name, params.arguments ?? {});
  });
  await page.goto(`${origin}/?theme=${theme}`);
  await page.waitForFunction(() => (window as unknown as { hostReady?: boolean }).hostReady === true, undefined, { timeout: 20_000 });
  await page.evaluate(([a, r]) => (window as unknown as { showToolCall: (a: unknown, r: unknown) => Promise<void> }).showToolCall(a, r), [args, result] as const);
  const view = await (await page.locator("iframe").elementHandle()).contentFrame();
  return { page, view: view! };
}

async function text(view: Frame, selector: string): Promise<string> {
  return ((await view.locator(selector).first().textContent({ timeout: 5_000 }).catch(() => "")) ?? "").trim();
}

async function waitFor<T>(what: string, check: () => Promise<T>, ms = 90_000): Promise<T> {
  const value = await until(check, ms, 100);
  if (!value) throw new Error(`the view did not show ${what} within ${ms / 1000} s:\n${stderr.slice(-20).join("\n")}`);
  return value;
}

async function shoot(page: Page, name: string): Promise<void> {
  for (const theme of ["light", "dark"] as const) {
    await page.evaluate((t) => (window as unknown as { setTheme: (t: string) => void }).setTheme(t), theme);
    await page.waitForTimeout(150);
    await page.locator("iframe").screenshot({ path: path.join(SHOTS, `${name}-${theme}.png`) });
  }
  await page.evaluate(() => (window as unknown as { setTheme: (t: string) => void }).setTheme("light"));
}

describe("the session view in a browser", () => {
  it("follows a task live, answers its permission by a click, renders the diff (markup as text) and commits", async () => {
    const opened = structured(await call("coding_open", {}));
    const outside = path.join(prepared.dir, "outside", "approved.txt");
    fs.mkdirSync(path.dirname(outside), { recursive: true });
    fake.setScenario("view-work", (ctx: { step: number; directory?: string }) => {
      const dir = ctx.directory ?? ".";
      switch (ctx.step) {
        case 0:
          return {
            tools: [
              { name: "write", args: { filePath: `${dir}/notes.md`, content: "# Notes\n\nfirst line\n" } },
              { name: "write", args: { filePath: `${dir}/logo.bin`, content: "\u0000\u0001\u0002 not text\n" } },
            ],
          };
        case 1:
          return {
            delayMs: 3000,
            tools: [
              { name: "write", args: { filePath: `${dir}/${MARKUP_FILE}`, content: `${MARKUP_LINE}\n<p>page</p>\n` } },
              { name: "write", args: { filePath: `${dir}/big.txt`, content: Array.from({ length: 300 }, (_, i) => `line ${i + 1}`).join("\n") + "\n" } },
            ],
          };
        case 2:
          return { delayMs: 3000, tools: [{ name: "write", args: { filePath: outside, content: "approved from the view\n" } }] };
        default:
          return { text: "Wrote the notes, the page and the approved file." };
      }
    });
    const args = { session_id: opened.session_id, task: "Write the notes and the page [[fake:view-work]]", background: true };
    const started = await call("code", args);
    expect(structured(started).state).toBe("running");
    const { page, view } = await showView(args, started);

    // The timeline grows while the task runs.
    const seen = new Set<number>();
    await waitFor("a timeline that grows while the task runs", async () => {
      if ((await text(view, "#state")) === "running") seen.add(await view.locator("#timeline > li").count());
      return [...seen].filter((n) => n > 0).length >= 2;
    });
    expect(Math.min(...[...seen].filter((n) => n > 0))).toBeLessThan(Math.max(...seen));
    await shoot(page, "running");

    // The agent asks to write outside its workspace: the request waits in the view, with its choices.
    const card = view.locator('.request[data-kind="permission"]');
    await waitFor("the pending permission", async () => (await card.count()) === 1);
    expect(await text(view, "#state")).toBe("waiting for you");
    expect(await card.textContent()).toContain(path.dirname(outside));
    expect(fs.existsSync(outside)).toBe(false);
    await shoot(page, "waiting");
    await card.locator('button[data-decision="allow"]').click();

    // The write ran, the task finished, and the view shows the result.
    await waitFor("the finished task", async () => (await text(view, "#state")) === "finished");
    expect(fs.readFileSync(outside, "utf8")).toBe("approved from the view\n");
    expect(await text(view, "#outcome")).toBe("Wrote the notes, the page and the approved file.");
    expect(await text(view, "#decisions")).toMatch(/external_directory .*allowed once by person/);
    expect(await view.locator("#timeline > li").count()).toBe(5);

    // The diff, file by file: a binary file named, a long one collapsed, a short one open.
    await waitFor("the diff", async () => (await view.locator("#diff details.file").count()) === 4);
    const fileDiff = (name: string) => view.locator(`#diff details.file[data-path="${name.replace(/"/g, '\\"')}"]`);
    expect(await fileDiff("logo.bin").locator(".binary").textContent()).toBe("Binary file: not shown");
    expect(await fileDiff("big.txt").evaluate((d) => (d as unknown as { open: boolean }).open)).toBe(false);
    expect(await fileDiff("big.txt").locator("summary").textContent()).toMatch(/big\.txt \+300 −0 \(301 lines, collapsed\)/);
    expect(await fileDiff("notes.md").evaluate((d) => (d as unknown as { open: boolean }).open)).toBe(true);

    // Its markup shown as text: no element made from it, nothing run.
    const markupFile = fileDiff(MARKUP_FILE);
    expect(await markupFile.locator("summary .path").textContent()).toBe(MARKUP_FILE);
    expect(await markupFile.locator(".line.add").allTextContents()).toEqual([`+${MARKUP_LINE}\n`, "+<p>page</p>\n"]);
    expect(await view.locator("#files").textContent()).toContain(MARKUP_FILE);
    expect(await view.locator("#timeline").textContent()).toContain(MARKUP_FILE.slice(0, -5));
    const planted = await view.evaluate(() => {
      const page = globalThis as unknown as { __viewPwned?: number; document: BrowserDocument };
      return {
        pwned: page.__viewPwned,
        images: page.document.querySelectorAll("img").length,
        scripts: page.document.querySelectorAll("script").length,
        paragraphs: page.document.querySelectorAll("#diff p, #files p").length,
      };
    });
    expect(planted).toEqual({ pwned: undefined, images: 0, scripts: 1, paragraphs: 0 });
    await shoot(page, "finished");

    // Narrow: nothing wider than a phone's width.
    await page.setViewportSize({ width: 360, height: 800 });
    await page.waitForTimeout(200);
    const overflow = await view.evaluate(() => {
      const { documentElement } = (globalThis as unknown as { document: BrowserDocument }).document;
      return documentElement.scrollWidth - documentElement.clientWidth;
    });
    expect(overflow).toBeLessThanOrEqual(0);
    await page.setViewportSize({ width: 760, height: 900 });

    // Commit from the view: the commit is in git, with the message typed.
    await view.locator("#commit-message").fill("Notes and the page, committed from the view");
    await view.locator("#commit").click();
    await waitFor("the commit's answer", async () => (await text(view, "#commit-result")).startsWith("Committed"));
    const head = git(opened.workspace_path, "log", "-1", "--format=%H %s").trim();
    expect(head).toMatch(/^[0-9a-f]{40} Notes and the page, committed from the view$/);
    expect(await text(view, "#commit-result")).toContain(head.slice(0, 12));
    expect(git(opened.workspace_path, "show", "--name-only", "--format=", "HEAD").trim().split("\n").sort()).toEqual([MARKUP_FILE, "big.txt", "logo.bin", "notes.md"]);

    // It only ever called coding-mcp's own tools, fetched nothing, and broke no content policy.
    expect(new Set(viewCalls)).toEqual(new Set(["coding_status", "coding_respond", "coding_diff", "coding_commit"]));
    expect(requested.filter((r) => r !== "/?theme=light" && r !== "/view")).toEqual([]);
    expect(cspViolations).toEqual([]);
    await page.close();
  }, 240_000);

  it("answers the agent's question from the view", async () => {
    const opened = structured(await call("coding_open", {}));
    const args = { session_id: opened.session_id, task: "Ask [[fake:question]]", background: true };
    const { page, view } = await showView(args, await call("code", args));
    const card = view.locator('.request[data-kind="question"]');
    await waitFor("the question", async () => (await card.count()) === 1);
    expect(await card.locator("legend").textContent()).toBe("Color: Which color should the button be?");
    // Answering before choosing says what to do, and sends nothing.
    await card.locator('button[data-decision="answer"]').click();
    expect(await text(view, "#error")).toBe("Choose or type an answer to question 1 first.");
    expect(await card.count()).toBe(1);
    await card.getByLabel("Red").check();
    await card.locator('button[data-decision="answer"]').click();
    await waitFor("the finished task", async () => (await text(view, "#state")) === "finished");
    expect(await text(view, "#outcome")).toBe("The person chose: Red");
    expect(await text(view, "#decisions")).toMatch(/question Which color should the button be\?: Red by person/);
    await page.close();
  }, 180_000);

  it("cancels a slow task from the view", async () => {
    const opened = structured(await call("coding_open", {}));
    fake.setScenario("view-slow", [{ tools: [{ name: "bash", args: { command: sleep.command("45."), description: "Work a long while" } }] }, { text: "Slept." }]);
    const args = { session_id: opened.session_id, task: "Work long [[fake:view-slow]]", background: true };
    const started = await call("code", args);
    const { page, view } = await showView(args, started, "dark");
    await waitFor("the slow command running", async () => sleep.running("45.") && (await view.locator('#timeline > li[data-status="running"]').count()) === 1);
    expect(await view.locator("#cancel").isVisible()).toBe(true);
    await view.locator("#cancel").click();
    await waitFor("the cancelled task", async () => (await text(view, "#state")) === "failed", 30_000);
    expect(await text(view, "#outcome")).toMatch(/^Failed: .*cancel/i);
    expect(await view.locator("#cancel").isVisible()).toBe(false);
    expect(await until(() => !sleep.running("45."), 10_000)).toBe(true);
    const [status] = structured(await call("coding_status", { session_id: opened.session_id })).sessions;
    expect(status.task.result.failure).toBe("cancelled");
    await page.close();
  }, 180_000);
});
