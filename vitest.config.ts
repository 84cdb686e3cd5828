import { defineConfig } from "vitest/config";

/**
 * Two halves, both run by `npm test`:
 * - unit: what the code does, on a scripted backend and real git, without a build or an agent (seconds);
 * - e2e: the built coding-mcp driven by real MCP clients, with real agents, git servers and a scripted
 *   fake model. They start real processes, so they get generous timeouts; every wait inside has its own bound.
 */
export default defineConfig({
  test: {
    pool: "forks",
    globalSetup: ["test/global-setup.ts"],
    maxWorkers: 2,
    reporters: ["default"],
    projects: [
      {
        extends: true,
        test: { name: "unit", include: ["test/unit/**/*.test.ts"], testTimeout: 30_000, hookTimeout: 30_000 },
      },
      {
        extends: true,
        test: { name: "e2e", include: ["test/**/*.test.ts"], exclude: ["test/unit/**"], testTimeout: 120_000, hookTimeout: 120_000 },
      },
    ],
  },
});
