// Compare two V8 heap snapshots: live bytes and counts by (type, constructor name).
import fs from "node:fs";
function load(file) {
  const snap = JSON.parse(fs.readFileSync(file, "utf8"));
  const f = snap.snapshot.meta.node_fields, types = snap.snapshot.meta.node_types[0];
  const [ti, ni, si] = ["type", "name", "self_size"].map((k) => f.indexOf(k));
  const by = new Map(); let total = 0;
  for (let i = 0; i < snap.nodes.length; i += f.length) {
    const type = types[snap.nodes[i + ti]];
    let name = snap.strings[snap.nodes[i + ni]];
    if (type === "string" || type === "concatenated string" || type === "sliced string") name = "(string)";
    if (type === "code") name = "(code)";
    if (type === "array") name = `(array) ${name}`.slice(0, 60);
    const key = `${type}:${name.slice(0, 80)}`;
    const e = by.get(key) ?? { n: 0, size: 0 }; e.n++; e.size += snap.nodes[i + si]; by.set(key, e); total += snap.nodes[i + si];
  }
  return { by, total };
}
const [a, b] = process.argv.slice(2).map(load);
console.log(`total live: ${(a.total / 1e6).toFixed(2)} MB -> ${(b.total / 1e6).toFixed(2)} MB`);
const rows = [...new Set([...a.by.keys(), ...b.by.keys()])].map((k) => ({ k, dn: (b.by.get(k)?.n ?? 0) - (a.by.get(k)?.n ?? 0), ds: (b.by.get(k)?.size ?? 0) - (a.by.get(k)?.size ?? 0), n: b.by.get(k)?.n ?? 0 }));
rows.sort((x, y) => y.ds - x.ds);
for (const r of rows.slice(0, 25)) console.log(`${(r.ds / 1024).toFixed(1).padStart(9)} KB ${String(r.dn).padStart(7)} objs (now ${r.n})  ${r.k}`);
