// Errors of the SDK. Every message starts with "stepwise: " so they are easy
// to tell apart from a handler's own errors in logs.

const nonRetryableBrand = Symbol.for("stepwise.NonRetryableError");

/**
 * A failure that retrying cannot fix: the step fails at once, and so does
 * the request. Throw it from a handler, or give it as the `cause` of another
 * error. Its message is what the result reports.
 */
export class NonRetryableError extends Error {
  readonly [nonRetryableBrand] = true;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "NonRetryableError";
  }
}

/**
 * Reports whether err is a NonRetryableError, or wraps one through its
 * `cause` chain. The check uses a registered symbol, so errors created by
 * another copy of this package count too.
 */
export function isNonRetryable(err: unknown): boolean {
  const seen = new Set<unknown>();
  let e: unknown = err;
  while (typeof e === "object" && e !== null && !seen.has(e)) {
    if ((e as Record<symbol, unknown>)[nonRetryableBrand] === true) return true;
    seen.add(e);
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** An error of the SDK itself: a misconfiguration or a transport failure. */
export class StepwiseError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message.startsWith("stepwise: ") ? message : `stepwise: ${message}`, options);
    this.name = "StepwiseError";
  }
}

/** A result could not be produced; the task runs again after a restart. */
export class ProduceError extends StepwiseError {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ProduceError";
  }
}

/** The text a thrown value reports as a step's error message. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === "string") return err;
  try {
    return JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}

/**
 * The reason a handler's signal aborts with when the request was cancelled
 * (or failed elsewhere) while the handler ran. The handler should stop;
 * whatever it returns is dropped, since no result is wanted any more.
 */
export class CancelledError extends Error {
  constructor() {
    super("stepwise: request cancelled; the task's result is no longer wanted");
    this.name = "CancelledError";
  }
}
