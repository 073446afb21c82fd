/** Options of {@link RetryableError}. */
export interface RetryableErrorOptions {
  /** Wait this long before the redelivery, instead of the backoff curve's delay. */
  delayMs?: number;
  cause?: unknown;
}

/**
 * Throw from a `@Reconcile` handler (or a pipe or interceptor) to ask for the message again later
 * instead of reporting a failure: the message is nak'd with a delay (the backoff curve by delivery
 * count, or `delayMs`) and no result is published. At the last attempt (`maxAttempts`) the run gives
 * up with a failure result carrying this message, so a pipeline never waits forever.
 *
 * Use it for transient trouble (a registry rate limit, a node draining); anything else thrown is a
 * failure result at once.
 */
export class RetryableError extends Error {
  readonly delayMs?: number;

  constructor(message: string, options: RetryableErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RetryableError';
    if (options.delayMs !== undefined) this.delayMs = validRetryDelay(options.delayMs, 'RetryableError');
  }
}

/** A retry delay must be a whole number of ms >= 0; anything else is a programming error named here. */
export function validRetryDelay(delayMs: unknown, where: string): number {
  if (typeof delayMs !== 'number' || !Number.isSafeInteger(delayMs) || delayMs < 0) {
    throw new TypeError(
      `${where}: delayMs must be a whole number of milliseconds >= 0, got ${String(delayMs)}`,
    );
  }
  return delayMs;
}

/** True for a {@link RetryableError}, also one from another copy of this package. */
export function isRetryableError(error: unknown): error is RetryableError {
  return error instanceof RetryableError || (error instanceof Error && error.name === 'RetryableError');
}
