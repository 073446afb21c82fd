/**
 * A byte rate for step output copied into the process log: a token bucket refilled every second,
 * so a step printing megabytes cannot flood the driver's own stdout (and its log collector).
 */
export class ProcessLogLimiter {
  private tokens: number;
  private refilledAt = Date.now();
  /** Lines left out so far. */
  dropped = 0;

  constructor(private readonly bytesPerSecond: number) {
    this.tokens = bytesPerSecond;
  }

  /** True when a line of `bytes` may be written now. */
  allow(bytes: number): boolean {
    const now = Date.now();
    if (now - this.refilledAt >= 1000) {
      this.tokens = this.bytesPerSecond;
      this.refilledAt = now;
    }
    if (this.tokens < bytes) {
      this.dropped += 1;
      return false;
    }
    this.tokens -= bytes;
    return true;
  }
}
