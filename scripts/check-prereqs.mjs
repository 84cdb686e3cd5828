#!/usr/bin/env node
// Run first by `npm test`, `npm run demo` and `npm run bench`: one line for each missing prerequisite
// (what is missing and how to install it), exit 1; silent when everything is there.
// The checks are coding-mcp's own (src/prerequisites.js), the ones `coding-mcp doctor` runs.
// `check-prereqs.mjs demo`: bubblewrap may be missing (the demo then runs with the sandbox off and says so).
import { checkPrerequisites } from "../src/prerequisites.js";

const optional = process.argv[2] === "demo" ? new Set(["bubblewrap"]) : new Set();
const missing = checkPrerequisites().filter((check) => !check.ok && !optional.has(check.name));
for (const check of missing) process.stderr.write(`coding-mcp needs ${check.name}: ${check.detail}. Fix: ${check.fix}\n`);
process.exit(missing.length ? 1 : 0);
