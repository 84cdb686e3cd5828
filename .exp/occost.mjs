import fs from "node:fs"; import os from "node:os"; import path from "node:path"; import { execFileSync } from "node:child_process";
import { Agent, request } from "undici";
import { opencodeConfigFor, startFakeModel } from "../test/support/fake-model.mjs"; import { hermeticOpencodeEnv } from "../test/support/opencode-home.mjs";
const { ManagedOpencode } = await import("../.bench/lib/opencode/managed.js");
const { buildTaskPrompt } = await import("../.bench/lib/task-prompt.js");
const fake = await startFakeModel();
const cpu = (pid) => { let t = 0; const walk = (p) => { try { const s = fs.readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1].split(" "); t += (+s[11] + +s[12] + +s[13] + +s[14]); } catch {} ; try { for (const c of fs.readFileSync(`/proc/${p}/task/${p}/children`, "utf8").trim().split(/\s+/).filter(Boolean)) walk(c); } catch {} }; walk(pid); return t * 10; };
const snapshot = process.env.SNAP !== "false";
const home = fs.mkdtempSync(path.join(os.tmpdir(), "ocexp-"));
const cfg = { ...opencodeConfigFor(fake.baseURL), snapshot };
let t0 = performance.now();
const oc = new ManagedOpencode({ log: { debug() {}, info() {}, warn: console.error, error: console.error }, cwd: home, env: { ...process.env, ...hermeticOpencodeEnv(home), OPENCODE_CONFIG_CONTENT: JSON.stringify(cfg) }, startupTimeoutMs: 60000 });
const { url, password, pid } = await oc.ensure();
await new Promise((r) => setTimeout(r, 300));
console.log(`snapshot=${snapshot} start: ${(performance.now() - t0).toFixed(0)} ms wall, cpu ${cpu(pid)} ms`);
const auth = "Basic " + Buffer.from(`opencode:${password}`).toString("base64");
const agent = new Agent();
const call = async (m, r, b) => { const res = await request(url + r, { method: m, headers: { authorization: auth, "content-type": "application/json" }, body: b && JSON.stringify(b), dispatcher: agent }); return JSON.parse(await res.body.text()); };
for (let d = 0; d < 3; d++) {
  const dir = path.join(home, `repo${d}`); fs.mkdirSync(dir);
  execFileSync("git", ["init", "-q", "-b", "main"], { cwd: dir }); execFileSync("git", ["-c", "user.name=a", "-c", "user.email=a@b", "commit", "-q", "--allow-empty", "-m", "i"], { cwd: dir });
  const q = `?directory=${encodeURIComponent(dir)}`;
  let c0 = cpu(pid); t0 = performance.now();
  const s = await call("POST", `/session${q}`, { title: "x" });
  console.log(`  dir ${d}: session create ${(performance.now() - t0).toFixed(0)} ms, cpu ${cpu(pid) - c0}`);
  for (let i = 0; i < 3; i++) {
    c0 = cpu(pid); t0 = performance.now();
    await call("POST", `/session/${s.id}/message${q}`, { parts: [{ type: "text", text: buildTaskPrompt({ task: `[[fake:bench]] Write bench.txt (task ${i})` }) }] });
    const w = performance.now() - t0; await new Promise((r) => setTimeout(r, 1000));
    console.log(`  dir ${d} prompt ${i}: ${w.toFixed(0)} ms, cpu ${cpu(pid) - c0} ms (incl. 1 s after)`);
  }
}
await agent.close(); await oc.stop(); process.exit(0);
