/**
 * An error the caller can act on: `message` says what was wrong, `hint` what to do about it.
 * Tools turn it into an `isError` answer; anything else is reported as an internal failure.
 */
export class UserError extends Error {
  override readonly name = "UserError";
  constructor(
    message: string,
    readonly hint?: string,
    readonly code: string = "invalid_input",
  ) {
    super(message);
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
