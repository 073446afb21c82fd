/** How a bounded wait ended: the work's value, or why the caller stopped waiting for it. */
export type Bounded<T> = { ended: 'done'; value: T } | { ended: 'aborted' | 'timed-out' };

/**
 * Waits for `work` until `signal` aborts or `ms` pass (0 or Infinity: no time limit), whichever
 * comes first. The one way this library bounds an await on user code or the network: a hook that
 * never settles, a request whose reply is lost, must never hold a run, a slot or shutdown.
 *
 * `work` may be a function, so a synchronous throw of user code counts as its rejection. A
 * rejection that comes first is thrown; one that comes after the caller stopped waiting is
 * swallowed (nobody is left to handle it). The timer and the abort listener are gone when this
 * resolves.
 */
export function abortable<T>(
  work: Promise<T> | (() => T | Promise<T>),
  signal: AbortSignal | undefined,
  ms: number,
): Promise<Bounded<T>> {
  const running =
    typeof work === 'function'
      ? new Promise<T>((resolve) => resolve((work as () => T | Promise<T>)()))
      : work;
  if (signal?.aborted) {
    running.catch(() => undefined);
    return Promise.resolve({ ended: 'aborted' });
  }
  return new Promise<Bounded<T>>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const stop = (ended: 'aborted' | 'timed-out') => {
      cleanup();
      resolve({ ended });
    };
    const onAbort = () => stop('aborted');
    const cleanup = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    // Node fires a timer above 2^31-1 ms at once: such a bound means "no bound".
    if (ms > 0 && ms <= MAX_TIMER_MS) timer = setTimeout(() => stop('timed-out'), ms);
    running.then(
      (value) => {
        cleanup();
        resolve({ ended: 'done', value });
      },
      (err: unknown) => {
        cleanup();
        reject(err);
      },
    );
  });
}

/** Node's largest timer delay; a larger one fires after 1 ms. */
export const MAX_TIMER_MS = 2 ** 31 - 1;
