import type { LoggerService } from '@nestjs/common';
import type { SettlementKind } from '../settlement/settlement.policy';
import { MAX_TIMER_MS, abortable } from '../util/abortable';

/** How the run ended, as a cleanup hook sees it. */
export interface RunEnding {
  /** The settlement row: `succeeded`, `failed`, `timed-out`, `cancelled`, `shutdown`, `retried`… */
  outcome: SettlementKind;
  reason: string;
}

/** A function `ctx.onCleanup()` registered. */
export type CleanupHook = (ending: RunEnding) => unknown;

export interface CleanupOptions {
  /** How long this hook may take before the run goes on without it. Default: `cleanupTimeoutMs` (10 s). */
  timeoutMs?: number;
}

/**
 * The cleanup hooks of one run. They run once, last registered first (like `defer`), after the run
 * ended in any way and before its final verb; each within its own deadline, so a hung hook cannot
 * hold the message. A failing hook is logged and counted and never changes the result.
 */
export class RunCleanups {
  private readonly hooks: { fn: CleanupHook; timeoutMs: number }[] = [];
  private ending?: RunEnding;

  constructor(
    private readonly defaultTimeoutMs: number,
    private readonly where: string,
    private readonly log: LoggerService,
    /** A hook failed, or timed out (then `stillRunning` settles when it finally ends). */
    private readonly failed: (stillRunning?: Promise<unknown>) => void,
  ) {}

  add(fn: CleanupHook, options: CleanupOptions = {}): void {
    if (typeof fn !== 'function') throw new TypeError('ctx.onCleanup(fn): fn must be a function');
    const timeoutMs = options.timeoutMs ?? this.defaultTimeoutMs;
    // Registered after the run ended (a handler that ignored its signal): it still runs, once.
    if (this.ending) void this.runOne({ fn, timeoutMs }, this.ending);
    else this.hooks.push({ fn, timeoutMs });
  }

  /**
   * Runs every hook once; the promise resolves when all have finished or timed out and never
   * rejects. Nothing to wait for (no promise, no tick on the message path) when no hook was added.
   */
  run(ending: RunEnding): Promise<void> | undefined {
    if (this.ending) return undefined;
    this.ending = ending;
    return this.hooks.length > 0 ? this.runAll(ending) : undefined;
  }

  private async runAll(ending: RunEnding): Promise<void> {
    for (const hook of this.hooks.splice(0).reverse()) await this.runOne(hook, ending);
  }

  private async runOne(hook: { fn: CleanupHook; timeoutMs: number }, ending: RunEnding): Promise<void> {
    const running = Promise.resolve().then(() => hook.fn(ending));
    try {
      // Always a bound (abortable reads 0 or Infinity as none): a hook must not hold the message.
      const ms = hook.timeoutMs > 0 ? Math.min(hook.timeoutMs, MAX_TIMER_MS) : 1;
      const done = await abortable(running, undefined, ms);
      if (done.ended !== 'done') {
        this.failed(running.catch(() => undefined));
        this.log.warn(
          `${this.where}: a cleanup hook did not finish within ${hook.timeoutMs} ms; going on without it`,
        );
      }
    } catch (err) {
      this.failed();
      this.log.warn(`${this.where}: a cleanup hook failed: ${(err as Error)?.message ?? String(err)}`);
    }
  }
}
