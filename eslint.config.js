// @ts-check
import js from "@eslint/js";
import { createTypeScriptImportResolver } from "eslint-import-resolver-typescript";
import importX from "eslint-plugin-import-x";
import tseslint from "typescript-eslint";

/**
 * Type-aware recommended rules, plus the import rules that keep the layering true:
 * tools -> sessions/tasks -> backend interface <- backend implementations; workspace and storage below.
 * A layer never imports one above it, and there are no import cycles.
 */

/** Upward or sideways imports that would break the layering, by the folder that must not make them. */
const layers = [
  {
    target: "./src/tools",
    from: ["./src/opencode", "./src/acp", "./src/workspace", "./src/store.ts", "./src/records.ts", "./src/tasks.ts", "./src/app.ts", "./src/cli.ts", "./src/transports", "./src/config.ts"],
    message: "tools import only their definitions, the model and the session layer",
  },
  {
    target: ["./src/sessions.ts", "./src/session-change.ts", "./src/tasks.ts", "./src/backends.ts", "./src/permissions.ts", "./src/records.ts"],
    from: ["./src/opencode", "./src/acp", "./src/transports", "./src/tools", "./src/app.ts", "./src/cli.ts", "./src/server.ts"],
    message: "sessions and tasks import no backend implementation, transport or tool",
  },
  {
    target: "./src/callers",
    from: ["./src/sessions.ts", "./src/tasks.ts", "./src/tools", "./src/transports", "./src/opencode", "./src/acp", "./src/app.ts", "./src/server.ts", "./src/store.ts", "./src/records.ts", "./src/resources"],
    message: "who is calling is decided below the layers that use it: callers import only config, the workspace's credential type and the SDK's auth types",
  },
  {
    target: "./src/workspace",
    from: ["./src/store.ts", "./src/records.ts", "./src/sessions.ts", "./src/session-change.ts", "./src/tasks.ts", "./src/backends.ts", "./src/opencode", "./src/acp", "./src/tools", "./src/transports", "./src/app.ts", "./src/server.ts"],
    message: "the workspace layer knows git and paths, not records, sessions or backends",
  },
  {
    target: ["./src/opencode", "./src/acp"],
    from: ["./src/sessions.ts", "./src/tasks.ts", "./src/tools", "./src/transports", "./src/app.ts", "./src/server.ts", "./src/store.ts", "./src/records.ts", "./src/workspace"],
    message: "a backend implements src/backend.ts and knows nothing of the layers that use it",
  },
  {
    target: "./src/opencode",
    from: ["./src/acp"],
    message: "backends never import each other: what both need lives below them (e.g. src/trace-limits.ts, src/path-inside.ts)",
  },
  {
    target: "./src/acp",
    from: ["./src/opencode"],
    message: "backends never import each other: what both need lives below them (e.g. src/trace-limits.ts, src/path-inside.ts)",
  },
  {
    target: ["./src/model.ts", "./src/store.ts", "./src/errors.ts", "./src/log.ts", "./src/redact.ts", "./src/net.ts", "./src/trace-limits.ts", "./src/path-inside.ts"],
    from: ["./src/sessions.ts", "./src/tasks.ts", "./src/tools", "./src/opencode", "./src/acp", "./src/workspace", "./src/app.ts", "./src/server.ts", "./src/transports", "./src/backends.ts", "./src/records.ts"],
    message: "the model, storage and the small shared modules import no layer above them",
  },
  {
    target: "./src/view",
    from: ["./src/sessions.ts", "./src/tasks.ts", "./src/opencode", "./src/acp", "./src/workspace", "./src/store.ts", "./src/records.ts", "./src/transports", "./src/app.ts", "./src/cli.ts", "./src/config.ts", "./src/tools"],
    message: "the session view steers sessions only through the tools the server registered",
  },
  {
    target: "./src/view/app",
    from: "./src",
    except: ["./view/app", "./model.ts"],
    message: "the view's browser code imports only itself and the model's types",
  },
];

export default tseslint.config(
  { ignores: ["dist/", "node_modules/", "coverage/", ".bench/"] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: { allowDefaultProject: ["vitest.config.ts"] }, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { "import-x": importX },
    // The TypeScript resolver maps "./x.js" imports to ./x.ts, so the rules below see every edge.
    settings: { "import-x/resolver-next": [createTypeScriptImportResolver({ project: "./tsconfig.json" })] },
    rules: {
      "import-x/no-cycle": ["error", { ignoreExternal: true }],
      "import-x/no-restricted-paths": ["error", { zones: layers }],
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
      "@typescript-eslint/consistent-type-imports": ["error", { fixStyle: "inline-type-imports" }],
      // Off: methods that implement a Promise-returning interface are async even when they have nothing to await.
      "@typescript-eslint/require-await": "off",
    },
  },
  {
    // Plain JavaScript (scripts, the fake model, this file): no type information.
    files: ["**/*.js", "**/*.mjs"],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: { ...tseslint.configs.disableTypeChecked.languageOptions, globals: { process: "readonly", console: "readonly", URL: "readonly", Buffer: "readonly", setTimeout: "readonly", clearTimeout: "readonly", setInterval: "readonly", clearInterval: "readonly", AbortController: "readonly", AbortSignal: "readonly", fetch: "readonly", TextDecoder: "readonly" } },
  },
  {
    // Tests assert on loosely typed JSON answers; the value of these rules is in the product code.
    files: ["test/**/*.ts"],
    rules: {
      "@typescript-eslint/no-unsafe-assignment": "off",
      "@typescript-eslint/no-unsafe-member-access": "off",
      "@typescript-eslint/no-unsafe-argument": "off",
      "@typescript-eslint/no-unsafe-call": "off",
      "@typescript-eslint/no-unsafe-return": "off",
      "@typescript-eslint/no-non-null-assertion": "off",
    },
  },
);
