import type { CodingBackend } from "./backend.js";
import { UserError } from "./errors.js";

/** The configured backends by name, with the one a coding_open that names none gets. */
export class Backends {
  private readonly byName: Map<string, CodingBackend>;

  constructor(
    backends: CodingBackend[],
    readonly defaultName: string,
  ) {
    this.byName = new Map(backends.map((b) => [b.name, b]));
    if (!this.byName.has(defaultName)) throw new Error(`default backend "${defaultName}" is not configured`);
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  all(): CodingBackend[] {
    return [...this.byName.values()];
  }

  find(name: string): CodingBackend | undefined {
    return this.byName.get(name);
  }

  /** The backend of that name (default: the default one); an unknown name is refused with the configured ones listed. */
  get(name: string = this.defaultName): CodingBackend {
    const backend = this.byName.get(name);
    if (!backend) {
      throw new UserError(
        `backend "${name}" is not configured`,
        `Use one of: ${this.names().join(", ")} (or leave backend out for ${this.defaultName}); add others under backends in the config.`,
        "unknown_backend",
      );
    }
    return backend;
  }
}
