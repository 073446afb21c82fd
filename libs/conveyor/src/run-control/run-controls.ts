import type { RunProgress } from '../protocol';
import type { Settlement } from '../settlement/settlement.policy';
import type { CleanupHook, CleanupOptions, RunCleanups, RunEnding } from './run-cleanup';
import type { ProgressValue, RunProgressReporter } from './run-progress';

/** How a run ended, as its settlement says it: what its cleanup hooks are told. */
type RunEnd = Pick<Settlement, 'kind' | 'reason'>;

/**
 * A run's cleanup hooks and progress reporter (`ctx.onCleanup`, `ctx.progress`), each made on its
 * first use: most runs use neither, and then nothing is made for them. Ending the run is the same
 * either way: a hook registered after the end runs at once, progress reported after it is ignored.
 */
export abstract class RunControls {
  private cleanups?: RunCleanups;
  private reporter?: RunProgressReporter;
  /** Set once the run's cleanups ran (or would have, had it any). */
  private ended?: RunEnd;
  private progressEnded = false;

  /** A new {@link RunCleanups} for the run (called at most once). */
  protected abstract createCleanups(): RunCleanups;
  /** A new {@link RunProgressReporter} for the run (called at most once). */
  protected abstract createProgress(): RunProgressReporter;

  /** `ctx.onCleanup()`: see {@link RunCleanups.add}. */
  onCleanup(fn: CleanupHook, options?: CleanupOptions): void {
    if (!this.cleanups) {
      this.cleanups = this.createCleanups();
      // The run already ended: the hook runs at once, as it would have on cleanups made earlier.
      if (this.ended) void this.cleanups.run(endingOf(this.ended));
    }
    this.cleanups.add(fn, options);
  }

  /** `ctx.progress()`: see {@link RunProgressReporter.report}. Ignored once the run ended. */
  progress(value: ProgressValue, phase?: string): void {
    if (!this.reporter) {
      if (this.progressEnded) return;
      this.reporter = this.createProgress();
    }
    this.reporter.report(value, phase);
  }

  /** The run ended: a report waiting for its turn goes out now, later ones are ignored. The last report, if any. */
  endProgress(): RunProgress | undefined {
    this.progressEnded = true;
    if (!this.reporter) return undefined;
    this.reporter.end();
    return this.reporter.last;
  }

  /**
   * Runs the cleanup hooks once (see {@link RunCleanups.run}): undefined when there is nothing to
   * wait for, as when no hook was ever registered.
   */
  runCleanups(end: RunEnd): Promise<void> | undefined {
    if (this.ended) return undefined;
    this.ended = end;
    return this.cleanups?.run(endingOf(end));
  }
}

function endingOf(end: RunEnd): RunEnding {
  return { outcome: end.kind, reason: end.reason };
}
