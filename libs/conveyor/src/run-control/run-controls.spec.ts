import type { RunProgress } from '../protocol';
import { RunCleanups, RunEnding } from './run-cleanup';
import { RunControls } from './run-controls';
import { RunProgressReporter } from './run-progress';

const quiet = { log: jest.fn(), warn: jest.fn(), error: jest.fn() };

/** Counts what it makes; progress reports and phase changes are recorded. */
class CountingControls extends RunControls {
  cleanupsMade = 0;
  progressMade = 0;
  readonly sent: RunProgress[] = [];
  readonly phases: [string | undefined, string | undefined][] = [];

  protected createCleanups(): RunCleanups {
    this.cleanupsMade += 1;
    return new RunCleanups(1000, 'run r1', quiet, () => undefined);
  }

  protected createProgress(): RunProgressReporter {
    this.progressMade += 1;
    return new RunProgressReporter(
      'r1',
      'd',
      (report) => void this.sent.push(report),
      (from, to) => void this.phases.push([from, to]),
    );
  }
}

const succeeded = { kind: 'succeeded' as const, reason: 'ok' };

describe('RunControls', () => {
  it('makes no cleanups and no progress reporter for a run that uses neither', () => {
    const controls = new CountingControls();
    expect(controls.endProgress()).toBeUndefined();
    expect(controls.runCleanups(succeeded)).toBeUndefined();
    expect(controls.cleanupsMade).toBe(0);
    expect(controls.progressMade).toBe(0);
  });

  it('runs hooks registered during the run at its end, last first, once', async () => {
    const controls = new CountingControls();
    const seen: string[] = [];
    controls.onCleanup((e: RunEnding) => void seen.push(`first:${e.outcome}:${e.reason}`));
    controls.onCleanup(() => void seen.push('second'));
    expect(controls.cleanupsMade).toBe(1);
    await controls.runCleanups(succeeded);
    expect(seen).toEqual(['second', 'first:succeeded:ok']);
    expect(controls.runCleanups({ kind: 'failed', reason: 'again' })).toBeUndefined();
    expect(seen).toHaveLength(2);
  });

  it('runs a hook registered after the end at once, with how the run ended', async () => {
    const controls = new CountingControls();
    expect(controls.runCleanups({ kind: 'timed-out', reason: 'too slow' })).toBeUndefined();
    const ran = new Promise<RunEnding>((resolve) => controls.onCleanup(resolve));
    await expect(ran).resolves.toEqual({ outcome: 'timed-out', reason: 'too slow' });
    expect(controls.cleanupsMade).toBe(1);
  });

  it('sends progress as the reporter does, and the waiting report at the end', () => {
    const controls = new CountingControls();
    controls.progress(0.25, 'build');
    controls.progress(0.5, 'build');
    expect(controls.progressMade).toBe(1);
    expect(controls.sent.map((p) => p.fraction)).toEqual([0.25]);
    expect(controls.endProgress()).toMatchObject({ fraction: 0.5, phase: 'build' });
    expect(controls.sent.map((p) => p.fraction)).toEqual([0.25, 0.5]);
    expect(controls.phases).toEqual([
      [undefined, 'build'],
      ['build', undefined],
    ]);
    controls.progress(1);
    expect(controls.sent).toHaveLength(2);
  });

  it('ignores progress after the end without making a reporter, even a value it would refuse', () => {
    const controls = new CountingControls();
    controls.endProgress();
    controls.progress(0.5);
    expect(() => controls.progress(Number.NaN)).not.toThrow();
    expect(controls.progressMade).toBe(0);
    expect(controls.sent).toEqual([]);
  });

  it('refuses a bad value during the run, as the reporter does', () => {
    const controls = new CountingControls();
    expect(() => controls.progress(Number.NaN)).toThrow(TypeError);
    expect(() => controls.onCleanup('nope' as never)).toThrow(TypeError);
    controls.endProgress();
  });
});
