/**
 * What the agent may do, by permission kind (bash, edit, read, webfetch, external_directory,
 * doom_loop, question, ...; "*" for every kind not named): `allow` without asking, `deny` at once,
 * or `ask` a person. Backends map their own tool kinds onto these names and give the agent these
 * rules where they can (OpenCode: as the session's permission rules), so that coding-mcp's policy is
 * what the agent meets whatever the agent's own configuration says.
 */
export type PermissionRule = "allow" | "deny" | "ask";
export type PermissionRules = Record<string, PermissionRule>;

/** Nothing outside the workspace without a person's yes; an agent stuck repeating itself is asked about too. */
export const DEFAULT_PERMISSIONS: PermissionRules = { "*": "allow", external_directory: "ask", doom_loop: "ask" };

/** The agent's questions to the person: asked unless the policy denies them ("allow" cannot answer a question). */
export const QUESTION_KIND = "question";

export class PermissionPolicy {
  constructor(readonly rules: PermissionRules) {}

  /** The rule for a kind: its own, else "*", else allow. Questions are asked unless explicitly denied. */
  rule(permission: string): PermissionRule {
    if (permission === QUESTION_KIND) return this.rules[QUESTION_KIND] === "deny" ? "deny" : "ask";
    return this.rules[permission] ?? this.rules["*"] ?? "allow";
  }
}
