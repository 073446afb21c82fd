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
    if (this.status === 0) return this.code !== 'ABORTED';
    if (this.status === 429) return true;
    if (this.status < 500) return false;
    return !(this.status === 500 && /not found|already exists|failed to parse/i.test(this.body));
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
