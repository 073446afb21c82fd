import { redactText } from '../security/redact';

/**
 * A Conveyor API call that did not succeed: the status, the request's method and path (never its
 * headers: they may carry a token) and the server's error text.
 */
export class ConveyorApiError extends Error {
  constructor(
    /** The HTTP status; 0 when no response arrived (network error, timeout, abort: see `code`). */
    readonly status: number,
    /** `error` of the JSON body, or the plain-text body (the server mixes both: contract §10.1). */
    readonly body: string,
    readonly method: string,
    readonly path: string,
    /** Without a response: `ETIMEDOUT` (the client's timeout), `ABORTED` (the caller's signal) or the socket's code (`ECONNREFUSED`…). */
    readonly code?: string,
  ) {
    super(`${method} ${path} -> ${status || code || 'no response'}${body ? `: ${body}` : ''}`);
    this.name = 'ConveyorApiError';
  }

  /**
   * True when the server may have applied the request and the client cannot tell: see
   * {@link ConveyorApiOutcomeUnknownError}. Never transient then.
   */
  readonly outcomeUnknown: boolean = false;

  /**
   * True when the request may have reached the server and been applied although this error came
   * instead of its answer: no response after the request went out (a timeout, a dropped
   * connection), or a gateway's 502/504. False when it surely was not applied: a connection that
   * was never made, the server's own error answer, the caller's abort before sending.
   */
  mayHaveBeenApplied(): boolean {
    if (this.status === 502 || this.status === 504) return true;
    if (this.status !== 0) return false;
    return !NOT_SENT_CODES.has(this.code ?? '');
  }

  /**
   * True for a missing resource. Conveyor 0.6.x answers not-found with **500** and a "... not found"
   * text (the 404 branches are dead code, contract §10.1), so both are read as not-found.
   */
  isNotFound(): boolean {
    return this.status === 404 || (this.status === 500 && /not found/i.test(this.body));
  }

  /**
   * True when the same request may succeed later: no response (but not the caller's abort), 429, or a
   * 5xx other than the server's deterministic 500s ("not found", "already exists", a version it
   * cannot parse), which it answers for bad input rather than an outage.
   */
  isTransient(): boolean {
    if (this.outcomeUnknown) return false;
    // The caller's own abort, before or after sending, is its outcome: not an outage to retry.
    if (this.status === 0) return this.code !== 'ABORTED' && this.code !== 'ABORTED_IN_FLIGHT';
    if (this.status === 429) return true;
    if (this.status < 500) return false;
    return !(this.status === 500 && /not found|already exists|failed to parse/i.test(this.body));
  }
}

/**
 * Connection errors raised before a byte of the request left: such a request was surely not
 * applied. `ABORTED` is here too: the caller's abort is its own outcome, not an unknown one.
 */
const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'ERR_INVALID_URL',
  'ABORTED',
]);

/**
 * A request that must not be sent twice (a create, a log line, a broadcast, or a resource update
 * another writer changed meanwhile) whose outcome the client cannot know: the server may have
 * applied it. Never transient: re-running the work that sent it would send it again (a second
 * create fails "already exists"). Read the server's state to learn what happened.
 *
 * `status`, `code` and `body` are those of the failure behind it (e.g. 0, `ETIMEDOUT`).
 */
export class ConveyorApiOutcomeUnknownError extends ConveyorApiError {
  constructor(cause: ConveyorApiError, explanation: string) {
    super(cause.status, cause.body, cause.method, cause.path, cause.code);
    this.message = `${cause.message}; outcome unknown: ${explanation}`;
    this.name = 'ConveyorApiOutcomeUnknownError';
  }

  override readonly outcomeUnknown = true;
}

/** A bare JWT (three base64url parts, the first a JSON header): redacted even without a `Bearer` in front. */
const BARE_JWT = /\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*/g;

/**
 * The client's `authorization` provider (a PoP token signer, a key-file reader…) failed, so the
 * request was not sent. Not a {@link ConveyorApiError}: no request reached the API, so it is neither
 * an API outage nor retried; the cause is a local configuration or key problem to fix. The cause's
 * text is kept with token-like values (`Bearer …`, JWTs, private keys) redacted; the cause itself is
 * not attached, since it may hold key material.
 */
export class ConveyorAuthorizationError extends Error {
  constructor(
    readonly method: string,
    readonly path: string,
    cause: unknown,
  ) {
    const reason = redactText(cause instanceof Error ? cause.message : String(cause)).replace(
      BARE_JWT,
      '***',
    );
    super(`${method} ${path}: the authorization provider failed, so the request was not sent: ${reason}`);
    this.name = 'ConveyorAuthorizationError';
  }
}

/** True for a transient {@link ConveyorApiError}, also one from another copy of this package. */
export function isTransientApiError(error: unknown): boolean {
  return (
    error instanceof Error &&
    error.name === 'ConveyorApiError' &&
    typeof (error as Partial<ConveyorApiError>).isTransient === 'function' &&
    (error as ConveyorApiError).isTransient()
  );
}
