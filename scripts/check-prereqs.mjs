#!/usr/bin/env node
// Run first by `npm test`, `npm run demo` and `npm run bench`: one line for each missing prerequisite
// (what is missing and how to install it), exit 1; silent when everything is there.
// The checks are coding-mcp's own (src/prerequisites.js), the ones `coding-mcp doctor` runs.
import { checkPrerequisites } from "../src/prerequisites.js";

const missing = checkPrerequisites().filter((check) => !check.ok);
for (const check of missing) process.stderr.write(`coding-mcp needs ${check.name}: ${check.detail}. Fix: ${check.fix}\n`);
process.exit(missing.length ? 1 : 0);
