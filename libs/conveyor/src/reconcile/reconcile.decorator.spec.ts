import { Reconcile, ReconcileOptions } from './reconcile.decorator';

/** Declares a controller with one handler, as an app does when its file is loaded. */
function declare(options: ReconcileOptions): void {
  class BuildDriver {
    @Reconcile(options)
    build() {
      return { success: true };
    }
  }
  void BuildDriver;
}

describe('@Reconcile limits', () => {
  it('refuses a timeoutMs above 2^31-1 ms (Node would fire it at once), naming the handler', () => {
    expect(() => declare({ resource: 'pipeline', timeoutMs: 30 * 24 * 3_600_000 })).toThrow(
      /BuildDriver\.build: option "timeoutMs": must be a whole number >= 0 and <= 2147483647 \(.*Node.*\), got 2592000000/,
    );
  });

  it('accepts 2^31-1 ms and 0 (no ceiling)', () => {
    expect(() => declare({ resource: 'pipeline', timeoutMs: 2 ** 31 - 1 })).not.toThrow();
    expect(() => declare({ resource: 'pipeline', timeoutMs: 0 })).not.toThrow();
  });

  it.each([
    [{ concurrency: 0 }, /option "concurrency": must be a whole number >= 1, got 0/],
    [{ maxAttempts: 1.5 }, /option "maxAttempts": must be a whole number >= 1, got 1.5/],
    [{ timeoutMs: -1 }, /option "timeoutMs": must be a whole number >= 0 and <= 2147483647/],
  ])('refuses %j, naming the handler', (limits, message) => {
    expect(() => declare({ resource: 'pipeline', ...limits })).toThrow(message);
    expect(() => declare({ resource: 'pipeline', ...limits })).toThrow(/BuildDriver\.build/);
  });

  it('refuses a misspelled option (a JavaScript caller has no type check)', () => {
    expect(() => declare({ resource: 'pipeline', timeoutMS: 5 } as never)).toThrow(
      /BuildDriver\.build: option "timeoutMS" is not a Conveyor option: did you mean "timeoutMs"\?/,
    );
  });
});
