/** A Conveyor API call that did not succeed: the status and the server's error text. */
export class ConveyorApiError extends Error {
  constructor(
    readonly status: number,
    /** `error` of the JSON body, or the plain-text body (the server mixes both: contract §10.1). */
    readonly body: string,
    readonly method: string,
    readonly path: string,
  ) {
    super(`${method} ${path} -> ${status}${body ? `: ${body}` : ''}`);
    this.name = 'ConveyorApiError';
  }

  /**
   * True for a missing resource. Conveyor 0.6.x answers not-found with **500** and a "not found"
   * text (the 404 branches are dead code, contract §10.1), so both are read as not-found.
   */
  get isNotFound(): boolean {
    return this.status === 404 || (this.status === 500 && /not found/i.test(this.body));
  }
}
