/**
 * Base of Herald's errors: a stable `code` scripts can match on, and a message that says what was
 * wrong, where, and what to do. User errors are printed as one line, without a stack trace.
 */
export class HeraldError extends Error {
  readonly code: string;
  /** True when the user can fix it (bad input, bad config): printed without a stack. */
  readonly userError: boolean;

  constructor(code: string, message: string, opts: ErrorOptions & { userError?: boolean } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.name = "HeraldError";
    this.code = code;
    this.userError = opts.userError ?? true;
  }
}

/** A call to an actor that could not complete because its thread died or stopped answering. */
export class ActorUnavailableError extends HeraldError {
  constructor(actor: string, reason: string) {
    super("ACTOR_UNAVAILABLE", `actor ${actor} is unavailable: ${reason}`, { userError: false });
    this.name = "ActorUnavailableError";
  }
}

/** A call that did not settle within its deadline. */
export class TimeoutError extends HeraldError {
  constructor(what: string, ms: number) {
    super("TIMEOUT", `${what} timed out after ${ms} ms`, { userError: false });
    this.name = "TimeoutError";
  }
}

/** A record too large for the NATS server's `max_payload`: permanent, resending cannot help. */
export class TooLargeError extends HeraldError {
  constructor(
    what: string,
    readonly bytes: number,
    readonly limit: number,
  ) {
    super("TOO_LARGE", `${what} is ${bytes} bytes, over the ${limit} bytes the NATS server accepts (max_payload less room for headers)`, {
      userError: false,
    });
    this.name = "TooLargeError";
  }
}

/** Text of any thrown value, for logs and replies. */
export function errorText(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
