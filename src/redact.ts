/**
 * The one redactor every output passes through: tool results, errors, log lines, progress messages
 * and span attributes. It removes the configured secret values themselves (also URL-encoded and
 * base64 as in a Basic auth header) and the usual shapes of tokens, whoever produced them.
 */
const REDACTED = "[REDACTED]";

const TOKEN_SHAPES: RegExp[] = [
  /\b(?:ghp|gho|ghs|ghu|ghr)_[A-Za-z0-9]{20,}\b/g, // GitHub tokens
  /\bgithub_pat_[A-Za-z0-9_]{20,}\b/g, // GitHub fine-grained tokens
  /\bglpat-[A-Za-z0-9_-]{20,}\b/g, // GitLab personal tokens
  /\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}\b/g, // OpenAI / Anthropic style API keys
  /\b(?:AKIA|ASIA)[A-Z0-9]{16}\b/g, // AWS access key ids
  /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, // Authorization header values
];
// user:password@ in URLs: keep the user, drop the password.
const URL_USERINFO = /([a-z][a-z0-9+.-]*:\/\/[^\s/:@]+):[^\s/@]+@/gi;
// A token alone as the user part (https://TOKEN@host), which is how tokens are usually pasted.
const URL_TOKEN_USER = /([a-z][a-z0-9+.-]*:\/\/)([^\s/:@]{20,})@/gi;

export class Redactor {
  private secrets: string[] = [];

  constructor(secrets: Iterable<string | undefined> = []) {
    for (const s of secrets) this.addSecret(s);
  }

  /** Register a secret value; values shorter than 6 characters are ignored (too likely to be ordinary text). */
  addSecret(value: string | undefined): void {
    if (!value || value.length < 6) return;
    const forms = new Set([value, encodeURIComponent(value), Buffer.from(value).toString("base64")]);
    for (const f of forms) if (!this.secrets.includes(f)) this.secrets.push(f);
    // Longest first, so a secret that contains another is removed whole.
    this.secrets.sort((a, b) => b.length - a.length);
  }

  text(input: string): string {
    let out = input;
    for (const s of this.secrets) if (out.includes(s)) out = out.split(s).join(REDACTED);
    for (const re of TOKEN_SHAPES) {
      out = out.replace(re, (match, scheme?: string) =>
        typeof scheme === "string" && /^(bearer|basic)$/i.test(scheme) ? `${scheme} ${REDACTED}` : REDACTED,
      );
    }
    out = out.replace(URL_USERINFO, `$1:${REDACTED}@`);
    out = out.replace(URL_TOKEN_USER, `$1${REDACTED}@`);
    return out;
  }

  /** Redact every string inside a JSON-like value (objects, arrays), returning a copy. */
  value<T>(input: T): T {
    return this.walk(input, 0) as T;
  }

  private walk(input: unknown, depth: number): unknown {
    if (typeof input === "string") return this.text(input);
    if (depth > 64 || input === null || typeof input !== "object") return input;
    if (Array.isArray(input)) return input.map((v) => this.walk(v, depth + 1));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(input)) out[k] = this.walk(v, depth + 1);
    return out;
  }
}
