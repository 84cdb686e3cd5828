// Does an open /event subscriber make OpenCode's prompt slower / costlier? Interleaved A/B on one session each.
import fs from "node:fs"; import os from "node:os"; import path from "node:path"; import { execFileSync } from "node:child_process";
import { Agent, request } from "undici";
import { opencodeConfigFor, startFakeModel } from "../test/support/fake-model.mjs"; import { hermeticOpencodeEnv } from "../test/support/opencode-home.mjs";
const { ManagedOpencode } = await import("../.bench/lib/opencode/managed.js");
const { buildTaskPrompt } = await import("../.bench/lib/task-prompt.js");
const fake = await startFakeModel();
fake.setScenario("bench", (ctx) => ctx.step === 0 ? { tools: [{ name: "write", args: { filePath: path.join(ctx.directory, "bench.txt"), content: `${ctx.task.split("\n")[0].trim()}\n` } }] } : { text: "Done." });
const cpu = (pid) => { const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" "); return (+s[11] + +s[12] + +s[13] + +s[14]) * 10; };
const home = fs.mkdtempSync(path.join(os.tmpdir(), "ocexp-"));
const oc = new ManagedOpencode({ log: { debug() {}, info() {}, warn: console.error, error: console.error }, cwd: home, env: { ...process.env, ...hermeticOpencodeEnv(home), OPENCODE_CONFIG_CONTENT: JSON.stringify(opencodeConfigFor(fake.baseURL)) }, startupTimeoutMs: 60000 });
const { url, password, pid } = await oc.ensure();
const auth = "Basic " + Buffer.from(`opencode:${password}`).toString("base64");
const agent = new Agent({ connections: 16 });
const call = async (m, r, b) => { const res = await request(url + r, { method: m, headers: { authorization: auth, "content-type": "application/json" }, body: b && JSON.stringify(b), dispatcher: agent }); return JSON.parse(await res.body.text()); };
const mk = async (name) => { const dir = path.join(home, name); fs.mkdirSync(dir); execFileSync("git", ["init", "-q", "-b", "main"], { cwd: dir }); execFileSync("git", ["-c", "user.name=a", "-c", "user.email=a@b", "commit", "-q", "--allow-empty", "-m", "i"], { cwd: dir }); const q = `?directory=${encodeURIComponent(dir)}`; return { dir, q, id: (await call("POST", `/session${q}`, { title: "x" })).id }; };
const A = await mk("a"), B = await mk("b");
const res = { plain: [], stream: [] }, cpus = { plain: [], stream: [] };
let n = 0; const readCpu = [];
async function one(s, withStream) {
  let events = 0, ac;
  if (withStream) {
    ac = new AbortController();
    const r = await request(url + (process.env.GLOBAL ? "/global/event" : `/event${s.q}`), { headers: { authorization: auth, accept: "text/event-stream" }, dispatcher: agent, signal: ac.signal });
    r.body.on("data", (c) => { events += String(c).split("\n\n").length - 1; }); r.body.on("error", () => {});
    await new Promise((r) => setTimeout(r, 50));
  }
  if (withStream && process.env.READ) { const c = cpu(pid); await call("GET", `/session/${s.id}/message${s.q}&limit=1`); readCpu.push(cpu(pid) - c); }
  const c0 = cpu(pid), t0 = performance.now();
  await call("POST", `/session/${s.id}/message${s.q}`, { parts: [{ type: "text", text: buildTaskPrompt({ task: `[[fake:bench]] write (task ${++n})` }) }] });
  const w = performance.now() - t0; await new Promise((r) => setTimeout(r, 500));
  ac?.abort();
  return { w, c: cpu(pid) - c0, events };
}
for (let i = 0; i < 14; i++) {
  const order = i % 2 ? [[B, false], [A, true]] : [[A, true], [B, false]];
  for (const [s, st] of order) { const r = await one(s, st); if (i >= 2) { res[st ? "stream" : "plain"].push(r.w); cpus[st ? "stream" : "plain"].push(r.c); } if (st && i === 3) console.log("events per task", r.events); }
}
const med = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
console.log(`plain: wall ${med(res.plain).toFixed(0)} ms, cpu ${med(cpus.plain)} ms; with /event: wall ${med(res.stream).toFixed(0)} ms, cpu ${med(cpus.stream)} ms`);
if (readCpu.length) console.log('limit=1 read cpu', readCpu.join(','));
await agent.close(); await oc.stop(); process.exit(0);
