import fs from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, structured, textOf, type Harness } from "./support/harness.js";

// Models against the real OpenCode (contract, "Models"): a model is checked against what OpenCode
// offers before anything is created or prompted, a bad one never poisons the session, and every task
// names its model explicitly (OpenCode would otherwise reuse the last prompt's).

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});

afterAll(async () => {
  await h?.close();
});

/** The model each chat request named, in order (title generation included). */
const modelsAsked = () => h.fake.requests.filter((r) => r.tools?.length).map((r) => r.model as string);

describe("models", () => {
  it("refuses an unknown model at coding_open, naming the available ones, and creates nothing", async () => {
    const answer = await h.call("coding_open", { model: "no-such-provider/no-such-model" });
    expect(answer.isError).toBe(true);
    expect(textOf(answer)).toContain('model "no-such-provider/no-such-model" is not offered by backend opencode');
    expect(textOf(answer)).toContain("fake/fake-coder");
    expect(textOf(answer)).toContain("fake/fake-alt");
    const left = fs.existsSync(h.basePath) ? fs.readdirSync(h.basePath).filter((n) => n.startsWith("ws_")) : [];
    expect(left).toEqual([]);
  });

  it("refuses an unknown model in code without prompting, and the session goes on with the default", async () => {
    const opened = structured(await h.call("coding_open", {}));
    const before = h.fake.requests.length;
    const bad = await h.call("code", { session_id: opened.session_id, task: "Create bad.md", model: "no-such-provider/no-such-model" });
    expect(bad.isError).toBe(true);
    expect(textOf(bad)).toContain("fake/fake-coder");
    expect(h.fake.requests.length).toBe(before);

    const good = structured(await h.call("code", { session_id: opened.session_id, task: "Create good.md" }));
    expect(good.success).toBe(true);
    expect(fs.existsSync(`${opened.workspace_path}/good.md`)).toBe(true);
    structured(await h.call("coding_close", { session_id: opened.session_id }));
  });

  it("sends the default model explicitly after a task that named another one", async () => {
    const opened = structured(await h.call("coding_open", {}));
    const start = modelsAsked().length;
    const alt = structured(await h.call("code", { session_id: opened.session_id, task: "Create alt.md", model: "fake/fake-alt" }));
    expect(alt.success).toBe(true);
    expect(alt.trace.model).toBe("fake-alt");
    const afterAlt = modelsAsked().length;
    expect(new Set(modelsAsked().slice(start, afterAlt))).toEqual(new Set(["fake-alt"]));

    // No model named: OpenCode alone would reuse fake-alt; coding-mcp names the default.
    const plain = structured(await h.call("code", { session_id: opened.session_id, task: "Create plain.md" }));
    expect(plain.success).toBe(true);
    expect(plain.trace.model).toBe("fake-coder");
    expect(new Set(modelsAsked().slice(afterAlt))).toEqual(new Set(["fake-coder"]));
    structured(await h.call("coding_close", { session_id: opened.session_id }));
  });

  it("keeps a session's coding_open model for its tasks", async () => {
    const opened = structured(await h.call("coding_open", { model: "fake/fake-alt" }));
    const result = structured(await h.call("code", { session_id: opened.session_id, task: "Create session.md" }));
    expect(result.trace.model).toBe("fake-alt");
    structured(await h.call("coding_close", { session_id: opened.session_id }));
  });
});
