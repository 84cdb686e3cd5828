import path from "node:path";
import { ESLint } from "eslint";
import { describe, expect, it } from "vitest";

// The layering is a lint rule (eslint.config.js); these plant the imports it must refuse, so a rule
// that stops matching (a moved folder, a renamed zone) fails here instead of letting them through.
const root = path.resolve(import.meta.dirname, "../..");

async function restricted(file: string, source: string): Promise<string[]> {
  const eslint = new ESLint({ cwd: root });
  const [result] = await eslint.lintText(source, { filePath: path.join(root, file) });
  return result!.messages.filter((m) => m.ruleId === "import-x/no-restricted-paths").map((m) => m.message);
}

describe("layers", () => {
  it("a backend importing the other backend is refused, both ways", async () => {
    expect(await restricted("src/acp/mapping.ts", `import { summarizeTurn } from "../opencode/trace.js";\nexport const x = summarizeTurn;\n`)).toEqual([
      expect.stringContaining("backends never import each other"),
    ]);
    expect(await restricted("src/opencode/trace.ts", `import { AcpTurn } from "../acp/mapping.js";\nexport const x = AcpTurn;\n`)).toEqual([
      expect.stringContaining("backends never import each other"),
    ]);
  }, 60_000);

  it("a backend may use the neutral modules below both", async () => {
    expect(await restricted("src/acp/mapping.ts", `import { truncate } from "../trace-limits.js";\nimport { isInside } from "../path-inside.js";\nexport const x = [truncate, isInside];\n`)).toEqual([]);
  }, 60_000);
});
