import { defineConfig } from "vitest/config";

// End-to-end tests start real processes (coding-mcp, opencode serve, git), so they get generous
// timeouts; every wait inside them has its own bound.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: "forks",
    maxWorkers: 2,
    reporters: ["default"],
  },
});
