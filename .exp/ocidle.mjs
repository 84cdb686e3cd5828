import fs from "node:fs"; import os from "node:os"; import path from "node:path"; import { execFileSync } from "node:child_process";
import { Agent, request } from "undici";
import { opencodeConfigFor, startFakeModel } from "../test/support/fake-model.mjs"; import { hermeticOpencodeEnv } from "../test/support/opencode-home.mjs";
const { ManagedOpencode } = await import("../.bench/lib/opencode/managed.js");
const fake = await startFakeModel();
const cpu = (pid) => { const s = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" "); return (+s[11] + +s[12]) * 10; };
const home = process.env.HOME_DIR ?? fs.mkdtempSync(path.join(os.tmpdir(), "ocexp-")); fs.mkdirSync(home, { recursive: true });
if (process.env.CONFIG_FROM) fs.cpSync(process.env.CONFIG_FROM, path.join(home, "config"), { recursive: true });
const oc = new ManagedOpencode({ log: { debug() {}, info() {}, warn: console.error, error: console.error }, cwd: home, env: { ...process.env, ...hermeticOpencodeEnv(home), OPENCODE_CONFIG_CONTENT: JSON.stringify(opencodeConfigFor(fake.baseURL)) }, startupTimeoutMs: 60000 });
const { url, password, pid } = await oc.ensure();
for (let i = 0; i < 2; i++) { const c0 = cpu(pid); await new Promise((r) => setTimeout(r, 2000)); console.log(`idle 2 s: cpu ${cpu(pid) - c0} ms; threads ${fs.readdirSync(`/proc/${pid}/task`).length}`); }
const auth = "Basic " + Buffer.from(`opencode:${password}`).toString("base64");
const agent = new Agent();
const dir = fs.mkdtempSync(path.join(home, `repo`));
execFileSync("git", ["init", "-q", "-b", "main"], { cwd: dir });
const res = await request(url + `/session?directory=${encodeURIComponent(dir)}`, { method: "POST", headers: { authorization: auth, "content-type": "application/json" }, body: "{}", dispatcher: agent }); await res.body.text();
for (let i = 0; i < Number(process.env.IDLE_ROUNDS ?? 3); i++) { const c0 = cpu(pid); await new Promise((r) => setTimeout(r, 2000)); console.log(`after a session in a dir, idle 2 s: cpu ${cpu(pid) - c0} ms`); }




const { execFileSync: ex } = await import("node:child_process"); 
await agent.close(); await oc.stop(); process.exit(0);
