import { packageJson } from "./package-json.js";

/** The package version, read once from package.json so --version and the MCP handshake agree. */
export const VERSION: string = packageJson().version;
