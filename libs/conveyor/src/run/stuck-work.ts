/** How many stuck pieces of work are named at most; the rest are counted. */
const MAX_NAMED = 50;

/**
 * User code or network work that outlived its deadline and was left behind: a dead-letter hook or
 * a cleanup hook that never settled, a handler that ignores its abort signal. The run went on
 * without it (nothing waits for it any more), but it still holds memory, maybe a socket or a
 * child process. Readiness lists it so a person sees what is stuck, while other events run.
 */
export class StuckWork {
  private readonly entries = new Map<number, { what: string; since: number }>();
  private next = 0;
  private uncounted = 0;

  /** Names `work` until it settles. */
  track(what: string, work: Promise<unknown>): void {
    if (this.entries.size >= MAX_NAMED) {
      this.uncounted += 1;
      void work.then(
        () => (this.uncounted -= 1),
        () => (this.uncounted -= 1),
      );
      return;
    }
    const id = this.next++;
    this.entries.set(id, { what, since: Date.now() });
    const done = () => void this.entries.delete(id);
    void work.then(done, done);
  }

  /** What is stuck now, oldest first, with how long. */
  list(now = Date.now()): string[] {
    const named = [...this.entries.values()].map(
      (e) => `${e.what} (for ${Math.round((now - e.since) / 1000)} s)`,
    );
    if (this.uncounted > 0) named.push(`${this.uncounted} more`);
    return named;
  }
}
