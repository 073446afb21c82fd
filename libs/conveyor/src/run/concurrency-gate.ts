/**
 * Counts run slots. The consumer session pulls for the free slots (plus a small prefetch only while
 * handlers are quick), and every message held is heartbeated from arrival: nothing waits in a local
 * buffer while its AckWait runs out (nats.go#1929: prefetched messages expire under long handlers).
 */
export class ConcurrencyGate {
  private used = 0;
  private waiters: (() => void)[] = [];

  constructor(readonly limit: number) {}

  get free(): number {
    return this.limit - this.used;
  }

  get inUse(): number {
    return this.used;
  }

  /** Takes a slot. The caller must have checked `free`; over-acquiring is a bug and throws. */
  acquire(): void {
    if (this.used >= this.limit) throw new Error(`concurrency gate over limit ${this.limit}`);
    this.used += 1;
  }

  release(): void {
    this.used = Math.max(0, this.used - 1);
    this.waiters.splice(0).forEach((wake) => wake());
  }

  /** Waits for a slot and takes it; false (nothing taken) when `signal` aborts first. */
  async take(signal: AbortSignal): Promise<boolean> {
    // Every waiter wakes on a release, so re-check: another one may have taken the slot first.
    while (this.free <= 0) {
      if (signal.aborted) return false;
      await this.waitForFree(signal);
    }
    if (signal.aborted) return false;
    this.acquire();
    return true;
  }

  /** Resolves when at least one slot is free or `signal` aborts. */
  waitForFree(signal: AbortSignal): Promise<void> {
    if (this.free > 0 || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        signal.removeEventListener('abort', wake);
        resolve();
      };
      this.waiters.push(wake);
      signal.addEventListener('abort', wake, { once: true });
    });
  }
}
