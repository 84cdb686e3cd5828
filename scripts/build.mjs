// Builds dist/: the CLI and everything it imports bundled into one ES module, so a cold start reads
// one file instead of a few hundred (module loading was most of coding-mcp's start-up). What loads
// late stays late: the HTTP transport is a chunk of its own, and the packages imported only on first
// use (undici, the OpenTelemetry SDK) stay packages, loaded from node_modules when needed.
// OpenTelemetry's API stays a package as well (see below), and so does opencode-ai: its binary is
// found next to it at run time.
//
// `transpile(outdir)` turns src/ into plain modules, one per file, for scripts that call the
// library directly (the benchmark).
import { chmod, readdir, rm } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export async function bundle() {
  const dist = path.join(root, "dist");
  await rm(dist, { recursive: true, force: true });
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
    chunkNames: "chunks/[name]-[hash]",
    logLevel: "warning",
  });
  await chmod(path.join(dist, "cli.js"), 0o755);
}

/** src/**\/*.ts as ES modules under `outdir`, imports left as they are (packages from node_modules). */
export async function transpile(outdir) {
  const files = (await readdir(path.join(root, "src"), { recursive: true })).filter((f) => f.endsWith(".ts")).map((f) => path.join(root, "src", f));
  await rm(outdir, { recursive: true, force: true });
  await build({ entryPoints: files, outdir, outbase: path.join(root, "src"), format: "esm", platform: "node", target: "node20.18", logLevel: "warning" });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await bundle();
