// Experiment: OpenCode wall + CPU per direct prompt with snapshot on vs off.
import fs from "node:fs"; import os from "node:os"; import path from "node:path"; import { execFileSync } from "node:child_process";
import { Agent, request } from "undici";
import { hermeticOpencodeEnv, opencodeConfigFor, startFakeModel } from "../test/support/fake-model.mjs";
const { ManagedOpencode } = await import("../.bench/lib/opencode/managed.js");
const { buildTaskPrompt } = await import("../.bench/lib/task-prompt.js");
const fake = await startFakeModel();
const cpu = (pid) => { let t = 0; const walk = (p) => { try { const s = fs.readFileSync(`/proc/${p}/stat`, "utf8").split(") ")[1].split(" "); t += (+s[11] + +s[12]); } catch {} ; try { for (const c of fs.readFileSync(`/proc/${p}/task/${p}/children`, "utf8").trim().split(/\s+/).filter(Boolean)) walk(c); } catch {} }; walk(pid); return t * 10; };
for (const snapshot of (process.env.MODES ?? "true,false").split(",").map((s) => s === "true")) {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), "ocexp-"));
  const cfg = { ...opencodeConfigFor(fake.baseURL), snapshot };
  const oc = new ManagedOpencode({ log: { debug() {}, info() {}, warn: console.error, error: console.error }, cwd: home, env: { ...process.env, ...hermeticOpencodeEnv(home), OPENCODE_CONFIG_CONTENT: JSON.stringify(cfg) }, startupTimeoutMs: 60000 });
  const { url, password, pid } = await oc.ensure();
  const auth = "Basic " + Buffer.from(`opencode:${password}`).toString("base64");
  const agent = new Agent();
  const call = async (m, r, b) => { const res = await request(url + r, { method: m, headers: { authorization: auth, "content-type": "application/json" }, body: b && JSON.stringify(b), dispatcher: agent }); return JSON.parse(await res.body.text()); };
  const dir = path.join(home, "repo"); fs.mkdirSync(dir);
  execFileSync("git", ["init", "-q", "-b", "main"], { cwd: dir }); execFileSync("git", ["-c", "user.name=a", "-c", "user.email=a@b", "commit", "-q", "--allow-empty", "-m", "i"], { cwd: dir });
  const q = `?directory=${encodeURIComponent(dir)}`;
  const s = await call("POST", `/session${q}`, { title: "x" });
  const walls = [], cpus = [];
  for (let i = 0; i < 8; i++) {
    const c0 = cpu(pid), t0 = performance.now();
    await call("POST", `/session/${s.id}/message${q}`, { parts: [{ type: "text", text: buildTaskPrompt({ task: `[[fake:bench]] Write bench.txt (task ${i})` }) }] });
    walls.push(performance.now() - t0); await new Promise((r) => setTimeout(r, 500)); cpus.push(cpu(pid) - c0);
  }
  const med = (a) => a.slice(2).sort((x, y) => x - y)[Math.floor((a.length - 2) / 2)];
  console.log(`snapshot=${snapshot}: wall median ${med(walls).toFixed(0)} ms, cpu median ${med(cpus)} ms; walls ${walls.map((w) => w.toFixed(0)).join(",")}`);
  await agent.close(); await oc.stop();
}
await fake.close?.();
process.exit(0);
