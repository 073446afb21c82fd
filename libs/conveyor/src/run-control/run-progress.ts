import type { RunProgress } from '../protocol';

/** What `ctx.progress()` takes: a fraction from 0 to 1, or counts. */
export type ProgressValue = number | { done: number; total: number };

/** At most one progress report per run this often; the latest in between is sent when the wait ends. */
export const PROGRESS_INTERVAL_MS = 500;

/** Phases reported as metric labels beyond this many distinct ones are counted as `other`. */
const MAX_PHASE_LABELS = 32;
const phaseLabels = new Set<string>();

/** A bounded metric label for `phase` (user text: the number of distinct labels must stay small). */
export function phaseLabel(phase: string | undefined): string {
  const p = phase ?? '';
  if (phaseLabels.has(p)) return p;
  if (phaseLabels.size >= MAX_PHASE_LABELS) return 'other';
  phaseLabels.add(p);
  return p;
}

/**
 * A run's progress: throttled to one report per {@link PROGRESS_INTERVAL_MS} (the latest value
 * wins, nothing is queued), published on the run's progress subject, the last one kept for the
 * run's span. `send` never throws into the handler.
 */
export class RunProgressReporter {
  private latest?: RunProgress;
  private sentAt = 0;
  private timer?: NodeJS.Timeout;
  private seq = 0;
  private ended = false;

  constructor(
    private readonly runId: string,
    private readonly driver: string,
    private readonly send: (report: RunProgress) => void,
    private readonly phaseChanged: (from: string | undefined, to: string | undefined) => void,
  ) {}

  /** The last report (sent or waiting for its turn). */
  get last(): RunProgress | undefined {
    return this.latest;
  }

  report(value: ProgressValue, phase?: string): void {
    if (this.ended) return;
    const report = this.build(value, phase);
    if (report.phase !== this.latest?.phase) this.phaseChanged(this.latest?.phase, report.phase);
    this.latest = report;
    const wait = this.sentAt + PROGRESS_INTERVAL_MS - Date.now();
    if (wait <= 0) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), wait);
  }

  /** The run ended: the waiting report goes out now, later ones are ignored. */
  end(): void {
    if (this.ended) return;
    if (this.timer) this.flush();
    this.ended = true;
    if (this.latest) this.phaseChanged(this.latest.phase, undefined);
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (!this.latest) return;
    this.sentAt = Date.now();
    try {
      this.send(this.latest);
    } catch {
      // Progress is best effort: a disconnected or refusing server must not fail the run.
    }
  }

  private build(value: ProgressValue, phase?: string): RunProgress {
    let fraction: number;
    let counts: { done?: number; total?: number } = {};
    if (typeof value === 'number') fraction = value;
    else if (value && Number.isFinite(value.done) && Number.isFinite(value.total) && value.total > 0) {
      fraction = value.done / value.total;
      counts = { done: value.done, total: value.total };
    } else {
      throw new TypeError(
        'ctx.progress(value): value must be a fraction 0..1 or { done, total } with total > 0',
      );
    }
    if (!Number.isFinite(fraction))
      throw new TypeError('ctx.progress(value): the fraction must be a finite number');
    this.seq += 1;
    return {
      run_id: this.runId,
      driver: this.driver,
      fraction: Math.min(1, Math.max(0, fraction)),
      ...counts,
      ...(phase !== undefined ? { phase: String(phase) } : {}),
      seq: this.seq,
      at: new Date().toISOString(),
    };
  }
}
