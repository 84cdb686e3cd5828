import { installOpencodeConfigDeps } from "./support/opencode-home.mjs";

/** Once per run, before any test: OpenCode's config dependencies, installed once for every test's OpenCode home. */
export default function setup(): void {
  installOpencodeConfigDeps();
}
