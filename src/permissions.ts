import type { PermissionReply } from "./model.js";

/**
 * What the agent may do without asking, by permission kind (bash, edit, read, webfetch,
 * external_directory, ...; "*" for every other kind). Backends map their own tool kinds onto these
 * names; the core answers every request the agent makes through this policy.
 */
export type PermissionRule = "allow" | "deny";

export class PermissionPolicy {
  constructor(private readonly rules: Record<string, PermissionRule>) {}

  /** The rule for a kind: its own, else "*", else allow. */
  rule(permission: string): PermissionRule {
    return this.rules[permission] ?? this.rules["*"] ?? "allow";
  }

  decide(permission: string): PermissionReply {
    return this.rule(permission) === "allow" ? "once" : "reject";
  }
}
