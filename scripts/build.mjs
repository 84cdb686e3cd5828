// Builds dist/: the CLI and everything it imports bundled into one ES module, so a cold start reads
// one file instead of a few hundred (module loading was most of coding-mcp's start-up). What loads
// late stays late: the HTTP transport is a chunk of its own, and the packages imported only on first
// use (undici, the OpenTelemetry SDK) stay packages, loaded from node_modules when needed.
// OpenTelemetry's API stays a package as well (see below), and so does opencode-ai: its binary is
// found next to it at run time.
//
// The session view (src/view/app/, shown by hosts that render MCP Apps) is bundled first into one
// self-contained HTML string (script and styles inline, nothing fetched) and handed to the server's
// bundle as the module "coding-mcp:session-view-html", a chunk of its own read on first use.
//
// `transpile(outdir)` turns src/ into plain modules, one per file, for scripts that call the
// library directly (the benchmark).
import { chmod, readFile, readdir, rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** The view's HTML: index.html with styles.css and the bundled, minified main.ts inlined. */
export async function sessionViewHtml() {
  const app = path.join(root, "src/view/app");
  const script = await build({
    entryPoints: [path.join(app, "main.ts")],
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    target: "es2022",
    minify: true,
    legalComments: "none",
    logLevel: "warning",
    plugins: [
      {
        // zod's translations of its messages for ~50 languages (300 kB, most of the bundle) are reached
        // only through z.locales, which the view never reads; its English messages stay.
        name: "zod-without-locales",
        setup(b) {
          b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) => (/[\\/]zod[\\/]/.test(args.importer) ? { path: "zod-locales", namespace: "empty" } : undefined));
          b.onLoad({ filter: /.*/, namespace: "empty" }, () => ({ contents: "export {};", loader: "js" }));
        },
      },
    ],
  });
  const js = script.outputFiles[0].text;
  // Inline, a script may not close its own element.
  if (/<\/script/i.test(js)) throw new Error("the session view's script contains </script: it cannot be inlined");
  const css = (await build({ entryPoints: [path.join(app, "styles.css")], bundle: true, write: false, minify: true, logLevel: "warning" })).outputFiles[0].text;
  const template = await readFile(path.join(app, "index.html"), "utf8");
  return template.replace("/*styles*/", () => css.trim()).replace("/*script*/", () => js.trim());
}

export async function bundle() {
  const dist = path.join(root, "dist");
  await rm(dist, { recursive: true, force: true });
  const viewHtml = await sessionViewHtml();
  await build({
    entryPoints: { cli: path.join(root, "src/cli.ts") },
    outdir: dist,
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20.18",
    sourcemap: true,
    external: [
      "opencode-ai",
      "opencode-*",
      "undici",
      // One @opentelemetry/api for coding-mcp and the SDK: a bundled copy would keep its own proxy
      // tracer, which the provider the SDK registers never reaches (no span would be exported).
      "@opentelemetry/*",
    ],
    // Bundled CommonJS dependencies call require(); an ES module has none of its own.
    banner: { js: "import { createRequire as __codingMcpRequire } from 'node:module'; const require = __codingMcpRequire(import.meta.url);" },
    plugins: [
      {
        name: "session-view-html",
        setup(b) {
          b.onResolve({ filter: /^coding-mcp:session-view-html$/ }, (args) => ({ path: args.path, namespace: "session-view" }));
          b.onLoad({ filter: /.*/, namespace: "session-view" }, () => ({ contents: viewHtml, loader: "text" }));
        },
      },
    ],
    chunkNames: "chunks/[name]-[hash]",
    logLevel: "warning",
  });
  await chmod(path.join(dist, "cli.js"), 0o755);
}

/** src/**\/*.ts (and the plain .js modules beside them) as ES modules under `outdir`, imports left as they are (packages from node_modules). */
export async function transpile(outdir) {
  const files = (await readdir(path.join(root, "src"), { recursive: true })).filter((f) => /\.(ts|js)$/.test(f) && !f.endsWith(".d.ts")).map((f) => path.join(root, "src", f));
  await rm(outdir, { recursive: true, force: true });
  await build({ entryPoints: files, outdir, outbase: path.join(root, "src"), format: "esm", platform: "node", target: "node20.18", logLevel: "warning" });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await bundle();
